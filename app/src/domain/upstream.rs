//! Upstream identity providers: people sign in to Latchkey through another
//! OpenID Connect provider (the company's), and logging out of Latchkey also
//! revokes that provider's tokens (RFC 7009).
//!
//! * Providers ([`Provider`], [`NewProvider`], [`ProviderChange`]): configured
//!   by admins (CLI, console, admin API); the client secret is AES-256-GCM
//!   under [`sealer`] (a key derived from the master key), never shown again.
//!   Discovery and the relying-party flow (the `openidconnect` crate) live in
//!   the server's `upstream` module; this module holds what is stored.
//! * Sign-in ([`sign_in`]): the local user is found by (`issuer`, `sub`) only —
//!   never by e-mail or username — and created at the first sign-in under a
//!   username no local account has; a disabled user is refused. The sign-in
//!   session records the provider (`login_sessions.upstream_provider_id`: the
//!   Sessions page's "with Corp SSO"), and the upstream refresh, access and ID
//!   tokens are stored encrypted in `upstream_tokens`.
//! * Logout ([`sign_in_ended`]): inside the transaction that ends a sign-in —
//!   every way one ends goes through `RevokedSets::end_sign_in` — the row of
//!   its upstream tokens becomes due for revocation (the provider's "revoke
//!   upstream tokens at logout" on), or its tokens are deleted (off). The row
//!   is its own outbox entry: the server's outbox worker [`claim_due`]s it,
//!   POSTs the revocations and [`record`]s the outcome, with the back-channel
//!   logout's [`RetryPolicy`]. Revoked or given up, the tokens are deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    backchannel::RetryPolicy,
    clients::{validate_scope, validate_server_url},
    error::{DomainError, DomainResult},
    keys::MasterKey,
    login_sessions::ClientInfo,
    names::fold_key,
    secrets::{new_id, sha256_hex},
    store::{is_unique_violation, now, Db, WriteTx},
    users::{validate_username, User},
};
use crate::on_db;

/// The label of the key upstream secrets and tokens are encrypted under.
const SEALER_LABEL: &str = "latchkey upstream secrets v1";

/// The key upstream client secrets and tokens are encrypted under: derived
/// from the master key, so the database alone reveals none of them.
pub fn sealer(master: &MasterKey) -> MasterKey {
    master.derive(SEALER_LABEL)
}

/// RFC 7009 §2.1's name of the token parameter.
pub const DEFAULT_TOKEN_PARAM: &str = "token";
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Most extra scopes and extra revocation parameters.
const MAX_SCOPES: usize = 20;
const MAX_EXTRA_PARAMS: usize = 10;
/// The stored password hash of a user created by an upstream sign-in: not a
/// PHC string, so no password ever verifies against it.
pub const NO_PASSWORD: &str = "!upstream";

/// A configured provider, as admins see it (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub id: String,
    /// Shown on the sign-in button: "Sign in with {name}".
    pub name: String,
    /// The issuer URL; discovery is `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Revoke the sign-in's upstream tokens when it ends (default on).
    pub revoke_at_logout: bool,
    /// Offer RP-initiated logout at the provider's `end_session_endpoint`
    /// when signing out in the browser (default off).
    pub end_upstream_session: bool,
    /// Overrides of discovery's `revocation_endpoint`, of RFC 7009's `token`
    /// parameter name, and extra form parameters sent with each revocation.
    pub revocation_endpoint: Option<String>,
    pub revocation_token_param: Option<String>,
    pub revocation_extra_params: BTreeMap<String, String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Provider {
    /// The token parameter name of a revocation request.
    pub fn token_param(&self) -> &str {
        self.revocation_token_param
            .as_deref()
            .unwrap_or(DEFAULT_TOKEN_PARAM)
    }
}

/// A provider to add. `client_secret` is the upstream's secret for Latchkey.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct NewProvider {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "yes")]
    pub revoke_at_logout: bool,
    #[serde(default)]
    pub end_upstream_session: bool,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_token_param: Option<String>,
    #[serde(default)]
    pub revocation_extra_params: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// A change to a provider: `None` keeps a field; for the optional overrides
/// `Some(None)` clears one. The issuer cannot change (its users are linked to it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderChange {
    pub name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub revoke_at_logout: Option<bool>,
    pub end_upstream_session: Option<bool>,
    pub revocation_endpoint: Option<Option<String>>,
    pub revocation_token_param: Option<Option<String>>,
    pub revocation_extra_params: Option<BTreeMap<String, String>>,
}

/// A display name: 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn validate_name(raw: &str) -> DomainResult<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// An issuer (OpenID Connect Discovery §4.3): an https URL (http on loopback
/// only), without query or fragment, compared exactly with the discovered `iss`.
pub fn validate_issuer(raw: &str) -> DomainResult<String> {
    let issuer = validate_server_url("issuer", raw.trim())?;
    if issuer.contains('?') {
        return Err(DomainError::invalid(
            "issuer",
            format!("{raw:?} must not contain a query"),
        ));
    }
    Ok(issuer)
}

