//! The database: one pool of either backend, connecting, migrating.
//!
//! Every query in Latchkey is written once, in SQL both SQLite and PostgreSQL
//! accept (`$1` placeholders work on both), and run through [`on_db!`], which
//! compiles the same body against whichever pool is configured. Where a dialect
//! difference forces two statements, they sit side by side in the function that
//! needs them, matched on [`Db`].

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Connection, PgPool, SqlitePool,
};

/// Runs `$body` with `$pool` bound to the concrete pool (`&SqlitePool` or `&PgPool`).
/// The body runs inside its own `async` block, so a `?` in it stops the body
/// (and rolls back a transaction it opened), not the calling function.
///
/// ```ignore
/// let n: i64 = on_db!(db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await)?;
/// ```
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::domain::store::Db::Sqlite($pool) => async { $body }.await,
            $crate::domain::store::Db::Postgres($pool) => async { $body }.await,
        }
    };
}
pub use on_db;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A connection pool to the configured backend.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which backend a database URL names; checked before anything is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Reads the backend from a URL's scheme, or says what is wrong with it.
    pub fn of_url(url: &str) -> Result<Backend, String> {
        if url.starts_with("sqlite:") {
            let path = sqlite_path(url);
            if path.is_empty() {
                return Err(
                    "the SQLite URL names no file (expected sqlite://path/to/file.db)".into(),
                );
            }
            SqliteConnectOptions::from_str(url)
                .map_err(|e| format!("not a valid SQLite URL: {e}"))?;
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            PgConnectOptions::from_str(url)
                .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            Ok(Backend::Postgres)
        } else {
            Err("must start with sqlite: or postgres://".into())
        }
    }
}

/// The file part of a `sqlite:` URL (`sqlite://data/x.db?mode=rwc` → `data/x.db`).
pub fn sqlite_path(url: &str) -> &str {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.split('?').next().unwrap_or("")
}

impl Db {
    /// Opens a pool. SQLite: the file (and its folder) is created when missing,
    /// WAL journal, foreign keys on, a busy timeout so writers queue instead of failing.
    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        match Backend::of_url(url).map_err(|e| sqlx::Error::Configuration(e.into()))? {
            Backend::Sqlite => {
                let path = sqlite_path(url);
                if path != ":memory:" {
                    if let Some(dir) = std::path::Path::new(path).parent() {
                        if !dir.as_os_str().is_empty() {
                            std::fs::create_dir_all(dir)?;
                        }
                    }
                }
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    // A file does not hang up: no ping (a round trip to the
                    // connection's worker thread) before every use.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?;
                Ok(Db::Sqlite(pool))
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url)?;
                let pool = pg_pool_options().connect_with(options).await?;
                Ok(Db::Postgres(pool))
            }
        }
    }

    /// Connects to PostgreSQL with every table in `schema` (created when missing):
    /// how tests give each run a namespace of its own.
    pub async fn connect_postgres_schema(url: &str, schema: &str) -> Result<Db, sqlx::Error> {
        let options = PgConnectOptions::from_str(url)?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::query(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .execute(&admin)
        .await?;
        admin.close().await;
        let pool = pg_pool_options()
            .connect_with(options.options([("search_path", schema)]))
            .await?;
        Ok(Db::Postgres(pool))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies every pending migration, then stores the name keys that SQL
    /// cannot compute ([`super::names::fill_missing_keys`]).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        on_db!(self, |pool| MIGRATOR.run(pool).await)?;
        super::names::fill_missing_keys(self).await?;
        Ok(())
    }

    /// `SELECT 1`: is the database answering?
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    /// The PostgreSQL schema the pool works in (`None` on SQLite).
    pub async fn current_schema(&self) -> Result<Option<String>, sqlx::Error> {
        match self {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(pool) => sqlx::query_scalar("SELECT current_schema()")
                .fetch_one(pool)
                .await
                .map(Some),
        }
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }

    /// Whether [`Db::close`] was called (shutting down): nothing should be
    /// answered from memory that the database would have to confirm.
    pub fn is_closed(&self) -> bool {
        match self {
            Db::Sqlite(pool) => pool.is_closed(),
            Db::Postgres(pool) => pool.is_closed(),
        }
    }

    /// Waits for this process's turn to write to the SQLite file; `None` (at
    /// once) on PostgreSQL, whose row locks need no help. Hold it over the
    /// whole write transaction, from before `BEGIN` to after `COMMIT`:
    ///
    /// ```ignore
    /// let _writing = db.write_guard().await; // not `let _ =`: that drops it at once
    /// on_db!(db, |pool| { let mut tx = pool.begin().await?; /* ... */ tx.commit().await })?;
    /// ```
    ///
    /// SQLite has one writer at a time. Without this, concurrent writers
    /// collide on its lock and its busy handler puts the losers to sleep
    /// (1, 2, 5, 10, ... ms), which is what the slowest requests wait for. With
    /// it, they queue in order on a fair async mutex instead, and a deferred
    /// transaction that reads before it writes can no longer lose its snapshot
    /// to another writer of this process.
    ///
    /// Take it before acquiring a connection (never while holding one or an
    /// open transaction): the holder may be waiting for a pooled connection.
    /// Writers that do not take it (other processes such as the CLI, rare
    /// paths in this one) still work: they queue on the busy timeout as before.
    pub async fn write_guard(&self) -> Option<WriteGuard> {
        match self {
            Db::Sqlite(pool) => Some(sqlite_write_lock(pool).lock_owned().await),
            Db::Postgres(_) => None,
        }
    }
}

/// What [`Db::write_guard`] hands out: the turn to write, until dropped.
pub type WriteGuard = tokio::sync::OwnedMutexGuard<()>;

/// The write lock of a SQLite file: one per file per process, so pools opened
/// on the same path (tests, a CLI command inside the server process) share it.
fn sqlite_write_lock(pool: &SqlitePool) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    let options = pool.connect_options();
    let file: &Path = options.get_filename();
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lock) = locks.get(file) {
        return lock.clone();
    }
    locks
        .entry(file.to_path_buf())
        .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
        .clone()
}

/// A pooled PostgreSQL connection idle at least this long is pinged before
/// use (a server restart or a dropped connection shows there, not in a request).
const PG_PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// The PostgreSQL pool's settings. sqlx pings every connection before handing
/// it out by default: one more round trip for every query. Here only
/// connections idle for [`PG_PING_AFTER_IDLE`] are; a busy connection that
/// broke fails its next query (the request gets a 503) and is replaced.
fn pg_pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PG_PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Quotes an SQL identifier (schema names in tests); never used with user input.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Seconds since the Unix epoch: every time in the database.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether an error is a unique-constraint violation (a duplicate name).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}
