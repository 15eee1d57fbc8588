//! Server functions: thin. Each checks the browser session, calls one domain
//! function and maps the result to a wire type from [`crate::model`].

use leptos::prelude::*;

use crate::model::{AppDetail, AppSummary, CurrentUser, Page, SignInSession};

pub mod admin;
#[cfg(feature = "ssr")]
pub mod ssr;

/// The signed-in user, or `None` when the browser has no live sign-in.
#[server(endpoint = "current_user")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, ServerFnError> {
    match ssr::signed_in().await? {
        Some(me) => Ok(Some(ssr::current_user(&me).await?)),
        None => Ok(None),
    }
}

/// The sign-in page's "Sign in with …" buttons: every upstream provider, by name.
#[server(endpoint = "upstream_buttons")]
pub async fn get_upstream_buttons() -> Result<Vec<crate::model::UpstreamButton>, ServerFnError> {
    let buttons = crate::domain::upstream::buttons(&ssr::db()?)
        .await
        .map_err(ssr::failed)?;
    Ok(buttons
        .into_iter()
        .map(|b| crate::model::UpstreamButton {
            id: b.id,
            name: b.name,
        })
        .collect())
}

/// What the My apps page needs: who is signed in and one page of their apps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppsView {
    pub user: CurrentUser,
    pub apps: Page<AppSummary>,
}

/// One page of the apps holding tokens for the signed-in user. Any `page`
/// is accepted: below 1 reads the first page, past the end the last.
#[server(endpoint = "my_apps")]
pub async fn get_my_apps(page: i64) -> Result<AppsView, ServerFnError> {
    use crate::domain::my_apps::{list_apps, PER_PAGE};
    let me = ssr::require_signed_in().await?;
    let page = crate::model::PageRequest::clamped(page, PER_PAGE);
    let apps = list_apps(&ssr::db()?, &me.user.id, page)
        .await
        .map_err(ssr::failed)?;
    Ok(AppsView {
        user: ssr::current_user(&me).await?,
        apps,
    })
}

/// One of the signed-in user's apps; `None` (and 404) if it is not theirs or not live.
#[server(endpoint = "app_detail")]
pub async fn get_app_detail(
    grant_id: String,
) -> Result<(CurrentUser, Option<AppDetail>), ServerFnError> {
    let me = ssr::require_signed_in().await?;
    let detail = crate::domain::my_apps::app_detail(&ssr::db()?, &me.user.id, &grant_id).await;
    let detail = match detail {
        Ok(d) => Some(d),
        Err(crate::domain::DomainError::NotFound) => {
            ssr::set_status(404);
            None
        }
        Err(e) => return Err(ssr::failed(e)),
    };
    Ok((ssr::current_user(&me).await?, detail))
}

/// "Revoke access": ends every token of one app for the signed-in user.
#[server(endpoint = "revoke_app")]
pub async fn revoke_app(grant_id: String) -> Result<String, ServerFnError> {
    let me = ssr::require_signed_in().await?;
    let name =
        crate::domain::my_apps::revoke_app(&ssr::db()?, &ssr::revoked()?, &me.user.id, &grant_id)
            .await
            .map_err(ssr::failed)?;
    ssr::redirect_with(crate::paths::HOME, &[("revoked", &name)]);
    Ok(name)
}

/// "Revoke all apps".
#[server(endpoint = "revoke_all_apps")]
pub async fn revoke_all_apps() -> Result<usize, ServerFnError> {
    let me = ssr::require_signed_in().await?;
    let done = crate::domain::my_apps::revoke_all_apps(&ssr::db()?, &ssr::revoked()?, &me.user.id)
        .await
        .map_err(ssr::failed)?;
    let n = done.grants.len();
    ssr::redirect_with(crate::paths::HOME, &[("revoked_all", &n.to_string())]);
    Ok(n)
}

