//! The OAuth 2.0 / OpenID Connect protocol endpoints. Handlers parse the
//! request, authenticate the client, call `app::domain`, and answer in the
//! RFC's shape. Paths are constants shared by the router and discovery.
//!
//! | module | owns |
//! | --- | --- |
//! | [`discovery`] | `/.well-known/openid-configuration`, RFC 8414 metadata, JWKS |
//! | [`token`] | `/oauth/token` (RFC 6749 §3.2) |
//! | [`introspect`] | `/oauth/introspect` (RFC 7662) |
//! | [`revoke`] | `/oauth/revoke` (RFC 7009) |
//! | [`client_auth`] | client authentication: `client_secret_basic`, `client_secret_post`, `none` |
//! | [`form`] | strict form parsing (content type, repeated parameters) |
//! | [`error`] | RFC 6749 §5.2 error responses |

pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod form;
pub mod introspect;
pub mod revoke;
pub mod token;

use axum::{
    http::{header, HeaderValue},
    routing::{get, post},
    Router,
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::AppState;

pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/oauth/jwks";
pub const AUTHORIZE: &str = "/oauth/authorize";
pub const TOKEN: &str = "/oauth/token";
pub const INTROSPECT: &str = "/oauth/introspect";
pub const REVOKE: &str = "/oauth/revoke";
pub const USERINFO: &str = "/oauth/userinfo";
pub const END_SESSION: &str = "/oauth/logout";

/// The protocol routes. Token, introspection and revocation answers are never
/// cached (RFC 6749 §5.1).
pub fn router() -> Router<AppState> {
    let no_store = Router::new()
        .route(TOKEN, post(token::token))
        .route(INTROSPECT, post(introspect::introspect))
        .route(REVOKE, post(revoke::revoke))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::PRAGMA,
            HeaderValue::from_static("no-cache"),
        ));
    Router::new()
        .route(OPENID_CONFIGURATION, get(discovery::openid_configuration))
        .route(
            AUTHORIZATION_SERVER_METADATA,
            get(discovery::openid_configuration),
        )
        .route(JWKS, get(discovery::jwks))
        .merge(no_store)
}

/// Whether a path is a protocol endpoint called by clients (not by browser
/// pages): exempt from the dashboard's cross-site check, which relies on
/// cookies these endpoints never read.
pub fn is_client_endpoint(path: &str) -> bool {
    matches!(path, TOKEN | INTROSPECT | REVOKE)
}
