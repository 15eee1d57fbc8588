//! `GET /oauth/authorize` (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2) and
//! `POST /oauth/authorize`, the answer of the consent page.
//!
//! Order of checks: the client and its exact redirect URI first — until both
//! are known good, errors are shown on a page and never redirected (§4.1.2.1).
//! After that every error goes back to the app with `error`, `state` and `iss`
//! (RFC 9207). Then the sign-in (the sign-in page, and back here), then
//! consent: asked only for scopes the user's grant does not cover yet. The
//! request waiting for consent is kept in the browser session, under an id the
//! consent form posts back; the form post passes the cross-site check.

use app::domain::{
    clients::{self, Client, ClientKind, GrantType},
    codes::{self, NewCode},
    grants::{self, ConsentAnswer, Grant},
    scopes::{self, Catalogue},
    secrets::new_id,
    store::now,
    DomainError,
};
use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tower_sessions::Session;

use super::error::ErrorCode;
use crate::{
    callers::Browser,
    pages::{self, Consent},
    state::AppState,
    web,
};

/// Where requests waiting for consent are kept in the browser session.
const PENDING_KEY: &str = "pending_authorizations";
/// A consent page must be answered within this many seconds.
const PENDING_TTL: i64 = 600;
/// At most this many requests wait per browser (the oldest goes first).
const MAX_PENDING: usize = 5;

/// A validated authorization request, waiting for the user.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    id: String,
    created_at: i64,
    user_id: String,
    login_session_id: String,
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scopes: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// The live grant the consent page was computed against (it asked only
    /// for what this grant did not cover): the answer counts only while this
    /// is still the live grant.
    grant_id: Option<String>,
}

/// Query parameters, each name with every value it was given.
struct Query(HashMap<String, Vec<String>>);

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Query(map)
    }

    /// The value of a parameter given once; `Err` when repeated (RFC 6749 §3.1).
    /// Empty values count as absent.
    fn one(&self, name: &str) -> Result<Option<&str>, String> {
        match self.0.get(name).map(Vec::as_slice) {
            None => Ok(None),
            Some([v]) => Ok(Some(v.as_str()).filter(|v| !v.is_empty())),
            Some(_) => Err(format!("parameter {name:?} is repeated")),
        }
    }

    fn repeated(&self) -> Option<String> {
        self.0
            .iter()
            .find(|(_, v)| v.len() > 1)
            .map(|(k, _)| format!("parameter {k:?} is repeated"))
    }
}

/// Sends the browser back to the app with `params`, `state` and `iss`.
fn back_to_app(
    state: &AppState,
    redirect_uri: &str,
    app_state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "This app's return address is not valid",
            "The app's registered redirect URI cannot be used.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
        if let Some(s) = app_state {
            query.append_pair("state", s);
        }
        query.append_pair("iss", &state.config.issuer);
    }
    Redirect::to(url.as_str()).into_response()
}

fn error_to_app(
    state: &AppState,
    redirect_uri: &str,
    app_state: Option<&str>,
    error: ErrorCode,
    description: &str,
) -> Response {
    back_to_app(
        state,
        redirect_uri,
        app_state,
        &[
            ("error", error.as_str()),
            ("error_description", description),
        ],
    )
}