fn validate_client_id(raw: &str) -> DomainResult<String> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 255 || id.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "client_id",
            "must be 1 to 255 characters without control characters",
        ));
    }
    Ok(id.to_owned())
}

fn validate_secret(raw: &str) -> DomainResult<String> {
    // Not trimmed: a secret is what the provider issued, byte for byte.
    if raw.is_empty() || raw.len() > 1024 || raw.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "client_secret",
            "must be 1 to 1024 characters without control characters (or newlines)",
        ));
    }
    Ok(raw.to_owned())
}

/// Scopes besides `openid` (which is always asked for): scope tokens
/// (RFC 6749 §3.3), each once, at most 20. Space-separated entries are split.
pub fn validate_scopes(scopes: &[String]) -> DomainResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes.iter().flat_map(|s| s.split_whitespace()) {
        let s = validate_scope(s).map_err(|_| {
            DomainError::invalid("scopes", format!("{s:?} is not a valid scope name"))
        })?;
        if s != "openid" && !out.contains(&s) {
            out.push(s);
        }
    }
    if out.len() > MAX_SCOPES {
        return Err(DomainError::invalid(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    Ok(out)
}

/// A form parameter name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The revocation token parameter's name, when overridden.
fn validate_token_param(raw: Option<&str>) -> DomainResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(name) if is_param_name(name) => Ok(Some(name.to_owned())),
        Some(name) => Err(DomainError::invalid(
            "revocation_token_param",
            format!("{name:?} must be 1 to 64 letters, digits, '_', '.' or '-'"),
        )),
    }
}

/// Extra revocation parameters: at most 10, names as [`is_param_name`],
/// values up to 512 characters without control characters; none may replace
/// what Latchkey sends itself (the token, its hint, client authentication).
pub fn validate_extra_params(
    params: &BTreeMap<String, String>,
    token_param: &str,
) -> DomainResult<BTreeMap<String, String>> {
    const FIELD: &str = "revocation_extra_params";
    if params.len() > MAX_EXTRA_PARAMS {
        return Err(DomainError::invalid(
            FIELD,
            format!("at most {MAX_EXTRA_PARAMS} parameters"),
        ));
    }
    for (name, value) in params {
        if !is_param_name(name) {
            return Err(DomainError::invalid(
                FIELD,
                format!("{name:?} must be 1 to 64 letters, digits, '_', '.' or '-'"),
            ));
        }
        if [token_param, "token_type_hint", "client_id", "client_secret"].contains(&name.as_str()) {
            return Err(DomainError::invalid(
                FIELD,
                format!("{name:?} is sent by Latchkey itself"),
            ));
        }
        if value.chars().count() > 512 || value.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                FIELD,
                format!("the value of {name:?} must be at most 512 characters without control characters"),
            ));
        }
    }
    Ok(params.clone())
}

/// Parses `name=value` pairs (the CLI's `--revocation-param`).
pub fn parse_param_pairs(pairs: &[String]) -> DomainResult<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.to_owned())),
            None => Err(DomainError::invalid(
                "revocation_extra_params",
                format!("{pair:?} is not name=value"),
            )),
        })
        .collect()
}

fn optional_url(field: &'static str, raw: Option<&str>) -> DomainResult<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(url) => validate_server_url(field, url).map(Some),
    }
}

