//! The admin REST API under `/api/admin/`: JSON in and out, for scripts and
//! tools. Latchkey eats its own cooking: a caller presents a Bearer access
//! token from Latchkey itself — a client_credentials token of a confidential
//! client an admin allowed the `latchkey:admin` scope — validated by the same
//! function as everywhere (`tokens::live_access_token`, revocation checked in
//! memory), so revoking that client's tokens cuts its API access from the
//! next request. Handlers parse and check, then call `app::domain::admin`,
//! `audit_search`, `clients`, `users` and `policy`; every change is audited
//! with the calling client as the actor.
//!
//! | module | owns |
//! | --- | --- |
//! | [`clients`] | `/api/admin/clients…`: list, create, read, edit, delete, secret rotation, revoke all |
//! | [`resource_servers`] | `/api/admin/clients/{id}/resource-server`: audience and served scopes |
//! | [`policy`] | `/api/admin/clients/{id}/policy`, `/api/admin/policy/defaults` |
//! | [`scopes`] | `/api/admin/scopes…`: the scope catalogue (plain words, sensitivity) |
//! | [`upstreams`] | `/api/admin/upstreams…`: upstream OpenID providers people sign in through |
//! | [`users`] | `/api/admin/users…`: list, create, read, disable/enable, admin rights, revoke apps, sign out everywhere |
//! | [`audit`] | `/api/admin/audit`, `/api/admin/audit/export` |
//! | [`openapi`] | `/api/admin/openapi.json`, generated from the handlers with utoipa |
//! | [`auth`] | the Bearer token check (401 / 403 with `WWW-Authenticate`) |
//! | [`error`] | JSON errors (`{"error", "field", "message"}`), the JSON body and query extractors |

pub mod audit;
pub mod auth;
pub mod clients;
pub mod error;
pub mod openapi;
pub mod policy;
pub mod resource_servers;
pub mod scopes;
pub mod upstreams;
pub mod users;

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

/// The scope a token needs for this API (defined with the scope rules).
pub use app::domain::grants::ADMIN_SCOPE;

pub const CLIENTS: &str = "/api/admin/clients";
pub const CLIENT: &str = "/api/admin/clients/{id}";
pub const CLIENT_SECRET: &str = "/api/admin/clients/{id}/secret";
pub const CLIENT_REVOKE: &str = "/api/admin/clients/{id}/revoke";
pub const CLIENT_POLICY: &str = "/api/admin/clients/{id}/policy";
pub const CLIENT_RESOURCE_SERVER: &str = "/api/admin/clients/{id}/resource-server";
pub const POLICY_DEFAULTS: &str = "/api/admin/policy/defaults";
pub const USERS: &str = "/api/admin/users";
pub const USER: &str = "/api/admin/users/{id}";
pub const USER_REVOKE_APPS: &str = "/api/admin/users/{id}/revoke-apps";
pub const USER_SIGN_OUT_EVERYWHERE: &str = "/api/admin/users/{id}/sign-out-everywhere";
pub const USER_CLEAR_THROTTLE: &str = "/api/admin/users/{id}/clear-sign-in-throttle";
pub const SCOPES: &str = "/api/admin/scopes";
pub const SCOPE: &str = "/api/admin/scopes/{scope}";
pub const UPSTREAMS: &str = "/api/admin/upstreams";
pub const UPSTREAM: &str = "/api/admin/upstreams/{id}";
pub const AUDIT: &str = "/api/admin/audit";
pub const AUDIT_EXPORT: &str = "/api/admin/audit/export";
pub const OPENAPI: &str = "/api/admin/openapi.json";

/// The admin API's routes. Their static paths win over the Leptos server
/// functions' `/api/{*fn_name}`, and any other path under `/api/admin/` is a
/// JSON 404: server functions must not use `admin/...` endpoints (the admin
/// console's are `console/...`). Answers are never cached (some carry a
/// client secret). Every route is limited per client address
/// (`rate_limit::per_ip`), and per client once the caller is known (`auth`).
pub fn router(limits: &Limits) -> Router<AppState> {
    Router::new()
        .route(CLIENTS, get(clients::list).post(clients::create))
        .route(
            CLIENT,
            get(clients::read)
                .patch(clients::update)
                .delete(clients::delete),
        )
        .route(CLIENT_SECRET, post(clients::rotate_secret))
        .route(CLIENT_REVOKE, post(clients::revoke))
        .route(
            CLIENT_POLICY,
            get(policy::read_client).patch(policy::update_client),
        )
        .route(
            CLIENT_RESOURCE_SERVER,
            get(resource_servers::read)
                .put(resource_servers::set)
                .delete(resource_servers::remove),
        )
        .route(
            POLICY_DEFAULTS,
            get(policy::read_defaults).patch(policy::update_defaults),
        )
        .route(USERS, get(users::list).post(users::create))
        .route(USER, get(users::read).patch(users::update))
        .route(USER_REVOKE_APPS, post(users::revoke_apps))
        .route(USER_SIGN_OUT_EVERYWHERE, post(users::sign_out_everywhere))
        .route(USER_CLEAR_THROTTLE, post(users::clear_throttle))
        .route(SCOPES, get(scopes::list))
        .route(
            SCOPE,
            axum::routing::put(scopes::set).delete(scopes::remove),
        )
        .route(UPSTREAMS, get(upstreams::list).post(upstreams::create))
        .route(
            UPSTREAM,
            get(upstreams::read)
                .patch(upstreams::update)
                .delete(upstreams::remove),
        )
        .route(AUDIT, get(audit::list))
        .route(AUDIT_EXPORT, get(audit::export))
        .route(OPENAPI, get(openapi::document))
        .route(
            "/api/admin/{*rest}",
            axum::routing::any(error::unknown_route),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            (limits.clone(), Shape::Admin),
            rate_limit::per_ip,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}
