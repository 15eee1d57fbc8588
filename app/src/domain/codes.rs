//! Authorization codes (RFC 6749 §4.1): issued after consent, redeemed once
//! within [`CODE_TTL_SECS`] by the client they were issued to, with the same
//! redirect URI and the PKCE verifier. Redeeming starts a token family. A
//! second redemption is treated as a leaked code: `invalid_grant`, and every
//! token issued from the first redemption is revoked (RFC 6749 §4.1.2).
//! A code not yet redeemed dies with its sign-in, grant, user or client: the
//! revocation cascade marks it revoked (`revocation.rs`), and it is issued
//! only while all of them are live.

use super::{
    audit::{AuditEvent, AuditKind},
    clients::{Client, GrantType},
    grants::{issuer_locks, pkce_verifier_matches, valid_code_verifier, LIVE_AUTHORITY_SQL},
    login_sessions::ClientInfo,
    policy,
    resource_servers::audience_among,
    revocation::{RevokedBy, RevokedSets},
    secrets::{new_id, new_secret, sha256_hex},
    store::{now, Db},
    tokens::{
        sign_access_token, sign_id_token, AccessFor, GrantError, IdTokenFacts, Issuance, TokenSet,
    },
    DomainError, DomainResult,
};
use crate::on_db;

/// How long a code may wait for its redemption.
pub const CODE_TTL_SECS: i64 = 60;

/// What a code is bound to, recorded when the user allowed the request.
#[derive(Clone, Debug)]
pub struct NewCode<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub grant_id: &'a str,
    pub login_session_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub scopes: &'a str,
    pub nonce: Option<&'a str>,
}

/// Issues a code; only its hash is stored.
///
/// `Conflict` (and no code) when what the code would hang from is no longer
/// live: the sign-in ended, the user was disabled, the client deleted or the
/// grant revoked since the request was checked. Checked in the transaction
/// that stores the code (see [`super::grants::issuer_locks`]), so a code is
/// either refused here or stored before the revocation that would have
/// refused it, which then revokes it.
pub async fn issue_code(db: &Db, new: &NewCode<'_>) -> DomainResult<String> {
    let code = new_secret();
    let at = now();
    let live_sql = format!("{LIVE_AUTHORITY_SQL}{}", issuer_locks(db, "u, s, c"));
    let grant_sql = format!(
        "SELECT id FROM grants WHERE id = $1 AND user_id = $2 AND client_id = $3 \
         AND revoked_at IS NULL{}",
        issuer_locks(db, "grants")
    );
    let stored = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let live: Option<String> = sqlx::query_scalar(&live_sql)
            .bind(new.user_id)
            .bind(new.login_session_id)
            .bind(new.client_id)
            .fetch_optional(&mut *tx)
            .await?;
        let grant: Option<String> = sqlx::query_scalar(&grant_sql)
            .bind(new.grant_id)
            .bind(new.user_id)
            .bind(new.client_id)
            .fetch_optional(&mut *tx)
            .await?;
        if live.is_none() || grant.is_none() {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO auth_codes (hash, client_id, user_id, grant_id, login_session_id, redirect_uri, \
             code_challenge, scopes, nonce, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(sha256_hex(&code))
        .bind(new.client_id)
        .bind(new.user_id)
        .bind(new.grant_id)
        .bind(new.login_session_id)
        .bind(new.redirect_uri)
        .bind(new.code_challenge)
        .bind(new.scopes)
        .bind(new.nonce)
        .bind(at)
        .bind(at + CODE_TTL_SECS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    })?;
    if !stored {
        return Err(DomainError::Conflict(
            "the sign-in or the access this request was made under has ended".into(),
        ));
    }
    Ok(code)
}

/// A token request with `grant_type=authorization_code`.
pub struct Redemption<'a> {
    pub client: &'a Client,
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// An RFC 8707 resource indicator: the token's only audience.
    pub resource: Option<&'a str>,
    pub from: &'a ClientInfo,
}

#[derive(sqlx::FromRow)]
struct CodeRow {
    client_id: String,
    user_id: String,
    grant_id: String,
    login_session_id: Option<String>,
    redirect_uri: String,
    code_challenge: Option<String>,
    scopes: String,
    nonce: Option<String>,
    expires_at: i64,
}

