//! A fake Latchkey for the guard's tests: discovery, JWKS (Ed25519 keys made
//! here), the client_credentials token endpoint, introspection, and the
//! revocation feed (snapshot and a controllable SSE stream), over real HTTP on
//! 127.0.0.1:0. Everything it was asked is recorded for the tests to assert.

#![allow(dead_code)] // each test file uses a part

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Form, Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_resource::{AccessToken, Guard, GuardBuilder};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

/// This API's client at the fake issuer. The secret holds characters that
/// `client_secret_basic` must form-urlencode (RFC 6749 §2.3.1).
pub const CLIENT_ID: &str = "notes-api";
pub const CLIENT_SECRET: &str = "s3cret:with space+plus";
/// The audience the guards expect.
pub const AUDIENCE: &str = "https://notes.test";
/// The realm of the test APIs.
pub const REALM: &str = "notes-test";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An Ed25519 signing key with its `kid`.
pub struct SigningKey {
    pub kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl SigningKey {
    fn generate(kid: &str) -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        SigningKey {
            kid: kid.to_owned(),
            pkcs8: pkcs8.as_ref().to_vec(),
            public: pair.public_key().as_ref().to_vec(),
        }
    }

    fn jwk(&self) -> Value {
        json!({
            "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(&self.public),
            "kid": self.kid, "alg": "EdDSA", "use": "sig",
        })
    }
}

/// One revocation log entry, as the feed serves it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub position: i64,
    pub kind: &'static str,
    pub id: String,
    pub until: i64,
}

impl Entry {
    fn json(&self) -> Value {
        json!({"position": self.position, "kind": self.kind, "id": self.id, "until": self.until})
    }
}

/// What the fake holds and what it was asked.
#[derive(Default)]
pub struct FakeState {
    pub keys: Vec<SigningKey>,
    pub log: Vec<Entry>,
    /// Snapshot and stream answer 503.
    pub feed_down: bool,
    /// Introspection answers 500.
    pub introspection_down: bool,
    /// Feed tokens the feed endpoints accept, until when.
    pub feed_tokens: HashMap<String, tokio::time::Instant>,
    /// `expires_in` of the feed tokens it issues (600 s unless set).
    pub feed_token_lifetime: Option<Duration>,
    /// The feed token of every stream request served.
    pub stream_tokens: Vec<String>,
    /// Access tokens introspection calls active.
    pub active: HashSet<String>,
    /// An entry committed right after the next snapshot answer went out.
    pub after_next_snapshot: Option<(&'static str, String, i64)>,
    pub jwks_fetches: usize,
    pub token_requests: usize,
    /// `after` of every snapshot request served (not those answered 503).
    pub snapshot_afters: Vec<i64>,
    /// `Last-Event-ID` of every stream request served.
    pub stream_last_event_ids: Vec<Option<String>>,
    /// (Authorization header, token) of every introspection request.
    pub introspections: Vec<(String, String)>,
    /// Feed requests refused with 401.
    pub feed_unauthorized: usize,
}

struct Shared {
    url: String,
    state: Mutex<FakeState>,
    live: broadcast::Sender<Entry>,
    cut: watch::Sender<u64>,
    keep_alive: Duration,
}

/// The fake issuer; it serves until the test ends.
#[derive(Clone)]
pub struct FakeIssuer {
    shared: Arc<Shared>,
}

impl FakeIssuer {
    /// Starts it with one signing key and keep-alives every 100 ms.
    pub async fn start() -> FakeIssuer {
        Self::start_with_keep_alive(Duration::from_millis(100)).await
    }

    /// Starts it with streams that send a keep-alive comment after
    /// `keep_alive` of silence.
    pub async fn start_with_keep_alive(keep_alive: Duration) -> FakeIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = FakeState {
            keys: vec![SigningKey::generate("key-1")],
            ..FakeState::default()
        };
        let fake = FakeIssuer {
            shared: Arc::new(Shared {
                url: format!("http://{addr}"),
                state: Mutex::new(state),
                live: broadcast::channel(1024).0,
                cut: watch::Sender::new(0),
                keep_alive,
            }),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/oauth/jwks", get(jwks))
            .route("/oauth/token", post(token))
            .route("/oauth/introspect", post(introspect))
            .route("/oauth/revocations", get(snapshot))
            .route("/oauth/revocations/stream", get(stream))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn url(&self) -> &str {
        &self.shared.url
    }

    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.shared.state.lock().unwrap()
    }

    /// A builder for a guard of this issuer with test-sized bounds: stale
    /// after 5 s, no leeway, backoff 20–100 ms.
    pub fn guard_builder(&self) -> GuardBuilder {
        Guard::builder(self.url())
            .audience(AUDIENCE)
            .client_credentials(CLIENT_ID, CLIENT_SECRET)
            .realm(REALM)
            .stale_after(Duration::from_secs(5))
            .leeway(Duration::ZERO)
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
    }

