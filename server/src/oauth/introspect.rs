//! `POST /oauth/introspect` (RFC 7662). Only authenticated confidential
//! clients may ask, and a live access token gets its claims only when the
//! caller is a resource server the token's `aud` names, or the client the
//! token was issued to (RFC 7662 §4: the server decides who may see what);
//! a refresh token only by its own client. Anything else — expired, revoked
//! at any level, unknown, malformed, not the caller's — gets exactly
//! `{"active": false}`. The revocation check is in memory; any internal
//! failure answers inactive (fail closed).

use app::domain::{clients::ClientKind, refresh, tokens};
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
use crate::state::AppState;

pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let params = match Params::parse(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let client = match client_auth::authenticate(&state, &headers, &params).await {
        Ok((client, method))
            if client.kind == ClientKind::Confidential && method != AuthMethod::None =>
        {
            client
        }
        Ok(_) => return OAuthError::invalid_client(false).into_response(),
        Err(e) => return e.into_response(),
    };
    let token = match params.require("token") {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    // `token_type_hint` is only a hint (RFC 7662 §2.1): a JWT is an access
    // token, checked in memory; anything else may be a refresh token, which
    // only the client it was issued to may introspect.
    if tokens::looks_like_jwt(token) {
        let Some(claims) = tokens::live_access_token_any_audience(
            &state.db,
            &state.keys,
            &state.revoked,
            &state.config.issuer,
            token,
        )
        .await
        else {
            return inactive();
        };
        return match state
            .resource_servers
            .may_introspect(&state.db, &client.client_id, &claims.client_id, &claims.aud)
            .await
        {
            Ok(true) => Json(tokens::introspection_of(claims)).into_response(),
            Ok(false) => inactive(),
            Err(e) => {
                tracing::error!(error = %e, "checking who may introspect failed; answering inactive");
                inactive()
            }
        };
    }
    match refresh::introspect(&state.db, &state.keys, &state.config.issuer, &client, token).await {
        Ok(Some(answer)) => Json(answer).into_response(),
        Ok(None) => inactive(),
        Err(e) => {
            tracing::error!(error = %e, "introspecting a refresh token failed; answering inactive");
            inactive()
        }
    }
}

pub fn inactive() -> Response {
    Json(json!({ "active": false })).into_response()
}
