//! The background tasks: following the revocation feed, and the sweep.
//!
//! One session: discovery (once), the JWKS (until loaded), a feed token (until
//! it is due for renewal), then the snapshot from the last applied position
//! until it has no `more` (the set is then complete as of that request), then
//! the stream with `Last-Event-ID` = that position, read until it fails or is
//! silent for two thirds of the staleness bound. Then a jittered exponential
//! backoff, and the next session resumes from the last applied position: no
//! entry is missed and none applied twice.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use eventsource_stream::EventStream;
use futures_util::{FutureExt, StreamExt};
use rand::Rng;

use crate::{
    freshness::unix_now,
    guard::Inner,
    issuer::{self, FeedToken, IssuerError},
    revoked::{Entry, RevokedSet},
};

/// How often expired entries are swept and the outage state is logged.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the JWKS is fetched again in the background.
const JWKS_MAX_AGE: Duration = Duration::from_secs(300);

/// Exponential backoff between sessions, with "equal jitter" (half fixed,
/// half random) so that many APIs do not reconnect in step.
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    fn wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = base / 2;
        half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Follows the feed forever (until the guard is dropped and the task aborted).
pub(crate) async fn follow(inner: Arc<Inner>) {
    let config = &inner.config;
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let mut token: Option<FeedToken> = None;
    let mut failing = false;
    loop {
        let Err(error) = session(&inner, &mut token, &mut backoff, &mut failing).await;
        inner.freshness.set_connected(false);
        if matches!(error, IssuerError::Unauthorized { .. }) {
            token = None;
        }
        let message = error.to_string();
        // Expected ends: silence when the bound is shorter than the keep-alive
        // interval; Latchkey closing the stream when the feed token expires
        // (the token is then due for renewal, and the next session renews it).
        let expected = match error {
            IssuerError::Idle(_) => true,
            IssuerError::Closed => token
                .as_ref()
                .is_some_and(|held| Instant::now() >= held.renew_at),
            _ => false,
        };
        if expected {
            tracing::debug!(error = %message, "latchkey-resource: revocation stream ended; reconnecting");
        } else if failing {
            tracing::debug!(error = %message, "latchkey-resource: revocation feed still failing");
        } else {
            tracing::warn!(error = %message, "latchkey-resource: revocation feed interrupted; reconnecting");
            failing = true;
        }
        inner.freshness.set_last_error(Some(message));
        tokio::time::sleep(backoff.wait()).await;
    }
}

/// One connection's life; it only ever ends with an error.
async fn session(
    inner: &Inner,
    token: &mut Option<FeedToken>,
    backoff: &mut Backoff,
    failing: &mut bool,
) -> Result<Infallible, IssuerError> {
    let endpoints = match inner.endpoints.get() {
        Some(endpoints) => endpoints,
        None => {
            let found = issuer::discover(&inner.http, &inner.config).await?;
            inner.endpoints.get_or_init(|| found)
        }
    };
    if inner.keys.is_empty() {
        inner.load_keys().await?;
    }
    let bearer = match token.take() {
        Some(held) if Instant::now() < held.renew_at => held,
        _ => issuer::feed_token(&inner.http, &inner.config, endpoints).await?,
    };
    let bearer = &token.insert(bearer).value;
    let position = catch_up(inner, bearer).await?;
    let response =
        issuer::open_stream(&inner.http, &inner.config, endpoints, bearer, position).await?;
    inner.freshness.set_connected(true);
    inner.freshness.set_last_error(None);
    if std::mem::take(failing) {
        tracing::info!(
            position,
            "latchkey-resource: revocation feed connected again"
        );
    } else {
        tracing::debug!(position, "latchkey-resource: revocation feed connected");
    }
    read_stream(inner, response, backoff).await
}

/// Pages through the snapshot from the last applied position until it says
/// no `more`; then the set holds every entry committed before that last
/// request started. Returns the position to stream from.
async fn catch_up(inner: &Inner, bearer: &str) -> Result<i64, IssuerError> {
    let endpoints = inner.endpoints.get().expect("discovered before");
    let mut after = inner.freshness.last_position();
    loop {
        let asked = Instant::now();
        let page =
            issuer::snapshot_page(&inner.http, &inner.config, endpoints, bearer, after).await?;
        let mut next = page.next.max(after);
        {
            let now = unix_now();
            let mut set = inner.write_revoked();
            for entry in page.entries {
                next = next.max(entry.position);
                inner.freshness.advance_position(entry.position);
                apply(inner, &mut set, entry, now);
            }
        }
        inner.freshness.advance_position(next);
        if !page.more {
            inner.freshness.mark_heard(asked);
            inner.freshness.set_ready();
            return Ok(next);
        }
        if next == after {
            return Err(IssuerError::bad(
                "revocation snapshot",
                "more pages announced but the position did not advance",
            ));
        }
        after = next;
    }
}

