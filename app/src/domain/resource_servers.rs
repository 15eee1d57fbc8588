//! Resource servers (the APIs tokens are for) are registered clients with an
//! audience and the scopes they serve.
//!
//! - A token's `aud` (RFC 9068 §3) names the resource servers serving any of
//!   its scopes, plus the issuer (Latchkey's own userinfo and APIs) when a
//!   scope no resource server serves is in it — the OpenID scopes, say — or
//!   it has none; an RFC 8707 `resource` parameter instead names exactly one
//!   registered audience ([`ResourceServers::audience_for`]).
//! - Only a resource server whose audience the token names may introspect
//!   it, besides the client the token was issued to
//!   ([`ResourceServers::may_introspect`]).
//!
//! Each instance keeps a snapshot of the registrations ([`ResourceServers`]),
//! read again after any registration change, which is announced to every
//! instance before it is acknowledged.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::{
    audit::{Actor, AuditEvent, AuditKind},
    error::{DomainError, DomainResult},
    grants::{CLIENT_ONLY_SCOPES, OPENID_SCOPES},
    store::{is_unique_violation, now, Db},
};
use crate::on_db;

/// A client registered as a resource server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceServer {
    pub client_id: String,
    /// Its resource indicator (RFC 8707), the `aud` of tokens meant for it.
    pub audience: String,
    /// The scopes it serves (space-separated on the wire).
    pub scopes: Vec<String>,
}

/// An audience: an absolute URI without a fragment, at most 200 characters
/// (RFC 8707 §2).
pub fn validate_audience(raw: &str) -> DomainResult<String> {
    let bad = |why: &str| DomainError::invalid("audience", format!("{raw:?} {why}"));
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(DomainError::invalid("audience", "must not be empty"));
    }
    if raw.chars().count() > 200 {
        return Err(bad("is longer than 200 characters"));
    }
    if raw.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("must not contain spaces"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("is not an absolute URI"))?;
    if url.fragment().is_some() || raw.contains('#') {
        return Err(bad("must not contain a fragment (#...)"));
    }
    Ok(raw.to_owned())
}

/// The scopes a resource server may serve: its own, never the OpenID ones or Latchkey's.
fn validate_scopes(scopes: &[String]) -> DomainResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in scopes.iter().flat_map(|s| s.split_whitespace()) {
        if OPENID_SCOPES.contains(&s) || CLIENT_ONLY_SCOPES.contains(&s) {
            return Err(DomainError::invalid(
                "scopes",
                format!("{s:?} is Latchkey's own scope; a resource server serves its own"),
            ));
        }
        super::clients::validate_scope(s)?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// Every resource server of a client not deleted, by audience.
pub async fn all(db: &Db) -> DomainResult<Vec<ResourceServer>> {
    let rows: Vec<(String, String, String)> = on_db!(db, |pool| {
        sqlx::query_as(
            "SELECT r.client_id, r.audience, r.scopes FROM resource_servers r \
             JOIN clients c ON c.id = r.client_id WHERE c.deleted_at IS NULL ORDER BY r.audience",
        )
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(client_id, audience, scopes)| ResourceServer {
            client_id,
            audience,
            scopes: split(&scopes),
        })
        .collect())
}

fn split(scopes: &str) -> Vec<String> {
    scopes.split_whitespace().map(str::to_owned).collect()
}

/// One instance's snapshot of the registered resource servers, read from
/// the database again after any registration change — made here, or
/// announced by another instance (`clients::registration_generation`) — so
/// the hot paths (a token's `aud`, who may introspect it) cost no database
/// read and a change applies before it is acknowledged; and at least every
/// [`super::clients::REGISTRATION_MAX_AGE`], should an announcement have failed.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct ResourceServers {
    read: Arc<RwLock<Option<Snapshot>>>,
}

/// When it was read, and what.
type Snapshot = (super::clients::ReadAt, Arc<Vec<ResourceServer>>);

impl ResourceServers {
    /// Every resource server of a client not deleted ([`all`]), as of the
    /// current registration generation.
    pub async fn current(&self, db: &Db) -> DomainResult<Arc<Vec<ResourceServer>>> {
        let read_at = super::clients::ReadAt::before_reading();
        if let Some((_, servers)) = self
            .read
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(read, _)| read.is_current())
        {
            return Ok(servers.clone());
        }
        let servers = Arc::new(all(db).await?);
        *self.read.write().unwrap_or_else(|e| e.into_inner()) = Some((read_at, servers.clone()));
        Ok(servers)
    }

    /// The `aud` of an access token with these scopes (space-separated), for
    /// `issuer`: see the module. `resource` (RFC 8707 §2), when given, must be a
    /// registered audience and is then the only one, else `DomainError::Invalid`
    /// on `resource` (the token endpoint answers `invalid_target`).
    pub async fn audience_for(
        &self,
        db: &Db,
        issuer: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> DomainResult<Vec<String>> {
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        // Latchkey's own scopes are never a resource server's: no need to look.
        let own = |s: &&str| OPENID_SCOPES.contains(s) || CLIENT_ONLY_SCOPES.contains(s);
        if resource.is_none() && scopes.iter().all(own) {
            return Ok(vec![issuer.to_owned()]);
        }
        audience_among(&self.current(db).await?, issuer, scope, resource)
    }

    /// Whether `caller` may see an access token's claims at introspection:
    /// the client it was issued to, or a resource server its `aud` names.
    pub async fn may_introspect(
        &self,
        db: &Db,
        caller: &str,
        token_client_id: &str,
        aud: &[String],
    ) -> DomainResult<bool> {
        if caller == token_client_id {
            return Ok(true);
        }
        Ok(self
            .current(db)
            .await?
            .iter()
            .any(|r| r.client_id == caller && aud.contains(&r.audience)))
    }
}

