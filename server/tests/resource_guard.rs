//! The resource guard (`latchkey-resource`) against real Latchkey: an API on
//! a socket of its own, guarded like the crate's `notes_api` example
//! (`GET /notes` needs `notes:read`), next to Latchkey. A person's token works
//! there; then each way of revoking makes the API answer 401; a token not
//! meant for the API is refused; another instance's revocation, a restart of
//! the API, a stream that drops while a revocation happens and a Latchkey that
//! stops for good are all covered. Both backends.
//!
//! Every "refused" is polled for with a generous limit (no timing assertion),
//! and every test also keeps a token that must still work at the API: a guard
//! failing closed (refusing everything) would otherwise pass them all.

mod common;

use std::{
    future::Future,
    time::{Duration, Instant},
};

use app::domain::{
    clients::ClientKind,
    resource_servers,
    revocation::{RevokedBy, RevokedSets},
};
use axum::{extract::State, http::StatusCode as AxumStatus, routing::get, Json, Router};
use common::{
    flow::{
        self, call, cc_token, jwt_part, location, oauth_error, person, refresh, revoke_by_rfc7009,
        service, sign_out, str_of, tokens_for, App, Person,
    },
    process::{self, empty_site, process_db_url},
    TestDb, TestServer, PATIENCE,
};
use latchkey_resource::{AccessToken, Fallback, Guard, Health};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    my_apps_revoke_reaches_the_api,
    rfc7009_revoke_reaches_the_api,
    rp_initiated_logout_reaches_the_api,
    dashboard_sign_out_reaches_the_api,
    admin_revoke_of_the_client_reaches_the_api,
    disabling_the_user_reaches_the_api,
    refresh_token_reuse_reaches_the_api,
    tokens_not_for_the_api_or_without_its_scope_are_refused,
    a_restarted_api_still_refuses_a_revoked_token,
    a_revocation_while_the_stream_is_down_arrives_after_reconnecting,
    the_api_fails_closed_once_latchkey_is_gone_for_longer_than_the_bound,
    with_introspect_fallback_a_cut_stream_is_covered_by_introspection,
);

/// The audience the API's registration names (and its guard expects).
const AUDIENCE: &str = "https://notes.example";
const FEED_SCOPE: &str = "latchkey:revocations";
/// How long a test waits for something that must happen.
const LIMIT: Duration = Duration::from_secs(30);
const SYSTEM: RevokedBy<'static> = RevokedBy {
    actor: "system",
    reason: "test",
    actor_user_id: None,
    actor_client_id: None,
};