impl NewProvider {
    /// Every field checked (trimmed where that is safe); what [`add`] stores.
    pub fn validated(&self) -> DomainResult<NewProvider> {
        let token_param = validate_token_param(self.revocation_token_param.as_deref())?;
        Ok(NewProvider {
            name: validate_name(&self.name)?,
            issuer: validate_issuer(&self.issuer)?,
            client_id: validate_client_id(&self.client_id)?,
            client_secret: validate_secret(&self.client_secret)?,
            scopes: validate_scopes(&self.scopes)?,
            revoke_at_logout: self.revoke_at_logout,
            end_upstream_session: self.end_upstream_session,
            revocation_endpoint: optional_url(
                "revocation_endpoint",
                self.revocation_endpoint.as_deref(),
            )?,
            revocation_extra_params: validate_extra_params(
                &self.revocation_extra_params,
                token_param.as_deref().unwrap_or(DEFAULT_TOKEN_PARAM),
            )?,
            revocation_token_param: token_param,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ProviderRow {
    id: String,
    name: String,
    issuer: String,
    client_id: String,
    scopes: String,
    revoke_at_logout: bool,
    end_upstream_session: bool,
    revocation_endpoint: Option<String>,
    revocation_token_param: Option<String>,
    revocation_extra_params: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<ProviderRow> for Provider {
    fn from(r: ProviderRow) -> Self {
        Provider {
            id: r.id,
            name: r.name,
            issuer: r.issuer,
            client_id: r.client_id,
            scopes: r.scopes.split_whitespace().map(str::to_owned).collect(),
            revoke_at_logout: r.revoke_at_logout,
            end_upstream_session: r.end_upstream_session,
            revocation_endpoint: r.revocation_endpoint,
            revocation_token_param: r.revocation_token_param,
            revocation_extra_params: r
                .revocation_extra_params
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const PROVIDER_COLUMNS: &str = "id, name, issuer, client_id, scopes, revoke_at_logout, \
     end_upstream_session, revocation_endpoint, revocation_token_param, \
     revocation_extra_params, created_at, updated_at";

fn extra_json(params: &BTreeMap<String, String>) -> Option<String> {
    (!params.is_empty()).then(|| serde_json::to_string(params).unwrap_or_default())
}

fn name_taken(name: &str) -> DomainError {
    DomainError::Conflict(format!(
        "an upstream provider named {name:?} already exists"
    ))
}

/// Adds a provider (validated here too), its secret encrypted under
/// `sealer`; audited `upstream_provider_added`. `Conflict` when the name is
/// taken (any letter case).
pub async fn add(
    db: &Db,
    sealer: &MasterKey,
    new: &NewProvider,
    actor: &Actor,
) -> DomainResult<Provider> {
    let new = new.validated()?;
    let at = now();
    let provider = Provider {
        id: new_id(),
        name: new.name.clone(),
        issuer: new.issuer.clone(),
        client_id: new.client_id.clone(),
        scopes: new.scopes.clone(),
        revoke_at_logout: new.revoke_at_logout,
        end_upstream_session: new.end_upstream_session,
        revocation_endpoint: new.revocation_endpoint.clone(),
        revocation_token_param: new.revocation_token_param.clone(),
        revocation_extra_params: new.revocation_extra_params.clone(),
        created_at: at,
        updated_at: at,
    };
    let secret = sealer.encrypt(new.client_secret.as_bytes());
    let event = AuditEvent::new(AuditKind::UpstreamProviderChanged)
        .by(actor)
        .detail(serde_json::json!({ "change": "added", "provider": provider }));
    let inserted = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO upstream_providers (id, name, issuer, client_id, client_secret_enc, \
             scopes, revoke_at_logout, end_upstream_session, revocation_endpoint, \
             revocation_token_param, revocation_extra_params, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&provider.id)
        .bind(&provider.name)
        .bind(&provider.issuer)
        .bind(&provider.client_id)
        .bind(&secret)
        .bind(provider.scopes.join(" "))
        .bind(provider.revoke_at_logout)
        .bind(provider.end_upstream_session)
        .bind(&provider.revocation_endpoint)
        .bind(&provider.revocation_token_param)
        .bind(extra_json(&provider.revocation_extra_params))
        .bind(at)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    });
    match inserted {
        Ok(()) => Ok(provider),
        Err(e) if is_unique_violation(&e) => Err(name_taken(&provider.name)),
        Err(e) => Err(e.into()),
    }
}

/// Every provider not removed, by name.
pub async fn list(db: &Db) -> DomainResult<Vec<Provider>> {
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS} FROM upstream_providers WHERE deleted_at IS NULL \
         ORDER BY lower(name), id"
    );
    let rows: Vec<ProviderRow> = on_db!(db, |pool| sqlx::query_as(&sql).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(Provider::from).collect())
}

/// The provider with this id, or (any letter case) this name; not removed.
/// An id wins over a name that happens to spell another provider's id.
pub async fn find(db: &Db, id_or_name: &str) -> DomainResult<Option<Provider>> {
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS} FROM upstream_providers WHERE deleted_at IS NULL \
         AND (id = $1 OR lower(name) = lower($1)) \
         ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END, id LIMIT 1"
    );
    let row: Option<ProviderRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(id_or_name.trim())
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(Provider::from))
}

/// A provider by id, removed or not (a removed one's pending revocations are
/// still delivered).
pub async fn find_any(db: &Db, id: &str) -> DomainResult<Option<Provider>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM upstream_providers WHERE id = $1");
    let row: Option<ProviderRow> = on_db!(db, |pool| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(Provider::from))
}

/// The decrypted client secret of provider `id` (server side only: never
/// shown or returned by any page or API).
pub async fn client_secret(db: &Db, sealer: &MasterKey, id: &str) -> DomainResult<String> {
    let enc: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT client_secret_enc FROM upstream_providers WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    let enc = enc.ok_or(DomainError::NotFound)?;
    let plain = sealer
        .decrypt(&enc)
        .map_err(|e| DomainError::Internal(format!("upstream client secret: {e}")))?;
    String::from_utf8(plain)
        .map_err(|_| DomainError::Internal("upstream client secret is not UTF-8".into()))
}

