//! OpenID Connect Back-Channel Logout 1.0 over real HTTP, on both backends: a
//! relying party's endpoint (axum on 127.0.0.1:0) receives the Logout Tokens
//! Latchkey's outbox worker POSTs and validates each as an app would, with
//! `jsonwebtoken` against Latchkey's JWKS — for every way a sign-in or an
//! app's access ends; through an app that is down for a while, a Latchkey
//! restart, a redirect answer and a deadline that passes.

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::domain::{
    backchannel::{self, RetryPolicy, EVENT, TOKEN_TTL_SECS, TOKEN_TYPE},
    clients::{self, ClientChange, ClientKind},
    store::now,
    Db,
};
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::post, Form};
use common::{
    endings::{end_access, Ending},
    flow::*,
    TestDb, TestServer,
};
use jsonwebtoken::{jwk::Jwk, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// How long a test waits for something that must happen (a delivery after
/// retries included); never a speed measurement.
const WAIT: Duration = Duration::from_secs(30);

/// Retries 1 s apart, so a test sees several attempts in a few seconds.
const QUICK: RetryPolicy = RetryPolicy {
    first_secs: 1,
    max_secs: 1,
    give_up_after_secs: 86_400,
};

// ---------------------------------------------------------------------------
// The relying party
// ---------------------------------------------------------------------------

/// How the app's back-channel endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    Unavailable,
    /// 307 to another path of the app (which counts its hits).
    Redirect,
}

#[derive(Default)]
struct Seen {
    /// Every `logout_token` posted to `/backchannel`, in order, whatever the answer.
    tokens: Vec<String>,
    /// Requests that reached the redirect's target.
    redirect_hits: usize,
}

#[derive(Clone)]
struct RpState {
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Seen>>,
}

/// An app's back-channel logout endpoint on a real socket.
struct Rp {
    addr: SocketAddr,
    state: RpState,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Rp {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn backchannel_endpoint(
    State(rp): State<RpState>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    let token = form.get("logout_token").cloned().unwrap_or_default();
    rp.seen.lock().unwrap().tokens.push(token);
    let answer = *rp.answer.lock().unwrap();
    match answer {
        Answer::Ok => StatusCode::OK.into_response(),
        Answer::Unavailable => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Answer::Redirect => (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, "/elsewhere")],
        )
            .into_response(),
    }
}

async fn elsewhere(State(rp): State<RpState>) -> StatusCode {
    rp.seen.lock().unwrap().redirect_hits += 1;
    StatusCode::OK
}

impl Rp {
    /// Listens on a free port.
    async fn start(answer: Answer) -> Rp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Rp::serve(listener, answer)
    }

    /// Listens on `addr` (a port reserved earlier, while the app was "down").
    async fn start_at(addr: SocketAddr) -> Rp {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Rp::serve(listener, Answer::Ok)
    }

    fn serve(listener: tokio::net::TcpListener, answer: Answer) -> Rp {
        let addr = listener.local_addr().unwrap();
        let state = RpState {
            answer: Arc::new(Mutex::new(answer)),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/backchannel", post(backchannel_endpoint))
            .route("/elsewhere", post(elsewhere).get(elsewhere))
            .with_state(state.clone());
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Rp {
            addr,
            state,
            handle,
        }
    }

    fn uri(&self) -> String {
        uri_at(self.addr)
    }

    fn answer(&self, answer: Answer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    fn tokens(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().tokens.clone()
    }

    /// Waits until `n` tokens arrived (within [`WAIT`]) and returns them.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        wait_until(&format!("{n} logout token(s) at the app"), || async {
            let tokens = self.tokens();
            (tokens.len() >= n).then_some(tokens)
        })
        .await
    }
}

fn uri_at(addr: SocketAddr) -> String {
    format!("http://{addr}/backchannel")
}

/// Polls `check` until it answers `Some`, failing the test after [`WAIT`].
async fn wait_until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_within(WAIT, what, check).await
}

