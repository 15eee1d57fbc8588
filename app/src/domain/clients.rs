//! OAuth clients (relying parties and resource servers): registration rules,
//! creating, listing. The client secret is shown once and stored as a hash.

use serde::Serialize;

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    error::{DomainError, DomainResult},
    names::fold_key,
    secrets::{new_secret, random_token, sha256_hex},
    store::{is_unique_violation, now, Db},
};
use crate::on_db;

/// The grant types a client may be allowed (RFC 6749 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Holds a secret (a server-side app, a resource server).
    Confidential,
    /// Cannot keep a secret (a browser or mobile app): PKCE instead.
    Public,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Confidential => "confidential",
            ClientKind::Public => "public",
        }
    }
}

/// What an admin asks for when registering a client.
#[derive(Clone, Debug)]
pub struct NewClient {
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Empty: the default, authorization_code + refresh_token.
    pub grant_types: Vec<GrantType>,
    /// Scopes beyond `openid profile email offline_access` the client may ask for.
    pub extra_scopes: Vec<String>,
    /// Where logout tokens are POSTed (OpenID Connect Back-Channel Logout 1.0
    /// §2.2); `None`: the client gets none. See [`super::backchannel::validate_uri`].
    pub backchannel_logout_uri: Option<String>,
    /// §2.2: the client wants `sid` in logout tokens (default `false`).
    pub backchannel_logout_session_required: bool,
    /// Logo, home page, policy, terms, description.
    pub metadata: ClientMetadata,
}

/// A registered client, without its secret hash.
#[derive(Clone, Debug, Serialize)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub extra_scopes: Vec<String>,
    pub created_at: i64,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

/// A client secret, shown once at creation: never `Serialize` by accident, `[redacted]` in Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Client names: 1–100 printable characters, at least one of them visible;
/// unique by [`fold_key`] (any letter case or compatibility form) among
/// clients not deleted.
fn validate_name(raw: &str) -> DomainResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if fold_key(name).is_empty() {
        return Err(DomainError::invalid(
            "name",
            "must contain a visible character",
        ));
    }
    if name.chars().count() > 100 {
        return Err(DomainError::invalid(
            "name",
            "must be at most 100 characters",
        ));
    }
    if name.chars().any(super::names::is_unsafe_in_text) {
        return Err(DomainError::invalid(
            "name",
            "must not contain control characters, line breaks or direction overrides",
        ));
    }
    Ok(name.to_owned())
}

/// A redirect URI must be absolute and carry no fragment (RFC 6749 §3.1.2);
/// http(s) URIs need a host; script-ish schemes are refused outright.
pub fn validate_redirect_uri(field: &'static str, raw: &str) -> DomainResult<String> {
    let bad = |why: &str| DomainError::invalid(field, format!("{raw:?} {why}"));
    // Any whitespace, not only ASCII: a no-break space inside a URI is invisible in every list.
    if raw.is_empty() || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("must be an absolute URI without spaces"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("is not an absolute URI"))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(bad("must not contain a fragment (#...)"));
    }
    match url.scheme() {
        "javascript" | "data" | "vbscript" | "file" | "blob" | "about" => {
            Err(bad("uses a scheme that cannot be a redirect target"))
        }
        // WHATWG parsing forgives `https:///host` and `https:\\host`; a registered URI must not need forgiving.
        "http" | "https"
            if url.host_str().is_none_or(str::is_empty)
                || raw.contains('\\')
                || !raw[url.scheme().len()..].starts_with("://")
                || raw[url.scheme().len() + 3..].starts_with('/') =>
        {
            Err(bad("has no host"))
        }
        _ => Ok(raw.to_owned()),
    }
}

/// Whether `candidate` is one of the `registered` redirect URIs: an exact,
/// byte-for-byte string match (RFC 6749 §3.1.2.3; OAuth 2.0 Security BCP,
/// RFC 9700 §2.1). No normalisation of any kind: a different letter case
/// (even of the scheme or host), a trailing slash, a default port written
/// out, percent-encoding variants, userinfo or an added query are all other
/// URIs. The authorization request and the logout redirect compare through
/// this (the code redemption compares with its request's one URI the same way).
pub fn redirect_uri_matches(registered: &[String], candidate: &str) -> bool {
    registered.iter().any(|r| r == candidate)
}

/// A URL Latchkey itself calls, server to server (a back-channel logout URI,
/// an upstream issuer or endpoint): the redirect-URI rules (absolute, no
/// fragment, a host), and `https`, or `http` on a loopback host only
/// (`127.0.0.0/8`, `[::1]`, `localhost`) — what goes there are credentials. A
/// query is allowed. Returns it unchanged; `DomainError::Invalid` on `field`.
pub fn validate_server_url(field: &'static str, raw: &str) -> DomainResult<String> {
    let uri = validate_redirect_uri(field, raw)?;
    let url = url::Url::parse(&uri)
        .map_err(|_| DomainError::invalid(field, format!("{raw:?} is not an absolute URL")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(uri),
        "http" if loopback => Ok(uri),
        "http" => Err(DomainError::invalid(
            field,
            format!("{raw:?} must use https (http only on 127.0.0.1, [::1] or localhost)"),
        )),
        _ => Err(DomainError::invalid(
            field,
            format!("{raw:?} must be an https URL"),
        )),
    }
}

/// What people see of an app besides its name (RFC 7591 §2 client metadata):
/// its logo, home page, privacy policy and terms of service, and a short
/// description. `None`: not given. Shown on the consent page, in My apps and
/// on the app page ([`ClientMetadata::identity`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ClientMetadata {
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub description: Option<String>,
}

