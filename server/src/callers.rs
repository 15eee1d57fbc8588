//! Who is calling: one extractor per kind of caller, so that no handler
//! resolves a sign-in or reads a Bearer token by hand.
//!
//! | extractor | the caller | refused with |
//! | --- | --- | --- |
//! | [`Caller`] | anyone: address ([`client_ip`]) and user agent | never |
//! | [`Browser`] | a browser; its sign-in, if any, read when asked ([`Browser::signed_in`]); a signed-in person by [`Browser::signed_in_or_refused`] | a 500 page when the sign-in cannot be read; nobody signed in → to sign-in and back here |
//! | [`AdminPerson`] | a signed-in admin (the console outside server functions) | as a person; not an admin → 403 page |
//! | [`BearerToken`] | the holder of a live access token (RFC 6750) | 401 with a Bearer challenge ([`OAuthError`]) |
//!
//! What a bearer *client* may do (its own client_credentials token with a
//! scope it is still registered for) is `admin_api::auth::client_holding`,
//! built on [`BearerToken`]. Server functions have their own two:
//! `app::api::ssr::require_signed_in` and `require_admin`, over the same
//! resolver (`signed_in_from`).

use std::net::{IpAddr, SocketAddr};

use app::{
    api::ssr::signed_in_from,
    domain::{
        login_sessions::{ClientInfo, SignedIn},
        tokens::AccessClaims,
    },
};
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts, HeaderMap, Uri},
    response::{IntoResponse, Redirect, Response},
};
use tower_sessions::Session;

use crate::{
    oauth::error::{ErrorCode, OAuthError},
    request_headers,
    state::AppState,
    web,
};

/// The caller's address and user agent, for sign-in sessions, throttling and
/// the audit log. The address is [`client_ip`]'s.
#[derive(Clone, Debug)]
pub struct Caller(pub ClientInfo);

/// The reverse proxies (`--trusted-proxy`) whose `X-Forwarded-For` names the
/// client; a request extension set by the router. Empty: none.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub std::sync::Arc<Vec<ipnet::IpNet>>);

impl TrustedProxies {
    fn trusts(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

/// The client's address: the TCP peer's, unless the peer is a trusted proxy;
/// then the `X-Forwarded-For` entries (every such header, in order) are read
/// from the right, each trusted proxy skipped, and the first other address
/// is the client. A malformed entry ends the walk at the hop after it (what
/// that hop, trusted, saw). Headers from an untrusted peer are ignored, so
/// nobody can choose their own address.
pub fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &TrustedProxies,
) -> IpAddr {
    if !trusted.trusts(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.trusts(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| {
                let trusted = parts
                    .extensions
                    .get::<TrustedProxies>()
                    .cloned()
                    .unwrap_or_default();
                client_ip(c.0.ip(), &parts.headers, &trusted).to_string()
            })
            .unwrap_or_default();
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(512)
            .collect();
        Ok(Caller(ClientInfo { ip, user_agent }))
    }
}

/// A browser: its session and who it is ([`Caller`]). Its sign-in is read
/// only when the handler asks ([`Browser::signed_in`]), after what needs no
/// database: a request refused for its parameters costs no read.
pub struct Browser {
    pub session: Session,
    pub from: ClientInfo,
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(Caller(from)) = Caller::from_request_parts(parts, state).await;
        Ok(Browser { session, from })
    }
}

impl Browser {
    /// The sign-in this browser holds: `None` when nobody is signed in here
    /// (or the sign-in ended); a 500 page with a request id when it cannot be
    /// read (the database).
    pub async fn signed_in(&self, state: &AppState) -> Result<Option<SignedIn>, Response> {
        signed_in_from(&state.db, &self.session, &self.from)
            .await
            .map_err(|e| web::internal_error("resolving the sign-in", &e))
    }

    /// The one rule for what only a signed-in person (`admin`: an admin)
    /// may open: nobody signed in → a redirect to sign-in that comes back to
    /// `uri` (its path and query); signed in but not an admin where one is
    /// needed → 403 page; the sign-in unreadable → 500 page.
    pub async fn signed_in_or_refused(
        &self,
        state: &AppState,
        uri: &Uri,
        admin: bool,
    ) -> Result<SignedIn, Response> {
        match self.signed_in(state).await? {
            Some(s) if admin && !s.user.is_admin => Err(web::forbidden_page()),
            Some(s) => Ok(s),
            None => {
                let here = uri
                    .path_and_query()
                    .map_or(app::paths::HOME, |p| p.as_str());
                Err(Redirect::to(&web::sign_in_url(here, None)).into_response())
            }
        }
    }
}

/// A signed-in admin: what [`Browser::signed_in_or_refused`] lets through
/// for an admin-only route.
pub struct AdminPerson(pub SignedIn);

impl FromRequestParts<AppState> for AdminPerson {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let browser = Browser::from_request_parts(parts, state).await?;
        browser
            .signed_in_or_refused(state, &parts.uri, true)
            .await
            .map(AdminPerson)
    }
}

/// The holder of a live access token of this issuer, from
/// `Authorization: Bearer` (RFC 6750 §2.1), verified and checked against the
/// revoked sets in memory (`tokens::live_access_token`). What the token may
/// do — its scope, whether a person's or a client's — is the route's to check.
pub struct BearerToken(pub AccessClaims);

impl BearerToken {
    /// The claims of the request's live access token, or 401 with a Bearer
    /// challenge (RFC 6750 §3.1): no token → no error code; a malformed
    /// header, or a token invalid, expired or revoked (or unknowable: a
    /// stale instance fails closed) → `invalid_token`.
    pub async fn of(headers: &HeaderMap, state: &AppState) -> Result<AccessClaims, OAuthError> {
        let token = request_headers::bearer_token(headers).map_err(|refused| {
            OAuthError::bearer_unauthorized(refused.error(), refused.description())
        })?;
        state.live_access_token(&token).await.ok_or_else(|| {
            OAuthError::bearer_unauthorized(
                Some(ErrorCode::InvalidToken),
                "the access token is invalid, expired or revoked",
            )
        })
    }
}

impl FromRequestParts<AppState> for BearerToken {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        Self::of(&parts.headers, state).await.map(BearerToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = TrustedProxies(std::sync::Arc::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ]));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let headers = |values: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for v in values {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            h
        };
        // An untrusted peer's header is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &headers(&["198.51.100.1"]), &trusted),
            ip("203.0.113.9")
        );
        // Through one proxy; through two (the inner one trusted).
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&["198.51.100.1"]), &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                &headers(&["198.51.100.1, 10.1.2.3"]),
                &trusted
            ),
            ip("198.51.100.1")
        );
        // A spoofed entry on the left is not believed: the rightmost untrusted one is.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                &headers(&["6.6.6.6", "198.51.100.1"]),
                &trusted
            ),
            ip("198.51.100.1")
        );
        // Garbage stops the walk at the last good hop; no header: the peer.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&["nonsense, 10.1.2.3"]), &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &headers(&[]), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                &headers(&["::1"]),
                &TrustedProxies::default()
            ),
            ip("127.0.0.1")
        );
    }
}
