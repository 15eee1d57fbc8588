//! Token policy: the server-wide defaults and each client's overrides. The
//! effective value of a field is the client's override, else the default; it
//! is read at every use (token issuance, refresh), so a change applies to
//! tokens already out there.

use serde::{Deserialize, Serialize};

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    error::{DomainError, DomainResult},
    store::{now, Db},
};
use crate::on_db;

/// Access tokens live between one minute and one day.
pub const ACCESS_TTL_RANGE: (i64, i64) = (60, 24 * 3600);
/// Refresh lifetimes: one minute to one year.
pub const REFRESH_TTL_RANGE: (i64, i64) = (60, 365 * 24 * 3600);
/// Reuse grace: none to five minutes (RFC 9700 §4.14.2 wants it short).
pub const REUSE_GRACE_RANGE: (i64, i64) = (0, 300);

/// Every policy field with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Policy {
    pub refresh_enabled: bool,
    pub access_ttl_secs: i64,
    pub refresh_idle_ttl_secs: i64,
    pub refresh_absolute_ttl_secs: i64,
    pub rotate_refresh: bool,
    pub reuse_grace_secs: i64,
    pub revoke_on_logout: bool,
}

/// A change to some fields. For a client, `Some(None)` means "inherit the default again".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyChange {
    pub refresh_enabled: Option<Option<bool>>,
    pub access_ttl_secs: Option<Option<i64>>,
    pub refresh_idle_ttl_secs: Option<Option<i64>>,
    pub refresh_absolute_ttl_secs: Option<Option<i64>>,
    pub rotate_refresh: Option<Option<bool>>,
    pub reuse_grace_secs: Option<Option<i64>>,
    pub revoke_on_logout: Option<Option<bool>>,
}

/// A client's overrides (`None` = inherits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PolicyOverrides {
    pub refresh_enabled: Option<bool>,
    pub access_ttl_secs: Option<i64>,
    pub refresh_idle_ttl_secs: Option<i64>,
    pub refresh_absolute_ttl_secs: Option<i64>,
    pub rotate_refresh: Option<bool>,
    pub reuse_grace_secs: Option<i64>,
    pub revoke_on_logout: Option<bool>,
}

impl PolicyChange {
    /// Whether some field is set back to "inherit the default".
    pub fn sets_inherit(&self) -> bool {
        [
            self.refresh_enabled.is_some_and(|v| v.is_none()),
            self.access_ttl_secs.is_some_and(|v| v.is_none()),
            self.refresh_idle_ttl_secs.is_some_and(|v| v.is_none()),
            self.refresh_absolute_ttl_secs.is_some_and(|v| v.is_none()),
            self.rotate_refresh.is_some_and(|v| v.is_none()),
            self.reuse_grace_secs.is_some_and(|v| v.is_none()),
            self.revoke_on_logout.is_some_and(|v| v.is_none()),
        ]
        .contains(&true)
    }
}

impl PolicyOverrides {
    /// The effective policy: each override, else the default.
    pub fn over(&self, defaults: &Policy) -> Policy {
        Policy {
            refresh_enabled: self.refresh_enabled.unwrap_or(defaults.refresh_enabled),
            access_ttl_secs: self.access_ttl_secs.unwrap_or(defaults.access_ttl_secs),
            refresh_idle_ttl_secs: self
                .refresh_idle_ttl_secs
                .unwrap_or(defaults.refresh_idle_ttl_secs),
            refresh_absolute_ttl_secs: self
                .refresh_absolute_ttl_secs
                .unwrap_or(defaults.refresh_absolute_ttl_secs),
            rotate_refresh: self.rotate_refresh.unwrap_or(defaults.rotate_refresh),
            reuse_grace_secs: self.reuse_grace_secs.unwrap_or(defaults.reuse_grace_secs),
            revoke_on_logout: self.revoke_on_logout.unwrap_or(defaults.revoke_on_logout),
        }
    }

    fn apply(mut self, change: &PolicyChange) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = change.$f { self.$f = v; } )* };
        }
        take!(
            refresh_enabled,
            access_ttl_secs,
            refresh_idle_ttl_secs,
            refresh_absolute_ttl_secs,
            rotate_refresh,
            reuse_grace_secs,
            revoke_on_logout
        );
        self
    }
}

/// What a policy field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// `on` or `off`.
    Switch,
    /// Seconds within the range (inclusive; checked by [`validate`]),
    /// entered as `90s`, `15m`, `1h`, `30d` ([`parse_duration`]).
    Duration((i64, i64)),
}

