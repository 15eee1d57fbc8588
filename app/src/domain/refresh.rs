//! Refresh tokens: one chain per token family (see [`Presented`] for the
//! token format: generation `n` of the family's chain, MACed, nothing stored
//! per token; tokens issued before chains are stored as SHA-256 and still
//! work). The client's policy is read at every use: the refresh switch,
//! rotation, reuse grace, idle and absolute lifetimes.
//!
//! With rotation on, each use moves the chain on by one conditional UPDATE
//! of the family row, so of N concurrent uses exactly one wins, and hands
//! out the next generation. An earlier generation presented again after the
//! reuse grace means two parties hold the chain (RFC 9700 §4.14.2): the
//! whole family is revoked.
//!
//! The common refresh — rotation on, the current generation presented, no
//! `scope` parameter — is one statement ([`rotate_at_once`]): a conditional
//! `UPDATE … RETURNING` of the family row that checks the family, grant,
//! client, user and lifetimes and moves the chain on, with the client's
//! policy from this instance's memory. Anything else (or that UPDATE
//! matching no row) is one read (the family, grant, user and the client's
//! policy, in one query), the decision of [`RefreshState::of`], and with
//! rotation one UPDATE (without, usually none).
//! The "last used" columns of families and grants are written at most once
//! per [`LAST_USED_GRANULARITY_SECS`] per row (see there), so refreshes of
//! one user's app do not queue on the grant row they share. A refresh is
//! counted per client and minute and per user, client and day
//! ([`super::usage`]), not audited one row each.

use super::{
    audit::{AuditEvent, AuditKind},
    clients::{Client, GrantType},
    keys::KeyRing,
    login_sessions::ClientInfo,
    policy::Policy,
    resource_servers::audience_among,
    revocation::{RevokedBy, RevokedSets},
    secrets::sha256_hex,
    store::{now, Db},
    tokens::{narrow_scope, sign_access_token, AccessFor, GrantError, Issuance, TokenSet},
    DomainError, DomainResult,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
};

use crate::on_db;

/// A stored refresh token with its family and grant.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub hash: String,
    pub family_id: String,
    pub scopes: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub family_created_at: i64,
    pub family_revoked_at: Option<i64>,
    pub login_session_id: Option<String>,
    pub grant_id: String,
    pub grant_revoked_at: Option<i64>,
    pub client_id: String,
    pub user_id: Option<String>,
    /// Set when the token's user was disabled (their tokens die with them).
    pub user_disabled_at: Option<i64>,
}

/// When a refresh token issued or rotated at `at` (unix seconds) stops
/// working: its idle lifetime from `at`, capped by its family's absolute
/// lifetime from the family's creation (the sign-in), both from `policy`.
/// The one rule for every refresh token's expiry (the one-statement
/// rotation, [`rotate_sql`], writes the same in SQL).
pub fn refresh_expiry(policy: &Policy, family_created_at: i64, at: i64) -> i64 {
    (at + policy.refresh_idle_ttl_secs).min(absolute_expiry(policy, family_created_at))
}

/// When a token family's absolute refresh lifetime ends (unix seconds).
fn absolute_expiry(policy: &Policy, family_created_at: i64) -> i64 {
    family_created_at + policy.refresh_absolute_ttl_secs
}

impl RefreshRow {
    /// When it stops working: its idle expiry or the family's absolute one, whichever first.
    pub fn expires_at(&self, policy: &Policy) -> i64 {
        self.expires_at
            .min(absolute_expiry(policy, self.family_created_at))
    }

    fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
            || self.family_revoked_at.is_some()
            || self.grant_revoked_at.is_some()
            || self.user_disabled_at.is_some()
    }
}

/// What a presented refresh token is, right now, under its client's policy:
/// the one decision refresh and introspection share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshState {
    /// Never used, or used under a client that does not rotate (the same
    /// token lives on): it refreshes.
    Live,
    /// Rotated (it has a successor) within the client's reuse grace: a retry
    /// of a refresh whose answer was lost; it refreshes once more.
    RotatedWithinGrace,
    /// Rotated, and presented again after the reuse grace: two parties hold
    /// the chain (RFC 9700 §4.14.2); the family is revoked.
    Reused,
    /// Past its idle or its family's absolute lifetime.
    Expired(Lifetime),
    /// The token, its family or grant was revoked, or its user disabled.
    Revoked,
}

/// Which lifetime ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    Idle,
    Absolute,
}

impl RefreshState {
    /// Decides at `now` (unix seconds). Revocation wins over expiry, expiry
    /// over use. A token is "used" when a refresh rotated it (`used_at`): it
    /// has a successor whatever the client's rotation setting is now, so
    /// presenting it again is reuse unless within the grace.
    pub fn of(row: &RefreshRow, policy: &Policy, now: i64) -> RefreshState {
        if row.is_revoked() {
            return RefreshState::Revoked;
        }
        if now >= absolute_expiry(policy, row.family_created_at) {
            return RefreshState::Expired(Lifetime::Absolute);
        }
        if now >= row.expires_at {
            return RefreshState::Expired(Lifetime::Idle);
        }
        match row.used_at {
            None => RefreshState::Live,
            Some(used_at) if within_reuse_grace(policy, used_at, now) => {
                RefreshState::RotatedWithinGrace
            }
            Some(_) => RefreshState::Reused,
        }
    }

    /// Whether a refresh with this token goes through (and so whether
    /// introspection calls it active).
    pub fn refreshes(self) -> bool {
        matches!(self, RefreshState::Live | RefreshState::RotatedWithinGrace)
    }
}

/// Whether a token rotated at `used_at` may still be presented at `now`
/// (the client's reuse grace; zero means never).
fn within_reuse_grace(policy: &Policy, used_at: i64, now: i64) -> bool {
    policy.reuse_grace_secs > 0 && now - used_at <= policy.reuse_grace_secs
}

/// How stale the "last used" time (and IP and user agent) of a token family
/// or a grant may be, in seconds. A refresh writes them only when they are at
/// least this old, with a conditional UPDATE that matches (and so locks) no
/// row otherwise: every refresh of a user's app would else update the one
/// grant row all its sessions share, and queue on its lock. The dashboard's
/// "last used" is therefore accurate to this granularity (a session used from
/// a new IP shows it within a minute of use). The same bound throttles pushing
/// out the idle expiry of a refresh token that is not rotated.
pub const LAST_USED_GRANULARITY_SECS: i64 = 60;

