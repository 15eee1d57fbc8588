//! The guard's configuration: [`GuardBuilder`].

use std::{fmt, sync::Arc, time::Duration};

use url::Url;

use crate::{rejection::quotable, Guard};

/// What the guard does while its revocation set is stale: the feed has been
/// silent for longer than [`GuardBuilder::stale_after`], or its first snapshot
/// has not been loaded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// Refuse every token (401 `invalid_token`) until the feed caught up, with
    /// one `tracing::error!` line per outage. The default: a revoked token is
    /// never accepted because the guard could not hear of its revocation.
    #[default]
    FailClosed,
    /// Validate every token locally as usual and then ask the issuer's
    /// introspection endpoint (RFC 7662) with this API's client credentials;
    /// accept only `active: true`. Introspection unreachable → 401.
    /// Costs one request to the issuer per API request while stale.
    Introspect,
}

impl Fallback {
    /// `fail-closed` or `introspect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::FailClosed => "fail-closed",
            Fallback::Introspect => "introspect",
        }
    }
}

/// A configuration the guard cannot start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an absolute http(s) URL without query and fragment
    /// (OpenID Connect Discovery §4 / RFC 8414 §2).
    #[error("the issuer must be an http(s) URL without query or fragment: {0}")]
    InvalidIssuer(String),
    /// [`GuardBuilder::audience`] was not called.
    #[error("the expected audience is required (GuardBuilder::audience)")]
    MissingAudience,
    /// [`GuardBuilder::client_credentials`] was not called, or with an empty id or secret.
    #[error("this API's client_id and client_secret are required (GuardBuilder::client_credentials): the revocation feed needs a client_credentials token")]
    MissingClientCredentials,
    /// A setting out of range (the message names it).
    #[error("{0}")]
    InvalidSetting(String),
    /// `build` was called outside a tokio runtime: the guard runs background tasks.
    #[error("GuardBuilder::build must be called inside a tokio runtime")]
    NoRuntime,
    /// The default HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Configures a [`Guard`]: `Guard::builder(issuer)`, the setters, then
/// [`build`](Self::build).
///
/// ```no_run
/// # async fn demo() -> Result<(), latchkey_resource::ConfigError> {
/// use std::time::Duration;
/// use latchkey_resource::{Fallback, Guard};
///
/// let guard = Guard::builder("https://id.example.com")
///     .audience("https://notes.example.com")
///     .client_credentials("notes-api", "its secret")
///     .stale_after(Duration::from_secs(30))
///     .fallback(Fallback::FailClosed)
///     .build()?;
/// # Ok(()) }
/// ```
pub struct GuardBuilder {
    issuer: String,
    audience: Option<String>,
    client: Option<(String, String)>,
    stale_after: Duration,
    fallback: Fallback,
    leeway: Duration,
    jwks_refetch_interval: Duration,
    backoff: (Duration, Duration),
    realm: Option<String>,
    http: Option<reqwest::Client>,
    request_timeout: Duration,
}

impl fmt::Debug for GuardBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("client_id", &self.client.as_ref().map(|c| &c.0))
            .field("stale_after", &self.stale_after)
            .field("fallback", &self.fallback)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// The checked configuration a guard runs with.
pub(crate) struct Config {
    pub issuer: String,
    pub audience: String,
    pub client_id: String,
    pub client_secret: String,
    pub stale_after: Duration,
    pub fallback: Fallback,
    pub leeway: Duration,
    pub jwks_refetch_interval: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub realm: Arc<str>,
    pub request_timeout: Duration,
    /// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery §4).
    pub discovery_url: Url,
}

impl Config {
    /// How long the stream may stay silent before the guard drops it and
    /// reconnects: two thirds of the staleness bound, so that the reconnect's
    /// catch-up has the last third to finish before the set counts as stale.
    pub fn idle_timeout(&self) -> Duration {
        self.stale_after * 2 / 3
    }

    /// The leeway in whole seconds (as `exp`, `nbf` and `until` are).
    pub fn leeway_secs(&self) -> i64 {
        i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX)
    }
}