/// Reads events until the stream fails. Bytes go to the SSE parser one chunk
/// at a time; once every event completed by a chunk is applied, the set counts
/// as heard at that chunk's arrival (keep-alive comments included: the parser
/// skips them, the arrival counts).
///
/// The backoff is reset by the first bytes: a stream that is accepted and then
/// closed at once, again and again, is retried ever more slowly.
async fn read_stream(
    inner: &Inner,
    response: reqwest::Response,
    backoff: &mut Backoff,
) -> Result<Infallible, IssuerError> {
    const WHAT: &str = "revocation stream";
    let idle = inner.config.idle_timeout();
    let mut body = response.bytes_stream();
    let (chunks, queued) = tokio::sync::mpsc::unbounded_channel();
    let mut queued = queued;
    let mut events = EventStream::new(futures_util::stream::poll_fn(move |cx| {
        queued.poll_recv(cx)
    }));
    loop {
        let chunk = match tokio::time::timeout(idle, body.next()).await {
            Err(_) => return Err(IssuerError::Idle(idle)),
            Ok(None) => return Err(IssuerError::Closed),
            Ok(Some(Err(source))) => return Err(IssuerError::Http { what: WHAT, source }),
            Ok(Some(Ok(chunk))) => chunk,
        };
        let arrived = Instant::now();
        backoff.reset();
        // The receiver lives in `events`, in this function: sending cannot fail.
        let _ = chunks.send(Ok::<_, Infallible>(chunk));
        while let Some(event) = events.next().now_or_never() {
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(e)) => return Err(IssuerError::bad(WHAT, e.to_string())),
                None => return Err(IssuerError::Closed),
            };
            if event.event != "revocation" {
                tracing::debug!(event = %event.event, "latchkey-resource: feed event of another type ignored");
                continue;
            }
            let entry: Entry = serde_json::from_str(&event.data).map_err(|e| {
                IssuerError::bad(WHAT, format!("a revocation event is not an entry: {e}"))
            })?;
            if event.id != entry.position.to_string() {
                tracing::warn!(
                    id = %event.id,
                    position = entry.position,
                    "latchkey-resource: an event's id is not its entry's position"
                );
            }
            // Positions only grow: one at or below the last is a duplicate.
            if inner.freshness.advance_position(entry.position) {
                apply(inner, &mut inner.write_revoked(), entry, unix_now());
            }
        }
        inner.freshness.mark_heard(arrived);
    }
}

/// Adds an entry to the set, unless its time (plus the leeway) already passed
/// or its kind is unknown to this crate (logged: an older crate on a newer
/// issuer).
fn apply(inner: &Inner, set: &mut RevokedSet, entry: Entry, now: i64) {
    let Ok(kind) = entry.kind.parse() else {
        tracing::warn!(
            kind = %entry.kind,
            position = entry.position,
            "latchkey-resource: a revocation entry of an unknown kind was skipped (update latchkey-resource)"
        );
        return;
    };
    if entry.until.saturating_add(inner.config.leeway_secs()) >= now {
        set.insert(kind, &entry.id, entry.until);
    }
}

/// Every second: drops entries whose `until` (plus the leeway) passed, and
/// logs outages; every 5 minutes: fetches the JWKS again.
pub(crate) async fn sweep(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut jwks_fetched = Instant::now();
    loop {
        tick.tick().await;
        let cutoff = unix_now().saturating_sub(inner.config.leeway_secs());
        let dropped = inner.write_revoked().sweep(cutoff);
        if dropped > 0 {
            tracing::trace!(
                dropped,
                "latchkey-resource: expired revocation entries dropped"
            );
        }
        inner.freshness.observe();
        if jwks_fetched.elapsed() >= JWKS_MAX_AGE && inner.endpoints.get().is_some() {
            jwks_fetched = Instant::now();
            if let Err(e) = inner.load_keys().await {
                tracing::warn!(error = %e, "latchkey-resource: JWKS refresh failed; keeping the keys held");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let waits: Vec<Duration> = (0..5).map(|_| backoff.wait()).collect();
        let bases = [100, 200, 400, 400, 400];
        for (wait, base) in waits.iter().zip(bases) {
            let base = Duration::from_millis(base);
            assert!(*wait >= base / 2 && *wait <= base, "{wait:?} for {base:?}");
        }
        backoff.reset();
        assert!(backoff.wait() <= Duration::from_millis(100));
    }
}
