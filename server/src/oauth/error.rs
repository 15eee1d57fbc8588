//! The one error type of the protocol endpoints, RFC 6749 §5.2 and RFC 6750
//! §3: [`ErrorCode`] is the code as the RFCs spell it (its `Display`),
//! [`OAuthError`] the answer — `{"error", "error_description"}` JSON, and the
//! `WWW-Authenticate` challenge built in one place
//! ([`OAuthError::www_authenticate`]: Basic after a failed Basic client
//! authentication, Bearer for a refused access token) — and
//! [`OAuthError::from_domain`] the one mapping of domain errors onto codes.
//! The admin API answers in its own JSON shape but takes its challenge from
//! here too (`admin_api::error::ApiError: From<OAuthError>`).

use app::domain::DomainError;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

/// An error code of the OAuth 2.0 family; `Display` writes it as the RFC does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §4.1.2.1, §5.2.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant (code, refresh token) is not good.
    InvalidGrant,
    /// RFC 6749 §4.1.2.1, §5.2.
    UnauthorizedClient,
    /// RFC 6749 §5.2.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1, §5.2.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: the person said no.
    AccessDenied,
    /// RFC 6749 §4.1.2.1.
    ServerError,
    /// RFC 6749 §4.1.2.1.
    TemporarilyUnavailable,
    /// RFC 6750 §3.1: the access token is malformed, expired or revoked.
    InvalidToken,
    /// RFC 6750 §3.1: the access token lacks a scope the request needs.
    InsufficientScope,
    /// RFC 8707 §2: a resource indicator the server does not accept.
    InvalidTarget,
    /// OpenID Connect Core §3.1.2.6 (`prompt=none`, nobody signed in).
    LoginRequired,
    /// OpenID Connect Core §3.1.2.6 (`prompt=none`, consent missing).
    ConsentRequired,
    /// OpenID Connect Core §3.1.2.6 (a `request` object, which is not supported).
    RequestNotSupported,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `WWW-Authenticate` challenge an error answer carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    None,
    /// The client tried HTTP Basic and failed: the 401 names the scheme
    /// (RFC 6749 §5.2).
    Basic,
    /// An access token was refused (RFC 6750 §3). `error` says whether the
    /// challenge names the error: not when the request had no credentials
    /// at all (§3.1); `scope` is named on `insufficient_scope`.
    Bearer {
        error: bool,
        scope: Option<&'static str>,
    },
}

