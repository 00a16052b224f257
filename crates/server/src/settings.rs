//! Typed configuration. The binary layers defaults, a TOML file and
//! `IYAGI_*` environment variables into [`Settings`]; tests build it directly.
//! `docs/configuration.md` documents every key.

use std::net::SocketAddr;
use std::time::Duration;

use iyagi_auth::AuthSettings;

pub use crate::secret::{SecretString, SecretUrl};
use iyagi_protocol::chat::{CONTENT_MAX_BYTES, PAGE_MAX};
use iyagi_protocol::ws::SENDS_IN_FLIGHT_MAX;
use serde::{Deserialize, Serialize};

/// The largest `history` answer: a full page of messages of the largest
/// content, each with its fields around it.
pub const HISTORY_PAGE_MAX_BYTES: usize = PAGE_MAX as usize * (CONTENT_MAX_BYTES + 512);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub ws: WsSettings,
    pub session: SessionSettings,
    pub bus: BusSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub push: iyagi_push::PushSettings,
    pub media: iyagi_media::MediaSettings,
}

/// `[metrics]`: who may read `/metrics`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` on a listener of its own at this address (and no
    /// longer on `server.listen`); empty: on the main listener.
    pub listen: String,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub token: SecretString,
}

impl MetricsSettings {
    /// The listener of its own, if configured.
    pub fn own_listener(&self) -> Result<Option<SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            format!(
                "metrics.listen = {:?} is invalid: it must be an address:port, or empty",
                self.listen
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusBackend {
    /// In this process; for one node.
    Local,
    /// NATS core pub/sub; for several nodes.
    Nats,
}

/// `[bus]`: how live frames reach connections held by other nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    pub kind: BusBackend,
    pub nats_url: SecretUrl,
    /// Nodes sharing this prefix form one cluster.
    pub subject_prefix: String,
    /// A room's cached member list is read from the database again after
    /// this long, so a membership change whose bus event was lost takes
    /// effect on other nodes within it.
    pub member_cache_ttl_ms: u64,
    /// Every node re-checks the device sessions of its open connections
    /// this often, so a sign-out whose bus event was lost closes its
    /// connections within it.
    pub session_recheck_secs: u64,
    /// While the bus is disconnected: the re-check runs this often, and no
    /// member list is cached at all.
    pub outage_recheck_ms: u64,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            kind: BusBackend::Local,
            nats_url: "nats://127.0.0.1:4222".into(),
            subject_prefix: "iyagi".to_owned(),
            member_cache_ttl_ms: 10_000,
            session_recheck_secs: 60,
            outage_recheck_ms: 2_000,
        }
    }
}

/// `[ws]`: the real-time gateway at `/v1/ws`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsSettings {
    /// The server pings each connection this often.
    pub heartbeat_interval_ms: u64,
    /// A connection silent for interval + timeout is closed (code 4000) and
    /// its sessions removed.
    pub heartbeat_timeout_ms: u64,
    /// Frames larger than this get a `frame_too_large` error; the connection stays open.
    pub max_frame_bytes: usize,
    /// Frames larger than this close the connection (code 1009).
    pub hard_max_frame_bytes: usize,
    /// Frames queued for one connection before it counts as a slow reader
    /// and is closed (code 4001).
    pub outbound_queue: usize,
    /// Frame bytes queued for one connection before it counts as a slow
    /// reader (4001). At least one full `history` page must fit.
    pub outbound_queue_bytes: usize,
    /// Frame bytes queued for all connections of this node together. While
    /// over it, connections with a backlog of more than an eighth of
    /// `outbound_queue_bytes` are closed as slow readers.
    pub outbound_total_bytes: usize,
    /// Client frames per second per connection (also the burst).
    pub frames_per_second: u32,
    /// A catch-up longer than this many messages in one room gets `reload`.
    pub max_replay: i64,
    /// Each connection's socket read buffer. Every connection holds one,
    /// idle or not; chat frames are small, and a larger frame simply takes
    /// more reads (the buffer grows for it).
    pub read_buffer_bytes: usize,
    /// `presence` frames go to direct peers and to members of groups of at
    /// most this many members (0: direct peers only). Members of larger
    /// groups ask with the `presence` frame: pushing to every member would
    /// cost N² frames when a group's N members reconnect.
    pub presence_max_group_members: u32,
    /// Open connections per user, on this node (more: 429 `too_many_connections`).
    pub max_connections_per_user: usize,
    /// Open connections per device of a user, on this node (web tabs share one).
    pub max_connections_per_device: usize,
}

impl WsSettings {
    /// How often the server pings an idle connection.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Silence after a ping's interval before the server gives up on a
    /// connection.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms)
    }

    /// Session-store entries outlive one missed heartbeat, and vanish soon
    /// after the node stops refreshing them.
    pub fn session_ttl(&self) -> Duration {
        self.heartbeat_interval() + self.heartbeat_timeout() + Duration::from_secs(5)
    }
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            heartbeat_interval_ms: 15_000,
            heartbeat_timeout_ms: 10_000,
            max_frame_bytes: 64 * 1024,
            hard_max_frame_bytes: 1024 * 1024,
            outbound_queue: 256,
            outbound_queue_bytes: 8 * 1024 * 1024,
            outbound_total_bytes: 512 * 1024 * 1024,
            frames_per_second: 20,
            max_replay: 1000,
            read_buffer_bytes: 2048,
            presence_max_group_members: 100,
            max_connections_per_user: 32,
            max_connections_per_device: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionBackend {
    /// In this process; for one node.
    Memory,
    /// Shared by every node.
    Redis,
}

