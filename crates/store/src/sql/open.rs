//! Opening the two backends, and what differs between them: the pool, the
//! migrations, and how a write transaction begins.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use tokio::sync::mpsc;

use crate::writer::{APPEND_QUEUE, WriterCounters, WriterJob};
use crate::*;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The embedded backend: one SQLite file in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    pub(crate) appender: mpsc::Sender<WriterJob>,
    pub(crate) writer_counters: Arc<WriterCounters>,
}

impl SqliteStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout);
        let filename = connect.get_filename().to_path_buf();
        if let Some(parent) = connect.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        let writer_counters = Arc::new(WriterCounters::default());
        let appender = crate::sqlite_writer::spawn(
            &filename,
            options.acquire_timeout,
            APPEND_QUEUE,
            writer_counters.clone(),
        )?;
        Ok(SqliteStore {
            pool,
            appender,
            writer_counters,
        })
    }

    /// Write transactions take SQLite's write lock up front. A deferred
    /// transaction that reads and then writes can fail with SQLITE_BUSY when
    /// another writer committed in between, and busy_timeout does not retry
    /// that case; IMMEDIATE makes writers queue on the lock instead.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Self::begin_write_on(&self.pool).await
    }

    async fn begin_write_on(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The production backend.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) appender: mpsc::Sender<WriterJob>,
    pub(crate) writer_counters: Arc<WriterCounters>,
}

impl PgStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
        let connect = PgConnectOptions::from_str(url)?;
        let servers = Arc::new(crate::pg_nodelay::server_addresses(&connect).await);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |_, _| {
                let servers = servers.clone();
                Box::pin(async move {
                    if !servers.is_empty() {
                        // Best effort: a failed scan leaves Nagle on, as before.
                        let _ =
                            tokio::task::spawn_blocking(move || crate::pg_nodelay::apply(&servers))
                                .await;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await?;
        // sqlx holds a PostgreSQL advisory lock while migrating, so several
        // nodes starting at once apply each migration exactly once.
        POSTGRES_MIGRATIONS.run(&pool).await?;
        let (appender, jobs) = mpsc::channel(APPEND_QUEUE);
        let writer_counters = Arc::new(WriterCounters::default());
        tokio::spawn(crate::pg_writer::run(
            pool.clone(),
            jobs,
            writer_counters.clone(),
        ));
        Ok(PgStore {
            pool,
            appender,
            writer_counters,
        })
    }

    /// Row locks taken by the statements themselves (UPDATE ... RETURNING)
    /// serialise the writers that must be serialised.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Self::begin_write_on(&self.pool).await
    }

    async fn begin_write_on(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(pool.begin().await?)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

macro_rules! impl_storage {
    ($store:ty, $backend:literal) => {
        #[async_trait]
        impl Storage for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

impl_storage!(SqliteStore, "sqlite");
impl_storage!(PgStore, "postgres");
