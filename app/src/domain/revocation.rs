//! Revocation: durable first, then visible — here, at the other instances,
//! and at every resource server following the feed.
//!
//! Every revocation commits in the database together with its entries in the
//! **revocation log** (`revocation_log`: a position, the kind — grant, token
//! family or access-token `jti` —, the id, and `until`, the latest `exp` a
//! token it covers can carry). This instance puts the ids in its in-memory
//! sets at once (introspection and userinfo consult them with no database
//! round trip); then everything follows the log by position: this instance's
//! [`RevokedSets`] ([`RevokedSets::catch_up`]), the other instances (woken by
//! PostgreSQL NOTIFY, polling every 50 ms otherwise: [`follow`]), and the
//! resource servers' feed (`/oauth/revocations`, served from memory:
//! [`RevokedSets::entries_after`], [`RevokedSets::applied`]). Entries are
//! dropped from memory once `until` passed, and pruned from the table a
//! minute later (`retention`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::sync::{watch, Notify};

use super::{
    audit::{AuditEvent, AuditKind},
    error::DomainResult,
    instances::{self, Mark},
    policy,
    store::{now, Db},
};
use crate::on_db;

/// What a log entry revokes (the feed's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Every token of a grant (access tokens carry it as `gid`).
    Grant,
    /// Every token of one token family (access tokens carry it as `fid`).
    Family,
    /// One access token, by its `jti`.
    Jti,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Family => "family",
            EntryKind::Jti => "jti",
        }
    }

    fn parse(s: &str) -> Option<EntryKind> {
        [EntryKind::Grant, EntryKind::Family, EntryKind::Jti]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One entry of the revocation log, as the feed sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Strictly increasing across all instances; visible in order.
    pub position: i64,
    pub kind: EntryKind,
    pub id: String,
    /// Unix seconds after which no token the entry covers is still valid.
    pub until: i64,
}

/// How many log rows one INSERT statement writes.
const LOG_INSERT_CHUNK: usize = 500;

/// Appends `(kind, id)` entries, all with one `until`, to the revocation log
/// inside the revocation's write transaction `$tx`, and evaluates to the
/// last position taken (`None` for no entries). Positions come from
/// `revocation_log_head`, whose row stays locked until the transaction ends
/// (on SQLite the write turn does the same): a later position never becomes
/// visible before an earlier one.
macro_rules! append_to_log {
    ($tx:ident, $entries:expr, $until:expr, $at:expr) => {
        async {
            let entries: &[(EntryKind, &str)] = $entries;
            if entries.is_empty() {
                return Ok::<Option<i64>, sqlx::Error>(None);
            }
            let head: i64 = sqlx::query_scalar(
                "UPDATE revocation_log_head SET position = position + $1 WHERE id = 1 RETURNING position",
            )
            .bind(entries.len() as i64)
            .fetch_one(&mut *$tx)
            .await?;
            let mut position = head - entries.len() as i64;
            for chunk in entries.chunks(LOG_INSERT_CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO revocation_log (position, kind, id, until_at, revoked_at) ",
                );
                insert.push_values(chunk, |mut row, (kind, id)| {
                    position += 1;
                    row.push_bind(position)
                        .push_bind(kind.as_str())
                        .push_bind(*id)
                        .push_bind($until)
                        .push_bind($at);
                });
                insert.build().execute(&mut *$tx).await?;
            }
            Ok(Some(head))
        }
        .await
    };
}

#[derive(Default)]
struct Sets {
    /// Revoked id → the latest `until` heard for it.
    grants: HashMap<String, i64>,
    families: HashMap<String, i64>,
    jtis: HashMap<String, i64>,
    /// The log entries that still matter, by position (the feed's source).
    log: BTreeMap<i64, Entry>,
    /// (`until`, position) of every entry in `log`: what to drop, in order.
    expiry: BTreeSet<(i64, i64)>,
    /// Every position up to this one has been read from the log.
    applied: i64,
}

impl Sets {
    fn ids(&mut self, kind: EntryKind) -> &mut HashMap<String, i64> {
        match kind {
            EntryKind::Grant => &mut self.grants,
            EntryKind::Family => &mut self.families,
            EntryKind::Jti => &mut self.jtis,
        }
    }

