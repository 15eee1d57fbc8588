//! Revocation: durable first, then visible.
//!
//! Every revocation commits in the database, then lands in this instance's
//! in-memory sets of revoked grant ids, family ids and access-token `jti`s.
//! Introspection and userinfo consult those sets with no database round trip.
//! The sets only need what can still be presented: access tokens live at most
//! [`policy::ACCESS_TTL_RANGE`]`.1`, so older revocations are not loaded.
//! (Several PostgreSQL instances: [`RevokedSets::reload`] re-reads the sets;
//! LISTEN/NOTIFY is still to come.)

use std::{
    collections::HashSet,
    sync::{Arc, RwLock},
};

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
            let mut tx = pool.begin().await?;
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
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .jtis
            .insert(jti.to_owned());
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
        let event = audit_event(by).detail(
            serde_json::json!({ "what": "family", "family_id": family_id, "reason": by.reason }),
        );
        let at = now();
        let changed = on_db!(db, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE token_families SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(by.reason)
            .bind(family_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(family_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                crate::bind_audit!(&event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected() > 0)
        })?;
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .families
            .insert(family_id.to_owned());
        Ok(changed)
    }

    /// Revokes a grant (a user's consent to a client, or a client's own
    /// client_credentials grant): every family and token under it.
    pub async fn revoke_grant(
        &self,
        db: &Db,
        grant_id: &str,
        by: &RevokedBy<'_>,
    ) -> DomainResult<bool> {
        let event = audit_event(by).detail(
            serde_json::json!({ "what": "grant", "grant_id": grant_id, "reason": by.reason }),
        );
        let at = now();
        let changed = on_db!(db, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE grants SET revoked_at = $1, revoked_by = $2, revoke_reason = $3 WHERE id = $4 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(by.actor)
            .bind(by.reason)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE token_families SET revoked_at = $1, revoke_reason = $2 WHERE grant_id = $3 AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(by.reason)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND family_id IN \
                 (SELECT id FROM token_families WHERE grant_id = $2)",
            )
            .bind(at)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                crate::bind_audit!(&event).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected() > 0)
        })?;
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .grants
            .insert(grant_id.to_owned());
        Ok(changed)
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
