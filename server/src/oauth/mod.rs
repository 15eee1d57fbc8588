//! The OAuth 2.0 / OpenID Connect protocol endpoints. Handlers parse the
//! request, authenticate the client, call `app::domain`, and answer in the
//! RFC's shape. Paths are constants shared by the router and discovery.
//!
//! | module | owns |
//! | --- | --- |
//! | [`discovery`] | `/.well-known/openid-configuration`, RFC 8414 metadata, JWKS |
//! | [`authorize`] | `/oauth/authorize` (RFC 6749 §4.1, PKCE) and the consent answer |
//! | [`token`] | `/oauth/token` (RFC 6749 §3.2): code, refresh, client_credentials |
//! | [`userinfo`] | `/oauth/userinfo` (OpenID Connect Core §5.3) |
//! | [`logout`] | `/oauth/logout` (OpenID Connect RP-Initiated Logout 1.0) |
//! | [`introspect`] | `/oauth/introspect` (RFC 7662) |
//! | [`revoke`] | `/oauth/revoke` (RFC 7009) |
//! | [`feed`] | `/oauth/revocations` and `/oauth/revocations/stream`: the revocation log for resource servers |
//! | [`client_auth`] | client authentication: `client_secret_basic`, `client_secret_post`, `none` |
//! | [`form`] | strict form parsing (content type, repeated parameters) |
//! | [`error`] | RFC 6749 §5.2 error responses |

pub mod authorize;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod feed;
pub mod form;
pub mod introspect;
pub mod logout;
pub mod revoke;
pub mod token;
pub mod userinfo;

use axum::{
    http::{header, HeaderValue},
    routing::{get, post},
    Router,
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{
    rate_limit::{self, Limits, Shape},
    state::AppState,
};

pub const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
pub const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";
pub const JWKS: &str = "/oauth/jwks";
pub const AUTHORIZE: &str = "/oauth/authorize";
pub const TOKEN: &str = "/oauth/token";
pub const INTROSPECT: &str = "/oauth/introspect";
pub const REVOKE: &str = "/oauth/revoke";
pub const USERINFO: &str = "/oauth/userinfo";
pub const END_SESSION: &str = "/oauth/logout";
pub const REVOCATIONS: &str = "/oauth/revocations";
pub const REVOCATIONS_STREAM: &str = "/oauth/revocations/stream";

/// The protocol routes. Token, introspection, revocation and userinfo answers
/// are never cached (RFC 6749 §5.1, OpenID Connect Core §5.3.2). The endpoints machines call — token,
/// introspection, revocation, the revocation snapshot, userinfo — are limited
/// per client address (`rate_limit::per_ip`); the browser's are not.
pub fn router(limits: &Limits) -> Router<AppState> {
    // Limited first, so that a 429 is not cached either.
    let limited = Router::new()
        .route(TOKEN, post(token::token))
        .route(USERINFO, get(userinfo::userinfo).post(userinfo::userinfo))
        .route(INTROSPECT, post(introspect::introspect))
        .route(REVOKE, post(revoke::revoke))
        .route(REVOCATIONS, get(feed::snapshot))
        .route_layer(axum::middleware::from_fn_with_state(
            (limits.clone(), Shape::OAuth),
            rate_limit::per_ip,
        ))
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
        .route(REVOCATIONS_STREAM, get(feed::stream))
        .route(AUTHORIZE, get(authorize::authorize).post(authorize::decide))
        .route(
            END_SESSION,
            get(logout::logout_get).post(logout::logout_post),
        )
        .merge(limited)
}

/// Whether a path is exempt from the dashboard's cross-site check: the
/// protocol endpoints called by clients (they read no cookie), and logout,
/// which apps may POST to from their own site and which protects itself (an
/// ID token hint, or a one-time confirmation token).
pub fn is_client_endpoint(path: &str) -> bool {
    matches!(path, TOKEN | INTROSPECT | REVOKE | USERINFO | END_SESSION)
}
