//! RFC 6749 §5.2 error responses: `{"error", "error_description"}` JSON,
//! 401 with `WWW-Authenticate` when client authentication failed, and the one
//! mapping of domain errors onto those codes ([`OAuthError::from_domain`]).

use app::domain::DomainError;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Set when the client tried HTTP Basic: the 401 then names the scheme (RFC 6749 §5.2).
    pub basic_challenge: bool,
    /// `Retry-After` in seconds (429, `rate_limit`).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_client(basic_challenge: bool) -> Self {
        OAuthError {
            basic_challenge,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }

    /// 429 (`rate_limit`): RFC 6749 has no code of its own for it;
    /// `temporarily_unavailable` (§4.1.2.1) says what a client should do.
    pub fn too_many_requests(refused: crate::rate_limit::TooMany) -> Self {
        let secs = refused.retry_after_secs();
        OAuthError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("too many requests; try again in {secs} s"),
            )
        }
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// A domain error in RFC 6749 §5.2 terms, for every protocol endpoint:
    ///
    /// | domain error | status | `error` |
    /// | --- | --- | --- |
    /// | `Invalid` of the field `scope` | 400 | `invalid_scope` (§3.3: the scope asked for is not allowed) |
    /// | `Invalid` of any other field, `Conflict` | 400 | `invalid_request` |
    /// | `NotFound` | 400 | `invalid_grant` (what the request refers to is gone) |
    /// | `Database` | 503 | `temporarily_unavailable` (logged) |
    /// | `Internal` | 500 | `server_error` (logged) |
    ///
    /// A caller for which a missing row means something else (a client deleted
    /// since it authenticated → `invalid_client`) matches `NotFound` first.
    pub fn from_domain(doing: &str, e: DomainError) -> Self {
        match e {
            DomainError::Invalid {
                field: "scope",
                message,
            } => Self::invalid_scope(message),
            // RFC 8707 §2: a resource indicator the server does not accept.
            DomainError::Invalid {
                field: "resource",
                message,
            } => Self::new(StatusCode::BAD_REQUEST, "invalid_target", message),
            DomainError::Invalid { field, message } => {
                Self::invalid_request(format!("{field}: {message}"))
            }
            DomainError::Conflict(message) => Self::invalid_request(message),
            DomainError::NotFound => {
                Self::invalid_grant("what this request refers to no longer exists")
            }
            DomainError::Database(e) => Self::unavailable(doing, &e),
            DomainError::Internal(e) => {
                tracing::error!(error = %e, "{doing} failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "the server failed to handle this request",
                )
            }
        }
    }

    /// The database or another part failed: logged, never detailed to the client.
    pub fn unavailable(doing: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "{doing} failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the server cannot handle this request right now; try again",
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.error == "invalid_client" {
            response
                .extensions_mut()
                .insert(crate::rate_limit::AuthFailed);
        }
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_map_to_their_rfc6749_codes() {
        let cases = [
            (
                DomainError::invalid("scope", "\"x\" is not allowed for this client"),
                StatusCode::BAD_REQUEST,
                "invalid_scope",
            ),
            (
                DomainError::invalid("redirect_uri", "not registered"),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                DomainError::Conflict("already exists".into()),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                DomainError::NotFound,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
            ),
            (
                DomainError::Database(sqlx::Error::PoolClosed),
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
            ),
            (
                DomainError::Internal("no active EdDSA signing key".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
            ),
        ];
        for (domain, status, code) in cases {
            let shown = domain.to_string();
            let e = OAuthError::from_domain("testing", domain);
            assert_eq!((e.status, e.error), (status, code), "{shown}");
            assert!(!e.basic_challenge);
        }
        // Database and internal details are logged, never shown.
        let e = OAuthError::from_domain("testing", DomainError::Internal("secret detail".into()));
        assert!(!e.description.contains("secret detail"));
    }
}