/// [`wait_until`] with another limit.
async fn wait_within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < limit, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Validating a Logout Token as the app would (§2.6)
// ---------------------------------------------------------------------------

/// Validates `token` against Latchkey's JWKS as the app `client_id` must
/// (signature, `alg`, `typ`, `iss`, `aud`, `iat`/`exp`, `events`, `sub`/`sid`,
/// no `nonce`) and returns its claims.
async fn validate(issuer: &str, jwks_url: &str, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256, "signed like ID tokens");
    assert_eq!(header.typ.as_deref(), Some(TOKEN_TYPE), "typ: logout+jwt");
    let jwks: Value = reqwest::get(jwks_url).await.unwrap().json().await.unwrap();
    let kid = header.kid.expect("a kid");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "exp"]);
    validation.leeway = 0;
    let claims =
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .unwrap_or_else(|e| panic!("the logout token does not validate: {e}"))
            .claims;
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((iat - now()).abs() <= 60, "iat is now: {claims}");
    assert_eq!(
        claims["exp"].as_i64(),
        Some(iat + TOKEN_TTL_SECS),
        "{claims}"
    );
    assert!(!str_of(&claims, "jti").is_empty());
    assert_eq!(claims["events"], json!({ EVENT: {} }), "{claims}");
    assert!(claims.get("nonce").is_none(), "never a nonce: {claims}");
    assert!(
        claims.get("sub").is_some() || claims.get("sid").is_some(),
        "sub or sid: {claims}"
    );
    claims
}

// ---------------------------------------------------------------------------
// Setting up
// ---------------------------------------------------------------------------

/// Latchkey with its outbox worker (stopped with it).
struct Latchkey {
    server: TestServer,
}

impl Latchkey {
    async fn start(t: &TestDb, retry: RetryPolicy) -> Latchkey {
        let options = common::Options {
            outbox: Some(retry),
            ..Default::default()
        };
        let server = TestServer::start_with(&t.db, options).await;
        Latchkey { server }
    }

    async fn validate(&self, token: &str, client_id: &str) -> Value {
        let s = &self.server;
        validate(&s.base, &s.url("/oauth/jwks"), token, client_id).await
    }
}

/// Gives a registered app its back-channel logout URI.
async fn register_logout_uri(t: &TestDb, app: &App, uri: &str) {
    let change = ClientChange {
        backchannel_logout_uri: Some(Some(uri.to_owned())),
        ..ClientChange::default()
    };
    clients::update_client(&t.db, &app.client_id, &change, &Default::default())
        .await
        .unwrap();
}

/// One outbox row as the tests read it.
#[derive(Debug)]
struct Row {
    jti: String,
    attempts: i32,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    gave_up_at: Option<i64>,
}

/// The outbox rows of a client, oldest first.
async fn rows(db: &Db, client_id: &str) -> Vec<Row> {
    type Raw = (String, i32, Option<String>, Option<i64>, Option<i64>);
    let sql = "SELECT jti, attempts, last_error, delivered_at, gave_up_at FROM outbox \
               WHERE client_id = $1 ORDER BY id";
    let raw: Vec<Raw> = match db {
        Db::Sqlite(pool) => sqlx::query_as(sql).bind(client_id).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(sql).bind(client_id).fetch_all(pool).await,
    }
    .unwrap();
    raw.into_iter()
        .map(
            |(jti, attempts, last_error, delivered_at, gave_up_at)| Row {
                jti,
                attempts,
                last_error,
                delivered_at,
                gave_up_at,
            },
        )
        .collect()
}

/// Audit events of `kind` about `client_id`.
async fn audit_count(db: &Db, kind: &str, client_id: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM audit_events WHERE kind = $1 AND client_id = $2";
    match db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar(sql)
                .bind(kind)
                .bind(client_id)
                .fetch_one(pool)
                .await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar(sql)
                .bind(kind)
                .bind(client_id)
                .fetch_one(pool)
                .await
        }
    }
    .unwrap()
}

