//! Why a request was refused, and the RFC 6750 §3 answer for it.

use std::sync::Arc;

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::{header, HeaderValue, StatusCode};

use crate::revoked::RevocationKind;

/// Why a token (or a request) was refused. Every reason but
/// [`MissingToken`](Self::MissingToken), [`InsufficientScope`](Self::InsufficientScope)
/// and [`LayerMissing`](Self::LayerMissing) is a 401 `invalid_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// No `Authorization` header, or one of another scheme: 401 with a bare
    /// `WWW-Authenticate: Bearer realm="..."`, no error code (RFC 6750 §3.1).
    MissingToken,
    /// `Bearer` without a well-formed token after it (RFC 6750 §2.1), or more
    /// than one `Authorization` header.
    MalformedAuthorization,
    /// Not a JWS compact serialization with a readable header (or an `alg`
    /// this crate does not know, `none` included).
    Malformed,
    /// The header's `typ` is not `at+jwt` or `application/at+jwt` (RFC 9068
    /// §4, compared case-insensitively): an ID token or another JWT.
    WrongType,
    /// No `kid`, or one the issuer's JWKS does not hold (after the one
    /// rate-limited refetch an unknown `kid` triggers).
    UnknownKey,
    /// The header's `alg` is not the algorithm of the JWKS key its `kid` names
    /// (RFC 8725 §3.1: no algorithm substitution).
    WrongAlgorithm,
    /// The signature does not verify with that key.
    BadSignature,
    /// `exp` passed, beyond the configured leeway.
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not name the configured audience.
    WrongAudience,
    /// A claim RFC 9068 §2.2 (or Latchkey's `gid`) requires is absent.
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type.
    WrongShape,
    /// A live entry of the revocation feed covers the token.
    Revoked(RevocationKind),
    /// The first snapshot of the revocation feed has not been loaded yet
    /// (with [`Fallback::FailClosed`](crate::Fallback::FailClosed)).
    NotReady,
    /// The revocation feed has been silent for longer than the staleness
    /// bound (with [`Fallback::FailClosed`](crate::Fallback::FailClosed)).
    Stale,
    /// While stale, with [`Fallback::Introspect`](crate::Fallback::Introspect):
    /// the issuer's introspection answered `active: false` (RFC 7662 §2.2).
    Inactive,
    /// While stale, with [`Fallback::Introspect`](crate::Fallback::Introspect):
    /// introspection could not be asked or answered nonsense.
    IntrospectionFailed,
    /// The token lacks some of these scopes: 403 `insufficient_scope` with the
    /// scopes in the challenge's `scope` attribute (RFC 6750 §3.1).
    InsufficientScope(Vec<String>),
    /// [`AccessToken`](crate::AccessToken) was extracted on a route the
    /// guard's layer does not cover: 500, a programming error.
    LayerMissing,
}

