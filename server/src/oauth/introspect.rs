//! `POST /oauth/introspect` (RFC 7662). Only authenticated confidential
//! clients (resource servers) may ask. A live token gets its claims; anything
//! else — expired, revoked at any level, unknown, malformed — gets exactly
//! `{"active": false}`. The revocation check is in memory; any internal
//! failure answers inactive (fail closed).

use app::domain::{clients::ClientKind, tokens};
use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::{
    client_auth::{self, AuthMethod},
    error::OAuthError,
    form::{Body, Params},
};
use crate::http::AppState;

pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let params = match Params::parse(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match client_auth::authenticate(&state, &headers, &params).await {
        Ok((client, method))
            if client.kind == ClientKind::Confidential && method != AuthMethod::None => {}
        Ok(_) => return OAuthError::invalid_client(false).into_response(),
        Err(e) => return e.into_response(),
    }
    let token = match params.require("token") {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    // `token_type_hint` is only a hint (RFC 7662 §2.1); refresh tokens are opaque
    // and not introspectable yet, so every token is tried as an access token.
    match tokens::live_access_token(&state.keys, &state.revoked, &state.config.issuer, token) {
        Some(claims) => Json(tokens::introspection_of(claims)).into_response(),
        None => inactive(),
    }
}

pub fn inactive() -> Response {
    Json(json!({ "active": false })).into_response()
}