/// A refresh token as presented.
///
/// Since issue 11 a refresh token is a *chain token*: generation `n` of its
/// token family's chain, `base64url(0x01 ‖ len ‖ family_id ‖ n ‖ mac)` with
/// `n` a big-endian u64 and `mac` = [`KeyRing::refresh_chain_mac`] (keyed by
/// a key derived from the master key, so the database alone cannot mint
/// one). The family row holds the chain's current generation, when it was
/// last rotated and its idle expiry; nothing is stored per token. A
/// rotation moves the generation on, so every earlier generation is known
/// to be used — reuse detection for the whole chain at one row per family,
/// where stored tokens had to be kept one row per refresh for the idle
/// lifetime (60 million rows at 50 refreshes/s under the 14-day default).
///
/// Tokens issued before are *stored* tokens (32 random bytes, their SHA-256
/// in `refresh_tokens`); they keep working, and the first rotation of one
/// starts its family's chain. They are all gone within the longest
/// absolute refresh lifetime after the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Presented {
    Stored,
    /// A chain token whose MAC verified.
    Chain {
        family_id: String,
        generation: u64,
    },
}

/// Version byte of chain tokens.
const CHAIN_V1: u8 = 1;

/// Generation `generation` of `family_id`'s chain, as handed out.
pub fn chain_token(keys: &KeyRing, family_id: &str, generation: u64) -> String {
    use base64::Engine;
    let id = family_id.as_bytes();
    let mut raw = Vec::with_capacity(2 + id.len() + 8 + 32);
    raw.push(CHAIN_V1);
    raw.push(u8::try_from(id.len()).expect("family ids are short"));
    raw.extend_from_slice(id);
    raw.extend_from_slice(&generation.to_be_bytes());
    raw.extend_from_slice(&keys.refresh_chain_mac(family_id, generation));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// What `token` is: a chain token with a valid MAC, a stored token (to be
/// looked up by hash), or `None` — a chain token whose MAC does not verify.
fn presented(keys: &KeyRing, token: &str) -> Option<Presented> {
    use base64::Engine;
    use subtle::ConstantTimeEq;
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
        return Some(Presented::Stored);
    };
    // A stored token is 32 bytes; a chain token at least 2 + 1 + 8 + 32.
    let [CHAIN_V1, len, rest @ ..] = raw.as_slice() else {
        return Some(Presented::Stored);
    };
    let len = usize::from(*len);
    if raw.len() == 32 || rest.len() != len + 8 + 32 {
        return Some(Presented::Stored);
    }
    let (id, rest) = rest.split_at(len);
    let (generation, mac) = rest.split_at(8);
    let family_id = std::str::from_utf8(id).ok()?;
    let generation = u64::from_be_bytes(generation.try_into().ok()?);
    let expected = keys.refresh_chain_mac(family_id, generation);
    bool::from(expected.ct_eq(mac)).then(|| Presented::Chain {
        family_id: family_id.to_owned(),
        generation,
    })
}

/// A presented refresh token's family, grant, user, and the effective
/// policy of the grant's client (the same COALESCE as
/// [`super::policy::effective`]), read in one query.
#[derive(sqlx::FromRow)]
struct FamilyRow {
    family_id: String,
    /// NULL for a family started before chains and not rotated since.
    family_scopes: Option<String>,
    family_created_at: i64,
    family_revoked_at: Option<i64>,
    login_session_id: Option<String>,
    family_last_used_at: i64,
    chain_generation: Option<i64>,
    chain_rotated_at: Option<i64>,
    chain_expires_at: Option<i64>,
    grant_id: String,
    grant_revoked_at: Option<i64>,
    client_id: String,
    user_id: Option<String>,
    grant_last_used_at: Option<i64>,
    user_disabled_at: Option<i64>,
    /// NULL when the client is deleted (then `policy` holds the defaults).
    live_client_id: Option<String>,
    #[sqlx(flatten)]
    policy: Policy,
}

/// What a refresh token says of itself, besides its family: read from
/// `refresh_tokens` for a stored token, derived from the chain for a chain token.
#[derive(sqlx::FromRow)]
struct TokenPart {
    hash: String,
    scopes: String,
    issued_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// A stored token's row with its family's.
#[derive(sqlx::FromRow)]
struct StoredRow {
    #[sqlx(flatten)]
    token: TokenPart,
    #[sqlx(flatten)]
    family: FamilyRow,
}

/// A presented refresh token with everything a refresh decides on.
struct Lookup {
    /// The token as [`RefreshState::of`] sees it.
    row: RefreshRow,
    family: FamilyRow,
    /// `Some(n)`: generation `n` of the family's chain; `None`: a stored token.
    generation: Option<u64>,
}

impl Lookup {
    fn new(token: TokenPart, family: FamilyRow, generation: Option<u64>) -> Lookup {
        let row = RefreshRow {
            hash: token.hash,
            family_id: family.family_id.clone(),
            scopes: token.scopes,
            issued_at: token.issued_at,
            expires_at: token.expires_at,
            used_at: token.used_at,
            revoked_at: token.revoked_at,
            family_created_at: family.family_created_at,
            family_revoked_at: family.family_revoked_at,
            login_session_id: family.login_session_id.clone(),
            grant_id: family.grant_id.clone(),
            grant_revoked_at: family.grant_revoked_at,
            client_id: family.client_id.clone(),
            user_id: family.user_id.clone(),
            user_disabled_at: family.user_disabled_at,
        };
        Lookup {
            row,
            family,
            generation,
        }
    }

    /// The client's effective policy; `NotFound` for a deleted client, as
    /// [`super::policy::effective`] says.
    fn policy(&self) -> DomainResult<Policy> {
        match self.family.live_client_id {
            Some(_) => Ok(self.family.policy),
            None => Err(DomainError::NotFound),
        }
    }

