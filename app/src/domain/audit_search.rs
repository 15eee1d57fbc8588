//! Reading the audit log: filtering by user, client, kind and time, one page
//! at a time (newest first), and exporting as CSV or JSON.

use serde::Serialize;

use super::{
    error::{DomainError, DomainResult},
    names::fold_key,
    store::Db,
};
use crate::{
    model::{PageRequest, UtcTime},
    on_db,
};

/// Default page size (at most [`crate::model::MAX_PER_PAGE`]).
pub const DEFAULT_PER_PAGE: i64 = 50;
/// An export holds at most this many events (the newest).
pub const MAX_EXPORT: i64 = 100_000;

/// Which events to read; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// A user id or username: events the user did or that concern them.
    pub user: Option<String>,
    /// A client_id: events about the client or done by it.
    pub client: Option<String>,
    /// An event kind (`login`, `revoked`, ...).
    pub kind: Option<String>,
    /// From this time on (unix seconds, inclusive).
    pub from: Option<i64>,
    /// Up to this time (unix seconds, inclusive).
    pub to: Option<i64>,
}

/// One audit event as it is shown and exported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    pub id: String,
    pub at: i64,
    pub kind: String,
    pub actor_user_id: Option<String>,
    pub actor_client_id: Option<String>,
    pub subject_user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    kind: String,
    actor_user_id: Option<String>,
    actor_client_id: Option<String>,
    subject_user_id: Option<String>,
    client_id: Option<String>,
    ip: Option<String>,
    detail: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(row: AuditRow) -> Self {
        AuditRecord {
            detail: serde_json::from_str(&row.detail)
                .unwrap_or(serde_json::Value::String(row.detail)),
            id: row.id,
            at: row.at,
            kind: row.kind,
            actor_user_id: row.actor_user_id,
            actor_client_id: row.actor_client_id,
            subject_user_id: row.subject_user_id,
            client_id: row.client_id,
            ip: row.ip,
        }
    }
}

/// One page of events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

impl AuditFilter {
    /// The key a username in [`AuditFilter::user`] is compared by.
    fn user_key(&self) -> Option<String> {
        self.user.as_deref().map(fold_key)
    }

    /// Checks the filter's values (lengths, kind spelling, time order).
    pub fn validated(self) -> DomainResult<AuditFilter> {
        let text = |field: &'static str, v: Option<String>| -> DomainResult<Option<String>> {
            match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
                Some(s) if s.chars().count() > 200 => Err(DomainError::invalid(
                    field,
                    "must be at most 200 characters",
                )),
                other => Ok(other),
            }
        };
        let kind = text("kind", self.kind)?;
        if let Some(k) = &kind {
            if !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                return Err(DomainError::invalid(
                    "kind",
                    format!("{k:?} is not an event kind (e.g. login, revoked, policy_changed)"),
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(DomainError::invalid("to", "must not be before from"));
            }
        }
        Ok(AuditFilter {
            user: text("user", self.user)?,
            client: text("client", self.client)?,
            kind,
            from: self.from,
            to: self.to,
        })
    }
}

/// `$1` user (an id), `$2` client, `$3` kind, `$4` from, `$5` to, `$6` the
/// user filter's [`fold_key`] (a username in any letter case).
const WHERE_SQL: &str = "WHERE ($1 IS NULL OR actor_user_id = $1 OR subject_user_id = $1 \
        OR actor_user_id IN (SELECT id FROM users WHERE username_key = $6) \
        OR subject_user_id IN (SELECT id FROM users WHERE username_key = $6)) \
    AND ($2 IS NULL OR client_id = $2 OR actor_client_id = $2) \
    AND ($3 IS NULL OR kind = $3) \
    AND ($4 IS NULL OR at >= $4) \
    AND ($5 IS NULL OR at <= $5)";

const COLUMNS: &str =
    "id, at, kind, actor_user_id, actor_client_id, subject_user_id, client_id, ip, detail";

/// Events matching `filter`, newest first, `limit` from `offset`.
async fn fetch(
    db: &Db,
    filter: &AuditFilter,
    limit: i64,
    offset: i64,
) -> DomainResult<Vec<AuditRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events {WHERE_SQL} ORDER BY at DESC, id DESC LIMIT $7 OFFSET $8"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, AuditRow>(&sql)
        .bind(&filter.user)
        .bind(&filter.client)
        .bind(&filter.kind)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.user_key())
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(AuditRecord::from).collect())
}

