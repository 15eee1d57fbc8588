//! Browser-facing handlers outside Leptos: the sign-in and sign-out form
//! posts, the cross-site request check, and small response helpers.

use app::{
    api::ssr::signed_in_from,
    domain::{
        login_sessions::{self, ClientInfo, SESSION_KEY},
        secrets::new_id,
        throttle, upstream, users,
    },
    paths,
};
use axum::{
    extract::{Request, State},
    http::{header, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    Form,
};
use serde::Deserialize;
use tower_sessions::Session;

use crate::{
    callers::{AdminPerson, Browser, Caller},
    request_headers,
    state::AppState,
};

/// A `next` target is only ever a path on this site (no open redirect).
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 2048
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local {
        next
    } else {
        paths::HOME
    }
}

/// `/signin?next=...` (and `&error=...`), percent-encoded.
pub fn sign_in_url(next: &str, error: Option<(&str, &str)>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some((code, username)) = error {
        query.append_pair("error", code);
        if !username.is_empty() {
            query.append_pair("username", username);
        }
    }
    query.append_pair("next", safe_next(next));
    format!("{}?{}", paths::SIGN_IN, query.finish())
}

/// The sign-in page saying "too many failed sign-ins, try again in N
/// minutes" (`?error=throttled&minutes=N`), until `until` (unix seconds).
pub fn throttled_url(next: &str, username: &str, until: i64) -> String {
    let url = sign_in_url(next, Some(("throttled", username)));
    let minutes = throttle::minutes_until(until);
    format!("{url}&minutes={minutes}")
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `POST /signin`: checks the credentials, renews the session id, starts a
/// sign-in session and goes to `next`. Any failure → back to the form with one
/// generic message, and no session is created. A username or address locked
/// by sign-in throttling is refused before the password is checked, the same
/// whether the username exists or not (`throttle`).
pub async fn sign_in(
    State(state): State<AppState>,
    session: Session,
    Caller(from): Caller,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let username: String = form.username.trim().chars().take(64).collect();
    if username.is_empty() || form.password.is_empty() {
        return Redirect::to(&sign_in_url(&next, Some(("missing", &username)))).into_response();
    }
    let keys = [
        throttle::Key::Username(&username),
        throttle::Key::Ip(&from.ip),
    ];
    // Counted before the password is checked (`throttle::attempt`).
    let locks_after =
        match throttle::attempt(&state.db, &state.config.throttle, &keys, &from.ip).await {
            Ok(throttle::Attempt::Go(locks_after)) => locks_after,
            Ok(throttle::Attempt::Locked(until)) => {
                return Redirect::to(&throttled_url(&next, &username, until)).into_response()
            }
            Err(e) => {
                // Fail closed: no password is checked while the attempt cannot be counted.
                tracing::error!(error = %e, "sign-in: counting the attempt failed");
                return Redirect::to(&sign_in_url(&next, Some(("unavailable", &username))))
                    .into_response();
            }
        };
    let user = match users::authenticate(&state.db, &username, &form.password).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            if let Err(e) = users::record_failed_login(&state.db, &username, &from.ip).await {
                tracing::warn!(error = %e, "could not audit a failed sign-in");
            }
            let to = match locks_after {
                Some(until) => throttled_url(&next, &username, until),
                None => sign_in_url(&next, Some(("invalid", &username))),
            };
            return Redirect::to(&to).into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in: database error");
            return Redirect::to(&sign_in_url(&next, Some(("unavailable", &username))))
                .into_response();
        }
    };
    if let Err(e) = throttle::succeeded(&state.db, &username, &from.ip).await {
        tracing::warn!(error = %e, "could not clear the sign-in failures of a username");
    }
    if let Err(e) = end_replaced_sign_in(&state, &session, &from).await {
        return internal_error("ending the sign-in this browser held", &e);
    }
    // A new session id at every sign-in: a planted cookie never becomes a signed-in one.
    if let Err(e) = session.cycle_id().await {
        return internal_error("renewing the session id", &e);
    }
    let login_session_id = match login_sessions::start(&state.db, &user, &from).await {
        Ok(id) => id,
        Err(e) => return internal_error("starting a sign-in session", &e),
    };
    if let Err(e) = session.insert(SESSION_KEY, login_session_id).await {
        return internal_error("storing the sign-in in the session", &e);
    }
    Redirect::to(&next).into_response()
}

/// Ends the sign-in this browser holds, if any, before a new one replaces it:
/// a sign-in no browser holds any more would never be signed out, and its
/// tokens (an upstream provider's refresh token among them) would outlive it.
pub async fn end_replaced_sign_in(
    state: &AppState,
    session: &Session,
    from: &ClientInfo,
) -> Result<(), app::domain::DomainError> {
    let held = signed_in_from(&state.db, session, from)
        .await
        .map_err(|e| app::domain::DomainError::Internal(e.to_string()))?;
    if let Some(signed_in) = held {
        login_sessions::end(
            &state.db,
            &state.revoked,
            &signed_in,
            "replaced by a new sign-in",
            from,
        )
        .await?;
    }
    Ok(())
}

