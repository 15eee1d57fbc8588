//! The tower layer: `Authorization: Bearer` in, [`AccessToken`] in the
//! request's extensions out (or the RFC 6750 §3 answer).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, Request};
use tower::{Layer, Service};

use crate::{claims::AccessToken, rejection::Reason, Guard};

/// The layer of [`Guard::layer`] and [`Guard::require_scopes`]: apply it with
/// axum's `Router::layer` / `route_layer` (or any tower stack).
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Guard,
    scopes: Arc<[String]>,
}

impl GuardLayer {
    pub(crate) fn new(guard: Guard, scopes: Vec<String>) -> Self {
        GuardLayer {
            guard,
            scopes: scopes.into(),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService {
            inner,
            guard: self.guard.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service [`GuardLayer`] wraps around yours: validates, then calls it
/// with the [`AccessToken`] in the extensions; answers the rejection itself.
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
    scopes: Arc<[String]>,
}

impl<S, B> Service<Request<B>> for GuardService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let verdict = guard
                .authorize(
                    request.headers(),
                    request.extensions().get::<AccessToken>(),
                    &scopes,
                )
                .await;
            match verdict {
                Ok(token) => {
                    request.extensions_mut().insert(token);
                    inner.call(request).await.map(IntoResponse::into_response)
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

/// The token of the request's one `Authorization: Bearer <token>` header (RFC
/// 6750 §2.1): the scheme in any case, one or more spaces, then a b64token.
/// No header, or one of another scheme: no credentials (RFC 6750 §3.1).
/// Tokens in the query or a form body (§2.2, §2.3) are not looked at.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, Reason> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Reason::MissingToken);
    };
    if values.next().is_some() {
        return Err(Reason::MalformedAuthorization);
    }
    let value = value.to_str().map_err(|_| Reason::MalformedAuthorization)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // A tab after `Bearer` is no separator (RFC 9110 §11.4): malformed,
        // not another scheme.
        return match scheme.get(..7) {
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer\t") => {
                Err(Reason::MalformedAuthorization)
            }
            _ => Err(Reason::MissingToken),
        };
    }
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) {
        Ok(token)
    } else {
        Err(Reason::MalformedAuthorization)
    }
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_tokens_are_read_per_rfc_6750() {
        for value in ["Bearer t.o.k", "BEARER t.o.k", "bearer  t.o.k"] {
            assert_eq!(bearer_token(&with(&[value])), Ok("t.o.k"), "{value}");
        }
        assert_eq!(bearer_token(&with(&["Bearer abc+/=="])), Ok("abc+/=="));
        assert_eq!(bearer_token(&HeaderMap::new()), Err(Reason::MissingToken));
        assert_eq!(
            bearer_token(&with(&["Basic YXBwOnM="])),
            Err(Reason::MissingToken)
        );
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer\tt.o.k",
            "Bearer a b",
            "Bearer ==",
            "Bearer a\"b",
        ] {
            assert_eq!(
                bearer_token(&with(&[value])),
                Err(Reason::MalformedAuthorization),
                "{value}"
            );
        }
        assert_eq!(
            bearer_token(&with(&["Bearer a", "Bearer b"])),
            Err(Reason::MalformedAuthorization)
        );
    }
}
