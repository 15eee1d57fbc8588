//! Wire types: what server functions send to the browser. Never a secret,
//! never a password hash, never a token.

use serde::{Deserialize, Serialize};

/// The signed-in user, as the dashboard shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub username: String,
    pub is_admin: bool,
    /// Security events since they last looked (the top bar's badge).
    pub unseen_security: i64,
}

/// One entry of a person's security activity, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEvent {
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// The audit event kind (`reuse_detected`, `revoked`, `consent_granted`, ...).
    pub kind: String,
    /// What happened: "Notes got access to your account".
    pub title: String,
    /// What it means and what to do.
    pub advice: String,
    pub ip: Option<String>,
    /// Where to act: `(path, label)` — the app's page, My apps or Sessions.
    pub link: Option<(String, String)>,
    /// Newer than their last look at the list.
    pub unseen: bool,
}

/// How people recognise an app on the consent page, in My apps and on the
/// app page: its name and the RFC 7591 §2 metadata its admin registered
/// (each URI https, or http on a loopback host). `None`: not given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppIdentity {
    pub name: String,
    /// The app's logo, loaded by the browser from the registered URI with
    /// `referrerpolicy=no-referrer`; a letter tile stands in when absent or broken.
    pub logo_uri: Option<String>,
    /// The app's home page, and its host ("notes.example.com").
    pub client_uri: Option<String>,
    pub home_host: Option<String>,
    /// Its privacy policy and terms of service.
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    /// One short paragraph (at most 300 characters).
    pub description: Option<String>,
}

impl AppIdentity {
    /// The letter tile's letter: the name's first letter or digit, upper case ("?" if none).
    pub fn letter(&self) -> String {
        self.name
            .chars()
            .find(|c| c.is_alphanumeric())
            .map_or_else(|| "?".into(), |c| c.to_uppercase().collect())
    }
}

/// A scope and what it lets an app do, in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeInfo {
    pub scope: String,
    pub description: String,
    /// Marked and listed first (the scope catalogue says so).
    pub sensitive: bool,
}

/// One app that holds a live grant for the signed-in user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    pub grant_id: String,
    /// The app: name, logo, home page, policy, terms, description.
    pub app: AppIdentity,
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
    /// How many pages the list has (at least 1, also when it is empty).
    pub fn pages(&self) -> i64 {
        last_page(self.total, self.per_page)
    }
}

/// No list is read further than this page: with at most [`MAX_PER_PAGE`] rows
/// a page, the row offset stays far below `i64::MAX` (and any database's limit).
pub const MAX_PAGE: i64 = 1_000_000;
/// No page holds more rows than this.
pub const MAX_PER_PAGE: i64 = 200;

/// The last page of `total` rows in pages of `per_page` (at least 1).
/// Never overflows: `total + per_page - 1` is not computed.
pub fn last_page(total: i64, per_page: i64) -> i64 {
    let (total, per_page) = (total.max(0), per_page.max(1));
    (total / per_page + i64::from(total % per_page != 0)).max(1)
}

/// Which page of a list to read: a 1-based page number within
/// `1..=`[`MAX_PAGE`] and a page size within `1..=`[`MAX_PER_PAGE`]. Every
/// paged query takes one, so the row offset is computed in one place and
/// cannot overflow, whatever number a browser or client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    page: i64,
    per_page: i64,
    /// Dashboards show the last page for a page past the end; the admin API
    /// answers such a page empty (a script reading pages until an empty one stops).
    fit_to_last: bool,
}

/// A page number or size out of bounds: `field` (`page` or `per_page`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageOutOfRange {
    pub field: &'static str,
    pub message: String,
}

impl PageRequest {
    /// Exactly the page asked for, or an error naming the field when `page` is
    /// outside `1..=MAX_PAGE` or `per_page` outside `1..=MAX_PER_PAGE` (the
    /// admin API answers it with 422). A page past the end reads empty.
    pub fn new(page: i64, per_page: i64) -> Result<PageRequest, PageOutOfRange> {
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(PageOutOfRange {
                field: "page",
                message: format!("must be between 1 and {MAX_PAGE}"),
            });
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(PageOutOfRange {
                field: "per_page",
                message: format!("must be between 1 and {MAX_PER_PAGE}"),
            });
        }
        Ok(PageRequest {
            page,
            per_page,
            fit_to_last: false,
        })
    }

    /// The nearest page that exists, for the dashboard: any number is brought
    /// into bounds (below 1 → 1, above [`MAX_PAGE`] → `MAX_PAGE`), and once the
    /// total is known a page past the end becomes the last page ([`Self::within`]).
    pub fn clamped(page: i64, per_page: i64) -> PageRequest {
        PageRequest {
            page: page.clamp(1, MAX_PAGE),
            per_page: per_page.clamp(1, MAX_PER_PAGE),
            fit_to_last: true,
        }
    }

    /// This request for a list of `total` rows: a clamped request past the
    /// last page moves to the last page; a strict one stays as asked.
    pub fn within(self, total: i64) -> PageRequest {
        if self.fit_to_last {
            PageRequest {
                page: self.page.min(last_page(total, self.per_page)),
                ..self
            }
        } else {
            self
        }
    }

    /// The page number, from 1.
    pub fn page(&self) -> i64 {
        self.page
    }

    /// Rows per page.
    pub fn per_page(&self) -> i64 {
        self.per_page
    }

    /// Rows to skip: `(page - 1) * per_page`, at most about 2·10⁸ by the bounds.
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// One page of a list, as the browser receives it.
    pub fn of<T>(&self, items: Vec<T>, total: i64) -> Page<T> {
        Page {
            items,
            total,
            page: self.page,
            per_page: self.per_page,
        }
    }
}

