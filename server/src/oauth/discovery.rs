//! Discovery metadata (OpenID Connect Discovery 1.0 §3, RFC 8414 §2) and the
//! JWKS (RFC 7517). Both derive every URL from the issuer and the path constants.

use axum::{extract::State, Json};
use serde_json::{json, Value};

use super::{
    AUTHORIZE, END_SESSION, INTROSPECT, JWKS, REVOCATIONS, REVOCATIONS_STREAM, REVOKE, TOKEN,
    USERINFO,
};
use crate::state::AppState;

pub async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    let issuer = &state.config.issuer;
    let url = |path: &str| format!("{issuer}{path}");
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": url(AUTHORIZE),
        "token_endpoint": url(TOKEN),
        "userinfo_endpoint": url(USERINFO),
        "jwks_uri": url(JWKS),
        "revocation_endpoint": url(REVOKE),
        "introspection_endpoint": url(INTROSPECT),
        "end_session_endpoint": url(END_SESSION),
        // Latchkey's own: the revocation log for resource servers (README, "The revocation feed").
        "revocation_feed_endpoint": url(REVOCATIONS),
        "revocation_feed_stream_endpoint": url(REVOCATIONS_STREAM),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "preferred_username", "name"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "access_token_signing_alg_values_supported": ["EdDSA"],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "consent"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "frontchannel_logout_supported": false,
        // OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens carry `sid`
        // when a sign-in ends, and ID tokens carry it too.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    }))
}

pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.keys.jwks())
}