/// Applies `change` to provider `id_or_name` (validated); audited
/// `upstream_provider_changed` with the fields changed (never the secret's
/// value). `NotFound`, `Invalid`, or `Conflict` for a taken name.
pub async fn update(
    db: &Db,
    sealer: &MasterKey,
    id_or_name: &str,
    change: &ProviderChange,
    actor: &Actor,
) -> DomainResult<Provider> {
    let before = find(db, id_or_name).await?.ok_or(DomainError::NotFound)?;
    let mut after = before.clone();
    let mut changed: Vec<&str> = Vec::new();
    if let Some(name) = &change.name {
        after.name = validate_name(name)?;
        changed.push("name");
    }
    if let Some(client_id) = &change.client_id {
        after.client_id = validate_client_id(client_id)?;
        changed.push("client_id");
    }
    let secret = match &change.client_secret {
        Some(secret) => {
            changed.push("client_secret");
            Some(sealer.encrypt(validate_secret(secret)?.as_bytes()))
        }
        None => None,
    };
    if let Some(scopes) = &change.scopes {
        after.scopes = validate_scopes(scopes)?;
        changed.push("scopes");
    }
    if let Some(on) = change.revoke_at_logout {
        after.revoke_at_logout = on;
        changed.push("revoke_at_logout");
    }
    if let Some(on) = change.end_upstream_session {
        after.end_upstream_session = on;
        changed.push("end_upstream_session");
    }
    if let Some(url) = &change.revocation_endpoint {
        after.revocation_endpoint = optional_url("revocation_endpoint", url.as_deref())?;
        changed.push("revocation_endpoint");
    }
    if let Some(param) = &change.revocation_token_param {
        after.revocation_token_param = validate_token_param(param.as_deref())?;
        changed.push("revocation_token_param");
    }
    if let Some(params) = &change.revocation_extra_params {
        after.revocation_extra_params = params.clone();
        changed.push("revocation_extra_params");
    }
    // Checked together: the token parameter may have changed under them.
    after.revocation_extra_params =
        validate_extra_params(&after.revocation_extra_params, after.token_param())?;
    after.updated_at = now();
    let event = AuditEvent::new(AuditKind::UpstreamProviderChanged)
        .by(actor)
        .detail(serde_json::json!({
            "change": "updated", "provider_id": after.id, "fields": changed, "provider": after,
        }));
    let written = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "UPDATE upstream_providers SET name = $1, client_id = $2, \
             client_secret_enc = COALESCE($3, client_secret_enc), scopes = $4, \
             revoke_at_logout = $5, end_upstream_session = $6, revocation_endpoint = $7, \
             revocation_token_param = $8, revocation_extra_params = $9, updated_at = $10 \
             WHERE id = $11 AND deleted_at IS NULL",
        )
        .bind(&after.name)
        .bind(&after.client_id)
        .bind(&secret)
        .bind(after.scopes.join(" "))
        .bind(after.revoke_at_logout)
        .bind(after.end_upstream_session)
        .bind(&after.revocation_endpoint)
        .bind(&after.revocation_token_param)
        .bind(extra_json(&after.revocation_extra_params))
        .bind(after.updated_at)
        .bind(&after.id)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    });
    match written {
        Ok(()) => Ok(after),
        Err(e) if is_unique_violation(&e) => Err(name_taken(&after.name)),
        Err(e) => Err(e.into()),
    }
}

/// Removes a provider: no new sign-ins through it; its users stay (linked by
/// issuer and subject, so adding the provider again lets them back in), and
/// revocations already due are still delivered. Audited. `NotFound`.
pub async fn remove(db: &Db, id_or_name: &str, actor: &Actor) -> DomainResult<Provider> {
    let provider = find(db, id_or_name).await?.ok_or(DomainError::NotFound)?;
    let event = AuditEvent::new(AuditKind::UpstreamProviderChanged)
        .by(actor)
        .detail(serde_json::json!({
            "change": "removed", "provider_id": provider.id, "name": provider.name,
        }));
    on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        sqlx::query(
            "UPDATE upstream_providers SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now())
        .bind(&provider.id)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    Ok(provider)
}

/// A provider's button on the sign-in page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub id: String,
    pub name: String,
}

/// The sign-in page's buttons, by name.
pub async fn buttons(db: &Db) -> DomainResult<Vec<Button>> {
    Ok(list(db)
        .await?
        .into_iter()
        .map(|p| Button {
            id: p.id,
            name: p.name,
        })
        .collect())
}

/// How a provider's sign-ins and revocations are doing, for its admin page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderHealth {
    /// Local users linked to an account there.
    pub linked_users: i64,
    /// Sign-ins through it that are live now.
    pub live_sign_ins: i64,
    /// Revocations waiting (after a failure or not yet tried).
    pub pending_revocations: i64,
    /// Revocations delivered, and given up, in the last 30 days.
    pub revoked_30d: i64,
    pub gave_up_30d: i64,
    /// The latest failures: newest first, at most 10.
    pub failures: Vec<RevocationFailure>,
}