/// A field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    Switch(bool),
    Seconds(i64),
}

impl Value {
    /// As people enter it: `on`, `off`, `15m`, `1h`.
    pub fn shown(self) -> String {
        match self {
            Value::Switch(true) => "on".into(),
            Value::Switch(false) => "off".into(),
            Value::Seconds(secs) => format_duration(secs),
        }
    }

    fn switch(self) -> bool {
        matches!(self, Value::Switch(true))
    }

    fn seconds(self) -> i64 {
        match self {
            Value::Seconds(secs) => secs,
            Value::Switch(_) => 0,
        }
    }
}

/// One policy field. Everything that names, shows or parses a field — the
/// console's form, the admin API's errors, the CLI's flags and printer —
/// reads this table ([`FIELDS`]); the typed structs ([`Policy`],
/// [`PolicyOverrides`], [`PolicyChange`]) are what the rest of the code uses.
#[derive(Debug)]
pub struct Field {
    /// Its name in forms, the admin API and error messages: `access_ttl`.
    pub key: &'static str,
    /// The CLI's flag, without `--`: `access-ttl`.
    pub flag: &'static str,
    pub kind: FieldKind,
    /// The console's label.
    pub label: &'static str,
    /// The CLI's label (`latchkey policy show`).
    pub short_label: &'static str,
    /// One sentence under the console's input.
    pub help: &'static str,
    /// Its value in a policy.
    pub of: fn(&Policy) -> Value,
    /// A client's override of it, if any.
    pub overridden: fn(&PolicyOverrides) -> Option<Value>,
    /// Puts a value (`None`: inherit the default) into a change.
    pub set: fn(&mut PolicyChange, Option<Value>),
}

/// The seven policy fields, in the order they are shown.
pub const FIELDS: [Field; 7] = [
    Field {
        key: "refresh_enabled",
        flag: "refresh",
        kind: FieldKind::Switch,
        label: "Refresh tokens",
        short_label: "refresh grant",
        help: "Off: no refresh token is issued, and those out there fail with unauthorized_client at their next use.",
        of: |p| Value::Switch(p.refresh_enabled),
        overridden: |o| o.refresh_enabled.map(Value::Switch),
        set: |c, v| c.refresh_enabled = Some(v.map(Value::switch)),
    },
    Field {
        key: "access_ttl",
        flag: "access-ttl",
        kind: FieldKind::Duration(ACCESS_TTL_RANGE),
        label: "Access token lifetime",
        short_label: "access-token TTL",
        help: "1m to 24h, e.g. 5m, 1h.",
        of: |p| Value::Seconds(p.access_ttl_secs),
        overridden: |o| o.access_ttl_secs.map(Value::Seconds),
        set: |c, v| c.access_ttl_secs = Some(v.map(Value::seconds)),
    },
    Field {
        key: "refresh_idle_ttl",
        flag: "refresh-idle-ttl",
        kind: FieldKind::Duration(REFRESH_TTL_RANGE),
        label: "Refresh idle lifetime",
        short_label: "refresh idle TTL",
        help: "A refresh token unused this long stops working.",
        of: |p| Value::Seconds(p.refresh_idle_ttl_secs),
        overridden: |o| o.refresh_idle_ttl_secs.map(Value::Seconds),
        set: |c, v| c.refresh_idle_ttl_secs = Some(v.map(Value::seconds)),
    },
    Field {
        key: "refresh_absolute_ttl",
        flag: "refresh-absolute-ttl",
        kind: FieldKind::Duration(REFRESH_TTL_RANGE),
        label: "Refresh absolute lifetime",
        short_label: "refresh absolute TTL",
        help: "From sign-in, whatever the use; at least the idle lifetime.",
        of: |p| Value::Seconds(p.refresh_absolute_ttl_secs),
        overridden: |o| o.refresh_absolute_ttl_secs.map(Value::Seconds),
        set: |c, v| c.refresh_absolute_ttl_secs = Some(v.map(Value::seconds)),
    },
    Field {
        key: "rotate_refresh",
        flag: "rotate",
        kind: FieldKind::Switch,
        label: "Rotate refresh tokens",
        short_label: "rotation",
        help: "On: each use returns a new refresh token; a used one presented again ends the session.",
        of: |p| Value::Switch(p.rotate_refresh),
        overridden: |o| o.rotate_refresh.map(Value::Switch),
        set: |c, v| c.rotate_refresh = Some(v.map(Value::switch)),
    },
    Field {
        key: "reuse_grace",
        flag: "reuse-grace",
        kind: FieldKind::Duration(REUSE_GRACE_RANGE),
        label: "Reuse grace",
        short_label: "reuse grace",
        help: "0s to 5m: how long a rotated token may still be retried.",
        of: |p| Value::Seconds(p.reuse_grace_secs),
        overridden: |o| o.reuse_grace_secs.map(Value::Seconds),
        set: |c, v| c.reuse_grace_secs = Some(v.map(Value::seconds)),
    },
    Field {
        key: "revoke_on_logout",
        flag: "revoke-on-logout",
        kind: FieldKind::Switch,
        label: "Revoke on logout",
        short_label: "revoke on logout",
        help: "On: signing out ends this app's sessions started from that sign-in.",
        of: |p| Value::Switch(p.revoke_on_logout),
        overridden: |o| o.revoke_on_logout.map(Value::Switch),
        set: |c, v| c.revoke_on_logout = Some(v.map(Value::switch)),
    },
];

