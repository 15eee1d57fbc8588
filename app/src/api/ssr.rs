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
    signed_in_from(&db, &session, &info).await.map_err(failed)
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
        None => Err(refuse(401, "You are not signed in. Sign in and try again.")),
    }
}

/// The signed-in user as the top bar shows them, with their unseen security events.
pub async fn current_user(signed_in: &SignedIn) -> Result<CurrentUser, ServerFnError> {
    let unseen_security = crate::domain::security::unseen(&db()?, &signed_in.user.id)
        .await
        .map_err(failed)?;
    Ok(CurrentUser {
        username: signed_in.user.username.clone(),
        is_admin: signed_in.user.is_admin,
        unseen_security,
    })
}

/// The in-memory revoked sets, provided as context by the server.
pub fn revoked() -> Result<RevokedSets, ServerFnError> {
    use_context::<RevokedSets>()
        .ok_or_else(|| ServerFnError::new("revoked sets missing from context"))
}

/// What the console's sign-in provider pages need from the server: the key
/// upstream client secrets are sealed under (`upstream::sealer` of the master
/// key) and the redirect URI to register at a provider (from the configured
/// issuer). Built once by the server and provided as context; cheap to clone.
/// Not printable: `{:?}` shows only the redirect URI.
#[derive(Clone)]
pub struct UpstreamSettings(std::sync::Arc<(crate::domain::keys::MasterKey, String)>);

impl UpstreamSettings {
    pub fn new(sealer: crate::domain::keys::MasterKey, redirect_uri: String) -> UpstreamSettings {
        UpstreamSettings(std::sync::Arc::new((sealer, redirect_uri)))
    }

    /// The key upstream client secrets are encrypted under.
    pub fn sealer(&self) -> &crate::domain::keys::MasterKey {
        &self.0 .0
    }

    /// `{issuer}/signin/upstream/callback`: what each provider must allow.
    pub fn redirect_uri(&self) -> &str {
        &self.0 .1
    }
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("redirect_uri", &self.redirect_uri())
            .finish_non_exhaustive()
    }
}

/// The upstream settings, provided as context by the server.
pub fn upstream_settings() -> Result<UpstreamSettings, ServerFnError> {
    use_context::<UpstreamSettings>()
        .ok_or_else(|| ServerFnError::new("upstream settings missing from context"))
}

/// Where the request came from (for sign-in sessions and the audit log).
pub fn client_info() -> ClientInfo {
    use_context::<ClientInfo>().unwrap_or_default()
}

/// Sets the response's status (e.g. 404 for a page render of a missing app).
/// Not for a plain form post that goes back to its form (see [`refuse`]): its
/// answer has to stay a redirect.
pub fn set_status(code: u16) {
    if form_page().is_some() {
        return;
    }
    if let (Some(response), Ok(status)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        axum::http::StatusCode::from_u16(code),
    ) {
        response.set_status(status);
    }
}

/// A server function refuses: the error with `message`, and what the caller gets.
///
/// - Hydrated (the server-function client): HTTP `status` with the error; the
///   page's `ActionError` shows it.
/// - A plain HTML form post (JavaScript off: `POST`, `Accept: text/html`, with
///   a `Referer`): `302` back to the form's page (the Referer's path; its old
///   query, e.g. an earlier action's notice, dropped) with the error in leptos'
///   `__path`/`__err` query, which `ServerAction::new` reads on that page, so the
///   same `ActionError` shows it inline. A 4xx status here would turn leptos'
///   form redirect into the raw `ServerError|…` body as the browser's page.
/// - A form post without a `Referer`: the status and the error as text (there
///   is no page to go back to).
pub fn refuse(status: u16, message: impl std::fmt::Display) -> ServerFnError {
    let error = ServerFnError::new(message);
    if back_to_form(&error).is_none() {
        set_status(status);
    }
    error
}

/// For a plain HTML form post: the page the form is on, from the `Referer`,
/// without query or fragment. `None` for any other request (a page render is a
/// GET; the server-function client does not accept `text/html`).
fn form_page() -> Option<url::Url> {
    use axum::http::{header, Method};
    let parts = use_context::<axum::http::request::Parts>()?;
    let accepts_html = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if parts.method != Method::POST || !accepts_html {
        return None;
    }
    let mut page = url::Url::parse(parts.headers.get(header::REFERER)?.to_str().ok()?).ok()?;
    // Only the path is used (a relative Location); `//host` would leave the site.
    if page.path().starts_with("//") {
        return None;
    }
    page.set_query(None);
    page.set_fragment(None);
    Some(page)
}

/// Points a plain form post's redirect back to its form's page with `error`
/// (see [`refuse`]); `None` when the request is not one.
fn back_to_form(error: &ServerFnError) -> Option<()> {
    use leptos::server_fn::error::ServerFnUrlError;
    let page = form_page()?;
    let parts = use_context::<axum::http::request::Parts>()?;
    let response = use_context::<leptos_axum::ResponseOptions>()?;
    // The key `ServerAction::new` compares with its function's path.
    let with_error = ServerFnUrlError::new(parts.uri.path(), error.clone())
        .to_url(page.as_str())
        .ok()?;
    let location = format!("{}?{}", with_error.path(), with_error.query()?);
    // Replaces the Location leptos' form redirect set (the Referer as it was).
    response.insert_header(
        axum::http::header::LOCATION,
        axum::http::HeaderValue::from_str(&location).ok()?,
    );
    Some(())
}

/// A domain failure as the browser sees it: "not found" (404) for ids that
/// are not the user's, the message for bad input, and a generic message with
/// the details only in the log for everything else. See [`refuse`] for how
/// each kind of caller gets it.
pub fn failed(e: DomainError) -> ServerFnError {
    match e {
        DomainError::NotFound => refuse(404, "Not found: it may have been revoked already."),
        e if e.is_caller_error() => refuse(400, e),
        e => {
            let request_id = crate::domain::secrets::new_id();
            tracing::error!(%request_id, error = %e, "server function failed");
            refuse(
                500,
                format!("Something went wrong. Please try again (request id {request_id})."),
            )
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
    session.flush().await.map_err(|e| {
        failed(DomainError::Internal(format!(
            "ending the browser session: {e}"
        )))
    })
}