/// One revocation that failed at least once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationFailure {
    /// Unix seconds the sign-in ended.
    pub requested_at: i64,
    pub attempts: i32,
    pub last_error: String,
    /// Unix seconds of the next try; `None` once given up or delivered.
    pub next_attempt_at: Option<i64>,
    pub gave_up: bool,
    pub revoked: bool,
}

const THIRTY_DAYS: i64 = 30 * 86_400;

/// The counts and latest failures of provider `id`.
pub async fn health(db: &Db, id: &str) -> DomainResult<ProviderHealth> {
    let since = now() - THIRTY_DAYS;
    let (linked_users, live_sign_ins, pending, revoked, gave_up): (i64, i64, i64, i64, i64) = on_db!(
        db,
        |pool| {
            sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM upstream_identities WHERE provider_id = $1), \
             (SELECT COUNT(*) FROM login_sessions WHERE upstream_provider_id = $1 AND ended_at IS NULL), \
             (SELECT COUNT(*) FROM upstream_tokens WHERE provider_id = $1 AND next_attempt_at IS NOT NULL), \
             (SELECT COUNT(*) FROM upstream_tokens WHERE provider_id = $1 AND revoked_at >= $2), \
             (SELECT COUNT(*) FROM upstream_tokens WHERE provider_id = $1 AND gave_up_at >= $2)"
        )
        .bind(id)
        .bind(since)
        .fetch_one(pool)
        .await
        }
    )?;
    #[derive(sqlx::FromRow)]
    struct FailureRow {
        revoke_requested_at: i64,
        attempts: i32,
        last_error: String,
        next_attempt_at: Option<i64>,
        gave_up_at: Option<i64>,
        revoked_at: Option<i64>,
    }
    let rows: Vec<FailureRow> = on_db!(db, |pool| {
        sqlx::query_as(
        "SELECT revoke_requested_at, attempts, last_error, next_attempt_at, gave_up_at, revoked_at \
         FROM upstream_tokens WHERE provider_id = $1 AND last_error IS NOT NULL \
         AND revoke_requested_at >= $2 ORDER BY revoke_requested_at DESC LIMIT 10"
    )
    .bind(id)
    .bind(since)
    .fetch_all(pool)
    .await
    })?;
    Ok(ProviderHealth {
        linked_users,
        live_sign_ins,
        pending_revocations: pending,
        revoked_30d: revoked,
        gave_up_30d: gave_up,
        failures: rows
            .into_iter()
            .map(|r| RevocationFailure {
                requested_at: r.revoke_requested_at,
                attempts: r.attempts,
                last_error: r.last_error,
                next_attempt_at: r.next_attempt_at,
                gave_up: r.gave_up_at.is_some(),
                revoked: r.revoked_at.is_some(),
            })
            .collect(),
    })
}

// ---------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------

/// What a verified upstream ID token (and the token response) gave.
#[derive(Clone, Debug, Default)]
pub struct UpstreamSignIn {
    /// The ID token's `iss` and `sub`: the link to the local user.
    pub issuer: String,
    pub subject: String,
    /// `preferred_username`, else `email`, else `name`: only to name a new user.
    pub username_hint: Option<String>,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    pub id_token: Option<String>,
}

