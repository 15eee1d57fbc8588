//! The database going away under a running `latchkey serve` (issue 13,
//! item 5), and coming back: no request is answered as if it had succeeded,
//! nothing revoked comes back to life, nothing hangs, and the same process
//! answers again once the database does — no restart.
//!
//! **PostgreSQL** is taken away for real, at the network: the process talks
//! to it through a TCP proxy this test owns ([`Proxy`]). Cutting the proxy
//! ends every connection the process holds (its pool and its `LISTEN`
//! connection) and closes every new one at once, as a stopped server or a
//! broken link does; restoring it forwards again. The machine's shared
//! PostgreSQL is never touched. While it is away:
//!
//! - `/oauth/token` answers 503 `{"error": "temporarily_unavailable"}` (RFC
//!   6749 §5.2 shape) — client_credentials and refresh alike;
//! - `/oauth/revoke` answers 503: a revocation is acknowledged only once
//!   committed, and one refused revoked nothing (the token is live again
//!   once the database is back, until the client retries);
//! - introspection never says `active: true` for a token it cannot prove
//!   live: the instance goes stale within `instances::FRESH_FOR` (it cannot
//!   read the revocation log) — the only eventual step, polled for — and from
//!   then on answers exactly `{"active": false}` while it still remembers
//!   the caller's authentication (`client_auth::CACHE_TTL`), 503 after; a
//!   token revoked before the outage is never active, not even in the first
//!   200 ms;
//! - `/oauth/userinfo` refuses: 503 while the instance is still fresh (it
//!   cannot read the user), then 401 `invalid_token`, as for any token a
//!   stale instance cannot vouch for — never 200;
//! - the dashboard shows the plain "Something went wrong" page with a request
//!   id, and a sign-in is refused with "not possible right now" before any
//!   password is checked;
//! - `/readyz` answers 503 naming the database, `/healthz` 200.
//!
//! **SQLite** cannot be "stopped", and the "file made read-only"
//! cannot be staged faithfully in a test: tests run as root (permissions do
//! not bind root), and the server keeps the file, its `-wal` and `-shm` open
//! (a chmod, a rename or a removal of the file or its folder changes nothing
//! for descriptors already open; a mount that fails writes needs privileges
//! CI has not). What does happen to a SQLite file in production is another
//! process holding its write lock — a `sqlite3` shell left in a transaction,
//! a long import, a stuck backup tool — so that is what this test does: a
//! connection of its own holds `BEGIN IMMEDIATE` for the whole outage. Every
//! write of the server then waits its busy timeout (`SQLITE_BUSY_TIMEOUT`,
//! 10 s; no flag changes it) and fails with `SQLITE_BUSY`; reads go on (WAL
//! readers never wait for a writer). So on SQLite:
//!
//! - whatever must write answers 503: `/oauth/revoke`, a refresh (rotation),
//!   a sign-in (its attempt is counted first, so it is refused with "not
//!   possible right now", no password checked);
//! - whatever only reads still answers, correctly: a client_credentials token
//!   for a client that has its grant, introspection (the revocation log is
//!   readable, so a live token is provably live and a revoked one is not),
//!   userinfo, the dashboard, and `/readyz` (the database answers);
//! - each write's wait ends in an answer: no request hangs.
//!
//! Both end with the database back and the same process answering every
//! request as before the outage, exactly: a new token, the live token active,
//! the revoked one still inactive, a revocation acknowledged and holding,
//! refresh, userinfo, the dashboard and a new sign-in.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

mod common;

use app::domain::{clients::ClientKind, users};
use common::{
    browser,
    flow::{self, cc_token, is_active, revoke_by_rfc7009, service, App, PASSWORD, VERIFIER},
    process::{empty_site, process_db_url, start, Instance},
    Site, TestDb,
};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

on_both_backends!(the_database_goes_away_and_comes_back);

/// How long any one request may take before the test calls it a hang. On
/// SQLite a write waits its 10 s busy timeout, maybe behind another write
/// of the process (its heartbeat) that waits as long.
const HANG: Duration = Duration::from_secs(60);

/// The bound on what is eventual: the instance going stale after the
/// database went away (`instances::FRESH_FOR`, 200 ms), and getting its
/// connections and the revocation log back after it returned.
const EVENTUALLY: Duration = Duration::from_secs(30);

