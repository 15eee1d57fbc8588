//! Token policy over the API: a client's overrides, the server-wide defaults
//! and the effective values; changes with durations as `"15m"`, `"1h"`,
//! `"30d"` (or seconds), `null` to inherit. An invalid result (access TTL
//! outside 1 min–24 h, absolute refresh lifetime shorter than the idle one,
//! ...) is a 422 naming the field, and nothing is saved. `policy::set_client`
//! and `set_defaults` audit before and after, with the calling client as actor.

use app::domain::{
    admin,
    clients::GrantType,
    policy::{self, Given, Policy, PolicyChange, PolicyOverrides},
};
use axum::{
    extract::{Path, State},
    Json,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::{
    auth::Admin,
    error::{check_id, ApiError, ApiJson, ApiResult, ErrorBody},
};
use crate::state::AppState;

/// Every policy field with its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyValues {
    /// Whether refresh tokens are issued and accepted.
    pub refresh_enabled: bool,
    /// Access-token lifetime, as entered (`10m`), and in seconds.
    pub access_ttl: String,
    pub access_ttl_secs: i64,
    /// A refresh token dies after this long unused.
    pub refresh_idle_ttl: String,
    pub refresh_idle_ttl_secs: i64,
    /// ... and at most this long after the sign-in that started its family.
    pub refresh_absolute_ttl: String,
    pub refresh_absolute_ttl_secs: i64,
    /// Every refresh hands out a new refresh token (and reuse revokes the family).
    pub rotate_refresh: bool,
    /// How long a used refresh token may come back (a retry) without counting as reuse.
    pub reuse_grace: String,
    pub reuse_grace_secs: i64,
    /// Signing out revokes the token families issued under that sign-in.
    pub revoke_on_logout: bool,
}

impl From<Policy> for PolicyValues {
    fn from(p: Policy) -> Self {
        PolicyValues {
            refresh_enabled: p.refresh_enabled,
            access_ttl: policy::format_duration(p.access_ttl_secs),
            access_ttl_secs: p.access_ttl_secs,
            refresh_idle_ttl: policy::format_duration(p.refresh_idle_ttl_secs),
            refresh_idle_ttl_secs: p.refresh_idle_ttl_secs,
            refresh_absolute_ttl: policy::format_duration(p.refresh_absolute_ttl_secs),
            refresh_absolute_ttl_secs: p.refresh_absolute_ttl_secs,
            rotate_refresh: p.rotate_refresh,
            reuse_grace: policy::format_duration(p.reuse_grace_secs),
            reuse_grace_secs: p.reuse_grace_secs,
            revoke_on_logout: p.revoke_on_logout,
        }
    }
}

/// A client's overrides; `null` inherits the default.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyOverrideValues {
    pub refresh_enabled: Option<bool>,
    pub access_ttl: Option<String>,
    pub access_ttl_secs: Option<i64>,
    pub refresh_idle_ttl: Option<String>,
    pub refresh_idle_ttl_secs: Option<i64>,
    pub refresh_absolute_ttl: Option<String>,
    pub refresh_absolute_ttl_secs: Option<i64>,
    pub rotate_refresh: Option<bool>,
    pub reuse_grace: Option<String>,
    pub reuse_grace_secs: Option<i64>,
    pub revoke_on_logout: Option<bool>,
}

impl From<PolicyOverrides> for PolicyOverrideValues {
    fn from(o: PolicyOverrides) -> Self {
        let text = |v: Option<i64>| v.map(policy::format_duration);
        PolicyOverrideValues {
            refresh_enabled: o.refresh_enabled,
            access_ttl: text(o.access_ttl_secs),
            access_ttl_secs: o.access_ttl_secs,
            refresh_idle_ttl: text(o.refresh_idle_ttl_secs),
            refresh_idle_ttl_secs: o.refresh_idle_ttl_secs,
            refresh_absolute_ttl: text(o.refresh_absolute_ttl_secs),
            refresh_absolute_ttl_secs: o.refresh_absolute_ttl_secs,
            rotate_refresh: o.rotate_refresh,
            reuse_grace: text(o.reuse_grace_secs),
            reuse_grace_secs: o.reuse_grace_secs,
            revoke_on_logout: o.revoke_on_logout,
        }
    }
}

/// A client's policy: what it overrides, the defaults, and what applies.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientPolicy {
    pub client_id: String,
    pub overrides: PolicyOverrideValues,
    pub defaults: PolicyValues,
    pub effective: PolicyValues,
    /// After switching refresh off: how many refresh tokens out there stopped working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_tokens_stopped: Option<i64>,
}

/// The server-wide defaults.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefaultPolicy {
    pub defaults: PolicyValues,
    /// After switching refresh off by default: how many refresh tokens of
    /// clients that inherit the switch stopped working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_tokens_stopped: Option<i64>,
}

/// A duration: `"90s"`, `"15m"`, `"1h"`, `"30d"`, or a number of seconds.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DurationValue {
    Text(String),
    Seconds(i64),
}

/// A change to a policy; absent fields stay, `null` (for a client) inherits
/// the default again. Field names are the ones errors name.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>, nullable)]
    pub refresh_enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DurationValue>, nullable)]
    pub access_ttl: Option<Option<DurationValue>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DurationValue>, nullable)]
    pub refresh_idle_ttl: Option<Option<DurationValue>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DurationValue>, nullable)]
    pub refresh_absolute_ttl: Option<Option<DurationValue>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>, nullable)]
    pub rotate_refresh: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DurationValue>, nullable)]
    pub reuse_grace: Option<Option<DurationValue>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>, nullable)]
    pub revoke_on_logout: Option<Option<bool>>,
}

