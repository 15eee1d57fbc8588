//! `GET`/`POST /oauth/userinfo` (OpenID Connect Core §5.3): claims about the
//! user an access token was issued for. The token goes through the server's one
//! JWT validation function and the in-memory revocation check; any failure is
//! 401 `invalid_token` with `WWW-Authenticate` (RFC 6750 §3).

use app::domain::users;
use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

use crate::{http::AppState, request_headers};

pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = match request_headers::bearer_token(&headers) {
        Ok(token) => token,
        Err(refused) => {
            return challenge(
                StatusCode::UNAUTHORIZED,
                refused.error(),
                refused.description(),
            )
        }
    };
    let Some(claims) = state.live_access_token(&token).await else {
        return challenge(
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token is invalid, expired or revoked",
        );
    };
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") || claims.fid.is_none() {
        return challenge(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the access token was not granted the openid scope",
        );
    }
    let user = match users::find_by_id(&state.db, &claims.sub).await {
        Ok(Some(user)) if user.disabled_at.is_none() => user,
        Ok(_) => {
            return challenge(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the user of this token no longer exists or is disabled",
            )
        }
        // The one 503 of every protocol endpoint (logged, with a description).
        Err(e) => return super::error::OAuthError::from_domain("userinfo", e).into_response(),
    };
    let mut body = json!({ "sub": user.id });
    if scopes.contains(&"profile") {
        body["preferred_username"] = user.username.clone().into();
        body["name"] = user.username.into();
    }
    // `Cache-Control: no-store` comes from the router (`oauth::router`).
    Json(body).into_response()
}

/// A Bearer challenge: `WWW-Authenticate` with the error, and the same as JSON.
fn challenge(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    let header_value = match error {
        Some(error) => format!(
            "Bearer realm=\"latchkey\", error=\"{error}\", error_description=\"{description}\""
        ),
        None => "Bearer realm=\"latchkey\"".to_owned(),
    };
    let mut response = (
        status,
        Json(json!({ "error": error.unwrap_or("invalid_request"), "error_description": description })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&header_value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
