//! Sign-in throttling: failed sign-ins are counted per username and per
//! client IP address in the database (table `sign_in_failures`), so every
//! instance agrees and a restart resets nothing.
//!
//! The rule ([`Policy`], [`next`]): within a window ([`Policy::window_secs`],
//! default 15 min) a key may fail [`Policy::username_failures`] times (default
//! 5; an address [`Policy::ip_failures`], default 20, since many people share
//! one behind a NAT); the failure that reaches the limit locks the key for
//! [`Policy::first_lock_secs`] (1 min), and each lockout in a row doubles the
//! next one up to [`Policy::max_lock_secs`] (1 h). Each attempt is counted
//! before its password is checked ([`attempt`]), so guesses sent all at once
//! get no more tries than guesses sent one by one. While a key is locked,
//! sign-ins naming it are refused before any password is checked — the same
//! for existing and unknown usernames, so the answer reveals nothing. A
//! successful sign-in clears its username's key and takes its count off the
//! address's ([`succeeded`]). A key
//! quiet for a day is deleted by retention, and with it the streak. Each
//! lockout is audited (`sign_in_throttled`); admins see and clear a user's
//! ([`status`], [`clear`]).

use serde::Serialize;

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    error::DomainResult,
    names::fold_key,
    store::{now, Db},
};
use crate::on_db;

/// The limits. A limit of 0 turns that kind of key off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Failures per username within the window before it is locked.
    pub username_failures: i64,
    /// Failures per client IP address within the window before it is locked.
    pub ip_failures: i64,
    /// The window failures are counted in, seconds.
    pub window_secs: i64,
    /// The first lockout, seconds; each one in a row doubles it.
    pub first_lock_secs: i64,
    /// The longest lockout, seconds.
    pub max_lock_secs: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            username_failures: 5,
            ip_failures: 20,
            window_secs: 15 * 60,
            first_lock_secs: 60,
            max_lock_secs: 3600,
        }
    }
}

/// What a sign-in attempt is counted against.
#[derive(Clone, Copy, Debug)]
pub enum Key<'a> {
    /// The username as typed (compared by its case-folded key).
    Username(&'a str),
    /// The client's IP address.
    Ip(&'a str),
}

impl Key<'_> {
    fn text(&self) -> String {
        match self {
            Key::Username(name) => format!("username:{}", fold_key(name.trim())),
            Key::Ip(ip) => format!("ip:{ip}"),
        }
    }

    fn limit(&self, policy: &Policy) -> i64 {
        match self {
            Key::Username(_) => policy.username_failures,
            Key::Ip(_) => policy.ip_failures,
        }
    }
}

/// One key's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Counters {
    pub failures: i64,
    pub window_started_at: i64,
    pub locked_until: Option<i64>,
    pub lockouts: i64,
}

/// The counters after one more failure at `at` under `limit`, and the end of
/// the lockout this failure started, if it started one.
pub fn next(
    before: Option<Counters>,
    limit: i64,
    policy: &Policy,
    at: i64,
) -> (Counters, Option<i64>) {
    let mut c = before.unwrap_or(Counters {
        failures: 0,
        window_started_at: at,
        locked_until: None,
        lockouts: 0,
    });
    if at - c.window_started_at >= policy.window_secs {
        c.failures = 0;
        c.window_started_at = at;
    }
    c.failures += 1;
    if limit == 0 || c.failures < limit {
        return (c, None);
    }
    let doublings = u32::try_from(c.lockouts).unwrap_or(u32::MAX).min(20);
    let lock = policy
        .first_lock_secs
        .saturating_mul(1i64 << doublings)
        .min(policy.max_lock_secs)
        .max(1);
    c.lockouts += 1;
    c.failures = 0;
    c.window_started_at = at;
    c.locked_until = Some(at + lock);
    (c, c.locked_until)
}