/// `POST /signout`: ends the sign-in session and deletes the browser session.
pub async fn sign_out(State(state): State<AppState>, browser: Browser) -> Response {
    let signed_in = match browser.signed_in(&state).await {
        Ok(s) => s,
        Err(page) => return page,
    };
    let Browser { session, from } = browser;
    let mut upstream_session = None;
    if let Some(signed_in) = signed_in {
        // Read before the sign-in ends (its ID token is deleted then).
        upstream_session = upstream::end_session_hint(
            &state.db,
            state.upstreams.sealer(),
            &signed_in.login_session_id,
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading the upstream sign-in failed");
            None
        });
        if let Err(e) =
            login_sessions::end(&state.db, &state.revoked, &signed_in, "signed_out", &from).await
        {
            return internal_error("ending the sign-in session", &e);
        }
    }
    if let Err(e) = session.flush().await {
        return internal_error("deleting the browser session", &e);
    }
    let signed_out = format!("{}?signed_out=1", paths::SIGN_IN);
    if let Some((provider, id_token)) = upstream_session {
        if let Some(url) =
            crate::upstream::end_session_url(&state, &provider, id_token.as_deref()).await
        {
            return signed_out_upstream_offer(&provider.name, &url, &signed_out);
        }
    }
    Redirect::to(&signed_out).into_response()
}

/// After signing out of a sign-in made through a provider that offers ending
/// its own session: the choice to sign out there too (RP-Initiated Logout).
fn signed_out_upstream_offer(provider: &str, end_session: &str, stay: &str) -> Response {
    use crate::pages::escape;
    let name = escape(provider);
    crate::pages::card(
        StatusCode::OK,
        "Signed out",
        "You are signed out of Latchkey",
        "upstream-signed-out",
        &format!(
            r#"<p>You signed in with {name}, and you are still signed in there. Sign out of {name} too if this is a shared device.</p>
<p><a class="button primary wide" href="{}" data-testid="upstream-sign-out">Sign out of {name} too</a></p>
<p><a class="button wide" href="{}">Stay signed in to {name}</a></p>"#,
            escape(end_session),
            escape(stay)
        ),
    )
}

/// Refuses state-changing browser requests from other sites (CSRF), on top
/// of the SameSite=Lax cookie: a POST (PUT, PATCH, DELETE) whose `Origin` — or,
/// without one, `Referer` — is neither the issuer's origin nor this request's
/// own host gets 403. Origins are compared after normalisation (scheme and
/// host case, default port: [`request_headers::claimed_origin`]); `null`, a
/// malformed or a repeated value is refused (fail closed). Requests with
/// neither header do not come from a browser page. The client-authenticated
/// protocol endpoints (token, introspection, revocation) read no cookie and
/// are exempt.
pub async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) || crate::oauth::is_client_endpoint(request.uri().path())
    {
        return next.run(request).await;
    }
    let headers = request.headers();
    let Some(claimed) = request_headers::claimed_origin(headers) else {
        return next.run(request).await;
    };
    // Opaque origins (`null`, malformed, repeated) are never ours: fail closed.
    let ours = claimed.is_tuple()
        && (claimed.ascii_serialization() == state.config.origin()
            || request_headers::is_request_host(headers, &claimed));
    if ours {
        next.run(request).await
    } else {
        tracing::warn!(origin = %claimed.ascii_serialization(), path = %request.uri().path(), "refused a cross-site request");
        crate::pages::card(
            StatusCode::FORBIDDEN,
            "Request refused",
            "Request refused",
            "cross-site-refused",
            "<p>This request came from another site, so Latchkey refused it. Go back to Latchkey and try again.</p>",
        )
    }
}

/// `GET /admin/audit/export`: the console's CSV/JSON download of the filtered
/// audit log, for a signed-in admin (the REST API has the same with a bearer token).
pub async fn audit_export(
    State(state): State<AppState>,
    _: AdminPerson,
    axum::extract::Query(query): axum::extract::Query<crate::admin_api::audit::AuditQuery>,
) -> Response {
    match crate::admin_api::audit::export_response(&state, &query).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// 403 for a signed-in user who is not allowed here (the admin console).
pub fn forbidden_page() -> Response {
    crate::pages::card(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Not allowed",
        "forbidden",
        "<p>This part of Latchkey is for administrators. Your account is not one.</p><p><a href=\"/\">Back to My apps</a></p>",
    )
}

/// A browser route over its request limit (`rate_limit`): 429 with
/// `Retry-After`, in words.
pub fn too_many_requests_page(retry_after_secs: u64) -> Response {
    let mut response = crate::pages::card(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        "Too many requests",
        "too-many-requests",
        &format!(
            "<p>Too many requests came from your network. Try again in {retry_after_secs} seconds.</p><p><a href=\"/\">Back to My apps</a></p>"
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from(retry_after_secs),
    );
    response
}

/// Logs an internal error under a fresh request id and shows a plain page with that id.
pub fn internal_error(doing: &str, error: &dyn std::fmt::Display) -> Response {
    let request_id = new_id();
    tracing::error!(%request_id, error = %error, "{doing} failed");
    // In the site's frame (`lang`, landmarks, the stylesheet), like every page.
    crate::pages::card(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Something went wrong",
        "internal-error",
        &format!(
            "<p>Please try again. If it keeps happening, give your administrator this request id: <code>{request_id}</code></p>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/apps?x=1"), "/apps?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn sign_in_url_encodes_next() {
        assert_eq!(
            sign_in_url("/oauth/authorize?a=1&b=2", Some(("invalid", "al ice"))),
            "/signin?error=invalid&username=al+ice&next=%2Foauth%2Fauthorize%3Fa%3D1%26b%3D2"
        );
    }
}
