//! Server functions: thin. Each checks the browser session, calls one domain
//! function and maps the result to a wire type from [`crate::model`].

use leptos::prelude::*;

use crate::model::CurrentUser;

#[cfg(feature = "ssr")]
pub mod ssr;

/// The signed-in user, or `None` when the browser has no live sign-in.
#[server(endpoint = "current_user")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, ServerFnError> {
    let signed_in = ssr::signed_in().await?;
    Ok(signed_in.map(|s| CurrentUser {
        username: s.user.username,
        is_admin: s.user.is_admin,
    }))
}
