//! `/api/admin/clients/{id}/resource-server`: whether a client is a resource
//! server, its audience (RFC 8707 resource indicator, the `aud` of tokens
//! meant for it) and the scopes it serves ([`app::domain::resource_servers`]).

use app::domain::resource_servers::{self, ResourceServer};
use axum::{
    extract::{Path, State},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    auth::Admin,
    error::{check_id, ApiError, ApiJson, ApiResult, ErrorBody},
};
use crate::state::AppState;

/// A client's resource-server registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceServerView {
    pub client_id: String,
    /// The audience: an absolute URI without a fragment.
    pub audience: String,
    /// The scopes it serves: a token carrying one names this audience.
    pub scopes: Vec<String>,
}

impl From<ResourceServer> for ResourceServerView {
    fn from(r: ResourceServer) -> Self {
        ResourceServerView {
            client_id: r.client_id,
            audience: r.audience,
            scopes: r.scopes,
        }
    }
}

/// What makes a client a resource server.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerRequest {
    /// An absolute URI without a fragment, at most 200 characters, unique.
    pub audience: String,
    /// Scopes it serves (not the OpenID ones, not `latchkey:*`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[utoipa::path(
    get, path = super::CLIENT_RESOURCE_SERVER, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "The client's resource-server registration", body = ResourceServerView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown client, or not a resource server", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn read(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceServerView>> {
    match resource_servers::of_client(&state.db, check_id(&id)?).await {
        Ok(Some(r)) => Ok(Json(r.into())),
        Ok(None) => Err(ApiError::not_found()),
        Err(e) => Err(ApiError::from_domain("reading a resource server", e)),
    }
}

#[utoipa::path(
    put, path = super::CLIENT_RESOURCE_SERVER, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    request_body = ResourceServerRequest,
    responses(
        (status = 200, description = "Registered (or changed) as a resource server", body = ResourceServerView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
        (status = 409, description = "Another client has this audience", body = ErrorBody),
        (status = 422, description = "A bad audience or scope; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn set(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ResourceServerRequest>,
) -> ApiResult<Json<ResourceServerView>> {
    resource_servers::set(
        &state.db,
        check_id(&id)?,
        &body.audience,
        &body.scopes,
        &admin.actor,
    )
    .await
    .map(|r| Json(r.into()))
    .map_err(|e| ApiError::from_domain("registering a resource server", e))
}

#[utoipa::path(
    delete, path = super::CLIENT_RESOURCE_SERVER, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 204, description = "No longer a resource server"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown client, or not a resource server", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    match resource_servers::remove(&state.db, check_id(&id)?, &admin.actor).await {
        Ok(true) => Ok(axum::http::StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found()),
        Err(e) => Err(ApiError::from_domain("removing a resource server", e)),
    }
}
