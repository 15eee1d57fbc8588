//! Refresh tokens: opaque 256-bit strings stored as SHA-256, one chain per
//! token family. The client's policy is read at every use: the refresh
//! switch, rotation, reuse grace, idle and absolute lifetimes.
//!
//! With rotation on, each use marks the token used and hands out its
//! successor; the mark is one conditional UPDATE, so of N concurrent uses
//! exactly one wins. A used token presented again after the reuse grace means
//! two parties hold the chain (RFC 9700 §4.14.2): the whole family is revoked.

use super::{
    audit::{AuditEvent, AuditKind},
    clients::{Client, GrantType},
    keys::KeyRing,
    login_sessions::ClientInfo,
    policy::{self, Policy},
    revocation::{RevokedBy, RevokedSets},
    secrets::{new_secret, sha256_hex},
    store::{now, Db},
    tokens::{narrow_scope, sign_access_token, AccessClaims, GrantError, TokenSet},
    DomainResult,
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

/// Looks a presented refresh token up by its hash.
pub async fn find(db: &Db, token: &str) -> DomainResult<Option<RefreshRow>> {
    Ok(on_db!(db, |pool| {
        sqlx::query_as::<_, RefreshRow>(
        "SELECT t.hash, t.family_id, t.scopes, t.issued_at, t.expires_at, t.used_at, t.revoked_at, \
         f.created_at AS family_created_at, f.revoked_at AS family_revoked_at, f.login_session_id, \
         g.id AS grant_id, g.revoked_at AS grant_revoked_at, g.client_id, g.user_id, \
         u.disabled_at AS user_disabled_at \
         FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id \
         JOIN grants g ON g.id = f.grant_id LEFT JOIN users u ON u.id = g.user_id \
         WHERE t.hash = $1"
    )
    .bind(sha256_hex(token))
    .fetch_optional(pool)
    .await
    })?)
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
    pub from: &'a ClientInfo,
}

/// Uses a refresh token: a new access token (scope may narrow, never widen)
/// and, with rotation, the token's successor.
pub async fn refresh(
    db: &Db,
    keys: &KeyRing,
    revoked: &RevokedSets,
    issuer: &str,
    r: RefreshRequest<'_>,
) -> Result<TokenSet, GrantError> {
    let client = r.client;
    let Some(row) = find(db, r.refresh_token).await? else {
        return Err(GrantError::InvalidGrant("unknown refresh token".into()));
    };
    if row.client_id != client.client_id {
        tracing::warn!(client_id = %client.client_id, "a client presented another client's refresh token");
        return Err(GrantError::InvalidGrant(
            "this refresh token was not issued to this client".into(),
        ));
    }
    let policy = policy::effective(db, &client.client_id).await?;
    refresh_allowed(client, &policy)?;
    if row.is_revoked() {
        return Err(GrantError::InvalidGrant(
            "the refresh token was revoked".into(),
        ));
    }
    let at = now();
    if at >= row.expires_at(&policy) {
        return Err(GrantError::InvalidGrant(
            "the refresh token has expired".into(),
        ));
    }
    let scope = narrow_scope(r.scope, &super::grants::split_scopes(&row.scopes))
        .map_err(|e| GrantError::InvalidScope(e.to_string()))?;
    let grace =
        |used_at: i64| policy.reuse_grace_secs > 0 && at - used_at <= policy.reuse_grace_secs;
    if let Some(used_at) = row.used_at {
        if !grace(used_at) {
            return Err(reuse_detected(db, revoked, client, &row, r.from).await);
        }
    }

    let rotate = policy.rotate_refresh;
    let successor = rotate.then(new_secret);
    let expires_at = (at + policy.refresh_idle_ttl_secs)
        .min(row.family_created_at + policy.refresh_absolute_ttl_secs);
    let event = {
        let mut event = AuditEvent::new(AuditKind::TokenRefreshed)
            .client(&client.client_id)
            .ip(&r.from.ip)
            .detail(serde_json::json!({
                "grant_id": row.grant_id,
                "family_id": row.family_id,
                "scope": scope,
                "rotated": rotate,
            }));
        if let Some(user) = &row.user_id {
            event = event.subject(user);
        }
        event.actor_client_id = Some(client.client_id.clone());
        event
    };
    let won = on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        // The family must still be live: a revocation committed since the
        // lookup wins over this refresh.
        let live = sqlx::query(
            "UPDATE token_families SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
             WHERE id = $4 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(&r.from.ip)
        .bind(&r.from.user_agent)
        .bind(&row.family_id)
        .execute(&mut *tx)
        .await?;
        if live.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok::<_, sqlx::Error>(Some(false));
        }
        match &successor {
            Some(next) => {
                if row.used_at.is_none() {
                    let claimed = sqlx::query(
                        "UPDATE refresh_tokens SET used_at = $1 \
                         WHERE hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
                    )
                    .bind(at)
                    .bind(&row.hash)
                    .execute(&mut *tx)
                    .await?;
                    if claimed.rows_affected() == 0 {
                        // Another request used it a moment ago.
                        tx.rollback().await?;
                        return Ok(None);
                    }
                }
                sqlx::query(
                    "INSERT INTO refresh_tokens (hash, family_id, parent_hash, scopes, issued_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(sha256_hex(next))
                .bind(&row.family_id)
                .bind(&row.hash)
                .bind(&row.scopes)
                .bind(at)
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                // No rotation: the same token lives on, its idle expiry pushed out.
                sqlx::query(
                    "UPDATE refresh_tokens SET expires_at = $1 WHERE hash = $2 AND revoked_at IS NULL",
                )
                .bind(expires_at)
                .bind(&row.hash)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "UPDATE grants SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 WHERE id = $4",
        )
        .bind(at)
        .bind(&r.from.ip)
        .bind(&r.from.user_agent)
        .bind(&row.grant_id)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(true))
    })?;
    match won {
        Some(true) => {}
        Some(false) => {
            return Err(GrantError::InvalidGrant(
                "the refresh token was revoked".into(),
            ))
        }
        // Lost the race to a concurrent use of the same token.
        None if grace(at) => {}
        None => return Err(reuse_detected(db, revoked, client, &row, r.from).await),
    }

    let access = sign_access_token(
        keys,
        issuer,
        policy.access_ttl_secs,
        AccessClaims {
            iss: String::new(),
            sub: row
                .user_id
                .clone()
                .unwrap_or_else(|| client.client_id.clone()),
            aud: String::new(),
            client_id: client.client_id.clone(),
            iat: 0,
            exp: 0,
            jti: String::new(),
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
    let Some(row) = find(db, token).await? else {
        return Ok(None);
    };
    if row.client_id != client.client_id || row.is_revoked() {
        return Ok(None);
    }
    let policy = policy::effective(db, &client.client_id).await?;
    let exp = row.expires_at(&policy);
    let used = row.used_at.is_some() && policy.rotate_refresh;
    if refresh_allowed(client, &policy).is_err() || used || now() >= exp {
        return Ok(None);
    }
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
