//! The scope catalogue: every scope a client may be registered for, besides
//! the OpenID scopes and Latchkey's own, with the plain words people read on
//! the consent page and in My apps ("Read your notes") and whether it is
//! sensitive (listed first, marked).
//!
//! Rules:
//! - a client may be registered only for catalogued scopes (or built-in
//!   ones): [`missing_from_catalogue!`], inside the registration's and
//!   edit's write transaction;
//! - `/oauth/authorize` grants a person's consent only to scopes that are
//!   built in or catalogued now ([`Catalogue::offers`]);
//! - a scope is removed from the catalogue only while no client is
//!   registered for it ([`remove`] answers `Conflict`, naming them). Both
//!   checks run inside their write transaction (on PostgreSQL the catalogue
//!   row is locked, `FOR SHARE` by registration and `FOR UPDATE` by
//!   removal), so a removal racing a registration cannot leave a client with
//!   an uncatalogued scope;
//! - every change is audited (`scope_defined`, `scope_removed`).
//!
//! The catalogue is read from the database where it is shown (a small table,
//! read once per page), so every instance shows a change at once.

use std::collections::HashMap;

use serde::Serialize;

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    clients::validate_scope,
    error::{DomainError, DomainResult},
    store::{now, Backend, Db},
};
use crate::{model::ScopeInfo, on_db};

/// The words of a scope nobody has worded: one granted before it left the
/// catalogue, or adopted from a registration older than the catalogue.
pub fn generic_words(scope: &str) -> String {
    let words = format!("Use the “{scope}” permission this app defines");
    words.chars().take(DESCRIPTION_MAX).collect()
}

/// The lock a registration takes on the catalogue rows it relies on
/// (PostgreSQL: a removal waits for it; SQLite: writes take turns anyway).
pub fn share_lock(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Postgres => " FOR SHARE",
        Backend::Sqlite => "",
    }
}

/// Inside a write transaction `$tx` (a `&mut Transaction`): the first of
/// `$scopes` (`&[String]`) that is neither built in nor in the catalogue, as
/// `Option<String>`, locking the rows found with `$lock` ([`share_lock`]).
/// Evaluates `?` on database errors.
#[macro_export]
macro_rules! missing_from_catalogue {
    ($tx:expr, $scopes:expr, $lock:expr) => {{
        let sql = format!(
            "SELECT scope FROM scope_catalogue WHERE scope = $1{}",
            $lock
        );
        let mut missing: Option<String> = None;
        for scope in $scopes
            .iter()
            .filter(|s| !$crate::domain::scopes::is_builtin(s))
        {
            let found: Option<String> = sqlx::query_scalar(&sql)
                .bind(scope)
                .fetch_optional(&mut *$tx)
                .await?;
            if found.is_none() {
                missing = Some(scope.clone());
                break;
            }
        }
        missing
    }};
}

/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 120;

/// One catalogued scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CatalogueEntry {
    pub scope: String,
    /// What it lets an app do, in plain words: "Read your notes".
    pub description: String,
    /// Listed first and marked on the consent page and in My apps.
    pub sensitive: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// The built-in wording of the OpenID scopes and Latchkey's own (which no
/// catalogue entry may redefine); `None` for any other scope.
pub fn builtin(scope: &str) -> Option<&'static str> {
    Some(match scope {
        "openid" => "Know who you are: your Latchkey account id",
        "profile" => "See your username",
        "email" => "See your email address, if your account has one",
        "offline_access" => {
            "Keep access while you are away: it can renew its access without asking you again"
        }
        super::grants::ADMIN_SCOPE => "Administer Latchkey through its admin API",
        super::grants::REVOCATIONS_SCOPE => "Follow Latchkey's revocations (the revocation feed)",
        _ => return None,
    })
}

/// An OpenID scope or one of Latchkey's own: worded by [`builtin`], never catalogued.
pub fn is_builtin(scope: &str) -> bool {
    builtin(scope).is_some()
}

/// The catalogue as read at one moment: what the pages and the authorization
/// endpoint look scopes up in.
#[derive(Clone, Debug, Default)]
pub struct Catalogue {
    entries: HashMap<String, (String, bool)>,
}

impl Catalogue {
    /// Whether a person may be asked for `scope` now: built in, or catalogued.
    pub fn offers(&self, scope: &str) -> bool {
        is_builtin(scope) || self.entries.contains_key(scope)
    }

