//! The `latchkey` process.
//!
//! | module | owns |
//! | --- | --- |
//! | [`cli`] | the commands: serve, migrate, user, client, demo; exit codes |
//! | [`config`] | flags and `LATCHKEY_*` variables, validated once |
//! | [`http`] | the axum router and its middleware |
//! | [`state`] | `AppState`: what every request shares, and the `Parts` it is built from |
//! | [`callers`] | who is calling: one extractor per kind of caller (browser, signed-in person, admin, bearer token), the client's address |
//! | [`background`] | the tasks besides requests (revocation log, key reload, session cleanup, outbox, retention), started in one place |
//! | [`pages`] | the few server-written HTML pages: one frame, one escape |
//! | [`csp`] | the Content-Security-Policy (a nonce per request), HSTS |
//! | [`panics`] | a panic in a handler or a page render → 500 with a request id |
//! | [`web`] | sign-in / sign-out form posts, the cross-site check |
//! | [`oauth`] | the OAuth / OpenID Connect protocol endpoints; `oauth::error` is the one RFC 6749/6750 error type and `WWW-Authenticate` builder |
//! | [`request_headers`] | `Authorization`, `Content-Type`, `Origin`/`Referer`: one parser each |
//! | [`admin_api`] | the admin REST API under `/api/admin/` (Bearer token with `latchkey:admin`) |
//! | [`rate_limit`] | per-address and per-client request limits (429 with `Retry-After`) |
//! | [`metrics`] | Prometheus metrics: what is counted, the `/metrics` listener |
//! | [`outbox`] | the worker delivering the outbox: back-channel logout tokens, upstream revocations, retried with backoff |
//! | [`upstream`] | sign-in through upstream OpenID providers (the relying party), their logout and token revocation |
//!
//! The domain (users, clients, sessions, storage) lives in `app::domain`,
//! shared with the dashboard's server functions.

pub mod admin_api;
pub mod background;
pub mod callers;
pub mod cli;
pub mod config;
pub mod csp;
pub mod http;
pub mod metrics;
pub mod oauth;
pub mod outbox;
pub mod pages;
pub mod panics;
pub mod rate_limit;
pub mod request_headers;
pub mod state;
pub mod upstream;
pub mod web;

/// The property tests' settings: 256 cases unless `PROPTEST_CASES` says
/// otherwise, and no failure files written into the tree.
#[cfg(test)]
pub(crate) fn proptest_config() -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config {
        failure_persistence: None,
        ..Default::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config
}