/// Reads a `page` query value the lenient way the dashboard does: a number
/// is brought into `1..=`[`MAX_PAGE`] (a number too large even for an `i64`
/// counts as [`MAX_PAGE`]); anything else, or nothing, is page 1.
pub fn page_number(raw: Option<&str>) -> i64 {
    use std::num::IntErrorKind;
    match raw.map(str::trim).map(str::parse::<i64>) {
        Some(Ok(n)) => n.clamp(1, MAX_PAGE),
        Some(Err(e)) if *e.kind() == IntErrorKind::PosOverflow => MAX_PAGE,
        _ => 1,
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

/// A "Sign in with …" button: an upstream provider's id and display name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamButton {
    pub id: String,
    pub name: String,
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
    /// The upstream provider signed in with ("Corp SSO"); `None`: a password.
    #[serde(default)]
    pub via: Option<String>,
}

/// `2026-11-23 15:04 UTC`: the same text on the server and in the browser.
pub fn format_time(unix: i64) -> String {
    let t = UtcTime::of(unix);
    format!("{} {:02}:{:02} UTC", t.date(), t.hour, t.minute)
}

/// `2026-11-23`.
pub fn format_day(unix: i64) -> String {
    UtcTime::of(unix).date()
}

/// Unix seconds as a UTC date and time of day (proleptic Gregorian), for
/// every `i64`: the one calendar behind every time the app writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl UtcTime {
    /// The `time` crate does the calendar; it covers the years -9999 to 9999
    /// only. The Gregorian calendar repeats every 400 years (146,097 days),
    /// so the time is moved into the 400 years from 1970 and its year moved
    /// back by as many cycles: every `i64` has its date (as before `time`
    /// did the calendar), and no input panics.
    pub fn of(unix: i64) -> Self {
        const SECS_PER_400_YEARS: i64 = 146_097 * 86_400;
        let cycles = unix.div_euclid(SECS_PER_400_YEARS);
        let t = time::OffsetDateTime::from_unix_timestamp(unix.rem_euclid(SECS_PER_400_YEARS))
            .expect("the years 1970 to 2369 are within time's range");
        Self {
            year: i64::from(t.year()) + 400 * cycles,
            month: t.month().into(),
            day: t.day(),
            hour: t.hour(),
            minute: t.minute(),
            second: t.second(),
        }
    }

    /// `2026-11-23`: at least four digits of year (`-001` is the year before 0).
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
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

    #[test]
    fn every_time_formats_before_1970_and_beyond_year_9999() {
        for (unix, time, day) in [
            (-1, "1969-12-31 23:59 UTC", "1969-12-31"),
            (-62_135_596_801, "0000-12-31 23:59 UTC", "0000-12-31"),
            (-62_167_219_200, "0000-01-01 00:00 UTC", "0000-01-01"),
            (-62_167_219_201, "-001-12-31 23:59 UTC", "-001-12-31"),
            (-377_705_116_801, "-10000-12-31 23:59 UTC", "-10000-12-31"),
            (253_402_300_799, "9999-12-31 23:59 UTC", "9999-12-31"),
            (253_402_300_800, "10000-01-01 00:00 UTC", "10000-01-01"),
            (
                i64::MIN,
                "-292277022657-01-27 08:29 UTC",
                "-292277022657-01-27",
            ),
            (
                i64::MAX,
                "292277026596-12-04 15:30 UTC",
                "292277026596-12-04",
            ),
        ] {
            assert_eq!(format_time(unix), time, "{unix}");
            assert_eq!(format_day(unix), day, "{unix}");
        }
        let t = UtcTime::of(i64::MAX);
        assert_eq!((t.hour, t.minute, t.second), (15, 30, 7));
    }

    #[test]
    fn page_numbers_are_bounded_and_offsets_never_overflow() {
        // The input of issue 9: a page number that overflowed `(page - 1) * 50`.
        for raw in ["9223372036854775807", "99999999999999999999999", "1000001"] {
            assert_eq!(page_number(Some(raw)), MAX_PAGE, "{raw}");
        }
        for raw in ["0", "-1", "-9223372036854775808", "two", "", "1.5", "0x10"] {
            assert_eq!(page_number(Some(raw)), 1, "{raw}");
        }
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some(" 3 ")), 3);

        let huge = PageRequest::clamped(i64::MAX, i64::MAX);
        assert_eq!((huge.page(), huge.per_page()), (MAX_PAGE, MAX_PER_PAGE));
        assert_eq!(huge.offset(), (MAX_PAGE - 1) * MAX_PER_PAGE);
        let low = PageRequest::clamped(i64::MIN, i64::MIN);
        assert_eq!((low.page(), low.per_page(), low.offset()), (1, 1, 0));

        // The dashboard shows the last page for a page past the end.
        let past = PageRequest::clamped(i64::MAX, 50).within(120);
        assert_eq!((past.page(), past.offset()), (3, 100));
        assert_eq!(PageRequest::clamped(7, 50).within(0).page(), 1);
        assert_eq!(PageRequest::clamped(2, 50).within(120).page(), 2);

        // The admin API: strict bounds, and past the end stays past the end.
        assert_eq!(
            PageRequest::new(MAX_PAGE, 200).unwrap().offset(),
            199_999_800
        );
        assert_eq!(PageRequest::new(9, 50).unwrap().within(10).page(), 9);
        for (page, per_page, field) in [
            (0, 50, "page"),
            (-1, 50, "page"),
            (i64::MAX, 50, "page"),
            (MAX_PAGE + 1, 1, "page"),
            (1, 0, "per_page"),
            (1, 201, "per_page"),
            (1, i64::MIN, "per_page"),
        ] {
            assert_eq!(PageRequest::new(page, per_page).unwrap_err().field, field);
        }
    }

    #[test]
    fn page_counts_round_up_without_overflow() {
        assert_eq!(last_page(0, 50), 1);
        assert_eq!(last_page(50, 50), 1);
        assert_eq!(last_page(51, 50), 2);
        assert_eq!(last_page(120, 50), 3);
        assert_eq!(last_page(i64::MAX, 50), i64::MAX / 50 + 1);
        assert_eq!(last_page(-5, 0), 1);
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
    /// Set when the client is a resource server.
    pub resource_server: Option<AdminResourceServer>,
    /// Where logout tokens go (OpenID Connect Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// Logout tokens not delivered: pending and given up, newest first.
    pub undelivered: Vec<AdminDelivery>,
    /// Name, logo, home page, policy, terms and description, as people see them.
    pub identity: AppIdentity,
}

