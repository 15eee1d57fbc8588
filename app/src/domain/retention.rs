//! Retention: what Latchkey deletes, and when — the one place that does.
//!
//! [`RULES`] is the whole list, in the order the deletions run (children
//! before the rows they reference). Each rule deletes rows that can no longer
//! be presented and no longer decide anything; the audit log keeps the
//! history of what they were. Every instance runs [`run`] every
//! [`RUN_EVERY`]: the deletions are idempotent, so several instances on one
//! PostgreSQL database only share the work, and each batch is one short
//! statement ([`BATCH`] rows), so the SQLite write turn is never held long.
//! `latchkey prune --dry-run` prints [`dry_run`].

use std::time::Duration;

use serde::Serialize;

use super::{
    error::DomainResult,
    policy,
    store::{now, Db},
};
use crate::on_db;

/// How many rows one DELETE statement removes at most.
pub const BATCH: i64 = 1000;

/// The pause between two batches of one rule.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// How often each instance runs [`run`].
pub const RUN_EVERY: Duration = Duration::from_secs(60);

/// Slack after a row stopped mattering before it goes, in seconds: an
/// instance whose clock is a little behind still sees it as it did.
const SLACK_SECS: i64 = 3600;

/// The retention settings an operator chooses (`serve` and `prune` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Audit events older than this are deleted, in seconds; `None`: kept forever.
    pub audit_secs: Option<i64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            audit_secs: Some(DEFAULT_AUDIT_DAYS * 86_400),
        }
    }
}

/// Audit events are kept this many days unless configured otherwise.
pub const DEFAULT_AUDIT_DAYS: i64 = 400;

/// Ended sign-ins are kept this long (the Sessions page and the admin's user
/// page show recent ones), in seconds.
pub const ENDED_SIGN_IN_SECS: i64 = 30 * 86_400;

/// Delivered or abandoned outbox rows are kept this long (the admin console
/// shows recent deliveries), in seconds.
pub const OUTBOX_DONE_SECS: i64 = 30 * 86_400;

/// How long a user's per-day refresh counts (`usage_days`) are kept: the
/// app page's timeline shows at most 100 lines, so older days would never
/// be shown. Shorter when the audit retention is.
pub const USAGE_DAYS_SECS: i64 = 100 * 86_400;

/// How long after a row stopped mattering it is deleted.
#[derive(Clone, Copy, Debug)]
enum Keep {
    /// This many seconds after the time in the rule's condition.
    For(i64),
    /// The audit retention, if any.
    Audit,
    /// The audit retention, but at most this many seconds.
    AuditAtMost(i64),
}

/// One kind of row that goes. `condition` selects rows of `table` that
/// stopped mattering before `$1` (the cutoff: now minus `keep`).
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// What the rows are, as `prune` prints it.
    pub name: &'static str,
    pub table: &'static str,
    /// The column a batch selects rows by: the primary key, or for
    /// `usage_counts` the minute (a batch then takes whole minutes).
    key: &'static str,
    condition: &'static str,
    keep: Keep,
}

/// The longest an access token can live (`policy::ACCESS_TTL_RANGE`): a
/// revoked family or grant is kept at least this long, although the
/// revocation log (not these rows) is what refuses its access tokens.
const ACCESS_TTL_MAX: i64 = policy::ACCESS_TTL_RANGE.1;