    /// `scope` in plain words; a scope neither built in nor catalogued (one
    /// granted before it was removed) is named as it is.
    pub fn describe(&self, scope: &str) -> ScopeInfo {
        let (description, sensitive) = match (builtin(scope), self.entries.get(scope)) {
            (Some(words), _) => (words.to_owned(), false),
            (None, Some((words, sensitive))) => (words.clone(), *sensitive),
            (None, None) => (generic_words(scope), false),
        };
        ScopeInfo {
            scope: scope.to_owned(),
            description,
            sensitive,
        }
    }

    /// `scopes` in plain words, sensitive ones first, otherwise in the order given.
    pub fn describe_all<S: AsRef<str>>(&self, scopes: &[S]) -> Vec<ScopeInfo> {
        let mut out: Vec<ScopeInfo> = scopes.iter().map(|s| self.describe(s.as_ref())).collect();
        out.sort_by_key(|s| !s.sensitive);
        out
    }
}

/// Reads the catalogue.
pub async fn catalogue(db: &Db) -> DomainResult<Catalogue> {
    let rows: Vec<(String, String, bool)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT scope, description, sensitive FROM scope_catalogue"
    )
    .fetch_all(pool)
    .await)?;
    Ok(Catalogue {
        entries: rows
            .into_iter()
            .map(|(scope, words, sensitive)| (scope, (words, sensitive)))
            .collect(),
    })
}

/// Every catalogued scope, by name.
pub async fn list(db: &Db) -> DomainResult<Vec<CatalogueEntry>> {
    Ok(on_db!(db, |pool| {
        sqlx::query_as::<_, CatalogueEntry>(
        "SELECT scope, description, sensitive, created_at, updated_at FROM scope_catalogue ORDER BY scope"
    )
    .fetch_all(pool)
    .await
    })?)
}

/// A description: trimmed, 1–[`DESCRIPTION_MAX`] characters, one line of
/// plain text ([`super::names::is_unsafe_in_text`]).
fn validate_description(raw: &str) -> DomainResult<String> {
    let words = raw.trim();
    if words.is_empty() {
        return Err(DomainError::invalid(
            "description",
            "must say in plain words what the scope lets an app do",
        ));
    }
    if words.chars().count() > DESCRIPTION_MAX {
        return Err(DomainError::invalid(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if words.chars().any(super::names::is_unsafe_in_text) {
        return Err(DomainError::invalid(
            "description",
            "must be one line of plain text, without line breaks or control characters",
        ));
    }
    Ok(words.to_owned())
}

/// A scope name the catalogue may hold: an RFC 6749 §3.3 scope token that is
/// neither an OpenID scope nor one of Latchkey's own.
fn validate_name(raw: &str) -> DomainResult<String> {
    let scope = validate_scope(raw.trim())?;
    if is_builtin(&scope) {
        return Err(DomainError::invalid(
            "scope",
            format!("{scope:?} is built in: its wording cannot be changed"),
        ));
    }
    Ok(scope)
}

/// Adds `scope` to the catalogue or changes its description and
/// sensitivity (`None`: keep it; a new scope is not sensitive); audited
/// `scope_defined` with what it was before (`null` for a new one). Returns
/// the entry as stored.
///
/// Errors: `Invalid` on `scope` (not an RFC 6749 scope token, or built in)
/// or `description` (empty, over [`DESCRIPTION_MAX`] characters, control
/// characters).
pub async fn define(
    db: &Db,
    scope: &str,
    description: &str,
    sensitive: Option<bool>,
    actor: &Actor,
) -> DomainResult<CatalogueEntry> {
    let scope = validate_name(scope)?;
    let description = validate_description(description)?;
    let at = now();
    let entry = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let before: Option<CatalogueEntry> = sqlx::query_as(
            "SELECT scope, description, sensitive, created_at, updated_at FROM scope_catalogue WHERE scope = $1",
        )
        .bind(&scope)
        .fetch_optional(&mut *tx)
        .await?;
        let sensitive = sensitive.unwrap_or_else(|| before.as_ref().is_some_and(|b| b.sensitive));
        let entry: CatalogueEntry = sqlx::query_as(
            "INSERT INTO scope_catalogue (scope, description, sensitive, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (scope) DO UPDATE SET description = $2, sensitive = $3, updated_at = $4 \
             RETURNING scope, description, sensitive, created_at, updated_at",
        )
        .bind(&scope)
        .bind(&description)
        .bind(sensitive)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        let event = AuditEvent::new(AuditKind::ScopeDefined)
            .by(actor)
            .detail(serde_json::json!({ "scope": scope, "before": before, "after": entry }));
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(entry)
    })?;
    Ok(entry)
}

/// Removes `scope` from the catalogue; audited `scope_removed`.
///
/// Errors: `NotFound` when it is not catalogued; `Conflict` while a client
/// (not deleted) is registered for it, naming up to five of them.
pub async fn remove(db: &Db, scope: &str, actor: &Actor) -> DomainResult<()> {
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let select = format!(
        "SELECT scope, description, sensitive, created_at, updated_at FROM scope_catalogue \
         WHERE scope = $1{lock}"
    );
    let outcome = on_db!(db, |pool| {
        let mut tx = pool.begin_write().await?;
        let before: Option<CatalogueEntry> = sqlx::query_as(&select)
            .bind(scope)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = before else {
            tx.rollback().await?;
            return Ok(Err(DomainError::NotFound));
        };
        // Read under the lock: a registration that took this scope has committed.
        let registered: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, extra_scopes FROM clients WHERE deleted_at IS NULL ORDER BY name_key",
        )
        .fetch_all(&mut *tx)
        .await?;
        let users: Vec<String> = registered
            .into_iter()
            .filter(|(_, scopes)| scopes.split(' ').any(|s| s == scope))
            .map(|(name, _)| name)
            .collect();
        if !users.is_empty() {
            tx.rollback().await?;
            let mut names = users.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if users.len() > 5 {
                names.push_str(&format!(" and {} more", users.len() - 5));
            }
            return Ok(Err(DomainError::Conflict(format!(
                "{scope:?} is registered by {names}: take it out of their registration first"
            ))));
        }
        sqlx::query("DELETE FROM scope_catalogue WHERE scope = $1")
            .bind(scope)
            .execute(&mut *tx)
            .await?;
        let event = AuditEvent::new(AuditKind::ScopeRemoved)
            .by(actor)
            .detail(serde_json::json!({ "scope": scope, "before": before }));
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Ok(()))
    })?;
    outcome
}

