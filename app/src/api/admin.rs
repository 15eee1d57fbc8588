//! Server functions of the admin console (under `/api/console/`; the REST API
//! owns `/api/admin/`). Every one checks, on the server,
//! that the signed-in user is an admin (403 otherwise), calls one function of
//! `domain::admin` (shared with the REST API) and maps to wire types. The
//! sign-in provider functions call `domain::upstream` the same way, with the
//! sealing key the server provides (`api::ssr::UpstreamSettings`); none of them
//! returns a provider's client secret.

use leptos::prelude::*;

use crate::model::{
    ActivityStats, AdminClient, AdminClientDetail, AdminScope, AdminUser, AdminUserDetail,
    AuditLine, CurrentUser, Page, PolicyField,
};

#[cfg(feature = "ssr")]
mod ssr {
    pub use super::super::ssr::*;
    use crate::{
        domain::{
            admin::ClientSummary,
            audit::Actor,
            login_sessions::SignedIn,
            policy::{FieldKind, Policy, PolicyOverrides, Value, FIELDS},
            users::User,
        },
        model::{AdminClient, AdminUser, PolicyField},
    };
    use leptos::prelude::ServerFnError;

    /// The signed-in admin, or 403.
    pub async fn require_admin() -> Result<SignedIn, ServerFnError> {
        let me = require_signed_in().await?;
        if !me.user.is_admin {
            return Err(refuse(403, "This part of Latchkey is for administrators."));
        }
        Ok(me)
    }

    /// 400 for a form value outside its fixed choices (a hand-made or stale
    /// form): refused before anything is read or changed.
    pub fn unknown_choice(field: &'static str, allowed: &[&str]) -> ServerFnError {
        failed(crate::domain::DomainError::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }

    pub fn actor(me: &SignedIn) -> Actor {
        Actor::user(&me.user.id)
    }

    pub fn client(s: ClientSummary) -> AdminClient {
        AdminClient {
            client_id: s.client_id,
            name: s.name,
            kind: s.kind.as_str().to_owned(),
            grant_types: s
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            refresh_enabled: s.refresh_enabled,
            active_grants: s.active_grants,
            active_families: s.active_families,
            last_activity: s.last_activity,
        }
    }

    pub fn user(u: User) -> AdminUser {
        AdminUser {
            disabled: u.disabled_at.is_some(),
            id: u.id,
            username: u.username,
            is_admin: u.is_admin,
            created_at: u.created_at,
        }
    }

    /// The seven policy fields (`policy::FIELDS`): default, override, effective.
    pub fn policy_fields(defaults: &Policy, overrides: &PolicyOverrides) -> Vec<PolicyField> {
        let effective = overrides.over(defaults);
        FIELDS
            .iter()
            .map(|f| PolicyField {
                key: f.key.into(),
                label: f.label.into(),
                switch: f.kind == FieldKind::Switch,
                default: (f.of)(defaults).shown(),
                overridden: (f.overridden)(overrides).map(Value::shown),
                effective: (f.of)(&effective).shown(),
                help: f.help.into(),
            })
            .collect()
    }
}

/// The admin home: activity charts.
#[server(endpoint = "console/home")]
pub async fn get_admin_home() -> Result<(CurrentUser, ActivityStats), ServerFnError> {
    let me = ssr::require_admin().await?;
    let stats = crate::domain::activity::stats(&ssr::db()?)
        .await
        .map_err(ssr::failed)?;
    Ok((ssr::current_user(&me).await?, stats))
}

#[server(endpoint = "console/clients")]
pub async fn get_admin_clients(
    q: String,
) -> Result<(CurrentUser, Vec<AdminClient>), ServerFnError> {
    let me = ssr::require_admin().await?;
    let q = q.trim();
    let list = crate::domain::admin::list_clients(&ssr::db()?, (!q.is_empty()).then_some(q))
        .await
        .map_err(ssr::failed)?;
    Ok((
        ssr::current_user(&me).await?,
        list.into_iter().map(ssr::client).collect(),
    ))
}

/// What the client page shows, plus a secret to show once (after creation or rotation).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientView {
    pub me: CurrentUser,
    pub detail: Option<AdminClientDetail>,
    pub new_secret: Option<String>,
}

/// Where a secret waits, in the admin's browser session, to be shown once.
#[cfg(feature = "ssr")]
const SECRET_FLASH: &str = "admin_new_secret";

/// Keeps a new secret in the admin's browser session for the client page to show once.
#[cfg(feature = "ssr")]
async fn flash_secret(client_id: &str, secret: String) -> Result<(), ServerFnError> {
    let session: tower_sessions::Session = leptos_axum::extract().await?;
    session
        .insert(SECRET_FLASH, (client_id.to_owned(), secret))
        .await
        .map_err(|e| {
            ssr::failed(crate::domain::DomainError::Internal(format!(
                "keeping the new secret: {e}"
            )))
        })
}

