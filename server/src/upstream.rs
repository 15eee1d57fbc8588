//! Signing in through an upstream OpenID Connect provider, as a relying party
//! built on the `openidconnect` crate (`app::domain::upstream` holds what is
//! stored), and revoking the provider's tokens at logout (RFC 7009).
//!
//! * Discovery: each instance fetches `{issuer}/.well-known/openid-configuration`
//!   and the JWKS it names ([`Upstreams::metadata`]), keeps them
//!   [`DISCOVERY_TTL`], and fetches again at once when an ID token names a
//!   key the cached JWKS lacks (a rotation upstream).
//! * `POST /signin/upstream/{id}` ([`start`]): code flow with PKCE S256, a
//!   random `state` and `nonce`, kept in this browser's server-side session
//!   (one pending sign-in at a time; taken out at the callback, so a replayed
//!   `state` finds nothing).
//! * `GET /signin/upstream/callback` ([`callback`], the redirect URI to
//!   register upstream: [`redirect_uri`]): the code is exchanged with the PKCE
//!   verifier and the ID token verified by the crate (signature against the
//!   JWKS, `iss`, `aud`, `exp`, `nonce`); then `upstream::sign_in` links or
//!   creates the local user and starts the sign-in with the session id
//!   renewed. Every failure ends on the sign-in page with a plain message and
//!   no session; it is audited `login_failed` with the reason.
//! * Revocation at logout ([`revoke`]): called by the outbox worker for each
//!   due row: the refresh token, then the access token, each POSTed to the
//!   revocation endpoint (the provider's override, else discovery's) with the
//!   client authentication the provider announces.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::{
    domain::{
        audit::{AuditEvent, AuditKind},
        keys::MasterKey,
        login_sessions::SESSION_KEY,
        throttle,
        upstream::{self, Attempt, Provider, Revocation, SignInRefused, UpstreamSignIn},
    },
    paths,
};
use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    Form,
};
use openidconnect::{
    core::{
        CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
        CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
        CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType,
        CoreSubjectIdentifierType,
    },
    AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::{
    callers::Caller,
    state::AppState,
    web::{internal_error, safe_next, sign_in_url, throttled_url},
};

/// How long discovered metadata and the JWKS are used before fetching again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// How long one request to a provider may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Where a pending sign-in waits in the browser's session.
const PENDING_KEY: &str = "upstream_pending";
/// A pending sign-in older than this is refused at the callback (seconds).
const PENDING_FOR_SECS: i64 = 600;
/// Pending sign-ins kept per browser (tabs); the oldest goes first.
const MAX_PENDING: usize = 5;

/// Discovery fields the crate's core metadata does not model.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Extra {
    /// RFC 8414 §2 / RFC 7009.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// OpenID Connect RP-Initiated Logout 1.0 §2.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for Extra {}

/// A provider's discovery document with its JWKS.
pub type Metadata = ProviderMetadata<
    Extra,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The crate's client as built from discovery (authorization endpoint set,
/// token and userinfo endpoints as discovered).
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What each instance keeps of upstream providers: the key their secrets and
/// tokens are sealed with, one HTTP client (no redirects followed: the crate
/// asks for it, and a redirect must not carry a credential elsewhere), and
/// discovered metadata by provider.
#[derive(Clone)]
pub struct Upstreams {
    sealer: Arc<MasterKey>,
    http: reqwest::Client,
    discovered: Arc<Mutex<Discovered>>,
}

/// Discovered metadata by provider id, with when it was fetched.
type Discovered = HashMap<String, (Instant, Arc<Metadata>)>;

impl Upstreams {
    /// Everything derived from `master`; no provider is contacted yet.
    pub fn new(master: &MasterKey) -> Upstreams {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("Latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Upstreams {
            sealer: Arc::new(upstream::sealer(master)),
            http,
            discovered: Arc::default(),
        }
    }

    /// Where the sign-in page's provider buttons end (`csp::FormAction`):
    /// each provider's issuer and, once discovered, its authorization
    /// endpoint. Nothing is fetched; a database error leaves them out (the
    /// buttons then fail closed, blocked by the browser).
    pub async fn authorization_targets(&self, db: &app::domain::Db) -> Vec<String> {
        let providers = match upstream::list(db).await {
            Ok(providers) => providers,
            Err(e) => {
                tracing::warn!(error = %e, "listing upstream providers for the sign-in page failed");
                return Vec::new();
            }
        };
        let cache = self.discovered.lock().unwrap_or_else(|e| e.into_inner());
        let mut targets = Vec::new();
        for provider in providers {
            if let Some((_, metadata)) = cache.get(&provider.id) {
                targets.push(metadata.authorization_endpoint().url().to_string());
            }
            targets.push(provider.issuer);
        }
        targets
    }

    /// The key upstream secrets and tokens are encrypted under.
    pub fn sealer(&self) -> &MasterKey {
        &self.sealer
    }

    /// `provider`'s discovery document and JWKS: cached for [`DISCOVERY_TTL`];
    /// `fresh` fetches again now (a key the cache lacks). The document's
    /// `issuer` must equal the configured issuer exactly (the crate checks).
    pub async fn metadata(
        &self,
        provider: &Provider,
        fresh: bool,
    ) -> Result<Arc<Metadata>, String> {
        if !fresh {
            let cache = self.discovered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, metadata)) = cache.get(&provider.id) {
                if at.elapsed() < DISCOVERY_TTL && metadata.issuer().as_str() == provider.issuer {
                    return Ok(metadata.clone());
                }
            }
        }
        let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = Metadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| describe(&e))?;
        let metadata = Arc::new(metadata);
        self.discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(provider.id.clone(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }
}