async fn the_database_goes_away_and_comes_back(t: TestDb) {
    if t.schema().is_some() {
        postgres_goes_away(t).await
    } else {
        sqlite_write_lock_is_held(t).await
    }
}

async fn postgres_goes_away(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&t.url).await;
    let url = proxy.url_for(&process_db_url(&t));
    let lk = start(dir.path(), &url, &empty_site(dir.path()), None).await;
    let before = Before::set_up(&t, &lk).await;

    proxy.cut();
    // The only eventual step: the instance is stale once its last read of the
    // revocation log is older than FRESH_FOR. Until then it may still answer
    // for the live token from memory, while what needs the database fails
    // (userinfo reads the user: 503); stale, it vouches for no token at all
    // (userinfo 401). The revoked token is never active, not even before.
    let waiting = Instant::now();
    loop {
        before.never_active(&lk, &before.revoked).await;
        let answer = introspect(&lk, &before.job, &before.live).await;
        if answer != (StatusCode::OK, before.live_introspection.clone()) {
            assert_fails_closed(&answer, "the live token, the database away");
        }
        match userinfo(&lk, &before.openid_access).await {
            StatusCode::UNAUTHORIZED => break,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("userinfo answered {other} with the database away"),
        }
        assert!(
            waiting.elapsed() < EVENTUALLY,
            "the instance still vouches for tokens {EVENTUALLY:?} after the database went away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // From here on the instance is stale (it cannot read the log): exact answers.
    let (status, body) = ready(&lk).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "/readyz: {body}");
    assert_eq!(
        body,
        json!({"ready": false, "database": "unavailable", "signing_keys": "ok", "revocations": "stale"})
    );
    assert_eq!(healthz(&lk).await, (StatusCode::OK, "ok".to_owned()));

    assert_unavailable(cc(&lk, &before.job).await, "client_credentials").await;
    assert_unavailable(
        refresh(&lk, &before.reader, &before.refresh_token).await,
        "refresh",
    )
    .await;
    assert_unavailable(
        revoke(&lk, &before.job, &before.live).await,
        "revoking the live token",
    )
    .await;
    assert_unavailable(
        revoke(&lk, &before.reader, &before.refresh_token).await,
        "revoking a token family",
    )
    .await;
    let answer = introspect(&lk, &before.job, &before.live).await;
    assert_fails_closed(&answer, "the live token");
    before.never_active(&lk, &before.revoked).await;
    assert_eq!(
        userinfo(&lk, &before.openid_access).await,
        StatusCode::UNAUTHORIZED,
        "userinfo refuses what a stale instance cannot vouch for"
    );

    // The dashboard: the plain error page with a request id, not the page.
    let (status, html) = page(&before.signed_in, &lk, "/").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{html}");
    assert_something_went_wrong(&html);
    // An app sending the signed-in person to authorize: the same page, no code.
    let params = flow::authorize_params(&before.reader, "openid");
    let res = send(
        before
            .signed_in
            .get(lk.url("/oauth/authorize"))
            .query(&params),
        "authorize",
    )
    .await;
    let (status, html) = (res.status(), res.text().await.unwrap());
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{html}");
    assert_something_went_wrong(&html);
    // A request refused for its parameters is refused before the sign-in is
    // read (`callers::Browser::signed_in`): the 400 page it owes, not a 500.
    let res = send(
        before
            .signed_in
            .get(lk.url("/oauth/authorize?response_type=code")),
        "authorize without client_id",
    )
    .await;
    let (status, html) = (res.status(), res.text().await.unwrap());
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("client_id is missing"), "{html}");
    // What needs no database still answers: discovery, and the keys resource
    // servers check tokens with.
    for path in ["/.well-known/openid-configuration", "/oauth/jwks"] {
        let res = send(reqwest::Client::new().get(lk.url(path)), path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    // A new sign-in: refused before any password is checked, in words.
    assert_sign_in_not_possible(&lk, &before.username, StatusCode::INTERNAL_SERVER_ERROR).await;

    proxy.restore();
    after_it_returns(&t, &lk, &before).await;
    drop(lk);
    drop(proxy);
    t.cleanup().await;
}

async fn sqlite_write_lock_is_held(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let lk = start(
        dir.path(),
        &process_db_url(&t),
        &empty_site(dir.path()),
        None,
    )
    .await;
    let before = Before::set_up(&t, &lk).await;

    // The dashboard notes when a sign-in was last seen, at most once a
    // minute: make that write due, so the page below needs one.
    common::exec(&t.db, "UPDATE login_sessions SET last_seen_at = 0").await;
    // Another process's connection (this test's) takes the write lock and keeps it.
    let mut holder = sqlx::SqliteConnection::connect(&t.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();

    // Reads go on, and what they prove is answered as before.
    assert!(
        is_active(&lk, &before.job, &before.live).await,
        "a live token is provably live"
    );
    before.never_active(&lk, &before.revoked).await;
    cc_token(&lk, &before.job).await;
    assert_eq!(userinfo(&lk, &before.openid_access).await, StatusCode::OK);
    let (status, body) = ready(&lk).await;
    assert_eq!(status, StatusCode::OK, "/readyz: {body}");
    assert_eq!(healthz(&lk).await, (StatusCode::OK, "ok".to_owned()));

    // Writes wait out the busy timeout, then fail: never acknowledged, never
    // a hang. (At once: they wait their turns together, not one after another.)
    tokio::join!(
        async {
            let res = revoke(&lk, &before.job, &before.live).await;
            assert_unavailable(res, "revoking the live token").await
        },
        async {
            let res = refresh(&lk, &before.reader, &before.refresh_token).await;
            assert_unavailable(res, "refresh (the rotation writes)").await
        },
        assert_sign_in_not_possible(&lk, &before.username, StatusCode::OK),
        async {
            // Noting when the sign-in was last seen fails: the plain error page.
            let (status, html) = page(&before.signed_in, &lk, "/").await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{html}");
            assert_something_went_wrong(&html);
        },
    );
    assert!(
        is_active(&lk, &before.job, &before.live).await,
        "the revocation refused revoked nothing"
    );

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();
    after_it_returns(&t, &lk, &before).await;
    drop(lk);
    t.cleanup().await;
}

/// What the test holds from before the outage.
struct Before {
    /// A client_credentials client.
    job: App,
    /// A confidential app of the code flow.
    reader: App,
    /// `job`'s token revoked before the outage.
    revoked: String,
    /// `job`'s live token, and its introspection then.
    live: String,
    live_introspection: Value,
    /// `reader`'s tokens (`openid`) of `username`.
    openid_access: String,
    refresh_token: String,
    username: String,
    /// A browser signed in as `username`.
    signed_in: reqwest::Client,
}

impl Before {
    async fn set_up(t: &TestDb, lk: &Instance) -> Before {
        let job = service(&t.db, "Job", &[]).await;
        let reader = flow::app(t, "Reader", ClientKind::Confidential, &[]).await;
        let username = "alice".to_owned();
        users::add_user(&t.db, &username, PASSWORD, false)
            .await
            .unwrap();

        let revoked = cc_token(lk, &job).await;
        revoke_by_rfc7009(lk, &job, &revoked).await;
        assert!(!is_active(lk, &job, &revoked).await);
        let live = cc_token(lk, &job).await;
        let (status, live_introspection) = introspect(lk, &job, &live).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(live_introspection["active"], true);

        let (signed_in, res) = sign_in(lk, &username).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(flow::location(&res), "/", "signed in");
        assert_eq!(page(&signed_in, lk, "/").await.0, StatusCode::OK);
        let tokens = code_flow(&signed_in, lk, &reader).await;
        let openid_access = flow::str_of(&tokens, "access_token").to_owned();
        let refresh_token = flow::str_of(&tokens, "refresh_token").to_owned();
        assert_eq!(userinfo(lk, &openid_access).await, StatusCode::OK);
        Before {
            job,
            reader,
            revoked,
            live,
            live_introspection,
            openid_access,
            refresh_token,
            username,
            signed_in,
        }
    }

    /// Introspection of `token` (revoked before the outage) is anything but active.
    async fn never_active(&self, lk: &Instance, token: &str) {
        let answer = introspect(lk, &self.job, token).await;
        assert_fails_closed(&answer, "the token revoked before the outage");
    }
}

/// The database is back: the same process answers every request as before
/// the outage (after its connections and its read of the log are back: the
/// eventual step, polled on `/readyz`).
async fn after_it_returns(t: &TestDb, lk: &Instance, before: &Before) {
    let waiting = Instant::now();
    loop {
        let (status, body) = ready(lk).await;
        if status == StatusCode::OK {
            assert_eq!(
                body,
                json!({"ready": true, "database": "ok", "signing_keys": "ok", "revocations": "ok"})
            );
            break;
        }
        assert!(
            waiting.elapsed() < EVENTUALLY,
            "not ready {EVENTUALLY:?} after the database returned: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = &before.job;
    cc_token(lk, job).await;
    assert!(
        is_active(lk, job, &before.live).await,
        "the live token is active again: the refused revocation revoked nothing"
    );
    assert!(!is_active(lk, job, &before.revoked).await, "still revoked");
    assert_eq!(
        userinfo(lk, &before.openid_access).await,
        StatusCode::OK,
        "userinfo"
    );
    let res = refresh(lk, &before.reader, &before.refresh_token).await;
    let (status, body) = (res.status(), res.text().await.unwrap());
    assert_eq!(status, StatusCode::OK, "refresh after the outage: {body}");
    let (status, html) = page(&before.signed_in, lk, "/").await;
    assert_eq!(status, StatusCode::OK, "the dashboard: {html}");
    let (_, res) = sign_in(lk, &before.username).await;
    assert_eq!(flow::location(&res), "/", "a new sign-in");

    // A revocation is acknowledged again, and holds.
    assert_eq!(revoke(lk, job, &before.live).await.status(), StatusCode::OK);
    assert!(!is_active(lk, job, &before.live).await, "revoked now");
    // Nothing of the outage was half-written: the revoked-before token is in
    // the log once, the live one once (now).
    assert_eq!(common::count(&t.db, "revoked_access_tokens").await, 2);
}

/// Forwards TCP connections to PostgreSQL until cut; restores on demand.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    forwarded: Arc<Mutex<Vec<AbortHandle>>>,
    accepting: AbortHandle,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a port the OS chooses) and forwards to the
    /// host and port of `pg_url`.
    async fn start(pg_url: &str) -> Proxy {
        let target = url::Url::parse(pg_url).unwrap();
        let upstream = format!(
            "{}:{}",
            target.host_str().unwrap_or("127.0.0.1"),
            target.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let forwarded = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let accepting = tokio::spawn({
            let (open, forwarded) = (open.clone(), forwarded.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !open.load(Ordering::SeqCst) {
                        // Away: closed at once, as a stopped server's port would be.
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    let mut forwarded = forwarded.lock().unwrap();
                    forwarded.retain(|t| !t.is_finished());
                    forwarded.push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Proxy {
            port,
            open,
            forwarded,
            accepting,
        }
    }

    /// `url` (the test database's, with its options) through this proxy.
    fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// The database goes away: every forwarded connection ends, new ones are closed.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.forwarded.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// The database is back.
    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

/// A request sent within [`HANG`]: no answer fails the test (a hang is a bug).
async fn send(request: reqwest::RequestBuilder, what: &str) -> reqwest::Response {
    request
        .timeout(HANG)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: no answer within {HANG:?}: {e}"))
}

/// A 503 `temporarily_unavailable` in RFC 6749 §5.2 shape.
async fn assert_unavailable(res: reqwest::Response, what: &str) {
    let status = res.status();
    let no_store = res.headers().get(header::CACHE_CONTROL).cloned();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(body["error_description"].is_string(), "{what}: {body}");
    assert_eq!(
        no_store.as_ref().map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{what}"
    );
}

/// An introspection answer that does not vouch for the token: exactly
/// `{"active": false}`, or 503 `temporarily_unavailable` once the caller's
/// authentication can no longer be checked either.
fn assert_fails_closed((status, body): &(StatusCode, Value), what: &str) {
    match *status {
        StatusCode::OK => assert_eq!(*body, json!({"active": false}), "{what}"),
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}")
        }
        other => panic!("{what}: introspection answered {other}: {body}"),
    }
}

async fn introspect(lk: &Instance, by: &App, token: &str) -> (StatusCode, Value) {
    let res = send(
        reqwest::Client::new()
            .post(lk.url("/oauth/introspect"))
            .basic_auth(&by.client_id, by.secret.as_deref())
            .form(&[("token", token)]),
        "introspection",
    )
    .await;
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn cc(lk: &Instance, app: &App) -> reqwest::Response {
    send(
        reqwest::Client::new()
            .post(lk.url("/oauth/token"))
            .basic_auth(&app.client_id, app.secret.as_deref())
            .form(&[("grant_type", "client_credentials")]),
        "client_credentials",
    )
    .await
}

async fn refresh(lk: &Instance, app: &App, refresh_token: &str) -> reqwest::Response {
    send(
        reqwest::Client::new()
            .post(lk.url("/oauth/token"))
            .basic_auth(&app.client_id, app.secret.as_deref())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ]),
        "refresh",
    )
    .await
}

async fn revoke(lk: &Instance, app: &App, token: &str) -> reqwest::Response {
    send(
        reqwest::Client::new()
            .post(lk.url("/oauth/revoke"))
            .basic_auth(&app.client_id, app.secret.as_deref())
            .form(&[("token", token)]),
        "revocation",
    )
    .await
}

async fn userinfo(lk: &Instance, access: &str) -> StatusCode {
    send(
        reqwest::Client::new()
            .get(lk.url("/oauth/userinfo"))
            .bearer_auth(access),
        "userinfo",
    )
    .await
    .status()
}

async fn ready(lk: &Instance) -> (StatusCode, Value) {
    let res = send(reqwest::Client::new().get(lk.url("/readyz")), "/readyz").await;
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

async fn healthz(lk: &Instance) -> (StatusCode, String) {
    let res = send(reqwest::Client::new().get(lk.url("/healthz")), "/healthz").await;
    (res.status(), res.text().await.unwrap())
}

/// A page as a browser gets it: the status and the HTML.
async fn page(http: &reqwest::Client, lk: &Instance, path: &str) -> (StatusCode, String) {
    let res = send(http.get(lk.url(path)), path).await;
    (res.status(), res.text().await.unwrap())
}

/// The sign-in form posted from the site (`Origin` is the issuer) in a new browser.
async fn sign_in(lk: &Instance, username: &str) -> (reqwest::Client, reqwest::Response) {
    let (http, _) = browser();
    let res = send(
        http.post(lk.url("/signin"))
            .header(header::ORIGIN, &lk.base)
            .form(&[
                ("username", username),
                ("password", PASSWORD),
                ("next", "/"),
            ]),
        "sign-in",
    )
    .await;
    (http, res)
}

/// A sign-in is refused without checking the password: back to the sign-in
/// page, which says signing in is not possible right now. The page answers
/// `page_status`: 500 when the database cannot be read (its list of upstream
/// providers failed to load; the form and the message are there).
async fn assert_sign_in_not_possible(lk: &Instance, username: &str, page_status: StatusCode) {
    let (http, res) = sign_in(lk, username).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = flow::location(&res);
    assert!(to.starts_with("/signin?"), "not signed in: {to}");
    assert_eq!(
        flow::query_of(&lk.url(&to))
            .get("error")
            .map(String::as_str),
        Some("unavailable"),
        "{to}"
    );
    let (status, html) = page(&http, lk, &to).await;
    assert_eq!(status, page_status, "{html}");
    assert!(
        html.contains("Signing in is not possible right now."),
        "{html}"
    );
    assert_eq!(
        page(&http, lk, "/").await.0,
        StatusCode::SEE_OTHER,
        "not signed in"
    );
}

/// Latchkey's plain error page, with the request id to give an administrator.
fn assert_something_went_wrong(html: &str) {
    assert!(html.contains("<h1>Something went wrong</h1>"), "{html}");
    let marker = "request id: <code>";
    let start = html.find(marker).unwrap_or_else(|| panic!("{html}")) + marker.len();
    let id = html[start..].split('<').next().unwrap();
    assert!(
        id.len() >= 16
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a request id: {id:?}"
    );
}

/// The code flow for `app` in a signed-in browser (consent included): the
/// token response.
async fn code_flow(http: &reqwest::Client, lk: &Instance, app: &App) -> Value {
    let params = flow::authorize_params(app, "openid");
    let res = send(
        http.get(lk.url("/oauth/authorize")).query(&params),
        "authorize",
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "the consent page");
    let html = res.text().await.unwrap();
    let res = send(
        http.post(lk.url("/oauth/authorize"))
            .header(header::ORIGIN, &lk.base)
            .form(&[
                ("request_id", flow::request_id(&html).as_str()),
                ("decision", "allow"),
            ]),
        "consent",
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = flow::query_of(&flow::location(&res))
        .get("code")
        .expect("a code")
        .clone();
    let res = send(
        reqwest::Client::new()
            .post(lk.url("/oauth/token"))
            .basic_auth(&app.client_id, app.secret.as_deref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", app.redirect_uri.as_str()),
                ("code_verifier", VERIFIER),
            ]),
        "redeeming the code",
    )
    .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}