#[server(endpoint = "console/client")]
pub async fn get_admin_client(client_id: String) -> Result<ClientView, ServerFnError> {
    use crate::domain::{admin, policy, DomainError};
    let me = ssr::require_admin().await?;
    let db = ssr::db()?;
    let found = admin::client_detail(&db, &client_id).await;
    let (client, summary) = match found {
        Ok(found) => found,
        Err(DomainError::NotFound) => {
            ssr::set_status(404);
            return Ok(ClientView {
                me: ssr::current_user(&me).await?,
                detail: None,
                new_secret: None,
            });
        }
        Err(e) => return Err(ssr::failed(e)),
    };
    let defaults = policy::defaults(&db).await.map_err(ssr::failed)?;
    let overrides = policy::overrides(&db, &client_id)
        .await
        .map_err(ssr::failed)?;
    let live = admin::live_refresh_tokens(&db, Some(&client_id))
        .await
        .map_err(ssr::failed)?;
    let resource_server = crate::domain::resource_servers::of_client(&db, &client_id)
        .await
        .map_err(ssr::failed)?
        .map(|r| crate::model::AdminResourceServer {
            audience: r.audience,
            scopes: r.scopes,
        });
    let undelivered = crate::domain::backchannel::undelivered(&db, &client_id, 50)
        .await
        .map_err(ssr::failed)?;
    let session: tower_sessions::Session = leptos_axum::extract().await?;
    let new_secret = match session.remove::<(String, String)>(SECRET_FLASH).await {
        Ok(Some((id, secret))) if id == client_id => Some(secret),
        _ => None,
    };
    Ok(ClientView {
        me: ssr::current_user(&me).await?,
        detail: Some(AdminClientDetail {
            client: ssr::client(summary),
            redirect_uris: client.redirect_uris,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            extra_scopes: client.extra_scopes,
            created_at: client.created_at,
            policy: ssr::policy_fields(&defaults, &overrides),
            live_refresh_tokens: live,
            resource_server,
            backchannel_logout_uri: client.backchannel_logout_uri,
            backchannel_logout_session_required: client.backchannel_logout_session_required,
            identity: client.metadata.identity(&client.name),
            undelivered: undelivered
                .into_iter()
                .map(|u| crate::model::AdminDelivery {
                    target: u.target_url,
                    one_sign_in: u.subject.sid.is_some(),
                    user_id: u.subject.sub,
                    created_at: u.created_at,
                    attempts: i64::from(u.attempts),
                    last_error: u.last_error,
                    next_attempt_at: u.next_attempt_at,
                    gave_up_at: u.gave_up_at,
                })
                .collect(),
        }),
        new_secret,
    })
}

/// The seven fields of a policy form, as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PolicyForm {
    pub refresh_enabled: String,
    pub access_ttl: String,
    pub refresh_idle_ttl: String,
    pub refresh_absolute_ttl: String,
    pub rotate_refresh: String,
    pub reuse_grace: String,
    pub revoke_on_logout: String,
}

/// A client's registration as the create and edit forms post it (checkboxes
/// are absent when not ticked).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RegistrationForm {
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_code: Option<String>,
    pub grant_refresh: Option<String>,
    pub grant_client_credentials: Option<String>,
    pub extra_scopes: String,
    /// Empty: none.
    pub backchannel_logout_uri: String,
    pub backchannel_logout_session_required: Option<String>,
    /// RFC 7591 §2 metadata; empty: none.
    pub logo_uri: String,
    pub client_uri: String,
    pub policy_uri: String,
    pub tos_uri: String,
    pub description: String,
}

#[cfg(feature = "ssr")]
impl RegistrationForm {
    /// The metadata fields as a change: each one set, an empty one removed.
    fn metadata(&self) -> crate::domain::clients::ClientMetadataChange {
        crate::domain::clients::ClientMetadataChange {
            logo_uri: Some(self.logo_uri.clone()),
            client_uri: Some(self.client_uri.clone()),
            policy_uri: Some(self.policy_uri.clone()),
            tos_uri: Some(self.tos_uri.clone()),
            description: Some(self.description.clone()),
        }
    }
}