/// The guarded API on a real socket, as in `examples/notes_api.rs`.
struct NotesApi {
    base: String,
    guard: Guard,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for NotesApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl NotesApi {
    /// Starts the API for `issuer` with the credentials of `rs` and waits for
    /// the guard's first snapshot.
    async fn start(issuer: &str, rs: &App, stale_after: Duration, fallback: Fallback) -> NotesApi {
        let guard = Guard::builder(issuer)
            .audience(AUDIENCE)
            .client_credentials(&rs.client_id, rs.secret.as_deref().unwrap())
            .stale_after(stale_after)
            .fallback(fallback)
            .reconnect_backoff(Duration::from_millis(100), Duration::from_millis(500))
            .realm("notes")
            .build()
            .expect("a guard");
        let app =
            Router::new()
                .route(
                    "/notes",
                    get(|token: AccessToken| async move {
                        Json(json!({ "sub": token.sub, "notes": [] }))
                    })
                    .route_layer(guard.require_scopes(["notes:read"])),
                )
                .route("/healthz", get(healthz))
                .with_state(guard.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        within(guard.ready(), "the guard's first snapshot").await;
        NotesApi {
            base,
            guard,
            server,
        }
    }

    /// The guard with the defaults but a bound no test reaches by accident.
    async fn fail_closed(issuer: &str, rs: &App) -> NotesApi {
        Self::start(issuer, rs, Duration::from_secs(60), Fallback::FailClosed).await
    }

    /// `GET /notes` with `token`: the status and the `WWW-Authenticate` header.
    async fn get_notes(&self, token: &str) -> (StatusCode, String) {
        let res = reqwest::Client::new()
            .get(format!("{}/notes", self.base))
            .bearer_auth(token)
            .timeout(PATIENCE)
            .send()
            .await
            .expect("the API answers");
        let challenge = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (res.status(), challenge)
    }

    async fn status(&self, token: &str) -> StatusCode {
        self.get_notes(token).await.0
    }

    /// Asserts the token works here now.
    async fn assert_accepts(&self, token: &str, what: &str) {
        assert_eq!(self.status(token).await, StatusCode::OK, "{what}");
    }

    /// Polls until the API refuses the token with 401 `invalid_token`.
    async fn eventually_refuses(&self, token: &str, what: &str) {
        let started = Instant::now();
        loop {
            let (status, challenge) = self.get_notes(token).await;
            if status == StatusCode::UNAUTHORIZED {
                assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
                return;
            }
            assert_eq!(
                status,
                StatusCode::OK,
                "{what}: neither accepted nor refused"
            );
            assert!(
                started.elapsed() < LIMIT,
                "{what}: the API still accepts the token after {LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /healthz`: its status and body.
    async fn healthz(&self) -> (StatusCode, Value) {
        let res = reqwest::Client::new()
            .get(format!("{}/healthz", self.base))
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }
}

async fn healthz(State(guard): State<Guard>) -> (AxumStatus, Json<Health>) {
    let health = guard.health();
    let status = if health.is_healthy() {
        AxumStatus::OK
    } else {
        AxumStatus::SERVICE_UNAVAILABLE
    };
    (status, Json(health))
}

/// Awaits `fut` within [`LIMIT`] or fails the test naming `what`.
async fn within<T>(fut: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {LIMIT:?}"))
}

/// Registers `rs` as the resource server [`AUDIENCE`] serving `notes:read`
/// and `notes:write`.
async fn register(t: &TestDb, rs: &App) {
    resource_servers::set(
        &t.db,
        &rs.client_id,
        AUDIENCE,
        &["notes:read".to_owned(), "notes:write".to_owned()],
        &Default::default(),
    )
    .await
    .unwrap();
}

/// The API's client: allowed the feed, registered as the resource server.
async fn notes_api_client(t: &TestDb) -> App {
    let rs = service(&t.db, "Notes API", &[FEED_SCOPE]).await;
    register(t, &rs).await;
    rs
}

/// Latchkey with the API's registration, an app asking for `notes:read`,
/// alice's tokens for it, and a token of carol's through another app that
/// every revocation here must leave alone.
struct Scene {
    server: TestServer,
    rs: App,
    api: NotesApi,
    app: App,
    alice: Person,
    tokens: Value,
    control: String,
}

impl Scene {
    fn access(&self) -> &str {
        str_of(&self.tokens, "access_token")
    }

    /// The API refuses alice's token (polled), and still takes carol's.
    async fn assert_revoked(&self, how: &str) {
        self.api.eventually_refuses(self.access(), how).await;
        self.api
            .assert_accepts(&self.control, "another user's token of another app")
            .await;
    }
}

async fn scene(t: &TestDb) -> Scene {
    let server = TestServer::start(&t.db).await;
    let rs = notes_api_client(t).await;
    let app = flow::app(t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let other = flow::app(t, "Other notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(t, &server, "alice").await;
    let carol = person(t, &server, "carol").await;
    let tokens = tokens_for(&alice, &server, &app, "openid notes:read").await;
    let control = tokens_for(&carol, &server, &other, "notes:read").await;
    let access = str_of(&tokens, "access_token");
    assert_eq!(
        jwt_part(access, 1)["aud"],
        json!([AUDIENCE, server.base]),
        "the token names the API"
    );
    let api = NotesApi::fail_closed(&server.base, &rs).await;
    api.assert_accepts(access, "alice's token before any revocation")
        .await;
    let scene = Scene {
        server,
        rs,
        api,
        app,
        alice,
        tokens,
        control: str_of(&control, "access_token").to_owned(),
    };
    scene
        .api
        .assert_accepts(&scene.control, "carol's token")
        .await;
    scene
}

/// A client_credentials client allowed `latchkey:admin`, and its token.
async fn admin_token(t: &TestDb, server: &TestServer) -> String {
    let ops = service(&t.db, "Ops robot", &["latchkey:admin"]).await;
    cc_token(server, &ops).await
}

async fn my_apps_revoke_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    let gid = str_of(&jwt_part(s.access(), 1), "gid").to_owned();
    let res = call(&s.alice, &s.server, "revoke_app", &[("grant_id", &gid)]).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(location(&res), "/?revoked=Notes");
    s.assert_revoked("My apps revoke").await;
    t.cleanup().await;
}

async fn rfc7009_revoke_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    revoke_by_rfc7009(&s.server, &s.app, s.access()).await;
    s.assert_revoked("RFC 7009 revocation of the access token")
        .await;
    t.cleanup().await;
}

async fn rp_initiated_logout_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    let res = s
        .alice
        .http
        .get(s.server.url("/oauth/logout"))
        .query(&[
            ("id_token_hint", str_of(&s.tokens, "id_token")),
            ("post_logout_redirect_uri", &s.app.post_logout_uri),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), s.app.post_logout_uri);
    s.assert_revoked("RP-initiated logout").await;
    t.cleanup().await;
}

async fn dashboard_sign_out_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    let res = sign_out(&s.alice, &s.server).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    s.assert_revoked("dashboard sign-out").await;
    t.cleanup().await;
}

async fn admin_revoke_of_the_client_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    let admin = admin_token(&t, &s.server).await;
    let res = reqwest::Client::new()
        .post(
            s.server
                .url(&format!("/api/admin/clients/{}/revoke", s.app.client_id)),
        )
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    s.assert_revoked("an admin's revoke of the client").await;
    t.cleanup().await;
}

async fn disabling_the_user_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    let admin = admin_token(&t, &s.server).await;
    let res = reqwest::Client::new()
        .patch(
            s.server
                .url(&format!("/api/admin/users/{}", s.alice.user_id)),
        )
        .bearer_auth(&admin)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["disabled"], true);
    s.assert_revoked("disabling the user").await;
    t.cleanup().await;
}