/// A field's value as given: typed into a form or a flag, or sent as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Given<'a> {
    /// Back to the server default (a form's `inherit`, the API's `null`).
    Inherit,
    /// `on`, `off`, or a duration (`15m`, or plain seconds).
    Text(&'a str),
    /// A JSON boolean.
    Switch(bool),
    /// A JSON number of seconds.
    Seconds(i64),
}

/// Parses a change to a client's overrides (`for_defaults` false) or to the
/// server-wide defaults: the one parser of the console's forms, the admin
/// API and the CLI. Each `(key, given)` names a field of [`FIELDS`] by its
/// `key`.
///
/// # Errors
/// [`DomainError::Invalid`] naming the field: an unknown key; a switch that
/// is not `on`/`off` or a boolean; a duration [`parse_duration`] refuses, or
/// negative seconds; `Inherit` for the defaults. Ranges are checked later,
/// on the resulting policy ([`validate`]).
pub fn parse_change<'a>(
    given: impl IntoIterator<Item = (&'a str, Given<'a>)>,
    for_defaults: bool,
) -> DomainResult<PolicyChange> {
    let mut change = PolicyChange::default();
    for (key, given) in given {
        let Some(field) = FIELDS.iter().find(|f| f.key == key) else {
            return Err(DomainError::invalid(
                "policy",
                format!("{key:?} is not a policy field"),
            ));
        };
        let value = match (field.kind, given) {
            (_, Given::Inherit) if for_defaults => {
                return Err(DomainError::invalid(
                    field.key,
                    "the defaults cannot inherit; give a value",
                ))
            }
            (_, Given::Inherit) => None,
            (FieldKind::Switch, Given::Switch(on)) => Some(Value::Switch(on)),
            (FieldKind::Switch, Given::Text("on")) => Some(Value::Switch(true)),
            (FieldKind::Switch, Given::Text("off")) => Some(Value::Switch(false)),
            (FieldKind::Switch, other) => {
                return Err(DomainError::invalid(
                    field.key,
                    format!("{} is not on or off", shown_given(other)),
                ))
            }
            (FieldKind::Duration(_), Given::Seconds(secs)) if secs < 0 => {
                return Err(DomainError::invalid(field.key, "must not be negative"))
            }
            (FieldKind::Duration(_), Given::Seconds(secs)) => Some(Value::Seconds(secs)),
            (FieldKind::Duration(_), Given::Text(text)) => {
                Some(Value::Seconds(parse_duration(field.key, text)?))
            }
            (FieldKind::Duration(_), Given::Switch(on)) => {
                return Err(DomainError::invalid(
                    field.key,
                    format!("{on} is not a duration (use e.g. 90s, 15m, 1h, 30d)"),
                ))
            }
        };
        (field.set)(&mut change, value);
    }
    Ok(change)
}

/// A given value in an error message: text quoted, JSON as JSON.
fn shown_given(given: Given<'_>) -> String {
    match given {
        Given::Inherit => "inherit".into(),
        Given::Text(text) => format!("{text:?}"),
        Given::Switch(on) => on.to_string(),
        Given::Seconds(secs) => secs.to_string(),
    }
}

