//! The session-store contract, run on the in-memory store and on Redis.

mod cases;

macro_rules! session_suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::cases::$case(std::sync::Arc::new(iyagi_session::MemorySessionStore::new())).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(redis) = iyagi_testkit::TestRedis::new().await else { return };
                    let store = iyagi_session::RedisSessionStore::connect(&redis.url, &redis.prefix).await.expect("connect");
                    super::cases::$case(std::sync::Arc::new(store)).await;
                    redis.cleanup().await;
                }
            )*
        }
    };
}

session_suite!(
    first_connection_brings_online_and_last_takes_offline,
    room_views_are_per_user_and_room,
    entries_expire_without_heartbeat_and_heartbeat_extends_them,
    a_heartbeat_restores_entries_that_vanished,
);