async fn refresh_token_reuse_reaches_the_api(t: TestDb) {
    let s = scene(&t).await;
    let first_refresh = str_of(&s.tokens, "refresh_token");
    let res = refresh(&s.server, &s.app, first_refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let rotated_access = str_of(&rotated, "access_token");
    s.api
        .assert_accepts(rotated_access, "the rotated access token")
        .await;
    // The used refresh token presented again: reuse, the family is revoked.
    let (status, error) = oauth_error(refresh(&s.server, &s.app, first_refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    s.assert_revoked("refresh-token reuse (the first access token)")
        .await;
    s.api
        .eventually_refuses(
            rotated_access,
            "refresh-token reuse (the rotated access token)",
        )
        .await;
    t.cleanup().await;
}

async fn tokens_not_for_the_api_or_without_its_scope_are_refused(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let rs = notes_api_client(&t).await;
    let app = flow::app(
        &t,
        "Notes",
        ClientKind::Confidential,
        &["notes:read", "notes:write"],
    )
    .await;
    let alice = person(&t, &server, "alice").await;
    let api = NotesApi::fail_closed(&server.base, &rs).await;

    // Latchkey's own scopes only: the token names Latchkey, not the API.
    let openid = tokens_for(&alice, &server, &app, "openid").await;
    let access = str_of(&openid, "access_token");
    assert_eq!(jwt_part(access, 1)["aud"], json!(server.base));
    let (status, challenge) = api.get_notes(access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    // Meant for the API, but without notes:read: 403 insufficient_scope.
    let writer = tokens_for(&alice, &server, &app, "notes:write").await;
    let access = str_of(&writer, "access_token");
    assert_eq!(jwt_part(access, 1)["aud"], json!(AUDIENCE));
    let (status, challenge) = api.get_notes(access).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("notes:read"),
        "{challenge}"
    );

    // And one with it works (the refusals above were not the guard failing closed).
    let reader = tokens_for(&alice, &server, &app, "notes:read").await;
    api.assert_accepts(str_of(&reader, "access_token"), "a notes:read token")
        .await;
    t.cleanup().await;
}

async fn a_restarted_api_still_refuses_a_revoked_token(t: TestDb) {
    let s = scene(&t).await;
    revoke_by_rfc7009(&s.server, &s.app, s.access()).await;
    s.assert_revoked("before the restart").await;
    // The API goes away and comes back with a new guard (an empty set).
    drop(s.api);
    let again = NotesApi::fail_closed(&s.server.base, &s.rs).await;
    assert!(again.guard.health().fresh);
    let (status, _) = again.get_notes(str_of(&s.tokens, "access_token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "refused from the start");
    again
        .assert_accepts(&s.control, "a live token after the restart")
        .await;
    t.cleanup().await;
}

/// A client_credentials client allowed `notes:read`: its tokens name the API.
async fn reader_service(t: &TestDb, name: &str) -> App {
    service(&t.db, name, &["notes:read"]).await
}

async fn a_revocation_while_the_stream_is_down_arrives_after_reconnecting(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let site = empty_site(dir.path());
    let db_url = process_db_url(&t);
    let rs = notes_api_client(&t).await;
    let job = reader_service(&t, "Nightly job").await;
    let other = reader_service(&t, "Other job").await;

    let latchkey = process::start(dir.path(), &db_url, &site, None).await;
    let port = latchkey.port;
    let token = cc_token(&latchkey, &job).await;
    let control = cc_token(&latchkey, &other).await;
    assert_eq!(jwt_part(&token, 1)["aud"], json!(AUDIENCE));
    // A bound long enough that the outage below never makes the guard stale.
    let api = NotesApi::fail_closed(&latchkey.base, &rs).await;
    api.assert_accepts(&token, "before the outage").await;
    let before = api.guard.health().last_position;

    // Latchkey stops; the guard sees its stream end.
    drop(latchkey);
    let started = Instant::now();
    while api.guard.health().connected {
        assert!(
            started.elapsed() < LIMIT,
            "the guard never saw the stream end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The revocation happens while nobody streams it.
    let gid = str_of(&jwt_part(&token, 1), "gid").to_owned();
    let sets = RevokedSets::load(&t.db).await.unwrap();
    assert!(sets.revoke_grant(&t.db, &gid, &SYSTEM).await.unwrap());
    assert_eq!(api.status(&token).await, StatusCode::OK, "not heard of yet");

    // Latchkey back where it was: the guard reconnects and catches up.
    let latchkey = process::start_on(port, dir.path(), &db_url, &site, None).await;
    api.eventually_refuses(&token, "the revocation made during the outage")
        .await;
    let health = api.guard.health();
    assert!(health.fresh, "{health:?}");
    assert!(health.last_position > before, "{health:?}");
    api.assert_accepts(&control, "a live token after reconnecting")
        .await;
    drop(latchkey);
    t.cleanup().await;
}

async fn the_api_fails_closed_once_latchkey_is_gone_for_longer_than_the_bound(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let site = empty_site(dir.path());
    let rs = notes_api_client(&t).await;
    let job = reader_service(&t, "Nightly job").await;
    let latchkey = process::start(dir.path(), &process_db_url(&t), &site, None).await;
    let token = cc_token(&latchkey, &job).await;
    let api = NotesApi::start(
        &latchkey.base,
        &rs,
        Duration::from_secs(3),
        Fallback::FailClosed,
    )
    .await;
    api.assert_accepts(&token, "while Latchkey is up").await;
    assert_eq!(api.healthz().await.0, StatusCode::OK);

    drop(latchkey);
    api.eventually_refuses(&token, "a valid token once the set is stale")
        .await;
    let (status, health) = api.healthz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["fresh"], false);
    assert!(health["stale_since"].as_i64().is_some(), "{health}");
    t.cleanup().await;
}

/// Two Latchkey instances on one PostgreSQL database (SQLite has one writer
/// process per file: `instances.rs`): the API follows instance B, the person
/// signs in, gets tokens and revokes them at instance A, and the API refuses
/// the token — the entry reached B through NOTIFY and B's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_revocation_at_one_instance_reaches_an_api_following_another() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    // One issuer for both: B's address (the API discovers everything at B).
    let b = TestServer::start(&t.db).await;
    let a = TestServer::start_with_issuer(&t.db, Some(&b.base)).await;
    let rs = notes_api_client(&t).await;
    let app = flow::app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &a, "alice").await;
    let api = NotesApi::fail_closed(&b.base, &rs).await;

    // B follows A's revocations before the one that counts: a first one
    // reaches the API (no sleep standing in for "B's listener is subscribed").
    let first = tokens_for(&alice, &a, &app, "notes:read").await;
    let first = str_of(&first, "access_token");
    api.assert_accepts(first, "a token from A").await;
    revoke_by_rfc7009(&a, &app, first).await;
    api.eventually_refuses(first, "a first revocation at A")
        .await;

    let tokens = tokens_for(&alice, &a, &app, "openid notes:read").await;
    let access = str_of(&tokens, "access_token");
    assert_eq!(jwt_part(access, 1)["iss"], json!(b.base));
    api.assert_accepts(access, "alice's token").await;
    let gid = str_of(&jwt_part(access, 1), "gid").to_owned();
    let res = call(&alice, &a, "revoke_app", &[("grant_id", &gid)]).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    api.eventually_refuses(access, "My apps revoke at A, API following B")
        .await;
    let control = reader_service(&t, "Other job").await;
    let control = cc_token(&a, &control).await;
    api.assert_accepts(&control, "a live token").await;
    t.cleanup().await;
}

/// A reverse proxy in front of Latchkey that can cut the revocation feed
/// alone (`/oauth/revocations…`: open streams end, new requests get 503)
/// while discovery, JWKS, tokens and introspection still pass: the outage a
/// [`Fallback::Introspect`] guard is for.
struct FeedCutter {
    base: String,
    cut: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FeedCutter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FeedCutter {
    /// Binds the proxy's address (Latchkey's issuer must name it before it starts).
    async fn bind() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        (listener, base)
    }

    fn start(listener: tokio::net::TcpListener, base: String, upstream: String) -> FeedCutter {
        let (cut, _) = tokio::sync::watch::channel(false);
        let state = (upstream, cut.clone(), reqwest::Client::new());
        let app = Router::new().fallback(proxy).with_state(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FeedCutter { base, cut, server }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

type ProxyState = (String, tokio::sync::watch::Sender<bool>, reqwest::Client);

async fn proxy(
    State((upstream, cut, http)): State<ProxyState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures_util::StreamExt;

    let feed = request.uri().path().starts_with("/oauth/revocations");
    if feed && *cut.borrow() {
        return AxumStatus::SERVICE_UNAVAILABLE.into_response();
    }
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers.clone();
    headers.remove(header::HOST);
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let Ok(res) = http
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
    else {
        return AxumStatus::BAD_GATEWAY.into_response();
    };
    let mut out = axum::response::Response::builder().status(res.status());
    for (name, value) in res.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            out = out.header(name, value);
        }
    }
    let mut cut_now = cut.subscribe();
    let ended = async move {
        let _ = cut_now.wait_for(|cut| *cut).await;
    };
    let stream = res.bytes_stream();
    let body = if feed {
        axum::body::Body::from_stream(stream.take_until(ended))
    } else {
        axum::body::Body::from_stream(stream)
    };
    out.body(body).unwrap()
}

async fn with_introspect_fallback_a_cut_stream_is_covered_by_introspection(t: TestDb) {
    let (listener, proxy_base) = FeedCutter::bind().await;
    let server = TestServer::start_with_issuer(&t.db, Some(&proxy_base)).await;
    let cutter = FeedCutter::start(listener, proxy_base.clone(), server.base.clone());
    let rs = notes_api_client(&t).await;
    let job = reader_service(&t, "Nightly job").await;
    let other = reader_service(&t, "Other job").await;
    let token = cc_token(&server, &job).await;
    let control = cc_token(&server, &other).await;
    let api = NotesApi::start(
        &cutter.base,
        &rs,
        Duration::from_secs(3),
        Fallback::Introspect,
    )
    .await;
    api.assert_accepts(&token, "with the feed up").await;

    // The feed alone goes away: after the bound the guard is stale...
    cutter.set_cut(true);
    let started = Instant::now();
    loop {
        let (status, health) = api.healthz().await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(health["fresh"], false);
            assert_eq!(health["fallback"], "introspect");
            break;
        }
        assert!(started.elapsed() < LIMIT, "the guard never went stale");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and introspection answers for it: a live token still works...
    api.assert_accepts(&token, "a live token while stale").await;
    // ...and one revoked while the stream is cut is refused all the same.
    revoke_by_rfc7009(&server, &job, &token).await;
    api.eventually_refuses(&token, "revoked while the stream is cut")
        .await;
    assert!(
        !api.guard.health().fresh,
        "refused by introspection, not the feed"
    );
    api.assert_accepts(&control, "another live token while stale")
        .await;

    // The feed back: fresh again, and the revocation is in the set.
    cutter.set_cut(false);
    let started = Instant::now();
    while !api.guard.health().fresh {
        assert!(started.elapsed() < LIMIT, "the guard never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.status(&token).await, StatusCode::UNAUTHORIZED);
    assert!(api.guard.health().entries >= 1);
    t.cleanup().await;
}
