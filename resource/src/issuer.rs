//! The requests the guard makes to the issuer: discovery, JWKS, the
//! client_credentials token, a snapshot page, the stream, introspection.

use std::time::{Duration, Instant};

use http::{header, StatusCode};
use serde::Deserialize;
use url::Url;

use crate::{config::Config, keys, revoked::Entry};

/// The scope a client needs for the revocation feed.
pub(crate) const FEED_SCOPE: &str = "latchkey:revocations";

/// Entries asked for per snapshot page (the feed allows up to 10,000).
const PAGE_LIMIT: u32 = 1000;

/// What went wrong talking to the issuer (logged, and shown in
/// [`Health::last_error`](crate::Health::last_error)).
#[derive(Debug, thiserror::Error)]
pub(crate) enum IssuerError {
    #[error("{what}: {source}")]
    Http {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("{what}: the issuer answered {status}")]
    Status {
        what: &'static str,
        status: StatusCode,
    },
    /// 401: the feed token is missing, expired or revoked (get another).
    #[error("{what}: 401, the feed token was refused")]
    Unauthorized { what: &'static str },
    #[error("{what}: 403, this API's client may not use the revocation feed (its registration must allow the scope latchkey:revocations)")]
    Forbidden { what: &'static str },
    #[error("{what}: {why}")]
    BadResponse { what: &'static str, why: String },
    #[error("the stream was silent for {0:?}: reconnecting")]
    Idle(Duration),
    #[error("the issuer closed the stream")]
    Closed,
}

impl IssuerError {
    fn http(what: &'static str) -> impl FnOnce(reqwest::Error) -> IssuerError {
        move |source| IssuerError::Http { what, source }
    }

    pub fn bad(what: &'static str, why: impl Into<String>) -> IssuerError {
        IssuerError::BadResponse {
            what,
            why: why.into(),
        }
    }
}

/// The endpoints discovery announced.
#[derive(Debug)]
pub(crate) struct Endpoints {
    pub jwks_uri: Url,
    pub token: Url,
    pub introspection: Option<Url>,
    pub feed: Url,
    pub stream: Url,
}

/// `GET {issuer}/.well-known/openid-configuration` (OpenID Connect Discovery
/// §4): its `issuer` must be ours exactly (§4.3), and it must announce the
/// JWKS, the token endpoint and both feed endpoints.
pub(crate) async fn discover(
    http: &reqwest::Client,
    config: &Config,
) -> Result<Endpoints, IssuerError> {
    const WHAT: &str = "discovery";
    let response = send(WHAT, config, http.get(config.discovery_url.clone())).await?;
    let document: serde_json::Value = ok_json(WHAT, response).await?;
    let announced = document.get("issuer").and_then(|v| v.as_str());
    if announced != Some(config.issuer.as_str()) {
        return Err(IssuerError::bad(
            WHAT,
            format!(
                "the metadata names the issuer {announced:?}, not the configured {:?}",
                config.issuer
            ),
        ));
    }
    let url = |name: &'static str| -> Result<Url, IssuerError> {
        let value = document.get(name).and_then(|v| v.as_str()).ok_or_else(|| {
            IssuerError::bad(
                WHAT,
                format!(
                    "the metadata has no {name} (is this a Latchkey with the revocation feed?)"
                ),
            )
        })?;
        Url::parse(value).map_err(|e| IssuerError::bad(WHAT, format!("{name}: {e}")))
    };
    Ok(Endpoints {
        jwks_uri: url("jwks_uri")?,
        token: url("token_endpoint")?,
        introspection: url("introspection_endpoint").ok(),
        feed: url("revocation_feed_endpoint")?,
        stream: url("revocation_feed_stream_endpoint")?,
    })
}

/// `GET jwks_uri`: the usable keys by `kid`.
pub(crate) async fn fetch_jwks(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
) -> Result<std::collections::HashMap<String, std::sync::Arc<keys::VerifyKey>>, IssuerError> {
    const WHAT: &str = "JWKS";
    let response = send(WHAT, config, http.get(endpoints.jwks_uri.clone())).await?;
    let document: serde_json::Value = ok_json(WHAT, response).await?;
    let (keys, skipped) = keys::parse_jwks(&document).map_err(|why| IssuerError::bad(WHAT, why))?;
    if skipped > 0 {
        tracing::debug!(
            skipped,
            "latchkey-resource: JWKS keys without a kid or a usable signature algorithm were skipped"
        );
    }
    Ok(keys)
}

/// A client_credentials access token for the feed, and when to get another.
pub(crate) struct FeedToken {
    pub value: String,
    pub renew_at: Instant,
}

/// `POST token_endpoint` with `grant_type=client_credentials` and
/// `scope=latchkey:revocations` (RFC 6749 §4.4), `client_secret_basic`. The
/// token is renewed after three quarters of its `expires_in` (60 s assumed
/// when the answer has none).
pub(crate) async fn feed_token(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
) -> Result<FeedToken, IssuerError> {
    const WHAT: &str = "client_credentials token";
    #[derive(Deserialize)]
    struct TokenResponse {
        access_token: String,
        token_type: String,
        expires_in: Option<u64>,
    }
    let asked = Instant::now();
    let request = client_auth(http.post(endpoints.token.clone()), config)
        .form(&[("grant_type", "client_credentials"), ("scope", FEED_SCOPE)]);
    let response = send(WHAT, config, request).await?;
    let status = response.status();
    if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
        // RFC 6749 §5.2: say which error (invalid_client, invalid_scope...).
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let error = body.get("error").and_then(|e| e.as_str()).unwrap_or("?");
        return Err(IssuerError::bad(
            WHAT,
            format!(
                "refused with {status} {error} (check the client id and secret, and that the client may ask for {FEED_SCOPE})"
            ),
        ));
    }
    let token: TokenResponse = ok_json(WHAT, response).await?;
    if !token.token_type.eq_ignore_ascii_case("bearer") {
        return Err(IssuerError::bad(
            WHAT,
            format!("token_type {:?} is not Bearer", token.token_type),
        ));
    }
    let lifetime = Duration::from_secs(token.expires_in.unwrap_or(60));
    Ok(FeedToken {
        value: token.access_token,
        renew_at: asked + lifetime * 3 / 4,
    })
}

/// One page of the snapshot.
#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    pub entries: Vec<Entry>,
    pub next: i64,
    pub more: bool,
}