    /// A chain token: the current generation is unused, the one before was
    /// used when the current one was issued (for the reuse grace), every
    /// earlier one long ago. `None` for a generation the chain has not
    /// reached (only a concurrent rotation's successor, which cannot be
    /// presented before it is handed out) or a family without a chain.
    fn of_chain(token: &str, family: FamilyRow, generation: u64) -> Option<Lookup> {
        let current = u64::try_from(family.chain_generation?).ok()?;
        if generation > current {
            return None;
        }
        let part = TokenPart {
            hash: sha256_hex(token),
            scopes: family.family_scopes.clone().unwrap_or_default(),
            issued_at: match generation == current {
                true => family.chain_rotated_at.unwrap_or(family.family_created_at),
                false => family.family_created_at,
            },
            expires_at: family.chain_expires_at.unwrap_or(0),
            used_at: match current - generation {
                0 => None,
                1 => Some(family.chain_rotated_at.unwrap_or(0)),
                _ => Some(0),
            },
            revoked_at: None,
        };
        Some(Lookup::new(part, family, Some(generation)))
    }
}

/// The columns of [`FamilyRow`], `FROM` a family `f` joined to the rest.
macro_rules! family_lookup {
    ($select:literal, $from:literal, $where:literal) => {
        concat!(
            "SELECT ",
            $select,
            "f.id AS family_id, f.scopes AS family_scopes, f.created_at AS family_created_at, \
             f.revoked_at AS family_revoked_at, f.login_session_id, f.last_used_at AS family_last_used_at, \
             f.chain_generation, f.chain_rotated_at, f.chain_expires_at, \
             g.id AS grant_id, g.revoked_at AS grant_revoked_at, g.client_id, g.user_id, \
             g.last_used_at AS grant_last_used_at, u.disabled_at AS user_disabled_at, c.id AS live_client_id, ",
            super::policy::effective_policy_columns!(),
            " FROM ",
            $from,
            " JOIN grants g ON g.id = f.grant_id LEFT JOIN users u ON u.id = g.user_id \
             LEFT JOIN clients c ON c.id = g.client_id AND c.deleted_at IS NULL \
             JOIN client_policies p ON p.client_id = g.client_id WHERE ",
            $where
        )
    };
}

const LOOKUP_STORED_SQL: &str = family_lookup!(
    "t.hash, t.scopes, t.issued_at, t.expires_at, t.used_at, t.revoked_at, ",
    "refresh_tokens t JOIN token_families f ON f.id = t.family_id",
    "t.hash = $1"
);

const LOOKUP_CHAIN_SQL: &str = family_lookup!("", "token_families f", "f.id = $1");

async fn lookup(db: &Db, keys: &KeyRing, token: &str) -> DomainResult<Option<Lookup>> {
    Ok(match presented(keys, token) {
        None => None,
        Some(Presented::Stored) => {
            on_db!(db, |pool| sqlx::query_as::<_, StoredRow>(LOOKUP_STORED_SQL)
                .bind(sha256_hex(token))
                .fetch_optional(pool)
                .await)?
            .map(|stored| Lookup::new(stored.token, stored.family, None))
        }
        Some(Presented::Chain {
            family_id,
            generation,
        }) => on_db!(db, |pool| sqlx::query_as::<_, FamilyRow>(LOOKUP_CHAIN_SQL)
            .bind(&family_id)
            .fetch_optional(pool)
            .await)?
        .and_then(|family| Lookup::of_chain(token, family, generation)),
    })
}

/// Looks a presented refresh token up: a chain token by its family, a
/// stored one by its hash.
pub async fn find(db: &Db, keys: &KeyRing, token: &str) -> DomainResult<Option<RefreshRow>> {
    Ok(lookup(db, keys, token).await?.map(|found| found.row))
}

/// Whether the client may use refresh tokens right now (checked at every use).
fn refresh_allowed(client: &Client, policy: &Policy) -> Result<(), GrantError> {
    if !client.allows(GrantType::RefreshToken) {
        return Err(GrantError::UnauthorizedClient(
            "this client may not use the refresh_token grant".into(),
        ));
    }
    if !policy.refresh_enabled {
        return Err(GrantError::UnauthorizedClient(
            "refresh tokens are switched off for this client".into(),
        ));
    }
    Ok(())
}

/// A token request with `grant_type=refresh_token` (RFC 6749 §6).
pub struct RefreshRequest<'a> {
    pub client: &'a Client,
    pub refresh_token: &'a str,
    pub scope: Option<&'a str>,
    /// An RFC 8707 resource indicator: the token's only audience.
    pub resource: Option<&'a str>,
    pub from: &'a ClientInfo,
}

/// Uses a refresh token: a new access token (scope may narrow, never widen)
/// and, with rotation, the token's successor.
pub async fn refresh(
    issuance: &Issuance<'_>,
    r: RefreshRequest<'_>,
) -> Result<TokenSet, GrantError> {
    let Issuance {
        db,
        usage,
        keys,
        revoked,
        servers,
        issuer,
        ..
    } = *issuance;
    let client = r.client;
    if let Some(done) = rotate_at_once(issuance, &r).await? {
        metrics::counter!("latchkey_refreshes_total", "path" => "one_statement").increment(1);
        return Ok(done);
    }
    metrics::counter!("latchkey_refreshes_total", "path" => "full").increment(1);
    let Some(found) = lookup(db, keys, r.refresh_token).await? else {
        return Err(GrantError::InvalidGrant("unknown refresh token".into()));
    };
    let row = &found.row;
    if row.client_id != client.client_id {
        tracing::warn!(client_id = %client.client_id, "a client presented another client's refresh token");
        return Err(GrantError::InvalidGrant(
            "this refresh token was not issued to this client".into(),
        ));
    }
    let policy = found.policy()?;
    refresh_allowed(client, &policy)?;
    let at = now();
    let state = RefreshState::of(row, &policy, at);
    match state {
        RefreshState::Live | RefreshState::RotatedWithinGrace => {}
        RefreshState::Revoked => {
            return Err(GrantError::InvalidGrant(
                "the refresh token was revoked".into(),
            ))
        }
        RefreshState::Expired(_) => {
            return Err(GrantError::InvalidGrant(
                "the refresh token has expired".into(),
            ))
        }
        RefreshState::Reused => return Err(reuse_detected(db, revoked, client, row, r.from).await),
    }
    let scope = narrow_scope(r.scope, &super::grants::split_scopes(&row.scopes))
        .map_err(|e| GrantError::InvalidScope(e.to_string()))?;
    // Before the write: nothing may fail once the chain moved on.
    let aud = servers.audience_for(db, issuer, &scope, r.resource).await?;
    let rotate = policy.rotate_refresh;
    let expires_at = refresh_expiry(&policy, row.family_created_at, at);
    // The "last used" columns, when stale (see LAST_USED_GRANULARITY_SECS).
    let stale_before = at - LAST_USED_GRANULARITY_SECS;
    let write = Write {
        at,
        expires_at,
        from: r.from,
        touch_family: found.family.family_last_used_at <= stale_before,
        touch_grant: found
            .family
            .grant_last_used_at
            .is_none_or(|t| t <= stale_before),
        grace: |used_at: i64| within_reuse_grace(&policy, used_at, at),
    };
    // Liveness: the lookup saw the family, grant and token live. A revocation
    // that commits after it still wins over this refresh:
    // * with rotation, the write that moves the chain on (or claims a stored
    //   token) only goes through while the family (and token) are unrevoked,
    //   and a revocation marks both in one transaction; a revocation
    //   committing after it finds the family revoked, which the lookup
    //   checks at every refresh;
    // * every access token issued here carries the family id (`fid`), which
    //   the revoked sets hold as soon as the revocation commits, so
    //   introspection and userinfo refuse it; that is all a refresh without
    //   rotation (or a retry within the grace) hands out, so it needs no
    //   check of its own.
    let step = match found.generation {
        Some(generation) => {
            let current = generation + u64::from(state == RefreshState::RotatedWithinGrace);
            write
                .chain(
                    db,
                    keys,
                    &found,
                    current,
                    rotate && state == RefreshState::Live,
                )
                .await?
        }
        None => write.stored(db, keys, &found, rotate, state).await?,
    };
    let successor = match step {
        Step::Done(successor) => successor,
        Step::Revoked => {
            return Err(GrantError::InvalidGrant(
                "the refresh token was revoked".into(),
            ))
        }
        // Lost the race to a concurrent use of the same token, outside any grace.
        Step::Reused => return Err(reuse_detected(db, revoked, client, row, r.from).await),
    };
    usage.count(
        &client.client_id,
        row.user_id.as_deref(),
        AuditKind::TokenRefreshed,
    );
    let access = sign_access_token(
        keys,
        issuer,
        policy.access_ttl_secs,
        AccessFor {
            aud,
            sub: row
                .user_id
                .clone()
                .unwrap_or_else(|| client.client_id.clone()),
            client_id: client.client_id.clone(),
            scope,
            gid: row.grant_id.clone(),
            fid: Some(row.family_id.clone()),
            sid: row.login_session_id.clone(),
        },
    )?;
    Ok(TokenSet {
        access,
        refresh_token: successor,
        id_token: None,
    })
}

