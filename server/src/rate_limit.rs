//! Request limits at the machine-facing endpoints: `/oauth/token`,
//! `/oauth/introspect`, `/oauth/revoke`, the revocation snapshot, userinfo,
//! the admin API and the upstream sign-in callback. Two keyed GCRA limiters
//! (the `governor` crate), each off-switchable and sized by `serve` flags:
//!
//! - **per client address** ([`per_ip`], a route layer): every request costs
//!   one; a failed client authentication ([`AuthFailed`]: wrong client
//!   credentials, a bad admin API token) costs [`Config::failure_cost`] in
//!   all, so guessing is slower than using.
//!   IPv6 addresses count per /64, which one subscriber usually holds whole;
//!   the address is `callers::client_ip`'s, so `--trusted-proxy` applies.
//! - **per client** ([`Limits::check_client`], after authentication): one
//!   runaway client cannot starve the others. Only authenticated clients are
//!   counted, so nobody can use up another client's allowance by sending its
//!   client_id with wrong secrets (that costs the sender's address instead).
//!
//! Over a limit the answer is `429 Too Many Requests` with `Retry-After`
//! (seconds, RFC 9110 §10.2.3) and the RFC 6749 §5.2 body
//! `{"error": "temporarily_unavailable", "error_description": …}` — the admin
//! API answers in its own error shape with `error: "rate_limited"`, the
//! browser's upstream sign-in routes with a page in words.
//! Limits are per instance and in memory: N instances allow N times as much.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    admin_api::error::ApiError,
    callers::{client_ip, TrustedProxies},
    oauth::error::OAuthError,
};
use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    clock::{Clock, DefaultClock, QuantaInstant},
    DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter,
};

/// A rate: `count` requests per `period`, up to `count` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub period: Duration,
}

/// A rate that is not `N/s`, `N/min`, `N/h` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidRate;

impl Rate {
    /// `N/s`, `N/min` or `N/h` (N from 1 to 1,000,000,000), or `off` (`None`).
    pub fn parse(raw: &str) -> Result<Option<Rate>, InvalidRate> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (count, unit) = raw.split_once('/').ok_or(InvalidRate)?;
        let period = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(InvalidRate),
        };
        let count: u32 = count.trim().parse().map_err(|_| InvalidRate)?;
        let count = NonZeroU32::new(count)
            .filter(|n| n.get() <= 1_000_000_000)
            .ok_or(InvalidRate)?;
        Ok(Some(Rate { count, period }))
    }

    fn quota(self) -> Quota {
        // One cell every period/count, a burst of count.
        let replenish = self.period / self.count.get();
        Quota::with_period(replenish.max(Duration::from_nanos(1)))
            .expect("a positive period")
            .allow_burst(self.count)
    }
}

/// The configured limits (`serve --rate-limit-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub per_ip: Option<Rate>,
    pub per_client: Option<Rate>,
    /// What a failed client authentication costs at its address, in requests (≥ 1).
    pub failure_cost: NonZeroU32,
}

impl Config {
    /// Defaults of `serve`: 200/s per address and per client, failures cost 10.
    pub const DEFAULT_PER_IP: &'static str = "200/s";
    pub const DEFAULT_PER_CLIENT: &'static str = "200/s";
    pub const DEFAULT_FAILURE_COST: &'static str = "10";

    /// No limits at all (tests that are not about them).
    pub fn off() -> Config {
        Config {
            per_ip: None,
            per_client: None,
            failure_cost: NonZeroU32::MIN,
        }
    }
}

/// The limiters of one process; cheap to clone (shared).
#[derive(Clone)]
pub struct Limits(Arc<Inner>);

struct Inner {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_client: Option<DefaultKeyedRateLimiter<String>>,
    failure_cost: NonZeroU32,
    /// When [`Limits::sweep`] last ran, in whole seconds since `started`.
    swept_at: AtomicU64,
    started: Instant,
}

/// How often the limiters forget the keys whose allowance is full again.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Refused: try again after this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooMany {
    pub retry_after: Duration,
}

