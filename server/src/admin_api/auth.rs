//! Who may call the admin API (and, through [`client_holding`], the
//! revocation feed with its own scope): the holder of a live Latchkey access token
//! (RFC 6750 Bearer) with the `latchkey:admin` scope, issued by the
//! client_credentials grant to a client that still has that scope.
//!
//! - no token (no `Authorization`, or another scheme) → 401 `invalid_request`,
//!   `WWW-Authenticate: Bearer realm="latchkey"` (no error code in the
//!   challenge: none is due without credentials, RFC 6750 §3.1);
//! - a malformed `Authorization: Bearer` (the scheme in any case,
//!   [`crate::request_headers::bearer_token`]), or a token that is invalid, expired or
//!   revoked (checked in memory) → 401 `invalid_token`;
//! - no `latchkey:admin` scope, or a token of a person's sign-in (any user
//!   could consent to a scope an app asks for; admin rights are not a
//!   consent) → 403 `insufficient_scope`;
//! - the client was deleted → 401; its `latchkey:admin` scope was taken away
//!   → 403: the registration is read at every call, so either applies at once;
//! - the client over its request limit (`rate_limit`) → 429 with `Retry-After`.

use app::domain::{audit::Actor, clients, tokens};
use axum::{extract::FromRequestParts, http::request::Parts};

use super::{error::ApiError, ADMIN_SCOPE};
use crate::{
    callers::BearerToken,
    oauth::error::{ErrorCode, OAuthError},
    state::AppState,
};

/// An authenticated admin API caller.
#[derive(Clone, Debug)]
pub struct Admin {
    /// The client whose token it is.
    pub client_id: String,
    /// How changes are audited: `actor_client_id` is the client.
    pub actor: Actor,
}

/// The client calling, and its token's claims, with a live client_credentials access token that
/// carries `scope`, a scope its registration still lists (one of
/// [`app::domain::grants::CLIENT_ONLY_SCOPES`]). Errors as the module says:
/// 401 for no, a bad, an expired or a revoked token or a deleted client;
/// 403 `insufficient_scope` otherwise; each with its `WWW-Authenticate`
/// (`OAuthError::www_authenticate`), in the admin API's JSON shape.
pub async fn client_holding(
    parts: &Parts,
    state: &AppState,
    scope: &'static str,
) -> Result<(clients::Client, tokens::AccessClaims), ApiError> {
    let claims = BearerToken::of(&parts.headers, state).await?;
    let insufficient =
        |message: String| ApiError::from(OAuthError::insufficient_scope(Some(scope), message));
    if !claims.scope.split(' ').any(|s| s == scope) {
        return Err(insufficient(format!(
            "the access token does not carry the {scope} scope"
        )));
    }
    // client_credentials tokens have no family and the client as subject.
    if claims.fid.is_some() || claims.sid.is_some() || claims.sub != claims.client_id {
        return Err(insufficient(format!(
            "{scope} takes a client's own client_credentials token, not a person's token"
        )));
    }
    match clients::find_client(&state.db, &claims.client_id).await {
        Ok(Some(client)) if client.extra_scopes.iter().any(|s| s == scope) => {
            state
                .limits
                .check_client(&client.client_id)
                .map_err(ApiError::too_many_requests)?;
            Ok((client, claims))
        }
        Ok(Some(_)) => Err(insufficient(format!(
            "the client of this token is no longer allowed the {scope} scope"
        ))),
        Ok(None) => Err(OAuthError::bearer_unauthorized(
            Some(ErrorCode::InvalidToken),
            "the client of this token no longer exists",
        )
        .into()),
        Err(e) => Err(ApiError::from_domain("checking the client of a token", e)),
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (client, _) = client_holding(parts, state, ADMIN_SCOPE).await?;
        Ok(Admin {
            actor: Actor::client(&client.client_id),
            client_id: client.client_id,
        })
    }
}