/// Every retention rule, in deletion order.
pub const RULES: &[Rule] = &[
    Rule {
        name: "authorization codes, expired",
        table: "auth_codes",
        key: "hash",
        // A replayed code still revokes what it started for an hour after
        // it expired; after that it is refused as unknown.
        condition: "expires_at < $1",
        keep: Keep::For(SLACK_SECS),
    },
    Rule {
        name: "refresh tokens, expired",
        table: "refresh_tokens",
        key: "hash",
        // Past its idle expiry a token is refused as expired even when it
        // was rotated (expiry wins over reuse: `RefreshState::of`), so it no
        // longer matters for reuse detection either.
        condition: "expires_at < $1",
        keep: Keep::For(SLACK_SECS),
    },
    Rule {
        name: "refresh tokens revoked (with their family or grant)",
        table: "refresh_tokens",
        key: "hash",
        // The cascade marks every refresh token of a revoked family; by its
        // own partial index (selecting through the families re-walked every
        // revoked family at each batch: a second per batch at a million).
        condition: "revoked_at < $1",
        keep: Keep::For(SLACK_SECS),
    },
    Rule {
        name: "revoked token families",
        table: "token_families",
        key: "id",
        condition: "revoked_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens r WHERE r.family_id = token_families.id)",
        keep: Keep::For(ACCESS_TTL_MAX + SLACK_SECS),
    },
    Rule {
        name: "token families ended (expired, never revoked)",
        table: "token_families",
        key: "id",
        // Not used since the cutoff, its chain (if any) past its idle
        // expiry, no stored refresh token or code left: nothing of it can be
        // presented. Its last access token expired at most the longest
        // access lifetime after its last use.
        condition: "revoked_at IS NULL AND last_used_at < $1 \
             AND (chain_expires_at IS NULL OR chain_expires_at < $1) \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = token_families.id) \
             AND NOT EXISTS (SELECT 1 FROM auth_codes c WHERE c.family_id = token_families.id)",
        keep: Keep::For(ACCESS_TTL_MAX + SLACK_SECS),
    },
    Rule {
        name: "revoked grants",
        table: "grants",
        key: "id",
        condition: "revoked_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM token_families f WHERE f.grant_id = grants.id) \
             AND NOT EXISTS (SELECT 1 FROM auth_codes c WHERE c.grant_id = grants.id)",
        keep: Keep::For(ACCESS_TTL_MAX + SLACK_SECS),
    },
    Rule {
        name: "upstream tokens of ended sign-ins, nothing left to revoke",
        table: "upstream_tokens",
        key: "login_session_id",
        // Their tokens were already deleted when revoked or given up (or at
        // the sign-in's end); the row kept the outcome for the admin page.
        condition: "next_attempt_at IS NULL AND login_session_id IN \
             (SELECT id FROM login_sessions WHERE ended_at < $1)",
        keep: Keep::For(ENDED_SIGN_IN_SECS),
    },
    Rule {
        name: "ended sign-ins",
        table: "login_sessions",
        key: "id",
        condition: "ended_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM token_families f WHERE f.login_session_id = login_sessions.id) \
             AND NOT EXISTS (SELECT 1 FROM auth_codes c WHERE c.login_session_id = login_sessions.id) \
             AND NOT EXISTS (SELECT 1 FROM upstream_tokens t WHERE t.login_session_id = login_sessions.id)",
        keep: Keep::For(ENDED_SIGN_IN_SECS),
    },
    Rule {
        name: "sign-in failure counters quiet for a day",
        table: "sign_in_failures",
        key: "key",
        condition: "updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
        keep: Keep::For(86_400),
    },
    Rule {
        name: "revoked access tokens (by jti), expired",
        table: "revoked_access_tokens",
        key: "jti",
        condition: "expires_at < $1",
        keep: Keep::For(SLACK_SECS),
    },
    Rule {
        name: "revocation log entries past their until",
        table: "revocation_log",
        key: "position",
        // A minute after `until`: nothing it covers can be presented, and
        // the instances and the feed have dropped it from memory.
        condition: "until_at < $1",
        keep: Keep::For(60),
    },
    Rule {
        name: "outbox deliveries, done",
        table: "outbox",
        key: "id",
        condition: "created_at < $1 AND (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL)",
        keep: Keep::For(OUTBOX_DONE_SECS),
    },
    Rule {
        name: "instances gone (no report for a minute)",
        table: "instances",
        key: "id",
        // A crashed instance never deregisters; nobody waits for it after
        // `instances::LIVE_FOR` anyway.
        condition: "seen_at_ms < $1 * 1000",
        keep: Keep::For(60),
    },
    Rule {
        name: "usage counts, past the audit retention",
        table: "usage_counts",
        // Whole minutes at a time (every client's counts of a minute).
        key: "minute",
        condition: "minute * 60 < $1",
        keep: Keep::Audit,
    },
    Rule {
        name: "usage counts per user and day, after 100 days",
        table: "usage_days",
        key: "id",
        condition: "day * 86400 < $1",
        keep: Keep::AuditAtMost(USAGE_DAYS_SECS),
    },
    Rule {
        name: "audit events, past the audit retention",
        table: "audit_events",
        key: "id",
        condition: "at < $1",
        keep: Keep::Audit,
    },
];

