//! A person's security activity: what happened to their account that they
//! should know of, in plain words with what to do — read from the audit log
//! (the events name them as `subject_user_id`), newest first, paged:
//!
//! | event | when |
//! | --- | --- |
//! | an app's session ended by reuse detection | `reuse_detected` of a refresh token (RFC 9700 §4.14.2), written once per family (a revoked family is not reused again); a replayed authorization code is not listed: anyone holding a used code can replay it again and again, and no session of the person's ended |
//! | an administrator revoked apps or signed them out | `revoked` (of apps) or `logout` done by someone else: another user (an admin), or a client other than the app itself (the admin API); a sign-out's `revoked` event is not listed besides its `logout` |
//! | an app got access | `consent_granted` |
//! | a sign-in from a new device | `login` whose browser and system ([`super::my_apps::describe_user_agent`]) none of their earlier sign-ins had |
//! | sign-ins to their account paused | `sign_in_throttled` for their username |
//!
//! What they did themselves (revoking an app, signing out) is not listed.
//! `users.security_seen_id` remembers the newest event they were shown (audit
//! ids are time-ordered): later events are unseen, counted in the top bar.

use super::{error::DomainResult, my_apps::describe_user_agent, scopes::Catalogue, store::Db};
use crate::{
    model::{Page, PageRequest, SecurityEvent},
    on_db,
};

/// Security activity is paged by this many events.
pub const PER_PAGE: i64 = 20;

/// The user agents of a user's earlier sign-ins (ended ones included, as
/// long as retention keeps them: 30 days), for [`is_new_device`]; `$1` the user id.
pub const EARLIER_DEVICES_SQL: &str =
    "SELECT DISTINCT user_agent FROM login_sessions WHERE user_id = $1";

/// Whether a sign-in with `user_agent` comes from a device none of the
/// `earlier` sign-ins had (compared as browser and system: "Firefox on
/// Linux"). A first sign-in ever is not "new": there is nothing to compare.
pub fn is_new_device(earlier: &[String], user_agent: &str) -> bool {
    let device = describe_user_agent(user_agent);
    !earlier.is_empty() && !earlier.iter().any(|ua| describe_user_agent(ua) == device)
}

/// The events a person is shown: `$1` their id. See the module header.
const EVENTS_WHERE: &str = "e.subject_user_id = $1 AND ( \
    e.kind IN ('consent_granted', 'sign_in_throttled') \
    OR (e.kind = 'reuse_detected' AND e.detail LIKE '%\"what\":\"refresh_token\"%') \
    OR (e.kind = 'login' AND e.detail LIKE '%\"new_device\":true%') \
    OR (e.kind IN ('revoked', 'logout') AND e.detail NOT LIKE '%\"what\":\"sign_in\"%' \
        AND ((e.actor_user_id IS NOT NULL AND e.actor_user_id <> $1) \
          OR (e.actor_user_id IS NULL AND e.actor_client_id IS NOT NULL \
              AND (e.client_id IS NULL OR e.actor_client_id <> e.client_id)))))";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    at: i64,
    kind: String,
    actor_client_id: Option<String>,
    ip: Option<String>,
    detail: String,
    client_name: Option<String>,
    /// The grant named by the event, when it is still live and the person's.
    live_grant_id: Option<String>,
}

/// One page of `user_id`'s security activity, newest first; events after
/// `seen` (an event id, `""` for none) are marked unseen.
pub async fn list(
    db: &Db,
    user_id: &str,
    page: PageRequest,
    seen: &str,
) -> DomainResult<Page<SecurityEvent>> {
    let count_sql = format!("SELECT COUNT(*) FROM audit_events e WHERE {EVENTS_WHERE}");
    let sql = format!(
        "SELECT e.id, e.at, e.kind, e.actor_client_id, e.ip, e.detail, c.name AS client_name, \
         g.id AS live_grant_id \
         FROM audit_events e LEFT JOIN clients c ON c.id = e.client_id \
         LEFT JOIN grants g ON g.user_id = $1 AND g.client_id = e.client_id AND g.revoked_at IS NULL \
         WHERE {EVENTS_WHERE} ORDER BY e.at DESC, e.id DESC LIMIT $2 OFFSET $3"
    );
    let (rows, total, page) =
        super::my_apps::one_page_of_user::<EventRow>(db, &count_sql, &sql, user_id, page).await?;
    let catalogue = super::scopes::catalogue(db).await?;
    let items = rows
        .into_iter()
        .map(|r| explain(r, seen, &catalogue))
        .collect();
    Ok(page.of(items, total))
}

