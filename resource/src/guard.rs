//! [`Guard`]: validation, the revoked set, health.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    time::Instant,
};

use jsonwebtoken::{errors::ErrorKind, Validation};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::{
    claims::{AccessToken, Claims},
    config::{Config, Fallback, GuardBuilder},
    feed,
    freshness::Freshness,
    issuer::{self, Endpoints, IssuerError},
    keys::{self, KeyCache, VerifyKey},
    layer::GuardLayer,
    rejection::{scope_list, Reason, Rejection},
    revoked::RevokedSet,
};

/// Validates Latchkey access tokens locally and follows Latchkey's revocation
/// feed. Cheap to clone (all clones share one state); its background tasks
/// stop when the last clone is dropped.
///
/// # Guarantees
/// - A token is accepted only if: its header's `typ` is `at+jwt` (or
///   `application/at+jwt`, case-insensitively: RFC 9068 §4); its `kid` names a
///   key of the issuer's JWKS and its `alg` is that key's algorithm (the
///   header's `alg` alone never chooses: RFC 8725 §3.1); the signature
///   verifies; `iss` is the configured issuer; `aud` names the configured
///   audience (a string or an array); `exp` has not passed and `nbf`, if any,
///   has, both within the leeway; `sub`, `client_id`, `iat`, `jti` and `gid`
///   are present (RFC 9068 §2.2); and no live revocation entry covers its
///   `gid`, `fid` or `jti`.
/// - A revoked token is refused from the moment its entry reached the guard
///   (snapshot or stream) until its `until` plus the leeway passed (after
///   which the token has expired anyway).
/// - Revocations reach the guard within the staleness bound or the guard stops
///   trusting its set: with [`Fallback::FailClosed`] every token is refused
///   (401, one `tracing::error!` line per outage); with
///   [`Fallback::Introspect`] every token must also be `active` at the
///   issuer's introspection endpoint. Until the first snapshot has loaded the
///   set counts as stale.
/// - Restarting loses nothing: the snapshot holds every entry still in force.
///
/// A token whose `exp` passed at the issuer but not yet here (a clock behind
/// by up to the leeway) may have had its entry pruned from the snapshot
/// already: keep the leeway small (default 5 s) and clocks synchronised.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

/// The background tasks, aborted with the last guard.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The state the guard and its tasks share.
pub(crate) struct Inner {
    /// Tells this guard's validated tokens from another guard's.
    pub id: u64,
    pub config: Config,
    pub http: reqwest::Client,
    pub endpoints: OnceLock<Endpoints>,
    pub keys: KeyCache,
    revoked: RwLock<RevokedSet>,
    pub freshness: Freshness,
}

impl Inner {
    pub fn write_revoked(&self) -> RwLockWriteGuard<'_, RevokedSet> {
        // Every write leaves the set consistent before anything can panic.
        self.revoked.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_revoked(&self) -> RwLockReadGuard<'_, RevokedSet> {
        self.revoked.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches the JWKS now (one fetch at a time) and replaces the keys held:
    /// the first load and the periodic refresh, which do not count against
    /// the refetch interval of unknown kids.
    pub async fn load_keys(&self) -> Result<(), IssuerError> {
        let endpoints = self.endpoints.get().expect("discovered before");
        let _one_at_a_time = self.keys.fetch.lock().await;
        let keys = issuer::fetch_jwks(&self.http, &self.config, endpoints).await?;
        self.keys.replace(keys);
        Ok(())
    }

    /// The key `kid` names; an unknown one triggers a JWKS fetch unless another
    /// unknown kid triggered one less than `jwks_refetch_interval` ago
    /// (requests for unknown kids queue behind that one fetch).
    async fn key(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        if let Some(key) = self.keys.get(kid) {
            return Some(key);
        }
        let endpoints = self.endpoints.get()?;
        let mut last = self.keys.fetch.lock().await;
        if let Some(key) = self.keys.get(kid) {
            return Some(key);
        }
        if !keys::may_refetch(*last, self.config.jwks_refetch_interval) {
            return None;
        }
        *last = Some(Instant::now());
        match issuer::fetch_jwks(&self.http, &self.config, endpoints).await {
            Ok(keys) => self.keys.replace(keys),
            Err(e) => {
                tracing::warn!(error = %e, "latchkey-resource: JWKS refetch for an unknown kid failed")
            }
        }
        self.keys.get(kid)
    }

