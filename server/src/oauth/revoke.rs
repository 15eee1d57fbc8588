//! `POST /oauth/revoke` (RFC 7009). Revoking a refresh token, or an access
//! token that has a family, ends the whole token family (the app session it
//! belongs to); a client_credentials access token is revoked by its `jti`. Unknown, malformed, already revoked or another
//! client's token → 200 and nothing revoked (no token probing, §2.2). The
//! revocation is committed before the 200; if the database fails → 503.

use app::domain::{
    refresh,
    revocation::RevokedBy,
    tokens::{self, AccessClaims},
};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    client_auth,
    error::OAuthError,
    form::{Body, Params},
};
use crate::state::AppState;

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match revoke_token(&state, &headers, &body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn revoke_token(
    state: &AppState,
    headers: &HeaderMap,
    body: &Body,
) -> Result<(), OAuthError> {
    let params = Params::parse(headers, body)?;
    let (client, _) = client_auth::authenticate(state, headers, &params).await?;
    let token = params.require("token")?;
    // Any token_type_hint is accepted and ignored: we recognise the token ourselves (§2.1).
    let actor = format!("client:{}", client.client_id);
    let by = RevokedBy {
        actor: &actor,
        reason: "revoked by the client (RFC 7009)",
        actor_user_id: None,
        actor_client_id: Some(&client.client_id),
    };
    if !tokens::looks_like_jwt(token) {
        // A refresh token: its whole family ends.
        let found = refresh::find(&state.db, &state.keys, token)
            .await
            .map_err(|e| OAuthError::from_domain("revocation", e))?;
        return match found {
            Some(row) if row.client_id == client.client_id => state
                .revoked
                .revoke_family(&state.db, &row.family_id, &by)
                .await
                .map(|_| ())
                .map_err(|e| OAuthError::from_domain("revocation", e)),
            Some(_) => {
                tracing::warn!(client_id = %client.client_id, "a client tried to revoke another client's refresh token");
                Ok(())
            }
            None => Ok(()),
        };
    }
    let Ok(claims) = state
        .keys
        .verify_access_token_any_audience::<AccessClaims>(token, &state.config.issuer)
    else {
        return Ok(());
    };
    if claims.client_id != client.client_id {
        tracing::warn!(client_id = %client.client_id, "a client tried to revoke another client's token");
        return Ok(());
    }
    let result = match &claims.fid {
        Some(family) => state
            .revoked
            .revoke_family(&state.db, family, &by)
            .await
            .map(|_| ()),
        None => {
            state
                .revoked
                .revoke_access_token(&state.db, &claims.jti, claims.exp, &by)
                .await
        }
    };
    result.map_err(|e| OAuthError::from_domain("revocation", e))
}