/// [`ResourceServers::audience_for`] among `servers` (a snapshot
/// [`ResourceServers::current`] returned): reads nothing, so a caller that
/// must not fail after a write takes the snapshot before it.
pub fn audience_among(
    servers: &[ResourceServer],
    issuer: &str,
    scope: &str,
    resource: Option<&str>,
) -> DomainResult<Vec<String>> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if let Some(resource) = resource {
        return match servers.iter().find(|r| r.audience == resource) {
            Some(r) => Ok(vec![r.audience.clone()]),
            None => Err(DomainError::invalid(
                "resource",
                format!("{resource:?} is not a registered resource server"),
            )),
        };
    }
    let served = |s: &str| servers.iter().any(|r| r.scopes.iter().any(|x| x == s));
    let mut aud: Vec<String> = servers
        .iter()
        .filter(|r| r.scopes.iter().any(|s| scopes.contains(&s.as_str())))
        .map(|r| r.audience.clone())
        .collect();
    if scopes.is_empty() || scopes.iter().any(|s| !served(s)) {
        aud.push(issuer.to_owned());
    }
    Ok(aud)
}

/// The resource server registration of a client (fresh from the database).
pub async fn of_client(db: &Db, client_id: &str) -> DomainResult<Option<ResourceServer>> {
    let row: Option<(String, String)> = on_db!(db, |pool| {
        sqlx::query_as("SELECT audience, scopes FROM resource_servers WHERE client_id = $1")
            .bind(client_id)
            .fetch_optional(pool)
            .await
    })?;
    Ok(row.map(|(audience, scopes)| ResourceServer {
        client_id: client_id.to_owned(),
        audience,
        scopes: split(&scopes),
    }))
}

/// Registers (or changes) a client as a resource server; audited as a client
/// update. Errors: the client does not exist → `NotFound`; a bad audience or
/// scope → `Invalid`; the audience is another client's → `Conflict`.
pub async fn set(
    db: &Db,
    client_id: &str,
    audience: &str,
    scopes: &[String],
    actor: &Actor,
) -> DomainResult<ResourceServer> {
    let audience = validate_audience(audience)?;
    let scopes = validate_scopes(scopes)?;
    if super::clients::find_client(db, client_id).await?.is_none() {
        return Err(DomainError::NotFound);
    }
    let before = of_client(db, client_id).await?;
    let after = ResourceServer {
        client_id: client_id.to_owned(),
        audience,
        scopes,
    };
    let event = AuditEvent::new(AuditKind::ClientUpdated)
        .client(client_id)
        .by(actor)
        .detail(serde_json::json!({ "resource_server": { "before": before, "after": after } }));
    let at = now();
    let joined = after.scopes.join(" ");
    let stored = on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        sqlx::query(
            "INSERT INTO resource_servers (client_id, audience, scopes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (client_id) DO UPDATE \
             SET audience = $2, scopes = $3, updated_at = $4",
        )
        .bind(client_id)
        .bind(&after.audience)
        .bind(&joined)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    });
    match stored {
        Ok(()) => {
            super::clients::registration_changed_everywhere(db).await;
            Ok(after)
        }
        Err(e) if is_unique_violation(&e) => Err(DomainError::Conflict(format!(
            "the audience {:?} belongs to another resource server",
            after.audience
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Makes a resource server an ordinary client again; audited. `Ok(false)`: it was not one.
pub async fn remove(db: &Db, client_id: &str, actor: &Actor) -> DomainResult<bool> {
    let Some(before) = of_client(db, client_id).await? else {
        return Ok(false);
    };
    let event = AuditEvent::new(AuditKind::ClientUpdated)
        .client(client_id)
        .by(actor)
        .detail(serde_json::json!({ "resource_server": { "before": before, "after": null } }));
    on_db!(db, |pool| {
        let mut tx = pool.begin_durable_write().await?;
        sqlx::query("DELETE FROM resource_servers WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        crate::bind_audit!(&event).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    super::clients::registration_changed_everywhere(db).await;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_absolute_uris_without_fragments() {
        assert_eq!(
            validate_audience(" https://notes.example/api ").unwrap(),
            "https://notes.example/api"
        );
        assert!(validate_audience("urn:example:notes").is_ok());
        for bad in [
            "",
            "notes",
            "/api",
            "https://notes.example/#x",
            "https://a b",
        ] {
            assert!(validate_audience(bad).is_err(), "{bad:?}");
        }
        assert!(validate_audience(&format!("https://x.example/{}", "a".repeat(200))).is_err());
    }

    #[test]
    fn a_resource_server_serves_its_own_scopes_only() {
        let v = |s: &[&str]| validate_scopes(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            v(&["notes:read notes:write", "notes:read"]).unwrap(),
            vec!["notes:read", "notes:write"]
        );
        assert!(v(&["openid"]).is_err());
        assert!(v(&["latchkey:admin"]).is_err());
        assert!(v(&["bad\"scope"]).is_err());
    }
}
