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
/// [`BeginWrite`] is in scope in the body: writes go through
/// `pool.begin_write()` or `pool.execute_write(..)`.
///
/// ```ignore
/// let n: i64 = on_db!(db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await)?;
/// ```
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::domain::store::Db::Sqlite($pool) => {
                #[allow(unused_imports)]
                use $crate::domain::store::BeginWrite as _;
                async { $body }.await
            }
            $crate::domain::store::Db::Postgres($pool) => {
                #[allow(unused_imports)]
                use $crate::domain::store::BeginWrite as _;
                async { $body }.await
            }
        }
    };
}
pub use on_db;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How long a SQLite writer waits for another process's write to end.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// WAL journal, foreign keys on, and a busy timeout of
    /// [`SQLITE_BUSY_TIMEOUT`] for writers of other processes (the CLI).
    /// Writes a consistent copy of a SQLite database to `file` with `VACUUM
    /// INTO` (one read transaction: writers go on meanwhile) and checks the
    /// copy with `PRAGMA integrity_check`. Returns the copy's size in bytes.
    /// `DomainError::Invalid` on PostgreSQL (use `pg_dump`) or when `file`
    /// exists.
    pub async fn backup_to(&self, file: &std::path::Path) -> crate::domain::DomainResult<u64> {
        use crate::domain::DomainError;
        let Db::Sqlite(pool) = self else {
            return Err(DomainError::invalid(
                "database",
                "backup copies SQLite databases; for PostgreSQL use pg_dump (README, \"Backup\")",
            ));
        };
        if file.exists() {
            return Err(DomainError::invalid(
                "file",
                format!("{} exists; choose a new file", file.display()),
            ));
        }
        let target = file.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO $1")
            .bind(&target)
            .execute(pool)
            .await?;
        let copy = Db::connect(&format!("sqlite://{target}")).await?;
        let check: String = match &copy {
            Db::Sqlite(p) => {
                sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_one(p)
                    .await?
            }
            Db::Postgres(_) => unreachable!("a sqlite:// URL"),
        };
        copy.close().await;
        if check != "ok" {
            return Err(DomainError::Internal(format!(
                "the copy fails its integrity check: {check}"
            )));
        }
        Ok(std::fs::metadata(file).map(|m| m.len()).unwrap_or(0))
    }

    pub async fn connect(url: &str) -> Result<Db, sqlx::Error> {
        Db::connect_with_busy_timeout(url, SQLITE_BUSY_TIMEOUT).await
    }

    /// [`Db::connect`] with another SQLite busy timeout (ignored on
    /// PostgreSQL). Tests pass zero: then any write that does not wait for its
    /// turn (see [`BeginWrite`]) fails at once with `database is locked`
    /// instead of sleeping.
    pub async fn connect_with_busy_timeout(url: &str, busy: Duration) -> Result<Db, sqlx::Error> {
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
                    .busy_timeout(busy);
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
    /// cannot compute ([`super::names::fill_missing_keys`]) and catalogues the
    /// scopes clients were registered for before the scope catalogue existed
    /// ([`super::scopes::adopt_registered`]).
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        on_db!(self, |pool| MIGRATOR.run(pool).await)?;
        super::names::fill_missing_keys(self).await?;
        super::scopes::adopt_registered(self)
            .await
            .map_err(|e| sqlx::migrate::MigrateError::Source(Box::new(e)))?;
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

    /// This process's write turn on the SQLite file (`None` at once on
    /// PostgreSQL), for writers that are not a [`WriteTx`]: the browser-session
    /// store, and the group commit of refresh-token rotations
    /// (`refresh::Refreshes`). Everything else writes through
    /// [`BeginWrite::begin_write`].
    pub async fn write_turn(&self) -> Option<WriteGuard> {
        match self {
            Db::Sqlite(pool) => Some(sqlite_file(pool).write_lock.clone().lock_owned().await),
            Db::Postgres(_) => None,
        }
    }
}

