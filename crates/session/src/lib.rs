//! Who is connected, and who is looking at which room.
//!
//! Two questions are asked on every message: "is this user in this room?"
//! (then deliver live and do not push) and "is this user online?". Each is
//! one lookup of one key: the user's connection set, or the (user, room)
//! view set. Entries carry an expiry that each heartbeat extends, so the
//! sessions of a node that dies without cleaning up vanish by themselves.
//!
//! Entries are per *connection* (`device#connection`): a device reconnecting
//! before its old connection is reaped, or two tabs of one web device, never
//! remove each other's entries. "Online" means at least one live entry.

mod memory;
mod redis_store;

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

pub use memory::MemorySessionStore;
pub use redis_store::RedisSessionStore;

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("session store unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// One live connection of one device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    pub device_id: String,
    pub connection_id: Uuid,
}

impl Connection {
    /// The member name in the sets. Device ids cannot contain `#`.
    fn member(&self) -> String {
        format!("{}#{}", self.device_id, self.connection_id)
    }

    fn device_of(member: &str) -> &str {
        member.split_once('#').map_or(member, |(device, _)| device)
    }
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Registers a connection. True when it is the user's first live one
    /// (the user just came online).
    async fn connect(
        &self,
        user: Uuid,
        conn: &Connection,
        ttl: Duration,
    ) -> Result<bool, SessionError>;
    /// Removes a connection and, if given, its room view. True when the user
    /// has no live connection left (the user just went offline).
    async fn disconnect(
        &self,
        user: Uuid,
        conn: &Connection,
        viewing: Option<Uuid>,
    ) -> Result<bool, SessionError>;
    /// The connection is alive (and views `viewing`): its entries are
    /// written with a new expiry, restored if they vanished (a Redis
    /// restart, an expiry while the node stalled). Callers never run it
    /// after `disconnect` for the same connection.
    async fn heartbeat(
        &self,
        user: Uuid,
        conn: &Connection,
        viewing: Option<Uuid>,
        ttl: Duration,
    ) -> Result<(), SessionError>;
    /// The connection now views `room`.
    async fn enter_room(
        &self,
        user: Uuid,
        room: Uuid,
        conn: &Connection,
        ttl: Duration,
    ) -> Result<(), SessionError>;
    async fn leave_room(
        &self,
        user: Uuid,
        room: Uuid,
        conn: &Connection,
    ) -> Result<(), SessionError>;
    async fn is_online(&self, user: Uuid) -> Result<bool, SessionError>;
    /// Distinct device ids with a live connection.
    async fn online_devices(&self, user: Uuid) -> Result<Vec<String>, SessionError>;
    async fn in_room(&self, user: Uuid, room: Uuid) -> Result<bool, SessionError>;
    /// Distinct device ids viewing the room.
    async fn devices_in_room(&self, user: Uuid, room: Uuid) -> Result<Vec<String>, SessionError>;
    /// `in_room` for many users at once (one round trip on Redis).
    async fn in_room_many(&self, users: &[Uuid], room: Uuid) -> Result<Vec<bool>, SessionError>;
    /// `is_online` for many users at once (one round trip on Redis).
    async fn online_many(&self, users: &[Uuid]) -> Result<Vec<bool>, SessionError>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), SessionError>;
}

fn distinct_devices(members: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut devices: Vec<String> = members
        .into_iter()
        .map(|m| Connection::device_of(&m).to_owned())
        .collect();
    devices.sort();
    devices.dedup();
    devices
}

use iyagi_protocol::now_ms;
