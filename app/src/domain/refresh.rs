//! Refresh tokens: opaque 256-bit strings stored as SHA-256, one chain per
//! token family. The client's policy is read at every use: the refresh
//! switch, rotation, reuse grace, idle and absolute lifetimes.
//!
//! With rotation on, each use marks the token used and hands out its
//! successor; the mark is one conditional UPDATE, so of N concurrent uses
//! exactly one wins. A used token presented again after the reuse grace means
//! two parties hold the chain (RFC 9700 §4.14.2): the whole family is revoked.
//!
//! A refresh is one read (the token, its family, grant, user and the client's
//! policy, in one query) and, with rotation, one short write transaction
//! (without, usually none). The "last used" columns of families and grants
//! are written at most once per [`LAST_USED_GRANULARITY_SECS`] per row (see
//! there), so refreshes of one user's app do not queue on the grant row they
//! share. A refresh is counted per client and minute and per user, client
//! and day ([`super::usage`]), not audited one row each.

use super::{
    audit::{AuditEvent, AuditKind},
    clients::{Client, GrantType},
    keys::KeyRing,
    login_sessions::ClientInfo,
    policy::Policy,
    revocation::{RevokedBy, RevokedSets},
    secrets::{new_secret, sha256_hex},
    store::{now, Db},
    tokens::{narrow_scope, sign_access_token, AccessFor, GrantError, TokenSet},
    usage::Usage,
    DomainError, DomainResult,
};
use crate::on_db;

/// A stored refresh token with its family and grant.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub hash: String,
    pub family_id: String,
    pub scopes: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub family_created_at: i64,
    pub family_revoked_at: Option<i64>,
    pub login_session_id: Option<String>,
    pub grant_id: String,
    pub grant_revoked_at: Option<i64>,
    pub client_id: String,
    pub user_id: Option<String>,
    /// Set when the token's user was disabled (their tokens die with them).
    pub user_disabled_at: Option<i64>,
}

impl RefreshRow {
    /// When it stops working: its idle expiry or the family's absolute one, whichever first.
    pub fn expires_at(&self, policy: &Policy) -> i64 {
        self.expires_at
            .min(self.family_created_at + policy.refresh_absolute_ttl_secs)
    }

    fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
            || self.family_revoked_at.is_some()
            || self.grant_revoked_at.is_some()
            || self.user_disabled_at.is_some()
    }
}

/// What a presented refresh token is, right now, under its client's policy:
/// the one decision refresh and introspection share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshState {
    /// Never used, or used under a client that does not rotate (the same
    /// token lives on): it refreshes.
    Live,
    /// Rotated (it has a successor) within the client's reuse grace: a retry
    /// of a refresh whose answer was lost; it refreshes once more.
    RotatedWithinGrace,
    /// Rotated, and presented again after the reuse grace: two parties hold
    /// the chain (RFC 9700 §4.14.2); the family is revoked.
    Reused,
    /// Past its idle or its family's absolute lifetime.
    Expired(Lifetime),
    /// The token, its family or grant was revoked, or its user disabled.
    Revoked,
}

/// Which lifetime ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    Idle,
    Absolute,
}

impl RefreshState {
    /// Decides at `now` (unix seconds). Revocation wins over expiry, expiry
    /// over use. A token is "used" when a refresh rotated it (`used_at`): it
    /// has a successor whatever the client's rotation setting is now, so
    /// presenting it again is reuse unless within the grace.
    pub fn of(row: &RefreshRow, policy: &Policy, now: i64) -> RefreshState {
        if row.is_revoked() {
            return RefreshState::Revoked;
        }
        if now >= row.family_created_at + policy.refresh_absolute_ttl_secs {
            return RefreshState::Expired(Lifetime::Absolute);
        }
        if now >= row.expires_at {
            return RefreshState::Expired(Lifetime::Idle);
        }
        match row.used_at {
            None => RefreshState::Live,
            Some(used_at) if within_reuse_grace(policy, used_at, now) => {
                RefreshState::RotatedWithinGrace
            }
            Some(_) => RefreshState::Reused,
        }
    }