/// Why an upstream sign-in was refused after the provider vouched for it.
#[derive(Debug, thiserror::Error)]
pub enum SignInRefused {
    /// The linked local user is disabled.
    #[error("the linked account is disabled")]
    Disabled,
    #[error(transparent)]
    Failed(#[from] DomainError),
}

/// A username for a new user from the provider's hint: the hint if it is a
/// valid username (else its part before `@`, else `user`), with `-2`, `-3`, …
/// when a local account has it — never the existing account.
fn username_candidates(hint: Option<&str>, subject: &str) -> Vec<String> {
    let base = hint
        .and_then(|h| validate_username(h).ok())
        .or_else(|| {
            hint.and_then(|h| h.split('@').next())
                .and_then(|h| validate_username(h).ok())
        })
        .unwrap_or_else(|| "user".to_owned());
    let base: String = base.chars().take(54).collect();
    let mut out = vec![base.clone()];
    out.extend((2..=20).map(|i| format!("{base}-{i}")));
    // Unique whatever else exists: the subject's hash.
    out.push(format!("{base}-{}", &sha256_hex(subject)[..10]));
    out
}

/// Signs a person in through `provider`: finds the local user linked to
/// (`issuer`, `subject`) or creates one (under a username no local account
/// has), refuses a disabled one, and starts a sign-in session recording the
/// provider with the upstream tokens encrypted under `sealer` — one
/// transaction, audited `login` (with the provider) and, for a new user,
/// `user_created`. Returns the sign-in session id and the user.
pub async fn sign_in(
    db: &Db,
    sealer: &MasterKey,
    provider: &Provider,
    upstream: &UpstreamSignIn,
    from: &ClientInfo,
) -> Result<(String, User), SignInRefused> {
    let at = now();
    let sid = new_id();
    let ua: String = from.user_agent.chars().take(512).collect();
    let seal = |t: &Option<String>| t.as_deref().map(|t| sealer.encrypt(t.as_bytes()));
    let (refresh, access, id_token) = (
        seal(&upstream.refresh_token),
        seal(&upstream.access_token),
        seal(&upstream.id_token),
    );
    let candidates = username_candidates(upstream.username_hint.as_deref(), &upstream.subject);
    #[derive(sqlx::FromRow)]
    struct Linked {
        id: String,
        username: String,
        is_admin: bool,
        disabled_at: Option<i64>,
        created_at: i64,
    }
    let outcome = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let linked: Option<Linked> = sqlx::query_as(
            "SELECT u.id, u.username, u.is_admin, u.disabled_at, u.created_at \
             FROM upstream_identities i JOIN users u ON u.id = i.user_id \
             WHERE i.issuer = $1 AND i.sub = $2",
        )
        .bind(&upstream.issuer)
        .bind(&upstream.subject)
        .fetch_optional(&mut *tx)
        .await?;
        let user = match linked {
            Some(l) if l.disabled_at.is_some() => {
                tx.rollback().await?;
                return Ok(None);
            }
            Some(l) => {
                sqlx::query(
                    "UPDATE upstream_identities SET last_sign_in_at = $1, provider_id = $2 \
                     WHERE issuer = $3 AND sub = $4",
                )
                .bind(at)
                .bind(&provider.id)
                .bind(&upstream.issuer)
                .bind(&upstream.subject)
                .execute(&mut *tx)
                .await?;
                User {
                    id: l.id,
                    username: l.username,
                    is_admin: l.is_admin,
                    disabled_at: None,
                    created_at: l.created_at,
                }
            }
            None => {
                let mut username = None;
                for candidate in &candidates {
                    let taken: Option<String> =
                        sqlx::query_scalar("SELECT id FROM users WHERE username_key = $1")
                            .bind(fold_key(candidate))
                            .fetch_optional(&mut *tx)
                            .await?;
                    if taken.is_none() {
                        username = Some(candidate.clone());
                        break;
                    }
                }
                let Some(username) = username else {
                    return Err(sqlx::Error::Protocol("no free username".into()));
                };
                let user = User {
                    id: new_id(),
                    username,
                    is_admin: false,
                    disabled_at: None,
                    created_at: at,
                };
                sqlx::query(
                    "INSERT INTO users (id, username, username_key, password_hash, is_admin, created_at) \
                     VALUES ($1, $2, $3, $4, FALSE, $5)",
                )
                .bind(&user.id)
                .bind(&user.username)
                .bind(fold_key(&user.username))
                .bind(NO_PASSWORD)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO upstream_identities (issuer, sub, user_id, provider_id, created_at, last_sign_in_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&upstream.issuer)
                .bind(&upstream.subject)
                .bind(&user.id)
                .bind(&provider.id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                let created = AuditEvent::new(AuditKind::UserCreated)
                    .subject(&user.id)
                    .ip(&from.ip)
                    .detail(serde_json::json!({
                        "username": user.username, "is_admin": false,
                        "upstream": { "provider_id": provider.id, "name": provider.name, "issuer": upstream.issuer, "sub": upstream.subject },
                    }));
                crate::bind_audit!(&created).execute(&mut *tx).await?;
                user
            }
        };
        let earlier: Vec<String> = sqlx::query_scalar(super::security::EARLIER_DEVICES_SQL)
            .bind(&user.id)
            .fetch_all(&mut *tx)
            .await?;
        let new_device = super::security::is_new_device(&earlier, &ua);
        sqlx::query(
            "INSERT INTO login_sessions (id, user_id, user_agent, ip, created_at, last_seen_at, upstream_provider_id) \
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(&sid)
        .bind(&user.id)
        .bind(&ua)
        .bind(&from.ip)
        .bind(at)
        .bind(&provider.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO upstream_tokens (login_session_id, provider_id, refresh_token_enc, \
             access_token_enc, id_token_enc, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&sid)
        .bind(&provider.id)
        .bind(&refresh)
        .bind(&access)
        .bind(&id_token)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let login = AuditEvent::new(AuditKind::Login)
            .actor(&user.id)
            .subject(&user.id)
            .ip(&from.ip)
            .detail(serde_json::json!({
                "sid": sid, "user_agent": ua, "new_device": new_device,
                "upstream": { "provider_id": provider.id, "name": provider.name },
            }));
        crate::bind_audit!(&login).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(user))
    });
    match outcome {
        Ok(Some(user)) => Ok((sid, user)),
        Ok(None) => Err(SignInRefused::Disabled),
        Err(e) => Err(SignInRefused::Failed(e.into())),
    }
}

/// The ID token of sign-in `sid` and its provider, while the sign-in is live
/// and the provider offers ending its own session (`end_upstream_session`):
/// what RP-initiated logout upstream needs. Read before the sign-in ends.
pub async fn end_session_hint(
    db: &Db,
    sealer: &MasterKey,
    sid: &str,
) -> DomainResult<Option<(Provider, Option<String>)>> {
    let row: Option<(String, Option<String>)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT t.provider_id, t.id_token_enc FROM upstream_tokens t \
         JOIN upstream_providers p ON p.id = t.provider_id \
         WHERE t.login_session_id = $1 AND p.end_upstream_session AND p.deleted_at IS NULL"
    )
    .bind(sid)
    .fetch_optional(pool)
    .await)?;
    let Some((provider_id, id_token)) = row else {
        return Ok(None);
    };
    let Some(provider) = find_any(db, &provider_id).await? else {
        return Ok(None);
    };
    let id_token = id_token
        .and_then(|enc| sealer.decrypt(&enc).ok())
        .and_then(|t| String::from_utf8(t).ok());
    Ok(Some((provider, id_token)))
}