/// Longest metadata URI, in characters.
pub const METADATA_URI_MAX: usize = 500;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 300;

impl ClientMetadata {
    /// Checks every field and returns them as stored, blanks as `None`:
    /// - each URI: at most [`METADATA_URI_MAX`] characters, absolute, with a
    ///   host and no fragment, `https` (or `http` on a loopback host only),
    ///   without `user:password@` — a browser fetches or opens it, so
    ///   `javascript:`, `data:` and the like never pass; a logo over `http`
    ///   only on `localhost` or `127.0.0.1` (what the pages' CSP loads);
    /// - the description: at most [`DESCRIPTION_MAX`] characters, one
    ///   paragraph of plain text ([`super::names::is_unsafe_in_text`]).
    ///
    /// `DomainError::Invalid` names the field.
    pub fn validated(&self) -> DomainResult<ClientMetadata> {
        let uri = |field: &'static str, raw: &Option<String>| -> DomainResult<Option<String>> {
            let Some(raw) = raw.as_deref().map(str::trim).filter(|r| !r.is_empty()) else {
                return Ok(None);
            };
            if raw.chars().count() > METADATA_URI_MAX {
                return Err(DomainError::invalid(
                    field,
                    format!("must be at most {METADATA_URI_MAX} characters"),
                ));
            }
            let url = url::Url::parse(raw).map_err(|_| {
                DomainError::invalid(field, format!("{raw:?} is not an absolute URL"))
            })?;
            if !matches!(url.scheme(), "https" | "http") {
                return Err(DomainError::invalid(
                    field,
                    format!("{raw:?} must be an https URL (a browser opens or loads it)"),
                ));
            }
            // Browsers load a logo only where the pages' CSP allows (`csp`):
            // https anywhere, http on localhost or 127.0.0.1.
            if field == "logo_uri"
                && url.scheme() == "http"
                && !matches!(url.host_str(), Some("localhost" | "127.0.0.1"))
            {
                return Err(DomainError::invalid(
                    field,
                    format!("{raw:?} must use https (http only on localhost or 127.0.0.1)"),
                ));
            }
            let uri = validate_server_url(field, raw)?;
            if !url.username().is_empty() || url.password().is_some() {
                return Err(DomainError::invalid(
                    field,
                    format!("{raw:?} must not carry a user name or password"),
                ));
            }
            Ok(Some(uri))
        };
        let description = match self.description.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) if d.chars().count() > DESCRIPTION_MAX => {
                return Err(DomainError::invalid(
                    "description",
                    format!("must be at most {DESCRIPTION_MAX} characters"),
                ))
            }
            Some(d) if d.chars().any(super::names::is_unsafe_in_text) => {
                return Err(DomainError::invalid(
                    "description",
                    "must be one paragraph of plain text, without line breaks, control characters or direction overrides",
                ))
            }
            Some(d) => Some(d.to_owned()),
        };
        Ok(ClientMetadata {
            logo_uri: uri("logo_uri", &self.logo_uri)?,
            client_uri: uri("client_uri", &self.client_uri)?,
            policy_uri: uri("policy_uri", &self.policy_uri)?,
            tos_uri: uri("tos_uri", &self.tos_uri)?,
            description,
        })
    }

    /// The app as people see it: `name` with this metadata and the home
    /// page's host.
    pub fn identity(&self, name: &str) -> crate::model::AppIdentity {
        crate::model::AppIdentity {
            name: name.to_owned(),
            logo_uri: self.logo_uri.clone(),
            home_host: self
                .client_uri
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_owned)),
            client_uri: self.client_uri.clone(),
            policy_uri: self.policy_uri.clone(),
            tos_uri: self.tos_uri.clone(),
            description: self.description.clone(),
        }
    }
}

/// A scope token (RFC 6749 §3.3): printable ASCII except space, `"` and `\`.
pub(crate) fn validate_scope(raw: &str) -> DomainResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(DomainError::invalid(
            "scope",
            format!("{raw:?} is not a valid scope name"),
        ))
    }
}

