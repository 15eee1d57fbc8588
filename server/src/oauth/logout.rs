//! `/oauth/logout`: OpenID Connect RP-Initiated Logout 1.0, the
//! `end_session_endpoint`. Logging out ends the sign-in session and revokes
//! every token family issued under it for clients whose revoke-on-logout is
//! on (the default); client_credentials tokens are untouched.
//!
//! Only the browser's own sign-in is ended here, and only by its person:
//! * a valid `id_token_hint` (expired hints are accepted, §2) naming this
//!   browser's sign-in (`sub` and `sid`) ends it at once;
//! * otherwise the person confirms on a page whose form carries a one-time
//!   token kept in the session, so another site cannot sign people out by
//!   linking here; after confirming, the sign-in a hint names ends too when it
//!   is the same person's;
//! * with no sign-in in this browser nothing ends, whatever the hint says: a
//!   replayed hint must not sign anyone out (§6). Apps revoke their tokens
//!   server to server with RFC 7009.
//!
//! GET and POST (§2: both must work, POST possibly cross-site) behave the
//! same. `post_logout_redirect_uri` is followed only when registered exactly
//! for the client; otherwise the signed-out page is shown.

use std::collections::HashMap;

use app::domain::{
    clients::{self, Client},
    login_sessions::{self, SignedIn},
    secrets::{new_secret, secret_matches, sha256_hex},
};
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;
use tower_sessions::Session;

use crate::{callers::Browser, pages, state::AppState, web};

/// Session key of the confirmation token's hash.
const CONFIRM_KEY: &str = "logout_confirm";

pub async fn logout_get(
    State(state): State<AppState>,
    browser: Browser,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    logout(state, browser, params).await
}

pub async fn logout_post(
    State(state): State<AppState>,
    browser: Browser,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    logout(state, browser, params).await
}

/// The subset of ID-token claims a hint is read for.
#[derive(Deserialize)]
struct Hint {
    sub: String,
    aud: String,
    sid: Option<String>,
}

async fn logout(state: AppState, browser: Browser, params: HashMap<String, String>) -> Response {
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let hint = match get("id_token_hint") {
        Some(token) => match state
            .keys
            .verify_id_token_hint::<Hint>(token, &state.config.issuer)
        {
            Ok(hint) => Some(hint),
            Err(e) => {
                tracing::info!(error = %e, "logout: id_token_hint refused");
                return pages::error_page(
                    StatusCode::BAD_REQUEST,
                    "This sign-out request cannot be used",
                    "The app sent an ID token Latchkey did not issue or cannot read.",
                );
            }
        },
        None => None,
    };
    let client_id = match (get("client_id"), hint.as_ref().map(|h| h.aud.as_str())) {
        (Some(a), Some(b)) if a != b => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-out request cannot be used",
                "client_id does not match the ID token the app sent.",
            )
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let client: Option<Client> = match &client_id {
        Some(id) => match clients::find_client(&state.db, id).await {
            Ok(c) => c,
            Err(e) => return web::internal_error("loading a client", &e),
        },
        None => None,
    };
    // Where to go afterwards: only an exact registered match, else nowhere.
    let back_to = get("post_logout_redirect_uri").and_then(|uri| {
        client
            .as_ref()
            .filter(|c| clients::redirect_uri_matches(&c.post_logout_redirect_uris, uri))
            .map(|_| uri.to_owned())
    });

    let signed_in = match browser.signed_in(&state).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let Browser { session, from } = browser;
    // Nobody is signed in in this browser: nothing ends. A hint alone never
    // signs anyone out: hints are accepted expired and leak through logged
    // URLs, so a replayed one would be a denial of service (§6). Apps end
    // their tokens server to server with RFC 7009 revocation instead.
    let Some(browser) = signed_in else {
        return finish(back_to, get("state"), 0);
    };
    // §2: the person is asked unless the hint names this browser's own sign-in.
    let hint_is_this_sign_in = hint.as_ref().is_some_and(|h| {
        h.sub == browser.user.id && h.sid.as_deref() == Some(&browser.login_session_id)
    });
    if !hint_is_this_sign_in && !confirmed(&session, get("confirm")).await {
        return confirm_page(&session, &params, &browser, back_to.as_deref()).await;
    }
    let mut to_end = vec![browser.clone()];
    // Confirmed by its own person: the sign-in the hint names ends too (say,
    // the app's sign-in on this person's other device).
    let other_sid = hint
        .as_ref()
        .filter(|h| h.sub == browser.user.id)
        .and_then(|h| h.sid.as_deref())
        .filter(|sid| *sid != browser.login_session_id);
    if let Some(sid) = other_sid {
        match login_sessions::resolve(&state.db, sid, &from).await {
            Ok(Some(s)) if s.user.id == browser.user.id => to_end.push(s),
            Ok(_) => {}
            Err(e) => return web::internal_error("loading the sign-in", &e),
        }
    }

    let mut families = 0;
    for signed_in in &to_end {
        match login_sessions::end(&state.db, &state.revoked, signed_in, "rp_logout", &from).await {
            Ok(done) => families += done.families.len(),
            Err(e) => return web::internal_error("ending the sign-in session", &e),
        }
    }
    if let Err(e) = session.flush().await {
        return web::internal_error("deleting the browser session", &e);
    }
    finish(back_to, get("state"), families)
}