/// Waits until every row of the client is delivered, and returns them.
async fn all_delivered(db: &Db, client_id: &str) -> Vec<Row> {
    wait_until("every delivery recorded as delivered", || async {
        let rows = rows(db, client_id).await;
        rows.iter()
            .all(|r| r.delivered_at.is_some())
            .then_some(rows)
    })
    .await
}

/// Alice, signed in, uses Notes (with a back-channel logout URI at `rp`) and
/// Other (without one) from the same sign-in.
struct Scene {
    notes: App,
    other: App,
    alice: Person,
    tokens: Value,
    grant_id: String,
    /// Alice's sign-in, as her ID token names it.
    sid: String,
}

/// An app answering `answer`, Latchkey with its worker, the scene, and
/// then access ended by `ending`.
async fn ended(
    t: &TestDb,
    answer: Answer,
    retry: RetryPolicy,
    ending: Ending,
) -> (Rp, Latchkey, Scene) {
    let rp = Rp::start(answer).await;
    let latchkey = Latchkey::start(t, retry).await;
    let s = scene(t, &latchkey.server, &rp.uri()).await;
    assert!(rp.tokens().is_empty(), "nothing before access ends");
    s.end(t, &latchkey.server, ending).await;
    (rp, latchkey, s)
}

/// Waits until the client's first outbox row is as `wanted` says.
async fn first_row_once(
    db: &Db,
    client_id: &str,
    what: &str,
    wanted: impl Fn(&Row) -> bool,
) -> Row {
    wait_until(what, || async {
        rows(db, client_id).await.into_iter().next().filter(&wanted)
    })
    .await
}

impl Scene {
    /// Ends access the way `ending` says ([`end_access`]).
    async fn end(&self, t: &TestDb, server: &TestServer, ending: Ending) {
        let s = self;
        end_access(
            ending,
            t,
            server,
            &s.notes,
            &s.alice,
            &s.tokens,
            &s.grant_id,
        )
        .await;
    }
}

async fn scene(t: &TestDb, server: &TestServer, rp_uri: &str) -> Scene {
    let notes = app(t, "Notes", ClientKind::Confidential, &[]).await;
    register_logout_uri(t, &notes, rp_uri).await;
    let other = app(t, "Other", ClientKind::Confidential, &[]).await;
    let alice = person(t, server, "alice").await;
    let tokens = tokens_for(&alice, server, &notes, "openid").await;
    tokens_for(&alice, server, &other, "openid").await;
    let access = jwt_part(str_of(&tokens, "access_token"), 1);
    let id_token = jwt_part(str_of(&tokens, "id_token"), 1);
    Scene {
        grant_id: str_of(&access, "gid").to_owned(),
        sid: str_of(&id_token, "sid").to_owned(),
        notes,
        other,
        alice,
        tokens,
    }
}

// ---------------------------------------------------------------------------
// Every way a sign-in or an app's access ends
// ---------------------------------------------------------------------------

ending_tests!(each_ending {
    dashboard_sign_out => DashboardSignOut,
    rp_initiated_logout => RpInitiatedLogout,
    sign_out_all_other_sessions => SignOutAllOtherSessions,
    admin_signs_the_user_out_everywhere => AdminSignsOutEverywhere,
    admin_disables_the_user => AdminDisablesUser,
    my_apps_revoke => UserRevokesApp,
    admin_revokes_the_client => AdminRevokesClient,
    admin_deletes_the_client => AdminDeletesClient,
}
    an_app_that_is_down_gets_the_token_when_it_is_back,
    a_delivery_pending_at_restart_is_still_made,
    a_redirect_is_not_followed,
    a_delivery_is_given_up_after_the_deadline,
    the_registration_is_checked_and_shown_in_the_admin_api,
);

