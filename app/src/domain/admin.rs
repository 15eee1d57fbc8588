//! What an administrator does (the admin REST API today, the admin pages
//! later): finding clients and users with their activity, editing them, and
//! cutting access in bulk. Every change is audited with the acting admin — a
//! person, or a client holding a `latchkey:admin` token — and every revocation
//! goes through [`RevokedSets`], so it is committed first and then visible in
//! memory at once.

use serde::Serialize;

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    clients::{self, Client, ClientKind, GrantType},
    error::{DomainError, DomainResult},
    grants::split_scopes,
    names::fold_key,
    revocation::{RevokedBy, RevokedSets},
    store::{now, Db},
    users::User,
};
use crate::on_db;

/// A `LIKE` pattern matching `q` as a literal substring: `\`, `%` and `_` are
/// escaped with `\` (use with `ESCAPE '\'`). Quotes need nothing: it is bound.
pub fn like_pattern(q: &str) -> String {
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A search string: trimmed, empty means "no filter", at most 100 characters;
/// answers the `LIKE` pattern of its [`fold_key`], for the key columns (the
/// fold comes first: fullwidth `％` folds to a `%` that must still be literal).
fn search_term(q: Option<&str>) -> DomainResult<Option<String>> {
    match q.map(str::trim).filter(|q| !q.is_empty()) {
        None => Ok(None),
        Some(q) if q.chars().count() > 100 => {
            Err(DomainError::invalid("q", "must be at most 100 characters"))
        }
        Some(q) => Ok(Some(like_pattern(&fold_key(q)))),
    }
}

/// What a revocation in bulk changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RevokedCounts {
    pub grants_revoked: usize,
    pub families_revoked: usize,
}

/// How a revocation by `actor` is recorded (`revoked_by`, audit actor).
fn revoked_by<'a>(actor: &'a Actor, label: &'a str, reason: &'a str) -> RevokedBy<'a> {
    RevokedBy {
        actor: label,
        reason,
        actor_user_id: actor.user_id.as_deref(),
        actor_client_id: actor.client_id.as_deref(),
    }
}

// ---------------------------------------------------------------- clients

/// A client in the admin list: what it is and how much it is used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientSummary {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    pub grant_types: Vec<GrantType>,
    /// The effective policy: refresh tokens on, and the refresh_token grant allowed.
    pub refresh_enabled: bool,
    /// Live grants: users' consents and its own client_credentials grant.
    pub active_grants: i64,
    /// Token families (app sessions) not revoked, under live grants.
    pub active_families: i64,
    /// The last code redemption, refresh or client_credentials token, if any.
    pub last_activity: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ClientSummaryRow {
    client_id: String,
    name: String,
    kind: String,
    grant_types: String,
    refresh_enabled: bool,
    active_grants: i64,
    active_families: i64,
    last_activity: Option<i64>,
}