/// An error answer of a protocol endpoint.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: ErrorCode,
    /// For people; never a database or internal detail.
    pub description: String,
    pub challenge: Challenge,
    /// `Retry-After` in seconds (429, `rate_limit`).
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            challenge: Challenge::None,
            retry_after: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            description,
        )
    }

    /// 401 `invalid_client`; `basic_challenge` when the client tried HTTP Basic.
    pub fn invalid_client(basic_challenge: bool) -> Self {
        OAuthError {
            challenge: if basic_challenge {
                Challenge::Basic
            } else {
                Challenge::None
            },
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidClient,
                "client authentication failed",
            )
        }
    }

    /// 401 for a request to a protected resource without a usable access
    /// token (RFC 6750 §3.1): `error` is `None` when no credentials were
    /// sent (the body still says `invalid_request`), else `invalid_token`.
    pub fn bearer_unauthorized(error: Option<ErrorCode>, description: impl Into<String>) -> Self {
        OAuthError {
            challenge: Challenge::Bearer {
                error: error.is_some(),
                scope: None,
            },
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                error.unwrap_or(ErrorCode::InvalidRequest),
                description,
            )
        }
    }

    /// 403 `insufficient_scope` (RFC 6750 §3.1), naming the scope needed
    /// when there is one.
    pub fn insufficient_scope(scope: Option<&'static str>, description: impl Into<String>) -> Self {
        OAuthError {
            challenge: Challenge::Bearer { error: true, scope },
            ..Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::InsufficientScope,
                description,
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
                ErrorCode::TemporarilyUnavailable,
                format!("too many requests; try again in {secs} s"),
            )
        }
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidGrant,
            description,
        )
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnauthorizedClient,
            description,
        )
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedGrantType,
            description,
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidScope,
            description,
        )
    }

    /// A domain error in RFC 6749 §5.2 terms, for every protocol endpoint:
    ///
    /// | domain error | status | `error` |
    /// | --- | --- | --- |
    /// | `Invalid` of the field `scope` | 400 | `invalid_scope` (§3.3: the scope asked for is not allowed) |
    /// | `Invalid` of the field `resource` | 400 | `invalid_target` (RFC 8707 §2) |
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
            DomainError::Invalid {
                field: "resource",
                message,
            } => Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidTarget, message),
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
                    ErrorCode::ServerError,
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
            ErrorCode::TemporarilyUnavailable,
            "the server cannot handle this request right now; try again",
        )
    }

    /// The `WWW-Authenticate` value of this answer, if it has one — the one
    /// place such a header is written:
    ///
    /// - `Basic realm="latchkey", charset="UTF-8"` (RFC 6749 §5.2, RFC 7617 §2.1);
    /// - `Bearer realm="latchkey"` with no credentials sent, else
    ///   `Bearer realm="latchkey", error="…", error_description="…"` and,
    ///   for `insufficient_scope`, `scope="…"` (RFC 6750 §3). The description
    ///   keeps only the characters §3 allows in it.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        match self.challenge {
            Challenge::None => None,
            Challenge::Basic => Some(HeaderValue::from_static(
                "Basic realm=\"latchkey\", charset=\"UTF-8\"",
            )),
            Challenge::Bearer { error: false, .. } => {
                Some(HeaderValue::from_static("Bearer realm=\"latchkey\""))
            }
            Challenge::Bearer { error: true, scope } => {
                // RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E, no quote or backslash.
                let description: String = self
                    .description
                    .chars()
                    .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
                    .collect();
                let mut value = format!(
                    "Bearer realm=\"latchkey\", error=\"{}\", error_description=\"{description}\"",
                    self.error
                );
                if let Some(scope) = scope {
                    value.push_str(&format!(", scope=\"{scope}\""));
                }
                HeaderValue::from_str(&value).ok()
            }
        }
    }

    /// Whether the caller's own credentials were refused (`invalid_client`):
    /// such an answer costs more at the per-address request limit
    /// (`rate_limit::AuthFailed`). A refused access token at userinfo does
    /// not: the app presenting a person's expired or revoked token is not
    /// guessing (the admin API, whose tokens are the caller's own, charges
    /// its 401s itself: `admin_api::error::ApiError`).
    pub fn is_failed_authentication(&self) -> bool {
        self.error == ErrorCode::InvalidClient
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let challenge = self.www_authenticate();
        let failed = self.is_failed_authentication();
        let mut response = (
            self.status,
            Json(json!({ "error": self.error.as_str(), "error_description": self.description })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if failed {
            response
                .extensions_mut()
                .insert(crate::rate_limit::AuthFailed);
        }
        if let Some(value) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
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
            assert_eq!((e.status, e.error.as_str()), (status, code), "{shown}");
            assert_eq!(e.challenge, Challenge::None);
        }
        // Database and internal details are logged, never shown.
        let e = OAuthError::from_domain("testing", DomainError::Internal("secret detail".into()));
        assert!(!e.description.contains("secret detail"));
    }

    #[test]
    fn every_challenge_is_written_by_one_builder() {
        let header = |e: OAuthError| e.www_authenticate().map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header(OAuthError::invalid_client(false)), None);
        assert_eq!(
            header(OAuthError::invalid_client(true)).as_deref(),
            Some("Basic realm=\"latchkey\", charset=\"UTF-8\"")
        );
        assert_eq!(
            header(OAuthError::bearer_unauthorized(None, "a token is required")).as_deref(),
            Some("Bearer realm=\"latchkey\"")
        );
        assert_eq!(
            header(OAuthError::bearer_unauthorized(
                Some(ErrorCode::InvalidToken),
                "the token is \"bad\" \\ expired\n"
            ))
            .as_deref(),
            Some(
                "Bearer realm=\"latchkey\", error=\"invalid_token\", error_description=\"the token is bad  expired\""
            )
        );
        assert_eq!(
            header(OAuthError::insufficient_scope(
                Some("latchkey:admin"),
                "needs latchkey:admin"
            ))
            .as_deref(),
            Some(
                "Bearer realm=\"latchkey\", error=\"insufficient_scope\", error_description=\"needs latchkey:admin\", scope=\"latchkey:admin\""
            )
        );
        // No credentials: the body still names an error (RFC 6749 §5.2's shape).
        let e = OAuthError::bearer_unauthorized(None, "a token is required");
        assert_eq!(
            (e.status, e.error),
            (StatusCode::UNAUTHORIZED, ErrorCode::InvalidRequest)
        );
    }

    #[test]
    fn codes_display_as_the_rfcs_spell_them() {
        assert_eq!(ErrorCode::InvalidTarget.to_string(), "invalid_target");
        assert_eq!(
            ErrorCode::UnsupportedResponseType.to_string(),
            "unsupported_response_type"
        );
        assert_eq!(ErrorCode::ConsentRequired.to_string(), "consent_required");
    }
}
