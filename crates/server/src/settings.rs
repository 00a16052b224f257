//! Typed configuration. The binary layers defaults, a TOML file and
//! `IYAGI_*` environment variables into [`Settings`]; tests build it directly.
//! `docs/configuration.md` documents every key.

use std::net::SocketAddr;

use iyagi_auth::AuthSettings;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
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
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST:PORT/DB`.
    pub url: String,
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://./data/iyagi.db".to_owned(),
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
        let url = &self.database.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(format!(
                "database.url = {url:?} is invalid: it must start with sqlite: or postgres:"
            ));
        }
        let positive: [(&str, u64); 6] = [
            ("server.max_body_bytes", self.server.max_body_bytes as u64),
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
        if self.auth.issuer.is_empty() {
            return Err("auth.issuer must not be empty".to_owned());
        }
        Ok(())
    }
}