/// The longest duration [`parse_duration`] reads: 100 years of seconds, above
/// every policy range (those are checked by [`validate`]) and far from any
/// overflow in the arithmetic done with a duration (`now + ttl`).
pub const MAX_DURATION_SECS: i64 = 36_500 * 86_400;

/// Parses `90s`, `15m`, `1h`, `30d` (or plain seconds: ASCII digits, then at
/// most one unit) into seconds, `0..=`[`MAX_DURATION_SECS`].
///
/// # Errors
/// [`DomainError::Invalid`] naming `field`: "is not a duration" for any other
/// text (a sign, a fraction, an unknown unit), "is too long" above the
/// bound — also for numbers too large for an `i64` (`99999999999999999999d`).
pub fn parse_duration(field: &'static str, raw: &str) -> DomainResult<i64> {
    let raw = raw.trim();
    duration_secs(raw).map_err(|e| {
        let why = match e {
            BadDuration::NotADuration => "not a duration (use e.g. 90s, 15m, 1h, 30d)",
            BadDuration::TooLong => TOO_LONG,
        };
        DomainError::invalid(field, format!("{raw:?} is {why}"))
    })
}

/// What [`BadDuration::TooLong`] tells people (the bound is [`MAX_DURATION_SECS`]).
pub const TOO_LONG: &str = "too long (at most 36500d)";

/// Why a text is not a duration [`parse_duration`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadDuration {
    /// Not digits and one unit (`s`, `m`, `h`, `d`).
    NotADuration,
    /// Above [`MAX_DURATION_SECS`].
    TooLong,
}

/// [`parse_duration`] without a field name, for callers with their own
/// messages (the CLI flags).
pub fn duration_secs(raw: &str) -> Result<i64, BadDuration> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(BadDuration::NotADuration),
    };
    if digits.is_empty() {
        return Err(BadDuration::NotADuration);
    }
    // Only ASCII digits are left: a parse failure is a number beyond i64.
    let n: i64 = digits.parse().map_err(|_| BadDuration::TooLong)?;
    n.checked_mul(factor)
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .ok_or(BadDuration::TooLong)
}

/// Shows seconds the way they are entered: `15m`, `1h`, `30d`, `45s`.
pub fn format_duration(secs: i64) -> String {
    match secs {
        s if s > 0 && s % 86400 == 0 => format!("{}d", s / 86400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Checks the ranges and that the absolute refresh lifetime is not shorter than the idle one.
pub fn validate(policy: &Policy) -> DomainResult<()> {
    let in_range = |field: &'static str, v: i64, (lo, hi): (i64, i64)| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(DomainError::invalid(
                field,
                format!(
                    "{} is outside {}–{}",
                    format_duration(v),
                    format_duration(lo),
                    format_duration(hi)
                ),
            ))
        }
    };
    in_range("access_ttl", policy.access_ttl_secs, ACCESS_TTL_RANGE)?;
    in_range(
        "refresh_idle_ttl",
        policy.refresh_idle_ttl_secs,
        REFRESH_TTL_RANGE,
    )?;
    in_range(
        "refresh_absolute_ttl",
        policy.refresh_absolute_ttl_secs,
        REFRESH_TTL_RANGE,
    )?;
    in_range("reuse_grace", policy.reuse_grace_secs, REUSE_GRACE_RANGE)?;
    if policy.refresh_absolute_ttl_secs < policy.refresh_idle_ttl_secs {
        return Err(DomainError::invalid(
            "refresh_absolute_ttl",
            format!(
                "{} is shorter than the idle lifetime {}",
                format_duration(policy.refresh_absolute_ttl_secs),
                format_duration(policy.refresh_idle_ttl_secs)
            ),
        ));
    }
    Ok(())
}

const DEFAULT_COLUMNS: &str = "refresh_enabled, access_ttl_secs, refresh_idle_ttl_secs, \
    refresh_absolute_ttl_secs, rotate_refresh, reuse_grace_secs, revoke_on_logout";

/// The server-wide defaults.
pub async fn defaults(db: &Db) -> DomainResult<Policy> {
    let sql = format!("SELECT {DEFAULT_COLUMNS} FROM policy_default WHERE id = 1");
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Policy>(&sql)
        .fetch_one(pool)
        .await)?)
}

