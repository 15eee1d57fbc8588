//! The few HTML pages the server writes itself, outside Leptos: the consent
//! page, the error page for requests that cannot be sent back to the app,
//! the signed-out and sign-out confirmation pages of RP-initiated logout, and
//! the plain pages of `web` (403, 429, 500, a refused cross-site request).
//! Plain server-rendered HTML in one frame ([`page`]) with the dashboard's
//! stylesheet, so they work without JavaScript; most are one [`card`]. Every
//! piece of text that did not come from the server's own code goes through
//! [`escape`].

use app::model::{AppIdentity, ScopeInfo};
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

/// Escapes text for HTML element content and quoted attribute values
/// (`&`, `<`, `>`, `"`, `'`): `html-escape`, the escaper Leptos renders with.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

/// The page frame; `title` and `body` are HTML already (callers escape).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title} · Latchkey</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/pkg/latchkey.css">
</head>
<body>
<header class="topbar">
<a class="brand" href="/"><svg class="brand-mark" viewBox="0 0 32 32" aria-hidden="true"><rect width="32" height="32" rx="7" fill="#1f5fbf"/><circle cx="12" cy="16" r="5" fill="none" stroke="#fff" stroke-width="3"/><path d="M17 16h10v5M23 16v4" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>Latchkey</a>
</header>
<main class="page">
{body}
</main>
</body>
</html>"##
    );
    (status, Html(html)).into_response()
}

/// A page of one card: `title` (the document's) and `heading` are text
/// (escaped here), `testid` names the card for tests, `inner` is HTML the
/// caller wrote, with anything it took from elsewhere escaped.
pub fn card(status: StatusCode, title: &str, heading: &str, testid: &str, inner: &str) -> Response {
    page(
        status,
        &escape(title),
        &format!(
            r#"<section class="card narrow" data-testid="{testid}">
<h1>{}</h1>
{inner}
</section>"#,
            escape(heading)
        ),
    )
}

/// A request that cannot go back to the app (unknown client, unregistered
/// redirect URI): said here, never redirected (RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, heading: &str, detail: &str) -> Response {
    card(
        status,
        heading,
        heading,
        "oauth-error",
        &format!(
            r#"<p>{}</p>
<p class="muted">Go back to the app you came from and try again. If it keeps happening, tell the app's developer.</p>"#,
            escape(detail)
        ),
    )
}

/// What the consent page shows.
pub struct Consent<'a> {
    pub request_id: &'a str,
    /// The app: name, logo, home page, policy, terms, description.
    pub app: &'a AppIdentity,
    pub username: &'a str,
    /// The scopes the user is asked for now, in plain words, sensitive first.
    pub asked: Vec<ScopeInfo>,
    /// Scopes the user allowed before, still part of the request.
    pub already: Vec<String>,
    pub redirect_host: &'a str,
}

pub fn consent_page(c: &Consent<'_>) -> Response {
    let items: String = c
        .asked
        .iter()
        .map(|s| {
            let (class, mark) = match s.sensitive {
                true => (
                    r#" class="sensitive""#,
                    r#"<span class="badge warn">Sensitive</span> "#,
                ),
                false => ("", ""),
            };
            format!(
                r#"<li data-scope="{}"{class}>{mark}{}<code>{}</code></li>"#,
                escape(&s.scope),
                escape(&s.description),
                escape(&s.scope)
            )
        })
        .collect();
    let already = if c.already.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="muted">You already allowed: {}.</p>"#,
            escape(&c.already.join(", "))
        )
    };
    let app = c.app;
    let name = escape(&app.name);
    let letter = app.letter();
    let logo = match &app.logo_uri {
        Some(src) => format!(
            r#"<img src="{}" alt="" referrerpolicy="no-referrer" width="40" height="40">"#,
            escape(src)
        ),
        None => String::new(),
    };
    let home = match (&app.client_uri, &app.home_host) {
        (Some(href), Some(host)) => format!(
            r#"<a href="{}" rel="noopener noreferrer" target="_blank" data-testid="app-home">{}</a>"#,
            escape(href),
            escape(host)
        ),
        _ => String::new(),
    };
    let description = app
        .description
        .as_deref()
        .map(|d| format!(r#"<p data-testid="app-description">{}</p>"#, escape(d)))
        .unwrap_or_default();
    let link = |uri: &Option<String>, label: &str| {
        uri.as_deref().map(|u| {
            format!(
                r#"<a href="{}" rel="noopener noreferrer" target="_blank">{}</a>"#,
                escape(u),
                escape(&format!("{} {label}", app.name))
            )
        })
    };
    let terms = match (
        link(&app.policy_uri, "privacy policy"),
        link(&app.tos_uri, "terms of service"),
    ) {
        (Some(p), Some(t)) => {
            format!(r#"<p class="muted">Before you allow, read the {p} and the {t}.</p>"#)
        }
        (Some(one), None) | (None, Some(one)) => {
            format!(r#"<p class="muted">Before you allow, read the {one}.</p>"#)
        }
        (None, None) => String::new(),
    };
    page(
        StatusCode::OK,
        &format!("Allow {name}?"),
        &format!(
            r#"<section class="card narrow consent" data-testid="consent">
<div class="app-head"><span class="app-logo" aria-hidden="true"><span class="app-letter">{letter}</span>{logo}</span>
<div class="app-title"><h1>Allow <span data-testid="consent-client">{name}</span> to access your account?</h1>{home}</div></div>
{description}
<p class="muted">Signed in as <strong>{user}</strong>. After you answer, you go back to <strong>{host}</strong>.</p>
<p>{name} asks to:</p>
<ul class="scope-list">{items}</ul>
{already}
{terms}
<p class="muted">You can see and revoke this access at any time under My apps.</p>
<form method="post" action="{action}" class="consent-actions">
<input type="hidden" name="request_id" value="{id}">
<button type="submit" name="decision" value="allow" class="button primary">Allow</button>
<button type="submit" name="decision" value="deny" class="button secondary">Deny</button>
</form>
</section>"#,
            user = escape(c.username),
            host = escape(c.redirect_host),
            action = crate::oauth::AUTHORIZE,
            id = escape(c.request_id),
            letter = escape(&letter),
        ),
    )
}

/// The end of RP-initiated logout when there is nowhere registered to go back to.
pub fn signed_out_page(revoked_families: usize) -> Response {
    let note = match revoked_families {
        0 => String::new(),
        1 => "<p>The app session started from this sign-in was ended too.</p>".into(),
        n => format!("<p>The {n} app sessions started from this sign-in were ended too.</p>"),
    };
    card(
        StatusCode::OK,
        "Signed out",
        "You are signed out",
        "signed-out",
        &format!(r#"{note}<p><a href="/signin">Sign in again</a></p>"#),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_attribute_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#x27;y&quot;)&lt;/script&gt;"
        );
    }
}
