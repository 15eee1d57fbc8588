//! What server functions need from the request: the database and the
//! browser's sign-in, resolved the same way the server's page guard does.

use leptos::prelude::*;
use tower_sessions::Session;

use crate::{
    domain::{
        login_sessions::{self, ClientInfo, SignedIn, SESSION_KEY},
        revocation::RevokedSets,
        Db, DomainError,
    },
    model::CurrentUser,
};

/// The database, provided as context by the server for every render and server function.
pub fn db() -> Result<Db, ServerFnError> {
    use_context::<Db>().ok_or_else(|| ServerFnError::new("database missing from context"))
}

/// The live sign-in of this request's browser session, if any.
pub async fn signed_in() -> Result<Option<SignedIn>, ServerFnError> {
    let db = db()?;
    let session: Session = leptos_axum::extract().await?;
    let info = use_context::<ClientInfo>().unwrap_or_default();
    signed_in_from(&db, &session, &info).await.map_err(|e| {
        tracing::error!(error = %e, "resolving the sign-in failed");
        ServerFnError::new("something went wrong")
    })
}

/// Resolves a browser session to its live sign-in (shared with the server's guards).
pub async fn signed_in_from(
    db: &Db,
    session: &Session,
    info: &ClientInfo,
) -> Result<Option<SignedIn>, crate::domain::DomainError> {
    let id: Option<String> = session
        .get(SESSION_KEY)
        .await
        .map_err(|e| crate::domain::DomainError::Internal(e.to_string()))?;
    match id {
        Some(id) => login_sessions::resolve(db, &id, info).await,
        None => Ok(None),
    }
}

/// The signed-in user, or an error (401) for a browser without a live sign-in.
pub async fn require_signed_in() -> Result<SignedIn, ServerFnError> {
    match signed_in().await? {
        Some(s) => Ok(s),
        None => {
            set_status(401);
            Err(ServerFnError::new(
                "You are not signed in. Sign in and try again.",
            ))
        }
    }
}

pub fn current_user(signed_in: &SignedIn) -> CurrentUser {
    CurrentUser {
        username: signed_in.user.username.clone(),
        is_admin: signed_in.user.is_admin,
    }
}

/// The in-memory revoked sets, provided as context by the server.
pub fn revoked() -> Result<RevokedSets, ServerFnError> {
    use_context::<RevokedSets>()
        .ok_or_else(|| ServerFnError::new("revoked sets missing from context"))
}

/// Where the request came from (for sign-in sessions and the audit log).
pub fn client_info() -> ClientInfo {
    use_context::<ClientInfo>().unwrap_or_default()
}

pub fn set_status(code: u16) {
    if let (Some(response), Ok(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(code),
    ) {
        response.set_status(status);
    }
}

/// A domain failure as the browser sees it: "not found" (404) for ids that
/// are not the user's, the message for bad input, and a generic message with
/// the details only in the log for everything else.
pub fn failed(e: DomainError) -> ServerFnError {
    match e {
        DomainError::NotFound => {
            set_status(404);
            ServerFnError::new("Not found: it may have been revoked already.")
        }
        e if e.is_caller_error() => {
            set_status(400);
            ServerFnError::new(e.to_string())
        }
        e => {
            let request_id = crate::domain::secrets::new_id();
            tracing::error!(%request_id, error = %e, "server function failed");
            set_status(500);
            ServerFnError::new(format!(
                "Something went wrong. Please try again (request id {request_id})."
            ))
        }
    }
}

/// After an action: back to `path` with a message in the query. Without
/// JavaScript this is the form post's 302; hydrated, the router navigates.
pub fn redirect_with(path: &str, query: &[(&str, &str)]) {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        serializer.append_pair(k, v);
    }
    leptos_axum::redirect(&format!("{path}?{}", serializer.finish()));
}

/// Deletes this browser's session record (after its sign-in ended).
pub async fn forget_browser_session() -> Result<(), ServerFnError> {
    let session: Session = leptos_axum::extract().await?;
    session
        .flush()
        .await
        .map_err(|e| ServerFnError::new(format!("could not end the browser session: {e}")))
}
