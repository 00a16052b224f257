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
pub mod moderation;
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

/// Integers, also when written `1795605000000.0`: JSON does not tell the
/// two apart, and JSON Schema's `integer` accepts both.
pub(crate) mod whole {
    use serde::Deserialize;

    fn from_number<E: serde::de::Error>(number: serde_json::Number) -> Result<i64, E> {
        if let Some(n) = number.as_i64() {
            return Ok(n);
        }
        match number.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(E::custom(format!("{number} is not a whole number"))),
        }
    }

    pub fn required<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        from_number(serde_json::Number::deserialize(deserializer)?)
    }

    pub fn optional<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        Option::<serde_json::Number>::deserialize(deserializer)?
            .map(from_number)
            .transpose()
    }
}