    fn remember(&mut self, kind: EntryKind, id: &str, until: i64) {
        let known = self.ids(kind).entry(id.to_owned()).or_insert(until);
        *known = (*known).max(until);
    }

    /// Drops every entry whose `until` is before `at`.
    fn forget_before(&mut self, at: i64) {
        while let Some(&(until, position)) = self.expiry.first() {
            if until >= at {
                break;
            }
            self.expiry.pop_first();
            if let Some(entry) = self.log.remove(&position) {
                let ids = self.ids(entry.kind);
                if ids.get(&entry.id).is_some_and(|&u| u < at) {
                    ids.remove(&entry.id);
                }
            }
        }
        // Ids remembered at once by a revocation here, before the log's
        // entry was read (or already revoked elsewhere), expire too.
        for kind in [EntryKind::Grant, EntryKind::Family, EntryKind::Jti] {
            self.ids(kind).retain(|_, until| *until >= at);
        }
    }
}

/// This instance's view of what is revoked, following the revocation log.
/// Cheap to clone.
#[derive(Clone)]
pub struct RevokedSets {
    inner: Arc<RwLock<Sets>>,
    /// The position applied so far, for the feed's streams to wait on.
    applied: watch::Sender<i64>,
    /// Wakes [`follow`] to read the log now (a revocation committed here).
    nudge: Arc<Notify>,
    fresh: Arc<Freshness>,
    /// The change counter (`change_head`) as of the last log read: read in
    /// the same statement as the log's head, so following both costs one
    /// query a tick.
    change: Arc<std::sync::atomic::AtomicI64>,
}

impl Default for RevokedSets {
    fn default() -> Self {
        RevokedSets {
            inner: Arc::default(),
            applied: watch::Sender::new(0),
            nudge: Arc::default(),
            fresh: Arc::new(Freshness {
                base: Instant::now(),
                read_began_ms: AtomicU64::new(0),
                enforced: AtomicBool::new(false),
                reading: tokio::sync::Mutex::new(()),
            }),
            change: Arc::default(),
        }
    }
}

/// When this instance last read the log successfully, for
/// [`RevokedSets::ensure_fresh`].
struct Freshness {
    base: Instant,
    /// Milliseconds after `base` at which the last successful read began,
    /// plus one (0: never).
    read_began_ms: AtomicU64,
    /// Whether a stale instance refuses tokens (a registered `serve`
    /// process: [`RevokedSets::enforce_freshness`]).
    enforced: AtomicBool,
    /// One on-demand read at a time.
    reading: tokio::sync::Mutex<()>,
}

impl Freshness {
    fn stamp(&self, began: Instant) -> u64 {
        began.saturating_duration_since(self.base).as_millis() as u64 + 1
    }

    fn is_fresh(&self) -> bool {
        let began = self.read_began_ms.load(Ordering::Acquire);
        began > 0 && self.stamp(Instant::now()) - began < instances::FRESH_FOR.as_millis() as u64
    }
}

/// Who revoked, and why: stored on the row and in the audit log.
#[derive(Clone, Debug)]
pub struct RevokedBy<'a> {
    /// `user:<id>`, `client:<id>`, `admin:<id>` or `system`.
    pub actor: &'a str,
    pub reason: &'a str,
    pub actor_user_id: Option<&'a str>,
    pub actor_client_id: Option<&'a str>,
}

/// How many log rows are put into the sets under one lock.
const READ_CHUNK: usize = 1000;

/// Up to this many new positions are read by position; more, by `until_at`
/// (see [`RevokedSets::catch_up`]).
const BY_POSITION_UP_TO: i64 = 10_000;

impl RevokedSets {
    /// Loads every log entry that still matters.
    pub async fn load(db: &Db) -> DomainResult<RevokedSets> {
        let sets = RevokedSets::default();
        sets.catch_up(db).await?;
        Ok(sets)
    }

    /// Reads the log entries after the applied position up to the head
    /// (skipping those whose `until` passed) into the sets, and lets the
    /// feed's streams know. Returns how many were read. Marks this instance
    /// fresh as of when the read began.
    pub async fn catch_up(&self, db: &Db) -> DomainResult<usize> {
        let began = self.fresh.stamp(Instant::now());
        let read = self.read_log(db).await?;
        self.fresh.read_began_ms.fetch_max(began, Ordering::AcqRel);
        Ok(read)
    }