/// Parses the policy form (`policy::parse_change`): `""`/`inherit` → back
/// to the default for a client; on the defaults' form, which offers no
/// inherit, an empty field is left as it is.
#[cfg(feature = "ssr")]
fn policy_change(
    form: PolicyForm,
    for_defaults: bool,
) -> Result<crate::domain::policy::PolicyChange, crate::domain::DomainError> {
    use crate::domain::policy::{parse_change, Given};
    let typed = [
        ("refresh_enabled", form.refresh_enabled.trim()),
        ("access_ttl", form.access_ttl.trim()),
        ("refresh_idle_ttl", form.refresh_idle_ttl.trim()),
        ("refresh_absolute_ttl", form.refresh_absolute_ttl.trim()),
        ("rotate_refresh", form.rotate_refresh.trim()),
        ("reuse_grace", form.reuse_grace.trim()),
        ("revoke_on_logout", form.revoke_on_logout.trim()),
    ];
    let given = typed.into_iter().filter_map(|(key, raw)| {
        let inherit = raw.is_empty() || raw == "inherit";
        match (inherit, for_defaults) {
            (true, true) => None,
            (true, false) => Some((key, Given::Inherit)),
            (false, _) => Some((key, Given::Text(raw))),
        }
    });
    parse_change(given, for_defaults)
}

#[server(endpoint = "console/client_policy")]
pub async fn save_client_policy(
    client_id: String,
    #[server(flatten)] form: PolicyForm,
) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let change = policy_change(form, false).map_err(ssr::failed)?;
    crate::domain::policy::set_client(&ssr::db()?, &client_id, &change, Some(&me.user.id))
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(
        &crate::paths::admin_client(&client_id),
        &[("saved", "policy")],
    );
    Ok(())
}

#[server(endpoint = "console/defaults")]
pub async fn get_policy_defaults() -> Result<(CurrentUser, Vec<PolicyField>, i64), ServerFnError> {
    use crate::domain::{admin, policy};
    let me = ssr::require_admin().await?;
    let db = ssr::db()?;
    let defaults = policy::defaults(&db).await.map_err(ssr::failed)?;
    let live = admin::live_refresh_tokens(&db, None)
        .await
        .map_err(ssr::failed)?;
    Ok((
        ssr::current_user(&me).await?,
        ssr::policy_fields(&defaults, &Default::default()),
        live,
    ))
}

#[server(endpoint = "console/save_defaults")]
pub async fn save_policy_defaults(
    #[server(flatten)] form: PolicyForm,
) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let change = policy_change(form, true).map_err(ssr::failed)?;
    crate::domain::policy::set_defaults(&ssr::db()?, &change, Some(&me.user.id))
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(crate::paths::ADMIN_DEFAULTS, &[("saved", "1")]);
    Ok(())
}

/// "Revoke all tokens of this client".
#[server(endpoint = "console/revoke_client")]
pub async fn revoke_client_tokens(client_id: String) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let done = crate::domain::admin::revoke_client(
        &ssr::db()?,
        &ssr::revoked()?,
        &client_id,
        &ssr::actor(&me),
    )
    .await
    .map_err(ssr::failed)?;
    ssr::redirect_with(
        &crate::paths::admin_client(&client_id),
        &[
            ("revoked_grants", &done.grants_revoked.to_string()),
            ("revoked_families", &done.families_revoked.to_string()),
        ],
    );
    Ok(())
}

#[server(endpoint = "console/rotate_secret")]
pub async fn rotate_client_secret(client_id: String) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let secret = crate::domain::clients::rotate_secret(&ssr::db()?, &client_id, &ssr::actor(&me))
        .await
        .map_err(ssr::failed)?;
    flash_secret(&client_id, secret.0).await?;
    ssr::redirect_with(
        &crate::paths::admin_client(&client_id),
        &[("saved", "secret")],
    );
    Ok(())
}

#[server(endpoint = "console/delete_client")]
pub async fn delete_client(client_id: String, name: String) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let done = crate::domain::admin::delete_client(
        &ssr::db()?,
        &ssr::revoked()?,
        &client_id,
        &ssr::actor(&me),
    )
    .await
    .map_err(ssr::failed)?;
    ssr::redirect_with(
        crate::paths::ADMIN_CLIENTS,
        &[
            ("deleted", &name),
            ("revoked_families", &done.families_revoked.to_string()),
        ],
    );
    Ok(())
}

