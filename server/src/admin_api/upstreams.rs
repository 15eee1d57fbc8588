//! `/api/admin/upstreams…`: the upstream OpenID Connect providers people sign
//! in through ([`app::domain::upstream`]). The client secret is write-only:
//! sent when adding or changing a provider, never returned.

use std::collections::BTreeMap;

use app::domain::upstream::{self, NewProvider, Provider, ProviderChange, ProviderHealth};
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

/// A provider (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct UpstreamView {
    pub id: String,
    /// Shown on the sign-in page: "Sign in with {name}".
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Revoke the provider's tokens (RFC 7009) when a sign-in through it ends.
    pub revoke_at_logout: bool,
    /// After a browser sign-out, offer RP-initiated logout at the provider.
    pub end_upstream_session: bool,
    /// Override of discovery's `revocation_endpoint`.
    pub revocation_endpoint: Option<String>,
    /// Override of RFC 7009's `token` parameter name.
    pub revocation_token_param: Option<String>,
    /// Extra form parameters sent with each revocation.
    pub revocation_extra_params: BTreeMap<String, String>,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Sign-ins and revocations through it (in `GET /api/admin/upstreams/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub health: Option<ProviderHealth>,
}

fn view(state: &AppState, p: Provider, health: Option<ProviderHealth>) -> UpstreamView {
    UpstreamView {
        redirect_uri: crate::upstream::redirect_uri(&state.config.issuer),
        id: p.id,
        name: p.name,
        issuer: p.issuer,
        client_id: p.client_id,
        scopes: p.scopes,
        revoke_at_logout: p.revoke_at_logout,
        end_upstream_session: p.end_upstream_session,
        revocation_endpoint: p.revocation_endpoint,
        revocation_token_param: p.revocation_token_param,
        revocation_extra_params: p.revocation_extra_params,
        created_at: p.created_at,
        updated_at: p.updated_at,
        health,
    }
}

/// A provider to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCreate {
    pub name: String,
    /// https (http on loopback only), no query or fragment.
    pub issuer: String,
    pub client_id: String,
    /// Write-only: stored encrypted, never returned.
    pub client_secret: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Default true.
    pub revoke_at_logout: Option<bool>,
    /// Default false.
    pub end_upstream_session: Option<bool>,
    pub revocation_endpoint: Option<String>,
    pub revocation_token_param: Option<String>,
    #[serde(default)]
    pub revocation_extra_params: BTreeMap<String, String>,
}

/// Changes to a provider; absent fields stay; `null` clears an override. The
/// issuer cannot change (its users are linked to it).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamPatch {
    pub name: Option<String>,
    pub client_id: Option<String>,
    /// Write-only.
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub revoke_at_logout: Option<bool>,
    pub end_upstream_session: Option<bool>,
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub revocation_endpoint: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub revocation_token_param: Option<Option<String>>,
    pub revocation_extra_params: Option<BTreeMap<String, String>>,
}

#[utoipa::path(
    get, path = super::UPSTREAMS, tag = "upstreams",
    responses(
        (status = 200, description = "Every provider, by name", body = [UpstreamView]),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<UpstreamView>>> {
    let list = upstream::list(&state.db)
        .await
        .map_err(|e| ApiError::from_domain("listing upstream providers", e))?;
    Ok(Json(
        list.into_iter().map(|p| view(&state, p, None)).collect(),
    ))
}

#[utoipa::path(
    post, path = super::UPSTREAMS, tag = "upstreams",
    request_body = UpstreamCreate,
    responses(
        (status = 201, description = "Added", body = UpstreamView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 409, description = "A provider has this name", body = ErrorBody),
        (status = 422, description = "A bad field; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<UpstreamCreate>,
) -> ApiResult<(StatusCode, Json<UpstreamView>)> {
    let new = NewProvider {
        name: body.name,
        issuer: body.issuer,
        client_id: body.client_id,
        client_secret: body.client_secret,
        scopes: body.scopes,
        revoke_at_logout: body.revoke_at_logout.unwrap_or(true),
        end_upstream_session: body.end_upstream_session.unwrap_or(false),
        revocation_endpoint: body.revocation_endpoint,
        revocation_token_param: body.revocation_token_param,
        revocation_extra_params: body.revocation_extra_params,
    };
    let provider = upstream::add(&state.db, state.upstreams.sealer(), &new, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("adding an upstream provider", e))?;
    Ok((StatusCode::CREATED, Json(view(&state, provider, None))))
}

#[utoipa::path(
    get, path = super::UPSTREAM, tag = "upstreams",
    params(("id" = String, Path, description = "The provider's id")),
    responses(
        (status = 200, description = "The provider with its sign-ins and revocations", body = UpstreamView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn read(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<UpstreamView>> {
    let provider = found(&state, &id).await?;
    let health = upstream::health(&state.db, &provider.id)
        .await
        .map_err(|e| ApiError::from_domain("reading an upstream provider", e))?;
    Ok(Json(view(&state, provider, Some(health))))
}

/// The provider with exactly this id, or 404.
async fn found(state: &AppState, id: &str) -> ApiResult<Provider> {
    match upstream::find(&state.db, check_id(id)?).await {
        Ok(Some(p)) if p.id == id => Ok(p),
        Ok(_) => Err(ApiError::not_found()),
        Err(e) => Err(ApiError::from_domain("reading an upstream provider", e)),
    }
}

#[utoipa::path(
    patch, path = super::UPSTREAM, tag = "upstreams",
    params(("id" = String, Path, description = "The provider's id")),
    request_body = UpstreamPatch,
    responses(
        (status = 200, description = "Changed", body = UpstreamView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 409, description = "Another provider has this name", body = ErrorBody),
        (status = 422, description = "A bad field; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpstreamPatch>,
) -> ApiResult<Json<UpstreamView>> {
    let provider = found(&state, &id).await?;
    let change = ProviderChange {
        name: body.name,
        client_id: body.client_id,
        client_secret: body.client_secret,
        scopes: body.scopes,
        revoke_at_logout: body.revoke_at_logout,
        end_upstream_session: body.end_upstream_session,
        revocation_endpoint: body.revocation_endpoint,
        revocation_token_param: body.revocation_token_param,
        revocation_extra_params: body.revocation_extra_params,
    };
    let after = upstream::update(
        &state.db,
        state.upstreams.sealer(),
        &provider.id,
        &change,
        &admin.actor,
    )
    .await
    .map_err(|e| ApiError::from_domain("changing an upstream provider", e))?;
    Ok(Json(view(&state, after, None)))
}

#[utoipa::path(
    delete, path = super::UPSTREAM, tag = "upstreams",
    params(("id" = String, Path, description = "The provider's id")),
    responses(
        (status = 204, description = "Removed: no new sign-ins through it; its users stay linked"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn remove(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let provider = found(&state, &id).await?;
    upstream::remove(&state.db, &provider.id, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("removing an upstream provider", e))?;
    Ok(StatusCode::NO_CONTENT)
}
