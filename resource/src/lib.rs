//! A guard for Rust APIs (axum, tower) that accept Latchkey access tokens:
//! it validates them **locally** (RFC 9068 JWTs against the issuer's JWKS) and
//! learns of **every revocation** through Latchkey's revocation feed, so a
//! revoked token stops working here within a second, not at its `exp`.
//!
//! # Use
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use latchkey_resource::{AccessToken, Guard};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let guard = Guard::builder("https://id.example.com")
//!         .audience("https://notes.example.com")
//!         // A Latchkey client allowed the scope `latchkey:revocations`.
//!         .client_credentials("notes-api", std::env::var("NOTES_API_SECRET")?)
//!         .build()?;
//!
//!     let app = Router::new()
//!         .route(
//!             "/notes",
//!             get(|token: AccessToken| async move { Json(vec![format!("a note of {}", token.sub)]) })
//!                 .route_layer(guard.require_scopes(["notes:read"])),
//!         )
//!         .route("/healthz", get({
//!             let guard = guard.clone();
//!             move || async move { Json(guard.health()) }
//!         }));
//!
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3200").await?;
//!     guard.ready().await; // the first snapshot of the revocation feed loaded
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```
//!
//! `guard.layer()` checks the token only; `guard.require_scopes([...])` also
//! the scopes. A handler behind either takes [`AccessToken`] (it dereferences
//! to the [`Claims`]). Outside axum, [`Guard::validate`] checks a token.
//!
//! # What a request gets (RFC 6750 §3)
//!
//! | request | answer |
//! | --- | --- |
//! | no `Authorization`, or another scheme | 401, `WWW-Authenticate: Bearer realm="..."` |
//! | a bad, expired, revoked token; or the revocation set stale (fail-closed) | 401, `... error="invalid_token", error_description="..."` |
//! | a valid token without a required scope | 403, `... error="insufficient_scope", error_description="...", scope="notes:read"` |
//!
//! The body repeats `error` and `error_description` as JSON.
//!
//! # The revocation feed
//!
//! In the background the guard discovers the issuer's endpoints
//! (`/.well-known/openid-configuration`), fetches its JWKS, obtains a
//! client_credentials token with scope `latchkey:revocations` for its own
//! client, loads the snapshot (`revocation_feed_endpoint`, paged) and then
//! follows the Server-Sent Events stream (`revocation_feed_stream_endpoint`),
//! reconnecting with a capped, jittered exponential backoff and
//! `Last-Event-ID` (after catching up through the snapshot), so no entry is
//! missed. Each entry (`grant`, `family` or `jti`, an id and an `until`) is
//! held in memory until its `until` plus the leeway passed.
//!
//! When nothing (no event, no keep-alive, no caught-up snapshot) arrived for
//! longer than the staleness bound (default 30 s), or before the first
//! snapshot loaded, the set is stale and the [`Fallback`] decides: refuse every
//! token ([`Fallback::FailClosed`], the default) or ask introspection about
//! each ([`Fallback::Introspect`]). [`Guard::health`] tells an operator where
//! the guard stands.
//!
//! # Features
//!
//! - `rustls`: TLS (reqwest's rustls with the webpki roots) for https
//!   issuers. Without it, bring a client with TLS through
//!   [`GuardBuilder::http_client`] or use an http issuer.

mod claims;
mod config;
mod feed;
mod freshness;
mod guard;
mod issuer;
mod keys;
mod layer;
mod rejection;
mod revoked;

pub use claims::{AccessToken, Claims};
pub use config::{ConfigError, Fallback, GuardBuilder};
pub use guard::{Guard, Health};
pub use layer::{GuardLayer, GuardService};
pub use rejection::{Reason, Rejection};
pub use revoked::RevocationKind;
