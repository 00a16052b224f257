//! `[push]`: the outbox worker and the providers. `docs/configuration.md`
//! documents every key, with a worked example per provider.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::worker::{WorkerPriority, WorkerSettings};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Run the outbox worker on this node. Every node may: they share the
    /// work without sending anything twice.
    pub worker: bool,
    /// Deliveries claimed per round.
    pub batch: u32,
    /// Sends in flight at once, per node.
    pub concurrency: usize,
    /// A claimed delivery is the node's for this long; if the node dies,
    /// another sends it after.
    pub lease_secs: u64,
    /// Attempts before a delivery is given up.
    pub max_attempts: i64,
    /// The first retry waits about this long; each further one doubles it
    /// (with jitter), up to `max_backoff_secs`.
    pub base_backoff_ms: u64,
    pub max_backoff_secs: u64,
    /// How often the worker looks for retries that came due.
    pub poll_ms: u64,
    /// Notifications older than this are deleted (default 30 days).
    pub retention_secs: u64,
    /// How often the deletion runs.
    pub retention_check_secs: u64,
    /// Each provider request gives up after this long (and is retried).
    pub request_timeout_ms: u64,
    /// The worker thread's CPU priority: `idle` (default; Linux
    /// `SCHED_IDLE`), `low` (nice 10) or `normal`.
    pub worker_priority: WorkerPriority,
    pub fcm: Option<FcmSettings>,
    pub apns: Option<ApnsSettings>,
    pub webpush: WebPushSettings,
}

impl Default for PushSettings {
    fn default() -> Self {
        let worker = WorkerSettings::default();
        PushSettings {
            worker: true,
            batch: worker.batch,
            concurrency: worker.concurrency,
            lease_secs: worker.lease.as_secs(),
            max_attempts: worker.max_attempts,
            base_backoff_ms: worker.base_backoff.as_millis() as u64,
            max_backoff_secs: worker.max_backoff.as_secs(),
            poll_ms: worker.poll.as_millis() as u64,
            retention_secs: worker.retention.as_secs(),
            retention_check_secs: worker.retention_check.as_secs(),
            request_timeout_ms: 10_000,
            worker_priority: worker.priority,
            fcm: None,
            apns: None,
            webpush: WebPushSettings::default(),
        }
    }
}

impl PushSettings {
    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            batch: self.batch,
            lease: Duration::from_secs(self.lease_secs),
            concurrency: self.concurrency,
            max_attempts: self.max_attempts,
            base_backoff: Duration::from_millis(self.base_backoff_ms),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            poll: Duration::from_millis(self.poll_ms),
            retention: Duration::from_secs(self.retention_secs),
            retention_check: Duration::from_secs(self.retention_check_secs),
            priority: self.worker_priority,
        }
    }

    /// Checks what types alone cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let positive: [(&str, u64); 9] = [
            ("push.batch", u64::from(self.batch)),
            ("push.concurrency", self.concurrency as u64),
            ("push.lease_secs", self.lease_secs),
            ("push.max_attempts", self.max_attempts.max(0) as u64),
            ("push.poll_ms", self.poll_ms),
            ("push.retention_secs", self.retention_secs),
            ("push.retention_check_secs", self.retention_check_secs),
            ("push.request_timeout_ms", self.request_timeout_ms),
            ("push.webpush.ttl_secs", self.webpush.ttl_secs),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} = 0 is invalid: it must be greater than 0"));
            }
        }
        if !["very-low", "low", "normal", "high"].contains(&self.webpush.urgency.as_str()) {
            return Err(format!(
                "push.webpush.urgency = {:?} is invalid: very-low, low, normal or high",
                self.webpush.urgency
            ));
        }
        if !self.webpush.subject.starts_with("mailto:")
            && !self.webpush.subject.starts_with("https://")
        {
            return Err(format!(
                "push.webpush.subject = {:?} is invalid: a mailto: or https: URL (RFC 8292)",
                self.webpush.subject
            ));
        }
        let apns_ids_ok = self
            .apns
            .as_ref()
            .is_none_or(|apns| apns.key_id.len() == 10 && apns.team_id.len() == 10);
        if !apns_ids_ok {
            return Err("push.apns.key_id and push.apns.team_id are 10 characters each".to_owned());
        }
        Ok(())
    }
}

/// `[push.fcm]`: Firebase Cloud Messaging, HTTP v1 API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmSettings {
    /// The service account's JSON key file (from the Firebase console).
    pub service_account_file: PathBuf,
    /// The API's base URL; `messages:send` is at
    /// `{base_url}/v1/projects/{project_id}/messages:send`.
    #[serde(default = "default_fcm_base_url")]
    pub base_url: String,
    /// Where the access token is obtained; empty: the key file's `token_uri`.
    #[serde(default)]
    pub token_uri: String,
}

fn default_fcm_base_url() -> String {
    "https://fcm.googleapis.com".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApnsEnvironment {
    /// `https://api.sandbox.push.apple.com` (development builds).
    Sandbox,
    /// `https://api.push.apple.com` (TestFlight and App Store builds).
    Production,
}

/// `[push.apns]`: Apple Push Notification service, token-based auth over HTTP/2.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSettings {
    /// The `.p8` signing key from the Apple developer account.
    pub key_file: PathBuf,
    /// The key's 10-character id.
    pub key_id: String,
    /// The developer team's 10-character id.
    pub team_id: String,
    #[serde(default = "default_apns_environment")]
    pub environment: ApnsEnvironment,
    /// Overrides the environment's endpoint (tests point it at their own
    /// server; `http://` speaks HTTP/2 without TLS).
    #[serde(default)]
    pub base_url: String,
}

fn default_apns_environment() -> ApnsEnvironment {
    ApnsEnvironment::Production
}

impl ApnsSettings {
    pub fn endpoint(&self) -> String {
        if !self.base_url.is_empty() {
            return self.base_url.trim_end_matches('/').to_owned();
        }
        match self.environment {
            ApnsEnvironment::Sandbox => "https://api.sandbox.push.apple.com".to_owned(),
            ApnsEnvironment::Production => "https://api.push.apple.com".to_owned(),
        }
    }
}

/// `[push.webpush]`: Web Push (RFC 8030) with `aes128gcm` payloads
/// (RFC 8291) and VAPID (RFC 8292). Always on: a browser's subscription
/// names its push service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebPushSettings {
    /// Accept `http://` subscription endpoints (tests only).
    pub allow_insecure_endpoints: bool,
    /// The VAPID key: a P-256 private key, PKCS#8 PEM. Unset: a key is
    /// generated on first start and kept in the database (like the token
    /// signing key), so every node and every restart uses the same one.
    pub vapid_private_key_file: Option<PathBuf>,
    /// The VAPID `sub` claim: how a push service reaches the operator.
    pub subject: String,
    /// How long a push service keeps an undelivered push (`TTL` header).
    pub ttl_secs: u64,
    /// The `Urgency` header: very-low, low, normal or high.
    pub urgency: String,
}

impl Default for WebPushSettings {
    fn default() -> Self {
        WebPushSettings {
            allow_insecure_endpoints: false,
            vapid_private_key_file: None,
            subject: "mailto:admin@localhost".to_owned(),
            ttl_secs: 24 * 3600,
            urgency: "high".to_owned(),
        }
    }
}
