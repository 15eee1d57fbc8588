//! What the "My apps" and "Sessions" pages show and do for the signed-in
//! user: the apps holding a live grant for them, an app's sessions and
//! activity, revoking; their sign-in sessions, ending them. Every function
//! takes the user's id and only ever reads or changes that user's rows: an id
//! of someone else's grant, family or session is `NotFound`, and nothing changes.

use std::collections::BTreeMap;

use super::{
    error::{DomainError, DomainResult},
    grants::split_scopes,
    login_sessions::{self, ClientInfo, SignedIn},
    revocation::{Revoked, RevokedBy, RevokedSets},
    scopes::{catalogue, Catalogue},
    store::Db,
};
use crate::{
    model::{Activity, AppDetail, AppSession, AppSummary, Page, PageRequest, SignInSession},
    on_db,
};

/// Lists longer than this are paginated.
pub const PER_PAGE: i64 = 50;

#[derive(sqlx::FromRow)]
struct AppRow {
    grant_id: String,
    client_name: String,
    scopes: String,
    created_at: i64,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    last_used_ua: Option<String>,
    active_sessions: i64,
    refresh_enabled: bool,
    grant_types: String,
    #[sqlx(flatten)]
    metadata: super::clients::ClientMetadata,
}

impl AppRow {
    /// The app as My apps shows it, its scopes in the catalogue's words.
    fn summary(self, catalogue: &Catalogue) -> AppSummary {
        let row = self;
        AppSummary {
            grant_id: row.grant_id,
            app: row.metadata.identity(&row.client_name),
            scopes: catalogue.describe_all(&split_scopes(&row.scopes)),
            granted_at: row.created_at,
            last_used_at: row.last_used_at,
            last_used_ip: row.last_used_ip.filter(|ip| !ip.is_empty()),
            last_used_device: row.last_used_ua.map(|ua| describe_user_agent(&ua)),
            active_sessions: row.active_sessions,
            refresh_off: !row.refresh_enabled
                || !row.grant_types.split(' ').any(|g| g == "refresh_token"),
        }
    }
}

/// The live grants of a user (of clients not deleted), newest use first.
const APPS_SQL: &str = "SELECT g.id AS grant_id, c.name AS client_name, g.scopes, g.created_at, \
    g.last_used_at, g.last_used_ip, g.last_used_ua, \
    (SELECT COUNT(*) FROM token_families f WHERE f.grant_id = g.id AND f.revoked_at IS NULL) AS active_sessions, \
    p.refresh_enabled, c.grant_types, \
    c.logo_uri, c.client_uri, c.policy_uri, c.tos_uri, c.description \
    FROM grants g JOIN clients c ON c.id = g.client_id JOIN client_policies p ON p.client_id = c.id \
    WHERE g.user_id = $1 AND g.revoked_at IS NULL AND c.deleted_at IS NULL";

/// One page of the apps holding tokens for `user_id`, most recently used
/// first. A page past the end of a clamped request reads the last page.
pub async fn list_apps(
    db: &Db,
    user_id: &str,
    page: PageRequest,
) -> DomainResult<Page<AppSummary>> {
    let sql = format!(
        "{APPS_SQL} ORDER BY COALESCE(g.last_used_at, g.created_at) DESC, g.id LIMIT $2 OFFSET $3"
    );
    let count_sql = format!("SELECT COUNT(*) FROM ({APPS_SQL}) AS apps");
    let (rows, total, page) =
        one_page_of_user::<AppRow>(db, &count_sql, &sql, user_id, page).await?;
    let catalogue = catalogue(db).await?;
    Ok(page.of(
        rows.into_iter().map(|r| r.summary(&catalogue)).collect(),
        total,
    ))
}

/// One page of a user's list: `count_sql` counts it (`$1` the user id), then
/// `sql` reads the rows of the page fitted to that count (`$1` the user id,
/// `$2` the page size, `$3` the offset). Returns the rows, the count and the page.
pub(super) async fn one_page_of_user<R>(
    db: &Db,
    count_sql: &str,
    sql: &str,
    user_id: &str,
    page: PageRequest,
) -> DomainResult<(Vec<R>, i64, PageRequest)>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    Ok(on_db!(db, |pool| {
        // Counted first, so that the page can be fitted to the list.
        let total: i64 = sqlx::query_scalar(count_sql)
            .bind(user_id)
            .fetch_one(pool)
            .await?;
        let page = page.within(total);
        let rows: Vec<R> = sqlx::query_as(sql)
            .bind(user_id)
            .bind(page.per_page())
            .bind(page.offset())
            .fetch_all(pool)
            .await?;
        Ok::<_, sqlx::Error>((rows, total, page))
    })?)
}