#[server(endpoint = "console/create_client")]
pub async fn create_client(
    kind: String,
    #[server(flatten)] form: RegistrationForm,
) -> Result<(), ServerFnError> {
    use crate::domain::clients::{self, ClientKind, NewClient};
    let me = ssr::require_admin().await?;
    let kind = match kind.as_str() {
        "confidential" => ClientKind::Confidential,
        "public" => ClientKind::Public,
        _ => return Err(ssr::unknown_choice("kind", &["confidential", "public"])),
    };
    let metadata = form.metadata().applied_to(&Default::default());
    let new = NewClient {
        name: form.name,
        kind,
        redirect_uris: words(&form.redirect_uris),
        post_logout_redirect_uris: words(&form.post_logout_redirect_uris),
        grant_types: grant_types(
            form.grant_code,
            form.grant_refresh,
            form.grant_client_credentials,
        )?,
        extra_scopes: words(&form.extra_scopes),
        backchannel_logout_uri: optional(&form.backchannel_logout_uri),
        backchannel_logout_session_required: form.backchannel_logout_session_required.is_some(),
        metadata,
    };
    let (client, secret) = clients::add_client_by(&ssr::db()?, &new, &ssr::actor(&me))
        .await
        .map_err(ssr::failed)?;
    if let Some(secret) = secret {
        flash_secret(&client.client_id, secret.0).await?;
    }
    ssr::redirect_with(
        &crate::paths::admin_client(&client.client_id),
        &[("saved", "created")],
    );
    Ok(())
}

/// Edits a client's registration (same rules as creating one).
#[server(endpoint = "console/update_client")]
pub async fn update_client(
    client_id: String,
    #[server(flatten)] form: RegistrationForm,
) -> Result<(), ServerFnError> {
    use crate::domain::clients::{self, ClientChange};
    let me = ssr::require_admin().await?;
    let change = ClientChange {
        metadata: form.metadata(),
        name: Some(form.name),
        redirect_uris: Some(words(&form.redirect_uris)),
        post_logout_redirect_uris: Some(words(&form.post_logout_redirect_uris)),
        grant_types: Some(grant_types(
            form.grant_code,
            form.grant_refresh,
            form.grant_client_credentials,
        )?),
        extra_scopes: Some(words(&form.extra_scopes)),
        backchannel_logout_uri: Some(optional(&form.backchannel_logout_uri)),
        backchannel_logout_session_required: Some(
            form.backchannel_logout_session_required.is_some(),
        ),
    };
    clients::update_client(&ssr::db()?, &client_id, &change, &ssr::actor(&me))
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(
        &crate::paths::admin_client(&client_id),
        &[("saved", "registration")],
    );
    Ok(())
}

/// Makes a client a resource server (its audience and the scopes it serves),
/// or, with `remove` set, an ordinary client again.
#[server(endpoint = "console/resource_server")]
pub async fn save_resource_server(
    client_id: String,
    #[server(default)] audience: String,
    #[server(default)] scopes: String,
    #[server(default)] remove: String,
) -> Result<(), ServerFnError> {
    use crate::domain::resource_servers;
    let me = ssr::require_admin().await?;
    let db = ssr::db()?;
    if remove.is_empty() {
        resource_servers::set(
            &db,
            &client_id,
            &audience,
            &words(&scopes),
            &ssr::actor(&me),
        )
        .await
        .map_err(ssr::failed)?;
    } else {
        resource_servers::remove(&db, &client_id, &ssr::actor(&me))
            .await
            .map_err(ssr::failed)?;
    }
    ssr::redirect_with(
        &crate::paths::admin_client(&client_id),
        &[("saved", "resource_server")],
    );
    Ok(())
}

/// A textarea or input of URIs or scopes, split on whitespace.
#[cfg(feature = "ssr")]
fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// A text input that may be left empty.
#[cfg(feature = "ssr")]
fn optional(s: &str) -> Option<String> {
    Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The grant-type checkboxes; at least one must be ticked.
#[cfg(feature = "ssr")]
fn grant_types(
    code: Option<String>,
    refresh: Option<String>,
    client_credentials: Option<String>,
) -> Result<Vec<crate::domain::clients::GrantType>, ServerFnError> {
    use crate::domain::clients::GrantType;
    let chosen: Vec<GrantType> = [
        (code, GrantType::AuthorizationCode),
        (refresh, GrantType::RefreshToken),
        (client_credentials, GrantType::ClientCredentials),
    ]
    .into_iter()
    .filter_map(|(on, g)| on.map(|_| g))
    .collect();
    if chosen.is_empty() {
        return Err(ssr::refuse(
            400,
            "grant_type: choose at least one grant type",
        ));
    }
    Ok(chosen)
}

// The scope catalogue (`domain::scopes`).

/// The catalogue, each scope with the clients registered for it.
#[server(endpoint = "console/scopes")]
pub async fn get_admin_scopes() -> Result<(CurrentUser, Vec<AdminScope>), ServerFnError> {
    let me = ssr::require_admin().await?;
    let scopes = crate::domain::scopes::list_with_clients(&ssr::db()?)
        .await
        .map_err(ssr::failed)?
        .into_iter()
        .map(|(e, clients)| AdminScope {
            clients,
            scope: e.scope,
            description: e.description,
            sensitive: e.sensitive,
            updated_at: e.updated_at,
        })
        .collect();
    Ok((ssr::current_user(&me).await?, scopes))
}

/// Adds a scope to the catalogue or changes its words and sensitivity.
#[server(endpoint = "console/save_scope")]
pub async fn save_scope(
    scope: String,
    description: String,
    #[server(default)] sensitive: Option<String>,
) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let entry = crate::domain::scopes::define(
        &ssr::db()?,
        &scope,
        &description,
        Some(sensitive.is_some()),
        &ssr::actor(&me),
    )
    .await
    .map_err(ssr::failed)?;
    ssr::redirect_with(crate::paths::ADMIN_SCOPES, &[("saved", &entry.scope)]);
    Ok(())
}