impl From<ClientSummaryRow> for ClientSummary {
    fn from(row: ClientSummaryRow) -> Self {
        let grant_types: Vec<GrantType> = row
            .grant_types
            .split_whitespace()
            .filter_map(GrantType::parse)
            .collect();
        ClientSummary {
            refresh_enabled: row.refresh_enabled && grant_types.contains(&GrantType::RefreshToken),
            client_id: row.client_id,
            name: row.name,
            kind: if row.kind == "public" {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            grant_types,
            active_grants: row.active_grants,
            active_families: row.active_families,
            last_activity: row.last_activity,
        }
    }
}

/// Clients not deleted with their usage. `$1`: a LIKE pattern of folded text
/// (client ids are ASCII, so `lower()` folds them alike on both backends) or
/// NULL; `$2`: a client id or NULL.
const CLIENT_SUMMARY_SQL: &str = "SELECT c.id AS client_id, c.name, c.kind, c.grant_types, \
    p.refresh_enabled, \
    (SELECT COUNT(*) FROM grants g WHERE g.client_id = c.id AND g.revoked_at IS NULL) AS active_grants, \
    (SELECT COUNT(*) FROM token_families f JOIN grants g ON g.id = f.grant_id \
     WHERE g.client_id = c.id AND g.revoked_at IS NULL AND f.revoked_at IS NULL) AS active_families, \
    (SELECT MAX(t) FROM (SELECT MAX(a.at) AS t FROM audit_events a WHERE a.client_id = c.id \
     AND a.kind IN ('code_redeemed', 'token_refreshed', 'token_issued') \
     UNION ALL SELECT MAX(u.minute) * 60 FROM usage_counts u WHERE u.client_id = c.id) AS seen) AS last_activity \
    FROM clients c JOIN client_policies p ON p.client_id = c.id \
    WHERE c.deleted_at IS NULL \
    AND ($1 IS NULL OR c.name_key LIKE $1 ESCAPE '\\' OR lower(c.id) LIKE $1 ESCAPE '\\') \
    AND ($2 IS NULL OR c.id = $2) \
    ORDER BY c.name_key, c.id";

/// Every client not deleted, by name; `q` matches a substring of the name or
/// the client_id, in any letter case (Unicode case folding and NFKC, the same
/// on both backends), with `%`, `_` and `\` taken literally.
pub async fn list_clients(db: &Db, q: Option<&str>) -> DomainResult<Vec<ClientSummary>> {
    let pattern = search_term(q)?;
    let rows = on_db!(db, |pool| sqlx::query_as::<_, ClientSummaryRow>(
        CLIENT_SUMMARY_SQL
    )
    .bind(&pattern)
    .bind(None::<String>)
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().map(ClientSummary::from).collect())
}

/// One client with its registration and usage; `NotFound` when unknown or deleted.
pub async fn client_detail(db: &Db, client_id: &str) -> DomainResult<(Client, ClientSummary)> {
    let client = clients::find_client(db, client_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let row = on_db!(db, |pool| sqlx::query_as::<_, ClientSummaryRow>(
        CLIENT_SUMMARY_SQL
    )
    .bind(None::<String>)
    .bind(client_id)
    .fetch_optional(pool)
    .await)?
    .ok_or(DomainError::NotFound)?;
    Ok((client, ClientSummary::from(row)))
}

/// Revokes every grant of a client (users' consents, its own
/// client_credentials grant) and with them every token: none works any more.
pub async fn revoke_client(
    db: &Db,
    revoked: &RevokedSets,
    client_id: &str,
    actor: &Actor,
) -> DomainResult<RevokedCounts> {
    clients::find_client(db, client_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let label = actor.label();
    let done = revoked
        .revoke_client_grants(
            db,
            client_id,
            &revoked_by(actor, &label, "admin revoked all tokens of the client"),
        )
        .await?;
    Ok(RevokedCounts {
        grants_revoked: done.grants.len(),
        families_revoked: done.families.len(),
    })
}

/// Deletes a client: revokes everything it holds, marks it deleted (it can no
/// longer authenticate), then revokes once more in case a token was issued
/// in between. Answers how many grants and families were revoked.
pub async fn delete_client(
    db: &Db,
    revoked: &RevokedSets,
    client_id: &str,
    actor: &Actor,
) -> DomainResult<RevokedCounts> {
    let mut counts = revoke_client(db, revoked, client_id, actor).await?;
    clients::mark_deleted(
        db,
        client_id,
        actor,
        serde_json::json!({
            "grants_revoked": counts.grants_revoked,
            "families_revoked": counts.families_revoked,
        }),
    )
    .await?;
    let label = actor.label();
    let late = revoked
        .revoke_client_grants(db, client_id, &revoked_by(actor, &label, "client deleted"))
        .await?;
    counts.grants_revoked += late.grants.len();
    counts.families_revoked += late.families.len();
    Ok(counts)
}

/// Refresh tokens that would work if presented now, of one client (`Some`) or
/// of every client that inherits the default refresh switch (`None`): what
/// stops working when refresh is switched off there. A chain's current
/// generation counts once per family, a stored token (issued before chains)
/// once per token.
pub async fn live_refresh_tokens(db: &Db, client_id: Option<&str>) -> DomainResult<i64> {
    let target = match client_id {
        Some(_) => "c.id = $2",
        None => "c.refresh_enabled IS NULL",
    };
    let sql = format!(
        "SELECT COUNT(*) FROM token_families f \
         JOIN grants g ON g.id = f.grant_id JOIN clients c ON c.id = g.client_id \
         JOIN client_policies p ON p.client_id = c.id LEFT JOIN users u ON u.id = g.user_id \
         LEFT JOIN refresh_tokens t ON t.family_id = f.id AND t.revoked_at IS NULL \
           AND t.expires_at > $1 AND (t.used_at IS NULL OR NOT p.rotate_refresh) \
         WHERE c.deleted_at IS NULL AND u.disabled_at IS NULL \
         AND f.revoked_at IS NULL AND g.revoked_at IS NULL \
         AND (t.hash IS NOT NULL OR f.chain_expires_at > $1) \
         AND f.created_at + p.refresh_absolute_ttl_secs > $1 \
         AND (' ' || c.grant_types || ' ') LIKE '% refresh_token %' \
         AND {target}"
    );
    Ok(on_db!(db, |pool| {
        let query = sqlx::query_scalar::<_, i64>(&sql).bind(now());
        match client_id {
            Some(id) => query.bind(id),
            None => query,
        }
        .fetch_one(pool)
        .await
    })?)
}

// ---------------------------------------------------------------- users

const USER_COLUMNS: &str = "id, username, is_admin, disabled_at, created_at";

/// Every user by name; `q` matches a substring of the username in any letter
/// case (Unicode case folding and NFKC: `jür` finds `Jürgen` on both
/// backends), with `%`, `_`, `\` and quotes taken literally.
pub async fn list_users(db: &Db, q: Option<&str>) -> DomainResult<Vec<User>> {
    let pattern = search_term(q)?;
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users \
         WHERE $1 IS NULL OR username_key LIKE $1 ESCAPE '\\' \
         ORDER BY username_key, id"
    );
    Ok(on_db!(db, |pool| sqlx::query_as::<_, User>(&sql)
        .bind(&pattern)
        .fetch_all(pool)
        .await)?)
}

/// An app holding a live grant for a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserApp {
    pub grant_id: String,
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
    pub last_used_at: Option<i64>,
    pub active_families: i64,
}

#[derive(sqlx::FromRow)]
struct UserAppRow {
    grant_id: String,
    client_id: String,
    client_name: String,
    scopes: String,
    created_at: i64,
    last_used_at: Option<i64>,
    active_families: i64,
}

/// A live sign-in session (its id is the OpenID Connect `sid`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserSession {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: String,
    pub user_agent: String,
}