impl NewClient {
    /// Checks every rule and returns the client as it will be stored.
    pub fn validated(&self) -> DomainResult<NewClient> {
        let name = validate_name(&self.name)?;
        let requested = if self.grant_types.is_empty() {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        } else {
            self.grant_types.clone()
        };
        let mut grant_types = Vec::new();
        for g in requested {
            if !grant_types.contains(&g) {
                grant_types.push(g);
            }
        }
        let has = |g| grant_types.contains(&g);
        if self.kind == ClientKind::Public && has(GrantType::ClientCredentials) {
            return Err(DomainError::invalid(
                "grant_type",
                "a public client cannot use client_credentials (it has no secret)",
            ));
        }
        if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
            return Err(DomainError::invalid(
                "grant_type",
                "refresh_token needs authorization_code (refresh tokens come from code redemption)",
            ));
        }
        let redirect_uris = unique(
            self.redirect_uris
                .iter()
                .map(|u| validate_redirect_uri("redirect_uri", u))
                .collect::<DomainResult<Vec<_>>>()?,
        );
        if has(GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(DomainError::invalid(
                "redirect_uri",
                "at least one is required for the authorization_code grant",
            ));
        }
        let post_logout_redirect_uris = unique(
            self.post_logout_redirect_uris
                .iter()
                .map(|u| validate_redirect_uri("post_logout_redirect_uri", u))
                .collect::<DomainResult<Vec<_>>>()?,
        );
        let extra_scopes = unique(
            self.extra_scopes
                .iter()
                .map(|s| validate_scope(s))
                .collect::<DomainResult<Vec<_>>>()?,
        );
        let backchannel_logout_uri = self
            .backchannel_logout_uri
            .as_deref()
            .map(super::backchannel::validate_uri)
            .transpose()?;
        Ok(NewClient {
            name,
            kind: self.kind,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            extra_scopes,
            backchannel_logout_uri,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            metadata: self.metadata.validated()?,
        })
    }
}

fn unique(mut items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
    items
}

/// Counts changes to client registrations in this process (edit, secret
/// rotation, deletion). Whatever remembers a client's authentication (the
/// token endpoint's short cache) compares this number and reads the database
/// again after any change, so such a change applies here at once.
static REGISTRATION_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long whatever remembers registrations or policies uses what it read,
/// at most, when no change was announced: the bound should an announcement
/// itself fail (the change is committed before it is announced).
pub const REGISTRATION_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// When something remembered of registrations or policies was read: taken
/// *before* reading the database (a change committed meanwhile then makes
/// it stale at once), and current while no change happened since and it is
/// younger than [`REGISTRATION_MAX_AGE`]. The one staleness rule of every
/// such memory (client_credentials facts, refresh policies, resource servers).
#[derive(Clone, Copy, Debug)]
pub struct ReadAt {
    generation: u64,
    at: std::time::Instant,
}

impl ReadAt {
    /// Now, before the read.
    pub fn before_reading() -> ReadAt {
        ReadAt {
            generation: registration_generation(),
            at: std::time::Instant::now(),
        }
    }

    /// Whether what was read then still holds.
    pub fn is_current(&self) -> bool {
        self.generation == registration_generation() && self.at.elapsed() < REGISTRATION_MAX_AGE
    }
}