/// The tokens Notes must receive for `ending`: with alice's `sid` (one
/// sign-in ended) or without (every session of alice at Notes).
fn expected_sids(ending: Ending, sid: &str) -> Vec<Option<String>> {
    match ending {
        Ending::DashboardSignOut
        | Ending::RpInitiatedLogout
        | Ending::SignOutAllOtherSessions
        | Ending::AdminSignsOutEverywhere => vec![Some(sid.to_owned())],
        // Her grants are revoked first, then her sign-ins end.
        Ending::AdminDisablesUser => vec![None, Some(sid.to_owned())],
        Ending::UserRevokesApp | Ending::AdminRevokesClient | Ending::AdminDeletesClient => {
            vec![None]
        }
        Ending::RefreshSwitchedOff => vec![],
    }
}

async fn each_ending(t: TestDb, ending: Ending) {
    let (rp, latchkey, s) = ended(&t, Answer::Ok, QUICK, ending).await;

    let expected = expected_sids(ending, &s.sid);
    let tokens = rp.wait_for(expected.len()).await;
    let mut sids = Vec::new();
    for token in &tokens {
        let claims = latchkey.validate(token, &s.notes.client_id).await;
        assert_eq!(
            str_of(&claims, "sub"),
            s.alice.user_id,
            "{ending:?}: {claims}"
        );
        sids.push(claims.get("sid").map(|v| v.as_str().unwrap().to_owned()));
    }
    sids.sort();
    assert_eq!(sids, expected, "{ending:?}: sub and sid");
    let delivered = all_delivered(&t.db, &s.notes.client_id).await;
    assert_eq!(
        delivered.len(),
        expected.len(),
        "{ending:?}: one row per token"
    );
    assert_eq!(
        audit_count(&t.db, "backchannel_logout_delivered", &s.notes.client_id).await,
        expected.len() as i64,
        "{ending:?}: every delivery audited"
    );
    assert!(
        rows(&t.db, &s.other.client_id).await.is_empty(),
        "{ending:?}: a client without a back-channel logout URI gets nothing"
    );
    assert_eq!(
        rp.tokens().len(),
        expected.len(),
        "{ending:?}: nothing more"
    );
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// Delivery: retries, restarts, redirects, the deadline
// ---------------------------------------------------------------------------

/// The app answers 503 at first: the token is retried (same `jti`, signed
/// afresh) and arrives once the app answers 200; meanwhile the console lists
/// the delivery as pending with its last error.
async fn an_app_that_is_down_gets_the_token_when_it_is_back(t: TestDb) {
    let (rp, latchkey, s) = ended(&t, Answer::Unavailable, QUICK, Ending::DashboardSignOut).await;

    let row = first_row_once(&t.db, &s.notes.client_id, "two failed attempts", |r| {
        r.attempts >= 2 && r.last_error.is_some()
    })
    .await;
    let failing = (row.jti, row.last_error.unwrap());
    assert!(
        failing.1.contains("503"),
        "the error says what the app answered: {}",
        failing.1
    );
    let listed = backchannel::undelivered(&t.db, &s.notes.client_id, 50)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "the console lists the pending delivery");
    assert_eq!(listed[0].target_url, rp.uri());
    assert_eq!(listed[0].subject.sid.as_deref(), Some(s.sid.as_str()));
    assert!(listed[0].next_attempt_at.is_some() && listed[0].gave_up_at.is_none());
    assert!(listed[0].last_error.as_deref().unwrap().contains("503"));

    rp.answer(Answer::Ok);
    let delivered = all_delivered(&t.db, &s.notes.client_id).await;
    assert_eq!(delivered.len(), 1);
    let tokens = rp.tokens();
    assert!(tokens.len() >= 3, "two refused, then the accepted one");
    let last = latchkey
        .validate(tokens.last().unwrap(), &s.notes.client_id)
        .await;
    assert_eq!(str_of(&last, "jti"), failing.0, "the row's jti");
    assert_eq!(str_of(&last, "sid"), s.sid);
    for earlier in &tokens[..tokens.len() - 1] {
        assert_eq!(
            jwt_part(earlier, 1)["jti"],
            failing.0.as_str(),
            "one jti across retries"
        );
    }
    assert!(
        backchannel::undelivered(&t.db, &s.notes.client_id, 50)
            .await
            .unwrap()
            .is_empty(),
        "nothing left pending"
    );
    t.cleanup().await;
}