/// A field that is present, `null` included (absent is the `default`, `None`).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl PolicyPatch {
    /// The domain's change (`policy::parse_change`, the one parser of
    /// policy changes): durations parsed, `null` kept as "inherit" — for
    /// the defaults an error naming the field.
    fn change(&self, for_defaults: bool) -> ApiResult<PolicyChange> {
        fn switch(v: &Option<Option<bool>>) -> Option<Given<'_>> {
            v.map(|v| v.map_or(Given::Inherit, Given::Switch))
        }
        fn secs(v: &Option<Option<DurationValue>>) -> Option<Given<'_>> {
            v.as_ref().map(|v| match v {
                None => Given::Inherit,
                Some(DurationValue::Seconds(secs)) => Given::Seconds(*secs),
                Some(DurationValue::Text(text)) => Given::Text(text),
            })
        }
        let given = [
            ("refresh_enabled", switch(&self.refresh_enabled)),
            ("access_ttl", secs(&self.access_ttl)),
            ("refresh_idle_ttl", secs(&self.refresh_idle_ttl)),
            ("refresh_absolute_ttl", secs(&self.refresh_absolute_ttl)),
            ("rotate_refresh", switch(&self.rotate_refresh)),
            ("reuse_grace", secs(&self.reuse_grace)),
            ("revoke_on_logout", switch(&self.revoke_on_logout)),
        ];
        policy::parse_change(
            given
                .into_iter()
                .filter_map(|(key, given)| Some((key, given?))),
            for_defaults,
        )
        .map_err(|e| ApiError::from_domain("parsing a policy change", e))
    }
}

fn failed(doing: &'static str) -> impl Fn(app::domain::DomainError) -> ApiError {
    move |e| ApiError::from_domain(doing, e)
}

async fn client_policy(
    state: &AppState,
    client_id: &str,
    stopped: Option<i64>,
) -> ApiResult<ClientPolicy> {
    let overrides = policy::overrides(&state.db, client_id)
        .await
        .map_err(failed("reading a client's policy"))?;
    let defaults = policy::defaults(&state.db)
        .await
        .map_err(failed("reading the policy defaults"))?;
    Ok(ClientPolicy {
        client_id: client_id.to_owned(),
        overrides: overrides.into(),
        defaults: defaults.into(),
        effective: overrides.over(&defaults).into(),
        refresh_tokens_stopped: stopped,
    })
}

#[utoipa::path(
    get, path = super::CLIENT_POLICY, tag = "policy",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "Overrides, defaults and effective policy", body = ClientPolicy),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn read_client(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientPolicy>> {
    Ok(Json(client_policy(&state, check_id(&id)?, None).await?))
}

#[utoipa::path(
    patch, path = super::CLIENT_POLICY, tag = "policy",
    params(("id" = String, Path, description = "The client_id")),
    request_body = PolicyPatch,
    responses(
        (status = 200, description = "The policy as changed (applies to tokens already out there)", body = ClientPolicy),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
        (status = 422, description = "Invalid value or combination; nothing saved", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn update_client(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> ApiResult<Json<ClientPolicy>> {
    let id = check_id(&id)?;
    let change = body.change(false)?;
    let before = policy::effective(&state.db, id)
        .await
        .map_err(failed("reading a client's policy"))?;
    let client = app::domain::clients::find_client(&state.db, id)
        .await
        .map_err(failed("reading a client"))?
        .ok_or_else(ApiError::not_found)?;
    let refresh_was_on = before.refresh_enabled && client.allows(GrantType::RefreshToken);
    let live = if refresh_was_on {
        Some(
            admin::live_refresh_tokens(&state.db, Some(id))
                .await
                .map_err(failed("counting refresh tokens"))?,
        )
    } else {
        None
    };
    let (_, effective) = policy::set_client_by(&state.db, id, &change, &admin.actor)
        .await
        .map_err(failed("changing a client's policy"))?;
    let stopped = live.filter(|_| !effective.refresh_enabled);
    Ok(Json(client_policy(&state, id, stopped).await?))
}

#[utoipa::path(
    get, path = super::POLICY_DEFAULTS, tag = "policy",
    responses(
        (status = 200, description = "The server-wide defaults", body = DefaultPolicy),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn read_defaults(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<DefaultPolicy>> {
    let defaults = policy::defaults(&state.db)
        .await
        .map_err(failed("reading the policy defaults"))?;
    Ok(Json(DefaultPolicy {
        defaults: defaults.into(),
        refresh_tokens_stopped: None,
    }))
}

#[utoipa::path(
    patch, path = super::POLICY_DEFAULTS, tag = "policy",
    request_body = PolicyPatch,
    responses(
        (status = 200, description = "The defaults as changed (clients that inherit follow)", body = DefaultPolicy),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 422, description = "Invalid value or combination, or null; nothing saved", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn update_defaults(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<PolicyPatch>,
) -> ApiResult<Json<DefaultPolicy>> {
    let change = body.change(true)?;
    let before = policy::defaults(&state.db)
        .await
        .map_err(failed("reading the policy defaults"))?;
    let live = if before.refresh_enabled {
        Some(
            admin::live_refresh_tokens(&state.db, None)
                .await
                .map_err(failed("counting refresh tokens"))?,
        )
    } else {
        None
    };
    let after = policy::set_defaults_by(&state.db, &change, &admin.actor)
        .await
        .map_err(failed("changing the policy defaults"))?;
    Ok(Json(DefaultPolicy {
        defaults: after.into(),
        refresh_tokens_stopped: live.filter(|_| !after.refresh_enabled),
    }))
}
