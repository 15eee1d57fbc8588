//! The work a running Latchkey does besides answering requests, started in
//! one place ([`Background::start`]) by `latchkey serve` and by the tests'
//! in-process server alike:
//!
//! | task | what | when |
//! | --- | --- | --- |
//! | revocation log | this and the other instances' revocations into the in-memory sets and the feed (`revocation::follow`) | always |
//! | key reload | signing keys re-read every [`KEY_RELOAD_EVERY`], and when another process announces a change | always |
//! | session cleanup | expired browser sessions deleted every hour | always |
//! | outbox | back-channel logout tokens and upstream revocations delivered, retried (`outbox`) | with [`Work::outbox`] |
//! | retention | what no longer matters deleted (README, "Retention") | with [`Work::retention`] |
//!
//! Every task stops when the [`Background`] is dropped (or [`Background::stop`]).

use std::time::Duration;

use app::domain::{backchannel::RetryPolicy, keys::MasterKey, retention::Retention, revocation};
use tokio::task::JoinHandle;
use tower_sessions::session_store::ExpiredDeletion;

use crate::state::Parts;

/// How often a running server re-reads signing keys, whatever it heard (a
/// rotation is announced: `instances::announce_change`).
pub const KEY_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// What to run: the revocation log, key reload and session cleanup always;
/// the outbox and retention when given.
pub struct Work {
    /// The change counter read before the keys and the revoked sets were
    /// loaded (`instances::change_generation`): the log is followed from
    /// there, so a change made while they loaded is applied again.
    pub since_change: i64,
    /// What the signing keys are sealed with, to reload them.
    pub master_key: MasterKey,
    /// Deliver the outbox, retrying as this says.
    pub outbox: Option<RetryPolicy>,
    /// Prune what the retention periods let go.
    pub retention: Option<Retention>,
}

/// The running tasks; dropping this stops them.
pub struct Background(Vec<JoinHandle<()>>);

impl Background {
    /// Starts `work` for the application built from `parts` (before
    /// `http::build` takes them).
    pub fn start(parts: &Parts, work: Work) -> Background {
        let db = &parts.db;
        let mut tasks = Vec::new();
        let reload_keys = {
            let (db, keys, master) = (db.clone(), parts.keys.clone(), work.master_key);
            move || {
                let (db, keys, master) = (db.clone(), keys.clone(), master.clone());
                async move {
                    if let Err(e) = keys.reload(&db, &master).await {
                        tracing::warn!(error = %e, "reloading the signing keys failed");
                    }
                }
            }
        };
        // Another process changed registrations or keys (what is remembered
        // of registrations was marked stale by the log read that saw it:
        // `RevokedSets::read_log`): the keys are read again at once.
        tasks.push(tokio::spawn(revocation::follow(
            db.clone(),
            parts.revoked.clone(),
            work.since_change,
            reload_keys.clone(),
        )));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEY_RELOAD_EVERY);
            loop {
                tick.tick().await;
                reload_keys().await;
            }
        }));
        let cleanup = parts
            .session_store
            .clone()
            .continuously_delete_expired(Duration::from_secs(3600));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = cleanup.await {
                tracing::warn!(error = %e, "deleting expired browser sessions stopped");
            }
        }));
        if let Some(retry) = work.outbox {
            tasks.push(crate::outbox::spawn(
                db.clone(),
                parts.keys.clone(),
                parts.config.issuer.clone(),
                retry,
                parts.upstreams.clone(),
            ));
        }
        if let Some(retention) = work.retention {
            tasks.push(tokio::spawn(app::domain::retention::keep_running(
                db.clone(),
                retention,
            )));
        }
        Background(tasks)
    }

    /// Stops every task now.
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
