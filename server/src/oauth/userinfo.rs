//! `GET`/`POST /oauth/userinfo` (OpenID Connect Core §5.3): claims about the
//! user an access token was issued for. The token goes through the server's one
//! JWT validation function and the in-memory revocation check; any failure is
//! 401 `invalid_token` with `WWW-Authenticate` (RFC 6750 §3).

use app::domain::users;
use axum::{extract::State, Json};
use serde_json::json;

use super::error::{ErrorCode, OAuthError};
use crate::{callers::BearerToken, state::AppState};

pub async fn userinfo(
    State(state): State<AppState>,
    BearerToken(claims): BearerToken,
) -> Result<Json<serde_json::Value>, OAuthError> {
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    if !scopes.contains(&"openid") || claims.fid.is_none() {
        return Err(OAuthError::insufficient_scope(
            Some("openid"),
            "the access token was not granted the openid scope",
        ));
    }
    let user = match users::find_by_id(&state.db, &claims.sub).await {
        Ok(Some(user)) if user.disabled_at.is_none() => user,
        Ok(_) => {
            return Err(OAuthError::bearer_unauthorized(
                Some(ErrorCode::InvalidToken),
                "the user of this token no longer exists or is disabled",
            ))
        }
        // The one 503 of every protocol endpoint (logged, with a description).
        Err(e) => return Err(OAuthError::from_domain("userinfo", e)),
    };
    let mut body = json!({ "sub": user.id });
    if scopes.contains(&"profile") {
        body["preferred_username"] = user.username.clone().into();
        body["name"] = user.username.into();
    }
    // `Cache-Control: no-store` comes from the router (`oauth::router`).
    Ok(Json(body))
}