// ---------------------------------------------------------------------------
// Logout: in the transaction that ends a sign-in
// ---------------------------------------------------------------------------

/// Called by the revocation cascade in the transaction that ended sign-in
/// `sid` at `at` (unix seconds): its upstream tokens become due for
/// revocation where the provider revokes at logout, and are deleted at once
/// where it does not. The caller wakes the outbox worker after commit
/// (`backchannel::wake`).
pub async fn sign_in_ended<DB>(tx: &mut WriteTx<DB>, sid: &str, at: i64) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "UPDATE upstream_tokens SET revoke_requested_at = $1, next_attempt_at = $1 \
         WHERE login_session_id = $2 AND revoke_requested_at IS NULL \
         AND (refresh_token_enc IS NOT NULL OR access_token_enc IS NOT NULL) \
         AND provider_id IN (SELECT id FROM upstream_providers WHERE revoke_at_logout)",
    )
    .bind(at)
    .bind(sid.to_owned())
    .execute(&mut **tx)
    .await?;
    // Kept for nothing else: deleted now.
    sqlx::query(
        "UPDATE upstream_tokens SET refresh_token_enc = NULL, access_token_enc = NULL, \
         id_token_enc = NULL WHERE login_session_id = $1 AND revoke_requested_at IS NULL",
    )
    .bind(sid.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Delivery, for the outbox worker
// ---------------------------------------------------------------------------

/// One sign-in's upstream tokens to revoke (decrypted), leased by a worker.
#[derive(Clone, Debug)]
pub struct Revocation {
    pub login_session_id: String,
    pub provider_id: String,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    /// Unix seconds the sign-in ended: the retry deadline counts from it.
    pub requested_at: i64,
    /// Attempts including this one.
    pub attempts: i32,
}

#[derive(sqlx::FromRow)]
struct RevocationRow {
    login_session_id: String,
    provider_id: String,
    refresh_token_enc: Option<String>,
    access_token_enc: Option<String>,
    revoke_requested_at: i64,
    attempts: i32,
}

/// Leases up to `limit` due revocations, as `backchannel::claim_due` does
/// (attempt counted, next attempt moved `lease_secs` ahead; `SKIP LOCKED` on
/// PostgreSQL). A token that no longer decrypts (another master key) is
/// `None` and not sent.
pub async fn claim_due(
    db: &Db,
    sealer: &MasterKey,
    limit: i64,
    lease_secs: i64,
) -> DomainResult<Vec<Revocation>> {
    let at = now();
    let skip_locked = match db {
        Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE upstream_tokens SET next_attempt_at = $1, attempts = attempts + 1 \
         WHERE login_session_id IN (SELECT login_session_id FROM upstream_tokens \
          WHERE next_attempt_at <= $2 ORDER BY next_attempt_at, login_session_id LIMIT $3{skip_locked}) \
         RETURNING login_session_id, provider_id, refresh_token_enc, access_token_enc, \
         revoke_requested_at, attempts"
    );
    // Read first: the worker asks every second, and nothing is due nearly
    // always; only a due row costs a write transaction (SQLite's write turn).
    let due: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT login_session_id FROM upstream_tokens WHERE next_attempt_at <= $1 LIMIT 1"
    )
    .bind(at)
    .fetch_optional(pool)
    .await)?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let rows: Vec<RevocationRow> = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let rows = sqlx::query_as(&sql)
            .bind(at.saturating_add(lease_secs))
            .bind(at)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(rows)
    })?;
    let open = |enc: Option<String>| {
        enc.and_then(|e| sealer.decrypt(&e).ok())
            .and_then(|t| String::from_utf8(t).ok())
    };
    Ok(rows
        .into_iter()
        .map(|r| Revocation {
            login_session_id: r.login_session_id,
            provider_id: r.provider_id,
            refresh_token: open(r.refresh_token_enc),
            access_token: open(r.access_token_enc),
            requested_at: r.revoke_requested_at,
            attempts: r.attempts,
        })
        .collect())
}

pub use super::backchannel::{Attempt, Recorded};

