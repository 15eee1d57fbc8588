//! OpenID Connect Back-Channel Logout 1.0: apps hear, server to server, that a
//! sign-in or their access ended — through the durable outbox.
//!
//! * Registration (§2.2): a client's `backchannel_logout_uri` ([`validate_uri`])
//!   and `backchannel_logout_session_required` (stored on `clients`).
//! * When: [`enqueue`] runs inside the revocation cascade's transaction
//!   (`RevokedSets::revoke`), so an outbox row exists exactly when the
//!   revocation committed. A sign-in that ends ([`Ended::SignIn`]) → one row per
//!   client with a URI that the user signed into in it (a token family or an
//!   authorization code with that `login_session_id`), with `sub` and `sid`.
//!   Grants revoked ([`Ended::Grants`]: My apps, an admin revoking or deleting
//!   a client, a disabled user) → one row per (client, user) with `sub` only:
//!   every session of that user at that app ends (§2.4), even for a client
//!   with `backchannel_logout_session_required`, since no single `sid` names
//!   what ended.
//! * The Logout Token (§2.4): [`LogoutClaims`], signed by [`sign`] at each
//!   attempt (fresh `iat`/`exp`, the row's fixed `jti`).
//! * Delivery state: [`claim_due`] leases due rows, [`record`] stores the
//!   outcome with exponential backoff ([`RetryPolicy`]) and audits delivered
//!   and gave-up; the worker that POSTs is the server's `outbox` module.
//! * The admin console: [`undelivered`].

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::{
    audit::{AuditEvent, AuditKind},
    error::DomainResult,
    keys::{KeyRing, SigningAlg},
    secrets::{new_ordered_id, new_secret},
    store::{now, Db, WriteTx},
};
use crate::on_db;

/// The outbox `kind` of a logout token delivery.
pub const KIND: &str = "backchannel_logout";
/// The `events` member that makes a JWT a Logout Token (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The JWT `typ` header of a Logout Token (§2.4, RFC 8725 §3.11).
pub const TOKEN_TYPE: &str = "logout+jwt";
/// A Logout Token is valid this long after it is signed (`exp - iat`), in seconds.
pub const TOKEN_TTL_SECS: i64 = 120;

const URI_FIELD: &str = "backchannel_logout_uri";

/// Checks a `backchannel_logout_uri` (§2.2): the redirect-URI rules (absolute,
/// no fragment, a host), and `https`, or `http` on a loopback host only
/// (`127.0.0.0/8`, `[::1]`, `localhost`) — logout tokens are bearer
/// credentials for ending sessions. A query is allowed. Returns it unchanged;
/// `DomainError::Invalid` on field `backchannel_logout_uri` otherwise.
///
/// Stricter than §2.2, which allows `http` for confidential clients "provided
/// the OP allows" it. Unlike Front-Channel Logout, Back-Channel Logout 1.0
/// (final) does not tie the URI's host to a redirect URI: apps often take
/// back-channel calls on an internal host, so none is required here.
pub fn validate_uri(raw: &str) -> DomainResult<String> {
    super::clients::validate_server_url(URI_FIELD, raw)
}

/// What an app is told in one Logout Token: the user, and the sign-in when
/// one sign-in ended. Stored as the outbox row's `payload` JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The claims of a Logout Token (§2.4): `iss`, `aud` (the client_id), `iat`,
/// `exp` (`iat` + [`TOKEN_TTL_SECS`]), `jti`, `events` with [`EVENT`] → `{}`,
/// `sub`, and `sid` when one sign-in ended. Never `nonce`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub events: serde_json::Value,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Signs the Logout Token of `delivery` now: RS256 with the key ring's ID-token
/// key, header `typ: logout+jwt`; `iat` is now, the `jti` the row's own.
pub fn sign(keys: &KeyRing, issuer: &str, delivery: &Delivery) -> DomainResult<String> {
    let iat = now();
    let claims = LogoutClaims {
        iss: issuer.to_owned(),
        aud: delivery.client_id.clone(),
        iat,
        exp: iat + TOKEN_TTL_SECS,
        jti: delivery.jti.clone(),
        events: serde_json::json!({ EVENT: {} }),
        sub: delivery.subject.sub.clone(),
        sid: delivery.subject.sid.clone(),
    };
    keys.sign(SigningAlg::RS256, TOKEN_TYPE, &claims)
}

// ---------------------------------------------------------------------------
// Enqueueing, in the revocation's transaction
// ---------------------------------------------------------------------------