async fn find_app(db: &Db, user_id: &str, grant_id: &str) -> DomainResult<AppSummary> {
    let sql = format!("{APPS_SQL} AND g.id = $2");
    let row: Option<AppRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(user_id)
        .bind(grant_id)
        .fetch_optional(pool)
        .await)?;
    let row = row.ok_or(DomainError::NotFound)?;
    Ok(row.summary(&catalogue(db).await?))
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    created_at: i64,
    last_used_at: i64,
    last_used_ip: Option<String>,
    last_used_ua: Option<String>,
    sign_in_started_at: Option<i64>,
}

/// A timeline entry read from the database: one audit event (`n` = 1), or
/// a day's count of refreshes from `usage_days` (`at` = its latest).
#[derive(sqlx::FromRow)]
struct EventRow {
    at: i64,
    kind: String,
    n: i64,
}

/// The timeline shows at most this many lines.
const ACTIVITY_LINES: usize = 100;

/// An app of the user with its live sessions and its activity timeline.
pub async fn app_detail(db: &Db, user_id: &str, grant_id: &str) -> DomainResult<AppDetail> {
    let app = find_app(db, user_id, grant_id).await?;
    let (sessions, events) = on_db!(db, |pool| {
        let sessions: Vec<SessionRow> = sqlx::query_as(
            "SELECT f.id, f.created_at, f.last_used_at, f.last_used_ip, f.last_used_ua, \
             s.created_at AS sign_in_started_at \
             FROM token_families f LEFT JOIN login_sessions s \
               ON s.id = f.login_session_id AND s.ended_at IS NULL \
             WHERE f.grant_id = $1 AND f.revoked_at IS NULL \
             ORDER BY f.last_used_at DESC, f.id LIMIT $2",
        )
        .bind(grant_id)
        .bind(PER_PAGE)
        .fetch_all(pool)
        .await?;
        // This app's events about this user, across all their grants to it:
        // audit events (refreshes too, from before they were counted), and
        // the counted refreshes of the last days.
        let events: Vec<EventRow> = sqlx::query_as(
            "SELECT e.at, e.kind, CAST(1 AS BIGINT) AS n FROM audit_events e JOIN grants g ON g.id = $2 \
             WHERE e.subject_user_id = $1 AND e.client_id = g.client_id \
             AND e.kind IN ('consent_granted', 'code_redeemed', 'token_refreshed', 'reuse_detected', 'revoked') \
             ORDER BY e.at DESC, e.id DESC LIMIT 2000",
        )
        .bind(user_id)
        .bind(grant_id)
        .fetch_all(pool)
        .await?;
        let counted: Vec<EventRow> = sqlx::query_as(
            "SELECT u.last_at AS at, u.kind, u.n FROM usage_days u JOIN grants g ON g.id = $2 \
             WHERE u.user_id = $1 AND u.client_id = g.client_id \
             ORDER BY u.day DESC LIMIT $3",
        )
        .bind(user_id)
        .bind(grant_id)
        .bind(ACTIVITY_LINES as i64)
        .fetch_all(pool)
        .await?;
        let events = events.into_iter().chain(counted).collect::<Vec<_>>();
        Ok::<_, sqlx::Error>((sessions, events))
    })?;
    Ok(AppDetail {
        app,
        sessions: sessions
            .into_iter()
            .map(|s| AppSession {
                family_id: s.id,
                device: describe_user_agent(s.last_used_ua.as_deref().unwrap_or_default()),
                ip: s.last_used_ip.unwrap_or_default(),
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                sign_in_started_at: s.sign_in_started_at,
            })
            .collect(),
        activity: timeline(events),
    })
}

/// Events newest first, with refreshes and code redemptions summed per (UTC) day.
fn timeline(mut events: Vec<EventRow>) -> Vec<Activity> {
    events.sort_by_key(|e| std::cmp::Reverse(e.at));
    let mut lines: Vec<Activity> = Vec::new();
    let mut daily: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for event in events {
        let counted = matches!(event.kind.as_str(), "token_refreshed" | "code_redeemed");
        if counted {
            let key = (event.at.div_euclid(86_400), event.kind.clone());
            if let Some(&i) = daily.get(&key) {
                lines[i].count += event.n;
                continue;
            }
            daily.insert(key, lines.len());
        }
        lines.push(Activity {
            at: event.at,
            kind: event.kind,
            count: event.n,
        });
    }
    lines.truncate(ACTIVITY_LINES);
    lines
}