    /// Reads the log up to its head: the head position first (every entry
    /// up to it has committed: positions become visible in order), then the
    /// entries after the applied position that still matter, streamed into
    /// the sets in chunks. Then every position up to the head is applied,
    /// read or not: an expired entry never holds the applied position back.
    async fn read_log(&self, db: &Db) -> DomainResult<usize> {
        let after = self.applied();
        let (head, change): (i64, i64) = on_db!(db, |pool| sqlx::query_as(
            "SELECT h.position, c.generation FROM revocation_log_head h \
             CROSS JOIN change_head c WHERE h.id = 1 AND c.id = 1"
        )
        .fetch_one(pool)
        .await)?;
        if self.change.fetch_max(change, Ordering::AcqRel) < change {
            // What is remembered of registrations and policies is read
            // again — also when this read is a request's own (`ensure_fresh`),
            // not the follower's.
            super::clients::registration_changed();
        }
        if head <= after {
            return Ok(0);
        }
        // A few new entries (the usual read): by position. A long stretch
        // (start-up, a long outage): by `until_at`, so that entries whose
        // time passed are never read; `+position` keeps SQLite off the
        // position index, which it would take for the two-sided range.
        let sql = if head - after <= BY_POSITION_UP_TO {
            "SELECT position, kind, id, until_at FROM revocation_log \
             WHERE position > $2 AND position <= $3 AND until_at >= $1"
        } else {
            "SELECT position, kind, id, until_at FROM revocation_log \
             WHERE until_at >= $1 AND +position > $2 AND +position <= $3"
        };
        let at = now();
        let read = on_db!(db, |pool| {
            let mut rows = sqlx::query_as::<_, (i64, String, String, i64)>(sql)
                .bind(at)
                .bind(after)
                .bind(head)
                .fetch(pool);
            let mut chunk = Vec::with_capacity(READ_CHUNK);
            let mut read = 0;
            while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows).await? {
                chunk.push(row);
                if chunk.len() == READ_CHUNK {
                    read += chunk.len();
                    self.apply(chunk.drain(..));
                }
            }
            read += chunk.len();
            self.apply(chunk.drain(..));
            Ok::<_, sqlx::Error>(read)
        })?;
        {
            let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
            sets.applied = sets.applied.max(head);
        }
        self.applied.send_if_modified(|applied| {
            let moved = *applied < head;
            *applied = (*applied).max(head);
            moved
        });
        Ok(read)
    }

    /// Puts log rows into the sets. Another task may have read some of the
    /// same rows meanwhile: inserting them again changes nothing.
    fn apply(&self, rows: impl Iterator<Item = (i64, String, String, i64)>) {
        let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for (position, kind, id, until) in rows {
            let Some(kind) = EntryKind::parse(&kind) else {
                continue;
            };
            sets.remember(kind, &id, until);
            sets.expiry.insert((until, position));
            sets.log.insert(
                position,
                Entry {
                    position,
                    kind,
                    id,
                    until,
                },
            );
        }
    }

    /// From now on, a token is answered only after a read of the log that
    /// began less than [`instances::FRESH_FOR`] ago ([`Self::ensure_fresh`]):
    /// what a registered instance does.
    pub fn enforce_freshness(&self) {
        self.fresh.enforced.store(true, Ordering::Release);
    }

    /// Whether this instance may answer for a token now: it read the log
    /// recently enough (the follower does so every [`FOLLOW_EVERY`]), or it
    /// reads it now — one read for all requests waiting — and succeeds
    /// within a second. `false`: stale, fail closed (the token is refused).
    pub async fn ensure_fresh(&self, db: &Db) -> bool {
        if !self.fresh.enforced.load(Ordering::Acquire) || self.fresh.is_fresh() {
            return true;
        }
        let patience = Duration::from_secs(1);
        let Ok(_one) = tokio::time::timeout(patience, self.fresh.reading.lock()).await else {
            return false;
        };
        if self.fresh.is_fresh() {
            return true;
        }
        match tokio::time::timeout(patience, self.catch_up(db)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "stale and cannot read the revocation log: refusing tokens");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "stale and the revocation log did not answer in time: refusing tokens"
                );
                false
            }
        }
    }

    /// The log position read so far: every entry up to it is in memory.
    pub fn applied(&self) -> i64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).applied
    }

    /// Follows [`RevokedSets::applied`] (the feed's streams wait on it).
    pub fn watch_applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    /// The entries after `after` that still matter, at most `limit`, in
    /// position order (served from memory); whether more follow; and the
    /// position to continue from: the last entry's when more follow, else
    /// every position up to the applied one has been seen.
    pub fn entries_after(&self, after: i64, limit: usize) -> (Vec<Entry>, bool, i64) {
        let sets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let at = now();
        let mut live = sets
            .log
            .range(after.saturating_add(1)..)
            .map(|(_, e)| e)
            .filter(|e| e.until >= at);
        let entries: Vec<Entry> = live.by_ref().take(limit).cloned().collect();
        let more = live.next().is_some();
        let next = match entries.last() {
            Some(last) if more => last.position,
            _ => after.max(sets.applied),
        };
        (entries, more, next)
    }

    /// How many log entries are held in memory.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .log
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops what no longer matters: entries whose `until` passed.
    pub fn forget_expired(&self) {
        let at = now();
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .forget_before(at);
    }

    /// Whether this grant is revoked (as far as this instance applied the log).
    pub fn grant_is_revoked(&self, grant_id: &str) -> bool {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .grants
            .contains_key(grant_id)
    }

    /// Whether a token carrying these ids is revoked at any level.
    pub fn is_revoked(&self, grant_id: &str, family_id: Option<&str>, jti: &str) -> bool {
        let sets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        sets.grants.contains_key(grant_id)
            || family_id.is_some_and(|f| sets.families.contains_key(f))
            || sets.jtis.contains_key(jti)
    }

    /// Revokes one access token by `jti` (kept until it would have expired anyway).
    pub async fn revoke_access_token(
        &self,
        db: &Db,
        jti: &str,
        expires_at: i64,
        by: &RevokedBy<'_>,
    ) -> DomainResult<()> {
        let event = audit_event(by)
            .detail(serde_json::json!({ "what": "access_token", "jti": jti, "reason": by.reason }));
        let at = now();
        let head = on_db!(db, |pool| {
            let mut tx = pool.begin_durable_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let mut head = None;
            if inserted.rows_affected() > 0 {
                crate::bind_audit!(&event).execute(&mut *tx).await?;
                head = append_to_log!(tx, &[(EntryKind::Jti, jti)], expires_at, at)?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(head)
        })?;
        let done = Revoked {
            jtis: vec![jti.to_owned()],
            until: expires_at,
            ..Revoked::default()
        };
        if head.is_some() {
            done.count();
        }
        self.remember(&done);
        self.announce(db, head).await;
        Ok(())
    }

    /// Revokes a token family: every refresh token of its chain and, through
    /// the family id they carry, every access token issued in it.
    pub async fn revoke_family(
        &self,
        db: &Db,
        family_id: &str,
        by: &RevokedBy<'_>,
    ) -> DomainResult<bool> {
        let done = self.revoke(db, Target::Family(family_id), by, None).await?;
        Ok(!done.families.is_empty())
    }

    /// Revokes a grant (a user's consent to a client, or a client's own
    /// client_credentials grant): every family and token under it.
    pub async fn revoke_grant(
        &self,
        db: &Db,
        grant_id: &str,
        by: &RevokedBy<'_>,
    ) -> DomainResult<bool> {
        let done = self.revoke(db, Target::Grant(grant_id), by, None).await?;
        Ok(!done.grants.is_empty())
    }

    /// Revokes every live grant of a user ("revoke all apps"); returns what changed.
    pub async fn revoke_user_grants(
        &self,
        db: &Db,
        user_id: &str,
        by: &RevokedBy<'_>,
    ) -> DomainResult<Revoked> {
        self.revoke(db, Target::UserGrants(user_id), by, None).await
    }

    /// Revokes every live grant of a client, its client_credentials grant
    /// included: no token of the client works any more.
    pub async fn revoke_client_grants(
        &self,
        db: &Db,
        client_id: &str,
        by: &RevokedBy<'_>,
    ) -> DomainResult<Revoked> {
        self.revoke(db, Target::ClientGrants(client_id), by, None)
            .await
    }

    /// Ends a sign-in session and revokes every token family issued under it
    /// for clients whose revoke-on-logout is on (dashboard sign-out,
    /// RP-initiated logout). `logout` is the audit event of the sign-out,
    /// written only if the session was still live. client_credentials tokens
    /// have no sign-in and are untouched.
    pub async fn end_sign_in(
        &self,
        db: &Db,
        login_session_id: &str,
        by: &RevokedBy<'_>,
        logout: &AuditEvent,
    ) -> DomainResult<Revoked> {
        self.revoke(db, Target::SignIn(login_session_id), by, Some(logout))
            .await
    }

    /// One transaction: mark the target revoked, cascade to its families and
    /// their refresh tokens, audit; then the in-memory sets and, on
    /// PostgreSQL, a notification to the other instances.
    async fn revoke(
        &self,
        db: &Db,
        target: Target<'_>,
        by: &RevokedBy<'_>,
        logout: Option<&AuditEvent>,
    ) -> DomainResult<Revoked> {
        let at = now();
        // The grants column a grant-level target selects on, if any.
        let grants_by = match target {
            Target::Grant(_) => Some("id"),
            Target::UserGrants(_) => Some("user_id"),
            Target::ClientGrants(_) => Some("client_id"),
            Target::Family(_) | Target::SignIn(_) => None,
        };
        // Which families (and codes) the target covers, with `{id}` where the
        // target id goes; each statement below puts its own placeholder there.
        let (what, id, covered) = match target {
            Target::Family(id) => ("family", id, "id = {id}".to_owned()),
            Target::Grant(id) => ("grant", id, String::new()),
            Target::UserGrants(id) => ("user_grants", id, String::new()),
            Target::ClientGrants(id) => ("client_grants", id, String::new()),
            Target::SignIn(id) => (
                "sign_in",
                id,
                "login_session_id = {id} AND grant_id IN \
                (SELECT g.id FROM grants g JOIN client_policies p ON p.client_id = g.client_id \
                 WHERE p.revoke_on_logout)"
                    .to_owned(),
            ),
        };
        let covered = match grants_by {
            Some(column) => format!("grant_id IN (SELECT id FROM grants WHERE {column} = {{id}})"),
            None => covered,
        };
        let families_where = covered.replace("{id}", "$3");
        let revoke_families = format!(
            "UPDATE token_families SET revoked_at = $1, revoke_reason = $2 \
             WHERE revoked_at IS NULL AND {families_where} RETURNING id"
        );
        // Codes not yet redeemed hang from the same grant and sign-in as the
        // families they would start, so the same condition finds them. They go
        // first: on PostgreSQL a redemption in progress holds its code's row,
        // so this waits for it to commit, and the families UPDATE after it
        // then sees the family that redemption started (READ COMMITTED takes a
        // new snapshot per statement). A family target has no codes.
        let revoke_codes = (!matches!(target, Target::Family(_))).then(|| {
            format!(
                "UPDATE auth_codes SET revoked_at = $1 \
                 WHERE consumed_at IS NULL AND revoked_at IS NULL AND {}",
                covered.replace("{id}", "$2")
            )
        });
        // The clients whose tokens the target covers, for `until` (a
        // superset is harmless: `until` only gets later).
        let clients_of = match target {
            Target::Grant(_) => "SELECT client_id FROM grants WHERE id = $2",
            Target::UserGrants(_) => "SELECT client_id FROM grants WHERE user_id = $2",
            Target::ClientGrants(_) => "SELECT id FROM clients WHERE id = $2",
            Target::Family(_) => {
                "SELECT g.client_id FROM grants g JOIN token_families f ON f.grant_id = g.id \
                 WHERE f.id = $2"
            }
            Target::SignIn(_) => {
                "SELECT g.client_id FROM grants g JOIN token_families f ON f.grant_id = g.id \
                 WHERE f.login_session_id = $2"
            }
        };
        let until_of = format!(
            "SELECT MAX($1 + p.access_ttl_secs), MAX(c.access_exp_horizon), MAX(d.access_exp_horizon) \
             FROM clients c JOIN client_policies p ON p.client_id = c.id CROSS JOIN policy_default d \
             WHERE d.id = 1 AND c.id IN ({clients_of})"
        );
        let revoke_refresh_tokens = format!(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
             (SELECT id FROM token_families WHERE revoked_at = $1 AND revoke_reason = $2 AND {families_where})"
        );
        // Callers never hold a write transaction here (the turn is not reentrant).
        let (done, head) = on_db!(db, |pool| {
            let mut tx = pool.begin_durable_write().await?;
            let mut done = Revoked::default();
            if let Some(column) = grants_by {
                done.grants = sqlx::query_scalar(&format!(
                    "UPDATE grants SET revoked_at = $1, revoked_by = $2, revoke_reason = $3 \
                     WHERE revoked_at IS NULL AND {column} = $4 RETURNING id"
                ))
                .bind(at)
                .bind(by.actor)
                .bind(by.reason)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            }
            if let Target::SignIn(sid) = target {
                let ended = sqlx::query(
                    "UPDATE login_sessions SET ended_at = $1, end_reason = $2 \
                     WHERE id = $3 AND ended_at IS NULL",
                )
                .bind(at)
                .bind(by.reason)
                .bind(sid)
                .execute(&mut *tx)
                .await?;
                if let (Some(event), true) = (logout, ended.rows_affected() > 0) {
                    crate::bind_audit!(event).execute(&mut *tx).await?;
                }
                // Its upstream provider's tokens: due for revocation (RFC
                // 7009) in this transaction, or deleted.
                super::upstream::sign_in_ended(&mut tx, sid, at).await?;
            }
            if let Some(sql) = &revoke_codes {
                done.codes = sqlx::query(sql)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            done.families = sqlx::query_scalar(&revoke_families)
                .bind(at)
                .bind(by.reason)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(&revoke_refresh_tokens)
                .bind(at)
                .bind(by.reason)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if !done.is_empty() || done.codes > 0 {
                // Whose access it was and of which app, so the user's and the
                // app's timelines show it.
                let (subject, client) = match target {
                    Target::Grant(id) => sqlx::query_as::<_, (Option<String>, Option<String>)>(
                        "SELECT user_id, client_id FROM grants WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or_default(),
                    Target::Family(id) => sqlx::query_as::<_, (Option<String>, Option<String>)>(
                        "SELECT g.user_id, g.client_id FROM token_families f \
                         JOIN grants g ON g.id = f.grant_id WHERE f.id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or_default(),
                    Target::UserGrants(id) => (Some(id.to_owned()), None),
                    Target::ClientGrants(id) => (None, Some(id.to_owned())),
                    Target::SignIn(id) => (
                        sqlx::query_scalar("SELECT user_id FROM login_sessions WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?,
                        None,
                    ),
                };
                let mut event = audit_event(by);
                event.subject_user_id = subject;
                event.client_id = client;
                let event = event.detail(serde_json::json!({
                    "what": what,
                    "id": id,
                    "grants": done.grants,
                    "families": done.families,
                    "codes": done.codes,
                    "reason": by.reason,
                }));
                crate::bind_audit!(&event).execute(&mut *tx).await?;
                // A client's grants revoked at once: each person who lost
                // access gets an event of their own (their Security activity).
                if let Target::ClientGrants(client_id) = target {
                    let people: Vec<String> = sqlx::query_scalar(
                        "SELECT DISTINCT user_id FROM grants WHERE client_id = $1 \
                         AND revoked_at = $2 AND revoked_by = $3 AND user_id IS NOT NULL",
                    )
                    .bind(client_id)
                    .bind(at)
                    .bind(by.actor)
                    .fetch_all(&mut *tx)
                    .await?;
                    for person in people {
                        let mut theirs = audit_event(by);
                        theirs.subject_user_id = Some(person);
                        theirs.client_id = Some(client_id.to_owned());
                        let theirs = theirs.detail(serde_json::json!({
                            "what": "client_grants", "id": client_id, "reason": by.reason,
                        }));
                        crate::bind_audit!(&theirs).execute(&mut *tx).await?;
                    }
                }
            }
            // Back-channel logout tokens to the apps this ended, as outbox
            // rows in this transaction; the worker is woken once it is over.
            let _logouts = super::backchannel::enqueue(
                &mut tx,
                match target {
                    Target::SignIn(sid) => super::backchannel::Ended::SignIn(sid),
                    Target::Family(_) => super::backchannel::Ended::Nothing,
                    _ => super::backchannel::Ended::Grants(&done.grants),
                },
                at,
            )
            .await?;
            // The latest `exp` a token of the target can carry: issued at
            // the latest now, under the client's lifetime, or earlier under
            // a longer one (the horizon); unknown → the longest lifetime.
            let (ttl, horizon, default_horizon) =
                sqlx::query_as::<_, (Option<i64>, Option<i64>, Option<i64>)>(&until_of)
                    .bind(at)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            done.until = ttl
                .unwrap_or(at + policy::ACCESS_TTL_RANGE.1)
                .max(horizon.unwrap_or(0))
                .max(default_horizon.unwrap_or(0));
            // A revoked grant's entry covers its families (every token
            // carries its grant id): only families revoked on their own
            // need entries of their own.
            let entries: Vec<(EntryKind, &str)> = if grants_by.is_some() {
                done.grants
                    .iter()
                    .map(|g| (EntryKind::Grant, g.as_str()))
                    .collect()
            } else {
                done.families
                    .iter()
                    .map(|f| (EntryKind::Family, f.as_str()))
                    .collect()
            };
            let head = append_to_log!(tx, &entries, done.until, at)?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((done, head))
        })?;
        done.count();
        // A family or grant revoked earlier (by another instance, say) is
        // remembered too: presenting its tokens must fail here as well.
        match target {
            Target::Family(id) => self.remember(&Revoked {
                families: vec![id.to_owned()],
                until: done.until,
                ..Revoked::default()
            }),
            Target::Grant(id) => self.remember(&Revoked {
                grants: vec![id.to_owned()],
                until: done.until,
                ..Revoked::default()
            }),
            _ => self.remember(&done),
        }
        if matches!(target, Target::SignIn(_)) {
            // Upstream revocations the sign-in's end made due.
            super::backchannel::wake();
        }
        self.announce(db, head).await;
        Ok(done)
    }

    /// Adds revoked ids to this instance's sets at once (the log's entries
    /// for them follow through [`RevokedSets::catch_up`]).
    fn remember(&self, revoked: &Revoked) {
        let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for (kind, ids) in [
            (EntryKind::Grant, &revoked.grants),
            (EntryKind::Family, &revoked.families),
            (EntryKind::Jti, &revoked.jtis),
        ] {
            for id in ids {
                sets.remember(kind, id, revoked.until);
            }
        }
    }

    /// After a commit that appended to the log up to `head`: on PostgreSQL
    /// the other instances are told, and this instance reads the log up to it
    /// before the revocation is acknowledged, so its feed (snapshot and
    /// streams) has the entries from the next request on. Should that read
    /// fail, the follower ([`follow`]) is woken to retry. Then it waits until
    /// every other live instance applied it, or the bound passed
    /// ([`instances::wait_applied`]): from the acknowledgement on, no
    /// instance answers for a token it covers.
    async fn announce(&self, db: &Db, head: Option<i64>) {
        let Some(head) = head else { return };
        notify(db, head).await;
        if let Err(e) = self.catch_up(db).await {
            tracing::warn!(error = %e, "reading the revocation log after a revocation failed; the follower retries");
            self.nudge.notify_one();
        }
        instances::wait_applied(
            db,
            instances::me(),
            Mark::Position(head),
            instances::ack_bound(),
        )
        .await;
    }
}

/// What a revocation is aimed at.
#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    Family(&'a str),
    Grant(&'a str),
    /// Every live grant of a user.
    UserGrants(&'a str),
    /// Every live grant of a client (users' consents and its own client_credentials grant).
    ClientGrants(&'a str),
    /// A sign-in session (`sid`): ended, and its families revoked where the
    /// client's policy says revoke-on-logout.
    SignIn(&'a str),
}

/// The ids one revocation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    pub grants: Vec<String>,
    pub families: Vec<String>,
    pub jtis: Vec<String>,
    /// Authorization codes not yet redeemed that died with it (codes are
    /// refused from the database, not from the in-memory sets, so they have
    /// no log entries).
    pub codes: u64,
    /// Unix seconds: the latest `exp` a token it covers can carry.
    pub until: i64,
}

impl Revoked {
    /// Counts what this revocation changed (`latchkey_revoked_total`, by kind).
    fn count(&self) {
        for (kind, ids) in [
            ("grant", &self.grants),
            ("family", &self.families),
            ("jti", &self.jtis),
        ] {
            if !ids.is_empty() {
                metrics::counter!("latchkey_revoked_total", "kind" => kind)
                    .increment(ids.len() as u64);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.families.is_empty() && self.jtis.is_empty()
    }
}

/// The PostgreSQL channel new log positions are announced on (see [`follow`]).
pub const CHANNEL: &str = "latchkey_revoked";

/// How often [`follow`] reads the log when nothing woke it (another process
/// on the same SQLite file; a lost PostgreSQL notification): well within
/// [`instances::FRESH_FOR`], so a healthy instance never goes stale.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(50);

/// How often [`follow`] drops expired entries from memory.
const FORGET_EVERY: Duration = Duration::from_secs(1);

/// Tells the other instances on PostgreSQL that the log grew to `head`.
/// Best effort: a lost notification is caught by their polling.
async fn notify(db: &Db, head: i64) {
    let Db::Postgres(pool) = db else { return };
    if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(head.to_string())
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "could not notify other instances of a revocation; they read the log on their timer");
    }
}

/// Follows the revocation log and the change counter (from `since_change`,
/// the generation read before this instance loaded what it keeps) until the
/// process ends: reads new entries when woken (a revocation here; on PostgreSQL a
/// NOTIFY from another instance) and every [`FOLLOW_EVERY`] otherwise; calls
/// `on_change` when another process changed what instances keep in memory
/// (`instances::announce_change`; remembered registrations are already
/// marked stale by then, by the log read); drops from memory what expired (the table
/// is pruned by `retention`); and, for a registered instance, reports how far
/// it applied both (`instances::report`) at once after it moved, and every
/// [`instances::HEARTBEAT`].
pub async fn follow<F, Fut>(db: Db, sets: RevokedSets, since_change: i64, mut on_change: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let reading = async {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut change = since_change;
        let mut reported: Option<(i64, i64, Instant)> = None;
        let mut forgot = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = sets.nudge.notified() => {}
            }
            match sets.catch_up(&db).await {
                Ok(_) => {
                    let generation = sets.change.load(Ordering::Acquire);
                    if generation != change {
                        on_change().await;
                        change = generation;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the revocation log failed"),
            }
            if forgot.elapsed() >= FORGET_EVERY {
                sets.forget_expired();
                forgot = Instant::now();
            }
            if let Some(me) = instances::me() {
                let applied = sets.applied();
                let due = reported.is_none_or(|(position, generation, at)| {
                    position != applied
                        || generation != change
                        || at.elapsed() >= instances::HEARTBEAT
                });
                if due {
                    match instances::report(&db, me, applied, change).await {
                        Ok(()) => reported = Some((applied, change, Instant::now())),
                        Err(e) => {
                            tracing::warn!(error = %e, "reporting to the instances table failed")
                        }
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = reading => {}
        _ = listen(&db, &sets.nudge) => {}
    }
}

/// On PostgreSQL, wakes the follower at every NOTIFY of another instance's
/// revocation, and once after each (re)connection (anything committed before
/// LISTEN took effect). Never returns (on SQLite it has nothing to do).
async fn listen(db: &Db, nudge: &Notify) {
    let Db::Postgres(pool) = db else {
        return std::future::pending().await;
    };
    loop {
        match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN {CHANNEL} failed");
                } else {
                    nudge.notify_one();
                    loop {
                        match listener.recv().await {
                            Ok(_) => nudge.notify_one(),
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the revocation channel; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect to follow revocations"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn audit_event(by: &RevokedBy<'_>) -> AuditEvent {
    let mut event = AuditEvent::new(AuditKind::Revoked);
    if let Some(user) = by.actor_user_id {
        event = event.actor(user);
    }
    if let Some(client) = by.actor_client_id {
        event.actor_client_id = Some(client.to_owned());
    }
    event
}
