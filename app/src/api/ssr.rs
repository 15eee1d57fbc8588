//! What server functions need from the request: the database and the
//! browser's sign-in, resolved the same way the server's page guard does.

use leptos::prelude::*;
use tower_sessions::Session;

use crate::domain::{
    login_sessions::{self, ClientInfo, SignedIn, SESSION_KEY},
    Db,
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