/// Removes a scope no client is registered for.
#[server(endpoint = "console/remove_scope")]
pub async fn remove_scope(scope: String) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    crate::domain::scopes::remove(&ssr::db()?, &scope, &ssr::actor(&me))
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(crate::paths::ADMIN_SCOPES, &[("removed", &scope)]);
    Ok(())
}

#[server(endpoint = "console/users")]
pub async fn get_admin_users(q: String) -> Result<(CurrentUser, Vec<AdminUser>), ServerFnError> {
    let me = ssr::require_admin().await?;
    let q = q.trim();
    let list = crate::domain::admin::list_users(&ssr::db()?, (!q.is_empty()).then_some(q))
        .await
        .map_err(ssr::failed)?;
    Ok((
        ssr::current_user(&me).await?,
        list.into_iter().map(ssr::user).collect(),
    ))
}

#[server(endpoint = "console/create_user")]
pub async fn create_user(
    username: String,
    password: String,
    is_admin: Option<String>,
) -> Result<(), ServerFnError> {
    let me = ssr::require_admin().await?;
    let user = crate::domain::users::add_user_by(
        &ssr::db()?,
        &username,
        &password,
        is_admin.is_some(),
        &ssr::actor(&me),
    )
    .await
    .map_err(ssr::failed)?;
    ssr::redirect_with(&crate::paths::admin_user(&user.id), &[("saved", "created")]);
    Ok(())
}

#[server(endpoint = "console/user")]
pub async fn get_admin_user(
    user_id: String,
) -> Result<(CurrentUser, Option<AdminUserDetail>), ServerFnError> {
    use crate::{
        domain::{admin, my_apps::describe_user_agent, DomainError},
        model::{AdminUserApp, AdminUserSession},
    };
    let me = ssr::require_admin().await?;
    let db = ssr::db()?;
    let detail = match admin::user_detail(&db, &user_id).await {
        Ok(d) => d,
        Err(DomainError::NotFound) => {
            ssr::set_status(404);
            return Ok((ssr::current_user(&me).await?, None));
        }
        Err(e) => return Err(ssr::failed(e)),
    };
    let sign_in_locked_until = crate::domain::throttle::status(&db, &detail.user.username)
        .await
        .map_err(ssr::failed)?;
    Ok((
        ssr::current_user(&me).await?,
        Some(AdminUserDetail {
            user: ssr::user(detail.user),
            apps: detail
                .apps
                .into_iter()
                .map(|a| AdminUserApp {
                    client_id: a.client_id,
                    client_name: a.client_name,
                    scopes: a.scopes,
                    granted_at: a.granted_at,
                    last_used_at: a.last_used_at,
                    active_families: a.active_families,
                })
                .collect(),
            sessions: detail
                .sessions
                .into_iter()
                .map(|s| AdminUserSession {
                    device: describe_user_agent(&s.user_agent),
                    ip: s.ip,
                    started_at: s.created_at,
                    last_seen_at: s.last_seen_at,
                })
                .collect(),
            sign_in_locked_until,
        }),
    ))
}