impl TooMany {
    /// Whole seconds for `Retry-After`, at least 1.
    pub fn retry_after_secs(self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl Limits {
    pub fn new(config: Config) -> Limits {
        Limits(Arc::new(Inner {
            per_ip: config.per_ip.map(|r| RateLimiter::keyed(r.quota())),
            per_client: config.per_client.map(|r| RateLimiter::keyed(r.quota())),
            failure_cost: config.failure_cost,
            swept_at: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    /// Sweeps when the last sweep is [`SWEEP_EVERY`] old: one atomic read
    /// per request otherwise, and no task to run.
    fn sweep_when_due(&self) {
        let now = self.0.started.elapsed().as_secs();
        let last = self.0.swept_at.load(Ordering::Relaxed);
        if now >= last + SWEEP_EVERY.as_secs()
            && self
                .0
                .swept_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep();
        }
    }

    /// One request from `ip` (IPv6: its /64).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TooMany> {
        let Some(limiter) = &self.0.per_ip else {
            return Ok(());
        };
        self.sweep_when_due();
        limiter
            .check_key(&ip_key(ip))
            .map_err(|not_until| refused("ip", not_until))
    }

    /// A request from `ip` failed to authenticate its caller: it costs
    /// [`Config::failure_cost`] in all (the one already counted included).
    /// Cells beyond what is left are simply used up.
    pub fn charge_failure(&self, ip: IpAddr) {
        let (Some(limiter), Some(extra)) = (
            &self.0.per_ip,
            NonZeroU32::new(self.0.failure_cost.get() - 1),
        ) else {
            return;
        };
        let key = ip_key(ip);
        // All at once if it fits, else one by one until refused.
        if !matches!(limiter.check_key_n(&key, extra), Ok(Ok(()))) {
            for _ in 0..extra.get() {
                if limiter.check_key(&key).is_err() {
                    break;
                }
            }
        }
    }

    /// One request of an authenticated client.
    pub fn check_client(&self, client_id: &str) -> Result<(), TooMany> {
        let Some(limiter) = &self.0.per_client else {
            return Ok(());
        };
        // Allocates only for a client's first request since the last sweep.
        limiter
            .check_key(&client_id.to_owned())
            .map_err(|not_until| refused("client", not_until))
    }

    /// Forgets the keys whose allowance is full again, so memory follows
    /// the recent callers (every [`SWEEP_EVERY`], on a request).
    pub fn sweep(&self) {
        if let Some(l) = &self.0.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.0.per_client {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How many addresses and clients are remembered.
    pub fn len(&self) -> (usize, usize) {
        (
            self.0.per_ip.as_ref().map_or(0, |l| l.len()),
            self.0.per_client.as_ref().map_or(0, |l| l.len()),
        )
    }
}

/// A refusal of the `limit` limiter, counted (`latchkey_rate_limited_total`).
fn refused(limit: &'static str, not_until: NotUntil<QuantaInstant>) -> TooMany {
    crate::metrics::rate_limited(limit);
    TooMany {
        retry_after: not_until.wait_time_from(DefaultClock::default().now()),
    }
}

/// IPv4 addresses as they are; IPv6 addresses by their /64 (IPv4-mapped
/// IPv6 addresses as the IPv4 address).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Marks an answer to a failed authentication of the caller itself — wrong
/// client credentials (`invalid_client`), an admin API bearer token that is
/// not good — which costs [`Config::failure_cost`] at [`per_ip`]. A person's
/// revoked access token at userinfo does not: the app presenting it is not
/// guessing.
#[derive(Clone, Copy, Debug)]
pub struct AuthFailed;

/// Which error shape a limited route answers in.
#[derive(Clone, Copy)]
pub enum Shape {
    /// RFC 6749 §5.2 JSON.
    OAuth,
    /// The admin API's JSON.
    Admin,
    /// A page in words (the browser's upstream sign-in routes).
    Page,
}

/// The per-address limit as a route layer:
/// `axum::middleware::from_fn_with_state((limits, Shape::OAuth), per_ip)`.
/// A request without a peer address (an in-process test's) is not limited.
pub async fn per_ip(
    State((limits, shape)): State<(Limits, Shape)>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            let trusted = request
                .extensions()
                .get::<TrustedProxies>()
                .cloned()
                .unwrap_or_default();
            client_ip(peer.ip(), request.headers(), &trusted)
        });
    let Some(ip) = ip else {
        return next.run(request).await;
    };
    if let Err(refused) = limits.check_ip(ip) {
        // Debug only: a flood must not become a flood of log lines
        // (`latchkey_rate_limited_total` counts them).
        tracing::debug!(%ip, path = %request.uri().path(), "rate limit: too many requests from this address");
        return match shape {
            Shape::OAuth => OAuthError::too_many_requests(refused).into_response(),
            Shape::Admin => ApiError::too_many_requests(refused).into_response(),
            Shape::Page => crate::web::too_many_requests_page(refused.retry_after_secs()),
        };
    }
    let response = next.run(request).await;
    if response.extensions().get::<AuthFailed>().is_some() {
        limits.charge_failure(ip);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_their_units_and_off() {
        let rate = |count: u32, secs: u64| {
            Some(Rate {
                count: NonZeroU32::new(count).unwrap(),
                period: Duration::from_secs(secs),
            })
        };
        assert_eq!(Rate::parse("200/s"), Ok(rate(200, 1)));
        assert_eq!(Rate::parse(" 600 / min "), Ok(rate(600, 60)));
        assert_eq!(Rate::parse("10/h"), Ok(rate(10, 3600)));
        assert_eq!(Rate::parse("OFF"), Ok(None));
        for bad in [
            "",
            "200",
            "0/s",
            "-1/s",
            "1/d",
            "1.5/s",
            "s/1",
            "2000000000/s",
            "1/",
        ] {
            assert_eq!(Rate::parse(bad), Err(InvalidRate), "{bad:?}");
        }
    }

    fn limits(per_ip: &str, per_client: &str, failure_cost: u32) -> Limits {
        Limits::new(Config {
            per_ip: Rate::parse(per_ip).unwrap(),
            per_client: Rate::parse(per_client).unwrap(),
            failure_cost: NonZeroU32::new(failure_cost).unwrap(),
        })
    }

    #[test]
    fn an_address_gets_its_burst_then_waits() {
        let l = limits("3/min", "off", 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.check_ip(a), Ok(()));
        }
        let refused = l.check_ip(a).unwrap_err();
        // One cell comes back every 20 s.
        assert!(refused.retry_after <= Duration::from_secs(20));
        assert!(
            (1..=20).contains(&refused.retry_after_secs()),
            "{refused:?}"
        );
        // Another address is not affected.
        assert_eq!(l.check_ip("192.0.2.2".parse().unwrap()), Ok(()));
    }

    #[test]
    fn a_failure_costs_more_than_a_success() {
        let l = limits("10/min", "off", 4);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        // Two requests answered 401: 2 × 4 = 8 of 10.
        for _ in 0..2 {
            l.check_ip(a).unwrap();
            l.charge_failure(a);
        }
        assert_eq!(l.check_ip(a), Ok(()));
        assert_eq!(l.check_ip(a), Ok(()));
        assert!(l.check_ip(a).is_err());
        // A failure beyond what is left uses up the rest.
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..8 {
            l.check_ip(b).unwrap();
        }
        l.charge_failure(b);
        assert!(l.check_ip(b).is_err());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = limits("2/min", "off", 1);
        l.check_ip("2001:db8:1:2::1".parse().unwrap()).unwrap();
        l.check_ip("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert!(l.check_ip("2001:db8:1:2::77".parse().unwrap()).is_err());
        assert_eq!(l.check_ip("2001:db8:1:3::1".parse().unwrap()), Ok(()));
        l.check_ip("192.0.2.9".parse().unwrap()).unwrap();
        l.check_ip("::ffff:192.0.2.9".parse().unwrap()).unwrap();
        assert!(l.check_ip("192.0.2.9".parse().unwrap()).is_err());
    }

    #[test]
    fn clients_are_limited_apart_and_off_means_off() {
        let l = limits("off", "1/min", 10);
        assert_eq!(l.check_client("a"), Ok(()));
        assert!(l.check_client("a").is_err());
        assert_eq!(l.check_client("b"), Ok(()));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..1000 {
            l.check_ip(a).unwrap();
            l.charge_failure(a);
        }
        let off = Limits::new(Config::off());
        for _ in 0..1000 {
            off.check_client("a").unwrap();
        }
        assert_eq!(off.len(), (0, 0));
    }

    #[test]
    fn sweeping_forgets_full_allowances() {
        let l = limits("1000/s", "1000/s", 1);
        l.check_ip("192.0.2.1".parse().unwrap()).unwrap();
        l.check_client("a").unwrap();
        assert_eq!(l.len(), (1, 1));
        std::thread::sleep(Duration::from_millis(5));
        l.sweep();
        assert_eq!(l.len(), (0, 0));
    }
}
