//! Revocation: durable first, then visible.
//!
//! Every revocation commits in the database, then lands in this instance's
//! in-memory sets of revoked grant ids, family ids and access-token `jti`s.
//! Introspection and userinfo consult those sets with no database round trip.
//! The sets only need what can still be presented: access tokens live at most
//! [`policy::ACCESS_TTL_RANGE`]`.1`, so older revocations are not loaded.
//! Several instances on PostgreSQL tell each other through LISTEN/NOTIFY
//! ([`listen`]); [`RevokedSets::reload`] on a timer is the fallback.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};

use super::{
    audit::{AuditEvent, AuditKind},
    error::DomainResult,
    policy,
    store::{now, Db},
};
use crate::on_db;

#[derive(Default)]
struct Sets {
    grants: HashSet<String>,
    families: HashSet<String>,
    jtis: HashSet<String>,
}

/// This instance's view of what is revoked. Cheap to clone.
#[derive(Clone, Default)]
pub struct RevokedSets {
    inner: Arc<RwLock<Sets>>,
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

impl RevokedSets {
    /// Loads every revocation whose tokens may still be presented.
    pub async fn load(db: &Db) -> DomainResult<RevokedSets> {
        let sets = RevokedSets::default();
        sets.reload(db).await?;
        Ok(sets)
    }

    /// Re-reads the sets from the database (start-up; other instances' revocations).
    pub async fn reload(&self, db: &Db) -> DomainResult<()> {
        let since = now() - policy::ACCESS_TTL_RANGE.1;
        let at = now();
        let (grants, families, jtis) = on_db!(db, |pool| {
            let grants: Vec<String> =
                sqlx::query_scalar("SELECT id FROM grants WHERE revoked_at >= $1")
                    .bind(since)
                    .fetch_all(pool)
                    .await?;
            let families: Vec<String> =
                sqlx::query_scalar("SELECT id FROM token_families WHERE revoked_at >= $1")
                    .bind(since)
                    .fetch_all(pool)
                    .await?;
            let jtis: Vec<String> =
                sqlx::query_scalar("SELECT jti FROM revoked_access_tokens WHERE expires_at >= $1")
                    .bind(at)
                    .fetch_all(pool)
                    .await?;
            Ok::<_, sqlx::Error>((grants, families, jtis))
        })?;
        let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
        sets.grants.extend(grants);
        sets.families.extend(families);
        sets.jtis.extend(jtis);
        Ok(())
    }

    /// Whether a token carrying these ids is revoked at any level.
    pub fn is_revoked(&self, grant_id: &str, family_id: Option<&str>, jti: &str) -> bool {
        let sets = self.inner.read().unwrap_or_else(|e| e.into_inner());
        sets.grants.contains(grant_id)
            || family_id.is_some_and(|f| sets.families.contains(f))
            || sets.jtis.contains(jti)
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
        on_db!(db, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() > 0 {
                crate::bind_audit!(&event).execute(&mut *tx).await?;
            }
            tx.commit().await
        })?;
        let done = Revoked {
            jtis: vec![jti.to_owned()],
            ..Revoked::default()
        };
        self.remember(&done);
        notify(db, &done).await;
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
                (SELECT g.id FROM grants g JOIN clients c ON c.id = g.client_id \
                 CROSS JOIN policy_default d WHERE d.id = 1 \
                 AND COALESCE(c.revoke_on_logout, d.revoke_on_logout))"
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
        let revoke_refresh_tokens = format!(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
             (SELECT id FROM token_families WHERE revoked_at = $1 AND revoke_reason = $2 AND {families_where})"
        );
        // Callers never hold a write transaction here (the turn is not reentrant).
        let done = on_db!(db, |pool| {
            let mut tx = pool.begin_write().await?;
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
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done)
        })?;
        // A family or grant revoked earlier (by another instance, say) is
        // remembered too: presenting its tokens must fail here as well.
        match target {
            Target::Family(id) => self.remember(&Revoked::families(vec![id.to_owned()])),
            Target::Grant(id) => self.remember(&Revoked {
                grants: vec![id.to_owned()],
                ..Revoked::default()
            }),
            _ => self.remember(&done),
        }
        notify(db, &done).await;
        Ok(done)
    }

    /// Adds revoked ids to this instance's sets.
    pub fn remember(&self, revoked: &Revoked) {
        let mut sets = self.inner.write().unwrap_or_else(|e| e.into_inner());
        sets.grants.extend(revoked.grants.iter().cloned());
        sets.families.extend(revoked.families.iter().cloned());
        sets.jtis.extend(revoked.jtis.iter().cloned());
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    #[serde(default, rename = "g", skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    #[serde(default, rename = "f", skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<String>,
    #[serde(default, rename = "j", skip_serializing_if = "Vec::is_empty")]
    pub jtis: Vec<String>,
    /// Authorization codes not yet redeemed that died with it (this
    /// instance's count only: codes are refused from the database, not from
    /// the in-memory sets, so other instances need not hear of them).
    #[serde(skip)]
    pub codes: u64,
}

impl Revoked {
    pub fn families(families: Vec<String>) -> Revoked {
        Revoked {
            families,
            ..Revoked::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.families.is_empty() && self.jtis.is_empty()
    }
}

/// The PostgreSQL channel revocations are announced on (see [`listen`]).
pub const CHANNEL: &str = "latchkey_revoked";

/// Tells the other instances on PostgreSQL about a committed revocation. Best
/// effort: a lost notification is caught by their periodic reload.
async fn notify(db: &Db, revoked: &Revoked) {
    let Db::Postgres(pool) = db else { return };
    if revoked.is_empty() {
        return;
    }
    let Ok(payload) = serde_json::to_string(revoked) else {
        return;
    };
    // NOTIFY payloads are limited to 8000 bytes: a bigger change only says "reload".
    let payload = if payload.len() < 7900 {
        payload
    } else {
        "{}".to_owned()
    };
    if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(&payload)
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "could not notify other instances of a revocation; they reload on their timer");
    }
}

/// Follows other instances' revocations on PostgreSQL (LISTEN/NOTIFY), until
/// the process ends. On a lost connection it reconnects and reloads the sets
/// in full, so nothing announced meanwhile is missed. On SQLite (one process)
/// there is nothing to follow.
pub async fn listen(db: Db, sets: RevokedSets) {
    let Db::Postgres(pool) = &db else { return };
    loop {
        match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN {CHANNEL} failed");
                } else {
                    // Anything revoked before LISTEN took effect is in the tables.
                    if let Err(e) = sets.reload(&db).await {
                        tracing::warn!(error = %e, "reloading revocations failed");
                    }
                    loop {
                        match listener.recv().await {
                            Ok(note) => match serde_json::from_str::<Revoked>(note.payload()) {
                                Ok(revoked) if !revoked.is_empty() => sets.remember(&revoked),
                                _ => {
                                    if let Err(e) = sets.reload(&db).await {
                                        tracing::warn!(error = %e, "reloading revocations failed");
                                    }
                                }
                            },
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
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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
