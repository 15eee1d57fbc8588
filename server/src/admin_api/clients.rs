//! `/api/admin/clients…`: the registered clients with their usage; creating,
//! editing (under the registration rules), deleting (after revoking all it
//! holds), rotating the secret, revoking all its tokens.

use app::domain::{
    admin::{self, ClientSummary, RevokedCounts},
    clients::{
        self, Client, ClientChange, ClientKind, ClientMetadata, ClientMetadataChange, GrantType,
        NewClient,
    },
};
use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Admin,
    error::{check_id, ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody},
};
use crate::state::AppState;

/// A client kind.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Holds a secret (a server-side app, a resource server).
    Confidential,
    /// Cannot keep a secret (a browser or mobile app): PKCE instead.
    Public,
}

impl From<ClientKind> for Kind {
    fn from(k: ClientKind) -> Self {
        match k {
            ClientKind::Confidential => Kind::Confidential,
            ClientKind::Public => Kind::Public,
        }
    }
}

/// A grant type (RFC 6749 §4).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl From<GrantType> for Grant {
    fn from(g: GrantType) -> Self {
        match g {
            GrantType::AuthorizationCode => Grant::AuthorizationCode,
            GrantType::RefreshToken => Grant::RefreshToken,
            GrantType::ClientCredentials => Grant::ClientCredentials,
        }
    }
}

impl From<Grant> for GrantType {
    fn from(g: Grant) -> Self {
        match g {
            Grant::AuthorizationCode => GrantType::AuthorizationCode,
            Grant::RefreshToken => GrantType::RefreshToken,
            Grant::ClientCredentials => GrantType::ClientCredentials,
        }
    }
}

/// A client in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientListItem {
    pub client_id: String,
    pub name: String,
    pub kind: Kind,
    pub grant_types: Vec<Grant>,
    /// Whether refresh tokens work for it now (effective policy and grant types).
    pub refresh_enabled: bool,
    /// Live grants: users' consents and its own client_credentials grant.
    pub active_grants: i64,
    /// Token families (app sessions) not revoked.
    pub active_families: i64,
    /// Unix seconds of the last code redemption, refresh or client_credentials token.
    pub last_activity: Option<i64>,
}

impl From<ClientSummary> for ClientListItem {
    fn from(s: ClientSummary) -> Self {
        ClientListItem {
            client_id: s.client_id,
            name: s.name,
            kind: s.kind.into(),
            grant_types: s.grant_types.into_iter().map(Grant::from).collect(),
            refresh_enabled: s.refresh_enabled,
            active_grants: s.active_grants,
            active_families: s.active_families,
            last_activity: s.last_activity,
        }
    }
}

/// The client list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<ClientListItem>,
}

/// A client: its registration and usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub kind: Kind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<Grant>,
    /// Scopes beyond `openid profile email offline_access` it may ask for.
    pub extra_scopes: Vec<String>,
    pub created_at: i64,
    pub refresh_enabled: bool,
    pub active_grants: i64,
    pub active_families: i64,
    pub last_activity: Option<i64>,
    /// Where logout tokens are POSTed (OpenID Connect Back-Channel Logout 1.0 §2.2); `null`: none.
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    /// RFC 7591 §2: the app's logo, home page, privacy policy and terms of
    /// service (https, or http on a loopback host), and a short description.
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub description: Option<String>,
}

impl ClientView {
    fn of(client: Client, usage: ClientSummary) -> Self {
        ClientView {
            client_id: client.client_id,
            name: client.name,
            kind: client.kind.into(),
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            grant_types: client.grant_types.into_iter().map(Grant::from).collect(),
            extra_scopes: client.extra_scopes,
            created_at: client.created_at,
            refresh_enabled: usage.refresh_enabled,
            active_grants: usage.active_grants,
            active_families: usage.active_families,
            last_activity: usage.last_activity,
            backchannel_logout_uri: client.backchannel_logout_uri,
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            logo_uri: client.metadata.logo_uri,
            client_uri: client.metadata.client_uri,
            policy_uri: client.metadata.policy_uri,
            tos_uri: client.metadata.tos_uri,
            description: client.metadata.description,
        }
    }
}