/// The redirect URI to register at every provider: `{issuer}/signin/upstream/callback`.
pub fn redirect_uri(issuer: &str) -> String {
    format!(
        "{}{}",
        issuer.trim_end_matches('/'),
        paths::UPSTREAM_CALLBACK
    )
}

/// An error and its causes in one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The client authentication a provider takes at `methods` (its
/// `…_auth_methods_supported`): `client_secret_basic` unless only
/// `client_secret_post` is announced (absent: basic, RFC 8414 §2's default).
fn uses_basic(methods: Option<&[String]>) -> bool {
    match methods {
        Some(m) if !m.is_empty() => {
            m.iter().any(|m| m == "client_secret_basic")
                || !m.iter().any(|m| m == "client_secret_post")
        }
        _ => true,
    }
}

fn relying_party(
    metadata: &Metadata,
    provider: &Provider,
    secret: String,
    issuer: &str,
) -> Result<Rp, String> {
    let token_methods: Option<Vec<String>> = metadata
        .token_endpoint_auth_methods_supported()
        .map(|m| m.iter().map(|m| m.as_ref().to_owned()).collect());
    let auth = if uses_basic(token_methods.as_deref()) {
        AuthType::BasicAuth
    } else {
        AuthType::RequestBody
    };
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri(issuer)).map_err(|e| e.to_string())?)
    .set_auth_type(auth))
}

/// A sign-in on its way through the provider, in the browser's session.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    provider_id: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    next: String,
    /// Unix seconds.
    started_at: i64,
}

#[derive(Debug, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    next: String,
}