/// Stores the outcome of an attempt at `revocation`: revoked (the tokens are
/// deleted), or failed with the next attempt from `retry`, or given up at the
/// deadline (the tokens are deleted too: nothing will send them again).
/// Revoked and given up are audited (`upstream_tokens_revoked`,
/// `upstream_revocation_gave_up`); a failure stays on the row.
pub async fn record(
    db: &Db,
    revocation: &Revocation,
    attempt: &Attempt,
    retry: &RetryPolicy,
) -> DomainResult<Recorded> {
    let at = now();
    let (outcome, error) = retry.outcome(attempt, revocation.requested_at, revocation.attempts, at);
    let user_id: Option<String> = on_db!(db, |pool| sqlx::query_scalar(
        "SELECT user_id FROM login_sessions WHERE id = $1"
    )
    .bind(&revocation.login_session_id)
    .fetch_optional(pool)
    .await)?;
    let detail = |kind| {
        let mut event = AuditEvent::new(kind).detail(serde_json::json!({
            "provider_id": revocation.provider_id,
            "sid": revocation.login_session_id,
            "attempts": revocation.attempts,
            "last_error": error,
        }));
        event.subject_user_id = user_id.clone();
        event
    };
    let (sql, event) = match outcome {
        Recorded::Retry(_) => (
            "UPDATE upstream_tokens SET next_attempt_at = $1, last_error = $2 \
             WHERE login_session_id = $3 AND attempts = $4 AND next_attempt_at IS NOT NULL",
            None,
        ),
        Recorded::Delivered => (
            "UPDATE upstream_tokens SET next_attempt_at = NULL, revoked_at = $1, \
             last_error = COALESCE($2, last_error), refresh_token_enc = NULL, \
             access_token_enc = NULL, id_token_enc = NULL \
             WHERE login_session_id = $3 AND attempts = $4 AND next_attempt_at IS NOT NULL",
            Some(detail(AuditKind::UpstreamTokensRevoked)),
        ),
        Recorded::GaveUp | Recorded::Superseded => (
            "UPDATE upstream_tokens SET next_attempt_at = NULL, gave_up_at = $1, \
             last_error = COALESCE($2, last_error), refresh_token_enc = NULL, \
             access_token_enc = NULL, id_token_enc = NULL \
             WHERE login_session_id = $3 AND attempts = $4 AND next_attempt_at IS NOT NULL",
            Some(detail(AuditKind::UpstreamRevocationGaveUp)),
        ),
    };
    let moment = match outcome {
        Recorded::Retry(next) => next,
        _ => at,
    };
    let written = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let updated = sqlx::query(sql)
            .bind(moment)
            .bind(&error)
            .bind(&revocation.login_session_id)
            .bind(revocation.attempts)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(event) = &event {
            crate::bind_audit!(event).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(true)
    })?;
    Ok(if written {
        outcome
    } else {
        Recorded::Superseded
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_never_reuse_a_taken_one_blindly() {
        let c = username_candidates(Some("alice@corp.example"), "sub-1");
        assert_eq!(c[0], "alice@corp.example");
        assert_eq!(c[1], "alice@corp.example-2");
        assert!(c.last().unwrap().starts_with("alice@corp.example-"));
        let none = username_candidates(None, "sub-1");
        assert_eq!(none[0], "user");
        assert_ne!(
            username_candidates(None, "sub-1").last(),
            username_candidates(None, "sub-2").last()
        );
    }

    #[test]
    fn extra_parameters_cannot_replace_latchkey_s_own() {
        let mut p = BTreeMap::new();
        p.insert("token".to_owned(), "x".to_owned());
        assert!(validate_extra_params(&p, "token").is_err());
        let mut p = BTreeMap::new();
        p.insert("client_secret".to_owned(), "x".to_owned());
        assert!(validate_extra_params(&p, "token").is_err());
        let mut p = BTreeMap::new();
        p.insert("tenant".to_owned(), "corp".to_owned());
        assert_eq!(validate_extra_params(&p, "token").unwrap(), p);
        assert!(parse_param_pairs(&["novalue".into()]).is_err());
        assert_eq!(
            parse_param_pairs(&["a=b=c".into()]).unwrap()["a"],
            "b=c",
            "the first = splits"
        );
    }

    #[test]
    fn issuers_are_https_or_loopback_without_query() {
        assert!(validate_issuer("https://sso.corp.example").is_ok());
        assert!(validate_issuer("http://127.0.0.1:3110").is_ok());
        assert!(validate_issuer("http://sso.corp.example").is_err());
        assert!(validate_issuer("https://sso.corp.example/?tenant=1").is_err());
        assert!(validate_issuer("javascript:alert(1)").is_err());
    }

    #[test]
    fn the_sealer_is_not_the_master_key() {
        let master = MasterKey::generate();
        let sealed = sealer(&master).encrypt(b"secret");
        assert!(master.decrypt(&sealed).is_err());
        assert_eq!(sealer(&master).decrypt(&sealed).unwrap(), b"secret");
    }
}
