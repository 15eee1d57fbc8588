//! Strict parsing of `application/x-www-form-urlencoded` protocol requests:
//! the content type must be right, and a parameter may appear once only
//! (RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be included
//! more than once"). Bodies over the router's 64 KiB limit never get here.

use std::collections::HashMap;

use axum::{body::Bytes, extract::rejection::BytesRejection, http::HeaderMap};

use super::error::OAuthError;
use crate::request_headers;

/// The parameters of a form body, each present once.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

/// The body as the handler received it: a body over the size limit is a
/// rejection, answered as `invalid_request` like every other malformed request.
pub type Body = Result<Bytes, BytesRejection>;

impl Params {
    /// Reads a form body. `invalid_request` when the body could not be read,
    /// `Content-Type` is not `application/x-www-form-urlencoded` (any case,
    /// optionally `charset=UTF-8`: [`request_headers::is_form_urlencoded`]), or
    /// a parameter is repeated.
    pub fn parse(headers: &HeaderMap, body: &Body) -> Result<Params, OAuthError> {
        let body = body
            .as_ref()
            .map_err(|e| OAuthError::invalid_request(format!("unreadable body: {e}")))?;
        if !request_headers::is_form_urlencoded(headers) {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded (UTF-8)",
            ));
        }
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is repeated"
                )));
            }
        }
        Ok(Params(params))
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name:?} is missing")))
    }
}