/// A new client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientRequest {
    /// 1–100 characters, unique among live clients regardless of letter case
    /// and compatibility form (NFKC case folding: `Café` and `CAFÉ` are one name).
    pub name: String,
    /// Default `confidential`.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// Absolute, without a fragment; matched exactly. Needed for authorization_code.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Default `authorization_code refresh_token`; a public client cannot use client_credentials.
    #[serde(default)]
    pub grant_types: Vec<Grant>,
    /// Scopes beyond the OpenID ones (`latchkey:admin` makes an admin API client).
    #[serde(default, alias = "scopes")]
    pub extra_scopes: Vec<String>,
    /// Back-Channel Logout 1.0 §2.2: https, or http on 127.0.0.1, [::1] or localhost; no fragment.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// §2.2: `sid` required in logout tokens; default `false`.
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// RFC 7591 §2: the app's logo — https (or http on a loopback host), at most 500 characters.
    #[serde(default)]
    pub logo_uri: Option<String>,
    /// The app's home page; same rules.
    #[serde(default)]
    pub client_uri: Option<String>,
    /// The app's privacy policy; same rules.
    #[serde(default)]
    pub policy_uri: Option<String>,
    /// The app's terms of service; same rules.
    #[serde(default)]
    pub tos_uri: Option<String>,
    /// One paragraph, at most 300 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A client just created; the secret is shown this once (only its hash is kept).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientCreated {
    pub client: ClientView,
    /// The secret of a confidential client; absent for a public one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// Changes to a client; absent fields stay. The kind cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<Grant>>,
    #[serde(alias = "scopes")]
    pub extra_scopes: Option<Vec<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
    /// `null` (or `""`) removes it; absent keeps it. Same for the four below.
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub logo_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub client_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub policy_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub tos_uri: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::policy::present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
}

impl ClientPatch {
    /// The metadata part of the change: `null` removes a field (as `""` does).
    fn metadata(&self) -> ClientMetadataChange {
        let field = |v: &Option<Option<String>>| v.as_ref().map(|v| v.clone().unwrap_or_default());
        ClientMetadataChange {
            logo_uri: field(&self.logo_uri),
            client_uri: field(&self.client_uri),
            policy_uri: field(&self.policy_uri),
            tos_uri: field(&self.tos_uri),
            description: field(&self.description),
        }
    }
}

/// What a bulk revocation changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeCounts {
    pub grants_revoked: usize,
    pub families_revoked: usize,
}

impl From<RevokedCounts> for RevokeCounts {
    fn from(c: RevokedCounts) -> Self {
        RevokeCounts {
            grants_revoked: c.grants_revoked,
            families_revoked: c.families_revoked,
        }
    }
}

/// A deleted client and what deleting it revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientDeleted {
    pub client_id: String,
    pub deleted: bool,
    pub grants_revoked: usize,
    pub families_revoked: usize,
}

/// A new secret, shown this once; the old one no longer works.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretRotated {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// A substring of the name or client_id, any letter case (Unicode case
    /// folding and NFKC: `café` finds `Café`); `%` and `_` match themselves.
    pub q: Option<String>,
}

