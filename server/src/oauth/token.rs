//! `POST /oauth/token` (RFC 6749 §3.2): the authorization_code (§4.1.3, with
//! PKCE), refresh_token (§6) and client_credentials (§4.4) grants.

use app::domain::{
    clients::GrantType,
    codes::{self, Redemption},
    refresh::{self, RefreshRequest},
    tokens::{self, GrantError, TokenSet},
    DomainError,
};
use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};

use super::{
    client_auth,
    error::OAuthError,
    form::{Body, Params},
};
use crate::{callers::Caller, state::AppState};

pub async fn token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match exchange(&state, &caller, &headers, &body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    Caller(from): &Caller,
    headers: &HeaderMap,
    body: &Body,
) -> Result<Response, OAuthError> {
    let params = Params::parse(headers, body)?;
    let grant_type = params.require("grant_type")?;
    let (client, method) = client_auth::authenticate(state, headers, &params).await?;
    // RFC 8707: one resource indicator, a registered resource server's
    // audience; checked before any grant is used (a code stays unredeemed).
    let resource = params.get("resource");
    if let Some(resource) = resource {
        state
            .resource_servers
            .audience_for(&state.db, &state.config.issuer, "", Some(resource))
            .await
            .map_err(|e| OAuthError::from_domain("checking the resource", e))?;
    }
    match grant_type {
        "client_credentials" => {
            if !client.allows(GrantType::ClientCredentials) {
                return Err(OAuthError::unauthorized_client(
                    "this client may not use the client_credentials grant",
                ));
            }
            let issued = tokens::issue_client_credentials(
                &state.issuance(),
                &client,
                params.get("scope"),
                resource,
            )
            .await
            .map_err(|e| grant_error(GrantError::Failed(e), method))?;
            // RFC 6749 §4.4.3: no refresh token for client_credentials.
            Ok(token_response(
                "client_credentials",
                TokenSet {
                    access: issued,
                    refresh_token: None,
                    id_token: None,
                },
            ))
        }
        "authorization_code" => {
            if !client.allows(GrantType::AuthorizationCode) {
                return Err(OAuthError::unauthorized_client(
                    "this client may not use the authorization_code grant",
                ));
            }
            let redemption = Redemption {
                client: &client,
                code: params.require("code")?,
                redirect_uri: params.get("redirect_uri"),
                code_verifier: params.get("code_verifier"),
                resource,
                from,
            };
            let set = codes::redeem_code(&state.issuance(), redemption)
                .await
                .map_err(|e| grant_error(e, method))?;
            Ok(token_response("authorization_code", set))
        }
        "refresh_token" => {
            let request = RefreshRequest {
                client: &client,
                refresh_token: params.require("refresh_token")?,
                scope: params.get("scope"),
                resource,
                from,
            };
            let set = refresh::refresh(&state.issuance(), request)
                .await
                .map_err(|e| grant_error(e, method))?;
            Ok(token_response("refresh_token", set))
        }
        other => Err(OAuthError::unsupported_grant_type(format!(
            "unknown grant_type {other:?}"
        ))),
    }
}

/// RFC 6749 §5.1 (and OpenID Connect Core §3.1.3.3 with `id_token`),
/// counted under its `grant` (`latchkey_tokens_issued_total`).
fn token_response(grant: &'static str, set: TokenSet) -> Response {
    crate::metrics::token_issued(grant);
    Json(TokenResponse {
        access_token: set.access.token,
        token_type: "Bearer",
        expires_in: set.access.expires_in,
        scope: set.access.claims.scope,
        refresh_token: set.refresh_token,
        id_token: set.id_token,
    })
    .into_response()
}

/// The body of a successful token response (RFC 6749 §5.1): `expires_in`
/// in seconds; `refresh_token` and `id_token` only when issued.
#[derive(serde::Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// A failed grant in RFC 6749 §5.2 terms; domain errors go through
/// [`OAuthError::from_domain`] (only a scope rule is `invalid_scope`).
fn grant_error(e: GrantError, method: client_auth::AuthMethod) -> OAuthError {
    match e {
        GrantError::InvalidRequest(m) => OAuthError::invalid_request(m),
        GrantError::InvalidGrant(m) => OAuthError::invalid_grant(m),
        GrantError::InvalidScope(m) => OAuthError::invalid_scope(m),
        GrantError::UnauthorizedClient(m) => OAuthError::unauthorized_client(m),
        // The client was deleted since its authentication was cached (client_auth).
        GrantError::Failed(DomainError::NotFound) => {
            OAuthError::invalid_client(method == client_auth::AuthMethod::Basic)
        }
        GrantError::Failed(e) => OAuthError::from_domain("token issuance", e),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::oauth::client_auth::AuthMethod;

    #[test]
    fn only_scope_rules_are_invalid_scope() {
        let e = grant_error(
            GrantError::Failed(DomainError::invalid("redirect_uri", "not registered")),
            AuthMethod::Basic,
        );
        assert_eq!(
            (e.status, e.error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
        let e = grant_error(
            GrantError::Failed(DomainError::invalid("scope", "\"x\" is not allowed")),
            AuthMethod::Basic,
        );
        assert_eq!(
            (e.status, e.error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_scope")
        );
        let e = grant_error(
            GrantError::Failed(DomainError::Internal("signing failed".into())),
            AuthMethod::Basic,
        );
        assert_eq!(
            (e.status, e.error.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        );
    }

    #[test]
    fn a_client_deleted_since_it_authenticated_is_invalid_client() {
        use crate::oauth::error::Challenge;
        for (method, challenge) in [
            (AuthMethod::Basic, Challenge::Basic),
            (AuthMethod::Post, Challenge::None),
        ] {
            let e = grant_error(GrantError::Failed(DomainError::NotFound), method);
            assert_eq!(
                (e.status, e.error.as_str(), e.challenge),
                (StatusCode::UNAUTHORIZED, "invalid_client", challenge)
            );
        }
    }
}
