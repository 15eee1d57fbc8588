//! Client authentication for the token, introspection and revocation
//! endpoints (RFC 6749 §2.3.1): `client_secret_basic`, `client_secret_post`,
//! or `none` for public clients. One function; every failure is the same
//! 401 `invalid_client`.

use app::domain::clients::{self, Client};
use axum::http::{header, HeaderMap};
use base64::{engine::general_purpose::STANDARD, Engine};

use super::{error::OAuthError, form::Params};
use crate::http::AppState;

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    None,
}

/// Authenticates the calling client; both Basic and a body `client_secret` → `invalid_request`.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Client, AuthMethod), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    let (client_id, secret, method) = match (basic, params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            ))
        }
        (Some(encoded), None) => {
            let (id, secret) =
                decode_basic(encoded).ok_or_else(|| OAuthError::invalid_client(true))?;
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials",
                ));
            }
            (id, Some(secret), AuthMethod::Basic)
        }
        (None, Some(secret)) => (
            params.require("client_id")?.to_owned(),
            Some(secret.to_owned()),
            AuthMethod::Post,
        ),
        (None, None) => match params.get("client_id") {
            Some(id) => (id.to_owned(), None, AuthMethod::None),
            None => return Err(OAuthError::invalid_client(false)),
        },
    };
    match clients::authenticate_client(&state.db, &client_id, secret.as_deref()).await {
        Ok(Ok(client)) => Ok((client, method)),
        Ok(Err(why)) => {
            tracing::info!(client_id = %client_id, ?why, "client authentication failed");
            Err(OAuthError::invalid_client(method == AuthMethod::Basic))
        }
        Err(e) => Err(OAuthError::unavailable("client authentication", &e)),
    }
}

/// `base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_unescaped() {
        let encoded = STANDARD.encode("my%20app:s%3Ac+ret");
        assert_eq!(
            decode_basic(&encoded),
            Some(("my app".into(), "s:c ret".into()))
        );
        assert_eq!(decode_basic("%%%"), None);
    }
}