/// What a revocation ended, as back-channel logout sees it.
#[derive(Clone, Copy, Debug)]
pub enum Ended<'a> {
    /// This sign-in session (`sid`) ended in this transaction (its `ended_at`
    /// is the transaction's time): `sub` + `sid` to every app used from it.
    SignIn(&'a str),
    /// These grants were revoked in this transaction: `sub` to each user's app.
    Grants(&'a [String]),
    /// Nothing an app is told of (one token family: RFC 7009, reuse detection).
    Nothing,
}

/// Clients with a URI the user signed into in one sign-in that ended at `$2`.
const SIGN_IN_RECIPIENTS: &str = "SELECT c.id, c.backchannel_logout_uri, s.user_id \
     FROM login_sessions s JOIN clients c ON c.backchannel_logout_uri IS NOT NULL \
     WHERE s.id = $1 AND s.ended_at = $2 AND c.deleted_at IS NULL AND c.id IN \
     (SELECT g.client_id FROM token_families f JOIN grants g ON g.id = f.grant_id \
      WHERE f.login_session_id = $1 \
      UNION SELECT a.client_id FROM auth_codes a WHERE a.login_session_id = $1) \
     ORDER BY c.id";

/// Grants per statement when looking up revoked grants' users and clients.
const GRANTS_PER_QUERY: usize = 500;

/// Rows [`enqueue`] wrote; when dropped (after the transaction committed, or
/// rolled back) it wakes this instance's outbox worker if there are any.
#[must_use = "keep it until the transaction has committed"]
#[derive(Debug)]
pub struct Enqueued(pub usize);

impl Drop for Enqueued {
    fn drop(&mut self) {
        if self.0 > 0 {
            wake();
        }
    }
}

/// Writes one outbox row per app that must hear of what `ended`, in the
/// caller's write transaction `tx` (the revocation's, whose time is `at`, unix
/// seconds). Returns the count as an [`Enqueued`] to hold until after commit.
pub async fn enqueue<DB>(
    tx: &mut WriteTx<DB>,
    ended: Ended<'_>,
    at: i64,
) -> Result<Enqueued, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> (String, String, String): sqlx::FromRow<'r, DB::Row>,
{
    // (client_id, uri, user_id) and whether the sign-in's sid goes along.
    let (recipients, sid): (Vec<(String, String, String)>, _) = match ended {
        Ended::Nothing => return Ok(Enqueued(0)),
        Ended::SignIn(sid) => (
            sqlx::query_as(SIGN_IN_RECIPIENTS)
                .bind(sid.to_owned())
                .bind(at)
                .fetch_all(&mut **tx)
                .await?,
            Some(sid),
        ),
        Ended::Grants(ids) => {
            let mut all = Vec::new();
            for chunk in ids.chunks(GRANTS_PER_QUERY) {
                let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT g.client_id, c.backchannel_logout_uri, g.user_id FROM grants g \
                     JOIN clients c ON c.id = g.client_id \
                     WHERE g.id IN ({}) AND g.user_id IS NOT NULL \
                     AND c.backchannel_logout_uri IS NOT NULL ORDER BY g.client_id, g.user_id",
                    params.join(", ")
                );
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id.clone());
                }
                all.extend(query.fetch_all(&mut **tx).await?);
            }
            (all, None)
        }
    };
    for (client_id, uri, user_id) in &recipients {
        let subject = Subject {
            sub: user_id.clone(),
            sid: sid.map(str::to_owned),
        };
        sqlx::query(
            "INSERT INTO outbox (id, kind, client_id, target_url, payload, jti, created_at, \
             next_attempt_at, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0)",
        )
        .bind(new_ordered_id())
        .bind(KIND.to_owned())
        .bind(client_id.clone())
        .bind(uri.clone())
        .bind(serde_json::to_string(&subject).unwrap_or_default())
        .bind(new_secret())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(Enqueued(recipients.len()))
}

static WAKE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

/// Wakes this process's outbox worker (rows were just committed).
pub fn wake() {
    WAKE.notify_one();
}

/// Resolves at the next [`wake`] (at once if one came while nobody waited).
pub async fn woken() {
    WAKE.notified().await
}

// ---------------------------------------------------------------------------
// Delivery state, for the worker
// ---------------------------------------------------------------------------

/// One outbox row being delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub client_id: String,
    pub target_url: String,
    pub subject: Subject,
    pub jti: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Attempts started so far, this one included.
    pub attempts: i32,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    client_id: String,
    target_url: String,
    payload: String,
    jti: String,
    created_at: i64,
    attempts: i32,
}

/// When to try again, and when to stop: exponential backoff from `first_secs`
/// doubling up to `max_secs`, until `give_up_after_secs` after the row was
/// written. Defaults: 1 s, 10 min, 24 h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_secs: i64,
    pub max_secs: i64,
    pub give_up_after_secs: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_secs: 1,
            max_secs: 600,
            give_up_after_secs: 86_400,
        }
    }
}

