//! Integration tests: each starts the real server on an ephemeral port with
//! its own database and talks to it over HTTP.
//!
//! `api_suite!` runs a scenario on every storage backend (SQLite always,
//! PostgreSQL when IYAGI_TEST_POSTGRES_URL is set, and always under CI).

mod helpers;
mod hostile_http;
mod ws_client;

mod auth_flow;
mod bad_input;
mod catch_up;
mod cluster;
mod faults;
mod frame_refs;
mod keys;
mod media;
mod moderation;
mod oidc;
mod ops;
mod push;
mod realtime;
mod reports;
mod slow_clients;

macro_rules! api_suite {
    ($module:ident: $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = iyagi_testkit::TestDb::sqlite();
                    super::super::$module::$case(db.url.clone()).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = iyagi_testkit::TestDb::postgres().await else { return };
                    super::super::$module::$case(db.url.clone()).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}
pub(crate) use api_suite;

/// Which session store (and database) a real-time scenario runs on.
pub struct Backends {
    pub db_url: String,
    pub session: iyagi_server::SessionSettings,
}

impl Backends {
    pub fn settings(&self) -> iyagi_server::Settings {
        let mut settings = helpers::test_settings(&self.db_url);
        settings.session = self.session.clone();
        settings
    }
}

/// Runs each real-time scenario on the in-memory session store (SQLite), on
/// Redis (SQLite), and on the production pair PostgreSQL + Redis.
macro_rules! ws_suite {
    ($module:ident: $($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = iyagi_testkit::TestDb::sqlite();
                    let backends = crate::Backends { db_url: db.url.clone(), session: Default::default() };
                    super::super::$module::$case(backends).await;
                    db.cleanup().await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(redis) = iyagi_testkit::TestRedis::new().await else { return };
                    let db = iyagi_testkit::TestDb::sqlite();
                    let session = iyagi_server::SessionSettings {
                        store: iyagi_server::SessionBackend::Redis,
                        redis_url: redis.url.clone().into(),
                        redis_prefix: redis.prefix.clone(),
                        ..Default::default()
                    };
                    super::super::$module::$case(crate::Backends { db_url: db.url.clone(), session }).await;
                    db.cleanup().await;
                    redis.cleanup().await;
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(redis) = iyagi_testkit::TestRedis::new().await else { return };
                    let Some(db) = iyagi_testkit::TestDb::postgres().await else { return };
                    let session = iyagi_server::SessionSettings {
                        store: iyagi_server::SessionBackend::Redis,
                        redis_url: redis.url.clone().into(),
                        redis_prefix: redis.prefix.clone(),
                        ..Default::default()
                    };
                    super::super::$module::$case(crate::Backends { db_url: db.url.clone(), session }).await;
                    db.cleanup().await;
                    redis.cleanup().await;
                }
            )*
        }
    };
}
pub(crate) use ws_suite;
