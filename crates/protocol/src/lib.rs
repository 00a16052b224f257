//! iyagi's wire types.
//!
//! Everything a client sees on the wire lives here and nowhere else: HTTP
//! request and response bodies, and the error codes shared by HTTP and
//! WebSocket. Storage rows never leak into this crate; the server converts at
//! the edge. Clients, tests and tools depend on this crate, so it stays small
//! (serde + uuid + schema derives, nothing async).

pub mod auth;
pub mod chat;
pub mod error;
pub mod media;
pub mod notifications;
pub mod ws;

pub use error::{ErrorBody, ErrorCode};

/// Now, in the protocol's unit of time: milliseconds since the Unix epoch
/// (every `created_at` on the wire, every time in storage).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