impl RetryPolicy {
    /// What an attempt at a row written (or made due) at `since` comes to,
    /// after `attempts` (this one included), it being `at` now: delivered,
    /// retried at the next time, or given up at the deadline — with the
    /// failure's text for `last_error` (at most [`MAX_ERROR_CHARS`]).
    pub fn outcome(
        &self,
        attempt: &Attempt,
        since: i64,
        attempts: i32,
        at: i64,
    ) -> (Recorded, Option<String>) {
        match attempt {
            Attempt::Delivered => (Recorded::Delivered, None),
            Attempt::Failed(why) => {
                let why: String = why.chars().take(MAX_ERROR_CHARS).collect();
                match self.next_attempt(since, attempts, at) {
                    Some(next) => (Recorded::Retry(next), Some(why)),
                    None => (Recorded::GaveUp, Some(why)),
                }
            }
        }
    }

    /// When the next attempt is due after `attempts` failed ones of a row
    /// written at `created_at`, it being `at` now (unix seconds); `None`: give
    /// up (the deadline has passed). The last attempt falls on the deadline.
    pub fn next_attempt(&self, created_at: i64, attempts: i32, at: i64) -> Option<i64> {
        let deadline = created_at.saturating_add(self.give_up_after_secs);
        if at >= deadline {
            return None;
        }
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(40);
        let delay = self
            .first_secs
            .saturating_mul(1i64 << doublings)
            .min(self.max_secs)
            .max(1);
        Some(at.saturating_add(delay).min(deadline))
    }
}

/// Leases up to `limit` due rows for this worker: each gets its attempt
/// counted and its next attempt moved `lease_secs` ahead, so no other worker
/// takes it meanwhile (on PostgreSQL `FOR UPDATE SKIP LOCKED` keeps
/// concurrent workers off each other's rows; SQLite has one writer). A worker
/// that dies mid-delivery leaves the row due again after the lease.
pub async fn claim_due(db: &Db, limit: i64, lease_secs: i64) -> DomainResult<Vec<Delivery>> {
    let at = now();
    let skip_locked = match db {
        Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1 WHERE id IN \
         (SELECT id FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL \
          AND next_attempt_at <= $2 AND kind = $3 ORDER BY next_attempt_at, id LIMIT $4{skip_locked}) \
         RETURNING id, client_id, target_url, payload, jti, created_at, attempts"
    );
    // Read first: the worker asks every second, and nothing is due nearly
    // always; only a due row costs a write transaction (SQLite's write turn).
    let due: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL \
         AND next_attempt_at <= $1 LIMIT 1"
    )
    .bind(at)
    .fetch_optional(pool)
    .await)?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<DeliveryRow> = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let rows = sqlx::query_as(&sql)
            .bind(at.saturating_add(lease_secs))
            .bind(at)
            .bind(KIND)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(rows)
    })?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            subject: serde_json::from_str(&r.payload).unwrap_or_default(),
            id: r.id,
            client_id: r.client_id,
            target_url: r.target_url,
            jti: r.jti,
            created_at: r.created_at,
            attempts: r.attempts,
        })
        .collect())
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The app answered 2xx.
    Delivered,
    /// Anything else, said in a line for the admin (kept as `last_error`).
    Failed(String),
}

/// What became of a row after [`record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    /// Tried again at this time (unix seconds).
    Retry(i64),
    GaveUp,
    /// Another worker took the row over (its lease had run out): nothing written.
    Superseded,
}

/// Longest `last_error` kept, in characters.
const MAX_ERROR_CHARS: usize = 500;

/// Stores the outcome of an attempt at `delivery`: delivered, or failed with
/// the next attempt from `retry`, or given up at the deadline. Delivered and
/// given up are audited (`backchannel_logout_delivered`,
/// `backchannel_logout_gave_up`, with the client and the user); a failure
/// stays on the row (`last_error`, `attempts`).
pub async fn record(
    db: &Db,
    delivery: &Delivery,
    attempt: &Attempt,
    retry: &RetryPolicy,
) -> DomainResult<Recorded> {
    let at = now();
    let (outcome, error) = retry.outcome(attempt, delivery.created_at, delivery.attempts, at);
    let (next_attempt_at, delivered_at, gave_up_at, audit) = match outcome {
        Recorded::Retry(next) => (Some(next), None, None, None),
        Recorded::Delivered => (
            None,
            Some(at),
            None,
            Some(AuditKind::BackchannelLogoutDelivered),
        ),
        Recorded::GaveUp | Recorded::Superseded => (
            None,
            None,
            Some(at),
            Some(AuditKind::BackchannelLogoutGaveUp),
        ),
    };
    let event = audit.map(|kind| {
        AuditEvent::new(kind)
            .client(&delivery.client_id)
            .subject(&delivery.subject.sub)
            .detail(serde_json::json!({
                "outbox_id": delivery.id,
                "target": delivery.target_url,
                "jti": delivery.jti,
                "sid": delivery.subject.sid,
                "attempts": delivery.attempts,
                "last_error": error,
            }))
    });
    let written = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1, delivered_at = $2, gave_up_at = $3, \
             last_error = COALESCE($4, last_error) \
             WHERE id = $5 AND attempts = $6 AND delivered_at IS NULL AND gave_up_at IS NULL",
        )
        .bind(next_attempt_at)
        .bind(delivered_at)
        .bind(gave_up_at)
        .bind(&error)
        .bind(&delivery.id)
        .bind(delivery.attempts)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(event) = &event {
            crate::bind_audit!(event).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    })?;
    Ok(if written {
        outcome
    } else {
        Recorded::Superseded
    })
}

