//! Shared test support: a fresh database on either backend, a real server on a
//! socket, and the macro that runs one test body against SQLite and PostgreSQL.
#![allow(dead_code)]

pub mod endings;
pub mod flow;
pub mod process;

use std::{net::SocketAddr, sync::Arc};

use app::domain::{
    keys::{KeyRing, MasterKey},
    revocation::RevokedSets,
    web_session::WebSessionStore,
    Db,
};
use latchkey::{
    background::{Background, Work},
    config::ServeConfig,
    rate_limit::Config as RateLimits,
};

/// Default PostgreSQL for tests (this machine kind runs one with trust auth).
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Test schemas older than this are dropped when a new test starts (left by crashed runs).
const STALE_SCHEMA_SECS: u64 = 3600;

/// A migrated, empty database that exists for one test.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl TestDb {
    /// A new SQLite file in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/latchkey.db", dir.path().display());
        let db = Db::connect(&url).await.expect("open sqlite");
        db.migrate().await.expect("migrate sqlite");
        TestDb {
            db,
            url,
            _dir: Some(dir),
            schema: None,
        }
    }

    /// A new schema in the test PostgreSQL. `None` (with a notice) when no
    /// PostgreSQL answers outside CI; with `CI=true` a missing PostgreSQL fails the test.
    pub async fn postgres() -> Option<TestDb> {
        let url =
            std::env::var("LATCHKEY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let schema = format!("lk_test_{now}_{:016x}", rand::random::<u64>());
        let db = match Db::connect_postgres_schema(&url, &schema).await {
            Ok(db) => db,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("NOTICE: PostgreSQL at {url} is not available ({e}); skipping this PostgreSQL test");
                return None;
            }
            Err(e) => panic!("CI=true but PostgreSQL at {url} is not available: {e}"),
        };
        drop_stale_schemas(&db, now).await;
        db.migrate().await.expect("migrate postgres");
        Some(TestDb {
            db,
            url,
            _dir: None,
            schema: Some(schema),
        })
    }

    /// The PostgreSQL schema of this test, if on PostgreSQL.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Drops the PostgreSQL schema (tests call this at their end; crashed runs are swept later).
    pub async fn cleanup(self) {
        if let (Db::Postgres(pool), Some(schema)) = (&self.db, &self.schema) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(pool)
                .await;
        }
        self.db.close().await;
    }
}

async fn drop_stale_schemas(db: &Db, now: u64) {
    let Db::Postgres(pool) = db else { return };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE 'lk_test_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    for name in names {
        let created: Option<u64> = name.split('_').nth(2).and_then(|t| t.parse().ok());
        if created.is_some_and(|t| t + STALE_SCHEMA_SECS < now) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .execute(pool)
                .await;
        }
    }
}

/// Generates `mod sqlite` and `mod postgres`, each with one `#[tokio::test]`
/// per named async fn taking a `TestDb`: one body, both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::common::TestDb::postgres().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

/// The master key of every in-process server: one per process is enough
/// (keys are created once per database). A real `latchkey serve` on the same
/// database needs it as `LATCHKEY_MASTER_KEY`.
pub fn master_key() -> &'static MasterKey {
    static MASTER: std::sync::OnceLock<MasterKey> = std::sync::OnceLock::new();
    MASTER.get_or_init(MasterKey::generate)
}

/// A Latchkey server on a real socket (127.0.0.1, a free port).
pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub keys: KeyRing,
    pub revoked: RevokedSets,
    /// The server's usage counts: `flush` writes them at once.
    pub usage: app::domain::usage::Usage,
    handle: tokio::task::JoinHandle<()>,
    /// Stops with the server.
    _background: Background,
}

/// How a [`TestServer`] differs from the default one.
pub struct Options {
    /// The issuer; the server's own address when `None`.
    pub issuer: Option<String>,
    /// Routes added under the real middleware.
    pub extra: axum::Router<latchkey::state::AppState>,
    /// Request limits (off by default).
    pub rate_limits: RateLimits,
    /// Deliver the outbox with this retry policy.
    pub outbox: Option<app::domain::backchannel::RetryPolicy>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            issuer: None,
            extra: axum::Router::new(),
            rate_limits: RateLimits::off(),
            outbox: None,
        }
    }
}

impl TestServer {
    pub async fn start(db: &Db) -> TestServer {
        Self::start_with(db, Options::default()).await
    }

    /// Starts a server; `issuer` defaults to the server's own address.
    pub async fn start_with_issuer(db: &Db, issuer: Option<&str>) -> TestServer {
        let issuer = issuer.map(str::to_owned);
        Self::start_with(
            db,
            Options {
                issuer,
                ..Default::default()
            },
        )
        .await
    }