/// `GET revocation_feed_endpoint?after=P&limit=N` with the feed token.
pub(crate) async fn snapshot_page(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    token: &str,
    after: i64,
) -> Result<Page, IssuerError> {
    const WHAT: &str = "revocation snapshot";
    let request = http
        .get(endpoints.feed.clone())
        .query(&[
            ("after", after.to_string()),
            ("limit", PAGE_LIMIT.to_string()),
        ])
        .bearer_auth(token);
    let response = send(WHAT, config, request).await?;
    feed_status(WHAT, &response)?;
    ok_json(WHAT, response).await
}

/// `GET revocation_feed_stream_endpoint` with `Last-Event-ID: after`: the
/// open response (status and content type checked), its body still to read.
pub(crate) async fn open_stream(
    http: &reqwest::Client,
    config: &Config,
    endpoints: &Endpoints,
    token: &str,
    after: i64,
) -> Result<reqwest::Response, IssuerError> {
    const WHAT: &str = "revocation stream";
    let request = http
        .get(endpoints.stream.clone())
        .bearer_auth(token)
        .header(header::ACCEPT, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("last-event-id", after.to_string())
        .send();
    // Only the wait for the response head is bounded; the body is read with
    // the idle timeout.
    let response = tokio::time::timeout(config.request_timeout, request)
        .await
        .map_err(|_| IssuerError::bad(WHAT, "no answer within the request timeout"))?
        .map_err(IssuerError::http(WHAT))?;
    feed_status(WHAT, &response)?;
    if !response.status().is_success() {
        return Err(IssuerError::Status {
            what: WHAT,
            status: response.status(),
        });
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
    {
        return Err(IssuerError::bad(
            WHAT,
            format!("content type {content_type:?} is not text/event-stream"),
        ));
    }
    Ok(response)
}

/// `POST introspection_endpoint` (RFC 7662 §2.1) with `token`,
/// `client_secret_basic`: whether the issuer says the token is active.
pub(crate) async fn introspect(
    http: &reqwest::Client,
    config: &Config,
    endpoint: &Url,
    token: &str,
) -> Result<bool, IssuerError> {
    const WHAT: &str = "introspection";
    let request = client_auth(http.post(endpoint.clone()), config)
        .form(&[("token", token), ("token_type_hint", "access_token")]);
    let response = send(WHAT, config, request).await?;
    let answer: serde_json::Value = ok_json(WHAT, response).await?;
    answer
        .get("active")
        .and_then(|a| a.as_bool())
        .ok_or_else(|| IssuerError::bad(WHAT, "the answer has no boolean \"active\""))
}

/// Sends `request` with the request timeout.
async fn send(
    what: &'static str,
    config: &Config,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, IssuerError> {
    request
        .timeout(config.request_timeout)
        .send()
        .await
        .map_err(IssuerError::http(what))
}

/// `client_secret_basic`: id and secret form-urlencoded, then Basic (RFC 6749 §2.3.1).
fn client_auth(request: reqwest::RequestBuilder, config: &Config) -> reqwest::RequestBuilder {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    request.basic_auth(
        encode(&config.client_id),
        Some(encode(&config.client_secret)),
    )
}

/// 401 and 403 of a feed endpoint, told apart from other failures.
fn feed_status(what: &'static str, response: &reqwest::Response) -> Result<(), IssuerError> {
    match response.status() {
        StatusCode::UNAUTHORIZED => Err(IssuerError::Unauthorized { what }),
        StatusCode::FORBIDDEN => Err(IssuerError::Forbidden { what }),
        _ => Ok(()),
    }
}

/// A 2xx JSON body as `T`.
async fn ok_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    response: reqwest::Response,
) -> Result<T, IssuerError> {
    let status = response.status();
    if !status.is_success() {
        return Err(IssuerError::Status { what, status });
    }
    let body = response.bytes().await.map_err(IssuerError::http(what))?;
    serde_json::from_slice(&body).map_err(|e| IssuerError::bad(what, format!("bad JSON: {e}")))
}
