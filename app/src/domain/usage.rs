//! Counts of high-volume, low-value events — each client_credentials token
//! issued, each refresh — instead of one audit row each (issue 11, item 2):
//!
//! - per client and minute (`usage_counts`): the admin charts and a client's
//!   "last activity" read them with the audit log (`activity`, `admin`);
//! - for events about a user, also per user, client and UTC day
//!   (`usage_days`, with the day's latest time): the user's app timeline
//!   ("Renewed its access 12 times", `my_apps`). A day, not a minute: an app
//!   refreshes about once per access-token lifetime, so per-minute rows per
//!   user would grow like one row per refresh again.
//!
//! Security events (consent, revocation, reuse, policy, sign-in, admin
//! actions) keep one audit row each.
//!
//! Counting is in memory; [`Usage::flush`] adds what was counted to both
//! tables in one transaction, at most [`FLUSH_EVERY`] after the first count (a
//! background task started by the first count) and at shutdown. A crash
//! loses at most that last second of counts, never a token or a revocation:
//! counts are written after the event they count has committed.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use super::{
    audit::AuditKind,
    error::DomainResult,
    secrets::new_ordered_id,
    store::{now, Db},
};
use crate::on_db;

/// How long a count waits in memory at most.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Rows per INSERT statement of a flush (7 parameters at most: well under
/// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// What was counted and not yet written.
#[derive(Default)]
struct Pending {
    /// (client_id, minute, kind) → how many.
    minutes: HashMap<(String, i64, &'static str), i64>,
    /// (user_id, client_id, day, kind) → (how many, latest unix second).
    days: HashMap<(String, String, i64, &'static str), (i64, i64)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.minutes.is_empty() && self.days.is_empty()
    }

    /// Puts counts taken by a failed flush back.
    fn merge(&mut self, other: Pending) {
        for (key, n) in other.minutes {
            *self.minutes.entry(key).or_default() += n;
        }
        for (key, (n, last)) in other.days {
            let entry = self.days.entry(key).or_default();
            entry.0 += n;
            entry.1 = entry.1.max(last);
        }
    }
}

/// This process's counts not yet written. Cheap to clone.
#[derive(Clone)]
pub struct Usage {
    db: Db,
    pending: Arc<Mutex<Pending>>,
    /// Whether a flush task is waiting to run.
    scheduled: Arc<AtomicBool>,
}

impl Usage {
    pub fn new(db: Db) -> Usage {
        Usage {
            db,
            pending: Arc::default(),
            scheduled: Arc::default(),
        }
    }

    /// Counts one event of `client_id` now — and of `user_id`'s use of it,
    /// when given; written within [`FLUSH_EVERY`].
    pub fn count(&self, client_id: &str, user_id: Option<&str>, kind: AuditKind) {
        let at = now();
        let kind = kind.as_str();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            *pending
                .minutes
                .entry((client_id.to_owned(), at.div_euclid(60), kind))
                .or_default() += 1;
            if let Some(user_id) = user_id {
                let day = pending
                    .days
                    .entry((
                        user_id.to_owned(),
                        client_id.to_owned(),
                        at.div_euclid(86_400),
                        kind,
                    ))
                    .or_default();
                day.0 += 1;
                day.1 = day.1.max(at);
            }
        }
        self.schedule();
    }

    /// Starts the task that flushes in [`FLUSH_EVERY`], unless one waits.
    fn schedule(&self) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let usage = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FLUSH_EVERY).await;
            usage.scheduled.store(false, Ordering::Release);
            if let Err(e) = usage.flush().await {
                tracing::warn!(error = %e, "writing usage counts failed; they are kept for the next try");
            }
        });
    }

    /// Adds every pending count to the tables in one transaction; returns how
    /// many rows it touched. On failure the counts stay pending.
    pub async fn flush(&self) -> DomainResult<usize> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let minutes: Vec<_> = taken.minutes.iter().collect();
        let days: Vec<_> = taken.days.iter().collect();
        let written = on_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            for chunk in minutes.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_counts (client_id, minute, kind, n) ",
                );
                insert.push_values(chunk, |mut row, ((client_id, minute, kind), n)| {
                    row.push_bind(client_id)
                        .push_bind(*minute)
                        .push_bind(*kind)
                        .push_bind(**n);
                });
                insert.push(
                    " ON CONFLICT (client_id, minute, kind) DO UPDATE SET n = usage_counts.n + excluded.n",
                );
                insert.build().execute(&mut *tx).await?;
            }
            for chunk in days.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO usage_days (id, user_id, client_id, day, kind, n, last_at) ",
                );
                insert.push_values(
                    chunk,
                    |mut row, ((user_id, client_id, day, kind), (n, last))| {
                        row.push_bind(new_ordered_id())
                            .push_bind(user_id)
                            .push_bind(client_id)
                            .push_bind(*day)
                            .push_bind(*kind)
                            .push_bind(*n)
                            .push_bind(*last);
                    },
                );
                insert.push(
                    " ON CONFLICT (user_id, client_id, day, kind) DO UPDATE SET \
                     n = usage_days.n + excluded.n, \
                     last_at = CASE WHEN excluded.last_at > usage_days.last_at \
                     THEN excluded.last_at ELSE usage_days.last_at END",
                );
                insert.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        });
        match written {
            Ok(()) => Ok(taken.minutes.len() + taken.days.len()),
            Err(e) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .merge(taken);
                self.schedule();
                Err(e.into())
            }
        }
    }
}