/// The app is not even listening when the sign-in ends, and Latchkey's worker
/// stops (a restart); a new worker on the same database delivers the row once
/// the app listens.
async fn a_delivery_pending_at_restart_is_still_made(t: TestDb) {
    // A port nobody listens on yet.
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], common::process::free_port()).into();
    let latchkey = Latchkey::start(&t, QUICK).await;
    let s = scene(&t, &latchkey.server, &uri_at(addr)).await;
    s.end(&t, &latchkey.server, Ending::RpInitiatedLogout).await;
    first_row_once(
        &t.db,
        &s.notes.client_id,
        "a refused connection recorded",
        |r| r.last_error.is_some(),
    )
    .await;

    // Latchkey goes down with the delivery pending; the app comes up; Latchkey starts again.
    drop(latchkey);
    let rp = Rp::start_at(addr).await;
    let again = Latchkey::start(&t, QUICK).await;
    // Stopped between leasing the row and recording its attempt, the old
    // worker leaves it leased: then it is due again after the lease.
    let limit = WAIT + Duration::from_secs(latchkey::outbox::LEASE_SECS as u64);
    let tokens = wait_within(limit, "the token after the restart", || async {
        let tokens = rp.tokens();
        (!tokens.is_empty()).then_some(tokens)
    })
    .await;
    let claims = again.validate(&tokens[0], &s.notes.client_id).await;
    assert_eq!(str_of(&claims, "sid"), s.sid);
    assert_eq!(str_of(&claims, "sub"), s.alice.user_id);
    let delivered = all_delivered(&t.db, &s.notes.client_id).await;
    assert!(delivered[0].attempts >= 2, "{delivered:?}");
    t.cleanup().await;
}

/// A 307 is an error, not a hop: nothing reaches the redirect's target and
/// the row stays pending with the reason.
async fn a_redirect_is_not_followed(t: TestDb) {
    let (rp, _latchkey, s) = ended(&t, Answer::Redirect, QUICK, Ending::UserRevokesApp).await;
    let row = first_row_once(
        &t.db,
        &s.notes.client_id,
        "a redirect recorded as a failure",
        |r| r.attempts >= 2 && r.last_error.is_some(),
    )
    .await;
    let error = row.last_error.unwrap();
    assert!(
        error.contains("307") && error.contains("not followed"),
        "{error}"
    );
    assert_eq!(
        rp.state.seen.lock().unwrap().redirect_hits,
        0,
        "the redirect was not followed"
    );
    assert!(rows(&t.db, &s.notes.client_id).await[0]
        .delivered_at
        .is_none());
    t.cleanup().await;
}

/// With a deadline of 2 s, an app that never answers 2xx: the row is given
/// up, audited, and shown as given up in the console's list.
async fn a_delivery_is_given_up_after_the_deadline(t: TestDb) {
    let retry = RetryPolicy {
        give_up_after_secs: 2,
        ..QUICK
    };
    let (rp, _latchkey, s) =
        ended(&t, Answer::Unavailable, retry, Ending::AdminRevokesClient).await;
    let row = first_row_once(&t.db, &s.notes.client_id, "the delivery given up", |r| {
        r.gave_up_at.is_some()
    })
    .await;
    assert!(row.delivered_at.is_none());
    assert!(
        row.last_error.as_deref().unwrap().contains("503"),
        "{row:?}"
    );
    assert_eq!(
        audit_count(&t.db, "backchannel_logout_gave_up", &s.notes.client_id).await,
        1
    );
    let listed = backchannel::undelivered(&t.db, &s.notes.client_id, 50)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].gave_up_at.is_some() && listed[0].next_attempt_at.is_none());
    assert!(!rp.tokens().is_empty(), "it was tried");
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// Registration and discovery
// ---------------------------------------------------------------------------

