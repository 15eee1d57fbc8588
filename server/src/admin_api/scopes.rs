//! `/api/admin/scopes`: the scope catalogue — the scopes clients may be
//! registered for, in the words people read on the consent page and in My
//! apps, and which are sensitive ([`app::domain::scopes`]).

use app::domain::scopes::{self, CatalogueEntry};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    auth::Admin,
    error::{check_id, ApiError, ApiJson, ApiResult, ErrorBody},
};
use crate::state::AppState;

/// One catalogued scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    pub scope: String,
    /// What it lets an app do, in plain words ("Read your notes").
    pub description: String,
    /// Listed first and marked on the consent page and in My apps.
    pub sensitive: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<CatalogueEntry> for ScopeView {
    fn from(e: CatalogueEntry) -> Self {
        ScopeView {
            scope: e.scope,
            description: e.description,
            sensitive: e.sensitive,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeList {
    /// Catalogued scopes by name (the OpenID scopes and `latchkey:*` are built in and not listed).
    pub scopes: Vec<ScopeView>,
}

/// A scope's words and sensitivity: the whole entry (`PUT` replaces it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeRequest {
    /// 1–120 characters, one line.
    pub description: String,
    /// Absent: `false`.
    #[serde(default)]
    pub sensitive: bool,
}

#[utoipa::path(
    get, path = super::SCOPES, tag = "scopes",
    responses(
        (status = 200, description = "The catalogue", body = ScopeList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<ScopeList>> {
    let scopes = scopes::list(&state.db)
        .await
        .map_err(|e| ApiError::from_domain("reading the scope catalogue", e))?;
    Ok(Json(ScopeList {
        scopes: scopes.into_iter().map(ScopeView::from).collect(),
    }))
}

#[utoipa::path(
    put, path = super::SCOPE, tag = "scopes",
    params(("scope" = String, Path, description = "The scope, e.g. notes:read")),
    request_body = ScopeRequest,
    responses(
        (status = 200, description = "Added or changed", body = ScopeView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Not a scope name at all", body = ErrorBody),
        (status = 422, description = "A bad scope name (or a built-in one) or description; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn set(
    State(state): State<AppState>,
    admin: Admin,
    Path(scope): Path<String>,
    ApiJson(body): ApiJson<ScopeRequest>,
) -> ApiResult<Json<ScopeView>> {
    scopes::define(
        &state.db,
        check_id(&scope)?,
        &body.description,
        Some(body.sensitive),
        &admin.actor,
    )
    .await
    .map(|e| Json(e.into()))
    .map_err(|e| ApiError::from_domain("defining a scope", e))
}

#[utoipa::path(
    delete, path = super::SCOPE, tag = "scopes",
    params(("scope" = String, Path, description = "The scope")),
    responses(
        (status = 204, description = "Removed from the catalogue"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Not in the catalogue", body = ErrorBody),
        (status = 409, description = "A client is registered for it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path(scope): Path<String>,
) -> ApiResult<StatusCode> {
    scopes::remove(&state.db, check_id(&scope)?, &admin.actor)
        .await
        .map(|()| StatusCode::NO_CONTENT)
        .map_err(|e| ApiError::from_domain("removing a scope", e))
}