/// What the redemption's transaction found.
enum Redeemed {
    /// Consumed now, its checks passed: the tokens are issued under the
    /// family created with it, for `aud`.
    Issued {
        row: CodeRow,
        holder: Holder,
        aud: Vec<String>,
    },
    /// Consumed now, but a check failed or its consent is gone: the code is
    /// burnt, no family created (why, for `invalid_grant`).
    Refused(String),
    /// Not consumed now: unknown, expired or revoked (`None`), or consumed
    /// before — a replay, with the earlier redemption's client, family and
    /// user.
    NotLive {
        replay_of: Option<(String, Option<String>, String)>,
    },
}

/// Who the code's user is, read in the redemption's transaction.
#[derive(sqlx::FromRow)]
struct Holder {
    username: String,
    auth_time: Option<i64>,
}

/// Redeems a code: the checks of RFC 6749 §4.1.3 and RFC 7636 §4.6, then a
/// new token family with an access token, a refresh token when the client's
/// policy allows refresh, and an ID token when `openid` was granted.
///
/// The code is consumed by one conditional UPDATE, so of two concurrent
/// redemptions exactly one wins; a failed check after that still consumes it
/// (a code presented wrongly is burnt, never retried).
pub async fn redeem_code(
    issuance: &Issuance<'_>,
    r: Redemption<'_>,
) -> Result<TokenSet, GrantError> {
    let Issuance {
        db,
        keys,
        revoked,
        servers,
        issuer,
        ..
    } = *issuance;
    if r.code_verifier.is_some_and(|v| !valid_code_verifier(v)) {
        return Err(GrantError::InvalidRequest(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)".into(),
        ));
    }
    let client = r.client;
    let policy = policy::effective(db, &client.client_id).await?;
    let with_refresh = policy.refresh_enabled && client.allows(GrantType::RefreshToken);
    let hash = sha256_hex(r.code);
    let at = now();
    let family_id = new_id();
    let refresh_token = with_refresh.then(|| super::refresh::chain_token(keys, &family_id, 0));
    // The family is created now: its chain's first idle expiry.
    let refresh_expires = super::refresh::refresh_expiry(&policy, at, at);
    // The access token's `aud` is decided in the transaction, from what is
    // registered now: nothing may fail once the code is consumed and the
    // family exists (the app could not retry: a second redemption is a replay).
    let resource_servers = servers.current(db).await?;

    let outcome = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let row: Option<CodeRow> = sqlx::query_as(
            "UPDATE auth_codes SET consumed_at = $1 WHERE hash = $2 AND consumed_at IS NULL \
             AND revoked_at IS NULL RETURNING client_id, user_id, grant_id, login_session_id, redirect_uri, code_challenge, \
             scopes, nonce, expires_at",
        )
        .bind(at)
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Unknown, revoked before its redemption, or consumed before:
            // only the last is a replay.
            let earlier: Option<(String, Option<String>, String)> = sqlx::query_as(
                "SELECT client_id, family_id, user_id FROM auth_codes \
                 WHERE hash = $1 AND consumed_at IS NOT NULL",
            )
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok::<_, sqlx::Error>(Redeemed::NotLive { replay_of: earlier });
        };
        let aud = audience_among(&resource_servers, issuer, &row.scopes, r.resource);
        let problem = check(&row, &r, at).or_else(|| aud.as_ref().err().map(ToString::to_string));
        let holder: Option<Holder> = if problem.is_none() {
            sqlx::query_as(
                "SELECT u.username, s.created_at AS auth_time FROM grants g \
                 JOIN users u ON u.id = g.user_id \
                 LEFT JOIN login_sessions s ON s.id = $2 \
                 WHERE g.id = $1 AND g.revoked_at IS NULL AND u.disabled_at IS NULL",
            )
            .bind(&row.grant_id)
            .bind(&row.login_session_id)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            None
        };
        let (Some(holder), Ok(aud)) = (holder, aud) else {
            tx.commit().await?;
            return Ok(Redeemed::Refused(problem.unwrap_or_else(|| {
                "the consent behind this code was revoked".into()
            })));
        };
        // With a refresh token, the family's chain starts at generation 0
        // (`refresh::Presented`); without, it has none.
        sqlx::query(
            "INSERT INTO token_families (id, grant_id, login_session_id, created_at, last_used_at, \
             last_used_ip, last_used_ua, scopes, chain_generation, chain_expires_at) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&family_id)
        .bind(&row.grant_id)
        .bind(&row.login_session_id)
        .bind(at)
        .bind(&r.from.ip)
        .bind(&r.from.user_agent)
        .bind(&row.scopes)
        .bind(refresh_token.as_ref().map(|_| 0_i64))
        .bind(refresh_token.as_ref().map(|_| refresh_expires))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE auth_codes SET family_id = $1 WHERE hash = $2")
            .bind(&family_id)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        // At most once a minute per grant (see refresh::LAST_USED_GRANULARITY_SECS):
        // a user's sign-ins to one app share this row.
        sqlx::query(
            "UPDATE grants SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
             WHERE id = $4 AND (last_used_at IS NULL OR last_used_at <= $5)",
        )
        .bind(at)
        .bind(&r.from.ip)
        .bind(&r.from.user_agent)
        .bind(&row.grant_id)
        .bind(at - super::refresh::LAST_USED_GRANULARITY_SECS)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::new(AuditKind::CodeRedeemed)
            .subject(&row.user_id)
            .client(&client.client_id)
            .ip(&r.from.ip)
            .detail(serde_json::json!({
                "grant_id": row.grant_id,
                "family_id": family_id,
                "scope": row.scopes,
                "refresh_token": refresh_token.is_some(),
                "user_agent": r.from.user_agent,
            }));
        let mut event = event;
        event.actor_client_id = Some(client.client_id.clone());
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Redeemed::Issued { row, holder, aud })
    })?;

    let (row, holder, aud) = match outcome {
        Redeemed::Issued { row, holder, aud } => (row, holder, aud),
        Redeemed::Refused(problem) => return Err(GrantError::InvalidGrant(problem)),
        Redeemed::NotLive { replay_of: None } => {
            return Err(GrantError::InvalidGrant(
                "unknown, expired or revoked authorization code".into(),
            ))
        }
        Redeemed::NotLive {
            replay_of: Some((code_client, family, user_id)),
        } => {
            replayed(db, revoked, client, &code_client, family, &user_id, r.from).await?;
            return Err(GrantError::InvalidGrant(
                "this authorization code was already used; the tokens issued from it are revoked"
                    .into(),
            ));
        }
    };

    let access = sign_access_token(
        keys,
        issuer,
        policy.access_ttl_secs,
        AccessFor {
            aud,
            sub: row.user_id.clone(),
            client_id: client.client_id.clone(),
            scope: row.scopes.clone(),
            gid: row.grant_id.clone(),
            fid: Some(family_id),
            sid: row.login_session_id.clone(),
        },
    )?;
    let id_token = if row.scopes.split(' ').any(|s| s == "openid") {
        Some(sign_id_token(
            keys,
            &access,
            IdTokenFacts {
                username: &holder.username,
                nonce: row.nonce,
                auth_time: holder.auth_time,
            },
        )?)
    } else {
        None
    };
    Ok(TokenSet {
        access,
        refresh_token,
        id_token,
    })
}

