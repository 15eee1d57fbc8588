//! `/api/admin/audit`: the audit log, newest first, filtered by user, client,
//! kind and time; one page at a time, or everything as a CSV or JSON download.

use app::{
    domain::audit_search::{self, AuditFilter, AuditRecord},
    model::PageRequest,
};
use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Admin,
    error::{ApiError, ApiQuery, ApiResult, ErrorBody},
};
use crate::state::AppState;

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Time-ordered id.
    pub id: String,
    /// Unix seconds.
    pub at: i64,
    /// The same time in RFC 3339 UTC.
    pub time: String,
    /// `login`, `login_failed`, `logout`, `user_created`, `user_disabled`, `user_enabled`,
    /// `user_admin_changed`, `client_created`, `client_updated`, `client_deleted`,
    /// `client_secret_rotated`, `policy_changed`, `consent_granted`, `code_redeemed`,
    /// `token_issued`, `token_refreshed`, `reuse_detected`, `revoked`, `keys_rotated`.
    pub kind: String,
    pub actor_user_id: Option<String>,
    /// Set when a client did it (the admin API, a token request).
    pub actor_client_id: Option<String>,
    pub subject_user_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// What happened, as the event recorded it (before/after for changes).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<AuditRecord> for AuditEventView {
    fn from(e: AuditRecord) -> Self {
        AuditEventView {
            time: audit_search::format_rfc3339(e.at),
            id: e.id,
            at: e.at,
            kind: e.kind,
            actor_user_id: e.actor_user_id,
            actor_client_id: e.actor_client_id,
            subject_user_id: e.subject_user_id,
            client_id: e.client_id,
            ip: e.ip,
            detail: e.detail,
        }
    }
}

/// One page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    pub events: Vec<AuditEventView>,
    pub page: i64,
    pub per_page: i64,
    /// Events matching the filters, on all pages.
    pub total: i64,
}

/// Audit filters (all optional).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A user id or username: events they did or that concern them.
    pub user: Option<String>,
    /// A client_id: events about the client or done by it.
    pub client: Option<String>,
    /// An event kind, e.g. `revoked`.
    pub kind: Option<String>,
    /// From (inclusive): unix seconds, `2026-11-23` or `2026-11-23T10:00:00Z` (UTC).
    pub from: Option<String>,
    /// To (inclusive): unix seconds, `2026-11-23` (the whole day) or `2026-11-23T10:00:00Z`.
    pub to: Option<String>,
    /// Page number, 1–1000000, default 1 (list only); past the last page the list is empty.
    pub page: Option<String>,
    /// 1–200, default 50 (list only).
    pub per_page: Option<String>,
    /// `csv` (default) or `json` (export only).
    pub format: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> ApiResult<AuditFilter> {
        let time = |field: &'static str, v: &Option<String>, end: bool| {
            v.as_deref()
                .filter(|s| !s.trim().is_empty())
                .map(|s| audit_search::parse_time(field, s, end))
                .transpose()
                .map_err(|e| ApiError::from_domain("reading the audit filter", e))
        };
        AuditFilter {
            user: self.user.clone(),
            client: self.client.clone(),
            kind: self.kind.clone(),
            from: time("from", &self.from, false)?,
            to: time("to", &self.to, true)?,
        }
        .validated()
        .map_err(|e| ApiError::from_domain("reading the audit filter", e))
    }
}

impl AuditQuery {
    /// `page` and `per_page` as given (defaults 1 and 50): whole numbers
    /// within `1..=1000000` and `1..=200`, else 422 naming the field.
    fn page(&self) -> ApiResult<PageRequest> {
        fn number(field: &'static str, v: &Option<String>, default: i64) -> ApiResult<i64> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(default),
                Some(s) => s.parse().map_err(|e: std::num::ParseIntError| {
                    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
                    let why = match e.kind() {
                        PosOverflow | NegOverflow => "is out of range",
                        _ => "is not a whole number",
                    };
                    ApiError::invalid(field, format!("{s:?} {why}"))
                }),
            }
        }
        let page = number("page", &self.page, 1)?;
        let per_page = number("per_page", &self.per_page, audit_search::DEFAULT_PER_PAGE)?;
        PageRequest::new(page, per_page).map_err(|e| ApiError::invalid(e.field, e.message))
    }
}

#[utoipa::path(
    get, path = super::AUDIT, tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of events, newest first", body = AuditPageView),
        (status = 400, description = "The query cannot be read: a parameter is repeated, or not text", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 422, description = "A bad filter or page; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPageView>> {
    let filter = query.filter()?;
    let found = audit_search::search(&state.db, &filter, query.page()?)
        .await
        .map_err(|e| ApiError::from_domain("reading the audit log", e))?;
    Ok(Json(AuditPageView {
        events: found.events.into_iter().map(AuditEventView::from).collect(),
        page: found.page,
        per_page: found.per_page,
        total: found.total,
    }))
}

#[utoipa::path(
    get, path = super::AUDIT_EXPORT, tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "Every matching event (the newest 100 000), newest first, as a download: \
            CSV with a header row (`id,at,time,kind,actor_user_id,actor_client_id,subject_user_id,client_id,ip,detail`) \
            or a JSON array", content(
            (String = "text/csv"),
            (Vec<AuditEventView> = "application/json"),
        )),
        (status = 400, description = "The query cannot be read: a parameter is repeated, or not text", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 422, description = "A bad filter or format; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn export(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    export_response(&state, &query).await
}

/// The export download for a caller already checked to be an admin: by this
/// API's bearer token, or by the console's browser session (`web::audit_export`).
pub async fn export_response(state: &AppState, query: &AuditQuery) -> ApiResult<Response> {
    let format = query
        .format
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("csv")
        .to_ascii_lowercase();
    if format != "csv" && format != "json" {
        return Err(ApiError::invalid("format", "must be csv or json"));
    }
    let filter = query.filter()?;
    let events = audit_search::export(&state.db, &filter)
        .await
        .map_err(|e| ApiError::from_domain("exporting the audit log", e))?;
    let mut response = if format == "csv" {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            audit_search::to_csv(&events),
        )
            .into_response()
    } else {
        Json(
            events
                .into_iter()
                .map(AuditEventView::from)
                .collect::<Vec<_>>(),
        )
        .into_response()
    };
    let disposition = format!("attachment; filename=\"latchkey-audit.{format}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