/// "Sign out this session" for one app session (token family).
#[server(endpoint = "sign_out_app_session")]
pub async fn sign_out_app_session(
    grant_id: String,
    family_id: String,
) -> Result<String, ServerFnError> {
    let me = ssr::require_signed_in().await?;
    let name = crate::domain::my_apps::sign_out_app_session(
        &ssr::db()?,
        &ssr::revoked()?,
        &me.user.id,
        &family_id,
    )
    .await
    .map_err(ssr::failed)?;
    ssr::redirect_with(&crate::paths::app(&grant_id), &[("signed_out", &name)]);
    Ok(name)
}

/// What the Sessions page needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionsView {
    pub user: CurrentUser,
    pub sessions: Page<SignInSession>,
}

/// One page of the signed-in user's sign-in sessions; `page` as in [`get_my_apps`].
#[server(endpoint = "my_sessions")]
pub async fn get_my_sessions(page: i64) -> Result<SessionsView, ServerFnError> {
    use crate::domain::my_apps::{list_sign_ins, PER_PAGE};
    let me = ssr::require_signed_in().await?;
    let page = crate::model::PageRequest::clamped(page, PER_PAGE);
    let sessions = list_sign_ins(&ssr::db()?, &me, page)
        .await
        .map_err(ssr::failed)?;
    Ok(SessionsView {
        user: ssr::current_user(&me).await?,
        sessions,
    })
}

/// What the Security activity page needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityView {
    pub user: CurrentUser,
    pub events: Page<crate::model::SecurityEvent>,
}

/// One page of the signed-in user's security activity, newest first (`page`
/// as in [`get_my_apps`]); the events new since their last look are marked
/// unseen, and from now on count as seen.
#[server(endpoint = "security_activity")]
pub async fn get_security_activity(page: i64) -> Result<SecurityView, ServerFnError> {
    use crate::domain::security;
    let me = ssr::require_signed_in().await?;
    let db = ssr::db()?;
    let page = crate::model::PageRequest::clamped(page, security::PER_PAGE);
    let seen = security::seen(&db, &me.user.id)
        .await
        .map_err(ssr::failed)?;
    let newest = security::newest(&db, &me.user.id)
        .await
        .map_err(ssr::failed)?;
    let events = security::list(&db, &me.user.id, page, &seen)
        .await
        .map_err(ssr::failed)?;
    // Seen once the newest page is shown (later pages hold older events).
    if let Some(newest) = newest.filter(|n| *n > seen && events.page == 1) {
        security::mark_seen(&db, &me.user.id, &newest)
            .await
            .map_err(ssr::failed)?;
    }
    Ok(SecurityView {
        user: ssr::current_user(&me).await?,
        events,
    })
}

/// "Sign out" one sign-in session; the current one signs this browser out.
#[server(endpoint = "end_session")]
pub async fn end_session(session_id: String) -> Result<(), ServerFnError> {
    let me = ssr::require_signed_in().await?;
    let from = ssr::client_info();
    crate::domain::my_apps::end_sign_in(&ssr::db()?, &ssr::revoked()?, &me, &session_id, &from)
        .await
        .map_err(ssr::failed)?;
    if session_id == me.login_session_id {
        ssr::forget_browser_session().await?;
        ssr::redirect_with(crate::paths::SIGN_IN, &[("signed_out", "1")]);
    } else {
        ssr::redirect_with(crate::paths::SESSIONS, &[("ended", "1")]);
    }
    Ok(())
}

/// "Sign out all other sessions".
#[server(endpoint = "end_other_sessions")]
pub async fn end_other_sessions() -> Result<usize, ServerFnError> {
    let me = ssr::require_signed_in().await?;
    let from = ssr::client_info();
    let n = crate::domain::my_apps::end_other_sign_ins(&ssr::db()?, &ssr::revoked()?, &me, &from)
        .await
        .map_err(ssr::failed)?;
    ssr::redirect_with(crate::paths::SESSIONS, &[("ended", &n.to_string())]);
    Ok(n)
}