/// One page of the events matching `filter`, newest first. A clamped
/// request past the end reads the last page; a strict one reads empty.
pub async fn search(db: &Db, filter: &AuditFilter, page: PageRequest) -> DomainResult<AuditPage> {
    let count_sql = format!("SELECT COUNT(*) FROM audit_events {WHERE_SQL}");
    let total = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(&count_sql)
        .bind(&filter.user)
        .bind(&filter.client)
        .bind(&filter.kind)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.user_key())
        .fetch_one(pool)
        .await)?;
    let page = page.within(total);
    let events = fetch(db, filter, page.per_page(), page.offset()).await?;
    Ok(AuditPage {
        events,
        page: page.page(),
        per_page: page.per_page(),
        total,
    })
}

/// Every event matching `filter` (the newest [`MAX_EXPORT`]), newest first.
pub async fn export(db: &Db, filter: &AuditFilter) -> DomainResult<Vec<AuditRecord>> {
    fetch(db, filter, MAX_EXPORT, 0).await
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str =
    "id,at,time,kind,actor_user_id,actor_client_id,subject_user_id,client_id,ip,detail";

/// Events as CSV (RFC 4180): a header row, CRLF line ends, a field quoted
/// when it holds a comma, quote, CR or LF, quotes doubled. `time` is the
/// event time in RFC 3339 UTC; `detail` is the event's JSON.
pub fn to_csv(events: &[AuditRecord]) -> String {
    let mut out = String::with_capacity(128 * (events.len() + 1));
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for e in events {
        let fields = [
            e.id.clone(),
            e.at.to_string(),
            format_rfc3339(e.at),
            e.kind.clone(),
            e.actor_user_id.clone().unwrap_or_default(),
            e.actor_client_id.clone().unwrap_or_default(),
            e.subject_user_id.clone().unwrap_or_default(),
            e.client_id.clone().unwrap_or_default(),
            e.ip.clone().unwrap_or_default(),
            e.detail.to_string(),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&csv_field(field));
        }
        out.push_str("\r\n");
    }
    out
}

/// One CSV field, quoted when it needs to be.
pub fn csv_field(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\"")).into()
    } else {
        value.into()
    }
}

/// Unix seconds as RFC 3339 UTC (`2026-11-23T10:00:00Z`).
pub fn format_rfc3339(secs: i64) -> String {
    let t = UtcTime::of(secs);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        t.date(),
        t.hour,
        t.minute,
        t.second
    )
}

/// The latest time a filter may name: 9999-12-31T23:59:59Z, the last second
/// a four-digit year can write (so every accepted time formats back).
pub const MAX_TIME: i64 = 253_402_300_799;

