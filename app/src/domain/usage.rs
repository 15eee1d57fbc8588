//! Counts of high-volume, low-value events — each client_credentials token
//! issued — per client and minute (`usage_counts`), instead of one audit
//! row each: the admin charts and a client's "last activity" read them with
//! the audit log (`activity`, `admin`). Security events (consent,
//! revocation, reuse, policy, sign-in, admin actions) keep one audit row each.
//!
//! Counting is in memory; [`Usage::flush`] adds what was counted to the
//! table in one write, at most [`FLUSH_EVERY`] after the first count (a
//! background task started by the first count) and at shutdown. A crash
//! loses at most that last second of counts, never a token or a revocation.

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
    store::{now, Db},
};
use crate::on_db;

/// How long a count waits in memory at most.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// (client_id, minute, kind) → how many.
type Pending = HashMap<(String, i64, &'static str), i64>;

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

    /// Counts one event of `client_id` now; written within [`FLUSH_EVERY`].
    pub fn count(&self, client_id: &str, kind: AuditKind) {
        let minute = now().div_euclid(60);
        *self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((client_id.to_owned(), minute, kind.as_str()))
            .or_default() += 1;
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

    /// Adds every pending count to the table in one transaction; returns how
    /// many rows it touched. On failure the counts stay pending.
    pub async fn flush(&self) -> DomainResult<usize> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let written = on_db!(&self.db, |pool| {
            let mut tx = pool.begin_write().await?;
            for ((client_id, minute, kind), n) in &taken {
                sqlx::query(
                    "INSERT INTO usage_counts (client_id, minute, kind, n) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (client_id, minute, kind) DO UPDATE SET n = usage_counts.n + excluded.n",
                )
                .bind(client_id)
                .bind(minute)
                .bind(*kind)
                .bind(n)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        });
        match written {
            Ok(()) => Ok(taken.len()),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (key, n) in taken {
                    *pending.entry(key).or_default() += n;
                }
                drop(pending);
                self.schedule();
                Err(e.into())
            }
        }
    }
}