    /// Whether a refresh with this token goes through (and so whether
    /// introspection calls it active).
    pub fn refreshes(self) -> bool {
        matches!(self, RefreshState::Live | RefreshState::RotatedWithinGrace)
    }
}

/// Whether a token rotated at `used_at` may still be presented at `now`
/// (the client's reuse grace; zero means never).
fn within_reuse_grace(policy: &Policy, used_at: i64, now: i64) -> bool {
    policy.reuse_grace_secs > 0 && now - used_at <= policy.reuse_grace_secs
}

/// How stale the "last used" time (and IP and user agent) of a token family
/// or a grant may be, in seconds. A refresh writes them only when they are at
/// least this old, with a conditional UPDATE that matches (and so locks) no
/// row otherwise: every refresh of a user's app would else update the one
/// grant row all its sessions share, and queue on its lock. The dashboard's
/// "last used" is therefore accurate to this granularity (a session used from
/// a new IP shows it within a minute of use). The same bound throttles pushing
/// out the idle expiry of a refresh token that is not rotated.
pub const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// A presented refresh token with everything a refresh decides on: its
/// family, grant and user, and the effective policy of the grant's client
/// (the same COALESCE as [`super::policy::effective`]), read in one query.
#[derive(sqlx::FromRow)]
struct Lookup {
    #[sqlx(flatten)]
    row: RefreshRow,
    family_last_used_at: i64,
    grant_last_used_at: Option<i64>,
    /// NULL when the client is deleted (then `policy` holds the defaults).
    live_client_id: Option<String>,
    #[sqlx(flatten)]
    policy: Policy,
}

impl Lookup {
    /// The client's effective policy; `NotFound` for a deleted client, as
    /// [`super::policy::effective`] says.
    fn policy(&self) -> DomainResult<Policy> {
        match self.live_client_id {
            Some(_) => Ok(self.policy),
            None => Err(DomainError::NotFound),
        }
    }
}

const LOOKUP_SQL: &str = "SELECT t.hash, t.family_id, t.scopes, t.issued_at, t.expires_at, \
     t.used_at, t.revoked_at, f.created_at AS family_created_at, f.revoked_at AS family_revoked_at, \
     f.login_session_id, f.last_used_at AS family_last_used_at, g.id AS grant_id, \
     g.revoked_at AS grant_revoked_at, g.client_id, g.user_id, g.last_used_at AS grant_last_used_at, \
     u.disabled_at AS user_disabled_at, c.id AS live_client_id, \
     COALESCE(c.refresh_enabled, d.refresh_enabled) AS refresh_enabled, \
     COALESCE(c.access_ttl_secs, d.access_ttl_secs) AS access_ttl_secs, \
     COALESCE(c.refresh_idle_ttl_secs, d.refresh_idle_ttl_secs) AS refresh_idle_ttl_secs, \
     COALESCE(c.refresh_absolute_ttl_secs, d.refresh_absolute_ttl_secs) AS refresh_absolute_ttl_secs, \
     COALESCE(c.rotate_refresh, d.rotate_refresh) AS rotate_refresh, \
     COALESCE(c.reuse_grace_secs, d.reuse_grace_secs) AS reuse_grace_secs, \
     COALESCE(c.revoke_on_logout, d.revoke_on_logout) AS revoke_on_logout \
     FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id \
     JOIN grants g ON g.id = f.grant_id LEFT JOIN users u ON u.id = g.user_id \
     LEFT JOIN clients c ON c.id = g.client_id AND c.deleted_at IS NULL \
     CROSS JOIN policy_default d \
     WHERE t.hash = $1 AND d.id = 1";

async fn lookup(db: &Db, token: &str) -> DomainResult<Option<Lookup>> {
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Lookup>(LOOKUP_SQL)
        .bind(sha256_hex(token))
        .fetch_optional(pool)
        .await)?)
}

/// Looks a presented refresh token up by its hash.
pub async fn find(db: &Db, token: &str) -> DomainResult<Option<RefreshRow>> {
    Ok(lookup(db, token).await?.map(|found| found.row))
}