/// `POST /signin/upstream/{id}`: sends the browser to the provider's
/// authorization endpoint (303). Unknown provider or discovery failing →
/// the sign-in page with a message.
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    Caller(from): Caller,
    Path(id): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let back = |code: &str| Redirect::to(&sign_in_url(&next, Some((code, "")))).into_response();
    // An address locked by sign-in throttling starts nothing here either.
    let address = [throttle::Key::Ip(&from.ip)];
    match throttle::locked_until(&state.db, &state.config.throttle, &address).await {
        Ok(None) => {}
        Ok(Some(until)) => return Redirect::to(&throttled_url(&next, "", until)).into_response(),
        Err(e) => return internal_error("reading the sign-in throttle", &e),
    }
    let provider = match upstream::find(&state.db, &id).await {
        Ok(Some(p)) if p.id == id => p,
        Ok(_) => return back("upstream_unknown"),
        Err(e) => return internal_error("finding an upstream provider", &e),
    };
    let client = match client_for(&state, &provider, false).await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(provider = %provider.name, error = %e, "upstream provider unavailable");
            return back("upstream_unavailable");
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &provider.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let pending = Pending {
        provider_id: provider.id.clone(),
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        next,
        started_at: app::domain::store::now(),
    };
    // A few at a time (two tabs, a retry): each callback takes out its own.
    let mut all: Vec<Pending> = match session.get(PENDING_KEY).await {
        Ok(all) => all.unwrap_or_default(),
        Err(e) => return internal_error("reading the pending upstream sign-ins", &e),
    };
    let at = app::domain::store::now();
    all.retain(|p| at - p.started_at <= PENDING_FOR_SECS);
    if all.len() >= MAX_PENDING {
        all.remove(0);
    }
    all.push(pending);
    if let Err(e) = session.insert(PENDING_KEY, all).await {
        return internal_error("storing the pending upstream sign-in", &e);
    }
    Redirect::to(url.as_str()).into_response()
}