/// Disable/enable, grant/remove admin, lift a sign-in lockout: `what` is
/// `disable`, `enable`, `make_admin`, `remove_admin` or `clear_throttle`.
#[server(endpoint = "console/update_user")]
pub async fn update_user(user_id: String, what: String) -> Result<(), ServerFnError> {
    use crate::domain::admin::{self, UserChange};
    let me = ssr::require_admin().await?;
    if what == "clear_throttle" {
        let db = ssr::db()?;
        let user = crate::domain::users::find_by_id(&db, &user_id)
            .await
            .map_err(ssr::failed)?
            .ok_or_else(|| ssr::failed(crate::domain::DomainError::NotFound))?;
        crate::domain::throttle::clear(&db, &user.id, &user.username, &ssr::actor(&me))
            .await
            .map_err(ssr::failed)?;
        ssr::redirect_with(
            &crate::paths::admin_user(&user_id),
            &[("saved", "clear_throttle")],
        );
        return Ok(());
    }
    let change = match what.as_str() {
        "disable" => UserChange {
            disabled: Some(true),
            ..Default::default()
        },
        "enable" => UserChange {
            disabled: Some(false),
            ..Default::default()
        },
        "make_admin" => UserChange {
            is_admin: Some(true),
            ..Default::default()
        },
        "remove_admin" => UserChange {
            is_admin: Some(false),
            ..Default::default()
        },
        _ => {
            return Err(ssr::unknown_choice(
                "what",
                &[
                    "disable",
                    "enable",
                    "make_admin",
                    "remove_admin",
                    "clear_throttle",
                ],
            ))
        }
    };
    let done = admin::update_user(
        &ssr::db()?,
        &ssr::revoked()?,
        &user_id,
        change,
        &ssr::actor(&me),
    )
    .await
    .map_err(ssr::failed)?;
    let mut query = vec![("saved".to_string(), what)];
    if let Some(cut) = done.cut_off {
        query.push(("revoked_grants".into(), cut.grants_revoked.to_string()));
        query.push(("sessions_ended".into(), cut.sessions_ended.to_string()));
    }
    let pairs: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ssr::redirect_with(&crate::paths::admin_user(&user_id), &pairs);
    Ok(())
}

/// "Revoke all of this user's apps" (`what = apps`) or "Sign out everywhere"
/// (`what = sessions`). Any other `what` is refused with 400 and changes nothing.
#[server(endpoint = "console/cut_user")]
pub async fn cut_user_off(user_id: String, what: String) -> Result<(), ServerFnError> {
    use crate::domain::admin;
    let me = ssr::require_admin().await?;
    let (db, revoked, actor) = (ssr::db()?, ssr::revoked()?, ssr::actor(&me));
    let query: Vec<(&str, String)> = match what.as_str() {
        "apps" => {
            let done = admin::revoke_user_apps(
                &db,
                &revoked,
                &user_id,
                &actor,
                "revoked by an administrator",
            )
            .await
            .map_err(ssr::failed)?;
            vec![("revoked_grants", done.grants_revoked.to_string())]
        }
        "sessions" => {
            let done = admin::sign_out_everywhere(&db, &revoked, &user_id, &actor)
                .await
                .map_err(ssr::failed)?;
            vec![("sessions_ended", done.sessions_ended.to_string())]
        }
        _ => return Err(ssr::unknown_choice("what", &["apps", "sessions"])),
    };
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ssr::redirect_with(&crate::paths::admin_user(&user_id), &pairs);
    Ok(())
}

/// The audit log page: filters as typed (times as `YYYY-MM-DD`).
#[server(endpoint = "console/audit")]
pub async fn get_audit(
    user: String,
    client: String,
    kind: String,
    from: String,
    to: String,
    page: i64,
) -> Result<(CurrentUser, Page<AuditLine>), ServerFnError> {
    use crate::domain::audit_search::{self, parse_time, AuditFilter};
    let me = ssr::require_admin().await?;
    let time = |field: &'static str, raw: &str, end: bool| -> Result<Option<i64>, ServerFnError> {
        if raw.trim().is_empty() {
            Ok(None)
        } else {
            parse_time(field, raw.trim(), end)
                .map(Some)
                .map_err(ssr::failed)
        }
    };
    let filter = AuditFilter {
        user: Some(user),
        client: Some(client),
        kind: Some(kind),
        from: time("from", &from, false)?,
        to: time("to", &to, true)?,
    }
    .validated()
    .map_err(ssr::failed)?;
    // Any page number: the console shows the nearest page that exists.
    let page = crate::model::PageRequest::clamped(page, audit_search::DEFAULT_PER_PAGE);
    let found = audit_search::search(&ssr::db()?, &filter, page)
        .await
        .map_err(ssr::failed)?;
    let text = |v: Option<String>| v.unwrap_or_default();
    Ok((
        ssr::current_user(&me).await?,
        Page {
            items: found
                .events
                .into_iter()
                .map(|e| AuditLine {
                    at: e.at,
                    kind: e.kind,
                    actor: text(
                        e.actor_user_id
                            .or(e.actor_client_id.map(|c| format!("client {c}"))),
                    ),
                    subject: text(e.subject_user_id),
                    client: text(e.client_id),
                    ip: text(e.ip),
                    detail: e.detail.to_string(),
                })
                .collect(),
            total: found.total,
            page: found.page,
            per_page: found.per_page,
        },
    ))
}

