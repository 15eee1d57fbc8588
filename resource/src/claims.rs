//! The claims of a validated access token and the extractor handlers take.

use std::{ops::Deref, sync::Arc};

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::{Deserialize, Deserializer, Serialize};

use crate::rejection::{Reason, Rejection};

/// The claims of a Latchkey access token (RFC 9068 §2.2) that passed every
/// check of [`Guard::validate`](crate::Guard::validate).
///
/// Besides RFC 9068's claims, Latchkey's revocation handles: `gid` (the grant,
/// always), `fid` (the token family; absent on client_credentials tokens) and
/// `sid` (the sign-in, when there is one). Claims this struct does not name are
/// in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// The issuer: equal to the configured one.
    pub iss: String,
    /// The subject: the user's id, or the client's for client_credentials.
    pub sub: String,
    /// The audiences (a single string in the token becomes one element); the
    /// configured audience is one of them.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// The token's unique id.
    pub jti: String,
    /// The granted scopes, space-separated (RFC 6749 §3.3); empty when the
    /// token carries none.
    #[serde(default)]
    pub scope: String,
    /// Latchkey's grant id.
    pub gid: String,
    /// Latchkey's token family id (none for client_credentials tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<String>,
    /// Latchkey's sign-in id (OpenID Connect `sid`), when the token came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Every other claim of the token.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether `scope` was granted (exact, case-sensitive comparison: RFC 6749 §3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A validated access token: what the guard's layer puts into the request's
/// extensions, and an axum extractor for handlers behind that layer.
///
/// Dereferences to its [`Claims`]. Only the guard makes one: a handler that
/// extracts it knows the token passed the signature, claim, revocation and
/// freshness checks (and the layer's required scopes).
///
/// Extracting it on a route the guard's layer does not cover is a programming
/// error: the extractor answers 500 and logs it (it never lets the request
/// through unchecked).
///
/// ```no_run
/// use latchkey_resource::AccessToken;
///
/// async fn whoami(token: AccessToken) -> String {
///     format!("{} via {}", token.sub, token.client_id)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub(crate) claims: Arc<Claims>,
    /// Which guard validated it (a token another guard validated, for another
    /// issuer or audience, is validated again).
    pub(crate) guard_id: u64,
    pub(crate) realm: Arc<str>,
    pub(crate) introspected: bool,
}

impl AccessToken {
    /// The token's claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Whether the issuer's introspection endpoint vouched for this token
    /// because the revocation feed was stale ([`Fallback::Introspect`](crate::Fallback::Introspect)).
    pub fn checked_by_introspection(&self) -> bool {
        self.introspected
    }

    /// `Ok` when every scope of `required` was granted; otherwise the 403
    /// `insufficient_scope` rejection naming them (RFC 6750 §3.1), for checks
    /// inside a handler.
    ///
    /// # Panics
    /// When a required scope is not a valid scope token (RFC 6749 §3.3: empty,
    /// or a space, `"` or `\`), since it could not be named in the challenge.
    pub fn require_scopes<I, S>(&self, required: I) -> Result<(), Rejection>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let required = crate::rejection::scope_list(required);
        self.check_scopes(&required)
    }

    pub(crate) fn check_scopes(&self, required: &[String]) -> Result<(), Rejection> {
        if required.iter().all(|s| self.claims.has_scope(s)) {
            Ok(())
        } else {
            Err(Rejection::new(
                Reason::InsufficientScope(required.to_vec()),
                self.realm.clone(),
            ))
        }
    }
}

impl Deref for AccessToken {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        parts.extensions.get::<AccessToken>().cloned().ok_or_else(|| {
            tracing::error!(
                path = %parts.uri.path(),
                "latchkey-resource: a handler extracts AccessToken but the guard's layer does not cover this route; answering 500"
            );
            Rejection::new(Reason::LayerMissing, Arc::from(""))
        })
    }
}
