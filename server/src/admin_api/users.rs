//! `/api/admin/users…`: people, the apps holding tokens for them and their
//! sign-ins; creating, disabling (which revokes all their grants and ends all
//! their sign-ins), admin rights (the last admin keeps theirs), revoking all
//! apps, signing out everywhere.

use app::domain::{
    admin::{self, CutOff, UserApp, UserChange, UserSession},
    throttle,
    users::{self, User},
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
    clients::RevokeCounts,
    error::{check_id, ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody},
};
use crate::state::AppState;

/// A user (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub is_admin: bool,
    pub disabled: bool,
    /// Unix seconds; absent when not disabled.
    pub disabled_at: Option<i64>,
    pub created_at: i64,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            disabled: u.disabled_at.is_some(),
            id: u.id,
            username: u.username,
            is_admin: u.is_admin,
            disabled_at: u.disabled_at,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// An app holding a live grant for the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserAppView {
    pub grant_id: String,
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: i64,
    pub last_used_at: Option<i64>,
    /// Token families (app sessions) not revoked.
    pub active_families: i64,
}

impl From<UserApp> for UserAppView {
    fn from(a: UserApp) -> Self {
        UserAppView {
            grant_id: a.grant_id,
            client_id: a.client_id,
            client_name: a.client_name,
            scopes: a.scopes,
            granted_at: a.granted_at,
            last_used_at: a.last_used_at,
            active_families: a.active_families,
        }
    }
}

/// A live sign-in session; its id is the OpenID Connect `sid`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: String,
    pub user_agent: String,
}

impl From<UserSession> for SessionView {
    fn from(s: UserSession) -> Self {
        SessionView {
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

/// A user with their apps and live sign-ins.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetailView {
    pub user: UserView,
    pub apps: Vec<UserAppView>,
    pub sessions: Vec<SessionView>,
    /// Unix seconds until which sign-in throttling refuses this username;
    /// absent when it is not locked.
    pub sign_in_locked_until: Option<i64>,
}

/// What clearing a user's sign-in throttle found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThrottleCleared {
    /// Whether the username was locked.
    pub was_locked: bool,
}

/// What disabling a user revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct CutOffCounts {
    pub grants_revoked: usize,
    pub families_revoked: usize,
    pub sessions_ended: usize,
}

impl From<CutOff> for CutOffCounts {
    fn from(c: CutOff) -> Self {
        CutOffCounts {
            grants_revoked: c.grants_revoked,
            families_revoked: c.families_revoked,
            sessions_ended: c.sessions_ended,
        }
    }
}

/// A user after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserUpdated {
    pub user: UserView,
    /// Present when the request disabled the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut_off: Option<CutOffCounts>,
}

/// What signing a user out everywhere changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedOutCounts {
    pub sessions_ended: usize,
    /// Families issued under those sign-ins, for clients with revoke-on-logout on.
    pub families_revoked: usize,
}

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1–64 letters (with their combining marks), digits and `. _ - @ +`;
    /// unique regardless of letter case and compatibility form (NFKC case
    /// folding: `Émile` and `émile` are one user); kept as typed.
    pub username: String,
    /// 8 characters or more.
    pub password: String,
    #[serde(default)]
    pub is_admin: bool,
}

/// Changes to a user; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// `true` disables the user: all their grants are revoked, all their sign-ins end.
    pub disabled: Option<bool>,
    /// The last admin who is not disabled cannot lose their rights (409).
    pub is_admin: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// A substring of the username, any letter case (Unicode case folding and
    /// NFKC: `jür` finds `Jürgen`); `%`, `_` and quotes match themselves.
    pub q: Option<String>,
}

fn failed(doing: &'static str) -> impl Fn(app::domain::DomainError) -> ApiError {
    move |e| ApiError::from_domain(doing, e)
}

#[utoipa::path(
    get, path = super::USERS, tag = "users",
    params(UserQuery),
    responses(
        (status = 200, description = "Users by name", body = UserList),
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
    ApiQuery(query): ApiQuery<UserQuery>,
) -> ApiResult<Json<UserList>> {
    let users = admin::list_users(&state.db, query.q.as_deref())
        .await
        .map_err(failed("listing users"))?;
    Ok(Json(UserList {
        users: users.into_iter().map(UserView::from).collect(),
    }))
}