    /// The signature and claim checks (see [`Guard`]'s guarantees).
    async fn verify(&self, token: &str) -> Result<Claims, Reason> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::Malformed)?;
        if !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(Reason::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(Reason::UnknownKey)?;
        let key = match self.key(kid).await {
            Some(key) => key,
            // Not discovered yet: no key can be known.
            None if self.endpoints.get().is_none() => return Err(Reason::NotReady),
            None => return Err(Reason::UnknownKey),
        };
        if header.alg != key.alg {
            return Err(Reason::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(jwt_reason)?;
        for claim in ["client_id", "iat", "jti", "gid"] {
            if data.claims.get(claim).is_none_or(|v| v.is_null()) {
                return Err(Reason::MissingClaim(claim));
            }
        }
        serde_json::from_value(data.claims).map_err(|_| Reason::WrongShape)
    }

    /// While stale with [`Fallback::Introspect`]: the issuer's word.
    async fn introspect(&self, token: &str) -> Result<(), Reason> {
        let endpoint = self
            .endpoints
            .get()
            .and_then(|e| e.introspection.as_ref())
            .ok_or(Reason::IntrospectionFailed)?;
        match issuer::introspect(&self.http, &self.config, endpoint, token).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Reason::Inactive),
            Err(e) => {
                tracing::debug!(error = %e, "latchkey-resource: introspection failed");
                Err(Reason::IntrospectionFailed)
            }
        }
    }
}

/// Whether `typ` says "JWT access token": RFC 9068 §2.1 `at+jwt`; §4 asks to
/// compare it case-insensitively and to accept the full media type
/// `application/at+jwt` (RFC 7515 §4.1.9) — exactly as Latchkey does.
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// `jsonwebtoken`'s verdict in our terms (its messages may quote claim values).
fn jwt_reason(err: jsonwebtoken::errors::Error) -> Reason {
    match err.kind() {
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidIssuer => Reason::WrongIssuer,
        ErrorKind::InvalidAudience => Reason::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Reason::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) => Reason::MissingClaim(match claim.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            _ => "required",
        }),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => Reason::Malformed,
        ErrorKind::Json(_) => Reason::WrongShape,
        _ => Reason::BadSignature,
    }
}

/// Where the guard stands, for an operator's health endpoint or metrics
/// (serializes to JSON; times are unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The first snapshot has loaded.
    pub ready: bool,
    /// A stream is open now.
    pub connected: bool,
    /// Ready and heard from within the staleness bound: tokens are validated
    /// locally alone. When false the [`Fallback`] applies.
    pub fresh: bool,
    /// `fail-closed` or `introspect`.
    pub fallback: &'static str,
    /// The position of the last entry applied (0 before any).
    pub last_position: i64,
    /// Entries held in the revoked set.
    pub entries: usize,
    /// When the set was last known complete (an event, a keep-alive or a
    /// caught-up snapshot), once ready.
    pub last_heard: Option<i64>,
    /// Since when the set counts as stale, while it does (the guard's start
    /// when it never was ready).
    pub stale_since: Option<i64>,
    /// Why the last session with the feed ended, while it is not connected again.
    pub last_error: Option<String>,
}

impl Health {
    /// `fresh`: whether a health check should say "up".
    pub fn is_healthy(&self) -> bool {
        self.fresh
    }
}

impl Guard {
    /// Starts configuring a guard for tokens of `issuer` (exactly as in the
    /// tokens' `iss` and in the issuer's discovery metadata, e.g.
    /// `https://id.example.com`).
    pub fn builder(issuer: impl Into<String>) -> GuardBuilder {
        GuardBuilder::new(issuer)
    }