    /// Starts a server with request limits (every other server has none).
    pub async fn start_with_rate_limits(db: &Db, rate_limits: RateLimits) -> TestServer {
        Self::start_with(
            db,
            Options {
                rate_limits,
                ..Default::default()
            },
        )
        .await
    }

    /// Starts a server with `extra` routes under the real middleware (a route
    /// that panics, say).
    pub async fn start_with_routes(
        db: &Db,
        extra: axum::Router<latchkey::state::AppState>,
    ) -> TestServer {
        Self::start_with(
            db,
            Options {
                extra,
                ..Default::default()
            },
        )
        .await
    }

    /// Starts a server as `options` say, its background work started by
    /// `background::Background::start` as `latchkey serve` starts it.
    pub async fn start_with(db: &Db, options: Options) -> TestServer {
        let Options {
            issuer,
            extra,
            rate_limits,
            outbox,
        } = options;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let config = ServeConfig {
            addr,
            ack_bound: app::domain::instances::ACK_BOUND,
            issuer: issuer.unwrap_or_else(|| base.clone()),
            site_root: "target/site".into(),
            throttle: Default::default(),
            trusted_proxies: Default::default(),
            rate_limits,
            metrics_addr: None,
        };
        let store = WebSessionStore::new(db).await.expect("session store");
        // Not a registered instance: nobody waits for it, and it does not
        // fail closed (the real processes of `process.rs` do both).
        let change = app::domain::instances::change_generation(db)
            .await
            .expect("change counter");
        let keys = KeyRing::load_or_create(db, master_key())
            .await
            .expect("signing keys");
        // Loaded from the database, as at a real start: a restart sees every revocation.
        let revoked = RevokedSets::load(db).await.expect("revoked sets");
        let usage = app::domain::usage::Usage::new(db.clone());
        let parts = latchkey::state::Parts {
            db: db.clone(),
            keys: keys.clone(),
            revoked: revoked.clone(),
            config,
            session_store: store,
            usage: usage.clone(),
            upstreams: latchkey::upstream::Upstreams::new(master_key()),
        };
        // What `latchkey serve` runs but retention (the retention tests run
        // it themselves) and, unless asked for, the outbox (the tests that
        // deliver choose its retry policy).
        let background = Background::start(
            &parts,
            Work {
                since_change: change,
                master_key: master_key().clone(),
                outbox,
                retention: None,
            },
        );
        let app = latchkey::http::router_with(parts, extra);
        let handle = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        TestServer {
            base,
            addr,
            keys,
            revoked,
            usage,
            handle,
            _background: background,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

/// Anything Latchkey answers at: an in-process [`TestServer`] or a real
/// `latchkey serve` process (`instances.rs`).
pub trait Site {
    fn url(&self, path: &str) -> String;
}

impl Site for TestServer {
    fn url(&self, path: &str) -> String {
        TestServer::url(self, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A browser-like HTTP client: keeps cookies, does not follow redirects (tests look at them).
pub fn browser() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

/// How long a test waits for an answer that must come: a request that hangs
/// fails the test instead of hanging it.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// GET within [`PATIENCE`]: the status and the body; no answer fails the test.
pub async fn get_or_fail(http: &reqwest::Client, url: &str) -> (reqwest::StatusCode, String) {
    let res = http
        .get(url)
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: no answer: {e}"));
    (res.status(), res.text().await.unwrap())
}

/// Counts rows of a table (test inspection only; the name is a literal in tests).
pub async fn count(db: &Db, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
    }
}

/// Runs one statement (test set-up by hand, e.g. disabling a user).
pub async fn exec(db: &Db, statement: &str) {
    match db {
        Db::Sqlite(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(|_| ()),
    }
    .unwrap();
}

/// Waits (up to [`PATIENCE`]) until [`text_value`] reads `expected`: for
/// what is written shortly after the answer, such as usage counts
/// (`usage::FLUSH_EVERY`). Fails the test with `what` otherwise.
pub async fn eventually_text(db: &Db, query: &str, param: &str, expected: &str, what: &str) {
    let waiting = std::time::Instant::now();
    loop {
        let now_is = text_value(db, query, param).await;
        if now_is.as_deref() == Some(expected) {
            return;
        }
        assert!(
            waiting.elapsed() < PATIENCE,
            "{what}: {now_is:?}, expected {expected:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Reads one optional text value with one bound parameter (test inspection only).
pub async fn text_value(db: &Db, query: &str, param: &str) -> Option<String> {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(query)
            .bind(param)
            .fetch_one(pool)
            .await
            .unwrap(),
        Db::Postgres(pool) => sqlx::query_scalar(query)
            .bind(param)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}