pub async fn authorize(
    State(state): State<AppState>,
    browser: Browser,
    RawQuery(raw): RawQuery,
) -> Response {
    let query = Query::parse(raw.as_deref());
    // 1. The client and its redirect URI: errors stay on this site.
    let client_id = match query.one("client_id") {
        Ok(Some(id)) => id,
        Ok(None) => return bad_page("The request names no app (client_id is missing)."),
        Err(e) => return bad_page(&e),
    };
    let client = match clients::find_client(&state.db, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return bad_page("The app that sent you here is not registered with Latchkey."),
        Err(e) => return web::internal_error("loading a client", &e),
    };
    let redirect_uri = match query.one("redirect_uri") {
        Ok(Some(uri)) if clients::redirect_uri_matches(&client.redirect_uris, uri) => {
            uri.to_owned()
        }
        Ok(Some(_)) => {
            return bad_page(
                "The app asked to send you back to an address it has not registered, so Latchkey stopped here.",
            )
        }
        Ok(None) => return bad_page("The request has no return address (redirect_uri is missing)."),
        Err(e) => return bad_page(&e),
    };
    let app_state = query.one("state").ok().flatten().map(str::to_owned);
    let to_app = |error: ErrorCode, description: &str| {
        error_to_app(
            &state,
            &redirect_uri,
            app_state.as_deref(),
            error,
            description,
        )
    };

    // 2. The request itself: errors go back to the app.
    let catalogue = match scopes::catalogue(&state.db).await {
        Ok(c) => c,
        Err(e) => return web::internal_error("reading the scope catalogue", &e),
    };
    let request = match validate(&query, &client, &catalogue) {
        Ok(r) => r,
        Err((error, description)) => return to_app(error, &description),
    };
    let prompt = |value: &str| request.prompt.split(' ').any(|p| p == value);
    let (prompt_none, prompt_consent) = (prompt("none"), prompt("consent"));

    // 3. The sign-in.
    let signed_in = match browser.signed_in(&state).await {
        Ok(Some(s)) => s,
        Ok(None) if prompt_none => {
            return to_app(ErrorCode::LoginRequired, "the user is not signed in")
        }
        Ok(None) => {
            let here = format!("{}?{}", super::AUTHORIZE, raw.unwrap_or_default());
            return Redirect::to(&web::sign_in_url(&here, None)).into_response();
        }
        Err(page) => return page,
    };
    let session = browser.session;

    // 4. Consent: only what the live grant does not cover yet.
    let grant = match grants::live_grant(&state.db, &signed_in.user.id, &client.client_id).await {
        Ok(g) => g,
        Err(e) => return web::internal_error("loading the grant", &e),
    };
    let pending = Pending {
        id: new_id(),
        created_at: now(),
        user_id: signed_in.user.id.clone(),
        login_session_id: signed_in.login_session_id.clone(),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        state: app_state.clone(),
        scopes: request.scopes,
        nonce: request.nonce,
        code_challenge: request.code_challenge,
        grant_id: grant.as_ref().map(|g| g.id.clone()),
    };
    let mut missing: Vec<String> = Grant::missing(grant.as_ref(), &pending.scopes)
        .into_iter()
        .cloned()
        .collect();
    match (&grant, missing.is_empty(), prompt_consent) {
        (Some(grant), true, false) => return issue_code(&state, &pending, &grant.id).await,
        // prompt=consent: ask again for everything requested.
        (_, true, true) => missing = pending.scopes.clone(),
        _ => {}
    }
    if prompt_none {
        return to_app(
            ErrorCode::ConsentRequired,
            "the user has not allowed this yet",
        );
    }
    if let Err(e) = remember(&session, pending.clone()).await {
        return web::internal_error("storing the authorization request", &e);
    }
    let redirect_host = url::Url::parse(&redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| redirect_uri.clone());
    let app = client.metadata.identity(&client.name);
    let mut page = pages::consent_page(&Consent {
        request_id: &pending.id,
        app: &app,
        username: &signed_in.user.username,
        asked: catalogue.describe_all(&missing),
        already: pending
            .scopes
            .iter()
            .filter(|s| !missing.contains(s))
            .cloned()
            .collect(),
        redirect_host: &redirect_host,
    });
    // The answer ends at the app's redirect URI (`csp`).
    page.extensions_mut()
        .insert(crate::csp::FormAction::of([redirect_uri.as_str()]));
    page
}

/// A consent answer that no longer counts: answered already, waited too long,
/// or what it was asked under changed (the app revoked, the sign-in ended).
fn expired_request_page() -> Response {
    pages::error_page(
        StatusCode::BAD_REQUEST,
        "This request has expired",
        "The question was already answered, waited too long, or your access to this app changed since. Start again from the app.",
    )
}

fn bad_page(detail: &str) -> Response {
    pages::error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request cannot be used",
        detail,
    )
}

struct Validated {
    scopes: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    prompt: String,
}

/// RFC 6749 §4.1.1, RFC 7636 §4.3 and OpenID Connect Core §3.1.2.1, for a known
/// client with a good redirect URI. `Err((error, description))` goes back to the app.
///
/// A scope must be one the client is registered for and, for a person to
/// grant it, built in or in the scope catalogue now (`scopes`).
fn validate(
    query: &Query,
    client: &Client,
    catalogue: &Catalogue,
) -> Result<Validated, (ErrorCode, String)> {
    let invalid = |d: String| (ErrorCode::InvalidRequest, d);
    if let Some(e) = query.repeated() {
        return Err(invalid(e));
    }
    let get = |name: &str| query.one(name).ok().flatten();
    match get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err((
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other:?} is not supported; use \"code\""),
            ))
        }
        None => return Err(invalid("response_type is missing".into())),
    }
    if get("response_mode").is_some_and(|m| m != "query") {
        return Err(invalid("only response_mode=query is supported".into()));
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err((
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code flow".into(),
        ));
    }
    if get("request").is_some() || get("request_uri").is_some() {
        return Err((
            ErrorCode::RequestNotSupported,
            "request objects are not supported".into(),
        ));
    }
    let scopes = grants::split_scopes(get("scope").unwrap_or("openid"));
    let allowed = grants::allowed_scopes(client);
    if let Some(bad) = scopes
        .iter()
        .find(|s| !allowed.contains(s) || !catalogue.offers(s))
    {
        return Err((
            ErrorCode::InvalidScope,
            format!("scope {bad:?} is not available to this client"),
        ));
    }
    if scopes.is_empty() {
        return Err((ErrorCode::InvalidScope, "no scope requested".into()));
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) if client.kind == ClientKind::Public => return Err(invalid(
            "PKCE is required for this app: send code_challenge with code_challenge_method=S256"
                .into(),
        )),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "code_challenge_method was sent without a code_challenge".into(),
            ))
        }
        (Some(_), None | Some("plain")) => {
            return Err(invalid(
                "only code_challenge_method=S256 is supported (plain is not)".into(),
            ))
        }
        (Some(_), Some(m)) if m != "S256" => {
            return Err(invalid(format!(
                "code_challenge_method {m:?} is not supported; use S256"
            )))
        }
        (Some(c), Some(_)) if !grants::valid_code_challenge(c) => {
            return Err(invalid(
                "code_challenge must be 43 base64url characters (an S256 hash)".into(),
            ))
        }
        (Some(c), Some(_)) => Some(c.to_owned()),
    };
    let nonce = get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(invalid("nonce is longer than 512 characters".into()));
    }
    Ok(Validated {
        scopes,
        nonce,
        code_challenge,
        prompt: get("prompt").unwrap_or_default().to_owned(),
    })
}