/// Back to the app's registered address (with `state`), or the signed-out page.
fn finish(back_to: Option<String>, app_state: Option<&str>, families: usize) -> Response {
    match back_to.and_then(|uri| url::Url::parse(&uri).ok()) {
        Some(mut url) => {
            if let Some(s) = app_state {
                url.query_pairs_mut().append_pair("state", s);
            }
            Redirect::to(url.as_str()).into_response()
        }
        None => pages::signed_out_page(families),
    }
}

/// Whether `confirm` is the one-time token this browser was shown (used up either way).
async fn confirmed(session: &Session, confirm: Option<&str>) -> bool {
    let stored: Option<String> = session.remove(CONFIRM_KEY).await.ok().flatten();
    matches!((confirm, stored), (Some(c), Some(hash)) if secret_matches(c, &hash))
}

/// Asks the signed-in user to confirm, carrying the request's parameters along.
async fn confirm_page(
    session: &Session,
    params: &HashMap<String, String>,
    signed_in: &SignedIn,
    back_to: Option<&str>,
) -> Response {
    let token = new_secret();
    if let Err(e) = session.insert(CONFIRM_KEY, sha256_hex(&token)).await {
        return web::internal_error("storing the sign-out confirmation", &e);
    }
    let carried: String = [
        "id_token_hint",
        "client_id",
        "post_logout_redirect_uri",
        "state",
    ]
    .iter()
    .filter_map(|name| params.get(*name).map(|v| (name, v)))
    .map(|(name, v)| {
        format!(
            r#"<input type="hidden" name="{name}" value="{}">"#,
            pages::escape(v)
        )
    })
    .collect();
    let mut page = pages::card(
        StatusCode::OK,
        "Sign out?",
        "Sign out of Latchkey?",
        "logout-confirm",
        &format!(
            r#"<p class="muted">Signed in as <strong>{user}</strong>. Signing out also ends the app sessions started from this sign-in.</p>
<form method="post" action="{action}">
<input type="hidden" name="confirm" value="{token}">
{carried}
<button type="submit" class="button primary wide">Sign out</button>
</form>
<p><a href="/">Stay signed in</a></p>"#,
            user = pages::escape(&signed_in.user.username),
            action = super::END_SESSION,
        ),
    );
    // Confirmed, the sign-out ends at the app's registered post-logout URI (`csp`).
    page.extensions_mut()
        .insert(crate::csp::FormAction::of(back_to));
    page
}