/// A user with the apps holding tokens for them and their live sign-ins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserDetail {
    pub user: User,
    pub apps: Vec<UserApp>,
    pub sessions: Vec<UserSession>,
}

pub async fn user_detail(db: &Db, user_id: &str) -> DomainResult<UserDetail> {
    let user = super::users::find_by_id(db, user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let (apps, sessions) = on_db!(db, |pool| {
        let apps: Vec<UserAppRow> = sqlx::query_as(
            "SELECT g.id AS grant_id, c.id AS client_id, c.name AS client_name, g.scopes, \
             g.created_at, g.last_used_at, \
             (SELECT COUNT(*) FROM token_families f WHERE f.grant_id = g.id AND f.revoked_at IS NULL) \
             AS active_families \
             FROM grants g JOIN clients c ON c.id = g.client_id \
             WHERE g.user_id = $1 AND g.revoked_at IS NULL AND c.deleted_at IS NULL \
             ORDER BY COALESCE(g.last_used_at, g.created_at) DESC, g.id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?;
        let sessions: Vec<UserSession> = sqlx::query_as(
            "SELECT id, created_at, last_seen_at, ip, user_agent FROM login_sessions \
             WHERE user_id = $1 AND ended_at IS NULL ORDER BY last_seen_at DESC, id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?;
        Ok::<_, sqlx::Error>((apps, sessions))
    })?;
    Ok(UserDetail {
        user,
        apps: apps
            .into_iter()
            .map(|a| UserApp {
                grant_id: a.grant_id,
                client_id: a.client_id,
                client_name: a.client_name,
                scopes: split_scopes(&a.scopes),
                granted_at: a.created_at,
                last_used_at: a.last_used_at,
                active_families: a.active_families,
            })
            .collect(),
        sessions,
    })
}

/// A change to a user (`None`: keep).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    pub disabled: Option<bool>,
    pub is_admin: Option<bool>,
}

/// What cutting a user's access off changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CutOff {
    pub grants_revoked: usize,
    pub families_revoked: usize,
    pub sessions_ended: usize,
}

/// The user after a change, and what disabling them revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserUpdate {
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_off: Option<CutOff>,
}

