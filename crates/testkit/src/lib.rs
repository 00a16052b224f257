//! Helpers for iyagi's tests: each test gets its own database (a temporary
//! SQLite file, or a fresh PostgreSQL schema) so tests run in parallel and
//! leave nothing behind.
//!
//! External services are found through `IYAGI_TEST_*` environment variables.
//! When one is unset the test says it is skipped, except under `CI=true`,
//! where a missing service is a failure.

pub mod media_fixtures;
mod process;
pub mod push_fakes;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use iyagi_store::{Storage, StoreOptions};
use sqlx::Connection;

pub use process::{PrivateService, S3_ACCESS_KEY, S3_SECRET_KEY};

/// The URL of a test service, from `var`. `None` (with a note on stderr)
/// when unset outside CI; panics when unset under `CI=true`.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                panic!("{var} is not set, and under CI=true a missing service is a failure");
            }
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

/// Which backend a [`TestDb`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of one's own for one test.
pub struct TestDb {
    /// The URL the server would be configured with.
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

const SCHEMA_PREFIX: &str = "iyagi_t_";
/// Schemas of tests that died without cleaning up are dropped after this long.
const STALE_SCHEMA_SECS: u64 = 3600;

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = format!("sqlite://{}/iyagi.db", dir.path().display());
        TestDb {
            url,
            backend: Backend::Sqlite,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh schema in the database at `IYAGI_TEST_POSTGRES_URL`, or `None`
    /// when that is unset outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = service_url("IYAGI_TEST_POSTGRES_URL")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let schema = format!("{SCHEMA_PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at IYAGI_TEST_POSTGRES_URL: {e}"));
        sweep_stale_schemas(&mut conn, now).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create test schema");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options=-c%20search_path%3D{schema}");
        Some(TestDb {
            url,
            backend: Backend::Postgres,
            _dir: None,
            pg: Some((admin_url, schema)),
        })
    }

    /// Opens the store (running migrations), with a small pool.
    pub async fn open(&self) -> Arc<dyn Storage> {
        self.open_with_connections(4).await
    }

    /// Opens the store with a pool of `max_connections`.
    pub async fn open_with_connections(&self, max_connections: u32) -> Arc<dyn Storage> {
        let options = StoreOptions {
            max_connections,
            ..StoreOptions::default()
        };
        iyagi_store::open(&self.url, &options)
            .await
            .expect("open test store")
    }

    /// Drops the PostgreSQL schema (the SQLite directory goes on drop).
    pub async fn cleanup(self) {
        if let Some((admin_url, schema)) = &self.pg
            && let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await
        {
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
        }
    }
}

/// A test that panicked never reached its cleanup; its schema name carries
/// its creation time, so later runs drop it once it is clearly abandoned.
async fn sweep_stale_schemas(conn: &mut sqlx::PgConnection, now: u64) {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'iyagi\\_t\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for (name,) in names {
        let created = name
            .strip_prefix(SCHEMA_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|ts| ts.parse::<u64>().ok());
        if created.is_some_and(|ts| ts + STALE_SCHEMA_SECS < now) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// A key prefix of one's own in the Redis at `IYAGI_TEST_REDIS_URL`.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    /// `None` (skipped) when the variable is unset outside CI.
    pub async fn new() -> Option<TestRedis> {
        let url = service_url("IYAGI_TEST_REDIS_URL")?;
        let client = redis::Client::open(url.as_str()).expect("valid IYAGI_TEST_REDIS_URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("cannot reach Redis at IYAGI_TEST_REDIS_URL: {e}"));
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .expect("redis ping");
        Some(TestRedis {
            url,
            prefix: format!("iyagi_t_{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// Deletes every key under the prefix.
    pub async fn cleanup(self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
        }
    }
}