/// The turn to write to a SQLite file, until dropped.
pub type WriteGuard = tokio::sync::OwnedMutexGuard<()>;

/// The only way Latchkey begins a write transaction (clippy's
/// `disallowed-methods` in `clippy.toml` refuses `Pool::begin` anywhere else).
///
/// SQLite has one writer at a time. Without a turn of their own, concurrent
/// writers collide on its lock and its busy handler puts the losers to sleep
/// (1, 2, 5, 10, ... ms, up to the busy timeout, then `database is locked`),
/// and a deferred transaction that reads before it writes can lose its
/// snapshot to another writer (`SQLITE_BUSY_SNAPSHOT`). So on SQLite a write
/// transaction first waits for this process's turn on a fair async mutex, one
/// per file, and holds it until it commits, rolls back or is dropped. On
/// PostgreSQL, whose row locks need no help, it is a plain transaction.
///
/// Never begin a write while holding a [`WriteTx`] (the turn is not
/// reentrant): the second would wait for the first forever.
///
/// ```ignore
/// on_db!(db, |pool| { let mut tx = pool.begin_write().await?; /* ... */ tx.commit().await })?;
/// ```
pub trait BeginWrite {
    type Database: sqlx::Database;

    /// Begins a write transaction once it is this process's turn.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<WriteTx<Self::Database>, sqlx::Error>> + Send;

    /// Begins a write transaction whose commit survives a power loss or an
    /// OS crash, not only a crash of this process: what a change that takes
    /// access away uses (a revocation, a sign-out, disabling a user, a
    /// client's edit, secret rotation or deletion, a policy change, key
    /// rotation). SQLite runs in WAL mode with `synchronous=NORMAL`, whose
    /// commits a power loss can undo; this transaction runs on a connection
    /// of its own with `synchronous=FULL`, so SQLite syncs the write-ahead
    /// log before the commit becomes visible (and every earlier commit with
    /// it). On PostgreSQL, `synchronous_commit` is set on for the
    /// transaction, whatever the server's default. A sync that fails fails
    /// the commit: nothing is acknowledged that is not on disk.
    fn begin_durable_write(
        &self,
    ) -> impl std::future::Future<Output = Result<WriteTx<Self::Database>, sqlx::Error>> + Send;

    /// Runs one writing statement on its own (autocommit) in this process's
    /// turn: what a one-statement write uses instead of a [`WriteTx`].
    fn execute_write<'q>(
        &self,
        statement: Statement<'q, Self::Database>,
    ) -> impl std::future::Future<
        Output = Result<<Self::Database as sqlx::Database>::QueryResult, sqlx::Error>,
    > + Send;
}

/// A statement with its bound parameters, as `sqlx::query(..).bind(..)` builds it.
pub type Statement<'q, DB> = sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>;

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;

    async fn begin_write(&self) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        // The turn first, then a connection: the holder may be waiting for one.
        let turn = sqlite_file(self).write_lock.clone().lock_owned().await;
        #[allow(clippy::disallowed_methods)]
        let tx = self.begin().await?;
        Ok(WriteTx::new(tx, Some(turn), false))
    }

    async fn begin_durable_write(&self) -> Result<WriteTx<sqlx::Sqlite>, sqlx::Error> {
        let file = sqlite_file(self);
        let turn = file.write_lock.clone().lock_owned().await;
        #[allow(clippy::disallowed_methods)]
        let tx = file.durable_pool(self).begin().await?;
        Ok(WriteTx::new(tx, Some(turn), true))
    }

    async fn execute_write<'q>(
        &self,
        statement: Statement<'q, sqlx::Sqlite>,
    ) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
        let _turn = sqlite_file(self).write_lock.clone().lock_owned().await;
        statement.execute(self).await
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;

    async fn begin_write(&self) -> Result<WriteTx<sqlx::Postgres>, sqlx::Error> {
        #[allow(clippy::disallowed_methods)]
        let tx = self.begin().await?;
        Ok(WriteTx::new(tx, None, false))
    }

    async fn begin_durable_write(&self) -> Result<WriteTx<sqlx::Postgres>, sqlx::Error> {
        #[allow(clippy::disallowed_methods)]
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx::new(tx, None, true))
    }

    async fn execute_write<'q>(
        &self,
        statement: Statement<'q, sqlx::Postgres>,
    ) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
        statement.execute(self).await
    }
}