#[utoipa::path(
    get, path = super::CLIENTS, tag = "clients",
    params(SearchQuery),
    responses(
        (status = 200, description = "Clients not deleted, by name", body = ClientList),
        (status = 400, description = "The query cannot be read: a parameter is repeated, or not text", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 422, description = "Search string too long", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<ClientList>> {
    let clients = admin::list_clients(&state.db, query.q.as_deref())
        .await
        .map_err(|e| ApiError::from_domain("listing clients", e))?;
    Ok(Json(ClientList {
        clients: clients.into_iter().map(ClientListItem::from).collect(),
    }))
}

#[utoipa::path(
    post, path = super::CLIENTS, tag = "clients",
    request_body = NewClientRequest,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = ClientCreated),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<NewClientRequest>,
) -> ApiResult<Response> {
    let new = NewClient {
        name: body.name,
        kind: match body.kind.unwrap_or(Kind::Confidential) {
            Kind::Confidential => ClientKind::Confidential,
            Kind::Public => ClientKind::Public,
        },
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body.grant_types.into_iter().map(GrantType::from).collect(),
        extra_scopes: body.extra_scopes,
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        metadata: ClientMetadata {
            logo_uri: body.logo_uri,
            client_uri: body.client_uri,
            policy_uri: body.policy_uri,
            tos_uri: body.tos_uri,
            description: body.description,
        },
    };
    let (client, secret) = clients::add_client_by(&state.db, &new, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("creating a client", e))?;
    let (client, usage) = admin::client_detail(&state.db, &client.client_id)
        .await
        .map_err(|e| ApiError::from_domain("reading the new client", e))?;
    let location = format!("{}/{}", super::CLIENTS, client.client_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ClientCreated {
            client: ClientView::of(client, usage),
            client_secret: secret.map(|s| s.0),
        }),
    )
        .into_response())
}

#[utoipa::path(
    get, path = super::CLIENT, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn read(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientView>> {
    let (client, usage) = admin::client_detail(&state.db, check_id(&id)?)
        .await
        .map_err(|e| ApiError::from_domain("reading a client", e))?;
    Ok(Json(ClientView::of(client, usage)))
}

#[utoipa::path(
    patch, path = super::CLIENT, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    request_body = ClientPatch,
    responses(
        (status = 200, description = "The client as changed", body = ClientView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A value breaks a rule; nothing changed", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ClientPatch>,
) -> ApiResult<Json<ClientView>> {
    let id = check_id(&id)?;
    let change = ClientChange {
        metadata: body.metadata(),
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body
            .grant_types
            .map(|g| g.into_iter().map(GrantType::from).collect()),
        extra_scopes: body.extra_scopes,
        backchannel_logout_uri: body.backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
    };
    clients::update_client(&state.db, id, &change, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("updating a client", e))?;
    let (client, usage) = admin::client_detail(&state.db, id)
        .await
        .map_err(|e| ApiError::from_domain("reading a client", e))?;
    Ok(Json(ClientView::of(client, usage)))
}

#[utoipa::path(
    delete, path = super::CLIENT, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "Every grant and family revoked, then the client deleted", body = ClientDeleted),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or already deleted client", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ClientDeleted>> {
    let id = check_id(&id)?;
    let counts = admin::delete_client(&state.db, &state.revoked, id, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("deleting a client", e))?;
    Ok(Json(ClientDeleted {
        client_id: id.to_owned(),
        deleted: true,
        grants_revoked: counts.grants_revoked,
        families_revoked: counts.families_revoked,
    }))
}

#[utoipa::path(
    post, path = super::CLIENT_SECRET, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "The new secret, shown this once", body = SecretRotated),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
        (status = 422, description = "A public client has no secret (`field`: kind)", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretRotated>> {
    let id = check_id(&id)?;
    let secret = clients::rotate_secret(&state.db, id, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("rotating a client secret", e))?;
    Ok(Json(SecretRotated {
        client_id: id.to_owned(),
        client_secret: secret.0,
    }))
}

#[utoipa::path(
    post, path = super::CLIENT_REVOKE, tag = "clients",
    params(("id" = String, Path, description = "The client_id")),
    responses(
        (status = 200, description = "Every grant of the client revoked, with its tokens", body = RevokeCounts),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown or deleted client", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokeCounts>> {
    let counts = admin::revoke_client(&state.db, &state.revoked, check_id(&id)?, &admin.actor)
        .await
        .map_err(|e| ApiError::from_domain("revoking a client's tokens", e))?;
    Ok(Json(counts.into()))
}