/// A client's resource-server registration, in the admin console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminResourceServer {
    /// The `aud` of tokens meant for it (RFC 8707 resource indicator).
    pub audience: String,
    /// The scopes it serves.
    pub scopes: Vec<String>,
}

/// A back-channel logout token not delivered (yet), on the client page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminDelivery {
    pub target: String,
    /// The user's id (`sub`).
    pub user_id: String,
    /// `true`: one sign-in ended (`sid`); `false`: all of the user's sessions at the app.
    pub one_sign_in: bool,
    pub created_at: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// `None` once given up.
    pub next_attempt_at: Option<i64>,
    pub gave_up_at: Option<i64>,
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
    /// Unix seconds until which sign-in throttling refuses this username.
    pub sign_in_locked_until: Option<i64>,
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

/// A catalogued scope, in the admin console.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminScope {
    pub scope: String,
    /// What it lets an app do, in plain words.
    pub description: String,
    pub sensitive: bool,
    /// Unix seconds.
    pub updated_at: i64,
    /// Names of the clients registered for it (it cannot be removed while any is).
    pub clients: Vec<String>,
}

/// An upstream identity provider people sign in through, in the admin
/// console. Never its client secret: that is write-only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUpstream {
    pub id: String,
    /// Shown on the sign-in button: "Sign in with {name}".
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    pub revoke_at_logout: bool,
    pub end_upstream_session: bool,
    /// Overrides of discovery's revocation endpoint and of RFC 7009's `token`
    /// parameter name; extra form parameters of each revocation, by name.
    pub revocation_endpoint: Option<String>,
    pub revocation_token_param: Option<String>,
    pub revocation_extra_params: Vec<(String, String)>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How a provider's sign-ins and token revocations are doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUpstreamHealth {
    pub linked_users: i64,
    pub live_sign_ins: i64,
    /// Revocations waiting: not tried yet, or retried after a failure.
    pub pending_revocations: i64,
    pub revoked_30d: i64,
    pub gave_up_30d: i64,
    /// The latest revocations that failed at least once, newest first.
    pub failures: Vec<AdminRevocationFailure>,
}

/// An upstream token revocation that failed at least once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRevocationFailure {
    /// When the sign-in ended (the revocation was asked for).
    pub requested_at: i64,
    pub attempts: i64,
    pub last_error: String,
    /// `None` once revoked or given up.
    pub next_attempt_at: Option<i64>,
    pub gave_up: bool,
    /// Delivered after all, on a later attempt.
    pub revoked: bool,
}

/// A provider's page: its settings and health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUpstreamDetail {
    pub provider: AdminUpstream,
    pub health: AdminUpstreamHealth,
}
