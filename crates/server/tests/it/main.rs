//! Integration tests: each starts the real server on an ephemeral port with
//! its own database and talks to it over HTTP.
//!
//! `api_suite!` runs a scenario on every storage backend (SQLite always,
//! PostgreSQL when IYAGI_TEST_POSTGRES_URL is set, and always under CI).

mod helpers;

mod auth_flow;
mod bad_input;
mod keys;
mod oidc;
mod ops;

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