fn by_user<'a>(actor: &'a str, user_id: &'a str, reason: &'a str) -> RevokedBy<'a> {
    RevokedBy {
        actor,
        reason,
        actor_user_id: Some(user_id),
        actor_client_id: None,
    }
}

/// Revokes one of the user's apps: the grant, every family, refresh and access
/// token under it. Returns the app's name.
pub async fn revoke_app(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
    grant_id: &str,
) -> DomainResult<String> {
    let app = find_app(db, user_id, grant_id).await?;
    let actor = format!("user:{user_id}");
    revoked
        .revoke_grant(
            db,
            grant_id,
            &by_user(&actor, user_id, "revoked by the user"),
        )
        .await?;
    Ok(app.app.name)
}

/// Revokes every app of the user; returns how many apps lost access.
pub async fn revoke_all_apps(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
) -> DomainResult<Revoked> {
    let actor = format!("user:{user_id}");
    revoked
        .revoke_user_grants(
            db,
            user_id,
            &by_user(&actor, user_id, "revoked by the user"),
        )
        .await
}

/// Signs one app session (token family) of the user out. Returns the app's name.
pub async fn sign_out_app_session(
    db: &Db,
    revoked: &RevokedSets,
    user_id: &str,
    family_id: &str,
) -> DomainResult<String> {
    let name: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT c.name FROM token_families f JOIN grants g ON g.id = f.grant_id \
         JOIN clients c ON c.id = g.client_id \
         WHERE f.id = $1 AND g.user_id = $2 AND f.revoked_at IS NULL AND g.revoked_at IS NULL"
    )
    .bind(family_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await)?;
    let name = name.ok_or(DomainError::NotFound)?;
    let actor = format!("user:{user_id}");
    revoked
        .revoke_family(
            db,
            family_id,
            &by_user(&actor, user_id, "signed out by the user"),
        )
        .await?;
    Ok(name)
}

#[derive(sqlx::FromRow)]
struct SignInRow {
    id: String,
    user_agent: String,
    ip: String,
    created_at: i64,
    last_seen_at: i64,
    app_sessions: i64,
    via: Option<String>,
}

const SIGN_INS_SQL: &str = "SELECT s.id, s.user_agent, s.ip, s.created_at, s.last_seen_at, \
    (SELECT COUNT(*) FROM token_families f WHERE f.login_session_id = s.id AND f.revoked_at IS NULL) AS app_sessions, \
    (SELECT p.name FROM upstream_providers p WHERE p.id = s.upstream_provider_id) AS via \
    FROM login_sessions s WHERE s.user_id = $1 AND s.ended_at IS NULL";

/// One page of the user's live sign-in sessions, the current one marked and
/// first. A page past the end of a clamped request reads the last page.
pub async fn list_sign_ins(
    db: &Db,
    signed_in: &SignedIn,
    page: PageRequest,
) -> DomainResult<Page<SignInSession>> {
    let sql = format!(
        "{SIGN_INS_SQL} ORDER BY CASE WHEN s.id = $4 THEN 0 ELSE 1 END, s.last_seen_at DESC, s.id \
         LIMIT $2 OFFSET $3"
    );
    let count_sql = format!("SELECT COUNT(*) FROM ({SIGN_INS_SQL}) AS sessions");
    let user_id = &signed_in.user.id;
    let (rows, total, page) = on_db!(db, |pool| {
        let total: i64 = sqlx::query_scalar(&count_sql)
            .bind(user_id)
            .fetch_one(pool)
            .await?;
        let page = page.within(total);
        let rows: Vec<SignInRow> = sqlx::query_as(&sql)
            .bind(user_id)
            .bind(page.per_page())
            .bind(page.offset())
            .bind(&signed_in.login_session_id)
            .fetch_all(pool)
            .await?;
        Ok::<_, sqlx::Error>((rows, total, page))
    })?;
    Ok(page.of(
        rows.into_iter()
            .map(|r| SignInSession {
                current: r.id == signed_in.login_session_id,
                id: r.id,
                device: describe_user_agent(&r.user_agent),
                ip: r.ip,
                started_at: r.created_at,
                last_seen_at: r.last_seen_at,
                app_sessions: r.app_sessions,
                via: r.via,
            })
            .collect(),
        total,
    ))
}