// ---------------------------------------------------------------------------
// Sign-in providers (upstream OpenID Connect providers)
// ---------------------------------------------------------------------------

/// The sign-in providers page: every provider, and the redirect URI to
/// register at a new one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamsView {
    pub me: CurrentUser,
    pub providers: Vec<crate::model::AdminUpstream>,
    pub redirect_uri: String,
}

/// One provider's page; `detail` is `None` (and the status 404) for an id
/// that names no provider.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpstreamView {
    pub me: CurrentUser,
    pub detail: Option<crate::model::AdminUpstreamDetail>,
    pub redirect_uri: String,
}

/// A provider as the add and edit forms post it. Checkboxes are absent when
/// not ticked; the secret is write-only (empty when editing: keep it); the
/// issuer is read on adding only (linked users depend on it).
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct UpstreamForm {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Space-separated, besides `openid`.
    pub scopes: String,
    pub revoke_at_logout: Option<String>,
    pub end_upstream_session: Option<String>,
    /// Empty: discovery's.
    pub revocation_endpoint: String,
    /// Empty: RFC 7009's `token`.
    pub revocation_token_param: String,
    /// `name=value` lines.
    pub revocation_extra_params: String,
}

/// Never prints the secret (server functions' arguments are `Debug`).
impl std::fmt::Debug for UpstreamForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamForm")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("revoke_at_logout", &self.revoke_at_logout)
            .field("end_upstream_session", &self.end_upstream_session)
            .field("revocation_endpoint", &self.revocation_endpoint)
            .field("revocation_token_param", &self.revocation_token_param)
            .field("revocation_extra_params", &self.revocation_extra_params)
            .finish()
    }
}

#[cfg(feature = "ssr")]
mod upstreams {
    use std::collections::BTreeMap;

    use leptos::prelude::ServerFnError;

    use super::ssr;
    use crate::{
        domain::upstream::{self, Provider, ProviderHealth},
        model::{AdminRevocationFailure, AdminUpstream, AdminUpstreamHealth},
    };

