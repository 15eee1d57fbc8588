//! Client authentication for the token, introspection and revocation
//! endpoints (RFC 6749 §2.3.1): `client_secret_basic`, `client_secret_post`,
//! or `none` for public clients. One function; every failure is the same
//! 401 `invalid_client`.
//!
//! Successful confidential-client authentications are remembered for
//! [`CACHE_TTL`] (see [`AuthCache`]), so a resource server introspecting
//! thousands of tokens a second costs no database read per request.

use std::{
    collections::HashMap,
    sync::{LazyLock, RwLock},
    time::Duration,
};

use app::domain::{
    clients::{self, Client},
    secrets::{secret_matches, sha256_hex},
};
use axum::http::HeaderMap;

use super::{error::OAuthError, form::Params};
use crate::{
    request_headers::{self, BasicCredentials},
    state::AppState,
};

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    None,
}

/// Authenticates the calling client.
///
/// - `Authorization: Basic` (scheme in any case, see
///   [`request_headers::basic_credentials`]) and a body `client_secret` at
///   once → 400 `invalid_request` (RFC 6749 §2.3: one method per request);
/// - a Basic header that cannot be read, or wrong Basic credentials → 401
///   `invalid_client` with `WWW-Authenticate: Basic` (RFC 6749 §5.2);
/// - wrong `client_secret_post` credentials, or none at all → 401
///   `invalid_client` without a challenge;
/// - the database failing → 503 `temporarily_unavailable`;
/// - the client over its request limit → 429 `temporarily_unavailable`
///   with `Retry-After` (`rate_limit`).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Client, AuthMethod), OAuthError> {
    let basic = request_headers::basic_credentials(headers);
    let (client_id, secret, method) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ))
        }
        (Some(Err(_)), None) => return Err(OAuthError::invalid_client(true)),
        (Some(Ok(BasicCredentials { client_id, secret })), None) => {
            if params
                .get("client_id")
                .is_some_and(|body_id| body_id != client_id)
            {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (client_id, Some(secret), AuthMethod::Basic)
        }
        (None, Some(secret)) => (
            params.require("client_id")?.to_owned(),
            Some(secret.to_owned()),
            AuthMethod::Post,
        ),
        (None, None) => match params.get("client_id") {
            Some(id) => (id.to_owned(), None, AuthMethod::None),
            None => return Err(OAuthError::invalid_client(false)),
        },
    };
    // A closed pool (shutting down) authenticates nobody, remembered or not.
    if let (Some(secret), false) = (&secret, state.db.is_closed()) {
        if let Some(client) = CACHE.get(&client_id, secret) {
            return within_limit(state, client, method);
        }
    }
    // Read before the database, so a change committed meanwhile is not cached as current.
    let read_at = clients::ReadAt::before_reading();
    match clients::authenticate_client(&state.db, &client_id, secret.as_deref()).await {
        Ok(Ok(client)) => {
            if let Some(secret) = &secret {
                CACHE.insert(&client, secret, read_at);
            }
            within_limit(state, client, method)
        }
        Ok(Err(why)) => {
            tracing::info!(client_id = %client_id, ?why, "client authentication failed");
            Err(OAuthError::invalid_client(method == AuthMethod::Basic))
        }
        Err(e) => Err(OAuthError::from_domain("client authentication", e)),
    }
}

/// The authenticated client, unless it is over its request limit
/// (`rate_limit`: 429 with `Retry-After`). A public client is not limited as
/// a client: anyone may send its client_id, and its requests come from every
/// one of its users; the per-address limit still applies to each of them.
fn within_limit(
    state: &AppState,
    client: Client,
    method: AuthMethod,
) -> Result<(Client, AuthMethod), OAuthError> {
    if method != AuthMethod::None {
        state
            .limits
            .check_client(&client.client_id)
            .map_err(OAuthError::too_many_requests)?;
    }
    Ok((client, method))
}

/// How long a successful authentication is remembered.
pub const CACHE_TTL: Duration = clients::REGISTRATION_MAX_AGE;

/// How many clients are remembered at most.
const CACHE_CAPACITY: usize = 1024;

static CACHE: LazyLock<AuthCache> = LazyLock::new(AuthCache::default);

/// Recent successful confidential-client authentications of this process:
/// per client_id, the SHA-256 of the secret that worked and the client as read
/// then. Failures are never remembered, nor public clients (no secret to
/// check). The secret itself is never kept, only its hash, which is what the
/// database holds as well.
///
/// Staleness: an edit, a secret rotation or a deletion made by this process
/// (console, admin API, CLI in-process) applies at once: every entry carries
/// [`clients::registration_generation`] and is ignored once it moved. Made by
/// another instance, the change is announced (`instances::announce_change`)
/// and moves the generation here before it is acknowledged; only when the
/// announcement itself fails does [`CACHE_TTL`] bound how long a remembered
/// client keeps authenticating with its old secret, after its deletion, or
/// with its old registration (kind, grant types, scopes).
/// While the database is unreachable, likewise: a client authenticated
/// in the last [`CACHE_TTL`] keeps being answered (introspection needs no
/// database), everyone else gets 503 or 401 as before. What a deleted client
/// can do meanwhile is limited: refreshing reads the client row again and
/// answers `invalid_client`; client_credentials issuance, introspection and
/// revocation still answer it until its entry expires.
#[derive(Default)]
struct AuthCache {
    entries: RwLock<HashMap<String, Remembered>>,
}

struct Remembered {
    /// Hex SHA-256 of the secret presented (the stored `secret_hash`'s form).
    secret_sha256: String,
    client: Client,
    /// When it was read (before the database): it holds while
    /// [`clients::ReadAt::is_current`].
    read_at: clients::ReadAt,
}

impl AuthCache {
    /// The client, if `secret` authenticated it less than [`CACHE_TTL`] ago.
    /// The secret's hash is compared with the remembered one in constant time.
    fn get(&self, client_id: &str, secret: &str) -> Option<Client> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let hit = entries.get(client_id)?;
        (hit.read_at.is_current() && secret_matches(secret, &hit.secret_sha256))
            .then(|| hit.client.clone())
    }

    /// Remembers a successful authentication. When full, forgets what has
    /// expired, and if that is not enough, everything.
    fn insert(&self, client: &Client, secret: &str, read_at: clients::ReadAt) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_CAPACITY && !entries.contains_key(&client.client_id) {
            entries.retain(|_, r| r.read_at.is_current());
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            client.client_id.clone(),
            Remembered {
                secret_sha256: sha256_hex(secret),
                client: client.clone(),
                read_at,
            },
        );
    }
}
