//! Prometheus metrics, through the `metrics` facade and
//! `metrics-exporter-prometheus`, served on their own listen address
//! (`serve --metrics-addr`, off by default) so that they are never exposed
//! where the issuer is: `GET /metrics` there answers the text exposition
//! format (version 0.0.4).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `latchkey_http_requests_total` | counter | `route` (the route's pattern), `method`, `status` |
//! | `latchkey_http_request_duration_seconds` | histogram (0.5 ms – 2.5 s) | `route`, `method` |
//! | `latchkey_tokens_issued_total` | counter | `grant` (`authorization_code`, `refresh_token`, `client_credentials`) |
//! | `latchkey_revoked_total` | counter | `kind` (`grant`, `family`, `jti`): what this instance revoked |
//! | `latchkey_refresh_token_reuse_total` | counter | reuse detections (RFC 9700 §4.14.2) |
//! | `latchkey_refreshes_total` | counter | `path`: `one_statement` (a rotation in one `UPDATE … RETURNING`), `full` (everything else: the family read, then decided) |
//! | `latchkey_sign_in_failures_total` | counter | wrong username or password |
//! | `latchkey_sign_in_lockouts_total` | counter | lockouts started (`throttle`) |
//! | `latchkey_rate_limited_total` | counter | `limit` (`ip`, `client`): requests answered 429 |
//! | `latchkey_durable_commits_total` | counter | durable write transactions committed (changes that take access away: on disk before acknowledged) |
//! | `latchkey_revoked_entries` | gauge | revocations held in memory (they still matter) |
//! | `latchkey_outbox_backlog` | gauge | `kind` (`backchannel_logout`, `upstream_revocation`): deliveries still to make |
//! | `latchkey_feed_subscribers` | gauge | open revocation streams |
//! | `latchkey_rate_limit_keys` | gauge | `limit`: addresses and clients the limiters remember |
//!
//! The gauges are read when scraped. With no `--metrics-addr` nothing is
//! recorded (the facade's no-op recorder) and requests are not timed.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Installs this process's recorder (at most one per process).
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    // Moved by each stream as it opens and ends: none yet.
    metrics::gauge!("latchkey_feed_subscribers").set(0.0);
    Ok(handle)
}

/// Middleware: counts every request by route pattern (never the raw path:
/// ids would make a series per token), method and status, and times it.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    // Standard methods by name, any other as `other`: a client must not
    // make a series per made-up method.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "latchkey_http_requests_total",
        "route" => route.clone(), "method" => method, "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "latchkey_http_request_duration_seconds",
        "route" => route, "method" => method
    )
    .record(seconds);
    response
}

/// Counts a token response of `grant`.
pub fn token_issued(grant: &'static str) {
    metrics::counter!("latchkey_tokens_issued_total", "grant" => grant).increment(1);
}

/// Counts a 429 of `limit` (`ip` or `client`).
pub fn rate_limited(limit: &'static str) {
    metrics::counter!("latchkey_rate_limited_total", "limit" => limit).increment(1);
}

/// The metrics listener's routes: `GET /metrics`.
pub fn router(handle: PrometheusHandle, state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((handle, state))
}

async fn scrape(State((handle, state)): State<(PrometheusHandle, AppState)>) -> Response {
    metrics::gauge!("latchkey_revoked_entries").set(state.revoked.len() as f64);
    let (addresses, clients) = state.limits.len();
    metrics::gauge!("latchkey_rate_limit_keys", "limit" => "ip").set(addresses as f64);
    metrics::gauge!("latchkey_rate_limit_keys", "limit" => "client").set(clients as f64);
    match app::domain::backchannel::backlog(&state.db).await {
        Ok((logout, upstream)) => {
            metrics::gauge!("latchkey_outbox_backlog", "kind" => "backchannel_logout")
                .set(logout as f64);
            metrics::gauge!("latchkey_outbox_backlog", "kind" => "upstream_revocation")
                .set(upstream as f64);
        }
        // The other metrics are still worth having; the backlog keeps its last value.
        Err(e) => tracing::warn!(error = %e, "metrics: reading the outbox backlog failed"),
    }
    handle.run_upkeep();
    let mut response = (StatusCode::OK, handle.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