/// Reads a time filter: unix seconds (`0..=`[`MAX_TIME`]), a UTC date
/// `YYYY-MM-DD` (its first second, or with `end_of_day` its last), or
/// `YYYY-MM-DDTHH:MM:SSZ`. Anything else, or a later time, is
/// [`DomainError::Invalid`] naming `field`.
pub fn parse_time(field: &'static str, raw: &str, end_of_day: bool) -> DomainResult<i64> {
    let raw = raw.trim();
    let bad = || {
        DomainError::invalid(
            field,
            format!("{raw:?} is not a time (use unix seconds, 2026-11-23 or 2026-11-23T10:00:00Z)"),
        )
    };
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: a parse failure is a number beyond i64, later than MAX_TIME too.
        return match raw.parse::<i64>() {
            Ok(secs) if secs <= MAX_TIME => Ok(secs),
            _ => Err(DomainError::invalid(
                field,
                format!("{raw:?} is too late (at most {MAX_TIME}, 9999-12-31T23:59:59Z)"),
            )),
        };
    }
    let num = |s: &str, len: usize| -> Option<i64> {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time) = match raw.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (raw, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (
        parts.next().and_then(|s| num(s, 4)),
        parts.next().and_then(|s| num(s, 2)),
        parts.next().and_then(|s| num(s, 2)),
        parts.next(),
    ) else {
        return Err(bad());
    };
    // The date must exist (29 February in leap years only). `num` read two
    // digits, four for the year: the casts lose nothing.
    let date = time::Month::try_from(m as u8)
        .and_then(|month| time::Date::from_calendar_date(y as i32, month, d as u8))
        .map_err(|_| bad())?;
    let day = date.midnight().assume_utc().unix_timestamp();
    let Some(time) = time else {
        return Ok(if end_of_day { day + 86_399 } else { day });
    };
    let time = time.strip_suffix(['Z', 'z']).ok_or_else(bad)?;
    let mut parts = time.split(':');
    let (Some(h), Some(min), Some(s), None) = (
        parts.next().and_then(|s| num(s, 2)),
        parts.next().and_then(|s| num(s, 2)),
        parts.next().and_then(|s| num(s, 2)),
        parts.next(),
    ) else {
        return Err(bad());
    };
    if h > 23 || min > 59 || s > 59 {
        return Err(bad());
    }
    Ok(day + h * 3600 + min * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_format() {
        assert_eq!(parse_time("from", "0", false).unwrap(), 0);
        assert_eq!(parse_time("from", "1970-01-02", false).unwrap(), 86_400);
        assert_eq!(
            parse_time("to", "1970-01-02", true).unwrap(),
            2 * 86_400 - 1
        );
        let t = parse_time("from", "2026-11-23T10:20:30Z", false).unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-23T10:20:30Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            parse_time("from", "2000-02-29", false).unwrap(),
            951_782_400
        );
        for bad in [
            "",
            "yesterday",
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "2026-11-23T25:00:00Z",
            "2026-11-23T10:00:00",
            "-5",
            "+5",
            "1e9",
        ] {
            let err = parse_time("from", bad, false).unwrap_err();
            assert!(err.to_string().starts_with("from: "), "{bad}: {err}");
        }
        // Bounded: the last second of year 9999, and nothing later (also not
        // numbers beyond i64).
        assert_eq!(parse_time("to", "9999-12-31", true).unwrap(), MAX_TIME);
        assert_eq!(
            parse_time("to", &MAX_TIME.to_string(), true).unwrap(),
            MAX_TIME
        );
        assert_eq!(format_rfc3339(MAX_TIME), "9999-12-31T23:59:59Z");
        // Before 1970, down to the year 0, and any stored time at all.
        assert_eq!(
            parse_time("from", "0000-01-01", false).unwrap(),
            -62_167_219_200
        );
        assert_eq!(parse_time("to", "1969-12-31T23:59:59Z", false).unwrap(), -1);
        assert_eq!(
            parse_time("from", "2024-02-29", false).unwrap(),
            1_709_164_800
        );
        assert!(parse_time("from", "1900-02-29", false).is_err());
        for (secs, text) in [
            (-1, "1969-12-31T23:59:59Z"),
            (-62_167_219_200, "0000-01-01T00:00:00Z"),
            (-62_167_219_201, "-001-12-31T23:59:59Z"),
            (MAX_TIME + 1, "10000-01-01T00:00:00Z"),
            (i64::MIN, "-292277022657-01-27T08:29:52Z"),
            (i64::MAX, "292277026596-12-04T15:30:07Z"),
        ] {
            assert_eq!(format_rfc3339(secs), text, "{secs}");
        }
        for late in [
            "253402300800",
            "9223372036854775807",
            "99999999999999999999999",
        ] {
            let err = parse_time("to", late, true).unwrap_err().to_string();
            assert!(
                err.starts_with("to: ") && err.contains("too late"),
                "{late}: {err}"
            );
        }
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        let csv = to_csv(&[AuditRecord {
            id: "1".into(),
            at: 0,
            kind: "login".into(),
            actor_user_id: Some("u".into()),
            actor_client_id: None,
            subject_user_id: Some("u".into()),
            client_id: None,
            ip: None,
            detail: serde_json::json!({ "a": "x,y" }),
        }]);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some(CSV_HEADER));
        assert_eq!(
            lines.next(),
            Some("1,0,1970-01-01T00:00:00Z,login,u,,u,,,\"{\"\"a\"\":\"\"x,y\"\"}\"")
        );
    }
}