/// The crate's client for `provider`, from (cached or `fresh`) discovery.
async fn client_for(state: &AppState, provider: &Provider, fresh: bool) -> Result<Rp, String> {
    let metadata = state.upstreams.metadata(provider, fresh).await?;
    let secret = upstream::client_secret(&state.db, state.upstreams.sealer(), &provider.id)
        .await
        .map_err(|e| e.to_string())?;
    relying_party(&metadata, provider, secret, &state.config.issuer)
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /signin/upstream/callback`: finishes a sign-in the provider answered.
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    Caller(from): Caller,
    Query(query): Query<CallbackQuery>,
) -> Response {
    // The pending sign-in this `state` names is taken out whatever happens
    // next (a state is good for one callback); the others stay.
    let mut all: Vec<Pending> = match session.get(PENDING_KEY).await {
        Ok(all) => all.unwrap_or_default(),
        Err(e) => return internal_error("reading the pending upstream sign-ins", &e),
    };
    let got = query.state.as_deref().unwrap_or_default().as_bytes();
    let at = app::domain::store::now();
    let matching = all.iter().position(|p| {
        bool::from(subtle::ConstantTimeEq::ct_eq(p.state.as_bytes(), got))
            && at - p.started_at <= PENDING_FOR_SECS
    });
    let pending = matching.map(|i| all.remove(i));
    if pending.is_some() {
        if let Err(e) = session.insert(PENDING_KEY, &all).await {
            return internal_error("storing the pending upstream sign-ins", &e);
        }
    }
    let fail = |code: &'static str, next: &str, why: String, provider: Option<&Provider>| {
        let state = state.clone();
        let from = from.clone();
        let next = next.to_owned();
        let provider = provider.map(|p| (p.id.clone(), p.name.clone()));
        async move {
            tracing::warn!(reason = %why, "upstream sign-in refused");
            let event = AuditEvent::new(AuditKind::LoginFailed)
                .ip(&from.ip)
                .detail(serde_json::json!({
                    "upstream": provider.map(|(id, name)| serde_json::json!({ "provider_id": id, "name": name })),
                    "reason": code,
                    "detail": why,
                }));
            if let Err(e) = app::domain::audit::record(&state.db, &event).await {
                tracing::warn!(error = %e, "could not audit a failed upstream sign-in");
            }
            // An ID token that does not verify counts against the address
            // like a wrong password. Nothing else does: a missing or wrong
            // `state` has nothing to guess (and any site can make a browser
            // GET this URL), a person may cancel at the provider, and the
            // provider being down is nobody's attack.
            if code == "upstream_invalid" {
                let keys = [throttle::Key::Ip(&from.ip)];
                match throttle::attempt(&state.db, &state.config.throttle, &keys, &from.ip).await {
                    Ok(throttle::Attempt::Locked(until) | throttle::Attempt::Go(Some(until))) => {
                        return Redirect::to(&throttled_url(&next, "", until)).into_response()
                    }
                    Ok(throttle::Attempt::Go(None)) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not count a failed upstream sign-in")
                    }
                }
            }
            Redirect::to(&sign_in_url(&next, Some((code, "")))).into_response()
        }
    };
    let pending =
        match pending {
            Some(p) => p,
            None => return fail(
                "upstream_expired",
                paths::HOME,
                "no pending sign-in in this browser with that state (replayed, expired or forged)"
                    .into(),
                None,
            )
            .await,
        };
    let next = pending.next.clone();
    // Not removed meanwhile: a removed provider signs nobody in.
    let provider = match upstream::find(&state.db, &pending.provider_id).await {
        Ok(Some(p)) if p.id == pending.provider_id => p,
        Ok(_) => return fail("upstream_unknown", &next, "provider removed".into(), None).await,
        Err(e) => return internal_error("finding an upstream provider", &e),
    };
    if let Some(error) = &query.error {
        let code = if error == "access_denied" {
            "upstream_denied"
        } else {
            "upstream_failed"
        };
        let why = format!("the provider answered error={error}");
        return fail(code, &next, why, Some(&provider)).await;
    }
    let Some(code) = query.code.clone() else {
        return fail(
            "upstream_failed",
            &next,
            "no code in the callback".into(),
            Some(&provider),
        )
        .await;
    };
    let signed_in = match exchange(&state, &provider, &pending, code).await {
        Ok(s) => s,
        Err(Refused::Unavailable(why)) => {
            return fail("upstream_unavailable", &next, why, Some(&provider)).await
        }
        Err(Refused::Invalid(why)) => {
            return fail("upstream_invalid", &next, why, Some(&provider)).await
        }
    };
    let (sid, user) = match upstream::sign_in(
        &state.db,
        state.upstreams.sealer(),
        &provider,
        &signed_in,
        &from,
    )
    .await
    {
        Ok(done) => done,
        Err(SignInRefused::Disabled) => {
            return fail(
                "upstream_disabled",
                &next,
                "the linked local user is disabled".into(),
                Some(&provider),
            )
            .await
        }
        Err(SignInRefused::Failed(e)) => {
            return internal_error("signing in through an upstream provider", &e)
        }
    };
    // The sign-in this browser held before ends (its upstream tokens with it).
    if let Err(e) = crate::web::end_replaced_sign_in(&state, &session, &from).await {
        return internal_error("ending the sign-in this browser held", &e);
    }
    // A new session id at every sign-in: a planted cookie never becomes a signed-in one.
    if let Err(e) = session.cycle_id().await {
        return internal_error("renewing the session id", &e);
    }
    if let Err(e) = session.insert(SESSION_KEY, sid).await {
        return internal_error("storing the sign-in in the session", &e);
    }
    tracing::info!(user = %user.username, provider = %provider.name, "signed in through an upstream provider");
    Redirect::to(&next).into_response()
}

/// Why [`exchange`] signed nobody in.
enum Refused {
    /// The provider could not be asked or answered with an error: not the
    /// caller's doing.
    Unavailable(String),
    /// The answer does not verify (the ID token's signature, `iss`, `aud`,
    /// `exp` or `nonce`, or no ID token).
    Invalid(String),
}

/// The code exchange and ID token verification (the crate: signature, `iss`,
/// `aud`, `exp`, `nonce`), once more with freshly discovered keys when the
/// token names a key the cached JWKS lacks.
async fn exchange(
    state: &AppState,
    provider: &Provider,
    pending: &Pending,
    code: String,
) -> Result<UpstreamSignIn, Refused> {
    let client = client_for(state, provider, false)
        .await
        .map_err(Refused::Unavailable)?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| Refused::Unavailable(describe(&e)))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&state.upstreams.http)
        .await
        .map_err(|e| Refused::Unavailable(format!("the code exchange failed: {}", describe(&e))))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| Refused::Invalid("the token response has no ID token".into()))?;
    let nonce = Nonce::new(pending.nonce.clone());
    let invalid = |e: ClaimsVerificationError| {
        Refused::Invalid(format!("the ID token is not valid: {}", describe(&e)))
    };
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(claims) => claims.clone(),
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let client = client_for(state, provider, true)
                .await
                .map_err(Refused::Unavailable)?;
            let verifier = client.id_token_verifier();
            let claims = id_token.claims(&verifier, &nonce).map_err(invalid)?.clone();
            claims
        }
        Err(e) => return Err(invalid(e)),
    };
    let username_hint = claims
        .preferred_username()
        .map(|u| u.as_str().to_owned())
        .or_else(|| claims.email().map(|e| e.as_str().to_owned()));
    Ok(UpstreamSignIn {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        username_hint,
        refresh_token: tokens.refresh_token().map(|t| t.secret().clone()),
        access_token: Some(tokens.access_token().secret().clone()),
        id_token: Some(id_token.to_string()),
    })
}

/// Where a provider ends its own browser session (RP-Initiated Logout 1.0
/// §2): its `end_session_endpoint` with `id_token_hint`, `client_id` and
/// `post_logout_redirect_uri` = `{issuer}/signin` (register it upstream).
/// `None` when discovery names no such endpoint.
pub async fn end_session_url(
    state: &AppState,
    provider: &Provider,
    id_token: Option<&str>,
) -> Option<String> {
    let metadata = state.upstreams.metadata(provider, false).await.ok()?;
    let endpoint = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()?;
    let mut url = url::Url::parse(&endpoint).ok()?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(hint) = id_token {
            query.append_pair("id_token_hint", hint);
        }
        query.append_pair("client_id", &provider.client_id);
        query.append_pair(
            "post_logout_redirect_uri",
            &format!(
                "{}{}",
                state.config.issuer.trim_end_matches('/'),
                paths::SIGN_IN
            ),
        );
    }
    Some(url.into())
}

// ---------------------------------------------------------------------------
// RFC 7009 revocation at logout, for the outbox worker
// ---------------------------------------------------------------------------

/// Revokes one sign-in's upstream tokens: the refresh token (which must be
/// accepted: 200), then the access token (200, or RFC 7009 §2.2.1
/// `unsupported_token_type` from a provider that revokes only refresh
/// tokens). Client authentication as the provider announces for its
/// revocation (else token) endpoint.
pub async fn revoke(db: &app::domain::Db, upstreams: &Upstreams, r: &Revocation) -> Attempt {
    let provider = match upstream::find_any(db, &r.provider_id).await {
        Ok(Some(p)) => p,
        Ok(None) => return Attempt::Failed("the provider no longer exists".into()),
        Err(e) => return Attempt::Failed(format!("reading the provider failed: {e}")),
    };
    let metadata = match upstreams.metadata(&provider, false).await {
        Ok(m) => Some(m),
        // With an override the endpoint is known without discovery.
        Err(e) if provider.revocation_endpoint.is_none() => {
            return Attempt::Failed(format!("discovery failed: {e}"))
        }
        Err(_) => None,
    };
    let extra = metadata.as_ref().map(|m| m.additional_metadata());
    let Some(endpoint) = provider
        .revocation_endpoint
        .clone()
        .or_else(|| extra.and_then(|e| e.revocation_endpoint.clone()))
    else {
        return Attempt::Failed(
            "the provider announces no revocation_endpoint; set one on the provider".into(),
        );
    };
    let methods: Option<Vec<String>> = extra
        .and_then(|e| e.revocation_endpoint_auth_methods_supported.clone())
        .or_else(|| {
            metadata.as_ref().and_then(|m| {
                m.token_endpoint_auth_methods_supported()
                    .map(|v| v.iter().map(|m| m.as_ref().to_owned()).collect())
            })
        });
    let secret = match upstream::client_secret(db, upstreams.sealer(), &provider.id).await {
        Ok(s) => s,
        Err(e) => return Attempt::Failed(format!("the client secret cannot be read: {e}")),
    };
    if r.refresh_token.is_none() && r.access_token.is_none() {
        // Rows become due only with a token stored: it no longer decrypts.
        return Attempt::Failed(
            "the stored tokens cannot be decrypted (was the master key replaced?)".into(),
        );
    }
    let basic = uses_basic(methods.as_deref());
    for (token, hint) in [
        (&r.refresh_token, "refresh_token"),
        (&r.access_token, "access_token"),
    ] {
        let Some(token) = token else { continue };
        let mut form: Vec<(&str, &str)> =
            vec![(provider.token_param(), token), ("token_type_hint", hint)];
        for (name, value) in &provider.revocation_extra_params {
            form.push((name, value));
        }
        let mut request = upstreams.http.post(&endpoint);
        if basic {
            // RFC 6749 §2.3.1: each part form-urlencoded first.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(&provider.client_id), Some(enc(&secret)));
        } else {
            form.push(("client_id", &provider.client_id));
            form.push(("client_secret", &secret));
        }
        let answer = request.form(&form).send().await;
        match answer {
            Ok(res) if res.status().is_success() => {}
            Ok(res) => {
                let status = res.status();
                let error = oauth_error_code(&res.text().await.unwrap_or_default());
                if hint == "access_token"
                    && status.as_u16() == 400
                    && error.as_deref() == Some("unsupported_token_type")
                {
                    continue;
                }
                let error = error.map(|e| format!(" {e}")).unwrap_or_default();
                return Attempt::Failed(format!("{hint}: HTTP {status}{error}"));
            }
            Err(e) => return Attempt::Failed(format!("{hint}: {}", describe(&e.without_url()))),
        }
    }
    Attempt::Delivered
}

/// The RFC 6749 §5.2 `error` code of an error answer, if it is one: only that
/// is kept (an error page could repeat the token it was sent).
fn oauth_error_code(body: &str) -> Option<String> {
    let error = serde_json::from_str::<serde_json::Value>(body).ok()?["error"]
        .as_str()?
        .to_owned();
    let printable =
        !error.is_empty() && error.len() <= 64 && error.bytes().all(|b| b.is_ascii_graphic());
    printable.then_some(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_unless_only_post_is_announced() {
        assert!(uses_basic(None));
        assert!(uses_basic(Some(&[])));
        assert!(uses_basic(Some(&[
            "client_secret_basic".into(),
            "client_secret_post".into()
        ])));
        assert!(!uses_basic(Some(&["client_secret_post".into()])));
        assert!(uses_basic(Some(&["private_key_jwt".into()])));
    }

    #[test]
    fn only_an_oauth_error_code_is_kept_of_an_error_answer() {
        assert_eq!(
            oauth_error_code(r#"{"error":"invalid_client","error_description":"token abc"}"#)
                .as_deref(),
            Some("invalid_client")
        );
        assert_eq!(oauth_error_code("<html>token abc was refused</html>"), None);
        assert_eq!(oauth_error_code(r#"{"error":"has spaces in it"}"#), None);
    }

    #[test]
    fn the_redirect_uri_is_under_the_issuer() {
        assert_eq!(
            redirect_uri("https://id.example/"),
            "https://id.example/signin/upstream/callback"
        );
    }
}
