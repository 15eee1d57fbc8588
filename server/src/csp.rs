//! The Content-Security-Policy of every HTML answer (W3C CSP Level 3), and
//! HSTS when the issuer is https.
//!
//! A page renderer makes a fresh nonce for its answer ([`Nonce::new`], 128
//! random bits), gives it to Leptos, which puts it on the scripts it writes
//! (`leptos::nonce`), and leaves it in the response's extensions;
//! [`content_security_policy`] names it in the header of an HTML response
//! (a server-rendered page without scripts gets a nonce of its own there).
//! Answers that are not HTML — the token and introspection endpoints — cost
//! one header lookup and nothing else:
//!
//! ```text
//! default-src 'self'; script-src 'self' 'nonce-…' 'wasm-unsafe-eval';
//! style-src 'self'; img-src 'self' data: https: http://localhost:* http://127.0.0.1:*;
//! object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self' [origins]
//! ```
//!
//! No inline script runs without the nonce, no inline style at all, nothing
//! but images is loaded from elsewhere: apps' logos, which an admin registers
//! at any https URL (or http on a loopback host, as the registration rules
//! allow: `clients::ClientMetadata::validated`), are shown with
//! `referrerpolicy=no-referrer`. `form-action` is checked by browsers on every
//! redirect after a form is sent, so a page whose form ends at another site —
//! the consent page at the app's redirect URI, the sign-in page at an
//! upstream provider or (already consented) at the app, the logout page at
//! the app's post-logout URI — names those origins in a [`FormAction`]
//! response extension. Other answers (JSON, redirects) keep
//! `frame-ancestors 'none'` from the router.

use axum::{
    extract::Request,
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The nonce of a rendered page (a response extension; base64url of 16
/// random bytes).
#[derive(Clone, Debug)]
pub struct Nonce(pub leptos::nonce::Nonce);

impl Nonce {
    /// A fresh nonce.
    pub fn new() -> Nonce {
        Nonce(leptos::nonce::Nonce::new())
    }
}

impl Default for Nonce {
    fn default() -> Self {
        Nonce::new()
    }
}

/// Origins (`scheme://host[:port]`, or `scheme:` for a native app's own
/// scheme) a page's forms may end at besides this server: a response
/// extension read by [`content_security_policy`].
#[derive(Clone, Debug, Default)]
pub struct FormAction(pub Vec<String>);

impl FormAction {
    /// The origin of each URL, or its scheme when it has no host; what does
    /// not parse is left out.
    pub fn of<'a>(urls: impl IntoIterator<Item = &'a str>) -> FormAction {
        let mut origins: Vec<String> = urls
            .into_iter()
            .filter_map(|u| url::Url::parse(u).ok())
            .filter_map(|u| {
                let origin = u.origin();
                if origin.is_tuple() {
                    Some(origin.ascii_serialization())
                } else if matches!(
                    u.scheme(),
                    "data" | "javascript" | "vbscript" | "blob" | "file" | "filesystem" | "about"
                ) {
                    None
                } else {
                    // A native app's private-use scheme (RFC 8252 §7.1,
                    // `com.example.app:/cb`): a scheme source.
                    Some(format!("{}:", u.scheme()))
                }
            })
            .collect();
        origins.sort();
        origins.dedup();
        FormAction(origins)
    }
}

/// Middleware: the policy on an HTML response, with the nonce its renderer
/// used.
pub async fn content_security_policy(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        let nonce = response
            .extensions()
            .get::<Nonce>()
            .cloned()
            .unwrap_or_default();
        let extra = response
            .extensions()
            .get::<FormAction>()
            .cloned()
            .unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&policy(&nonce.0, &extra)) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}

/// The policy of an HTML page with `nonce`.
pub fn policy(nonce: &str, form_action: &FormAction) -> String {
    let mut targets = String::from("'self'");
    for origin in &form_action.0 {
        // Origins are serialised by `url`: no spaces, quotes or semicolons.
        targets.push(' ');
        targets.push_str(origin);
    }
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data: https: http://localhost:* http://127.0.0.1:*; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action {targets}"
    )
}

/// `Strict-Transport-Security` for an https issuer: a year, this host only
/// (other hosts of the domain are not ours to decide for).
pub fn hsts() -> HeaderValue {
    HeaderValue::from_static("max-age=31536000")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_nonce_and_the_form_targets() {
        let targets = FormAction::of([
            "https://app.example/cb?x=1",
            "https://APP.example:443/other",
            "http://localhost:3200/cb",
            "not a url",
            "com.example.app:/oauth2redirect",
            // Never a source: these would let a form post anywhere.
            "data:text/plain,x",
            "javascript:alert(1)",
            "blob:https://app.example/1",
        ]);
        assert_eq!(
            targets.0,
            [
                "com.example.app:",
                "http://localhost:3200",
                "https://app.example"
            ]
        );
        let p = policy("abc", &targets);
        assert!(p.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        assert!(p.ends_with(
            "form-action 'self' com.example.app: http://localhost:3200 https://app.example"
        ));
        for directive in [
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
            "style-src 'self';",
        ] {
            assert!(p.contains(directive), "{directive}: {p}");
        }
        assert!(!p.contains("unsafe-inline"));
        assert!(policy("abc", &FormAction::default()).ends_with("form-action 'self'"));
    }
}