/// Ends one of the user's sign-in sessions (revoking its apps' families per
/// their revoke-on-logout). Returns what was revoked.
pub async fn end_sign_in(
    db: &Db,
    revoked: &RevokedSets,
    signed_in: &SignedIn,
    login_session_id: &str,
    from: &ClientInfo,
) -> DomainResult<Revoked> {
    let mine: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM login_sessions WHERE id = $1 AND user_id = $2 AND ended_at IS NULL"
    )
    .bind(login_session_id)
    .bind(&signed_in.user.id)
    .fetch_optional(pool)
    .await)?;
    mine.ok_or(DomainError::NotFound)?;
    let target = SignedIn {
        login_session_id: login_session_id.to_owned(),
        user: signed_in.user.clone(),
    };
    login_sessions::end(db, revoked, &target, "signed_out_remotely", from).await
}

/// Ends every sign-in session of the user but the current one; returns how many ended.
pub async fn end_other_sign_ins(
    db: &Db,
    revoked: &RevokedSets,
    signed_in: &SignedIn,
    from: &ClientInfo,
) -> DomainResult<usize> {
    let others: Vec<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT id FROM login_sessions WHERE user_id = $1 AND ended_at IS NULL AND id <> $2"
    )
    .bind(&signed_in.user.id)
    .bind(&signed_in.login_session_id)
    .fetch_all(pool)
    .await)?;
    for id in &others {
        end_sign_in(db, revoked, signed_in, id, from).await?;
    }
    Ok(others.len())
}

/// "Firefox on Linux", "Chrome on Android", "curl": enough to recognise a device.
pub fn describe_user_agent(ua: &str) -> String {
    let has = |needle: &str| ua.contains(needle);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("OPR/") || has("Opera") {
        "Opera"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else if ua.starts_with("curl/") {
        "curl"
    } else if has("reqwest") || has("python") || has("okhttp") || has("Go-http-client") {
        "An app"
    } else {
        ""
    };
    let system = if has("Android") {
        "Android"
    } else if has("iPhone") || has("iPad") || has("iOS") {
        "iOS"
    } else if has("Windows") {
        "Windows"
    } else if has("Mac OS X") || has("Macintosh") {
        "macOS"
    } else if has("CrOS") {
        "ChromeOS"
    } else if has("Linux") {
        "Linux"
    } else {
        ""
    };
    match (browser, system) {
        ("", "") if ua.trim().is_empty() => "Unknown device".into(),
        // Not a browser: the product name is enough ("Playwright/1.65 (…)" → "Playwright").
        ("", "") => ua
            .split(['/', ' ', '('])
            .next()
            .unwrap_or_default()
            .chars()
            .take(40)
            .collect(),
        (b, "") => b.into(),
        ("", s) => format!("A browser on {s}"),
        (b, s) => format!("{b} on {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_read_as_devices() {
        assert_eq!(
            describe_user_agent(
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            ),
            "Firefox on Linux"
        );
        assert_eq!(
            describe_user_agent("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"),
            "Chrome on Android"
        );
        assert_eq!(
            describe_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"),
            "Safari on iOS"
        );
        assert_eq!(describe_user_agent("curl/8.5.0"), "curl");
        assert_eq!(describe_user_agent(""), "Unknown device");
        assert_eq!(
            describe_user_agent("Playwright/1.65.1 (x64; debian 12) node/20.20"),
            "Playwright"
        );
    }

    #[test]
    fn refreshes_are_summed_per_day() {
        let day = 86_400 * 20_000;
        let events = vec![
            EventRow {
                at: day + 500,
                kind: "token_refreshed".into(),
                n: 1,
            },
            EventRow {
                at: day + 400,
                kind: "revoked".into(),
                n: 1,
            },
            EventRow {
                at: day + 300,
                kind: "token_refreshed".into(),
                n: 1,
            },
            EventRow {
                at: day + 200,
                kind: "token_refreshed".into(),
                n: 1,
            },
            EventRow {
                at: day - 10,
                kind: "token_refreshed".into(),
                n: 1,
            },
            EventRow {
                at: day - 20,
                kind: "consent_granted".into(),
                n: 1,
            },
            // Counted refreshes (`usage_days`) come after the audit events
            // and merge into their day's line.
            EventRow {
                at: day + 250,
                kind: "token_refreshed".into(),
                n: 5,
            },
            EventRow {
                at: day - 5,
                kind: "token_refreshed".into(),
                n: 2,
            },
        ];
        let lines = timeline(events);
        let shape: Vec<(&str, i64)> = lines.iter().map(|l| (l.kind.as_str(), l.count)).collect();
        assert_eq!(
            shape,
            vec![
                ("token_refreshed", 8),
                ("revoked", 1),
                ("token_refreshed", 3),
                ("consent_granted", 1)
            ]
        );
    }
}