/// How many of `user_id`'s security events they have not been shown yet
/// (after `users.security_seen_id`): the top bar's count, one query.
pub async fn unseen(db: &Db, user_id: &str) -> DomainResult<i64> {
    let sql = format!(
        "SELECT COUNT(*) FROM audit_events e WHERE {EVENTS_WHERE} \
         AND e.id > COALESCE((SELECT security_seen_id FROM users WHERE id = $1), '')"
    );
    Ok(on_db!(db, |pool| sqlx::query_scalar(&sql)
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
}

/// The newest security event `user_id` was shown (`""`: none yet).
pub async fn seen(db: &Db, user_id: &str) -> DomainResult<String> {
    let id: Option<Option<String>> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT security_seen_id FROM users WHERE id = $1"
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await)?;
    Ok(id.flatten().unwrap_or_default())
}

/// The newest of `user_id`'s security events now (`None`: they have none).
pub async fn newest(db: &Db, user_id: &str) -> DomainResult<Option<String>> {
    let sql = format!("SELECT MAX(e.id) FROM audit_events e WHERE {EVENTS_WHERE}");
    Ok(on_db!(db, |pool| sqlx::query_scalar(&sql)
        .bind(user_id)
        .fetch_one(pool)
        .await)?)
}

/// Remembers that `user_id` has been shown their security events up to
/// `newest` (read before the list was, so an event that came in meanwhile
/// stays unseen); never moves back (two tabs at once).
///
/// Ids are time-ordered by the millisecond of the event's insertion, so an
/// event whose transaction commits after a look but carries an earlier
/// millisecond — a race of a few milliseconds, or clocks of instances apart
/// — is listed but not counted as unseen.
pub async fn mark_seen(db: &Db, user_id: &str, newest: &str) -> DomainResult<()> {
    on_db!(db, |pool| pool
        .execute_write(
            sqlx::query(
                "UPDATE users SET security_seen_id = $1 WHERE id = $2 \
                 AND (security_seen_id IS NULL OR security_seen_id < $1)"
            )
            .bind(newest)
            .bind(user_id)
        )
        .await
        .map(drop))?;
    Ok(())
}

/// An event in plain words, with what to do and where to go. Reasons an
/// administrator typed are theirs (the audit log keeps them); a person reads
/// what happened and what they can do here.
fn explain(row: EventRow, seen: &str, catalogue: &Catalogue) -> SecurityEvent {
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap_or_default();
    let app = row.client_name.clone().unwrap_or_else(|| "An app".into());
    let app_link = || match &row.live_grant_id {
        Some(grant) => (crate::paths::app(grant), format!("Review {app}")),
        None => (crate::paths::HOME.to_owned(), "Open My apps".to_owned()),
    };
    let sessions_link = || {
        Some((
            crate::paths::SESSIONS.to_owned(),
            "Review your sessions".to_owned(),
        ))
    };
    let device = detail["user_agent"]
        .as_str()
        .filter(|ua| !ua.is_empty())
        .map(describe_user_agent);
    let by_admin = if row.actor_client_id.is_some() {
        "An administrator (through the admin API)"
    } else {
        "An administrator"
    };
    const NOT_YOU: &str =
        "If this was not you, sign out your other sessions and tell your administrator.";
    let (title, advice, link) = match row.kind.as_str() {
        "reuse_detected" => (
            format!("A session of {app} was ended to protect you"),
            "One of its refresh tokens was used twice, which can mean it was copied \
             (refresh token reuse detection). Latchkey ended that session at once. \
             If the app asks you to sign in again, do; if you did not use it then, \
             review its other sessions."
                .to_owned(),
            Some(app_link()),
        ),
        "consent_granted" => {
            let scopes: Vec<String> = detail["scopes"]
                .as_array()
                .map(|s| s.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|s| catalogue.describe(s).description)
                .collect();
            (
                format!("{app} got access to your account"),
                format!("You allowed it to: {}. {NOT_YOU}", scopes.join("; ")),
                Some(app_link()),
            )
        }
        "login" => (
            format!(
                "New sign-in from {}",
                device.unwrap_or_else(|| "an unknown device".into())
            ),
            "Your account was signed in to from a browser or system it had not used before. \
             If this was not you, sign that session out and tell your administrator."
                .to_owned(),
            sessions_link(),
        ),
        "sign_in_throttled" => (
            "Sign-ins to your account were paused".to_owned(),
            "After several wrong passwords, Latchkey paused sign-ins to your account for a while. \
             If these were not your attempts, someone may be guessing your password: tell your administrator."
                .to_owned(),
            None,
        ),
        "logout" => (
            format!("{by_admin} signed you out"),
            format!(
                "Your sign-in{} was ended. Sign in again if you need to.",
                device.map(|d| format!(" on {d}")).unwrap_or_default(),
            ),
            sessions_link(),
        ),
        _ => {
            let what = match detail["what"].as_str() {
                Some("user_grants") => "revoked every app's access to your account".to_owned(),
                _ => format!("revoked the access of {app} to your account"),
            };
            (
                format!("{by_admin} {what}"),
                "Its tokens stopped working at once. An app you still use asks for your consent again."
                    .to_owned(),
                Some(app_link()),
            )
        }
    };
    SecurityEvent {
        unseen: row.id.as_str() > seen,
        id: row.id,
        at: row.at,
        kind: row.kind,
        title,
        advice,
        ip: row.ip.filter(|ip| !ip.is_empty()),
        link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_new_only_against_earlier_sign_ins() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let newer_firefox =
            "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";
        let chrome_mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        assert!(
            !is_new_device(&[], firefox),
            "a first sign-in ever is not new"
        );
        assert!(
            !is_new_device(&[firefox.into()], newer_firefox),
            "an update is the same device"
        );
        assert!(is_new_device(&[firefox.into()], chrome_mac));
        assert!(!is_new_device(
            &[firefox.into(), chrome_mac.into()],
            chrome_mac
        ));
    }
}
