//! The domain and storage layer (server only): what the OAuth endpoints and the
//! dashboard share. HTTP handlers and server functions parse and check the
//! caller, then call in here; every rule lives in one function of this module.
//!
//! | module | owns |
//! | --- | --- |
//! | [`store`] | the pool (SQLite or PostgreSQL), migrations, `on_db!` |
//! | [`error`] | `DomainError` (invalid input naming its field, conflict, not found, database, internal) |
//! | [`secrets`] | random ids and secrets, SHA-256, Argon2id |
//! | [`keys`] | the master key; the signing keys (EdDSA, RS256): storage, rotation, reloading, JWKS; the refresh-chain MAC key |
//! | [`jwt`] | JWS signing and the one JWT verification (access tokens, ID token hints); why a token is refused |
//! | [`names`] | the case-insensitive key of usernames and client names (NFKC + case folding) |
//! | [`users`] | users: create, list, authenticate |
//! | [`clients`] | OAuth clients: registration rules, create, list |
//! | [`login_sessions`] | sign-in sessions (`sid`): start, resolve, end |
//! | [`grants`] | consent: a user's grant to a client; scopes in plain words; PKCE rules |
//! | [`codes`] | authorization codes: issue, redeem once (a replay revokes what it issued) |
//! | [`refresh`] | refresh tokens: rotation, reuse detection, lifetimes, introspection |
//! | [`my_apps`] | the user's apps, app sessions, activity and sign-ins; revoking them (owner-checked) |
//! | [`policy`] | token policy: the `FIELDS` table, the one change parser, defaults, per-client overrides, the effective value, validation |
//! | [`scopes`] | the scope catalogue: each scope's plain words and sensitivity; which scopes clients may be registered for |
//! | [`security`] | a person's security activity from the audit log: reuse detection, admin revocations, new apps and devices, throttling; seen and unseen |
//! | [`resource_servers`] | clients registered as resource servers: audiences, served scopes, who may introspect |
//! | [`revocation`] | revoking grants, families, access tokens: database first, then the in-memory sets |
//! | [`backchannel`] | OpenID Connect Back-Channel Logout: outbox rows in the revocation's transaction, logout tokens, delivery state |
//! | [`upstream`] | upstream OpenID providers people sign in through: providers, linked users, their tokens and revocation at logout |
//! | [`throttle`] | sign-in throttling: failures per username and per IP, lockouts that double |
//! | [`tokens`] | access-token and ID-token claims, client_credentials issuance, introspection; `Issuance`, what every grant issues with |
//! | [`web_session`] | the tower-sessions store over the same database |
//! | [`audit`] | the audit log |
//! | [`audit_search`] | reading the audit log: filters, pages, CSV/JSON export |
//! | [`admin`] | what admins do: clients and users with their usage, editing, disabling, bulk revocation |
//! | [`activity`] | the admin charts' counts from the audit log |
//! | [`usage`] | per-client, per-minute counts of client_credentials tokens and refreshes (written each second) |
//! | [`retention`] | what is deleted when, in small batches: the `RULES` table, `latchkey prune` |
//! | [`instances`] | the instance registry, the change log's position, acknowledgement across instances |
//! | [`demo`] | demo data |

pub mod activity;
pub mod admin;
pub mod audit;
pub mod audit_search;
pub mod backchannel;
pub mod clients;
pub mod codes;
pub mod demo;
pub mod error;
pub mod grants;
pub mod instances;
pub mod jwt;
pub mod keys;
pub mod login_sessions;
pub mod my_apps;
pub mod names;
pub mod policy;
pub mod refresh;
pub mod resource_servers;
pub mod retention;
pub mod revocation;
pub mod scopes;
pub mod secrets;
pub mod security;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod upstream;
pub mod usage;
pub mod users;
pub mod web_session;

pub use error::{DomainError, DomainResult};
pub use store::Db;

/// The settings of the modules' property tests (`proptest`): `cases` cases
/// unless `PROPTEST_CASES` asks for another number (long runs), and no
/// regression files written into the source tree (a failure prints its
/// minimal input; put it in a unit test).
#[cfg(test)]
pub(crate) fn proptest_config(cases: u32) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config {
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}
