//! The admin API's errors — always JSON, `{"error", "field"?, "message"}` —
//! and the extractors that turn a bad body or query into one naming the field.

use app::domain::DomainError;
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{de::DeserializeOwned, Serialize};
use utoipa::ToSchema;

/// What every error answer looks like.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_request`, `invalid_input`, `invalid_token`,
    /// `insufficient_scope`, `not_found`, `conflict`, `rate_limited`, `unavailable`,
    /// `internal_error`.
    pub error: &'static str,
    /// The input the error is about (`redirect_uri`, `access_ttl`, `per_page`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For people.
    pub message: String,
}

/// An error answer of the admin API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// `WWW-Authenticate` for 401 and 403 (RFC 6750 §3), from
    /// `OAuthError::www_authenticate`.
    /// (A string, not a `HeaderValue`: it keeps `ApiResult`'s error small.)
    pub challenge: Option<String>,
    /// `Retry-After` in seconds (429, `rate_limit`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error,
                field: None,
                message: message.into(),
            },
            challenge: None,
            retry_after: None,
        }
    }

    /// 400: the request cannot be read (not JSON, a malformed query).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422: a value breaks a rule; `field` names it.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message);
        e.body.field = Some(field.into());
        e
    }

    /// 429 `rate_limited` (`rate_limit`), with `Retry-After`.
    pub fn too_many_requests(refused: crate::rate_limit::TooMany) -> Self {
        let secs = refused.retry_after_secs();
        ApiError {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {secs} s"),
            )
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// The database or something internal failed: logged, never detailed.
    pub fn from_domain(doing: &str, e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, message } => Self::invalid(field, message),
            DomainError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            DomainError::NotFound => Self::not_found(),
            DomainError::Database(e) => {
                tracing::error!(error = %e, "admin API: {doing} failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is not answering; try again",
                )
            }
            DomainError::Internal(e) => {
                tracing::error!(error = %e, "admin API: {doing} failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        // The caller's own token is not good (RFC 6750 §3.1): it costs more
        // at the request limit.
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .extensions_mut()
                .insert(crate::rate_limit::AuthFailed);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A refused access token (`callers::BearerToken`, `auth::client_holding`):
/// the protocol endpoints' error in this API's shape, its challenge kept.
impl From<crate::oauth::error::OAuthError> for ApiError {
    fn from(e: crate::oauth::error::OAuthError) -> Self {
        ApiError {
            challenge: e
                .www_authenticate()
                .and_then(|v| v.to_str().ok().map(str::to_owned)),
            retry_after: e.retry_after,
            status: e.status,
            body: ErrorBody {
                error: e.error.as_str(),
                field: None,
                message: e.description,
            },
        }
    }
}

/// Handlers answer this: a JSON success or an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

/// Any path under `/api/admin/` that is not a route.
pub async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such admin API route; see /api/admin/openapi.json",
    )
}

/// A JSON body (`Content-Type: application/json` or `application/*+json`, any
/// case and parameters: [`crate::request_headers::is_json`]). Not JSON → 400; a
/// missing, unknown or mistyped field → 422 naming it.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !crate::request_headers::is_json(request.headers()) {
            return Err(ApiError::bad_request(
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Reads a JSON body; see [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Syntax first, so that a broken document is a 400 and not a field error.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let field = top_level_field(&e.path().to_string())
            .or_else(|| quoted_field(&message))
            .unwrap_or_else(|| "body".to_owned());
        ApiError::invalid(field, message)
    })
}

/// `grant_types[1]` → `grant_types`; `.` (the root) → none.
fn top_level_field(path: &str) -> Option<String> {
    let first = path
        .split(['.', '['])
        .next()
        .unwrap_or_default()
        .trim_matches('?');
    (!first.is_empty()).then(|| first.to_owned())
}

/// `missing field `name``, `unknown field `kind`, expected ...` → the name.
fn quoted_field(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Query parameters; a malformed query → 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
            if !seen.insert(key.clone()) {
                return Err(ApiError::bad_request(format!(
                    "the query parameter {key:?} is repeated"
                )));
            }
        }
        serde_urlencoded_from(query).map(ApiQuery)
    }
}

fn serde_urlencoded_from<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    // Query values are all text: go through a JSON object of strings, so the
    // same field-naming errors apply.
    let map: serde_json::Map<String, serde_json::Value> =
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
            .collect();
    serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
        let message = e.inner().to_string();
        let field = top_level_field(&e.path().to_string())
            .or_else(|| quoted_field(&message))
            .unwrap_or_else(|| "query".to_owned());
        let mut err = ApiError::bad_request(message);
        err.body.field = Some(field);
        err
    })
}

/// A path id: the admin API's ids are short printable tokens.
pub fn check_id(id: &str) -> ApiResult<&str> {
    if id.is_empty() || id.len() > 200 || id.chars().any(char::is_control) {
        return Err(ApiError::not_found());
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Sample>(b"{").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse_json::<Sample>(b"[]").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = parse_json::<Sample>(br#"{"tags": []}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.field.as_deref(), Some("name"));
        let e = parse_json::<Sample>(br#"{"name": "x", "tags": ["a", 5]}"#).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("tags"));
        let e = parse_json::<Sample>(br#"{"name": "x", "kind": 1}"#).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("kind"));
        assert!(parse_json::<Sample>(br#"{"name": "x"}"#).is_ok());
    }
}