    pub fn view(p: Provider) -> AdminUpstream {
        AdminUpstream {
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            client_id: p.client_id,
            scopes: p.scopes,
            revoke_at_logout: p.revoke_at_logout,
            end_upstream_session: p.end_upstream_session,
            revocation_endpoint: p.revocation_endpoint,
            revocation_token_param: p.revocation_token_param,
            revocation_extra_params: p.revocation_extra_params.into_iter().collect(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    pub fn health(h: ProviderHealth) -> AdminUpstreamHealth {
        AdminUpstreamHealth {
            linked_users: h.linked_users,
            live_sign_ins: h.live_sign_ins,
            pending_revocations: h.pending_revocations,
            revoked_30d: h.revoked_30d,
            gave_up_30d: h.gave_up_30d,
            failures: h
                .failures
                .into_iter()
                .map(|f| AdminRevocationFailure {
                    requested_at: f.requested_at,
                    attempts: i64::from(f.attempts),
                    last_error: f.last_error,
                    next_attempt_at: f.next_attempt_at,
                    gave_up: f.gave_up,
                    revoked: f.revoked,
                })
                .collect(),
        }
    }

    /// The provider with exactly this id (`find` also takes a name), or `None`.
    pub async fn find(db: &crate::domain::Db, id: &str) -> Result<Option<Provider>, ServerFnError> {
        Ok(upstream::find(db, id)
            .await
            .map_err(ssr::failed)?
            .filter(|p| p.id == id))
    }

    /// The extra-parameters textarea: `name=value` lines, blank lines skipped.
    pub fn extra_params(raw: &str) -> Result<BTreeMap<String, String>, ServerFnError> {
        let lines: Vec<String> = raw
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        upstream::parse_param_pairs(&lines).map_err(ssr::failed)
    }
}

#[server(endpoint = "console/upstreams")]
pub async fn get_admin_upstreams() -> Result<UpstreamsView, ServerFnError> {
    let me = ssr::require_admin().await?;
    let settings = ssr::upstream_settings()?;
    let list = crate::domain::upstream::list(&ssr::db()?)
        .await
        .map_err(ssr::failed)?;
    Ok(UpstreamsView {
        me: ssr::current_user(&me).await?,
        providers: list.into_iter().map(upstreams::view).collect(),
        redirect_uri: settings.redirect_uri().to_owned(),
    })
}

#[server(endpoint = "console/upstream")]
pub async fn get_admin_upstream(provider_id: String) -> Result<UpstreamView, ServerFnError> {
    let me = ssr::require_admin().await?;
    let settings = ssr::upstream_settings()?;
    let db = ssr::db()?;
    let detail = match upstreams::find(&db, &provider_id).await? {
        Some(p) => {
            let health = crate::domain::upstream::health(&db, &p.id)
                .await
                .map_err(ssr::failed)?;
            Some(crate::model::AdminUpstreamDetail {
                provider: upstreams::view(p),
                health: upstreams::health(health),
            })
        }
        None => {
            ssr::set_status(404);
            None
        }
    };
    Ok(UpstreamView {
        me: ssr::current_user(&me).await?,
        detail,
        redirect_uri: settings.redirect_uri().to_owned(),
    })
}

/// "Add provider": nothing is fetched from the provider now (discovery runs
/// at the first sign-in through it).
#[server(endpoint = "console/add_upstream")]
pub async fn add_upstream(#[server(flatten)] form: UpstreamForm) -> Result<(), ServerFnError> {
    use crate::domain::upstream::{self, NewProvider};
    let me = ssr::require_admin().await?;
    let settings = ssr::upstream_settings()?;
    let new = NewProvider {
        revoke_at_logout: form.revoke_at_logout.is_some(),
        end_upstream_session: form.end_upstream_session.is_some(),
        revocation_extra_params: upstreams::extra_params(&form.revocation_extra_params)?,
        scopes: words(&form.scopes),
        revocation_endpoint: optional(&form.revocation_endpoint),
        revocation_token_param: optional(&form.revocation_token_param),
        name: form.name,
        issuer: form.issuer,
        client_id: form.client_id,
        client_secret: form.client_secret,
    };
    let provider = upstream::add(&ssr::db()?, settings.sealer(), &new, &ssr::actor(&me))
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(
        &crate::paths::admin_upstream(&provider.id),
        &[("saved", "added")],
    );
    Ok(())
}

/// Saves a provider's settings: only the fields that differ from what is
/// stored are changed (and audited); an empty secret keeps the current one.
#[server(endpoint = "console/update_upstream")]
pub async fn update_upstream(
    provider_id: String,
    #[server(flatten)] form: UpstreamForm,
) -> Result<(), ServerFnError> {
    use crate::domain::{upstream, DomainError};
    let me = ssr::require_admin().await?;
    let settings = ssr::upstream_settings()?;
    let db = ssr::db()?;
    let Some(now) = upstreams::find(&db, &provider_id).await? else {
        return Err(ssr::failed(DomainError::NotFound));
    };
    fn differs<T: PartialEq>(stored: &T, posted: T) -> Option<T> {
        (stored != &posted).then_some(posted)
    }
    let change = upstream::ProviderChange {
        name: differs(&now.name, form.name.trim().to_owned()),
        client_id: differs(&now.client_id, form.client_id.trim().to_owned()),
        client_secret: (!form.client_secret.is_empty()).then(|| form.client_secret.clone()),
        scopes: differs(
            &now.scopes,
            upstream::validate_scopes(&words(&form.scopes)).map_err(ssr::failed)?,
        ),
        revoke_at_logout: differs(&now.revoke_at_logout, form.revoke_at_logout.is_some()),
        end_upstream_session: differs(
            &now.end_upstream_session,
            form.end_upstream_session.is_some(),
        ),
        revocation_endpoint: differs(
            &now.revocation_endpoint,
            optional(&form.revocation_endpoint),
        ),
        revocation_token_param: differs(
            &now.revocation_token_param,
            optional(&form.revocation_token_param),
        ),
        revocation_extra_params: differs(
            &now.revocation_extra_params,
            upstreams::extra_params(&form.revocation_extra_params)?,
        ),
    };
    let saved = if change == upstream::ProviderChange::default() {
        "unchanged"
    } else {
        upstream::update(&db, settings.sealer(), &now.id, &change, &ssr::actor(&me))
            .await
            .map_err(ssr::failed)?;
        "settings"
    };
    ssr::redirect_with(&crate::paths::admin_upstream(&now.id), &[("saved", saved)]);
    Ok(())
}

/// "Remove provider": no new sign-ins through it; its users stay linked.
#[server(endpoint = "console/remove_upstream")]
pub async fn remove_upstream(provider_id: String) -> Result<(), ServerFnError> {
    use crate::domain::{upstream, DomainError};
    let me = ssr::require_admin().await?;
    let db = ssr::db()?;
    let Some(provider) = upstreams::find(&db, &provider_id).await? else {
        return Err(ssr::failed(DomainError::NotFound));
    };
    upstream::remove(&db, &provider.id, &ssr::actor(&me))
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(
        crate::paths::ADMIN_UPSTREAMS,
        &[("removed", &provider.name)],
    );
    Ok(())
}
