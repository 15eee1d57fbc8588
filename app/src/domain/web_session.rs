//! The browser-session store: tower-sessions' sqlx stores over the same
//! database as everything else, behind one type whichever backend is in use.
//! On SQLite its writes wait for this process's write turn like every other
//! writer (see [`super::store::BeginWrite`]).

use async_trait::async_trait;
use tower_sessions::{
    session::{Id, Record},
    session_store::{self, ExpiredDeletion},
    SessionStore,
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::store::Db;

/// Table holding the browser sessions (next to Latchkey's own tables).
const TABLE: &str = "tower_sessions";

#[derive(Clone, Debug)]
pub enum WebSessionStore {
    /// The store and its database, whose write turn its writes take.
    Sqlite(SqliteStore, Db),
    Postgres(PostgresStore),
}

impl WebSessionStore {
    /// Builds the store and creates its table when missing.
    pub async fn new(db: &Db) -> Result<Self, sqlx::Error> {
        let store = match db {
            Db::Sqlite(pool) => WebSessionStore::Sqlite(
                SqliteStore::new(pool.clone())
                    .with_table_name(TABLE)
                    .map_err(|e| sqlx::Error::Configuration(e.into()))?,
                db.clone(),
            ),
            Db::Postgres(pool) => {
                // Keep the table in the schema the pool works in (tests run one schema each).
                let schema = db
                    .current_schema()
                    .await?
                    .unwrap_or_else(|| "public".into());
                WebSessionStore::Postgres(
                    PostgresStore::new(pool.clone())
                        .with_schema_name(schema)
                        .and_then(|s| s.with_table_name(TABLE))
                        .map_err(|e| sqlx::Error::Configuration(e.into()))?,
                )
            }
        };
        match &store {
            WebSessionStore::Sqlite(s, db) => {
                let _turn = db.write_turn().await;
                s.migrate().await?
            }
            WebSessionStore::Postgres(s) => s.migrate().await?,
        }
        Ok(store)
    }
}

#[async_trait]
impl SessionStore for WebSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            WebSessionStore::Sqlite(s, db) => {
                let _turn = db.write_turn().await;
                s.create(record).await
            }
            WebSessionStore::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            WebSessionStore::Sqlite(s, db) => {
                let _turn = db.write_turn().await;
                s.save(record).await
            }
            WebSessionStore::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            WebSessionStore::Sqlite(s, _) => s.load(id).await,
            WebSessionStore::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            WebSessionStore::Sqlite(s, db) => {
                let _turn = db.write_turn().await;
                s.delete(id).await
            }
            WebSessionStore::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for WebSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            WebSessionStore::Sqlite(s, db) => {
                let _turn = db.write_turn().await;
                s.delete_expired().await
            }
            WebSessionStore::Postgres(s) => s.delete_expired().await,
        }
    }
}
