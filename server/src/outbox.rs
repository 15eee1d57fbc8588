//! The outbox worker: delivers what Latchkey must tell someone else — today
//! OpenID Connect Back-Channel Logout tokens (`app::domain::backchannel`), and
//! RFC 7009 revocations of upstream providers' tokens when a sign-in through
//! one ended (`app::domain::upstream`, sent by `crate::upstream::revoke`).
//!
//! One task per instance ([`spawn`], started by `latchkey serve`). It leases
//! due rows ([`backchannel::claim_due`]; several instances on one PostgreSQL
//! never take the same row), signs each Logout Token now and POSTs it as
//! `application/x-www-form-urlencoded` `logout_token=…` (§2.5): no redirect
//! followed, a [`TIMEOUT`] per request. 2xx is delivered; anything else is
//! retried with exponential backoff until the deadline ([`RetryPolicy`]).
//! It runs when this instance enqueued something ([`backchannel::woken`]) and
//! every [`POLL_EVERY`] otherwise (rows written by other instances, retries
//! that came due). The rows are durable: a restart loses nothing, and a row
//! leased by a worker that died is due again after [`LEASE_SECS`].

use std::time::Duration;

use app::domain::{
    backchannel::{self, Attempt, Delivery, Recorded, RetryPolicy},
    keys::KeyRing,
    upstream::{self, Revocation},
    Db,
};

use crate::upstream::Upstreams;

/// How long one POST may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How often the worker looks for due rows without being woken.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a leased row is this worker's (well above [`TIMEOUT`]), in seconds.
pub const LEASE_SECS: i64 = 60;
/// Rows leased and sent at once.
const BATCH: i64 = 16;

/// Starts the worker on this runtime; abort the handle to stop it (a delivery
/// in progress is then retried after its lease).
pub fn spawn(
    db: Db,
    keys: KeyRing,
    issuer: String,
    retry: RetryPolicy,
    upstreams: Upstreams,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(db, keys, issuer, retry, upstreams))
}

/// The worker's loop, until the task is aborted.
pub async fn run(db: Db, keys: KeyRing, issuer: String, retry: RetryPolicy, upstreams: Upstreams) {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .user_agent(concat!(
            "Latchkey/",
            env!("CARGO_PKG_VERSION"),
            " back-channel logout"
        ))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the outbox's HTTP client; nothing will be delivered");
            return;
        }
    };
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Everything due now, batch after batch.
        loop {
            let batch = match backchannel::claim_due(&db, BATCH, LEASE_SECS).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the outbox failed; trying again shortly");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let sends = batch.iter().map(|d| deliver(&http, &keys, &issuer, d));
            let attempts = futures_util::future::join_all(sends).await;
            for (delivery, attempt) in batch.iter().zip(attempts) {
                note(&db, delivery, &attempt, &retry).await;
            }
        }
        // Upstream tokens of ended sign-ins, batch after batch.
        loop {
            let batch = match upstream::claim_due(&db, upstreams.sealer(), BATCH, LEASE_SECS).await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the upstream revocations failed; trying again shortly");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            let sends = batch
                .iter()
                .map(|r| crate::upstream::revoke(&db, &upstreams, r));
            let attempts = futures_util::future::join_all(sends).await;
            for (revocation, attempt) in batch.iter().zip(attempts) {
                note_upstream(&db, revocation, &attempt, &retry).await;
            }
        }
        tokio::select! {
            _ = poll.tick() => {}
            _ = backchannel::woken() => {}
        }
    }
}

/// One attempt: sign now, POST, read the status.
async fn deliver(http: &reqwest::Client, keys: &KeyRing, issuer: &str, d: &Delivery) -> Attempt {
    let token = match backchannel::sign(keys, issuer, d) {
        Ok(token) => token,
        Err(e) => return Attempt::Failed(format!("signing the logout token failed: {e}")),
    };
    let sent = http
        .post(&d.target_url)
        .form(&[("logout_token", token.as_str())])
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => Attempt::Delivered,
        Ok(res) if res.status().is_redirection() => Attempt::Failed(format!(
            "HTTP {} (redirects are not followed)",
            res.status()
        )),
        Ok(res) => Attempt::Failed(format!("HTTP {}", res.status())),
        Err(e) if e.is_timeout() => {
            Attempt::Failed(format!("no answer within {} s", TIMEOUT.as_secs()))
        }
        Err(e) => Attempt::Failed(describe(e)),
    }
}

/// A transport error with its causes, without the URL the row already names
/// ("error sending request: client error (Connect): … Connection refused").
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Stores and logs an attempt's outcome.
async fn note(db: &Db, d: &Delivery, attempt: &Attempt, retry: &RetryPolicy) {
    match backchannel::record(db, d, attempt, retry).await {
        Ok(Recorded::Delivered) => {
            tracing::info!(client_id = %d.client_id, target = %d.target_url, attempts = d.attempts, "back-channel logout delivered");
        }
        Ok(Recorded::Retry(next)) => {
            tracing::warn!(client_id = %d.client_id, target = %d.target_url, attempts = d.attempts, error = ?attempt, next_attempt_at = next, "back-channel logout failed; will retry");
        }
        Ok(Recorded::GaveUp) => {
            tracing::warn!(client_id = %d.client_id, target = %d.target_url, attempts = d.attempts, error = ?attempt, "back-channel logout given up");
        }
        Ok(Recorded::Superseded) => {}
        // The lease runs out and the row is tried again.
        Err(e) => tracing::warn!(error = %e, outbox_id = %d.id, "recording a delivery failed"),
    }
}

/// Stores and logs an upstream revocation's outcome.
async fn note_upstream(db: &Db, r: &Revocation, attempt: &Attempt, retry: &RetryPolicy) {
    match upstream::record(db, r, attempt, retry).await {
        Ok(Recorded::Delivered) => {
            tracing::info!(provider_id = %r.provider_id, attempts = r.attempts, "upstream tokens revoked");
        }
        Ok(Recorded::Retry(next)) => {
            tracing::warn!(provider_id = %r.provider_id, attempts = r.attempts, error = ?attempt, next_attempt_at = next, "upstream revocation failed; will retry");
        }
        Ok(Recorded::GaveUp) => {
            tracing::warn!(provider_id = %r.provider_id, attempts = r.attempts, error = ?attempt, "upstream revocation given up");
        }
        Ok(Recorded::Superseded) => {}
        Err(e) => {
            tracing::warn!(error = %e, sid = %r.login_session_id, "recording an upstream revocation failed")
        }
    }
}
