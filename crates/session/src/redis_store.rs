//! The production session store: Redis sorted sets.
//!
//! `{prefix}:u:{user}` holds the user's connections and
//! `{prefix}:v:{user}:{room}` the connections viewing a room, each member
//! scored by its expiry (ms since the epoch). A check is `ZCOUNT key now +inf`
//! on one key: O(log n) in the user's handful of connections, one round trip.
//! Each key also has a Redis TTL at its latest expiry, so the sets of a dead
//! node disappear entirely. Add/remove run as Lua scripts so "was the user
//! online before?" and the change are one atomic step across all nodes.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use uuid::Uuid;

use crate::{Connection, SessionError, SessionStore, distinct_devices, now_ms};

/// Removes expired members, counts the live ones, adds the member, extends
/// the key. Returns the live count before the add.
const ADD: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return before
";

/// Removes the member and expired members. Returns the live count after.
const REMOVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
";

/// How long a command or reconnection may take unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RedisSessionStore {
    redis: ConnectionManager,
    prefix: String,
    add: Script,
    remove: Script,
}

impl RedisSessionStore {
    /// Connects (the connection manager reconnects by itself afterwards).
    /// `prefix` namespaces every key, so deployments and tests can share a server.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisSessionStore, SessionError> {
        RedisSessionStore::connect_with_timeout(url, prefix, DEFAULT_TIMEOUT).await
    }

    /// Like [`connect`](Self::connect); every command and reconnection
    /// attempt gives up after `timeout`. While Redis is down, callers then
    /// fail fast instead of waiting through the driver's default retries
    /// (~10 s with exponential backoff).
    pub async fn connect_with_timeout(
        url: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<RedisSessionStore, SessionError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let redis = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisSessionStore {
            redis,
            prefix: prefix.to_owned(),
            add: Script::new(ADD),
            remove: Script::new(REMOVE),
        })
    }

    fn user_key(&self, user: Uuid) -> String {
        format!("{}:u:{}", self.prefix, user)
    }

    fn view_key(&self, user: Uuid, room: Uuid) -> String {
        format!("{}:v:{}:{}", self.prefix, user, room)
    }

    async fn add(&self, key: String, member: String, ttl: Duration) -> Result<i64, SessionError> {
        let now = now_ms();
        let ttl_ms = ttl.as_millis() as i64;
        let mut redis = self.redis.clone();
        Ok(self
            .add
            .key(key)
            .arg(now)
            .arg(member)
            .arg(now + ttl_ms)
            .arg(ttl_ms)
            .invoke_async(&mut redis)
            .await?)
    }

    async fn remove(&self, key: String, member: String) -> Result<i64, SessionError> {
        let mut redis = self.redis.clone();
        Ok(self
            .remove
            .key(key)
            .arg(now_ms())
            .arg(member)
            .invoke_async(&mut redis)
            .await?)
    }

    async fn live_count(&self, key: String) -> Result<i64, SessionError> {
        let mut redis = self.redis.clone();
        Ok(redis::cmd("ZCOUNT")
            .arg(key)
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut redis)
            .await?)
    }

    async fn live_counts(&self, keys: Vec<String>) -> Result<Vec<bool>, SessionError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("ZCOUNT").arg(key).arg(now).arg("+inf");
        }
        let mut redis = self.redis.clone();
        let counts: Vec<i64> = pipe.query_async(&mut redis).await?;
        Ok(counts.into_iter().map(|c| c > 0).collect())
    }

    async fn live_members(&self, key: String) -> Result<Vec<String>, SessionError> {
        let mut redis = self.redis.clone();
        Ok(redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(now_ms())
            .arg("+inf")
            .query_async(&mut redis)
            .await?)
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn connect(
        &self,
        user: Uuid,
        conn: &Connection,
        ttl: Duration,
    ) -> Result<bool, SessionError> {
        Ok(self.add(self.user_key(user), conn.member(), ttl).await? == 0)
    }

    async fn disconnect(
        &self,
        user: Uuid,
        conn: &Connection,
        viewing: Option<Uuid>,
    ) -> Result<bool, SessionError> {
        if let Some(room) = viewing {
            self.remove(self.view_key(user, room), conn.member())
                .await?;
        }
        Ok(self.remove(self.user_key(user), conn.member()).await? == 0)
    }

    async fn heartbeat(
        &self,
        user: Uuid,
        conn: &Connection,
        viewing: Option<Uuid>,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let expires = now_ms() + ttl.as_millis() as i64;
        let ttl_ms = ttl.as_millis() as i64;
        let mut pipe = redis::pipe();
        let mut keys = vec![self.user_key(user)];
        if let Some(room) = viewing {
            keys.push(self.view_key(user, room));
        }
        for key in keys {
            // Not `XX`: the entry is written whether or not it still exists.
            // Redis keeps nothing across a restart, and an entry that
            // expired while its connection lived on (a stalled node) must
            // come back; a heartbeat only ever runs for a live connection
            // (see `SessionStore::heartbeat`).
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(expires)
                .arg(conn.member())
                .ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
        }
        let mut redis = self.redis.clone();
        pipe.query_async::<()>(&mut redis).await?;
        Ok(())
    }

    async fn enter_room(
        &self,
        user: Uuid,
        room: Uuid,
        conn: &Connection,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        self.add(self.view_key(user, room), conn.member(), ttl)
            .await?;
        Ok(())
    }

    async fn leave_room(
        &self,
        user: Uuid,
        room: Uuid,
        conn: &Connection,
    ) -> Result<(), SessionError> {
        self.remove(self.view_key(user, room), conn.member())
            .await?;
        Ok(())
    }

    async fn is_online(&self, user: Uuid) -> Result<bool, SessionError> {
        Ok(self.live_count(self.user_key(user)).await? > 0)
    }

    async fn online_devices(&self, user: Uuid) -> Result<Vec<String>, SessionError> {
        Ok(distinct_devices(
            self.live_members(self.user_key(user)).await?,
        ))
    }

    async fn in_room(&self, user: Uuid, room: Uuid) -> Result<bool, SessionError> {
        Ok(self.live_count(self.view_key(user, room)).await? > 0)
    }

    async fn devices_in_room(&self, user: Uuid, room: Uuid) -> Result<Vec<String>, SessionError> {
        Ok(distinct_devices(
            self.live_members(self.view_key(user, room)).await?,
        ))
    }

    async fn in_room_many(&self, users: &[Uuid], room: Uuid) -> Result<Vec<bool>, SessionError> {
        self.live_counts(users.iter().map(|u| self.view_key(*u, room)).collect())
            .await
    }

    async fn online_many(&self, users: &[Uuid]) -> Result<Vec<bool>, SessionError> {
        self.live_counts(users.iter().map(|u| self.user_key(*u)).collect())
            .await
    }

    async fn ping(&self) -> Result<(), SessionError> {
        let mut redis = self.redis.clone();
        redis::cmd("PING").query_async::<()>(&mut redis).await?;
        Ok(())
    }
}
