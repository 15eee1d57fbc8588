//! Access tokens (RFC 9068 JWTs): their claims, issuing them for the
//! client_credentials grant, and reading them back for introspection.

use serde::{Deserialize, Serialize};

use super::{
    audit::AuditKind,
    clients::Client,
    error::{DomainError, DomainResult},
    keys::{KeyRing, SigningAlg},
    revocation::RevokedSets,
    secrets::{new_id, random_token},
    store::{is_unique_violation, now, Db},
};
use crate::on_db;

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Claims of an access token (RFC 9068 §2.2) plus Latchkey's revocation handles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The user id, or the client_id for client_credentials tokens.
    pub sub: String,
    /// The resource servers the token is for (RFC 9068 §3), and the issuer
    /// when it is for Latchkey's own endpoints too
    /// ([`super::resource_servers::ResourceServers::audience_for`]). One is sent as a string.
    #[serde(with = "one_or_many")]
    pub aud: Vec<String>,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub scope: String,
    /// The grant the token was issued under.
    pub gid: String,
    /// The token family (absent for client_credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<String>,
    /// The sign-in session (OpenID Connect `sid`), when a user signed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// An access token as handed to a client.
#[derive(Clone, Debug)]
pub struct IssuedAccessToken {
    pub token: String,
    pub expires_in: i64,
    pub claims: AccessClaims,
}

/// Who and what an access token is for; [`sign_access_token`] adds the
/// issuer, times and `jti`.
#[derive(Clone, Debug)]
pub struct AccessFor {
    /// From [`super::resource_servers::ResourceServers::audience_for`].
    pub aud: Vec<String>,
    /// The user id, or the client_id for client_credentials tokens.
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub gid: String,
    pub fid: Option<String>,
    pub sid: Option<String>,
}

/// Signs an access token for a grant with the client's access-token lifetime.
pub fn sign_access_token(
    keys: &KeyRing,
    issuer: &str,
    access_ttl_secs: i64,
    token: AccessFor,
) -> DomainResult<IssuedAccessToken> {
    let iat = now();
    let claims = AccessClaims {
        iss: issuer.to_owned(),
        sub: token.sub,
        aud: token.aud,
        client_id: token.client_id,
        iat,
        exp: iat + access_ttl_secs,
        jti: random_token(16),
        scope: token.scope,
        gid: token.gid,
        fid: token.fid,
        sid: token.sid,
    };
    let token = keys.sign(SigningAlg::EdDSA, ACCESS_TOKEN_TYP, &claims)?;
    Ok(IssuedAccessToken {
        token,
        expires_in: access_ttl_secs,
        claims,
    })
}

