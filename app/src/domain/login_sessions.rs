//! Sign-in sessions: one row per browser sign-in (its id is the OpenID
//! Connect `sid`). The browser holds only a tower-sessions cookie whose record
//! points here; ending the row ends the sign-in everywhere at once.

use serde::Serialize;

use super::{
    audit::{AuditEvent, AuditKind},
    error::DomainResult,
    revocation::{Revoked, RevokedBy, RevokedSets},
    secrets::new_id,
    store::{now, Db},
    users::User,
};
use crate::on_db;

/// Key in the tower-sessions record that holds the sign-in session id.
pub const SESSION_KEY: &str = "login_session_id";

/// `last_seen_at` is written at most this often per session (seconds).
const TOUCH_EVERY: i64 = 60;

/// Where a request came from, as recorded on sessions and audit events.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: String,
}

/// A live sign-in and its user.
#[derive(Clone, Debug, Serialize)]
pub struct SignedIn {
    pub login_session_id: String,
    pub user: User,
}

/// Starts a sign-in session for `user` and audits the sign-in.
pub async fn start(db: &Db, user: &User, from: &ClientInfo) -> DomainResult<String> {
    let id = new_id();
    let at = now();
    let ua: String = from.user_agent.chars().take(512).collect();
    on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let earlier: Vec<String> = sqlx::query_scalar(super::security::EARLIER_DEVICES_SQL)
            .bind(&user.id)
            .fetch_all(&mut *tx)
            .await?;
        let new_device = super::security::is_new_device(&earlier, &ua);
        let event = AuditEvent::new(AuditKind::Login)
            .actor(&user.id)
            .subject(&user.id)
            .ip(&from.ip)
            .detail(serde_json::json!({ "sid": id, "user_agent": ua, "new_device": new_device }));
        sqlx::query(
            "INSERT INTO login_sessions (id, user_id, user_agent, ip, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&id)
        .bind(&user.id)
        .bind(&ua)
        .bind(&from.ip)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct SessionUserRow {
    last_seen_at: i64,
    id: String,
    username: String,
    is_admin: bool,
    disabled_at: Option<i64>,
    created_at: i64,
}

/// The live sign-in with this id: not ended, user not disabled. Refreshes
/// `last_seen_at` (at most once a minute).
pub async fn resolve(
    db: &Db,
    login_session_id: &str,
    from: &ClientInfo,
) -> DomainResult<Option<SignedIn>> {
    let row = on_db!(db, |pool| sqlx::query_as::<_, SessionUserRow>(
        "SELECT s.last_seen_at, u.id, u.username, u.is_admin, u.disabled_at, u.created_at \
         FROM login_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.ended_at IS NULL AND u.disabled_at IS NULL"
    )
    .bind(login_session_id)
    .fetch_optional(pool)
    .await)?;
    let Some(row) = row else { return Ok(None) };
    let at = now();
    if at - row.last_seen_at >= TOUCH_EVERY {
        on_db!(db, |pool| {
            pool.execute_write(
                sqlx::query(
                    "UPDATE login_sessions SET last_seen_at = $1, ip = $2 \
                     WHERE id = $3 AND ended_at IS NULL",
                )
                .bind(at)
                .bind(&from.ip)
                .bind(login_session_id),
            )
            .await
            .map(|r| r.rows_affected())
        })?;
    }
    Ok(Some(SignedIn {
        login_session_id: login_session_id.to_owned(),
        user: User {
            id: row.id,
            username: row.username,
            is_admin: row.is_admin,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
        },
    }))
}

/// Ends a sign-in session (idempotent), audits the sign-out, and revokes the
/// token families issued under it for clients with revoke-on-logout on — one
/// transaction, committed before this returns.
pub async fn end(
    db: &Db,
    revoked: &RevokedSets,
    signed_in: &SignedIn,
    reason: &str,
    from: &ClientInfo,
) -> DomainResult<Revoked> {
    let user_id = &signed_in.user.id;
    let logout = AuditEvent::new(AuditKind::Logout)
        .actor(user_id)
        .subject(user_id)
        .ip(&from.ip)
        .detail(serde_json::json!({ "sid": signed_in.login_session_id, "reason": reason }));
    let actor = format!("user:{user_id}");
    let by = RevokedBy {
        actor: &actor,
        reason,
        actor_user_id: Some(user_id),
        actor_client_id: None,
    };
    revoked
        .end_sign_in(db, &signed_in.login_session_id, &by, &logout)
        .await
}

/// Counts a user's live sign-in sessions.
pub async fn count_live(db: &Db, user_id: &str) -> DomainResult<i64> {
    Ok(on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL"
    )
    .bind(user_id)
    .fetch_one(pool)
    .await)?)
}