/// The latest time any of `keys` is locked until, if one is locked now.
/// Keys of a kind whose limit is 0 (turned off) are not locked.
pub async fn locked_until(db: &Db, policy: &Policy, keys: &[Key<'_>]) -> DomainResult<Option<i64>> {
    let on: Vec<Key<'_>> = keys
        .iter()
        .filter(|k| k.limit(policy) > 0)
        .copied()
        .collect();
    latest_lock(db, &on).await
}

/// The latest lock of any of `keys` still in force, whatever the policy says now.
async fn latest_lock(db: &Db, keys: &[Key<'_>]) -> DomainResult<Option<i64>> {
    let at = now();
    let mut latest: Option<i64> = None;
    for key in keys {
        let until: Option<Option<i64>> = on_db!(db, |pool| sqlx::query_scalar(
            "SELECT locked_until FROM sign_in_failures WHERE key = $1"
        )
        .bind(key.text())
        .fetch_optional(pool)
        .await)?;
        if let Some(Some(until)) = until {
            if until > at {
                latest = Some(latest.map_or(until, |l: i64| l.max(until)));
            }
        }
    }
    Ok(latest)
}

/// What [`attempt`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A key is locked until then: check nothing.
    Locked(i64),
    /// Go on and check the credentials; the attempt is counted as a failure
    /// already. `Some(until)`: this attempt reached a limit, so a failure now
    /// is answered as locked until then.
    Go(Option<i64>),
}

/// Counts a sign-in attempt against each of `keys` (those whose limit is not
/// 0) *before* the credentials are checked, one transaction: refused at once
/// when a key is locked; otherwise counted as a failure (a success takes it
/// back: [`succeeded`]). Counting first is what makes the limit hold for
/// guesses sent all at once: each waits for the one before to be counted. A
/// key that reaches its limit is locked and the lockout audited
/// (`sign_in_throttled`, with the key and the end).
pub async fn attempt(
    db: &Db,
    policy: &Policy,
    keys: &[Key<'_>],
    ip: &str,
) -> DomainResult<Attempt> {
    let at = now();
    let for_update = match db {
        Db::Postgres(_) => " FOR UPDATE",
        Db::Sqlite(_) => "",
    };
    let select = format!(
        "SELECT failures, window_started_at, locked_until, lockouts FROM sign_in_failures \
         WHERE key = $1{for_update}"
    );
    let keys: Vec<(String, i64, Key<'_>)> = keys
        .iter()
        .filter(|k| k.limit(policy) > 0)
        .map(|k| (k.text(), k.limit(policy), *k))
        .collect();
    Ok(on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let mut rows = Vec::with_capacity(keys.len());
        for (text, _, _) in &keys {
            // A row to lock (PostgreSQL: concurrent attempts wait for each other).
            sqlx::query(
                "INSERT INTO sign_in_failures (key, failures, window_started_at, lockouts, updated_at) \
                 VALUES ($1, 0, $2, 0, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(text)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let row: Option<Counters> = sqlx::query_as(&select)
                .bind(text)
                .fetch_optional(&mut *tx)
                .await?;
            rows.push(row);
        }
        let locked = rows
            .iter()
            .filter_map(|r| r.and_then(|r| r.locked_until))
            .filter(|until| *until > at)
            .max();
        if let Some(until) = locked {
            tx.rollback().await?;
            return Ok(Attempt::Locked(until));
        }
        let mut started: Option<i64> = None;
        for ((text, limit, key), before) in keys.iter().zip(rows) {
            let (after, lock) = next(before, *limit, policy, at);
            sqlx::query(
                "UPDATE sign_in_failures SET failures = $1, window_started_at = $2, \
                 locked_until = $3, lockouts = $4, updated_at = $5 WHERE key = $6",
            )
            .bind(after.failures)
            .bind(after.window_started_at)
            .bind(after.locked_until)
            .bind(after.lockouts)
            .bind(at)
            .bind(text)
            .execute(&mut *tx)
            .await?;
            if let Some(until) = lock {
                started = Some(started.map_or(until, |s: i64| s.max(until)));
                let (kind, value) = match key {
                    Key::Username(name) => {
                        ("username", name.trim().chars().take(64).collect::<String>())
                    }
                    Key::Ip(ip) => ("ip", (*ip).to_owned()),
                };
                let mut event =
                    AuditEvent::new(AuditKind::SignInThrottled)
                        .ip(ip)
                        .detail(serde_json::json!({
                            "key": kind, "value": value, "locked_until": until,
                            "lockouts": after.lockouts,
                        }));
                // A username's lockout is the account holder's to know of
                // (their Security activity lists it).
                if let Key::Username(name) = key {
                    event.subject_user_id =
                        sqlx::query_scalar("SELECT id FROM users WHERE username_key = $1")
                            .bind(fold_key(name.trim()))
                            .fetch_optional(&mut *tx)
                            .await?;
                }
                crate::bind_audit!(&event).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        if started.is_some() {
            metrics::counter!("latchkey_sign_in_lockouts_total").increment(1);
        }
        Ok::<_, sqlx::Error>(Attempt::Go(started))
    })?)
}

/// The attempt [`attempt`] counted succeeded: the username's failures are
/// forgotten (a lockout its own success started included), and the one
/// counted against the address is taken back.
pub async fn succeeded(db: &Db, username: &str, ip: &str) -> DomainResult<()> {
    let (user, address) = (Key::Username(username).text(), Key::Ip(ip).text());
    on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
            .bind(&user)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sign_in_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0",
        )
        .bind(&address)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    })?;
    Ok(())
}

/// Until when `username` is locked, if it is now (whatever the policy).
pub async fn status(db: &Db, username: &str) -> DomainResult<Option<i64>> {
    latest_lock(db, &[Key::Username(username)]).await
}

/// An admin lifts `username`'s lockout and forgets its failures; audited
/// `sign_in_throttle_cleared` with `subject_user_id`. Returns whether it was locked.
pub async fn clear(db: &Db, user_id: &str, username: &str, actor: &Actor) -> DomainResult<bool> {
    let was = status(db, username).await?.is_some();
    let key = Key::Username(username).text();
    let event = AuditEvent::new(AuditKind::SignInThrottleCleared)
        .by(actor)
        .subject(user_id)
        .detail(serde_json::json!({ "username": username, "was_locked": was }));
    on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    Ok(was)
}

/// Whole minutes until `until` from now, at least 1: "try again in N minutes".
pub fn minutes_until(until: i64) -> i64 {
    ((until - now()).max(1) + 59) / 60
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        username_failures: 5,
        ip_failures: 20,
        window_secs: 900,
        first_lock_secs: 60,
        max_lock_secs: 3600,
    };

    #[test]
    fn the_fifth_failure_locks_for_a_minute_and_each_lockout_doubles_to_an_hour() {
        let mut c = None;
        for i in 1..=4 {
            let (after, lock) = next(c, 5, &P, 1000 + i);
            assert_eq!(lock, None, "failure {i}");
            c = Some(after);
        }
        let (after, lock) = next(c, 5, &P, 1010);
        assert_eq!(lock, Some(1070), "the fifth failure locks for 60 s");
        let mut c = Some(after);
        let mut locks = Vec::new();
        let mut at = 2000;
        for _ in 0..8 {
            for _ in 0..5 {
                let (after, lock) = next(c, 5, &P, at);
                c = Some(after);
                if let Some(until) = lock {
                    locks.push(until - at);
                }
                at += 1;
            }
        }
        assert_eq!(locks, [120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn failures_outside_the_window_start_it_again() {
        let (c, _) = next(None, 5, &P, 0);
        let (c, _) = next(Some(c), 5, &P, 100);
        assert_eq!(c.failures, 2);
        let (c, lock) = next(Some(c), 5, &P, 100 + 900);
        assert_eq!((c.failures, lock), (1, None), "a new window");
        let (c, lock) = next(Some(c), 0, &P, 1001);
        assert_eq!(lock, None, "limit 0: off");
        assert_eq!(c.locked_until, None);
    }

    #[test]
    fn usernames_are_keyed_in_any_case() {
        assert_eq!(
            Key::Username(" Alice ").text(),
            Key::Username("alice").text()
        );
        assert_ne!(Key::Username("alice").text(), Key::Ip("alice").text());
    }
}