/// Whether the client may use refresh tokens right now (checked at every use).
fn refresh_allowed(client: &Client, policy: &Policy) -> Result<(), GrantError> {
    if !client.allows(GrantType::RefreshToken) {
        return Err(GrantError::UnauthorizedClient(
            "this client may not use the refresh_token grant".into(),
        ));
    }
    if !policy.refresh_enabled {
        return Err(GrantError::UnauthorizedClient(
            "refresh tokens are switched off for this client".into(),
        ));
    }
    Ok(())
}

/// A token request with `grant_type=refresh_token` (RFC 6749 §6).
pub struct RefreshRequest<'a> {
    pub client: &'a Client,
    pub refresh_token: &'a str,
    pub scope: Option<&'a str>,
    /// An RFC 8707 resource indicator: the token's only audience.
    pub resource: Option<&'a str>,
    pub from: &'a ClientInfo,
}

/// Uses a refresh token: a new access token (scope may narrow, never widen)
/// and, with rotation, the token's successor.
pub async fn refresh(
    db: &Db,
    usage: &Usage,
    keys: &KeyRing,
    revoked: &RevokedSets,
    issuer: &str,
    r: RefreshRequest<'_>,
) -> Result<TokenSet, GrantError> {
    let client = r.client;
    let Some(found) = lookup(db, r.refresh_token).await? else {
        return Err(GrantError::InvalidGrant("unknown refresh token".into()));
    };
    let row = &found.row;
    if row.client_id != client.client_id {
        tracing::warn!(client_id = %client.client_id, "a client presented another client's refresh token");
        return Err(GrantError::InvalidGrant(
            "this refresh token was not issued to this client".into(),
        ));
    }
    let policy = found.policy()?;
    refresh_allowed(client, &policy)?;
    let at = now();
    match RefreshState::of(row, &policy, at) {
        RefreshState::Live | RefreshState::RotatedWithinGrace => {}
        RefreshState::Revoked => {
            return Err(GrantError::InvalidGrant(
                "the refresh token was revoked".into(),
            ))
        }
        RefreshState::Expired(_) => {
            return Err(GrantError::InvalidGrant(
                "the refresh token has expired".into(),
            ))
        }
        RefreshState::Reused => return Err(reuse_detected(db, revoked, client, row, r.from).await),
    }
    let scope = narrow_scope(r.scope, &super::grants::split_scopes(&row.scopes))
        .map_err(|e| GrantError::InvalidScope(e.to_string()))?;
    let grace = |used_at: i64| within_reuse_grace(&policy, used_at, at);

    let rotate = policy.rotate_refresh;
    let successor = rotate.then(new_secret);
    let expires_at = (at + policy.refresh_idle_ttl_secs)
        .min(row.family_created_at + policy.refresh_absolute_ttl_secs);
    // What needs writing (see LAST_USED_GRANULARITY_SECS).
    let stale_before = at - LAST_USED_GRANULARITY_SECS;
    let touch_family = found.family_last_used_at <= stale_before;
    let touch_grant = found.grant_last_used_at.is_none_or(|t| t <= stale_before);
    let push_expiry = !rotate && expires_at - row.expires_at >= LAST_USED_GRANULARITY_SECS;
    // Liveness: the lookup saw the family, grant and token live. A revocation
    // that commits after it still wins over this refresh:
    // * with rotation, the claim below (and, for a retry within the reuse
    //   grace, the successor's INSERT) only goes through while the token and
    //   its family are unrevoked, and a revocation marks both in one
    //   transaction; a revocation committing after our claim finds the
    //   successor's family revoked, which the lookup checks at every refresh;
    // * every access token issued here carries the family id (`fid`), which
    //   the revoked sets hold as soon as the revocation commits, so
    //   introspection and userinfo refuse it; that is all a refresh without
    //   rotation hands out, so it needs no check of its own.
    let won = {
        let done = match (db, &successor) {
            (Db::Sqlite(pool), Some(next)) if !touch_family && !touch_grant => {
                rotate_on_sqlite(pool, row, next, at, expires_at).await?
            }
            _ => false,
        };
        if done {
            Some(true)
        } else {
            on_db!(db, |pool| {
                let needs_transaction =
                    successor.is_some() || push_expiry || touch_family || touch_grant;
                if !needs_transaction {
                    // No rotation, nothing stale: nothing to write (the
                    // refresh is counted in `usage`, not audited).
                    return Ok::<_, sqlx::Error>(Some(true));
                }
                let mut tx = pool.begin_write().await?;
                if let Some(next) = &successor {
                    let mut claimed = row.used_at.is_some();
                    if !claimed {
                        claimed = sqlx::query(
                            "UPDATE refresh_tokens SET used_at = $1 \
                         WHERE hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
                         AND EXISTS (SELECT 1 FROM token_families \
                                     WHERE id = $3 AND revoked_at IS NULL)",
                        )
                        .bind(at)
                        .bind(&row.hash)
                        .bind(&row.family_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            > 0;
                    }
                    if !claimed {
                        // Revoked since the lookup, or another request used it a moment ago.
                        let now_is: Option<(Option<i64>, bool)> = sqlx::query_as(
                        "SELECT t.used_at, t.revoked_at IS NOT NULL OR f.revoked_at IS NOT NULL \
                         FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id \
                         WHERE t.hash = $1",
                    )
                    .bind(&row.hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                        let Some((used_at, false)) = now_is else {
                            tx.rollback().await?;
                            return Ok(Some(false));
                        };
                        if !used_at.is_some_and(grace) {
                            tx.rollback().await?;
                            return Ok(None);
                        }
                        // Used a moment ago, within the reuse grace: a retry; it gets
                        // a successor of its own, below.
                    }
                    // The successor, stored only while the family is live (this is
                    // the liveness check of a retry within the grace, which claims nothing).
                    let inserted = sqlx::query(
                    "INSERT INTO refresh_tokens (hash, family_id, parent_hash, scopes, issued_at, expires_at) \
                     SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS \
                     (SELECT 1 FROM token_families WHERE id = $2 AND revoked_at IS NULL)",
                )
                .bind(sha256_hex(next))
                .bind(&row.family_id)
                .bind(&row.hash)
                .bind(&row.scopes)
                .bind(at)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
                    if inserted.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(Some(false));
                    }
                } else if push_expiry {
                    // No rotation: the same token lives on, its idle expiry pushed out.
                    sqlx::query(
                        "UPDATE refresh_tokens SET expires_at = $1 \
                     WHERE hash = $2 AND revoked_at IS NULL AND expires_at <= $3",
                    )
                    .bind(expires_at)
                    .bind(&row.hash)
                    .bind(expires_at - LAST_USED_GRANULARITY_SECS)
                    .execute(&mut *tx)
                    .await?;
                }
                if touch_family {
                    sqlx::query(
                    "UPDATE token_families SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
                     WHERE id = $4 AND last_used_at <= $5",
                )
                .bind(at)
                .bind(&r.from.ip)
                .bind(&r.from.user_agent)
                .bind(&row.family_id)
                .bind(stale_before)
                .execute(&mut *tx)
                .await?;
                }
                if touch_grant {
                    sqlx::query(
                    "UPDATE grants SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
                     WHERE id = $4 AND (last_used_at IS NULL OR last_used_at <= $5)",
                )
                .bind(at)
                .bind(&r.from.ip)
                .bind(&r.from.user_agent)
                .bind(&row.grant_id)
                .bind(stale_before)
                .execute(&mut *tx)
                .await?;
                }
                tx.commit().await?;
                Ok(Some(true))
            })?
        }
    };
    match won {
        Some(true) => usage.count(
            &client.client_id,
            row.user_id.as_deref(),
            AuditKind::TokenRefreshed,
        ),
        Some(false) => {
            return Err(GrantError::InvalidGrant(
                "the refresh token was revoked".into(),
            ))
        }
        // Lost the race to a concurrent use of the same token, outside any grace.
        None => return Err(reuse_detected(db, revoked, client, row, r.from).await),
    }

    let aud = super::resource_servers::audience_for(db, issuer, &scope, r.resource).await?;
    let access = sign_access_token(
        keys,
        issuer,
        policy.access_ttl_secs,
        AccessFor {
            aud,
            sub: row
                .user_id
                .clone()
                .unwrap_or_else(|| client.client_id.clone()),
            client_id: client.client_id.clone(),
            scope,
            gid: row.grant_id.clone(),
            fid: Some(row.family_id.clone()),
            sid: row.login_session_id.clone(),
        },
    )?;
    Ok(TokenSet {
        access,
        refresh_token: successor,
        id_token: None,
    })
}

/// The common case of a rotation on SQLite (nothing else to update), with its
/// writes in one statement list: the claim and the successor, which SQLite runs in one go on the connection's thread. sqlx
/// sends each statement to that thread and waits for the answer, and each
/// such round trip, taken while holding the write lock, costs more than the
/// statement itself. The successor is stored only if the claim took
/// (`changes()`), and only while the family is live, as on the general path.
///
/// `true` when all of it went through. Anything else (used or revoked since
/// the lookup) is rolled back and answered `false`: the general path then
/// does the same again, one statement at a time, and sorts out why.
///
/// This relies on sqlx-sqlite running every statement of a query string with
/// bind parameters (sqlx 0.8 does; upstream calls that an SQLite-only
/// idiosyncrasy, launchbadge/sqlx#3108). The SQLite flow tests go through
/// here (a fresh family is not stale), so an upgrade that drops it fails them.
async fn rotate_on_sqlite(
    pool: &sqlx::SqlitePool,
    row: &RefreshRow,
    successor: &str,
    at: i64,
    expires_at: i64,
) -> Result<bool, sqlx::Error> {
    use super::store::BeginWrite;
    let claim = row.used_at.is_none();
    let mut sql = String::new();
    if claim {
        sql += "UPDATE refresh_tokens SET used_at = $1 \
             WHERE hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
             AND EXISTS (SELECT 1 FROM token_families WHERE id = $3 AND revoked_at IS NULL); ";
    }
    sql += &format!(
        "INSERT INTO refresh_tokens (hash, family_id, parent_hash, scopes, issued_at, expires_at) \
         SELECT $4, $3, $2, $5, $1, $6 WHERE {} EXISTS \
         (SELECT 1 FROM token_families WHERE id = $3 AND revoked_at IS NULL)",
        if claim { "changes() = 1 AND" } else { "" }
    );
    // The claim (when there is one) and the successor.
    let expected = if claim { 2 } else { 1 };
    let mut tx = pool.begin_write().await?;
    let done = sqlx::query(&sql)
        .bind(at)
        .bind(&row.hash)
        .bind(&row.family_id)
        .bind(sha256_hex(successor))
        .bind(&row.scopes)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if done == expected {
        tx.commit().await?;
        Ok(true)
    } else {
        tx.rollback().await?;
        Ok(false)
    }
}

/// A used refresh token came back: revoke its family, audit, and answer
/// `invalid_grant`. If the revocation itself fails, the answer is an error
/// that says so (never a quiet `invalid_grant` over a family still alive).
async fn reuse_detected(
    db: &Db,
    revoked: &RevokedSets,
    client: &Client,
    row: &RefreshRow,
    from: &ClientInfo,
) -> GrantError {
    let mut event = AuditEvent::new(AuditKind::ReuseDetected)
        .client(&client.client_id)
        .ip(&from.ip)
        .detail(serde_json::json!({
            "what": "refresh_token",
            "grant_id": row.grant_id,
            "family_id": row.family_id,
            "user_agent": from.user_agent,
        }));
    if let Some(user) = &row.user_id {
        event = event.subject(user);
    }
    event.actor_client_id = Some(client.client_id.clone());
    let by = RevokedBy {
        actor: "system",
        reason: "refresh token reuse detected",
        actor_user_id: None,
        actor_client_id: None,
    };
    let done = async {
        super::audit::record(db, &event).await?;
        revoked.revoke_family(db, &row.family_id, &by).await
    }
    .await;
    match done {
        Ok(_) => GrantError::InvalidGrant(
            "this refresh token was already used; the session it belongs to is revoked".into(),
        ),
        Err(e) => GrantError::Failed(e),
    }
}

/// What RFC 7662 introspection says about a refresh token, for the client it
/// was issued to; `None` when it is not live (or not theirs).
pub async fn introspect(
    db: &Db,
    issuer: &str,
    client: &Client,
    token: &str,
) -> DomainResult<Option<serde_json::Value>> {
    let Some(found) = lookup(db, token).await? else {
        return Ok(None);
    };
    let row = &found.row;
    if row.client_id != client.client_id {
        return Ok(None);
    }
    let policy = found.policy()?;
    let exp = row.expires_at(&policy);
    // Active exactly when a refresh with it would go through now.
    if refresh_allowed(client, &policy).is_err()
        || !RefreshState::of(row, &policy, now()).refreshes()
    {
        return Ok(None);
    }
    let row = found.row;
    Ok(Some(serde_json::json!({
        "active": true,
        "scope": row.scopes,
        "client_id": row.client_id,
        "sub": row.user_id.unwrap_or(row.client_id.clone()),
        "exp": exp,
        "iat": row.issued_at,
        "iss": issuer,
        "aud": row.client_id,
        "jti": &row.hash[..32],
        "token_type": "refresh_token",
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn policy(rotate: bool, grace: i64) -> Policy {
        Policy {
            refresh_enabled: true,
            access_ttl_secs: 600,
            refresh_idle_ttl_secs: 3600,
            refresh_absolute_ttl_secs: 86_400,
            rotate_refresh: rotate,
            reuse_grace_secs: grace,
            revoke_on_logout: true,
        }
    }

    /// A token issued 100 s ago in a family created 1,000 s ago, idle expiry in an hour.
    fn row() -> RefreshRow {
        RefreshRow {
            hash: "h".into(),
            family_id: "f".into(),
            scopes: "openid".into(),
            issued_at: NOW - 100,
            expires_at: NOW + 3600,
            used_at: None,
            revoked_at: None,
            family_created_at: NOW - 1000,
            family_revoked_at: None,
            login_session_id: None,
            grant_id: "g".into(),
            grant_revoked_at: None,
            client_id: "c".into(),
            user_id: Some("u".into()),
            user_disabled_at: None,
        }
    }

    #[test]
    fn one_decision_for_every_refresh_token_state() {
        use Lifetime::*;
        use RefreshState::*;
        let used = |ago: i64| RefreshRow {
            used_at: Some(NOW - ago),
            ..row()
        };
        // (case, token, rotation, grace, expected)
        let table: Vec<(&str, RefreshRow, bool, i64, RefreshState)> = vec![
            ("fresh, rotating", row(), true, 0, Live),
            ("fresh, not rotating", row(), false, 0, Live),
            ("used, no grace", used(1), true, 0, Reused),
            ("used within grace", used(5), true, 10, RotatedWithinGrace),
            (
                "used at the grace's edge",
                used(10),
                true,
                10,
                RotatedWithinGrace,
            ),
            ("used past the grace", used(11), true, 10, Reused),
            // Rotated while rotation was on, presented after it was switched
            // off: it still has a successor, so it is reuse (issue 9, fault 7).
            ("used, rotation now off", used(60), false, 0, Reused),
            (
                "used, rotation now off, in grace",
                used(5),
                false,
                10,
                RotatedWithinGrace,
            ),
            (
                "idle expiry passed",
                RefreshRow {
                    expires_at: NOW,
                    ..row()
                },
                true,
                0,
                Expired(Idle),
            ),
            (
                "absolute lifetime passed",
                RefreshRow {
                    family_created_at: NOW - 86_400,
                    ..row()
                },
                true,
                0,
                Expired(Absolute),
            ),
            (
                "expired and used: expiry wins",
                RefreshRow {
                    expires_at: NOW - 1,
                    ..used(60)
                },
                true,
                0,
                Expired(Idle),
            ),
            (
                "token revoked",
                RefreshRow {
                    revoked_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "family revoked",
                RefreshRow {
                    family_revoked_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "grant revoked",
                RefreshRow {
                    grant_revoked_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "user disabled",
                RefreshRow {
                    user_disabled_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "revoked and expired: revoked wins",
                RefreshRow {
                    family_revoked_at: Some(NOW - 1),
                    expires_at: NOW - 5,
                    ..used(60)
                },
                true,
                0,
                Revoked,
            ),
        ];
        for (case, token, rotate, grace, expected) in table {
            let state = RefreshState::of(&token, &policy(rotate, grace), NOW);
            assert_eq!(state, expected, "{case}");
            assert_eq!(
                state.refreshes(),
                matches!(expected, Live | RotatedWithinGrace),
                "{case}"
            );
        }
    }
}