/// What this instance keeps for refreshes: each client's effective policy,
/// and on SQLite the rotations waiting for the write turn. Cheap to clone.
///
/// The policy is remembered while no registration or policy change happened
/// (made here, or announced by another instance before it was acknowledged:
/// [`super::clients::registration_generation`]) and while this instance is
/// fresh ([`RevokedSets::ensure_fresh`]), as [`super::tokens::IssuanceFacts`]
/// remembers issuance facts — and for [`super::clients::REGISTRATION_MAX_AGE`] at most, should an
/// announcement have failed. Revocations need no memory here: the rotation's
/// statement checks the family, grant, client and user itself.
///
/// Group commit: SQLite has one writer, so concurrent rotations would each
/// wait for the write turn, the hand-offs to and from the connection's
/// thread and the commit, one after the other. Instead they queue here, and
/// whoever finds the queue idle starts a task that writes everything
/// waiting as one statement (up to [`ROTATIONS_PER_STATEMENT`]), answers
/// each rotation after that commit, and goes on while more arrived
/// meanwhile.
#[derive(Clone, Default)]
pub struct Refreshes {
    policies: Arc<RwLock<HashMap<String, (super::clients::ReadAt, Policy)>>>,
    waiting: Arc<Mutex<Waiting>>,
}

/// How many clients [`Refreshes`] remembers the policy of at most; when full it forgets them all.
const POLICIES_CAPACITY: usize = 4096;

/// At most this many rotations share one statement (ten parameters each).
pub const ROTATIONS_PER_STATEMENT: usize = 64;

/// Rotations waiting for the SQLite write turn, and whether a task is
/// writing them.
#[derive(Default)]
struct Waiting {
    writing: bool,
    rotations: Vec<(Rotation, Reply)>,
}

/// Where a rotation's outcome goes: the family's row as it moved on, `None`
/// when it did not match, or the statement's error in words (one error of
/// the shared statement answers every rotation in it).
type Reply = tokio::sync::oneshot::Sender<Result<Option<Rotated>, String>>;

impl Refreshes {
    /// The effective policy of `client_id` ([`super::policy::effective`]:
    /// `NotFound` for an unknown or deleted client), from memory when it
    /// still holds (see [`Refreshes`]), else read and remembered.
    pub async fn policy(
        &self,
        db: &Db,
        revoked: &RevokedSets,
        client_id: &str,
    ) -> DomainResult<Policy> {
        let usable = revoked.ensure_fresh(db).await;
        let read_at = super::clients::ReadAt::before_reading();
        if usable {
            let read = self.policies.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, policy)) = read.get(client_id).filter(|(read, _)| read.is_current()) {
                return Ok(*policy);
            }
        }
        let policy = super::policy::effective(db, client_id).await?;
        if usable {
            let mut write = self.policies.write().unwrap_or_else(|e| e.into_inner());
            if write.len() >= POLICIES_CAPACITY {
                write.clear();
            }
            write.insert(client_id.to_owned(), (read_at, policy));
        }
        Ok(policy)
    }

    /// Writes one rotation: on PostgreSQL at once (row locks need no turn),
    /// on SQLite with whatever else is waiting for the write turn. `None`
    /// when the family did not match (see [`rotate_sql`]).
    async fn rotate(&self, db: &Db, rotation: Rotation) -> Result<Option<Rotated>, sqlx::Error> {
        if let Db::Postgres(_) = db {
            return Ok(write_rotations(db, &[&rotation]).await?.pop());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.rotations.push((rotation, reply));
            !std::mem::replace(&mut waiting.writing, true)
        };
        if start {
            tokio::spawn(write_waiting(self.waiting.clone(), db.clone()));
        }
        match answer.await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(sqlx::Error::Io(std::io::Error::other(e))),
            Err(_) => Err(sqlx::Error::Io(std::io::Error::other(
                "the rotation's writer stopped",
            ))),
        }
    }
}