/// The scopes granted for a request: requested ⊆ allowed (RFC 6749 §3.3);
/// nothing requested → everything allowed. Scope tokens are separated by
/// spaces only: a tab, a line break or any other character is part of a
/// token (and no allowed scope holds one), never trimmed away.
pub fn narrow_scope(requested: Option<&str>, allowed: &[String]) -> DomainResult<String> {
    match requested.filter(|s| s.split(' ').any(|s| !s.is_empty())) {
        None => Ok(allowed.join(" ")),
        Some(requested) => {
            let mut scopes: Vec<&str> = Vec::new();
            for s in requested.split(' ').filter(|s| !s.is_empty()) {
                if !allowed.iter().any(|a| a == s) {
                    return Err(DomainError::invalid(
                        "scope",
                        format!("{s:?} is not allowed for this client"),
                    ));
                }
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
            Ok(scopes.join(" "))
        }
    }
}

/// What client_credentials issuance reads, in one query: the client's access
/// token lifetime (its override, else the default, as [`super::policy::effective`]
/// computes it) and its own live grant, if it has one yet. No row: the client
/// is unknown or deleted.
#[derive(Clone, sqlx::FromRow)]
struct ClientCredentialsFacts {
    access_ttl_secs: i64,
    grant_id: Option<String>,
}

/// One instance's memory of [`ClientCredentialsFacts`] per client, so a
/// client_credentials issuance reads no database. An entry holds while
/// nothing that could change it happened: no registration or policy change
/// (made here or announced by another instance:
/// [`super::clients::registration_generation`]) and no revocation applied
/// here since ([`RevokedSets::applied`]; the grant may be the one revoked),
/// and only while this instance is fresh ([`RevokedSets::ensure_fresh`]) —
/// the same guarantee introspection relies on — and for
/// [`super::clients::REGISTRATION_MAX_AGE`] at most, should a change's
/// announcement have failed. Cheap to clone.
#[derive(Clone, Default)]
pub struct IssuanceFacts {
    read: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, RememberedFacts>>>,
}

struct RememberedFacts {
    read_at: super::clients::ReadAt,
    applied: i64,
    facts: ClientCredentialsFacts,
}

/// How many clients [`IssuanceFacts`] remembers at most; when full it forgets them all.
const ISSUANCE_FACTS_CAPACITY: usize = 4096;

impl IssuanceFacts {
    /// The facts of `client_id`, from memory when they still hold, else
    /// read (and remembered once the client has its grant).
    async fn of(
        &self,
        db: &Db,
        revoked: &RevokedSets,
        client_id: &str,
    ) -> DomainResult<Option<ClientCredentialsFacts>> {
        let usable = revoked.ensure_fresh(db).await;
        // Read before the database, so a change committed meanwhile is not remembered as current.
        let (read_at, applied) = (super::clients::ReadAt::before_reading(), revoked.applied());
        if usable {
            let read = self.read.read().unwrap_or_else(|e| e.into_inner());
            // A grant revoked here is in the sets before the log position moves.
            if let Some(hit) = read.get(client_id).filter(|r| {
                r.read_at.is_current()
                    && r.applied == applied
                    && r.facts
                        .grant_id
                        .as_deref()
                        .is_some_and(|g| !revoked.grant_is_revoked(g))
            }) {
                return Ok(Some(hit.facts.clone()));
            }
        }
        let facts = client_credentials_facts(db, client_id).await?;
        if let Some(facts) = facts.as_ref().filter(|f| usable && f.grant_id.is_some()) {
            let mut write = self.read.write().unwrap_or_else(|e| e.into_inner());
            if write.len() >= ISSUANCE_FACTS_CAPACITY {
                write.clear();
            }
            write.insert(
                client_id.to_owned(),
                RememberedFacts {
                    read_at,
                    applied,
                    facts: facts.clone(),
                },
            );
        }
        Ok(facts)
    }
}

async fn client_credentials_facts(
    db: &Db,
    client_id: &str,
) -> DomainResult<Option<ClientCredentialsFacts>> {
    Ok(on_db!(db, |pool| {
        sqlx::query_as::<_, ClientCredentialsFacts>(
            "SELECT p.access_ttl_secs, g.id AS grant_id \
         FROM clients c JOIN client_policies p ON p.client_id = c.id \
         LEFT JOIN grants g ON g.client_id = c.id AND g.user_id IS NULL AND g.revoked_at IS NULL \
         WHERE c.id = $1 AND c.deleted_at IS NULL",
        )
        .bind(client_id)
        .fetch_optional(pool)
        .await
    })?)
}

/// Creates the client's own grant for client_credentials on first use (one
/// live grant per client); a concurrent first use may win, then it is theirs.
/// `NotFound` when the client was deleted meanwhile: the grant is stored only
/// while the client is live, read with a share lock on PostgreSQL (see
/// [`super::grants::issuer_locks`]), so a deletion either waits for it and
/// then revokes it, or is seen here.
async fn create_client_grant(db: &Db, client_id: &str, scopes: &str) -> DomainResult<String> {
    let id = new_id();
    let live_sql = format!(
        "SELECT id FROM clients WHERE id = $1 AND deleted_at IS NULL{}",
        super::grants::issuer_locks(db, "clients")
    );
    let inserted = {
        on_db!(db, |pool| {
            let mut tx = pool.begin_write().await?;
            let live: Option<String> = sqlx::query_scalar(&live_sql)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
            if live.is_none() {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO grants (id, user_id, client_id, scopes, created_at) VALUES ($1, NULL, $2, $3, $4)",
            )
            .bind(&id)
            .bind(client_id)
            .bind(scopes)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await.map(|()| true)
        })
    };
    match inserted {
        Ok(true) => Ok(id),
        Ok(false) => Err(DomainError::NotFound),
        // Another request created it at the same moment: use theirs.
        Err(e) if is_unique_violation(&e) => client_credentials_facts(db, client_id)
            .await?
            .and_then(|facts| facts.grant_id)
            .ok_or(DomainError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// What the token endpoint's grants work with, borrowed from the server's
/// state for one request (`state::AppState::issuance`): the database, the
/// signing keys, the revoked sets, the registered resource servers, what is
/// remembered between requests, and this issuer. One argument for what
/// every grant needs, instead of seven.
#[derive(Clone, Copy)]
pub struct Issuance<'a> {
    pub db: &'a Db,
    pub keys: &'a KeyRing,
    pub revoked: &'a RevokedSets,
    /// Tokens' `aud` (RFC 8707 resource indicators).
    pub servers: &'a super::resource_servers::ResourceServers,
    /// Counts of client_credentials tokens and refreshes.
    pub usage: &'a super::usage::Usage,
    /// What client_credentials issuance reads, remembered.
    pub facts: &'a IssuanceFacts,
    /// Clients' policies and SQLite's waiting rotations.
    pub refreshes: &'a super::refresh::Refreshes,
    /// This server's issuer identifier (`iss`).
    pub issuer: &'a str,
}

/// Issues an access token for the client_credentials grant (RFC 6749 §4.4):
/// never a refresh token; scope narrowed to what the client may ask for;
/// counted in `usage` (per client and minute, not an audit row each).
/// `NotFound` when the client is deleted.
pub async fn issue_client_credentials(
    issuance: &Issuance<'_>,
    client: &Client,
    requested_scope: Option<&str>,
    resource: Option<&str>,
) -> DomainResult<IssuedAccessToken> {
    let Issuance {
        db,
        usage,
        revoked,
        facts: remembered,
        servers,
        keys,
        issuer,
        ..
    } = *issuance;
    let scope = narrow_scope(requested_scope, &client.extra_scopes)?;
    let aud = servers.audience_for(db, issuer, &scope, resource).await?;
    let facts = remembered
        .of(db, revoked, &client.client_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let grant_id = match facts.grant_id {
        Some(id) => id,
        None => create_client_grant(db, &client.client_id, &client.extra_scopes.join(" ")).await?,
    };
    let issued = sign_access_token(
        keys,
        issuer,
        facts.access_ttl_secs,
        AccessFor {
            aud,
            sub: client.client_id.clone(),
            client_id: client.client_id.clone(),
            scope,
            gid: grant_id,
            fid: None,
            sid: None,
        },
    )?;
    usage.count(&client.client_id, None, AuditKind::TokenIssued);
    Ok(issued)
}

/// Why a code or refresh-token exchange failed, in RFC 6749 §5.2 terms.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    /// The database or signing failed: nothing was issued.
    #[error(transparent)]
    Failed(#[from] DomainError),
}

impl From<sqlx::Error> for GrantError {
    fn from(e: sqlx::Error) -> Self {
        GrantError::Failed(e.into())
    }
}

/// What a token response carries (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access: IssuedAccessToken,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// Claims of an ID token (OpenID Connect Core §2), signed RS256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub at_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// What an ID token says about the user and the sign-in.
pub struct IdTokenFacts<'a> {
    pub username: &'a str,
    pub nonce: Option<String>,
    pub auth_time: Option<i64>,
}

/// Signs the ID token that goes with `access` (RS256, as OpenID Connect
/// requires): `aud` is the client, `at_hash` binds the access token, `sid` the
/// sign-in, `nonce` the authorization request. Same lifetime as the access token.
pub fn sign_id_token(
    keys: &KeyRing,
    access: &IssuedAccessToken,
    facts: IdTokenFacts<'_>,
) -> DomainResult<String> {
    let claims = &access.claims;
    let scopes: Vec<&str> = claims.scope.split(' ').collect();
    let id = IdClaims {
        iss: claims.iss.clone(),
        sub: claims.sub.clone(),
        aud: claims.client_id.clone(),
        azp: claims.client_id.clone(),
        exp: claims.exp,
        iat: claims.iat,
        auth_time: facts.auth_time,
        nonce: facts.nonce,
        sid: claims.sid.clone(),
        at_hash: super::jwt::at_hash(&access.token),
        preferred_username: scopes
            .contains(&"profile")
            .then(|| facts.username.to_owned()),
    };
    keys.sign(SigningAlg::RS256, "JWT", &id)
}

/// What introspection says about a live access token (RFC 7662 §2.2).
#[derive(Clone, Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    pub scope: String,
    pub client_id: String,
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    #[serde(with = "one_or_many")]
    pub aud: Vec<String>,
    pub jti: String,
    pub token_type: &'static str,
}

/// Whether a token has the shape of a JWS (three dot-separated parts); refresh
/// tokens and codes are plain base64url and never contain a dot.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Validates an access token and checks every revocation level in memory.
/// `None` for anything not live: expired, revoked, malformed, foreign.
pub async fn live_access_token(
    db: &Db,
    keys: &KeyRing,
    revoked: &RevokedSets,
    issuer: &str,
    token: &str,
) -> Option<AccessClaims> {
    let claims: AccessClaims = keys.verify_access_token(token, issuer, issuer).ok()?;
    is_live(db, revoked, claims).await
}

/// [`live_access_token`] whatever its audience: for introspection, which
/// then decides whether the caller may see it
/// ([`super::resource_servers::ResourceServers::may_introspect`]).
pub async fn live_access_token_any_audience(
    db: &Db,
    keys: &KeyRing,
    revoked: &RevokedSets,
    issuer: &str,
    token: &str,
) -> Option<AccessClaims> {
    let claims: AccessClaims = keys.verify_access_token_any_audience(token, issuer).ok()?;
    is_live(db, revoked, claims).await
}

/// The claims, unless revoked — or this instance cannot tell, being stale
/// (`RevokedSets::ensure_fresh`): then it fails closed.
async fn is_live(db: &Db, revoked: &RevokedSets, claims: AccessClaims) -> Option<AccessClaims> {
    if !revoked.ensure_fresh(db).await {
        return None;
    }
    (!revoked.is_revoked(&claims.gid, claims.fid.as_deref(), &claims.jti)).then_some(claims)
}

/// The RFC 7662 answer for a live access token.
pub fn introspection_of(claims: AccessClaims) -> Introspection {
    Introspection {
        active: true,
        scope: claims.scope,
        client_id: claims.client_id,
        sub: claims.sub,
        exp: claims.exp,
        iat: claims.iat,
        iss: claims.iss,
        aud: claims.aud,
        jti: claims.jti,
        token_type: "access_token",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_narrows_but_never_widens() {
        let allowed = vec!["a".to_string(), "b".to_string()];
        assert_eq!(narrow_scope(None, &allowed).unwrap(), "a b");
        assert_eq!(narrow_scope(Some("b"), &allowed).unwrap(), "b");
        assert_eq!(narrow_scope(Some("b b  a"), &allowed).unwrap(), "b a");
        assert!(narrow_scope(Some("a c"), &allowed).is_err());
    }
}

/// `aud` as RFC 7519 §4.1.3 allows it: one string, or an array of them.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
        match items {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

/// Property tests of [`narrow_scope`], the scope parameter of the token
/// endpoint (RFC 6749 §3.3, §6). `PROPTEST_CASES` raises the case count.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// A requested scope parameter: allowed names, unknown names, names
    /// with characters outside NQCHAR, and separators of every kind.
    fn requested(allowed: Vec<String>) -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(allowed),
            "[!#-\\[\\]-~]{1,8}",
            prop::sample::select(vec![
                " ", "  ", "\t", "\n", "\r", "\u{a0}", "\u{3000}", "\"", "\\", "é", "openid\t",
            ])
            .prop_map(str::to_owned),
        ];
        prop_oneof![
            prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat()),
            any::<String>(),
        ]
    }

    fn case() -> impl Strategy<Value = (Vec<String>, String)> {
        prop::collection::btree_set("[!#-\\[\\]-~]{1,8}", 1..6).prop_flat_map(|allowed| {
            let allowed: Vec<String> = allowed.into_iter().collect();
            (Just(allowed.clone()), requested(allowed))
        })
    }

    proptest! {
        #![proptest_config(super::super::proptest_config(256))]

        /// The granted scope is the requested names, each once, in order,
        /// when every one of them is allowed; a request naming anything
        /// else — an unknown name, or one holding a character outside
        /// NQCHAR (a tab, a non-breaking space) — is refused. Nothing
        /// requested grants everything allowed.
        #[test]
        fn scope_narrows_to_allowed_names_only((allowed, requested) in case()) {
            let pieces: Vec<&str> = requested.split(' ').filter(|p| !p.is_empty()).collect();
            let result = narrow_scope(Some(&requested), &allowed);
            if pieces.is_empty() {
                prop_assert_eq!(result.ok(), Some(allowed.join(" ")));
            } else if pieces.iter().all(|p| allowed.iter().any(|a| a == p)) {
                let mut expected: Vec<&str> = Vec::new();
                for p in pieces {
                    if !expected.contains(&p) {
                        expected.push(p);
                    }
                }
                prop_assert_eq!(result.ok(), Some(expected.join(" ")));
            } else {
                prop_assert!(result.is_err(), "granted {:?} for {:?}", result.ok(), requested);
            }
            prop_assert_eq!(narrow_scope(None, &allowed).ok(), Some(allowed.join(" ")));
        }
    }
}
