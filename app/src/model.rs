//! Wire types: what server functions send to the browser. Never a secret,
//! never a password hash, never a token.

use serde::{Deserialize, Serialize};

/// The signed-in user, as the dashboard shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub username: String,
    pub is_admin: bool,
}

/// A scope and what it lets an app do, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeInfo {
    pub scope: String,
    pub description: String,
}

/// One app that holds a live grant for the signed-in user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    pub grant_id: String,
    pub client_name: String,
    pub scopes: Vec<ScopeInfo>,
    /// When access was first given (unix seconds).
    pub granted_at: i64,
    pub last_used_at: Option<i64>,
    pub last_used_ip: Option<String>,
    /// Browser and system, read from the user agent ("Firefox on Linux").
    pub last_used_device: Option<String>,
    /// Live token families: app sessions on devices.
    pub active_sessions: i64,
    /// The admin switched this app's refresh tokens off.
    pub refresh_off: bool,
}

/// A page of a longer list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

impl<T> Page<T> {
    pub fn pages(&self) -> i64 {
        ((self.total + self.per_page - 1) / self.per_page).max(1)
    }
}

/// One app session (token family): one device's chain of tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSession {
    pub family_id: String,
    pub device: String,
    pub ip: String,
    pub created_at: i64,
    pub last_used_at: i64,
    /// When the sign-in it came from started; `None` once that sign-in ended.
    pub sign_in_started_at: Option<i64>,
}

/// One line of an app's activity timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub at: i64,
    /// `consent_granted`, `code_redeemed`, `token_refreshed`, `reuse_detected`, `revoked`.
    pub kind: String,
    /// How many events this line stands for (refreshes are counted per day).
    pub count: i64,
}

/// Everything the app detail page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDetail {
    pub app: AppSummary,
    pub sessions: Vec<AppSession>,
    pub activity: Vec<Activity>,
}

/// One of the user's signed-in browser sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInSession {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub started_at: i64,
    pub last_seen_at: i64,
    /// Live app sessions started from this sign-in.
    pub app_sessions: i64,
    /// The session of the browser looking at the page.
    pub current: bool,
}

/// `2026-11-23 15:04 UTC`: the same text on the server and in the browser.
pub fn format_time(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// `2026-11-23`.
pub fn format_day(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_the_same_everywhere() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_446_000), "2026-11-23 15:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_day(1_795_446_000 + 32_399), "2026-11-23");
        assert_eq!(format_day(1_795_446_000 + 32_400), "2026-11-24");
    }
}

/// Audit counts in one period (an hour or a day).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityBucket {
    /// Start of the period (unix seconds).
    pub start: i64,
    pub issued: i64,
    pub refreshed: i64,
    pub revoked: i64,
    pub reuse: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopClient {
    pub client_id: String,
    pub name: String,
    /// Live token families (app sessions).
    pub families: i64,
}

/// The admin home's charts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityStats {
    /// 24 hours, oldest first.
    pub hourly: Vec<ActivityBucket>,
    /// 30 days, oldest first.
    pub daily: Vec<ActivityBucket>,
    pub top_clients: Vec<TopClient>,
}

/// A client in the admin console's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClient {
    pub client_id: String,
    pub name: String,
    pub kind: String,
    pub grant_types: Vec<String>,
    pub refresh_enabled: bool,
    pub active_grants: i64,
    pub active_families: i64,
    pub last_activity: Option<i64>,
}

/// One policy field as the admin sees it: the default, this client's
/// override (if any) and the value in effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyField {
    /// Form field name: `refresh_enabled`, `access_ttl`, ...
    pub key: String,
    pub label: String,
    /// `true` for on/off fields, `false` for durations.
    pub switch: bool,
    pub default: String,
    pub overridden: Option<String>,
    pub effective: String,
    pub help: String,
}

/// The admin console's client page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminClientDetail {
    pub client: AdminClient,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub extra_scopes: Vec<String>,
    pub created_at: i64,
    pub policy: Vec<PolicyField>,
    /// Refresh tokens that stop working if refresh is switched off.
    pub live_refresh_tokens: i64,
}

/// A user in the admin console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: i64,
}

/// An app of a user, as the admin sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserApp {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
    pub last_used_at: Option<i64>,
    pub active_families: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserSession {
    pub device: String,
    pub ip: String,
    pub started_at: i64,
    pub last_seen_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserDetail {
    pub user: AdminUser,
    pub apps: Vec<AdminUserApp>,
    pub sessions: Vec<AdminUserSession>,
}

/// One audit event in the admin console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditLine {
    pub at: i64,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    pub client: String,
    pub ip: String,
    pub detail: String,
}