/// The admin API sets, shows and removes the registration under its rules;
/// discovery announces support.
async fn the_registration_is_checked_and_shown_in_the_admin_api(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let ops = service(&t.db, "Ops", &["latchkey:admin"]).await;
    let token = cc_token(&server, &ops).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        let request = http.request(method, server.url(path)).bearer_auth(&token);
        match body {
            Value::Null => request,
            body => request.json(&body),
        }
        .send()
    };
    let created = call(
        reqwest::Method::POST,
        "/api/admin/clients",
        json!({
            "name": "Notes",
            "redirect_uris": ["https://notes.example/cb"],
            "backchannel_logout_uri": "https://notes.example/backchannel",
            "backchannel_logout_session_required": true,
        }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let client = &created["client"];
    assert_eq!(
        client["backchannel_logout_uri"],
        "https://notes.example/backchannel"
    );
    assert_eq!(client["backchannel_logout_session_required"], true);
    let path = format!("/api/admin/clients/{}", str_of(client, "client_id"));

    for bad in [
        "http://notes.example/bc",
        "https://notes.example/bc#frag",
        "notes.example/bc",
    ] {
        let res = call(
            reqwest::Method::PATCH,
            &path,
            json!({ "backchannel_logout_uri": bad }),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 422, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["field"], "backchannel_logout_uri", "{bad}: {body}");
    }
    let res = call(
        reqwest::Method::PATCH,
        &path,
        json!({ "backchannel_logout_uri": null }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let read: Value = call(reqwest::Method::GET, &path, Value::Null)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        read["backchannel_logout_uri"],
        Value::Null,
        "null removes it: {read}"
    );
    assert_eq!(
        read["backchannel_logout_session_required"], true,
        "untouched"
    );

    let discovery: Value = reqwest::get(server.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["backchannel_logout_supported"], true);
    assert_eq!(discovery["backchannel_logout_session_supported"], true);
    t.cleanup().await;
}

// ---------------------------------------------------------------------------
// A real `latchkey serve` process
// ---------------------------------------------------------------------------

/// A delivery written while no worker ran is made by a `latchkey serve`
/// process started afterwards on the same SQLite file: the worker is part of
/// `serve`, and the outbox survives any restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_serve_process_delivers_what_is_pending() {
    let t = TestDb::sqlite().await;
    let rp = Rp::start(Answer::Ok).await;
    // In-process Latchkey without a worker: the row waits.
    let server = TestServer::start(&t.db).await;
    let s = scene(&t, &server, &rp.uri()).await;
    s.end(&t, &server, Ending::DashboardSignOut).await;
    assert_eq!(rows(&t.db, &s.notes.client_id).await.len(), 1, "enqueued");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let site = common::process::empty_site(dir.path());
    let port = common::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .env("LATCHKEY_MASTER_KEY", common::master_key().to_base64url())
        .env("LATCHKEY_DATABASE_URL", &t.url)
        .env("LATCHKEY_LOG", "warn")
        .env("LATCHKEY_OUTBOX_RETRY_FIRST", "1s")
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--issuer",
            &base,
        ])
        .arg("--site-root")
        .arg(&site)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start latchkey serve");
    let _serve = KillOnDrop(child);
    // The worker may deliver before the port listens: the JWKS needs it.
    wait_until("latchkey serve answering", || async {
        let up = reqwest::get(format!("{base}/healthz")).await;
        up.is_ok_and(|r| r.status().is_success()).then_some(())
    })
    .await;
    let tokens = rp.wait_for(1).await;
    let claims = validate(
        &base,
        &format!("{base}/oauth/jwks"),
        &tokens[0],
        &s.notes.client_id,
    )
    .await;
    assert_eq!(str_of(&claims, "sub"), s.alice.user_id);
    assert_eq!(
        str_of(&claims, "sid"),
        s.sid,
        "a sign-out names the sign-in"
    );
    all_delivered(&t.db, &s.notes.client_id).await;
    t.cleanup().await;
}

/// A child process, killed when the test ends (or fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