impl Rule {
    /// The cutoff at `at` (rows that stopped mattering before it go), or
    /// `None` when the rule keeps everything.
    fn cutoff(&self, retention: &Retention, at: i64) -> Option<i64> {
        match self.keep {
            Keep::For(secs) => Some(at - secs),
            Keep::Audit => retention.audit_secs.map(|secs| at - secs),
            Keep::AuditAtMost(most) => {
                Some(at - retention.audit_secs.map_or(most, |secs| secs.min(most)))
            }
        }
    }
}

/// How many rows one rule deleted (or, for a dry run, would delete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub name: &'static str,
    pub table: &'static str,
    pub rows: u64,
}

/// Deletes everything the rules say goes, rule by rule in [`BATCH`]es of one
/// statement each; returns what each deleted.
pub async fn run(db: &Db, retention: &Retention) -> DomainResult<Vec<Pruned>> {
    let at = now();
    let mut report = Vec::with_capacity(RULES.len());
    for rule in RULES {
        let mut rows = 0;
        if let Some(cutoff) = rule.cutoff(retention, at) {
            let sql = format!(
                "DELETE FROM {table} WHERE {key} IN \
                 (SELECT {key} FROM {table} WHERE {condition} LIMIT {BATCH})",
                table = rule.table,
                key = rule.key,
                condition = rule.condition,
            );
            loop {
                let deleted = on_db!(db, |pool| pool
                    .execute_write(sqlx::query(&sql).bind(cutoff))
                    .await
                    .map(|r| r.rows_affected()))?;
                rows += deleted;
                if deleted < BATCH as u64 {
                    break;
                }
                // A backlog (the first run after an upgrade, a long outage)
                // goes at a measured pace: the requests waiting for the
                // write turn go first, and the job takes a fraction of a core.
                tokio::time::sleep(BATCH_PAUSE).await;
            }
        }
        report.push(Pruned {
            name: rule.name,
            table: rule.table,
            rows,
        });
    }
    Ok(report)
}

/// What [`run`] would delete now, rule by rule: the same deletions, in one
/// transaction that is rolled back, so each rule counts what it would delete
/// after the rules before it (a revoked family goes once its refresh tokens
/// went). On SQLite the write turn is held while it runs: other writes wait.
pub async fn dry_run(db: &Db, retention: &Retention) -> DomainResult<Vec<Pruned>> {
    let at = now();
    let report = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let mut report = Vec::with_capacity(RULES.len());
        for rule in RULES {
            let mut rows = 0;
            if let Some(cutoff) = rule.cutoff(retention, at) {
                let sql = format!("DELETE FROM {} WHERE {}", rule.table, rule.condition);
                rows = sqlx::query(&sql)
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            report.push(Pruned {
                name: rule.name,
                table: rule.table,
                rows,
            });
        }
        tx.rollback().await?;
        Ok::<_, sqlx::Error>(report)
    })?;
    Ok(report)
}

/// Runs [`run`] every [`RUN_EVERY`], the first time [`RUN_EVERY`] after
/// start, until the process ends, logging what went; a failed run is logged
/// and retried at the next tick.
pub async fn keep_running(db: Db, retention: Retention) {
    // The first run a minute after start: start-up is not the moment for
    // a backlog.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RUN_EVERY, RUN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match run(&db, &retention).await {
            Ok(report) => {
                for pruned in report.iter().filter(|p| p.rows > 0) {
                    tracing::info!(rows = pruned.rows, what = pruned.name, "retention");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the retention job failed; retrying later"),
        }
    }
}