// ---------------------------------------------------------------------------
// The admin console
// ---------------------------------------------------------------------------

/// A delivery not made (yet), as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Undelivered {
    pub target_url: String,
    pub subject: Subject,
    /// Unix seconds, like the other times.
    pub created_at: i64,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// `None` once given up.
    pub next_attempt_at: Option<i64>,
    pub gave_up_at: Option<i64>,
}

/// How many deliveries are still to make (`/metrics`' outbox backlog):
/// `(back-channel logout tokens, upstream token revocations)` neither
/// delivered nor given up.
pub async fn backlog(db: &Db) -> DomainResult<(i64, i64)> {
    Ok(on_db!(db, |pool| sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE next_attempt_at IS NOT NULL), \
                (SELECT COUNT(*) FROM upstream_tokens WHERE next_attempt_at IS NOT NULL) \
         WHERE $1 = $1"
    )
    .bind(1_i64)
    .fetch_one(pool)
    .await)?)
}

/// A client's deliveries not made: pending ones and those given up, newest
/// first, at most `limit`.
pub async fn undelivered(db: &Db, client_id: &str, limit: i64) -> DomainResult<Vec<Undelivered>> {
    type Row = (
        String,
        String,
        i64,
        i32,
        Option<String>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = on_db!(db, |pool| {
        sqlx::query_as(
        "SELECT target_url, payload, created_at, attempts, last_error, next_attempt_at, gave_up_at \
         FROM outbox WHERE client_id = $1 AND delivered_at IS NULL \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    )
    .bind(client_id)
    .bind(limit)
    .fetch_all(pool)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(
                target_url,
                payload,
                created_at,
                attempts,
                last_error,
                next_attempt_at,
                gave_up_at,
            )| {
                Undelivered {
                    target_url,
                    subject: serde_json::from_str(&payload).unwrap_or_default(),
                    created_at,
                    attempts,
                    last_error,
                    next_attempt_at,
                    gave_up_at,
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logout_uris_are_https_or_loopback_http() {
        for ok in [
            "https://app.example/backchannel",
            "https://app.example:8443/bc?tenant=1",
            "http://127.0.0.1:8080/bc",
            "http://[::1]/bc",
            "http://localhost:3005/bc",
        ] {
            assert_eq!(validate_uri(ok).unwrap(), ok);
        }
        for bad in [
            "http://app.example/bc",
            "http://10.0.0.1/bc",
            "https://app.example/bc#x",
            "/relative",
            "com.example.app:/bc",
            "javascript:alert(1)",
            "",
        ] {
            let err = validate_uri(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("backchannel_logout_uri: "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn retries_back_off_exponentially_until_the_deadline() {
        let retry = RetryPolicy::default();
        let created = 1_000_000;
        assert_eq!(retry.next_attempt(created, 1, created), Some(created + 1));
        assert_eq!(
            retry.next_attempt(created, 2, created + 1),
            Some(created + 3)
        );
        assert_eq!(retry.next_attempt(created, 4, created), Some(created + 8));
        // Capped at 10 minutes, however many attempts.
        assert_eq!(
            retry.next_attempt(created, 11, created),
            Some(created + 600)
        );
        assert_eq!(
            retry.next_attempt(created, i32::MAX, created),
            Some(created + 600)
        );
        // The last attempt falls on the deadline; after it, give up.
        let deadline = created + 86_400;
        assert_eq!(
            retry.next_attempt(created, 30, deadline - 10),
            Some(deadline)
        );
        assert_eq!(retry.next_attempt(created, 31, deadline), None);
    }

    #[test]
    fn logout_claims_have_no_nonce_and_carry_the_event() {
        let claims = LogoutClaims {
            iss: "https://id.example".into(),
            aud: "client".into(),
            iat: 10,
            exp: 10 + TOKEN_TTL_SECS,
            jti: "j".into(),
            events: serde_json::json!({ EVENT: {} }),
            sub: "user".into(),
            sid: None,
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("nonce").is_none());
        assert!(json.get("sid").is_none(), "no sid when none ended");
        assert_eq!(json["events"][EVENT], serde_json::json!({}));
    }
}