/// The bindings of a consumed code against the request (`None`: all good).
fn check(row: &CodeRow, r: &Redemption<'_>, at: i64) -> Option<String> {
    if row.client_id != r.client.client_id {
        return Some("this authorization code was issued to another client".into());
    }
    if row.expires_at < at {
        return Some("the authorization code has expired".into());
    }
    if r.redirect_uri != Some(row.redirect_uri.as_str()) {
        return Some("redirect_uri differs from the one of the authorization request".into());
    }
    match (&row.code_challenge, r.code_verifier) {
        (Some(challenge), Some(verifier)) if pkce_verifier_matches(challenge, verifier) => None,
        (Some(_), Some(_)) => Some("code_verifier does not match the code_challenge".into()),
        (Some(_), None) => {
            Some("code_verifier is required: the request sent a code_challenge".into())
        }
        (None, Some(_)) => {
            Some("code_verifier sent, but the authorization request had no code_challenge".into())
        }
        (None, None) => None,
    }
}

/// A code presented a second time: it leaked, so the family its first
/// redemption started is revoked, and the replay is audited.
async fn replayed(
    db: &Db,
    revoked: &RevokedSets,
    presenter: &Client,
    code_client: &str,
    family: Option<String>,
    user_id: &str,
    from: &ClientInfo,
) -> Result<(), GrantError> {
    let mut event = AuditEvent::new(AuditKind::ReuseDetected)
        .subject(user_id)
        .client(code_client)
        .ip(&from.ip)
        .detail(serde_json::json!({
            "what": "authorization_code",
            "family_id": family,
            "presented_by": presenter.client_id,
        }));
    event.actor_client_id = Some(presenter.client_id.clone());
    super::audit::record(db, &event).await?;
    if let Some(family) = family {
        let by = RevokedBy {
            actor: "system",
            reason: "authorization code replayed",
            actor_user_id: None,
            actor_client_id: None,
        };
        revoked.revoke_family(db, &family, &by).await?;
    }
    Ok(())
}