impl GuardBuilder {
    pub(crate) fn new(issuer: impl Into<String>) -> Self {
        GuardBuilder {
            issuer: issuer.into(),
            audience: None,
            client: None,
            stale_after: Duration::from_secs(30),
            fallback: Fallback::FailClosed,
            leeway: Duration::from_secs(5),
            jwks_refetch_interval: Duration::from_secs(10),
            backoff: (Duration::from_millis(250), Duration::from_secs(10)),
            realm: None,
            http: None,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// The audience this API expects in `aud` (a string, or one element of an
    /// array: RFC 9068 §4). Required. Latchkey's tokens name the issuer today
    /// and the resource server once registered as one.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// This API's own client at the issuer: a confidential client allowed the
    /// scope `latchkey:revocations`. Required: the guard obtains a
    /// client_credentials token with it for the revocation feed (renewed
    /// before it expires and after a 401), and authenticates introspection
    /// with it (`client_secret_basic`, RFC 6749 §2.3.1).
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.client = Some((client_id.into(), client_secret.into()));
        self
    }

    /// The staleness bound (default 30 s): how long the revocation set may go
    /// without news from the feed (an event, a keep-alive, a caught-up
    /// snapshot) before [`Fallback`] applies. Latchkey sends a keep-alive
    /// every 15 s on an idle stream; the guard drops a stream silent for two
    /// thirds of the bound and reconnects (catching up through the snapshot),
    /// so a bound under about 23 s works but reconnects every two thirds of it
    /// while nothing happens.
    pub fn stale_after(mut self, bound: Duration) -> Self {
        self.stale_after = bound;
        self
    }

    /// What to do while stale (default [`Fallback::FailClosed`]).
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Clock-skew leeway for `exp` and `nbf` (default 5 s, whole seconds).
    /// Revocation entries are held that much past their `until` too, so a
    /// token accepted within the leeway is still checked against them.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The minimum interval between two JWKS fetches caused by an unknown
    /// `kid` (default 10 s): a new signing key is picked up by the first
    /// token that uses it, and a flood of made-up `kid`s costs the issuer at
    /// most one request per interval. (The JWKS is also loaded at the start
    /// and refreshed every 5 minutes in the background; those fetches do not
    /// count.)
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// Reconnection backoff of the feed (default 250 ms doubling up to 10 s,
    /// each wait jittered between half and all of it); reset once a stream
    /// delivers its first bytes.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = (initial, max);
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenges (default: the audience).
    /// Printable ASCII without `"` or `\`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The HTTP client for discovery, JWKS, token, feed and introspection
    /// requests (for your own TLS roots or proxy). It should not follow
    /// redirects. Default: reqwest without redirects, 5 s connect timeout
    /// (TLS only with the crate's `rustls` feature).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Timeout of each request to the issuer but the stream (default 10 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Checks the configuration and starts the guard: its background tasks
    /// (discovery, JWKS, the feed's snapshot and stream, the sweep) run until
    /// the last clone of the [`Guard`] is dropped. Returns at once; the guard
    /// refuses every token until the first snapshot is loaded (see
    /// [`Guard::ready`]).
    ///
    /// # Errors
    /// [`ConfigError`]: a bad issuer URL, no audience or client credentials, a
    /// zero staleness bound or backoff, a realm that cannot be quoted, no
    /// tokio runtime.
    pub fn build(self) -> Result<Guard, ConfigError> {
        let issuer_url =
            Url::parse(&self.issuer).map_err(|e| ConfigError::InvalidIssuer(e.to_string()))?;
        if !matches!(issuer_url.scheme(), "http" | "https")
            || issuer_url.query().is_some()
            || issuer_url.fragment().is_some()
            || issuer_url.host_str().is_none()
        {
            return Err(ConfigError::InvalidIssuer(self.issuer));
        }
        let discovery_url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        ))
        .map_err(|e| ConfigError::InvalidIssuer(e.to_string()))?;
        let audience = self
            .audience
            .filter(|a| !a.is_empty())
            .ok_or(ConfigError::MissingAudience)?;
        let (client_id, client_secret) = self
            .client
            .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
            .ok_or(ConfigError::MissingClientCredentials)?;
        if self.stale_after.is_zero() {
            return Err(ConfigError::InvalidSetting(
                "stale_after must be more than zero".into(),
            ));
        }
        let (backoff_min, backoff_max) = self.backoff;
        if backoff_min.is_zero() || backoff_min > backoff_max {
            return Err(ConfigError::InvalidSetting(
                "reconnect_backoff: the initial wait must be more than zero and at most the maximum"
                    .into(),
            ));
        }
        let realm = self.realm.unwrap_or_else(|| audience.clone());
        if !quotable(&realm) {
            return Err(ConfigError::InvalidSetting(format!(
                "the realm {realm:?} must be printable ASCII without '\"' or '\\' (set GuardBuilder::realm)"
            )));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;
        let custom_client = self.http.is_some();
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(5))
                .tcp_keepalive(Duration::from_secs(30))
                .user_agent(concat!("latchkey-resource/", env!("CARGO_PKG_VERSION")))
                .build()?,
        };
        warn_about_transport(&issuer_url, custom_client);
        let config = Config {
            issuer: self.issuer,
            audience,
            client_id,
            client_secret,
            stale_after: self.stale_after,
            fallback: self.fallback,
            leeway: self.leeway,
            jwks_refetch_interval: self.jwks_refetch_interval,
            backoff_min,
            backoff_max,
            realm: Arc::from(realm),
            request_timeout: self.request_timeout,
            discovery_url,
        };
        Ok(Guard::start(config, http, &runtime))
    }
}

/// Plain http to another host sends this API's client secret and every token
/// in the clear; https without TLS compiled in cannot connect. Neither stops
/// the guard (a private network may be fine; your own client may have TLS).
fn warn_about_transport(issuer: &Url, custom_client: bool) {
    let loopback = match issuer.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if issuer.scheme() == "http" && !loopback {
        tracing::warn!(
            %issuer,
            "latchkey-resource: the issuer is plain http: the client secret and tokens cross the network unencrypted"
        );
    }
    if issuer.scheme() == "https" && !custom_client && !cfg!(feature = "rustls") {
        tracing::warn!(
            %issuer,
            "latchkey-resource: the issuer is https but the crate was built without its `rustls` feature (and no http_client was given): requests to it may fail"
        );
    }
}