/// A client's overrides; `NotFound` for an unknown or deleted client.
pub async fn overrides(db: &Db, client_id: &str) -> DomainResult<PolicyOverrides> {
    let sql = format!("SELECT {DEFAULT_COLUMNS} FROM clients WHERE id = $1 AND deleted_at IS NULL");
    on_db!(db, |pool| sqlx::query_as::<_, PolicyOverrides>(&sql)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?
    .ok_or(DomainError::NotFound)
}

/// The columns of [`Policy`] from the view `client_policies p` (migration
/// `20261205000000_client_policies.sql`: each field the client's override,
/// else the default — the rule's one place in SQL). A string literal (for
/// `concat!`).
macro_rules! effective_policy_columns {
    () => {
        "p.refresh_enabled, p.access_ttl_secs, p.refresh_idle_ttl_secs, \
         p.refresh_absolute_ttl_secs, p.rotate_refresh, p.reuse_grace_secs, p.revoke_on_logout"
    };
}
pub(crate) use effective_policy_columns;

/// The effective policy of a client, in one query.
pub async fn effective(db: &Db, client_id: &str) -> DomainResult<Policy> {
    let sql = concat!(
        "SELECT ",
        effective_policy_columns!(),
        " FROM client_policies p JOIN clients c ON c.id = p.client_id \
         WHERE c.id = $1 AND c.deleted_at IS NULL"
    );
    on_db!(db, |pool| sqlx::query_as::<_, Policy>(sql)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?
    .ok_or(DomainError::NotFound)
}

fn change_is_empty(change: &PolicyChange) -> DomainResult<()> {
    if *change == PolicyChange::default() {
        return Err(DomainError::invalid("policy", "nothing to change"));
    }
    Ok(())
}

/// Changes the server-wide defaults ("inherit" makes no sense there) and audits before/after.
pub async fn set_defaults(
    db: &Db,
    change: &PolicyChange,
    actor_user_id: Option<&str>,
) -> DomainResult<Policy> {
    set_defaults_by(db, change, &actor_of(actor_user_id)).await
}

fn actor_of(user_id: Option<&str>) -> Actor {
    user_id.map(Actor::user).unwrap_or_default()
}

/// [`set_defaults`] done by any actor (a user, or a client through the admin API).
pub async fn set_defaults_by(
    db: &Db,
    change: &PolicyChange,
    actor: &Actor,
) -> DomainResult<Policy> {
    change_is_empty(change)?;
    if change.sets_inherit() {
        return Err(DomainError::invalid(
            "policy",
            "the defaults cannot inherit; give a value",
        ));
    }
    let before = defaults(db).await?;
    let after = before.into_overrides().apply(change).over(&before);
    validate(&after)?;
    let event = AuditEvent::new(AuditKind::PolicyChanged)
        .by(actor)
        .detail(serde_json::json!({ "scope": "defaults", "before": before, "after": after }));
    store(
        db,
        &after.into_overrides(),
        None,
        before.access_ttl_secs,
        &event,
    )
    .await?;
    Ok(after)
}

impl Policy {
    fn into_overrides(self) -> PolicyOverrides {
        PolicyOverrides {
            refresh_enabled: Some(self.refresh_enabled),
            access_ttl_secs: Some(self.access_ttl_secs),
            refresh_idle_ttl_secs: Some(self.refresh_idle_ttl_secs),
            refresh_absolute_ttl_secs: Some(self.refresh_absolute_ttl_secs),
            rotate_refresh: Some(self.rotate_refresh),
            reuse_grace_secs: Some(self.reuse_grace_secs),
            revoke_on_logout: Some(self.revoke_on_logout),
        }
    }
}

/// Changes a client's overrides; the resulting effective policy must be valid.
/// Audits the overrides and the effective policy before and after.
pub async fn set_client(
    db: &Db,
    client_id: &str,
    change: &PolicyChange,
    actor_user_id: Option<&str>,
) -> DomainResult<(PolicyOverrides, Policy)> {
    set_client_by(db, client_id, change, &actor_of(actor_user_id)).await
}

/// [`set_client`] done by any actor (a user, or a client through the admin API).
pub async fn set_client_by(
    db: &Db,
    client_id: &str,
    change: &PolicyChange,
    actor: &Actor,
) -> DomainResult<(PolicyOverrides, Policy)> {
    change_is_empty(change)?;
    let before = overrides(db, client_id).await?;
    let defaults = defaults(db).await?;
    let after = before.apply(change);
    let effective = after.over(&defaults);
    validate(&effective)?;
    let event = AuditEvent::new(AuditKind::PolicyChanged)
        .client(client_id)
        .by(actor)
        .detail(serde_json::json!({
            "scope": "client",
            "before": before,
            "after": after,
            "effective_before": before.over(&defaults),
            "effective_after": effective,
        }));
    let ttl_before = before.over(&defaults).access_ttl_secs;
    store(db, &after, Some(client_id), ttl_before, &event).await?;
    Ok((after, effective))
}

/// Writes the seven policy fields — the defaults row (`client_id` None) or a
/// client's overrides — together with the audit event, in one transaction.
/// `ttl_before` (seconds) is the access-token lifetime in effect until now:
/// the row's `access_exp_horizon` is raised to now + it, so revocations keep
/// covering tokens issued under it (revocation.rs computes `until` from it).
async fn store(
    db: &Db,
    values: &PolicyOverrides,
    client_id: Option<&str>,
    ttl_before: i64,
    event: &AuditEvent,
) -> DomainResult<()> {
    let (table, target) = match client_id {
        None => ("policy_default", "id = 1"),
        Some(_) => ("clients", "id = $10 AND deleted_at IS NULL"),
    };
    let sql = format!(
        "UPDATE {table} SET refresh_enabled = $1, access_ttl_secs = $2, refresh_idle_ttl_secs = $3, \
         refresh_absolute_ttl_secs = $4, rotate_refresh = $5, reuse_grace_secs = $6, revoke_on_logout = $7, \
         updated_at = $8, \
         access_exp_horizon = CASE WHEN access_exp_horizon > $9 THEN access_exp_horizon ELSE $9 END \
         WHERE {target}"
    );
    let at = now();
    on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        let mut query = sqlx::query(&sql)
            .bind(values.refresh_enabled)
            .bind(values.access_ttl_secs)
            .bind(values.refresh_idle_ttl_secs)
            .bind(values.refresh_absolute_ttl_secs)
            .bind(values.rotate_refresh)
            .bind(values.reuse_grace_secs)
            .bind(values.revoke_on_logout)
            .bind(at)
            .bind(at + ttl_before);
        if let Some(id) = client_id {
            query = query.bind(id);
        }
        query.execute(&mut *tx).await?;
        crate::bind_audit!(event).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    // What instances remember of policies (`tokens::IssuanceFacts`) is read
    // again here and, before this is acknowledged, on every other instance.
    super::clients::registration_changed_everywhere(db).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Policy {
        Policy {
            refresh_enabled: true,
            access_ttl_secs: 600,
            refresh_idle_ttl_secs: 86400,
            refresh_absolute_ttl_secs: 30 * 86400,
            rotate_refresh: true,
            reuse_grace_secs: 0,
            revoke_on_logout: true,
        }
    }

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("x", "15m").unwrap(), 900);
        assert_eq!(parse_duration("x", "1h").unwrap(), 3600);
        assert_eq!(parse_duration("x", "30d").unwrap(), 2_592_000);
        assert_eq!(parse_duration("x", "45").unwrap(), 45);
        for bad in [
            "", "m", "5w", "-5m", "+5m", "1.5h", "1h30m", "5 m", "٣m", "0x10",
        ] {
            let err = parse_duration("x", bad).unwrap_err().to_string();
            assert!(
                err.starts_with("x: ") && err.contains("is not a duration"),
                "{bad}: {err}"
            );
        }
        // The input of issue 9 (17 digits fit an i64; times 86 400 they do
        // not), numbers beyond i64, and values past the bound: "too long".
        for long in [
            "99999999999999999d",
            "99999999999999999999d",
            "9223372036854775807",
            "9223372036854775807s",
            "36501d",
            "876001h",
        ] {
            let err = parse_duration("access_ttl", long).unwrap_err().to_string();
            assert!(
                err.starts_with("access_ttl: ") && err.contains("is too long (at most 36500d)"),
                "{long}: {err}"
            );
        }
        assert_eq!(parse_duration("x", "36500d").unwrap(), MAX_DURATION_SECS);
        assert_eq!(parse_duration("x", " 0 ").unwrap(), 0);
        assert_eq!(
            format_duration(MAX_DURATION_SECS),
            "36500d",
            "the message's bound"
        );
        assert_eq!(format_duration(900), "15m");
        assert_eq!(format_duration(86400), "1d");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn out_of_range_and_inconsistent_policies_are_refused() {
        assert!(validate(&base()).is_ok());
        let err = validate(&Policy {
            access_ttl_secs: 59,
            ..base()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("access_ttl: 59s is outside 1m–1d"),
            "{err}"
        );
        assert!(validate(&Policy {
            access_ttl_secs: 86401,
            ..base()
        })
        .is_err());
        let err = validate(&Policy {
            refresh_absolute_ttl_secs: 3600,
            ..base()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("shorter than the idle lifetime 1d"),
            "{err}"
        );
        assert!(validate(&Policy {
            reuse_grace_secs: 301,
            ..base()
        })
        .is_err());
    }

    /// Every entry of FIELDS reads, overrides and sets its own struct
    /// field, of its kind, and keys are unique: a value set through the
    /// table reads back through it, and through no other entry.
    #[test]
    fn the_field_table_reads_and_writes_its_own_field() {
        let keys: std::collections::BTreeSet<&str> = FIELDS.iter().map(|f| f.key).collect();
        assert_eq!(keys.len(), FIELDS.len());
        for (i, field) in FIELDS.iter().enumerate() {
            let value = match field.kind {
                FieldKind::Switch => {
                    Value::Switch(!matches!((field.of)(&base()), Value::Switch(true)))
                }
                FieldKind::Duration(_) => Value::Seconds(12_345),
            };
            let mut change = PolicyChange::default();
            (field.set)(&mut change, Some(value));
            let overrides = PolicyOverrides::default().apply(&change);
            let policy = overrides.over(&base());
            for (j, other) in FIELDS.iter().enumerate() {
                if i == j {
                    assert_eq!((other.of)(&policy), value, "{}", field.key);
                    assert_eq!((other.overridden)(&overrides), Some(value), "{}", field.key);
                } else {
                    assert_eq!(
                        (other.of)(&policy),
                        (other.of)(&base()),
                        "{} moved {}",
                        field.key,
                        other.key
                    );
                    assert_eq!(
                        (other.overridden)(&overrides),
                        None,
                        "{} moved {}",
                        field.key,
                        other.key
                    );
                }
            }
            let mut inherit = PolicyChange::default();
            (field.set)(&mut inherit, None);
            assert!(inherit.sets_inherit(), "{}", field.key);
            let kind_matches = matches!(
                ((field.of)(&base()), field.kind),
                (Value::Switch(_), FieldKind::Switch) | (Value::Seconds(_), FieldKind::Duration(_))
            );
            assert!(kind_matches, "{}", field.key);
        }
    }

    /// The one parser of policy changes: text from forms and flags, JSON
    /// booleans and seconds, inherit; and its refusals, each naming the field.
    #[test]
    fn changes_parse_from_text_and_json_and_refuse_by_field() {
        let change = parse_change(
            [
                ("refresh_enabled", Given::Text("off")),
                ("access_ttl", Given::Text("15m")),
                ("refresh_idle_ttl", Given::Seconds(3600)),
                ("rotate_refresh", Given::Switch(true)),
                ("reuse_grace", Given::Inherit),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            change,
            PolicyChange {
                refresh_enabled: Some(Some(false)),
                access_ttl_secs: Some(Some(900)),
                refresh_idle_ttl_secs: Some(Some(3600)),
                rotate_refresh: Some(Some(true)),
                reuse_grace_secs: Some(None),
                ..Default::default()
            }
        );
        let refused = |given: Given<'static>, key: &'static str, for_defaults: bool| {
            parse_change([(key, given)], for_defaults)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(Given::Text("yes"), "rotate_refresh", false),
            r#"rotate_refresh: "yes" is not on or off"#
        );
        assert_eq!(
            refused(Given::Seconds(1), "revoke_on_logout", false),
            "revoke_on_logout: 1 is not on or off"
        );
        assert!(refused(Given::Text("abc"), "access_ttl", false)
            .starts_with(r#"access_ttl: "abc" is not a duration"#));
        assert!(refused(Given::Switch(true), "access_ttl", false)
            .starts_with("access_ttl: true is not a duration"));
        assert_eq!(
            refused(Given::Seconds(-1), "reuse_grace", false),
            "reuse_grace: must not be negative"
        );
        assert_eq!(
            refused(Given::Inherit, "access_ttl", true),
            "access_ttl: the defaults cannot inherit; give a value"
        );
        assert_eq!(
            refused(Given::Text("on"), "refresh", false),
            r#"policy: "refresh" is not a policy field"#
        );
        assert_eq!(parse_change([], true).unwrap(), PolicyChange::default());
    }

    #[test]
    fn overrides_win_and_inherit_falls_back() {
        let o = PolicyOverrides {
            refresh_enabled: Some(false),
            access_ttl_secs: Some(300),
            ..Default::default()
        };
        let p = o.over(&base());
        assert!(!p.refresh_enabled);
        assert_eq!(p.access_ttl_secs, 300);
        assert_eq!(p.refresh_idle_ttl_secs, 86400);
        let back = o.apply(&PolicyChange {
            refresh_enabled: Some(None),
            ..Default::default()
        });
        assert!(back.over(&base()).refresh_enabled);
    }
}

/// Property tests of durations (`90s`, `15m`, `1h`, `30d`, plain seconds):
/// [`duration_secs`] against the rule written out, and the round trip
/// through [`format_duration`]. `PROPTEST_CASES` raises the case count.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// The rule written out: around optional whitespace, ASCII digits and
    /// at most one unit; the value, computed without overflow, at most
    /// [`MAX_DURATION_SECS`].
    fn expected(raw: &str) -> Result<i64, BadDuration> {
        let text = raw.trim();
        let (digits, factor) = match text.chars().last() {
            Some('s') => (&text[..text.len() - 1], 1u128),
            Some('m') => (&text[..text.len() - 1], 60),
            Some('h') => (&text[..text.len() - 1], 3600),
            Some('d') => (&text[..text.len() - 1], 86400),
            _ => (text, 1),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(BadDuration::NotADuration);
        }
        let value = digits
            .chars()
            .try_fold(0u128, |n, c| {
                n.checked_mul(10)?.checked_add(u128::from(c as u8 - b'0'))
            })
            .and_then(|n| n.checked_mul(factor));
        match value {
            Some(secs) if secs <= MAX_DURATION_SECS as u128 => Ok(secs as i64),
            _ => Err(BadDuration::TooLong),
        }
    }

    fn durationish() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ \t]{0,2}[0-9]{1,22}[smhd]?[ \t]{0,2}",
            "[-+]?[0-9]{0,4}([.,][0-9]{1,3})?(s|m|h|d|ms|sec|min|H|D|w|y|µs| s|ss|)",
            "[0-9smhd \u{a0}\u{3000}٣０]{0,8}",
            prop::sample::select(vec![
                "",
                "s",
                "m",
                "+5m",
                "-5m",
                "5 m",
                "5.5h",
                "5mm",
                "5ms",
                "1w",
                "٥m",
                "５m",
                "5M",
                "1_000s",
                "0x10",
                "36500d",
                "36501d",
                "3153600000",
                "3153600001",
                "99999999999999999999d",
                " 15m ",
                "\u{3000}15m",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(super::super::proptest_config(256))]

        /// Any text gets exactly the answer the rule gives, and no panic.
        #[test]
        fn durations_follow_the_rule(raw in durationish()) {
            prop_assert_eq!(duration_secs(&raw), expected(&raw), "{:?}", raw);
            prop_assert_eq!(parse_duration("ttl", &raw).ok(), expected(&raw).ok());
        }

        /// Every number with every unit means what it says, up to the bound.
        #[test]
        fn number_and_unit_mean_what_they_say(
            n in prop_oneof![0u64..100_000, any::<u64>()],
            unit in prop::sample::select(vec![("", 1u128), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]),
        ) {
            let secs = u128::from(n) * unit.1;
            let parsed = duration_secs(&format!("{n}{}", unit.0));
            if secs <= MAX_DURATION_SECS as u128 {
                prop_assert_eq!(parsed, Ok(secs as i64));
            } else {
                prop_assert_eq!(parsed, Err(BadDuration::TooLong));
            }
        }

        /// What is shown reads back as the same number of seconds, in the
        /// largest unit that divides it.
        #[test]
        fn formatted_durations_round_trip(secs in prop_oneof![0i64..=MAX_DURATION_SECS, (0i64..=36_500).prop_map(|d| d * 86_400)]) {
            let shown = format_duration(secs);
            prop_assert_eq!(duration_secs(&shown), Ok(secs), "{}", shown);
            let unit = shown.chars().last().unwrap();
            let factor = match unit { 'd' => 86_400, 'h' => 3600, 'm' => 60, _ => 1 };
            let larger = [86_400, 3600, 60].into_iter().find(|f| secs > 0 && secs % f == 0).unwrap_or(1);
            prop_assert_eq!(factor, larger, "{}", shown);
        }
    }
}