/// `[session]`: where device sessions and room views live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    pub store: SessionBackend,
    pub redis_url: SecretUrl,
    /// Prefix of every Redis key, so several deployments can share a server.
    pub redis_prefix: String,
    /// A Redis command (or reconnection) taking longer fails: while Redis
    /// is down, presence queries fail fast and connections open without it.
    pub redis_timeout_ms: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            store: SessionBackend::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: "iyagi".to_owned(),
            redis_timeout_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address and port to listen on. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest accepted HTTP request body.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Request headers must arrive within this long, also the next request
    /// on an idle keep-alive connection; else the connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request body must arrive within this long (408 `request_timeout`).
    pub body_read_timeout_ms: u64,
    /// Open connections at most (0: the open-file limit less 512).
    pub max_connections: usize,
    /// Connections per client address that are not an authenticated
    /// WebSocket (plain HTTP, upgrades in progress); 0: no limit. Behind a
    /// load balancer every client shares its address: raise it there.
    pub max_unauthenticated_per_address: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 10,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            max_connections: 0,
            max_unauthenticated_per_address: 256,
        }
    }
}

impl ServerSettings {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    pub url: SecretUrl,
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://./data/iyagi.db".into(),
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. `info` or `iyagi_server=debug,info`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Pretty,
        }
    }
}

impl Settings {
    /// Checks what types alone cannot. The message names the key and value.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(format!(
                "database.url = {:?} is invalid: it must start with sqlite: or postgres:",
                self.database.url.redacted()
            ));
        }
        let positive: [(&str, u64); 16] = [
            ("ws.heartbeat_interval_ms", self.ws.heartbeat_interval_ms),
            ("ws.heartbeat_timeout_ms", self.ws.heartbeat_timeout_ms),
            ("ws.max_frame_bytes", self.ws.max_frame_bytes as u64),
            ("ws.outbound_queue", self.ws.outbound_queue as u64),
            ("ws.read_buffer_bytes", self.ws.read_buffer_bytes as u64),
            ("ws.frames_per_second", u64::from(self.ws.frames_per_second)),
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            (
                "ws.max_connections_per_user",
                self.ws.max_connections_per_user as u64,
            ),
            (
                "ws.max_connections_per_device",
                self.ws.max_connections_per_device as u64,
            ),
            (
                "database.max_connections",
                u64::from(self.database.max_connections),
            ),
            (
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs,
            ),
            (
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs,
            ),
            (
                "auth.password.memory_kib",
                u64::from(self.auth.password.memory_kib),
            ),
            (
                "auth.password.iterations",
                u64::from(self.auth.password.iterations),
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} = 0 is invalid: it must be greater than 0"));
            }
        }
        if let Some(oidc) = &self.auth.oidc {
            if !(oidc.jwks_url.starts_with("https://") || oidc.jwks_url.starts_with("http://")) {
                return Err(format!(
                    "auth.oidc.jwks_url = {:?} is invalid: it must be an http(s) URL",
                    oidc.jwks_url
                ));
            }
            if oidc.issuer.is_empty() || oidc.audience.is_empty() {
                return Err("auth.oidc.issuer and auth.oidc.audience must not be empty".to_owned());
            }
        }
        // A client that reads promptly must never be closed for a queue too
        // small for what the protocol lets it have in flight: each pipelined
        // send earns an ack and its own message frame.
        let min_queue = 2 * SENDS_IN_FLIGHT_MAX + 64;
        if self.ws.outbound_queue < min_queue {
            return Err(format!(
                "ws.outbound_queue = {} is invalid: it must be at least {min_queue} \
                 (an ack and a message for each of the {SENDS_IN_FLIGHT_MAX} sends a client may pipeline, and room for more)",
                self.ws.outbound_queue
            ));
        }
        if self.ws.outbound_queue_bytes < HISTORY_PAGE_MAX_BYTES {
            return Err(format!(
                "ws.outbound_queue_bytes = {} is invalid: it must be at least {HISTORY_PAGE_MAX_BYTES} \
                 (one full history page)",
                self.ws.outbound_queue_bytes
            ));
        }
        if self.ws.outbound_total_bytes < self.ws.outbound_queue_bytes {
            return Err(format!(
                "ws.outbound_total_bytes = {} is invalid: it must be at least ws.outbound_queue_bytes ({})",
                self.ws.outbound_total_bytes, self.ws.outbound_queue_bytes
            ));
        }
        if self.ws.hard_max_frame_bytes < self.ws.max_frame_bytes {
            return Err(format!(
                "ws.hard_max_frame_bytes = {} is invalid: it must be at least ws.max_frame_bytes ({})",
                self.ws.hard_max_frame_bytes, self.ws.max_frame_bytes
            ));
        }
        if self.session.store == SessionBackend::Redis
            && !self.session.redis_url.expose().starts_with("redis")
        {
            return Err(format!(
                "session.redis_url = {:?} is invalid: it must start with redis://",
                self.session.redis_url.redacted()
            ));
        }
        self.metrics.own_listener()?;
        self.push.validate()?;
        if self.media.backend == iyagi_media::MediaBackend::S3 && self.media.s3.bucket.is_empty() {
            return Err("media.backend = \"s3\" needs media.s3.bucket".to_owned());
        }
        if self.media.decode_concurrency == 0 {
            return Err("media.decode_concurrency must be at least 1".to_owned());
        }
        if self.auth.issuer.is_empty() {
            return Err("auth.issuer must not be empty".to_owned());
        }
        Ok(())
    }
}
