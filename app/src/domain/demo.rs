//! Demo data for a first look: an admin, a user, two apps and the notes API
//! (a resource server following the revocation feed: the `latchkey-resource`
//! example `notes_api`), with fixed, printed credentials. Running it again
//! finds them and changes nothing.

use serde::Serialize;

use super::{
    clients::{self, ClientKind, ClientMetadata, ClientSecret, GrantType, NewClient},
    error::DomainResult,
    store::Db,
    users,
};

pub const ADMIN: (&str, &str) = ("admin", "latchkey-admin-demo");
pub const USER: (&str, &str) = ("alice", "alice-demo-password");
pub const CONFIDENTIAL_CLIENT: (&str, &str) =
    ("demo-notes", "demo-notes-secret-for-local-use-only");
pub const PUBLIC_CLIENT: &str = "demo-spa";
/// The example notes API (`cargo run -p latchkey-resource --example notes_api`).
pub const NOTES_API: (&str, &str) = ("demo-notes-api", "demo-notes-api-secret-for-local-use-only");
/// Its audience: where the example listens by default.
pub const NOTES_API_AUDIENCE: &str = "http://127.0.0.1:3200";

#[derive(Clone, Debug, Serialize)]
pub struct DemoAccount {
    pub username: String,
    /// `None` when the account existed with another password (or disabled): the demo one would not work.
    pub password: Option<String>,
    pub is_admin: bool,
    pub created: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct DemoClient {
    pub name: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub created: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub users: Vec<DemoAccount>,
    pub clients: Vec<DemoClient>,
}

/// Creates whatever demo data is missing and reports all of it.
pub async fn seed(db: &Db) -> DomainResult<DemoReport> {
    let mut accounts = Vec::new();
    for ((username, password), is_admin) in [(ADMIN, true), (USER, false)] {
        let (created, works) = match users::find_by_username(db, username).await? {
            Some(_) => (
                false,
                users::authenticate(db, username, password).await?.is_some(),
            ),
            None => {
                users::add_user(db, username, password, is_admin).await?;
                (true, true)
            }
        };
        accounts.push(DemoAccount {
            username: username.into(),
            password: works.then(|| password.into()),
            is_admin,
            created,
        });
    }

    // The demo app's own scopes, in the words people read (kept if an admin changed them).
    let catalogue = super::scopes::catalogue(db).await?;
    for (scope, words, sensitive) in [
        ("notes:read", "Read your notes", false),
        ("notes:write", "Write, change and delete your notes", true),
    ] {
        if !catalogue.offers(scope) {
            super::scopes::define(db, scope, words, Some(sensitive), &Default::default()).await?;
        }
    }
    let notes = NewClient {
        name: "Demo Notes".into(),
        kind: ClientKind::Confidential,
        redirect_uris: vec!["http://127.0.0.1:8080/callback".into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:8080/".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        extra_scopes: vec!["notes:read".into(), "notes:write".into()],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata: ClientMetadata {
            client_uri: Some("http://127.0.0.1:8080/".into()),
            policy_uri: Some("http://127.0.0.1:8080/privacy".into()),
            tos_uri: Some("http://127.0.0.1:8080/terms".into()),
            description: Some("Write notes and read them anywhere you sign in.".into()),
            logo_uri: None,
        },
    };
    let spa = NewClient {
        name: "Demo SPA".into(),
        kind: ClientKind::Public,
        redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:5173/".into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        extra_scopes: vec![],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata: ClientMetadata {
            client_uri: Some("http://127.0.0.1:5173/".into()),
            description: Some("A single-page app that runs in your browser.".into()),
            ..Default::default()
        },
    };
    let notes_api = NewClient {
        name: "Demo Notes API".into(),
        kind: ClientKind::Confidential,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::ClientCredentials],
        extra_scopes: vec![super::grants::REVOCATIONS_SCOPE.into()],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        metadata: Default::default(),
    };
    let mut demo_clients = Vec::new();
    for (client_id, secret, new) in [
        (CONFIDENTIAL_CLIENT.0, Some(CONFIDENTIAL_CLIENT.1), notes),
        (PUBLIC_CLIENT, None, spa),
        (NOTES_API.0, Some(NOTES_API.1), notes_api),
    ] {
        let secret = secret.map(|s| ClientSecret(s.into()));
        let created = match clients::find_client(db, client_id).await? {
            Some(_) => false,
            None => {
                clients::add_client_with_id(db, client_id, &new, secret.as_ref()).await?;
                true
            }
        };
        demo_clients.push(DemoClient {
            name: new.name,
            client_id: client_id.into(),
            client_secret: secret.map(|s| s.0),
            kind: new.kind,
            redirect_uris: new.redirect_uris,
            created,
        });
    }
    if super::resource_servers::of_client(db, NOTES_API.0)
        .await?
        .is_none()
    {
        super::resource_servers::set(
            db,
            NOTES_API.0,
            NOTES_API_AUDIENCE,
            &["notes:read".into(), "notes:write".into()],
            &super::audit::Actor::default(),
        )
        .await?;
    }
    Ok(DemoReport {
        users: accounts,
        clients: demo_clients,
    })
}