/// Disables or enables a user and grants or removes admin rights, in one
/// transaction that audits each change. The last admin who is not disabled
/// keeps their rights: demoting or disabling them is a `Conflict`.
///
/// Disabling (also asked again of a disabled user, so a failed attempt can be
/// retried) then revokes all their grants and ends all their sign-in sessions;
/// sign-in already refuses disabled users.
pub async fn update_user(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
    change: UserChange,
    actor: &Actor,
) -> DomainResult<UserUpdate> {
    if change == UserChange::default() {
        return Err(DomainError::invalid(
            "disabled",
            "nothing to change: give disabled and/or is_admin",
        ));
    }
    let at = now();
    let outcome = on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        // Two admins demoting each other at once must not both succeed: lock
        // the rows the "last admin" count reads. SQLite has one writer at a
        // time, and the conditional UPDATE below decides within it.
        if matches!(db, Db::Postgres(_)) {
            sqlx::query(
                "SELECT id FROM users WHERE (is_admin AND disabled_at IS NULL) OR id = $1 FOR UPDATE",
            )
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let Some(before) = sqlx::query_as::<_, User>(&sql)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(Err(DomainError::NotFound));
        };
        let is_admin = change.is_admin.unwrap_or(before.is_admin);
        let disabled_at = match change.disabled {
            Some(true) => before.disabled_at.or(Some(at)),
            Some(false) => None,
            None => before.disabled_at,
        };
        let was_active_admin = before.is_admin && before.disabled_at.is_none();
        let stays_active_admin = is_admin && disabled_at.is_none();
        if was_active_admin && !stays_active_admin {
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM users WHERE is_admin AND disabled_at IS NULL AND id <> $1",
            )
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Ok(Err(DomainError::Conflict(format!(
                    "{} is the last admin who is not disabled; make another user admin first",
                    before.username
                ))));
            }
        }
        sqlx::query("UPDATE users SET is_admin = $1, disabled_at = $2 WHERE id = $3")
            .bind(is_admin)
            .bind(disabled_at)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let event = |kind| {
            AuditEvent::new(kind)
                .subject(user_id)
                .by(actor)
                .detail(serde_json::json!({ "username": before.username }))
        };
        if disabled_at.is_some() != before.disabled_at.is_some() {
            let kind = if disabled_at.is_some() {
                AuditKind::UserDisabled
            } else {
                AuditKind::UserEnabled
            };
            crate::bind_audit!(&event(kind)).execute(&mut *tx).await?;
        }
        if is_admin != before.is_admin {
            let e = event(AuditKind::UserAdminChanged).detail(serde_json::json!({
                "username": before.username,
                "before": { "is_admin": before.is_admin },
                "after": { "is_admin": is_admin },
            }));
            crate::bind_audit!(&e).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Ok(User {
            is_admin,
            disabled_at,
            ..before
        }))
    })?;
    let user = outcome?;
    let cut_off = if change.disabled == Some(true) {
        Some(cut_off(db, revoked, &user, actor, "user disabled").await?)
    } else {
        None
    };
    Ok(UserUpdate { user, cut_off })
}

/// Revokes every grant of a user and ends every sign-in session of theirs.
async fn cut_off(
    db: &Db,
    revoked: &RevokedSets,
    user: &User,
    actor: &Actor,
    reason: &str,
) -> DomainResult<CutOff> {
    let apps = revoke_user_apps(db, revoked, &user.id, actor, reason).await?;
    let ended = end_sessions(db, revoked, &user.id, actor, reason).await?;
    Ok(CutOff {
        grants_revoked: apps.grants_revoked,
        families_revoked: apps.families_revoked + ended.families_revoked,
        sessions_ended: ended.sessions_ended,
    })
}

/// Revokes every live grant of a user ("revoke all apps"); `NotFound` for an unknown user.
pub async fn revoke_user_apps(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
    actor: &Actor,
    reason: &str,
) -> DomainResult<RevokedCounts> {
    super::users::find_by_id(db, user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let label = actor.label();
    let done = revoked
        .revoke_user_grants(db, user_id, &revoked_by(actor, &label, reason))
        .await?;
    Ok(RevokedCounts {
        grants_revoked: done.grants.len(),
        families_revoked: done.families.len(),
    })
}

/// What signing a user out everywhere changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SignedOut {
    pub sessions_ended: usize,
    /// Token families issued under those sign-ins, for clients with revoke-on-logout on.
    pub families_revoked: usize,
}

/// Ends every live sign-in session of a user, as a sign-out of each would:
/// the families issued under them are revoked where the client's
/// revoke-on-logout is on. `NotFound` for an unknown user.
pub async fn sign_out_everywhere(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
    actor: &Actor,
) -> DomainResult<SignedOut> {
    super::users::find_by_id(db, user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    end_sessions(
        db,
        revoked,
        user_id,
        actor,
        "admin signed the user out everywhere",
    )
    .await
}

async fn end_sessions(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
    actor: &Actor,
    reason: &str,
) -> DomainResult<SignedOut> {
    let ids: Vec<(String, String)> = on_db!(db, |pool| {
        sqlx::query_as(
        "SELECT id, user_agent FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL ORDER BY id"
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    })?;
    let label = actor.label();
    let by = revoked_by(actor, &label, reason);
    let mut out = SignedOut::default();
    for (sid, user_agent) in ids {
        // The device, so the person's Security activity can say which sign-in ended.
        let logout = AuditEvent::new(AuditKind::Logout)
            .subject(user_id)
            .by(actor)
            .detail(serde_json::json!({ "sid": sid, "reason": reason, "user_agent": user_agent }));
        let done = revoked.end_sign_in(db, &sid, &by, &logout).await?;
        out.sessions_ended += 1;
        out.families_revoked += done.families.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("abc"), "%abc%");
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
        assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
        assert_eq!(like_pattern("o'hara"), "%o'hara%");
    }

    #[test]
    fn empty_searches_are_no_filter() {
        assert_eq!(search_term(None).unwrap(), None);
        assert_eq!(search_term(Some("  ")).unwrap(), None);
        assert!(search_term(Some(&"x".repeat(101))).is_err());
    }
}