/// The task of [`Refreshes::rotate`] on SQLite: takes the write turn, writes
/// what is waiting (one rotation per family per statement: a second use of
/// the same family waits for the next, where it finds the chain moved on),
/// answers, and again until nothing waits.
async fn write_waiting(waiting: Arc<Mutex<Waiting>>, db: Db) {
    /// Should this task panic, what waits is answered with an error (its
    /// reply dropped) and the next rotation starts another writer.
    struct Restart(Arc<Mutex<Waiting>>);
    impl Drop for Restart {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut waiting = self.0.lock().unwrap_or_else(|e| e.into_inner());
                waiting.rotations.clear();
                waiting.writing = false;
            }
        }
    }
    let _restart = Restart(waiting.clone());
    loop {
        // The turn first: what arrives meanwhile joins this statement.
        let turn = db.write_turn().await;
        let batch = {
            let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
            if waiting.rotations.is_empty() {
                waiting.writing = false;
                return;
            }
            let mut batch: Vec<(Rotation, Reply)> = Vec::new();
            let mut later = Vec::new();
            for entry in waiting.rotations.drain(..) {
                // Its request is gone (the client hung up): nobody would get
                // the successor, and the client's retry would be reuse.
                if entry.1.is_closed() {
                    continue;
                }
                let taken = batch.len() == ROTATIONS_PER_STATEMENT
                    || batch.iter().any(|(r, _)| r.family_id == entry.0.family_id);
                if taken {
                    later.push(entry);
                } else {
                    batch.push(entry);
                }
            }
            waiting.rotations = later;
            batch
        };
        if batch.is_empty() {
            // Every request that waited is gone.
            continue;
        }
        let rotations: Vec<&Rotation> = batch.iter().map(|(r, _)| r).collect();
        let written = write_rotations(&db, &rotations).await;
        drop(turn);
        match written {
            Ok(mut rows) => {
                for (rotation, reply) in batch {
                    let row = rows
                        .iter()
                        .position(|row| row.family_id == rotation.family_id)
                        .map(|i| rows.swap_remove(i));
                    let _ = reply.send(Ok(row));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rotations = batch.len(), "writing refresh token rotations failed");
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// One rotation as [`rotate_sql`] binds it (ten parameters, in this order).
struct Rotation {
    family_id: String,
    /// The presented generation, and the one it moves on to.
    generation: i64,
    next: i64,
    /// Now (unix seconds).
    at: i64,
    idle_ttl_secs: i64,
    absolute_ttl_secs: i64,
    /// "Last used" at or before this is stale and written.
    stale_before: i64,
    ip: String,
    user_agent: String,
    client_id: String,
}

/// Runs [`rotate_sql`] for `rotations`: one statement, its own transaction
/// (on SQLite in the caller's write turn). Committed as every write but the
/// durable ones is: on SQLite (WAL, `synchronous=NORMAL`) it survives a
/// crashed process but not necessarily a power loss (README, "Power
/// loss"); on PostgreSQL as the server's `synchronous_commit` says (on by
/// default).
async fn write_rotations(db: &Db, rotations: &[&Rotation]) -> Result<Vec<Rotated>, sqlx::Error> {
    let sql = rotate_sql(rotations.len());
    on_db!(db, |pool| {
        let mut query = sqlx::query_as(&sql);
        for r in rotations {
            query = query
                .bind(&r.family_id)
                .bind(r.generation)
                .bind(r.next)
                .bind(r.at)
                .bind(r.idle_ttl_secs)
                .bind(r.absolute_ttl_secs)
                .bind(r.stale_before)
                .bind(&r.ip)
                .bind(&r.user_agent)
                .bind(&r.client_id);
        }
        query.fetch_all(pool).await
    })
}

/// The common refresh in one statement: a chain token of the current
/// generation, rotation on, no `scope` parameter. One conditional UPDATE of
/// the family row checks everything [`RefreshState::of`] would call
/// [`RefreshState::Live`] — family, grant, client and user live, issued to
/// this client, within the idle and absolute lifetimes, the presented
/// generation current — and moves the chain on, writing the family's "last
/// used" columns when stale; the client's policy comes from memory
/// ([`Refreshes::policy`]). `Ok(None)`: not this case, or the UPDATE
/// matched no row (revoked, expired, reused, a retry, another client's
/// token): the full path decides, from a fresh read, exactly as before.
async fn rotate_at_once(
    issuance: &Issuance<'_>,
    r: &RefreshRequest<'_>,
) -> Result<Option<TokenSet>, GrantError> {
    let Issuance {
        db,
        usage,
        keys,
        revoked,
        refreshes,
        servers,
        issuer,
        ..
    } = *issuance;
    let client = r.client;
    if r.scope.is_some() || !client.allows(GrantType::RefreshToken) {
        return Ok(None);
    }
    let Some(Presented::Chain {
        family_id,
        generation,
    }) = presented(keys, r.refresh_token)
    else {
        return Ok(None);
    };
    let policy = match refreshes.policy(db, revoked, &client.client_id).await {
        Ok(policy) if policy.refresh_enabled && policy.rotate_refresh => policy,
        Ok(_) | Err(DomainError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Taken before the write, and a `resource` checked against it: nothing
    // may fail once the chain moved on.
    let known_servers = servers.current(db).await?;
    if r.resource.is_some() {
        audience_among(&known_servers, issuer, "", r.resource)?;
    }
    let at = now();
    let stale_before = at - LAST_USED_GRANULARITY_SECS;
    let rotation = Rotation {
        family_id,
        generation: generation as i64,
        next: generation as i64 + 1,
        at,
        idle_ttl_secs: policy.refresh_idle_ttl_secs,
        absolute_ttl_secs: policy.refresh_absolute_ttl_secs,
        stale_before,
        ip: r.from.ip.clone(),
        user_agent: r.from.user_agent.clone(),
        client_id: client.client_id.clone(),
    };
    let (family_id, next) = (rotation.family_id.clone(), generation + 1);
    let Some(rotated) = refreshes.rotate(db, rotation).await? else {
        return Ok(None);
    };
    if rotated.grant_last_used_at.is_none_or(|t| t <= stale_before) {
        write_grant_last_used(db, &rotated.grant_id, at, r.from).await;
    }
    usage.count(
        &client.client_id,
        rotated.user_id.as_deref(),
        AuditKind::TokenRefreshed,
    );
    let scope = rotated.scopes.unwrap_or_default();
    let aud = audience_among(&known_servers, issuer, &scope, r.resource)?;
    let access = sign_access_token(
        keys,
        issuer,
        policy.access_ttl_secs,
        AccessFor {
            aud,
            sub: rotated.user_id.unwrap_or_else(|| client.client_id.clone()),
            client_id: client.client_id.clone(),
            scope,
            gid: rotated.grant_id,
            fid: Some(family_id.clone()),
            sid: rotated.login_session_id,
        },
    )?;
    Ok(Some(TokenSet {
        access,
        refresh_token: Some(chain_token(keys, &family_id, next)),
        id_token: None,
    }))
}

/// What [`rotate_sql`] reads back from a family it moved on.
#[derive(sqlx::FromRow)]
struct Rotated {
    family_id: String,
    grant_id: String,
    scopes: Option<String>,
    login_session_id: Option<String>,
    user_id: Option<String>,
    grant_last_used_at: Option<i64>,
}

/// The statement that moves `rotations` chains on at once: for each, the
/// family row is updated only if every condition of [`RefreshState::Live`]
/// holds — the presented generation is current, family, grant and client
/// live, the user not disabled, the grant this client's, within the idle
/// (a NULL `chain_expires_at` fails `>` too) and absolute lifetimes — and
/// then gets the next generation, the rotation time, the idle expiry capped
/// by the absolute one, and "last used" when stale (a SET expression reads
/// the row as it was). Per rotation, ten parameters in [`Rotation`]'s order,
/// cast so PostgreSQL knows their types. SQLite's RETURNING names only the
/// updated table's columns, so the grant's are scalar subqueries.
fn rotate_sql(rotations: usize) -> String {
    let values: Vec<String> =
        (0..rotations)
            .map(|i| {
                let p = |k: usize| format!("${}", i * 10 + k);
                format!(
                "(CAST({} AS TEXT), CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT), \
                 CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS BIGINT), CAST({} AS TEXT), \
                 CAST({} AS TEXT), CAST({} AS TEXT))",
                p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10)
            )
            })
            .collect();
    format!(
        "WITH v (fid, gen, nxt, at, idle, abs, stale, ip, ua, client) AS (VALUES {}) \
         UPDATE token_families SET chain_generation = v.nxt, chain_rotated_at = v.at, \
         chain_expires_at = CASE WHEN v.at + v.idle < created_at + v.abs \
                            THEN v.at + v.idle ELSE created_at + v.abs END, \
         last_used_ip = CASE WHEN last_used_at <= v.stale THEN v.ip ELSE last_used_ip END, \
         last_used_ua = CASE WHEN last_used_at <= v.stale THEN v.ua ELSE last_used_ua END, \
         last_used_at = CASE WHEN last_used_at <= v.stale THEN v.at ELSE last_used_at END \
         FROM v WHERE token_families.id = v.fid AND token_families.chain_generation = v.gen \
         AND token_families.revoked_at IS NULL AND token_families.chain_expires_at > v.at \
         AND token_families.created_at + v.abs > v.at \
         AND EXISTS (SELECT 1 FROM grants g \
                     JOIN clients c ON c.id = g.client_id AND c.deleted_at IS NULL \
                     LEFT JOIN users u ON u.id = g.user_id \
                     WHERE g.id = token_families.grant_id AND g.client_id = v.client \
                     AND g.revoked_at IS NULL AND u.disabled_at IS NULL) \
         RETURNING token_families.id AS family_id, token_families.grant_id, \
         token_families.scopes, token_families.login_session_id, \
         (SELECT user_id FROM grants WHERE id = token_families.grant_id) AS user_id, \
         (SELECT last_used_at FROM grants WHERE id = token_families.grant_id) AS grant_last_used_at",
        values.join(", ")
    )
}

/// Writes the grant's "last used" columns at `at` from `from` (unless
/// another refresh just did), after the family's write and on its own: a
/// refresh never holds the family row while it waits for the grant's (a
/// revocation locks the grant first: a deadlock on PostgreSQL). Runs once
/// the refresh has happened, so a failure is logged, not answered: the
/// client must get the token it is owed.
async fn write_grant_last_used(db: &Db, grant_id: &str, at: i64, from: &ClientInfo) {
    let written = on_db!(db, |pool| pool
        .execute_write(
            sqlx::query(
                "UPDATE grants SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
                 WHERE id = $4 AND (last_used_at IS NULL OR last_used_at <= $5)",
            )
            .bind(at)
            .bind(&from.ip)
            .bind(&from.user_agent)
            .bind(grant_id)
            .bind(at - LAST_USED_GRANULARITY_SECS),
        )
        .await
        .map(|_| ()));
    if let Err(e) = written {
        tracing::warn!(error = %e, grant_id, "writing a grant's last use failed");
    }
}

/// How a refresh's write ended.
enum Step<T = Option<String>> {
    /// Written: the refresh token to hand out (`None`: the client keeps
    /// its own); inside the transaction, the chain generation written.
    Done(T),
    /// The family (or the stored token) was revoked since the lookup.
    Revoked,
    /// Another request used the token a moment ago, outside the reuse grace.
    Reused,
}

impl<T> Step<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Done(t) => Step::Done(f(t)),
            Step::Revoked => Step::Revoked,
            Step::Reused => Step::Reused,
        }
    }
}

/// What a refresh writes, besides the chain.
struct Write<'a, G: Fn(i64) -> bool> {
    at: i64,
    /// The new idle expiry.
    expires_at: i64,
    from: &'a ClientInfo,
    touch_family: bool,
    touch_grant: bool,
    /// Whether a token used at this time may still be presented.
    grace: G,
}

