//! How current the revoked set is, and the outage log lines.
//!
//! "Heard" is the last moment the set is known to hold every entry the issuer
//! had committed: the start of a snapshot request that caught up (no `more`),
//! or the arrival of stream bytes (an event or a keep-alive) once every event
//! in them was applied. The set is fresh while it is ready (a first snapshot
//! caught up) and was heard within the staleness bound. The request path reads
//! two atomics; nothing in it locks.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::watch;

use crate::Fallback;

pub(crate) struct Freshness {
    /// The origin of `heard_ms` (when the guard was built).
    base: Instant,
    bound: Duration,
    fallback: Fallback,
    ready: AtomicBool,
    ready_tx: watch::Sender<bool>,
    /// Milliseconds after `base`.
    heard_ms: AtomicU64,
    connected: AtomicBool,
    /// An outage line was logged and recovery not yet.
    outage_logged: AtomicBool,
    last_position: AtomicI64,
    last_error: Mutex<Option<String>>,
}

impl Freshness {
    pub fn new(bound: Duration, fallback: Fallback) -> Self {
        Freshness {
            base: Instant::now(),
            bound,
            fallback,
            ready: AtomicBool::new(false),
            ready_tx: watch::Sender::new(false),
            heard_ms: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            outage_logged: AtomicBool::new(false),
            last_position: AtomicI64::new(0),
            last_error: Mutex::new(None),
        }
    }

    fn millis_since_base(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// The set held everything committed up to `at` (never moves back).
    pub fn mark_heard(&self, at: Instant) {
        self.heard_ms
            .fetch_max(self.millis_since_base(at), Ordering::AcqRel);
    }

    /// How long since the set was last known complete (since the start when
    /// it never was).
    fn silent_for(&self) -> Duration {
        let now = self.millis_since_base(Instant::now());
        Duration::from_millis(now.saturating_sub(self.heard_ms.load(Ordering::Acquire)))
    }

    /// The first snapshot caught up.
    pub fn set_ready(&self) {
        if !self.ready.swap(true, Ordering::AcqRel) {
            self.ready_tx.send_replace(true);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// A receiver that sees `true` once ready.
    pub fn subscribe_ready(&self) -> watch::Receiver<bool> {
        self.ready_tx.subscribe()
    }

    /// Ready and heard within the bound: a token not in the set is not revoked
    /// (save for revocations younger than the bound).
    pub fn is_fresh(&self) -> bool {
        self.is_ready() && self.silent_for() <= self.bound
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Release);
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    pub fn last_position(&self) -> i64 {
        self.last_position.load(Ordering::Acquire)
    }

    /// Records that the entry at `position` was applied; false when it was
    /// already (a position at or below the last one).
    pub fn advance_position(&self, position: i64) -> bool {
        self.last_position.fetch_max(position, Ordering::AcqRel) < position
    }

    pub fn set_last_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the set became stale (unix seconds), if it is: the start for a
    /// guard never ready, else the last heard moment plus the bound.
    pub fn stale_since(&self) -> Option<i64> {
        if self.is_fresh() {
            return None;
        }
        if !self.is_ready() {
            return Some(unix_at(self.base));
        }
        Some(unix_at(self.heard_at()) + secs(self.bound))
    }

    /// The last heard moment (unix seconds), once ready.
    pub fn last_heard(&self) -> Option<i64> {
        self.is_ready().then(|| unix_at(self.heard_at()))
    }

    fn heard_at(&self) -> Instant {
        self.base + Duration::from_millis(self.heard_ms.load(Ordering::Acquire))
    }

    /// Logs the start of an outage (`error`, once) and its end (`info`):
    /// an outage is the set silent for longer than the bound, or not ready
    /// that long after the start. Returns whether the set is fresh.
    pub fn observe(&self) -> bool {
        if self.is_fresh() {
            if self.outage_logged.swap(false, Ordering::AcqRel) {
                tracing::info!(
                    position = self.last_position(),
                    "latchkey-resource: the revocation feed caught up; tokens are validated locally again"
                );
            }
            return true;
        }
        let silent = self.silent_for();
        if silent > self.bound && !self.outage_logged.swap(true, Ordering::AcqRel) {
            let consequence = match self.fallback {
                Fallback::FailClosed => "refusing every token (401) until it catches up",
                Fallback::Introspect => {
                    "asking introspection about every token until it catches up"
                }
            };
            let last_error = self.last_error().unwrap_or_else(|| "none".into());
            if self.is_ready() {
                tracing::error!(
                    silent_secs = silent.as_secs(),
                    bound_secs = self.bound.as_secs_f64(),
                    %last_error,
                    "latchkey-resource: no news from the revocation feed for longer than the staleness bound: {consequence}"
                );
            } else {
                tracing::error!(
                    waited_secs = silent.as_secs(),
                    %last_error,
                    "latchkey-resource: the revocation feed's first snapshot has not loaded: {consequence}"
                );
            }
        }
        false
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

/// The unix seconds of a monotonic instant (as far as the wall clock says).
fn unix_at(at: Instant) -> i64 {
    let now = Instant::now();
    if at <= now {
        unix_now() - secs(now - at)
    } else {
        unix_now() + secs(at - now)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_only_once_ready_and_within_the_bound() {
        let freshness = Freshness::new(Duration::from_secs(30), Fallback::FailClosed);
        assert!(!freshness.is_fresh(), "not ready yet");
        assert!(freshness.stale_since().is_some());
        freshness.mark_heard(Instant::now());
        assert!(!freshness.is_fresh(), "heard, but not ready");
        freshness.set_ready();
        assert!(freshness.is_fresh());
        assert_eq!(freshness.stale_since(), None);
        // Heard 31 s before now: build one whose base lies in the past.
        let old = Freshness {
            base: Instant::now() - Duration::from_secs(60),
            ..Freshness::new(Duration::from_secs(30), Fallback::FailClosed)
        };
        old.set_ready();
        old.mark_heard(Instant::now() - Duration::from_secs(31));
        assert!(!old.is_fresh());
        let since = old.stale_since().unwrap();
        assert!((unix_now() - 2..=unix_now()).contains(&since), "{since}");
        old.mark_heard(Instant::now() - Duration::from_secs(40));
        assert!(!old.is_fresh(), "an older mark does not move heard back");
        old.mark_heard(Instant::now());
        assert!(old.is_fresh());
    }

    #[test]
    fn positions_only_advance() {
        let freshness = Freshness::new(Duration::from_secs(1), Fallback::FailClosed);
        assert!(freshness.advance_position(5));
        assert!(!freshness.advance_position(5));
        assert!(!freshness.advance_position(3));
        assert!(freshness.advance_position(9));
        assert_eq!(freshness.last_position(), 9);
    }
}