#[utoipa::path(
    post, path = super::USERS, tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "A value breaks a rule; `field` names it", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<Response> {
    let user = users::add_user_by(
        &state.db,
        &body.username,
        &body.password,
        body.is_admin,
        &admin.actor,
    )
    .await
    .map_err(failed("creating a user"))?;
    let location = format!("{}/{}", super::USERS, user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(user)),
    )
        .into_response())
}

#[utoipa::path(
    get, path = super::USER, tag = "users",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The user, their apps and live sign-ins", body = UserDetailView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn read(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<UserDetailView>> {
    let detail = admin::user_detail(&state.db, check_id(&id)?)
        .await
        .map_err(failed("reading a user"))?;
    let locked = throttle::status(&state.db, &detail.user.username)
        .await
        .map_err(failed("reading a user's sign-in throttle"))?;
    Ok(Json(UserDetailView {
        user: detail.user.into(),
        apps: detail.apps.into_iter().map(UserAppView::from).collect(),
        sessions: detail.sessions.into_iter().map(SessionView::from).collect(),
        sign_in_locked_until: locked,
    }))
}

#[utoipa::path(
    patch, path = super::USER, tag = "users",
    params(("id" = String, Path, description = "The user id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user as changed; with `cut_off` when disabled", body = UserUpdated),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
        (status = 409, description = "It would leave no admin who is not disabled", body = ErrorBody),
        (status = 422, description = "Nothing to change", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn update(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<UserUpdated>> {
    let change = UserChange {
        disabled: body.disabled,
        is_admin: body.is_admin,
    };
    let updated = admin::update_user(
        &state.db,
        &state.revoked,
        check_id(&id)?,
        change,
        &admin.actor,
    )
    .await
    .map_err(failed("updating a user"))?;
    Ok(Json(UserUpdated {
        user: updated.user.into(),
        cut_off: updated.cut_off.map(CutOffCounts::from),
    }))
}

#[utoipa::path(
    post, path = super::USER_REVOKE_APPS, tag = "users",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "Every grant of the user revoked, with its tokens", body = RevokeCounts),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn revoke_apps(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<RevokeCounts>> {
    let counts = admin::revoke_user_apps(
        &state.db,
        &state.revoked,
        check_id(&id)?,
        &admin.actor,
        "admin revoked all apps of the user",
    )
    .await
    .map_err(failed("revoking a user's apps"))?;
    Ok(Json(counts.into()))
}

#[utoipa::path(
    post, path = super::USER_SIGN_OUT_EVERYWHERE, tag = "users",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "Every live sign-in of the user ended", body = SignedOutCounts),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<SignedOutCounts>> {
    let done = admin::sign_out_everywhere(&state.db, &state.revoked, check_id(&id)?, &admin.actor)
        .await
        .map_err(failed("signing a user out everywhere"))?;
    Ok(Json(SignedOutCounts {
        sessions_ended: done.sessions_ended,
        families_revoked: done.families_revoked,
    }))
}

#[utoipa::path(
    post, path = super::USER_CLEAR_THROTTLE, tag = "users",
    params(("id" = String, Path, description = "The user id")),
    responses(
        (status = 200, description = "The username's failed sign-ins are forgotten and any lockout lifted", body = ThrottleCleared),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "No latchkey:admin scope", body = ErrorBody),
        (status = 404, description = "Unknown user", body = ErrorBody),
    ),
    security(("bearer" = ["latchkey:admin"])),
)]
pub async fn clear_throttle(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<ThrottleCleared>> {
    let user = users::find_by_id(&state.db, check_id(&id)?)
        .await
        .map_err(failed("reading a user"))?
        .ok_or_else(ApiError::not_found)?;
    let was_locked = throttle::clear(&state.db, &user.id, &user.username, &admin.actor)
        .await
        .map_err(failed("clearing a user's sign-in throttle"))?;
    Ok(Json(ThrottleCleared { was_locked }))
}
