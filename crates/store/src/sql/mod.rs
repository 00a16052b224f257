//! The SQL behind [`crate::Storage`], written once for SQLite and PostgreSQL.
//!
//! Both backends accept `$1`-style placeholders, `RETURNING` and
//! `ON CONFLICT`, and the schema keeps to types both map the same way (UUIDs,
//! BIGINT milliseconds, TEXT, bytes). So each aggregate's implementation is
//! one macro body, instantiated per backend by [`for_both_backends`]: a
//! query fixed for one backend is fixed for both. One file per aggregate;
//! the only per-backend code is in `open.rs` (the pool, the migrations, how
//! a write transaction begins).

/// Instantiates an aggregate's `impl_…!` macro for both backends, each in
/// a module named after it (`sqlite`, `postgres`), so helpers one aggregate
/// generates (say, appending inside a transaction) can be called by another
/// as `crate::sql::messages::$backend::…`.
macro_rules! for_both_backends {
    ($impl:ident) => {
        pub(crate) mod sqlite {
            use super::*;
            $impl!(crate::SqliteStore, sqlx::Sqlite, sqlite);
        }
        pub(crate) mod postgres {
            use super::*;
            $impl!(crate::PgStore, sqlx::Postgres, postgres);
        }
    };
}

macro_rules! room_columns {
    () => {
        "id, kind, title, direct_key, created_at_ms, last_seq, content_count, last_content_seq, last_activity_ms"
    };
}

macro_rules! member_columns {
    () => {
        "id, room_id, user_id, role, created_at_ms, read_seq, read_count, muted_until_ms"
    };
}

macro_rules! message_columns {
    () => {
        "id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal"
    };
}

// Declared after the macros above, so their bodies can use them.
mod devices;
mod keys;
mod media;
mod messages;
mod moderation;
pub(crate) mod notifications;
mod open;
mod push;
mod rooms;
mod staff;
mod users;

pub use open::{PgStore, SqliteStore};