async fn remember(
    session: &Session,
    pending: Pending,
) -> Result<(), tower_sessions::session::Error> {
    let mut all: Vec<Pending> = session.get(PENDING_KEY).await?.unwrap_or_default();
    let at = now();
    all.retain(|p| at - p.created_at < PENDING_TTL);
    if all.len() >= MAX_PENDING {
        all.remove(0);
    }
    all.push(pending);
    session.insert(PENDING_KEY, all).await
}

/// Takes the waiting request `id` out of the session (it can be answered once).
async fn take(
    session: &Session,
    id: &str,
) -> Result<Option<Pending>, tower_sessions::session::Error> {
    let mut all: Vec<Pending> = session.get(PENDING_KEY).await?.unwrap_or_default();
    let found = all.iter().position(|p| p.id == id).map(|i| all.remove(i));
    session.insert(PENDING_KEY, all).await?;
    Ok(found.filter(|p| now() - p.created_at < PENDING_TTL))
}

async fn issue_code(state: &AppState, p: &Pending, grant_id: &str) -> Response {
    let scopes = p.scopes.join(" ");
    let new = NewCode {
        client_id: &p.client_id,
        user_id: &p.user_id,
        grant_id,
        login_session_id: &p.login_session_id,
        redirect_uri: &p.redirect_uri,
        code_challenge: p.code_challenge.as_deref(),
        scopes: &scopes,
        nonce: p.nonce.as_deref(),
    };
    match codes::issue_code(&state.db, &new).await {
        Ok(code) => back_to_app(
            state,
            &p.redirect_uri,
            p.state.as_deref(),
            &[("code", &code)],
        ),
        // The sign-in or the grant ended while the request was answered.
        Err(DomainError::Conflict(why)) => error_to_app(
            state,
            &p.redirect_uri,
            p.state.as_deref(),
            ErrorCode::AccessDenied,
            &why,
        ),
        Err(e) => {
            tracing::error!(error = %e, "issuing an authorization code failed");
            error_to_app(
                state,
                &p.redirect_uri,
                p.state.as_deref(),
                ErrorCode::TemporarilyUnavailable,
                "the server could not complete the request; try again",
            )
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    decision: String,
}

/// `POST /oauth/authorize`: the user's answer on the consent page.
pub async fn decide(
    State(state): State<AppState>,
    browser: Browser,
    Form(form): Form<Decision>,
) -> Response {
    let signed_in = match browser.signed_in(&state).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "You are no longer signed in",
                "Your sign-in ended before you answered. Start again from the app.",
            )
        }
        Err(page) => return page,
    };
    let Browser { session, from } = browser;
    let pending = match take(&session, &form.request_id).await {
        Ok(Some(p))
            if p.user_id == signed_in.user.id
                && p.login_session_id == signed_in.login_session_id =>
        {
            p
        }
        Ok(_) => return expired_request_page(),
        Err(e) => return web::internal_error("loading the authorization request", &e),
    };
    match form.decision.as_str() {
        "allow" => {
            let answer = ConsentAnswer {
                user_id: &pending.user_id,
                login_session_id: &pending.login_session_id,
                client_id: &pending.client_id,
                scopes: &pending.scopes,
                asked_against: pending.grant_id.as_deref(),
            };
            match grants::consent(&state.db, &answer, &from).await {
                Ok(grant) => issue_code(&state, &pending, &grant.id).await,
                Err(DomainError::Conflict(_)) => expired_request_page(),
                Err(e) => web::internal_error("recording consent", &e),
            }
        }
        "deny" => error_to_app(
            &state,
            &pending.redirect_uri,
            pending.state.as_deref(),
            ErrorCode::AccessDenied,
            "the user denied the request",
        ),
        _ => pages::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown answer",
            "Choose Allow or Deny.",
        ),
    }
}
