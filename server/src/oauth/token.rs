//! `POST /oauth/token` (RFC 6749 §3.2). Today: the client_credentials grant
//! (§4.4). authorization_code and refresh_token arrive with `/oauth/authorize`.

use app::domain::{clients::GrantType, tokens, DomainError};
use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use super::{
    client_auth,
    error::OAuthError,
    form::{Body, Params},
};
use crate::http::AppState;

pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match exchange(&state, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    body: &Body,
) -> Result<Response, OAuthError> {
    let params = Params::parse(headers, body)?;
    let grant_type = params.require("grant_type")?;
    let (client, _method) = client_auth::authenticate(state, headers, &params).await?;
    match grant_type {
        "client_credentials" => {
            if !client.allows(GrantType::ClientCredentials) {
                return Err(OAuthError::unauthorized_client(
                    "this client may not use the client_credentials grant",
                ));
            }
            let issued = tokens::issue_client_credentials(
                &state.db,
                &state.keys,
                &state.config.issuer,
                &client,
                params.get("scope"),
            )
            .await
            .map_err(|e| match e {
                DomainError::Invalid { message, .. } => OAuthError::invalid_scope(message),
                other => OAuthError::unavailable("client_credentials issuance", &other),
            })?;
            // RFC 6749 §4.4.3: no refresh token for client_credentials.
            Ok(Json(json!({
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "scope": issued.claims.scope,
            }))
            .into_response())
        }
        "authorization_code" | "refresh_token" => Err(OAuthError::unsupported_grant_type(format!(
            "the {grant_type} grant is not available yet on this server"
        ))),
        other => Err(OAuthError::unsupported_grant_type(format!(
            "unknown grant_type {other:?}"
        ))),
    }
}
