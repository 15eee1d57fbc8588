//! Instances: exact revocation (and exact changes) across several Latchkey
//! processes on one database.
//!
//! Every `serve` process [`register`]s a row in `instances` and reports
//! ([`report`]) how far it has applied the revocation log and the change
//! counter (`change_head`): at once after it read something new, and at
//! least every [`HEARTBEAT`]. A process that changed something — a
//! revocation, a client registration, a key rotation — waits before it
//! acknowledges ([`wait_applied`]) until every live instance (reported within
//! [`LIVE_FOR`]) has applied it, or until the bound (default [`ACK_BOUND`])
//! passed. An instance that did not report by then is not trusted to know:
//! it fails closed on its own, because it answers a token only after a
//! successful read of the log that began less than [`FRESH_FOR`] ago
//! (`RevokedSets::ensure_fresh`); [`FRESH_FOR`] is shorter than any bound,
//! so by the time the change is acknowledged a lagging instance has either
//! read it or stopped trusting what it has.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Duration,
};

use super::{
    error::DomainResult,
    secrets::new_ordered_id,
    store::{now, Db},
};
use crate::on_db;

/// How long a successful read of the revocation log keeps an instance
/// trusted: older, it reads again before answering for a token, and refuses
/// the token if it cannot.
pub const FRESH_FOR: Duration = Duration::from_millis(200);

/// How long a change waits by default for the other instances before it is
/// acknowledged anyway (lagging instances fail closed by then).
pub const ACK_BOUND: Duration = Duration::from_millis(250);

/// The shortest bound that keeps the guarantee: longer than [`FRESH_FOR`].
pub const MIN_ACK_BOUND: Duration = Duration::from_millis(250);

/// An instance reports at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// An instance that has not reported for this long is gone: nobody waits
/// for it (should it come back, it is stale and fails closed until it read
/// the log again).
pub const LIVE_FOR: Duration = Duration::from_secs(3);

/// How often a waiting change looks at the reports.
const POLL: Duration = Duration::from_millis(2);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// This process's instance id, once registered (`serve`).
static ME: OnceLock<String> = OnceLock::new();

/// The acknowledgement bound in milliseconds ([`set_ack_bound`]).
static BOUND_MS: AtomicU64 = AtomicU64::new(ACK_BOUND.as_millis() as u64);

/// This process's instance id, if it registered.
pub fn me() -> Option<&'static str> {
    ME.get().map(String::as_str)
}

/// Sets how long a change waits for the other instances (at least
/// [`MIN_ACK_BOUND`]; shorter values are raised to it).
pub fn set_ack_bound(bound: Duration) {
    BOUND_MS.store(
        bound.max(MIN_ACK_BOUND).as_millis() as u64,
        Ordering::Relaxed,
    );
}

/// The acknowledgement bound in force.
pub fn ack_bound() -> Duration {
    Duration::from_millis(BOUND_MS.load(Ordering::Relaxed))
}

/// Registers this process as a serving instance; returns its id.
pub async fn register(db: &Db, applied_position: i64, applied_change: i64) -> DomainResult<String> {
    let id = ME.get_or_init(new_ordered_id).clone();
    on_db!(db, |pool| {
        pool
        .execute_write(
            sqlx::query(
                "INSERT INTO instances (id, started_at, seen_at_ms, applied_position, applied_change) \
                 VALUES ($1, $2, $3, $4, $5)"
            )
            .bind(&id)
            .bind(now())
            .bind(now_ms())
            .bind(applied_position)
            .bind(applied_change)
        )
        .await
        .map(|_| ())
    })?;
    Ok(id)
}

/// Reports how far this instance has applied (and that it is alive).
pub async fn report(
    db: &Db,
    id: &str,
    applied_position: i64,
    applied_change: i64,
) -> DomainResult<()> {
    on_db!(db, |pool| pool
        .execute_write(
            sqlx::query(
                "UPDATE instances SET seen_at_ms = $2, applied_position = $3, applied_change = $4 \
                 WHERE id = $1"
            )
            .bind(id)
            .bind(now_ms())
            .bind(applied_position)
            .bind(applied_change)
        )
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Removes this instance (a clean shutdown) and the rows of instances gone
/// for more than a minute.
pub async fn deregister(db: &Db, id: &str) -> DomainResult<()> {
    on_db!(db, |pool| pool
        .execute_write(
            sqlx::query("DELETE FROM instances WHERE id = $1 OR seen_at_ms < $2")
                .bind(id)
                .bind(now_ms() - 60_000)
        )
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Bumps the change counter after a change instances keep in memory
/// (registrations, keys); returns the new generation to wait for.
pub async fn bump_change(db: &Db) -> DomainResult<i64> {
    let generation = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let g: i64 = sqlx::query_scalar(
            "UPDATE change_head SET generation = generation + 1 WHERE id = 1 RETURNING generation",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(g)
    })?;
    Ok(generation)
}

/// After a change other instances keep in memory has committed: bumps the
/// change counter and waits (up to [`ack_bound`]) until every live instance
/// applied it. Best effort: a failure to bump is logged, and the other
/// instances then fall back to their timers (what remembers registrations,
/// policies and resource servers re-reads after
/// [`super::clients::REGISTRATION_MAX_AGE`]; the keys every minute).
pub async fn announce_change(db: &Db) {
    match bump_change(db).await {
        Ok(generation) => {
            wait_applied(db, me(), Mark::Change(generation), ack_bound()).await;
        }
        Err(e) => tracing::warn!(error = %e, "cannot announce a change to the other instances"),
    }
}

/// The change counter now.
pub async fn change_generation(db: &Db) -> DomainResult<i64> {
    let g: i64 = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT generation FROM change_head WHERE id = 1"
    )
    .fetch_one(pool)
    .await)?;
    Ok(g)
}

/// What applying a change must reach.
#[derive(Clone, Copy, Debug)]
pub enum Mark {
    /// A revocation log position.
    Position(i64),
    /// A change counter generation.
    Change(i64),
}

/// How a wait ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acked {
    /// Every live instance reported the change applied.
    All,
    /// The bound passed; these instances had not reported it (they fail
    /// closed until they read it).
    Lagging(Vec<String>),
}

/// Waits until every live instance other than `me` has applied `mark`, or
/// `bound` passed. A database error ends the wait early as lagging
/// instances (`["?"]`): they are trusted no more than a lagging one.
pub async fn wait_applied(db: &Db, me: Option<&str>, mark: Mark, bound: Duration) -> Acked {
    let (column, value) = match mark {
        Mark::Position(p) => ("applied_position", p),
        Mark::Change(g) => ("applied_change", g),
    };
    let sql =
        format!("SELECT id FROM instances WHERE id <> $1 AND seen_at_ms >= $2 AND {column} < $3");
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let lagging: Result<Vec<String>, sqlx::Error> = on_db!(db, |pool| {
            sqlx::query_scalar(&sql)
                .bind(me.unwrap_or(""))
                .bind(now_ms() - LIVE_FOR.as_millis() as i64)
                .bind(value)
                .fetch_all(pool)
                .await
        });
        match lagging {
            Ok(lagging) if lagging.is_empty() => return Acked::All,
            Ok(lagging) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(
                    ?lagging,
                    ?mark,
                    "instances did not apply a change in time; they fail closed until they do"
                );
                return Acked::Lagging(lagging);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the instances' reports; waiting out the bound");
                tokio::time::sleep_until(deadline).await;
                return Acked::Lagging(vec!["?".to_owned()]);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