impl Reason {
    /// The HTTP status: 401, 403 for `InsufficientScope`, 500 for `LayerMissing`.
    pub fn status(&self) -> StatusCode {
        match self {
            Reason::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Reason::LayerMissing => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The RFC 6750 §3.1 error code: none for a missing token (or a 500),
    /// `insufficient_scope`, else `invalid_token`.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Reason::MissingToken | Reason::LayerMissing => None,
            Reason::InsufficientScope(_) => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    /// For people (the `error_description`); never quotes a claim's value.
    /// Holds only characters RFC 6750 §3 allows in it (no `"` nor `\`).
    pub fn description(&self) -> String {
        match self {
            Reason::MissingToken => "a Bearer access token is required".into(),
            Reason::MalformedAuthorization => {
                "the Authorization header is not one `Bearer <token>`".into()
            }
            Reason::Malformed => "the access token is not a well-formed JWT".into(),
            Reason::WrongType => "the token is not a JWT access token (typ must be at+jwt)".into(),
            Reason::UnknownKey => "the token is signed with an unknown key".into(),
            Reason::WrongAlgorithm => {
                "the token's algorithm is not the one of its signing key".into()
            }
            Reason::BadSignature => "the token's signature is invalid".into(),
            Reason::Expired => "the access token expired".into(),
            Reason::NotYetValid => "the access token is not valid yet".into(),
            Reason::WrongIssuer => "the token comes from another issuer".into(),
            Reason::WrongAudience => "the token is not meant for this API (aud)".into(),
            Reason::MissingClaim(claim) => format!("the token lacks the {claim} claim"),
            Reason::WrongShape => "the token's claims have the wrong shape".into(),
            Reason::Revoked(_) => "the access token was revoked".into(),
            Reason::NotReady => {
                "the revocation list is not loaded yet: no token can be checked".into()
            }
            Reason::Stale => {
                "the revocation list is out of date: no token can be checked now".into()
            }
            Reason::Inactive => "the issuer says the token is not active".into(),
            Reason::IntrospectionFailed => {
                "the revocation list is out of date and the issuer could not be asked".into()
            }
            Reason::InsufficientScope(_) => "the access token lacks a required scope".into(),
            Reason::LayerMissing => "the access token guard does not cover this route".into(),
        }
    }
}

/// A refused request: a [`Reason`] and the realm of the guard that refused
/// it. As a response (RFC 6750 §3): the reason's status, `WWW-Authenticate:
/// Bearer realm="...", error="...", error_description="..."` (plus
/// `scope="..."` for `insufficient_scope`; only `realm` for a missing token),
/// and the same as JSON `{"error": ..., "error_description": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", reason.description())]
pub struct Rejection {
    reason: Reason,
    realm: Arc<str>,
}

impl Rejection {
    pub(crate) fn new(reason: Reason, realm: Arc<str>) -> Self {
        Rejection { reason, realm }
    }

    /// Why.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.reason.status()
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), none for a 500.
    pub fn www_authenticate(&self) -> Option<String> {
        if self.reason == Reason::LayerMissing {
            return None;
        }
        let mut challenge = format!("Bearer realm=\"{}\"", self.realm);
        if let Some(error) = self.reason.error_code() {
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{}\"",
                self.reason.description()
            ));
        }
        if let Reason::InsufficientScope(scopes) = &self.reason {
            challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
        }
        Some(challenge)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        if let Some(error) = self.reason.error_code() {
            body.insert("error".into(), error.into());
        }
        body.insert("error_description".into(), self.reason.description().into());
        let mut response = (self.status(), Json(body)).into_response();
        // Every part is checked printable ASCII (realm and scopes when
        // configured, descriptions by construction), so this always succeeds.
        if let Some(value) = self
            .www_authenticate()
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Whether `s` may stand inside a quoted-string of the challenge as RFC 6750
/// §3 allows for `realm`, `error_description` and `scope`: printable ASCII
/// without `"` and `\`.
pub(crate) fn quotable(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// Required scopes as given to `require_scopes`, checked to be scope tokens
/// (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`, at least one character).
///
/// # Panics
/// On a scope that is not a scope token: a programming error, caught when the
/// router is built.
pub(crate) fn scope_list<I, S>(scopes: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    scopes
        .into_iter()
        .map(Into::into)
        .inspect(|scope: &String| {
            assert!(
                !scope.is_empty() && !scope.contains(' ') && quotable(scope),
                "latchkey-resource: {scope:?} is not a scope token (RFC 6749 §3.3)"
            );
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(reason: Reason) -> Rejection {
        Rejection::new(reason, Arc::from("notes"))
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            rejection(Reason::MissingToken).www_authenticate().unwrap(),
            "Bearer realm=\"notes\""
        );
        assert_eq!(
            rejection(Reason::Expired).www_authenticate().unwrap(),
            "Bearer realm=\"notes\", error=\"invalid_token\", error_description=\"the access token expired\""
        );
        let scope = rejection(Reason::InsufficientScope(vec![
            "notes:read".into(),
            "notes:write".into(),
        ]));
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            scope.www_authenticate().unwrap(),
            "Bearer realm=\"notes\", error=\"insufficient_scope\", error_description=\"the access token lacks a required scope\", scope=\"notes:read notes:write\""
        );
        assert_eq!(rejection(Reason::LayerMissing).www_authenticate(), None);
    }

    #[test]
    fn every_description_fits_a_quoted_string() {
        let reasons = [
            Reason::MissingToken,
            Reason::MalformedAuthorization,
            Reason::Malformed,
            Reason::WrongType,
            Reason::UnknownKey,
            Reason::WrongAlgorithm,
            Reason::BadSignature,
            Reason::Expired,
            Reason::NotYetValid,
            Reason::WrongIssuer,
            Reason::WrongAudience,
            Reason::MissingClaim("gid"),
            Reason::WrongShape,
            Reason::Revoked(RevocationKind::Grant),
            Reason::NotReady,
            Reason::Stale,
            Reason::Inactive,
            Reason::IntrospectionFailed,
            Reason::InsufficientScope(vec![]),
            Reason::LayerMissing,
        ];
        for reason in reasons {
            assert!(quotable(&reason.description()), "{reason:?}");
        }
    }

    #[test]
    #[should_panic(expected = "not a scope token")]
    fn a_scope_with_a_quote_is_refused() {
        scope_list(["notes\"read"]);
    }
}