    /// A guard with [`guard_builder`](Self::guard_builder)'s settings, ready
    /// and streaming.
    pub async fn ready_guard(&self) -> Guard {
        Self::start_guard(self.guard_builder()).await
    }

    /// The guard `builder` makes, ready and streaming.
    pub async fn start_guard(builder: GuardBuilder) -> Guard {
        let guard = builder.build().unwrap();
        within(guard.ready(), "the guard's first snapshot").await;
        eventually("the guard's stream opens", || async {
            guard.health().connected
        })
        .await;
        guard
    }

    /// Claims of a valid token for AUDIENCE with scope `notes:read`, and
    /// fresh `jti`, `gid` and `fid`.
    pub fn claims(&self) -> Value {
        let n: u64 = rand::random();
        json!({
            "iss": self.url(), "sub": "alice", "aud": AUDIENCE, "client_id": "web-app",
            "iat": now(), "exp": now() + 600, "jti": format!("jti-{n}"),
            "scope": "openid notes:read", "gid": format!("gid-{n}"),
            "fid": format!("fid-{n}"), "sid": format!("sid-{n}"),
        })
    }

    /// Signs `claims` with the first key, `typ: at+jwt`.
    pub fn sign(&self, claims: &Value) -> String {
        let kid = self.state().keys[0].kid.clone();
        self.sign_with(&kid, Some("at+jwt"), claims)
    }

    /// Signs `claims` EdDSA with the key `kid` (which must exist here).
    pub fn sign_with(&self, kid: &str, typ: Option<&str>, claims: &Value) -> String {
        let state = self.state();
        let key = state.keys.iter().find(|k| k.kid == kid).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.pkcs8)).unwrap()
    }

    /// The first key's public bytes (what an HMAC-confusion attacker knows).
    pub fn public_key(&self) -> Vec<u8> {
        self.state().keys[0].public.clone()
    }

    /// A new signing key, published in the JWKS.
    pub fn add_key(&self, kid: &str) {
        self.state().keys.push(SigningKey::generate(kid));
    }

    /// Commits an entry and streams it to every open stream; its position.
    pub fn revoke(&self, kind: &'static str, id: &str, until: i64) -> i64 {
        let mut state = self.state();
        commit(&self.shared, &mut state, kind, id.to_owned(), until)
    }

    /// Ends every open stream (the connections close; the guard reconnects).
    pub fn cut_streams(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Makes the feed answer 503 (and cuts open streams when going down).
    pub fn set_feed_down(&self, down: bool) {
        self.state().feed_down = down;
        if down {
            self.cut_streams();
        }
    }
}

/// Appends to the log and broadcasts, under the state lock: a stream
/// subscribing under the same lock misses nothing and sees nothing twice.
fn commit(
    shared: &Shared,
    state: &mut FakeState,
    kind: &'static str,
    id: String,
    until: i64,
) -> i64 {
    let position = state.log.last().map_or(0, |e| e.position) + 1;
    let entry = Entry {
        position,
        kind,
        id,
        until,
    };
    state.log.push(entry.clone());
    let _ = shared.live.send(entry);
    position
}

async fn discovery(State(fake): State<FakeIssuer>) -> Json<Value> {
    let url = fake.url();
    Json(json!({
        "issuer": url,
        "jwks_uri": format!("{url}/oauth/jwks"),
        "token_endpoint": format!("{url}/oauth/token"),
        "introspection_endpoint": format!("{url}/oauth/introspect"),
        "revocation_feed_endpoint": format!("{url}/oauth/revocations"),
        "revocation_feed_stream_endpoint": format!("{url}/oauth/revocations/stream"),
    }))
}

async fn jwks(State(fake): State<FakeIssuer>) -> Json<Value> {
    let mut state = fake.state();
    state.jwks_fetches += 1;
    let keys: Vec<Value> = state.keys.iter().map(SigningKey::jwk).collect();
    Json(json!({ "keys": keys }))
}