    pub(crate) fn start(
        config: Config,
        http: reqwest::Client,
        runtime: &tokio::runtime::Handle,
    ) -> Guard {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            freshness: Freshness::new(config.stale_after, config.fallback),
            config,
            http,
            endpoints: OnceLock::new(),
            keys: KeyCache::new(),
            revoked: RwLock::new(RevokedSet::default()),
        });
        let tasks = Tasks(vec![
            runtime.spawn(feed::follow(inner.clone())),
            runtime.spawn(feed::sweep(inner.clone())),
        ]);
        Guard {
            inner,
            _tasks: Arc::new(tasks),
        }
    }

    /// Validates an access token (the part after `Bearer `): every check of
    /// the [guarantees](Guard#guarantees), in this order — signature and
    /// claims, the revoked set, then freshness (and introspection while stale,
    /// with [`Fallback::Introspect`]).
    ///
    /// # Errors
    /// A [`Rejection`] whose [`Reason`] says which check failed; as a response
    /// it is the RFC 6750 §3 challenge.
    pub async fn validate(&self, token: &str) -> Result<AccessToken, Rejection> {
        let inner = &self.inner;
        let reject = |reason| Rejection::new(reason, inner.config.realm.clone());
        let claims = inner.verify(token).await.map_err(reject)?;
        if let Some(kind) = inner.read_revoked().revoked(&claims) {
            return Err(reject(Reason::Revoked(kind)));
        }
        let mut introspected = false;
        if !inner.freshness.is_fresh() && !inner.freshness.observe() {
            match inner.config.fallback {
                Fallback::FailClosed if inner.freshness.is_ready() => {
                    return Err(reject(Reason::Stale))
                }
                Fallback::FailClosed => return Err(reject(Reason::NotReady)),
                Fallback::Introspect => {
                    inner.introspect(token).await.map_err(reject)?;
                    introspected = true;
                }
            }
        }
        Ok(AccessToken {
            claims: Arc::new(claims),
            guard_id: inner.id,
            realm: inner.config.realm.clone(),
            introspected,
        })
    }

    /// A tower [`Layer`](tower::Layer) that lets through only requests with a
    /// valid token (`Authorization: Bearer`, RFC 6750 §2.1) and puts its
    /// [`AccessToken`] into the request's extensions; anything else is
    /// answered with the [`Rejection`]'s 401 challenge.
    pub fn layer(&self) -> GuardLayer {
        GuardLayer::new(self.clone(), Vec::new())
    }

    /// Like [`layer`](Self::layer), and the token must also carry every scope
    /// of `scopes`, else 403 `insufficient_scope` with
    /// `WWW-Authenticate: Bearer ..., scope="..."` (RFC 6750 §3.1). Behind
    /// [`layer`](Self::layer) of the same guard it does not validate again.
    ///
    /// # Panics
    /// When a scope is not a scope token (RFC 6749 §3.3: empty, or holding a
    /// space, `"` or `\`).
    pub fn require_scopes<I, S>(&self, scopes: I) -> GuardLayer
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        GuardLayer::new(self.clone(), scope_list(scopes))
    }

    /// The token in `headers`, validated, or the reuse of one this guard
    /// validated earlier in the same request; then the scope check.
    pub(crate) async fn authorize(
        &self,
        headers: &http::HeaderMap,
        validated: Option<&AccessToken>,
        scopes: &[String],
    ) -> Result<AccessToken, Rejection> {
        let token = match validated.filter(|t| t.guard_id == self.inner.id) {
            Some(token) => token.clone(),
            None => {
                let raw = crate::layer::bearer_token(headers)
                    .map_err(|reason| Rejection::new(reason, self.inner.config.realm.clone()))?;
                self.validate(raw).await?
            }
        };
        token.check_scopes(scopes)?;
        Ok(token)
    }

    /// Where the guard stands: last applied position, entries held, stream
    /// connected, stale since.
    pub fn health(&self) -> Health {
        let freshness = &self.inner.freshness;
        let connected = freshness.is_connected();
        Health {
            ready: freshness.is_ready(),
            connected,
            fresh: freshness.is_fresh(),
            fallback: self.inner.config.fallback.as_str(),
            last_position: freshness.last_position(),
            entries: self.inner.read_revoked().len(),
            last_heard: freshness.last_heard(),
            stale_since: freshness.stale_since(),
            last_error: if connected {
                None
            } else {
                freshness.last_error()
            },
        }
    }

    /// Whether the first snapshot has loaded.
    pub fn is_ready(&self) -> bool {
        self.inner.freshness.is_ready()
    }

    /// Waits until the first snapshot has loaded (forever if the issuer never
    /// answers: wrap it in `tokio::time::timeout` to bound the wait).
    pub async fn ready(&self) {
        let mut ready = self.inner.freshness.subscribe_ready();
        // The sender lives in `self`: it cannot be dropped while we wait.
        let _ = ready.wait_for(|r| *r).await;
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .field("health", &self.health())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_is_compared_like_latchkey_does() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(is_access_token_type(typ), "{typ}");
        }
        for typ in ["JWT", "jwt", "at+jwt ", "application/jwt", "logout+jwt", ""] {
            assert!(!is_access_token_type(typ), "{typ}");
        }
    }
}