/// A write transaction holding the write turn (see [`BeginWrite`]). Queries
/// run on `&mut *tx` as on a `sqlx::Transaction`; dropping it without
/// [`WriteTx::commit`] rolls back, and the turn passes on only once the
/// rollback is done.
pub struct WriteTx<DB: sqlx::Database> {
    /// `Some` until `commit`, `rollback` or `drop` takes it.
    tx: Option<sqlx::Transaction<'static, DB>>,
    turn: Option<WriteGuard>,
    /// Begun by [`BeginWrite::begin_durable_write`].
    durable: bool,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    fn new(tx: sqlx::Transaction<'static, DB>, turn: Option<WriteGuard>, durable: bool) -> Self {
        WriteTx {
            tx: Some(tx),
            turn,
            durable,
        }
    }

    /// Commits, then passes the turn on. Durable on disk only when begun by
    /// [`BeginWrite::begin_durable_write`] (on SQLite; see there).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let done = self.tx.take().expect(OPEN).commit().await;
        drop(self.turn.take());
        if done.is_ok() && self.durable {
            metrics::counter!("latchkey_durable_commits_total").increment(1);
        }
        done
    }

    /// Rolls back, then passes the turn on.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let done = self.tx.take().expect(OPEN).rollback().await;
        drop(self.turn.take());
        done
    }
}

/// Only `commit`, `rollback` (which consume the `WriteTx`) and `drop` take the transaction.
const OPEN: &str = "a WriteTx is open until it ends";

/// Dropped while open (a `?` in the transaction's body): sqlx would only queue
/// the rollback, and the connection would keep SQLite's write lock for a
/// moment after the turn passed on, so the next writer would meet it. The
/// rollback runs to its end before the turn is released instead.
impl<DB: sqlx::Database> Drop for WriteTx<DB> {
    fn drop(&mut self) {
        let (Some(tx), turn) = (self.tx.take(), self.turn.take()) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = tx.rollback().await {
                        tracing::warn!(error = %e, "rolling back a dropped write transaction failed");
                    }
                    drop(turn);
                });
            }
            Err(_) => drop((tx, turn)),
        }
    }
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        self.tx.as_ref().expect(OPEN)
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.tx.as_mut().expect(OPEN)
    }
}

/// A SQLite file as this process writes to it: one per file per process, so
/// pools opened on the same path (tests, a CLI command inside the server
/// process) share its write turn.
#[derive(Default)]
struct SqliteFile {
    /// The write turn (see [`BeginWrite`]).
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// One connection with `synchronous=FULL` for durable writes
    /// ([`BeginWrite::begin_durable_write`]), opened on first use. The
    /// setting cannot change inside a transaction, and a pooled connection
    /// whose setting a transaction changed would keep it: a connection of
    /// its own, used only in the write turn, so one is enough.
    durable: std::sync::OnceLock<SqlitePool>,
}

impl SqliteFile {
    fn durable_pool(&self, pool: &SqlitePool) -> &SqlitePool {
        self.durable.get_or_init(|| {
            let options = (*pool.connect_options())
                .clone()
                .synchronous(SqliteSynchronous::Full);
            SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .connect_lazy_with(options)
        })
    }
}

fn sqlite_file(pool: &SqlitePool) -> Arc<SqliteFile> {
    static FILES: LazyLock<Mutex<HashMap<PathBuf, Arc<SqliteFile>>>> =
        LazyLock::new(Mutex::default);
    let options = pool.connect_options();
    let path: &Path = options.get_filename();
    let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(file) = files.get(path) {
        return file.clone();
    }
    files.entry(path.to_path_buf()).or_default().clone()
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