/// The `Authorization` value `client_secret_basic` must send: id and secret
/// form-urlencoded, then Basic (RFC 6749 §2.3.1).
pub fn expected_basic() -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(CLIENT_ID), encode(CLIENT_SECRET));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn token(
    State(fake): State<FakeIssuer>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut state = fake.state();
    state.token_requests += 1;
    if authorization(&headers) != expected_basic() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let wanted = [
        ("grant_type".to_owned(), "client_credentials".to_owned()),
        ("scope".to_owned(), "latchkey:revocations".to_owned()),
    ];
    if form != wanted {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    let token = format!("feed-token-{}", state.token_requests);
    let lifetime = state
        .feed_token_lifetime
        .unwrap_or(Duration::from_secs(600));
    state
        .feed_tokens
        .insert(token.clone(), tokio::time::Instant::now() + lifetime);
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": lifetime.as_secs()}))
        .into_response()
}

async fn introspect(
    State(fake): State<FakeIssuer>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut state = fake.state();
    let token = form
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    state
        .introspections
        .push((authorization(&headers), token.clone()));
    if state.introspection_down {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if authorization(&headers) != expected_basic() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    Json(json!({ "active": state.active.contains(&token) })).into_response()
}

/// 503 while down, 401 without a live feed token; else the token and when
/// it expires.
fn live_feed_token(
    state: &mut FakeState,
    headers: &HeaderMap,
) -> Result<(String, tokio::time::Instant), StatusCode> {
    if state.feed_down {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let presented = authorization(headers);
    let live = presented.strip_prefix("Bearer ").and_then(|t| {
        let expires = *state.feed_tokens.get(t)?;
        (expires > tokio::time::Instant::now()).then(|| (t.to_owned(), expires))
    });
    live.ok_or_else(|| {
        state.feed_unauthorized += 1;
        StatusCode::UNAUTHORIZED
    })
}

/// The answer to a refused feed request.
fn feed_refusal(status: StatusCode) -> Response {
    let challenge = "Bearer realm=\"latchkey\", error=\"invalid_token\"";
    (status, [(header::WWW_AUTHENTICATE, challenge)]).into_response()
}

#[derive(Deserialize)]
struct Page {
    after: Option<i64>,
    limit: Option<usize>,
}

async fn snapshot(
    State(fake): State<FakeIssuer>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Response {
    let mut state = fake.state();
    if let Err(status) = live_feed_token(&mut state, &headers) {
        return feed_refusal(status);
    }
    let after = page.after.unwrap_or(0);
    let limit = page.limit.unwrap_or(1000);
    state.snapshot_afters.push(after);
    let now = now();
    let live: Vec<&Entry> = state
        .log
        .iter()
        .filter(|e| e.position > after && e.until > now)
        .collect();
    let more = live.len() > limit;
    let entries: Vec<Value> = live.iter().take(limit).map(|e| e.json()).collect();
    let next = live[..live.len().min(limit)]
        .last()
        .map_or(after, |e| e.position);
    if let Some((kind, id, until)) = state.after_next_snapshot.take() {
        commit(&fake.shared, &mut state, kind, id, until);
    }
    Json(json!({"entries": entries, "next": next, "more": more})).into_response()
}

async fn stream(State(fake): State<FakeIssuer>, headers: HeaderMap) -> Response {
    let mut state = fake.state();
    let (token, expires) = match live_feed_token(&mut state, &headers) {
        Ok(live) => live,
        Err(status) => return feed_refusal(status),
    };
    state.stream_tokens.push(token);
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.stream_last_event_ids.push(last_event_id.clone());
    let after: i64 = last_event_id.and_then(|id| id.parse().ok()).unwrap_or(0);
    let now = now();
    let replay: Vec<Entry> = state
        .log
        .iter()
        .filter(|e| e.position > after && e.until > now)
        .cloned()
        .collect();
    let mut live = fake.shared.live.subscribe();
    let mut cut = fake.shared.cut.subscribe();
    drop(state);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Entry>(64);
    tokio::spawn(async move {
        for entry in replay {
            if tx.send(entry).await.is_err() {
                return;
            }
        }
        loop {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(entry) => if tx.send(entry).await.is_err() { return },
                    Err(_) => return,
                },
                _ = cut.changed() => return,
                // Latchkey ends a stream when its token expires.
                _ = tokio::time::sleep_until(expires) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let events = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(|entry| {
        Ok::<_, Infallible>(
            Event::default()
                .event("revocation")
                .id(entry.position.to_string())
                .data(entry.json().to_string()),
        )
    });
    Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(fake.shared.keep_alive)
                .text("keep-alive"),
        )
        .into_response()
}

/// A test API behind `guard`: `GET /notes` needs `notes:read`, `GET /me` a
/// valid token only; both answer the token's `sub`. Its base URL.
pub async fn serve_api(guard: &Guard) -> String {
    async fn sub(token: AccessToken) -> Json<Value> {
        Json(json!({"sub": token.sub, "introspected": token.checked_by_introspection()}))
    }
    let app = Router::new()
        .route(
            "/notes",
            get(sub).route_layer(guard.require_scopes(["notes:read"])),
        )
        .route("/me", get(sub).route_layer(guard.layer()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// An answer of the test API: status, `WWW-Authenticate`, JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub challenge: Option<String>,
    pub body: Value,
}

impl Answer {
    /// The challenge's `error_description`.
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }
}

/// `GET url` with `Authorization: Bearer token` (none when `token` is None).
pub async fn call(url: &str, token: Option<&str>) -> Answer {
    call_with_authorization(url, token.map(|t| format!("Bearer {t}")).as_deref()).await
}

/// `GET url` with this `Authorization` header (none when None).
pub async fn call_with_authorization(url: &str, authorization: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        body,
    }
}

/// Polls `check` every 20 ms until it returns true; panics after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting (20 s) for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `future`, or a panic naming `what` after 20 s.
pub async fn within<T>(future: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting (20 s) for: {what}"))
}