/// The current [`REGISTRATION_GENERATION`].
pub fn registration_generation() -> u64 {
    REGISTRATION_GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

/// Marks this process's registrations stale (a change made here, or one
/// another instance announced: `instances::announce_change`).
pub fn registration_changed() {
    REGISTRATION_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// A registration change committed here: applies at once in this process,
/// and is acknowledged once the other instances applied it too.
pub(crate) async fn registration_changed_everywhere(db: &Db) {
    registration_changed();
    super::instances::announce_change(db).await;
}

/// Registers a client with a fresh client_id (and secret, for a confidential one).
pub async fn add_client(db: &Db, new: &NewClient) -> DomainResult<(Client, Option<ClientSecret>)> {
    add_client_by(db, new, &Actor::default()).await
}

/// [`add_client`] done by an actor (recorded on the audit event).
pub async fn add_client_by(
    db: &Db,
    new: &NewClient,
    actor: &Actor,
) -> DomainResult<(Client, Option<ClientSecret>)> {
    let secret = (new.kind == ClientKind::Confidential).then(|| ClientSecret(new_secret()));
    let client = insert_client(db, &random_token(15), new, secret.as_ref(), actor).await?;
    Ok((client, secret))
}

/// Registers a client with a chosen id and secret (the demo data); the id must be free.
pub async fn add_client_with_id(
    db: &Db,
    client_id: &str,
    new: &NewClient,
    secret: Option<&ClientSecret>,
) -> DomainResult<Client> {
    insert_client(db, client_id, new, secret, &Actor::default()).await
}

async fn insert_client(
    db: &Db,
    client_id: &str,
    new: &NewClient,
    secret: Option<&ClientSecret>,
    actor: &Actor,
) -> DomainResult<Client> {
    let new = new.validated()?;
    let at = now();
    let client = Client {
        client_id: client_id.to_owned(),
        name: new.name,
        kind: new.kind,
        redirect_uris: new.redirect_uris,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        grant_types: new.grant_types,
        extra_scopes: new.extra_scopes,
        created_at: at,
        backchannel_logout_uri: new.backchannel_logout_uri,
        backchannel_logout_session_required: new.backchannel_logout_session_required,
        metadata: new.metadata,
    };
    let secret_hash = secret.map(|s| sha256_hex(&s.0));
    let redirect_uris = json_list(&client.redirect_uris);
    let post_logout = json_list(&client.post_logout_redirect_uris);
    let grant_types = client
        .grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let extra_scopes = client.extra_scopes.join(" ");
    let event = AuditEvent::new(AuditKind::ClientCreated)
        .client(&client.client_id)
        .by(actor)
        .detail(serde_json::json!({ "name": client.name, "kind": client.kind, "grant_types": grant_types }));
    let lock = super::scopes::share_lock(db);
    let inserted = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        // Under the write, so that a removal from the catalogue cannot slip in between.
        if let Some(missing) = crate::missing_from_catalogue!(tx, client.extra_scopes, lock) {
            tx.rollback().await?;
            return Ok(Some(missing));
        }
        sqlx::query(
            "INSERT INTO clients (id, name, name_key, kind, secret_hash, redirect_uris, \
             post_logout_redirect_uris, grant_types, extra_scopes, created_at, updated_at, \
             backchannel_logout_uri, backchannel_logout_session_required, \
             logo_uri, client_uri, policy_uri, tos_uri, description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&client.client_id)
        .bind(&client.name)
        .bind(fold_key(&client.name))
        .bind(client.kind.as_str())
        .bind(&secret_hash)
        .bind(&redirect_uris)
        .bind(&post_logout)
        .bind(&grant_types)
        .bind(&extra_scopes)
        .bind(at)
        .bind(&client.backchannel_logout_uri)
        .bind(client.backchannel_logout_session_required)
        .bind(&client.metadata.logo_uri)
        .bind(&client.metadata.client_uri)
        .bind(&client.metadata.policy_uri)
        .bind(&client.metadata.tos_uri)
        .bind(&client.metadata.description)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(None)
    });
    match inserted {
        Ok(None) => Ok(client),
        Ok(Some(missing)) => Err(super::scopes::not_catalogued(&missing)),
        Err(e) if is_unique_violation(&e) => Err(DomainError::Conflict(format!(
            "a client named {:?} already exists",
            client.name
        ))),
        Err(e) => Err(e.into()),
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    name: String,
    kind: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    extra_scopes: String,
    created_at: i64,
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    #[sqlx(flatten)]
    metadata: ClientMetadata,
}

impl From<ClientRow> for Client {
    fn from(row: ClientRow) -> Client {
        let list = |s: &str| serde_json::from_str::<Vec<String>>(s).unwrap_or_default();
        Client {
            client_id: row.id,
            name: row.name,
            kind: if row.kind == "public" {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            redirect_uris: list(&row.redirect_uris),
            post_logout_redirect_uris: list(&row.post_logout_redirect_uris),
            grant_types: row
                .grant_types
                .split_whitespace()
                .filter_map(GrantType::parse)
                .collect(),
            extra_scopes: row
                .extra_scopes
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            created_at: row.created_at,
            backchannel_logout_uri: row.backchannel_logout_uri,
            backchannel_logout_session_required: row.backchannel_logout_session_required,
            metadata: row.metadata,
        }
    }
}

const CLIENT_COLUMNS: &str =
    "id, name, kind, redirect_uris, post_logout_redirect_uris, grant_types, extra_scopes, created_at, \
     backchannel_logout_uri, backchannel_logout_session_required, \
     logo_uri, client_uri, policy_uri, tos_uri, description";

/// Every client not deleted, by name (compared by key, as on both backends).
pub async fn list_clients(db: &Db) -> DomainResult<Vec<Client>> {
    let sql = format!(
        "SELECT {CLIENT_COLUMNS} FROM clients WHERE deleted_at IS NULL ORDER BY name_key, id"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, ClientRow>(&sql)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(Client::from).collect())
}

pub async fn find_client(db: &Db, client_id: &str) -> DomainResult<Option<Client>> {
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1 AND deleted_at IS NULL");
    let row = on_db!(db, |pool| sqlx::query_as::<_, ClientRow>(&sql)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(Client::from))
}

/// Why client authentication failed; callers answer `invalid_client` alike.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientAuthFailure {
    UnknownClient,
    WrongSecret,
    /// A confidential client sent no secret, or a public client sent one.
    WrongMethod,
}

/// Authenticates a client (RFC 6749 §2.3): a confidential client by its
/// secret, compared in constant time with the stored hash; a public client
/// by its id alone (`none`), and only without a secret.
pub async fn authenticate_client(
    db: &Db,
    client_id: &str,
    secret: Option<&str>,
) -> DomainResult<Result<Client, ClientAuthFailure>> {
    let sql = format!(
        "SELECT {CLIENT_COLUMNS}, secret_hash FROM clients WHERE id = $1 AND deleted_at IS NULL"
    );
    let row = on_db!(db, |pool| sqlx::query_as::<_, ClientAuthRow>(&sql)
        .bind(client_id)
        .fetch_optional(pool)
        .await)?;
    let Some(row) = row else {
        return Ok(Err(ClientAuthFailure::UnknownClient));
    };
    let outcome = match (row.secret_hash.as_deref(), secret) {
        (Some(hash), Some(secret)) if super::secrets::secret_matches(secret, hash) => Ok(()),
        (Some(_), Some(_)) => Err(ClientAuthFailure::WrongSecret),
        (None, None) => Ok(()),
        _ => Err(ClientAuthFailure::WrongMethod),
    };
    Ok(outcome.map(|()| Client::from(row.client)))
}

#[derive(sqlx::FromRow)]
struct ClientAuthRow {
    #[sqlx(flatten)]
    client: ClientRow,
    secret_hash: Option<String>,
}

impl Client {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// What an admin may change on a registered client (`None`: keep as is).
/// The kind cannot change: a public client has no secret to start from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientChange {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub extra_scopes: Option<Vec<String>>,
    /// `Some(None)` removes it.
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
    /// Logo, home page, policy, terms, description: a field `Some("")` (or
    /// blank) removes it; `None` keeps it.
    pub metadata: ClientMetadataChange,
}

/// The metadata part of a [`ClientChange`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientMetadataChange {
    pub logo_uri: Option<String>,
    pub client_uri: Option<String>,
    pub policy_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub description: Option<String>,
}

impl ClientMetadataChange {
    /// Checks the fields given by [`ClientMetadata::validated`]'s rules,
    /// before anything is written (`DomainError::Invalid` names the field).
    pub fn check(&self) -> DomainResult<()> {
        self.applied_to(&ClientMetadata::default())
            .validated()
            .map(drop)
    }

    /// `before` with this change applied (not yet validated).
    pub fn applied_to(&self, before: &ClientMetadata) -> ClientMetadata {
        let pick = |change: &Option<String>, before: &Option<String>| match change {
            Some(new) => Some(new.clone()),
            None => before.clone(),
        };
        ClientMetadata {
            logo_uri: pick(&self.logo_uri, &before.logo_uri),
            client_uri: pick(&self.client_uri, &before.client_uri),
            policy_uri: pick(&self.policy_uri, &before.policy_uri),
            tos_uri: pick(&self.tos_uri, &before.tos_uri),
            description: pick(&self.description, &before.description),
        }
    }
}

/// How [`update_client`]'s write ended.
enum Update {
    Done,
    /// The client is gone (deleted meanwhile).
    Gone,
    /// This scope is no longer in the catalogue.
    NotCatalogued(String),
}

/// Edits a client under the same rules as registration ([`NewClient::validated`]);
/// audits `client_updated` with before and after. A grant type or scope taken
/// away applies at the tokens' next use (refresh checks the grant types).
pub async fn update_client(
    db: &Db,
    client_id: &str,
    change: &ClientChange,
    actor: &Actor,
) -> DomainResult<Client> {
    if *change == ClientChange::default() {
        return Err(DomainError::invalid("client", "nothing to change"));
    }
    let before = find_client(db, client_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let wanted = NewClient {
        name: change.name.clone().unwrap_or_else(|| before.name.clone()),
        kind: before.kind,
        redirect_uris: change
            .redirect_uris
            .clone()
            .unwrap_or_else(|| before.redirect_uris.clone()),
        post_logout_redirect_uris: change
            .post_logout_redirect_uris
            .clone()
            .unwrap_or_else(|| before.post_logout_redirect_uris.clone()),
        grant_types: change
            .grant_types
            .clone()
            .unwrap_or_else(|| before.grant_types.clone()),
        extra_scopes: change
            .extra_scopes
            .clone()
            .unwrap_or_else(|| before.extra_scopes.clone()),
        backchannel_logout_uri: change
            .backchannel_logout_uri
            .clone()
            .unwrap_or_else(|| before.backchannel_logout_uri.clone()),
        backchannel_logout_session_required: change
            .backchannel_logout_session_required
            .unwrap_or(before.backchannel_logout_session_required),
        metadata: change.metadata.applied_to(&before.metadata),
    }
    .validated()?;
    let after = Client {
        client_id: before.client_id.clone(),
        name: wanted.name,
        kind: before.kind,
        redirect_uris: wanted.redirect_uris,
        post_logout_redirect_uris: wanted.post_logout_redirect_uris,
        grant_types: wanted.grant_types,
        extra_scopes: wanted.extra_scopes,
        created_at: before.created_at,
        backchannel_logout_uri: wanted.backchannel_logout_uri,
        backchannel_logout_session_required: wanted.backchannel_logout_session_required,
        metadata: wanted.metadata,
    };
    let grant_types = after
        .grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let event = AuditEvent::new(AuditKind::ClientUpdated)
        .client(client_id)
        .by(actor)
        .detail(serde_json::json!({ "before": before, "after": after }));
    let lock = super::scopes::share_lock(db);
    let updated = on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        // Under the write, so that a removal from the catalogue cannot slip in between.
        if let Some(missing) = crate::missing_from_catalogue!(tx, after.extra_scopes, lock) {
            tx.rollback().await?;
            return Ok(Update::NotCatalogued(missing));
        }
        let done = sqlx::query(
            "UPDATE clients SET name = $1, name_key = $2, redirect_uris = $3, \
             post_logout_redirect_uris = $4, grant_types = $5, extra_scopes = $6, updated_at = $7, \
             backchannel_logout_uri = $9, backchannel_logout_session_required = $10, \
             logo_uri = $11, client_uri = $12, policy_uri = $13, tos_uri = $14, description = $15 \
             WHERE id = $8 AND deleted_at IS NULL",
        )
        .bind(&after.name)
        .bind(fold_key(&after.name))
        .bind(json_list(&after.redirect_uris))
        .bind(json_list(&after.post_logout_redirect_uris))
        .bind(&grant_types)
        .bind(after.extra_scopes.join(" "))
        .bind(now())
        .bind(client_id)
        .bind(&after.backchannel_logout_uri)
        .bind(after.backchannel_logout_session_required)
        .bind(&after.metadata.logo_uri)
        .bind(&after.metadata.client_uri)
        .bind(&after.metadata.policy_uri)
        .bind(&after.metadata.tos_uri)
        .bind(&after.metadata.description)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(Update::Gone);
        }
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Update::Done)
    });
    match updated {
        Ok(Update::Done) => {
            registration_changed_everywhere(db).await;
            Ok(after)
        }
        Ok(Update::Gone) => Err(DomainError::NotFound),
        Ok(Update::NotCatalogued(missing)) => Err(super::scopes::not_catalogued(&missing)),
        Err(e) if is_unique_violation(&e) => Err(DomainError::Conflict(format!(
            "a client named {:?} already exists",
            after.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Gives a confidential client a new secret, shown once; the old one stops
/// working at once (every authentication reads the stored hash).
pub async fn rotate_secret(db: &Db, client_id: &str, actor: &Actor) -> DomainResult<ClientSecret> {
    let client = find_client(db, client_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if client.kind == ClientKind::Public {
        return Err(DomainError::invalid(
            "kind",
            "a public client has no secret to rotate",
        ));
    }
    let secret = ClientSecret(new_secret());
    let event = AuditEvent::new(AuditKind::ClientSecretRotated)
        .client(client_id)
        .by(actor);
    let rotated = on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        let done = sqlx::query(
            "UPDATE clients SET secret_hash = $1, updated_at = $2 \
             WHERE id = $3 AND deleted_at IS NULL AND kind = 'confidential'",
        )
        .bind(sha256_hex(&secret.0))
        .bind(now())
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    })?;
    if rotated {
        registration_changed_everywhere(db).await;
        Ok(secret)
    } else {
        Err(DomainError::NotFound)
    }
}

/// Marks a client deleted (its row stays for the audit log and foreign keys;
/// its name is free again) and audits `client_deleted` with `detail`. It can
/// no longer authenticate. Revoking its tokens is the caller's part.
pub async fn mark_deleted(
    db: &Db,
    client_id: &str,
    actor: &Actor,
    detail: serde_json::Value,
) -> DomainResult<()> {
    let event = AuditEvent::new(AuditKind::ClientDeleted)
        .client(client_id)
        .by(actor)
        .detail(detail);
    let deleted = on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        let at = now();
        let done = sqlx::query(
            "UPDATE clients SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(at)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    })?;
    if deleted {
        registration_changed_everywhere(db).await;
        Ok(())
    } else {
        Err(DomainError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is remembered of registrations goes stale on a change, and
    /// after [`REGISTRATION_MAX_AGE`] even without one (an announcement
    /// that failed).
    #[test]
    fn remembered_reads_go_stale_on_a_change_or_with_age() {
        let read = ReadAt::before_reading();
        assert!(read.is_current());
        registration_changed();
        assert!(!read.is_current(), "a change since the read");
        let fresh = ReadAt::before_reading();
        let old = ReadAt {
            at: fresh.at - REGISTRATION_MAX_AGE,
            ..fresh
        };
        assert!(!old.is_current(), "read too long ago");
    }

    #[test]
    fn redirect_uris_must_be_absolute_without_fragment() {
        assert!(validate_redirect_uri("redirect_uri", "https://app.example/cb").is_ok());
        assert!(validate_redirect_uri("redirect_uri", "com.example.app:/callback").is_ok());
        for bad in [
            "/relative",
            "app.example/cb",
            "https://app.example/cb#frag",
            "https://app.example/cb#",
            "javascript:alert(1)",
            "https:///nohost",
            "https:\\\\host/cb",
            "http:/host/cb",
            " https://app.example/cb",
            "",
        ] {
            let err = validate_redirect_uri("redirect_uri", bad).unwrap_err();
            assert!(
                err.to_string().starts_with("redirect_uri: "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn public_clients_cannot_use_client_credentials() {
        let new = NewClient {
            name: "x".into(),
            kind: ClientKind::Public,
            redirect_uris: vec!["https://a.example/cb".into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            extra_scopes: vec![],
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            metadata: Default::default(),
        };
        let err = new.validated().unwrap_err();
        assert!(err.to_string().contains("client_credentials"), "{err}");
    }

    #[test]
    fn client_credentials_only_needs_no_redirect_uri() {
        let new = NewClient {
            name: "api".into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            extra_scopes: vec!["read:things".into()],
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            metadata: Default::default(),
        };
        let ok = new.validated().unwrap();
        assert_eq!(ok.grant_types, vec![GrantType::ClientCredentials]);
        let mut missing = new.clone();
        missing.grant_types = vec![];
        assert!(missing
            .validated()
            .unwrap_err()
            .to_string()
            .starts_with("redirect_uri"));
    }
}

/// Property tests of redirect-URI matching (exact only) and checking, and of
/// scope names (RFC 6749 §3.3 NQCHAR). `PROPTEST_CASES` raises the case count.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// A redirect URI as clients register them: https, http on loopback,
    /// or an app's private-use scheme; a host, maybe a port, a path with
    /// some percent-escapes, maybe a query.
    fn registered_uri() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec!["https", "http", "com.example.app"]);
        let host = prop_oneof![
            "[a-z][a-z0-9-]{0,8}(\\.[a-z]{2,5}){1,2}",
            Just("127.0.0.1".to_owned()),
            Just("localhost".to_owned()),
            Just("[::1]".to_owned()),
        ];
        let port = prop::option::of(1024u16..65535);
        let path = prop::collection::vec(
            prop_oneof![
                "[A-Za-z0-9._~-]{1,8}",
                Just("%7E".to_owned()),
                Just("%2Fx".to_owned()),
                Just("caf%C3%A9".to_owned()),
            ],
            0..4,
        );
        let slash = any::<bool>();
        let query = prop::option::of("[a-z]{1,5}=[a-z0-9]{0,5}");
        (scheme, host, port, path, slash, query).prop_map(
            |(scheme, host, port, path, slash, query)| {
                let mut uri = format!("{scheme}://{host}");
                if let Some(port) = port {
                    uri.push_str(&format!(":{port}"));
                }
                for segment in path {
                    uri.push('/');
                    uri.push_str(&segment);
                }
                if slash {
                    uri.push('/');
                }
                if let Some(query) = query {
                    uri.push('?');
                    uri.push_str(&query);
                }
                uri
            },
        )
    }

    /// Ways to change a URI that some URL normalisers would call "the same".
    #[derive(Clone, Copy, Debug)]
    enum Change {
        /// One ASCII letter in the other case (scheme, host, path or query).
        LetterCase,
        TrailingSlash,
        AddedQuery,
        /// One path character percent-encoded, or an escape decoded.
        PercentEncoding,
        /// The hex digits of an escape in the other case.
        EscapeCase,
        Userinfo,
        /// A default port written out, the port changed or dropped.
        Port,
        Fragment,
        /// A trailing dot on the host (the same name in DNS).
        HostDot,
        /// `/./`, `//` or `/x/..` in the path.
        DotSegments,
        Whitespace,
    }

    fn change() -> impl Strategy<Value = Change> {
        prop::sample::select(vec![
            Change::LetterCase,
            Change::TrailingSlash,
            Change::AddedQuery,
            Change::PercentEncoding,
            Change::EscapeCase,
            Change::Userinfo,
            Change::Port,
            Change::Fragment,
            Change::HostDot,
            Change::DotSegments,
            Change::Whitespace,
        ])
    }

    /// Where the authority ends (the path, query or end of the URI starts).
    fn authority_end(uri: &str) -> usize {
        let start = uri.find("://").unwrap() + 3;
        uri[start..]
            .find(['/', '?'])
            .map_or(uri.len(), |i| start + i)
    }

    fn apply(uri: &str, change: Change, pick: prop::sample::Index) -> String {
        let start = uri.find("://").unwrap() + 3;
        let end = authority_end(uri);
        let (path_end, query) = match uri.find('?') {
            Some(q) => (q, true),
            None => (uri.len(), false),
        };
        let mut out = uri.to_owned();
        match change {
            Change::LetterCase => {
                let letters: Vec<usize> = uri
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_alphabetic())
                    .map(|(i, _)| i)
                    .collect();
                let i = letters[pick.index(letters.len())];
                let c = uri.as_bytes()[i] as char;
                let flipped = if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                };
                out.replace_range(i..=i, &flipped.to_string());
            }
            Change::TrailingSlash => {
                if uri[..path_end].ends_with('/') {
                    out.replace_range(path_end - 1..path_end, "");
                } else {
                    out.insert(path_end, '/');
                }
            }
            Change::AddedQuery => out.push_str(if query { "&x=1" } else { "?x=1" }),
            Change::PercentEncoding => {
                let path = &uri[end..path_end];
                if let Some(i) = path.find('%') {
                    // Decode the first escape (the decoded character may be
                    // multi-byte: write it back as raw bytes' text only if ASCII).
                    let hex = &path[i + 1..i + 3];
                    let byte = u8::from_str_radix(hex, 16).unwrap();
                    let decoded = if byte.is_ascii() {
                        (byte as char).to_string()
                    } else {
                        "\u{e9}".to_owned()
                    };
                    out.replace_range(end + i..end + i + 3, &decoded);
                } else {
                    let chars: Vec<usize> = path
                        .char_indices()
                        .filter(|(_, c)| c.is_ascii_alphanumeric() || *c == '/')
                        .map(|(i, _)| end + i)
                        .collect();
                    if chars.is_empty() {
                        out.insert_str(end, "/%7E");
                    } else {
                        let i = chars[pick.index(chars.len())];
                        let escaped = format!("%{:02X}", uri.as_bytes()[i]);
                        out.replace_range(i..=i, &escaped);
                    }
                }
            }
            Change::EscapeCase => match uri.find('%') {
                Some(i) => {
                    let hex = &uri[i + 1..i + 3];
                    let other = if hex.chars().any(|c| c.is_ascii_uppercase()) {
                        hex.to_ascii_lowercase()
                    } else {
                        hex.to_ascii_uppercase()
                    };
                    out.replace_range(i + 1..i + 3, &other);
                }
                None => out.insert_str(end, "/%7e"),
            },
            Change::Userinfo => {
                let userinfo = ["user@", "user:pw@", "@", ":@"][pick.index(4)];
                out.insert_str(start, userinfo);
            }
            Change::Port => {
                let authority = &uri[start..end];
                let bracket = authority.rfind(']').unwrap_or(0);
                match authority[bracket..].rfind(':') {
                    Some(colon) => {
                        let colon = start + bracket + colon;
                        let replacement = ["", ":443", ":80", ":1", ":0", ":08080"][pick.index(6)];
                        // A changed port, or dropped: never the same text.
                        let replacement = if uri[colon..end] == *replacement {
                            ":2"
                        } else {
                            replacement
                        };
                        out.replace_range(colon..end, replacement);
                    }
                    None => {
                        let default = if uri.starts_with("http://") {
                            ":80"
                        } else {
                            ":443"
                        };
                        out.insert_str(end, [default, ":", ":8443"][pick.index(3)]);
                    }
                }
            }
            Change::Fragment => out.push_str(["#", "#x", "#/cb"][pick.index(3)]),
            Change::HostDot => {
                let authority = &uri[start..end];
                let host_end = match authority.rfind(':') {
                    Some(colon) if !authority[colon..].contains(']') => start + colon,
                    _ => end,
                };
                out.insert(host_end, '.');
            }
            Change::DotSegments => {
                let segment = ["/.", "/./", "//", "/x/.."][pick.index(4)];
                out.insert_str(path_end, segment);
            }
            Change::Whitespace => {
                let space = [" ", "\t", "\n", "%20", "+"][pick.index(5)];
                if pick.index(2) == 0 {
                    out.insert_str(0, space);
                } else {
                    out.push_str(space);
                }
            }
        }
        out
    }

    /// NQCHAR (RFC 6749 §3.3): %x21 / %x23-5B / %x5D-7E, written out.
    fn is_nqchar(c: char) -> bool {
        c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c)
    }

    proptest! {
        #![proptest_config(super::super::proptest_config(256))]

        /// The generated URIs are ones registration accepts, each matches
        /// itself, and any change to it — case, a slash, a query, an escape,
        /// userinfo, a port, a fragment, a dot, whitespace — does not match.
        #[test]
        fn only_the_registered_uri_itself_matches(
            uri in registered_uri(),
            others in prop::collection::vec(registered_uri(), 0..3),
            change in change(),
            pick in any::<prop::sample::Index>(),
        ) {
            prop_assert_eq!(validate_redirect_uri("redirect_uri", &uri).ok(), Some(uri.clone()));
            let mut registered = others.clone();
            registered.push(uri.clone());
            prop_assert!(redirect_uri_matches(&registered, &uri));
            let changed = apply(&uri, change, pick);
            prop_assert_ne!(&changed, &uri, "{:?} changed nothing", change);
            prop_assert_eq!(
                redirect_uri_matches(&registered, &changed),
                others.contains(&changed),
                "{:?} made {:?} from {:?}", change, changed, uri
            );
            prop_assert!(!redirect_uri_matches(std::slice::from_ref(&uri), &changed));
            prop_assert!(!redirect_uri_matches(&[], &uri));
        }

        /// Any text is answered without a panic, and what registration
        /// accepts is an absolute URI without whitespace, controls or a
        /// fragment, kept exactly as written.
        #[test]
        fn redirect_uri_checks_take_any_text(
            raw in prop_oneof![
                any::<String>(),
                "[a-zA-Z.+-]{1,8}:[ -~]{0,30}",
                "(https?|HTTPS?|javascript|data):(//)?[ -~]{0,30}",
                registered_uri().prop_map(|u| format!("{u}#")),
                (
                    registered_uri(),
                    prop_oneof![
                        prop::sample::select(vec!['\u{a0}', '\u{2028}', '\u{3000}', '\u{85}', '\u{feff}', '\u{200b}']),
                        any::<char>(),
                    ],
                    any::<prop::sample::Index>(),
                )
                    .prop_map(|(u, c, at)| {
                        let mut u = u;
                        let mut i = at.index(u.len() + 1);
                        while !u.is_char_boundary(i) {
                            i -= 1;
                        }
                        u.insert(i, c);
                        u
                    }),
            ],
        ) {
            if let Ok(uri) = validate_redirect_uri("redirect_uri", &raw) {
                prop_assert_eq!(&uri, &raw);
                prop_assert!(!uri.contains('#'));
                prop_assert!(!uri.chars().any(|c| c.is_control() || c.is_whitespace()), "{:?}", uri);
                let url = url::Url::parse(&uri);
                prop_assert!(url.is_ok(), "{:?}", uri);
                let scheme = url.unwrap().scheme().to_owned();
                prop_assert!(
                    !["javascript", "data", "vbscript", "file", "blob", "about"].contains(&scheme.as_str()),
                    "{:?}", uri
                );
            }
        }

        /// A scope name is accepted exactly when it is 1–128 NQCHARs, and
        /// then kept as it is.
        #[test]
        fn scope_names_are_nqchar_tokens(
            raw in prop_oneof![
                "[!#-\\[\\]-~]{1,130}",
                "[ -~]{0,20}",
                "[!#-\\[\\]-~]{0,8}[\"\\\\ \t\u{7f}\u{80}é][!#-\\[\\]-~]{0,8}",
                any::<String>(),
            ],
        ) {
            let expected = (1..=128).contains(&raw.chars().count()) && raw.chars().all(is_nqchar);
            match validate_scope(&raw) {
                Ok(kept) => {
                    prop_assert!(expected, "accepted {:?}", raw);
                    prop_assert_eq!(kept, raw);
                }
                Err(_) => prop_assert!(!expected, "refused {:?}", raw),
            }
        }
    }
}