/// Every catalogued scope with the names of the clients (not deleted)
/// registered for it, by scope.
pub async fn list_with_clients(db: &Db) -> DomainResult<Vec<(CatalogueEntry, Vec<String>)>> {
    let entries = list(db).await?;
    let clients = super::clients::list_clients(db).await?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let names = clients
                .iter()
                .filter(|c| c.extra_scopes.contains(&e.scope))
                .map(|c| c.name.clone())
                .collect();
            (e, names)
        })
        .collect())
}

/// The refusal of a registration naming a scope the catalogue lacks.
pub fn not_catalogued(scope: &str) -> DomainError {
    DomainError::invalid(
        "extra_scopes",
        format!(
            "{scope:?} is not in the scope catalogue: define it first, with the words people will read \
             (`latchkey scope set {scope} --description \"...\"`, or Admin → Scopes)"
        ),
    )
}

/// Catalogues the scopes clients were registered for before the catalogue
/// existed, so that an upgrade keeps them working: each gets the generic
/// wording until an admin writes better words. Run after the migrations;
/// does nothing once every registered scope is catalogued.
pub async fn adopt_registered(db: &Db) -> DomainResult<usize> {
    let catalogue = catalogue(db).await?;
    let mut missing: Vec<String> = super::clients::list_clients(db)
        .await?
        .into_iter()
        .flat_map(|c| c.extra_scopes)
        .filter(|s| !catalogue.offers(s))
        .collect();
    missing.sort();
    missing.dedup();
    for scope in &missing {
        define(
            db,
            scope,
            &generic_words(scope),
            Some(false),
            &Actor::default(),
        )
        .await?;
    }
    Ok(missing.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grants::{CLIENT_ONLY_SCOPES, OPENID_SCOPES};

    #[test]
    fn every_scope_latchkey_defines_has_built_in_words_and_no_other_does() {
        for scope in OPENID_SCOPES.iter().chain(CLIENT_ONLY_SCOPES.iter()) {
            assert!(is_builtin(scope), "{scope}");
            assert!(!builtin(scope).unwrap().is_empty());
        }
        for scope in ["notes:read", "OPENID", "openid ", "latchkey:other"] {
            assert!(!is_builtin(scope), "{scope:?}");
        }
    }
}