impl<G: Fn(i64) -> bool> Write<'_, G> {
    /// A chain token's refresh, `current` being the chain's generation the
    /// lookup saw. With `advance` (rotation on, the current generation
    /// presented), one conditional UPDATE of the family row moves the chain
    /// on — so of N concurrent uses exactly one wins — with the family's
    /// "last used" columns; otherwise the same row gets the pushed-out idle
    /// expiry (rotation off) and "last used", when due, and the token handed
    /// out is the current generation's (for a retry within the grace, the
    /// one the lost answer carried) or none (rotation off).
    async fn chain(
        &self,
        db: &Db,
        keys: &KeyRing,
        found: &Lookup,
        current: u64,
        advance: bool,
    ) -> Result<Step, sqlx::Error> {
        let family = &found.row.family_id;
        let next = current + 1;
        let push_expiry = !advance
            && found.row.used_at.is_none()
            && self.expires_at - found.row.expires_at >= LAST_USED_GRANULARITY_SECS;
        let moved = on_db!(db, |pool| {
            // `id = id` opens the SET list; whatever is due is appended.
            let mut update = sqlx::QueryBuilder::new("UPDATE token_families SET id = id");
            if advance {
                update
                    .push(", chain_generation = ")
                    .push_bind(next as i64)
                    .push(", chain_rotated_at = ")
                    .push_bind(self.at);
            }
            if advance || push_expiry {
                update
                    .push(", chain_expires_at = ")
                    .push_bind(self.expires_at);
            }
            if self.touch_family {
                update
                    .push(", last_used_at = ")
                    .push_bind(self.at)
                    .push(", last_used_ip = ")
                    .push_bind(&self.from.ip)
                    .push(", last_used_ua = ")
                    .push_bind(&self.from.user_agent);
            }
            update
                .push(" WHERE id = ")
                .push_bind(family)
                .push(" AND revoked_at IS NULL");
            if advance {
                update
                    .push(" AND chain_generation = ")
                    .push_bind(current as i64);
            }
            // One statement on its own: no transaction to open and close.
            let family_due = advance || push_expiry || self.touch_family;
            let moved =
                !family_due || pool.execute_write(update.build()).await?.rows_affected() > 0;
            Ok::<_, sqlx::Error>(moved)
        })?;
        if self.touch_grant {
            write_grant_last_used(db, &found.row.grant_id, self.at, self.from).await;
        }
        if !advance {
            // A retry within the grace gets the current generation; with
            // rotation off the client keeps the token it has.
            return Ok(Step::Done(
                found
                    .row
                    .used_at
                    .map(|_| chain_token(keys, family, current)),
            ));
        }
        if moved {
            return Ok(Step::Done(Some(chain_token(keys, family, next))));
        }
        // Revoked since the lookup, or moved on by a concurrent use.
        let now_is: Option<(Option<i64>, Option<i64>, bool)> = on_db!(db, |pool| {
            sqlx::query_as(
            "SELECT chain_generation, chain_rotated_at, revoked_at IS NOT NULL FROM token_families WHERE id = $1"
        )
        .bind(family)
        .fetch_optional(pool)
        .await
        })?;
        Ok(match now_is {
            Some((Some(g), Some(rotated_at), false))
                if g == next as i64 && (self.grace)(rotated_at) =>
            {
                // Used a moment ago, within the reuse grace: a retry gets
                // the successor the other use got.
                Step::Done(Some(chain_token(keys, family, next)))
            }
            Some((_, _, false)) => Step::Reused,
            _ => Step::Revoked,
        })
    }

    /// A stored token's refresh (issued before chains). With rotation, the
    /// token is claimed (one conditional UPDATE: exactly one of N
    /// concurrent uses wins) and its family's chain starts at generation 1,
    /// which is handed out; a retry within the grace of the token that
    /// started the chain gets generation 1 again; another stored token of
    /// the family, once the chain has started, is reuse. Without rotation,
    /// the same token lives on, its idle expiry pushed out when due.
    async fn stored(
        &self,
        db: &Db,
        keys: &KeyRing,
        found: &Lookup,
        rotate: bool,
        state: RefreshState,
    ) -> Result<Step, sqlx::Error> {
        let row = &found.row;
        let push_expiry = !rotate && self.expires_at - row.expires_at >= LAST_USED_GRANULARITY_SECS;
        if !rotate && !push_expiry && !self.touch_family && !self.touch_grant {
            // Nothing stale: nothing to write.
            return Ok(Step::Done(None));
        }
        let step = on_db!(db, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut generation = None;
            if rotate {
                let retry = state == RefreshState::RotatedWithinGrace;
                let mut claimed = retry;
                if !claimed {
                    claimed = sqlx::query(
                        "UPDATE refresh_tokens SET used_at = $1 \
                         WHERE hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
                         AND EXISTS (SELECT 1 FROM token_families \
                                     WHERE id = $3 AND revoked_at IS NULL)",
                    )
                    .bind(self.at)
                    .bind(&row.hash)
                    .bind(&row.family_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                }
                if !claimed {
                    // Revoked since the lookup, or another request used it a moment ago.
                    let now_is: Option<(Option<i64>, bool)> = sqlx::query_as(
                        "SELECT t.used_at, t.revoked_at IS NOT NULL OR f.revoked_at IS NOT NULL \
                         FROM refresh_tokens t JOIN token_families f ON f.id = t.family_id \
                         WHERE t.hash = $1",
                    )
                    .bind(&row.hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((used_at, false)) = now_is else {
                        tx.rollback().await?;
                        return Ok::<_, sqlx::Error>(Step::Revoked);
                    };
                    if !used_at.is_some_and(&self.grace) {
                        tx.rollback().await?;
                        return Ok(Step::Reused);
                    }
                    // Used a moment ago, within the reuse grace: a retry.
                }
                // The chain starts (the first rotation of the family's
                // stored tokens), only while the family is live. Started
                // already: a retry of the token that started it, within the
                // grace, gets generation 1 again; anything else (a sibling
                // stored token, from a retry before chains) is reuse.
                let started: Option<i64> = sqlx::query_scalar(
                    "UPDATE token_families SET chain_generation = 1, chain_rotated_at = $1, \
                     chain_expires_at = $2, scopes = $3 \
                     WHERE id = $4 AND revoked_at IS NULL AND chain_generation IS NULL \
                     RETURNING chain_generation",
                )
                .bind(self.at)
                .bind(self.expires_at)
                .bind(&row.scopes)
                .bind(&row.family_id)
                .fetch_optional(&mut *tx)
                .await?;
                generation = match started {
                    Some(g) => Some(g),
                    None => {
                        let chain: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
                            "SELECT chain_generation, chain_rotated_at FROM token_families \
                             WHERE id = $1 AND revoked_at IS NULL",
                        )
                        .bind(&row.family_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        match chain {
                            None => {
                                tx.rollback().await?;
                                return Ok(Step::Revoked);
                            }
                            Some((Some(1), Some(started_at)))
                                if retry && (self.grace)(started_at) =>
                            {
                                Some(1)
                            }
                            Some(_) => {
                                tx.rollback().await?;
                                return Ok(Step::Reused);
                            }
                        }
                    }
                };
            } else if push_expiry {
                // No rotation: the same token lives on, its idle expiry pushed out.
                sqlx::query(
                    "UPDATE refresh_tokens SET expires_at = $1 \
                     WHERE hash = $2 AND revoked_at IS NULL AND expires_at <= $3",
                )
                .bind(self.expires_at)
                .bind(&row.hash)
                .bind(self.expires_at - LAST_USED_GRANULARITY_SECS)
                .execute(&mut *tx)
                .await?;
            }
            if self.touch_family {
                sqlx::query(
                    "UPDATE token_families SET last_used_at = $1, last_used_ip = $2, last_used_ua = $3 \
                     WHERE id = $4 AND last_used_at <= $5",
                )
                .bind(self.at)
                .bind(&self.from.ip)
                .bind(&self.from.user_agent)
                .bind(&row.family_id)
                .bind(self.at - LAST_USED_GRANULARITY_SECS)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(Step::Done(generation))
        })?;
        if self.touch_grant {
            write_grant_last_used(db, &row.grant_id, self.at, self.from).await;
        }
        Ok(step.map(|generation| generation.map(|g| chain_token(keys, &row.family_id, g as u64))))
    }
}

/// A used refresh token came back: revoke its family, audit, and answer
/// `invalid_grant`. If the revocation itself fails, the answer is an error
/// that says so (never a quiet `invalid_grant` over a family still alive).
async fn reuse_detected(
    db: &Db,
    revoked: &RevokedSets,
    client: &Client,
    row: &RefreshRow,
    from: &ClientInfo,
) -> GrantError {
    metrics::counter!("latchkey_refresh_token_reuse_total").increment(1);
    let mut event = AuditEvent::new(AuditKind::ReuseDetected)
        .client(&client.client_id)
        .ip(&from.ip)
        .detail(serde_json::json!({
            "what": "refresh_token",
            "grant_id": row.grant_id,
            "family_id": row.family_id,
            "user_agent": from.user_agent,
        }));
    if let Some(user) = &row.user_id {
        event = event.subject(user);
    }
    event.actor_client_id = Some(client.client_id.clone());
    let by = RevokedBy {
        actor: "system",
        reason: "refresh token reuse detected",
        actor_user_id: None,
        actor_client_id: None,
    };
    let done = async {
        super::audit::record(db, &event).await?;
        revoked.revoke_family(db, &row.family_id, &by).await
    }
    .await;
    match done {
        Ok(_) => GrantError::InvalidGrant(
            "this refresh token was already used; the session it belongs to is revoked".into(),
        ),
        Err(e) => GrantError::Failed(e),
    }
}

/// What RFC 7662 introspection says about a refresh token, for the client it
/// was issued to; `None` when it is not live (or not theirs).
pub async fn introspect(
    db: &Db,
    keys: &KeyRing,
    issuer: &str,
    client: &Client,
    token: &str,
) -> DomainResult<Option<serde_json::Value>> {
    let Some(found) = lookup(db, keys, token).await? else {
        return Ok(None);
    };
    let row = &found.row;
    if row.client_id != client.client_id {
        return Ok(None);
    }
    let policy = found.policy()?;
    let exp = row.expires_at(&policy);
    // Active exactly when a refresh with it would go through now.
    if refresh_allowed(client, &policy).is_err()
        || !RefreshState::of(row, &policy, now()).refreshes()
    {
        return Ok(None);
    }
    let row = found.row;
    Ok(Some(serde_json::json!({
        "active": true,
        "scope": row.scopes,
        "client_id": row.client_id,
        "sub": row.user_id.unwrap_or(row.client_id.clone()),
        "exp": exp,
        "iat": row.issued_at,
        "iss": issuer,
        "aud": row.client_id,
        "jti": &row.hash[..32],
        "token_type": "refresh_token",
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_tokens_carry_their_family_and_generation_and_cannot_be_forged() {
        use base64::Engine;
        let keys = KeyRing::chain_only();
        let family = super::super::secrets::new_id();
        for generation in [0, 1, 41, u64::MAX] {
            let token = chain_token(&keys, &family, generation);
            assert_eq!(
                presented(&keys, &token),
                Some(Presented::Chain {
                    family_id: family.clone(),
                    generation
                })
            );
        }
        let token = chain_token(&keys, &family, 7);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut raw = b64.decode(&token).unwrap();
        // Another generation under the same MAC, or a flipped MAC bit: refused.
        let at = raw.len() - 33;
        raw[at] ^= 1;
        assert_eq!(presented(&keys, &b64.encode(&raw)), None);
        raw[at] ^= 1;
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(presented(&keys, &b64.encode(&raw)), None);
        // Another deployment's (another master key's) token: refused.
        assert_eq!(presented(&KeyRing::chain_only(), &token), None);
        // Stored tokens (32 random bytes) and anything else go to the table.
        let stored = super::super::secrets::new_secret();
        assert_eq!(presented(&keys, &stored), Some(Presented::Stored));
        assert_eq!(presented(&keys, "not base64 !"), Some(Presented::Stored));
        assert_eq!(presented(&keys, ""), Some(Presented::Stored));
    }

    #[test]
    fn a_chain_generation_is_current_just_rotated_or_long_used() {
        let family = |generation: i64| FamilyRow {
            family_id: "f".into(),
            family_scopes: Some("openid".into()),
            family_created_at: NOW - 1000,
            family_revoked_at: None,
            login_session_id: None,
            family_last_used_at: NOW - 10,
            chain_generation: Some(generation),
            chain_rotated_at: Some(NOW - 10),
            chain_expires_at: Some(NOW + 3600),
            grant_id: "g".into(),
            grant_revoked_at: None,
            client_id: "c".into(),
            user_id: Some("u".into()),
            grant_last_used_at: None,
            user_disabled_at: None,
            live_client_id: Some("c".into()),
            policy: policy(true, 30),
        };
        let used_at = |generation: u64, current: i64| {
            Lookup::of_chain("t", family(current), generation).map(|l| l.row.used_at)
        };
        assert_eq!(used_at(5, 5), Some(None), "current: unused");
        assert_eq!(
            used_at(4, 5),
            Some(Some(NOW - 10)),
            "rotated when 5 was issued"
        );
        assert_eq!(used_at(1, 5), Some(Some(0)), "used long ago");
        assert_eq!(used_at(6, 5), None, "not reached");
        let within_grace = Lookup::of_chain("t", family(5), 4).unwrap();
        assert_eq!(
            RefreshState::of(&within_grace.row, &policy(true, 30), NOW),
            RefreshState::RotatedWithinGrace
        );
        let older = Lookup::of_chain("t", family(5), 3).unwrap();
        assert_eq!(
            RefreshState::of(&older.row, &policy(true, 30), NOW),
            RefreshState::Reused
        );
        let no_chain = FamilyRow {
            chain_generation: None,
            ..family(0)
        };
        assert!(Lookup::of_chain("t", no_chain, 0).is_none());
    }

    const NOW: i64 = 1_000_000;

    fn policy(rotate: bool, grace: i64) -> Policy {
        Policy {
            refresh_enabled: true,
            access_ttl_secs: 600,
            refresh_idle_ttl_secs: 3600,
            refresh_absolute_ttl_secs: 86_400,
            rotate_refresh: rotate,
            reuse_grace_secs: grace,
            revoke_on_logout: true,
        }
    }

    /// A token issued 100 s ago in a family created 1,000 s ago, idle expiry in an hour.
    fn row() -> RefreshRow {
        RefreshRow {
            hash: "h".into(),
            family_id: "f".into(),
            scopes: "openid".into(),
            issued_at: NOW - 100,
            expires_at: NOW + 3600,
            used_at: None,
            revoked_at: None,
            family_created_at: NOW - 1000,
            family_revoked_at: None,
            login_session_id: None,
            grant_id: "g".into(),
            grant_revoked_at: None,
            client_id: "c".into(),
            user_id: Some("u".into()),
            user_disabled_at: None,
        }
    }

    #[test]
    fn one_decision_for_every_refresh_token_state() {
        use Lifetime::*;
        use RefreshState::*;
        let used = |ago: i64| RefreshRow {
            used_at: Some(NOW - ago),
            ..row()
        };
        // (case, token, rotation, grace, expected)
        let table: Vec<(&str, RefreshRow, bool, i64, RefreshState)> = vec![
            ("fresh, rotating", row(), true, 0, Live),
            ("fresh, not rotating", row(), false, 0, Live),
            ("used, no grace", used(1), true, 0, Reused),
            ("used within grace", used(5), true, 10, RotatedWithinGrace),
            (
                "used at the grace's edge",
                used(10),
                true,
                10,
                RotatedWithinGrace,
            ),
            ("used past the grace", used(11), true, 10, Reused),
            // Rotated while rotation was on, presented after it was switched
            // off: it still has a successor, so it is reuse (issue 9, fault 7).
            ("used, rotation now off", used(60), false, 0, Reused),
            (
                "used, rotation now off, in grace",
                used(5),
                false,
                10,
                RotatedWithinGrace,
            ),
            (
                "idle expiry passed",
                RefreshRow {
                    expires_at: NOW,
                    ..row()
                },
                true,
                0,
                Expired(Idle),
            ),
            (
                "absolute lifetime passed",
                RefreshRow {
                    family_created_at: NOW - 86_400,
                    ..row()
                },
                true,
                0,
                Expired(Absolute),
            ),
            (
                "expired and used: expiry wins",
                RefreshRow {
                    expires_at: NOW - 1,
                    ..used(60)
                },
                true,
                0,
                Expired(Idle),
            ),
            (
                "token revoked",
                RefreshRow {
                    revoked_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "family revoked",
                RefreshRow {
                    family_revoked_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "grant revoked",
                RefreshRow {
                    grant_revoked_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "user disabled",
                RefreshRow {
                    user_disabled_at: Some(NOW - 1),
                    ..row()
                },
                true,
                0,
                Revoked,
            ),
            (
                "revoked and expired: revoked wins",
                RefreshRow {
                    family_revoked_at: Some(NOW - 1),
                    expires_at: NOW - 5,
                    ..used(60)
                },
                true,
                0,
                Revoked,
            ),
        ];
        for (case, token, rotate, grace, expected) in table {
            let state = RefreshState::of(&token, &policy(rotate, grace), NOW);
            assert_eq!(state, expected, "{case}");
            assert_eq!(
                state.refreshes(),
                matches!(expected, Live | RotatedWithinGrace),
                "{case}"
            );
        }
    }
}
