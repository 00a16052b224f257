//! A push provider: sends one push to one registration and says how it
//! went, in the terms the outbox worker acts on.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use iyagi_store::{PushProvider, Registration};
use uuid::Uuid;

/// One push, as every provider gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPush {
    /// The notification's id: the push's dedup id (APNs `apns-id`, the
    /// FCM message's data) so a retried push is shown once.
    pub notification_id: Uuid,
    /// Pushes of one room replace each other on the device (APNs
    /// `apns-collapse-id`, FCM `collapse_key` / Android `tag`).
    pub collapse_key: String,
    pub title: String,
    pub body: String,
    /// The user's unread count over all rooms.
    pub badge: i64,
    pub room_id: Option<Uuid>,
    pub seq: Option<i64>,
}

/// What a provider said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The token is dead (FCM UNREGISTERED/404, APNs 410 or
    /// BadDeviceToken/Unregistered, Web Push 404/410): forget it.
    DeadToken(String),
    /// Try again, not before this (429/503 with `Retry-After`).
    RetryAfter(Duration, String),
    /// Try again later (5xx, a network error).
    Transient(String),
    /// Do not try again (400, 403...).
    Permanent(String),
}

impl SendError {
    /// The reason, for metrics and logs.
    pub fn reason(&self) -> &str {
        match self {
            SendError::DeadToken(r)
            | SendError::RetryAfter(_, r)
            | SendError::Transient(r)
            | SendError::Permanent(r) => r,
        }
    }
}

/// A successful send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The provider accepted it.
    Delivered,
    /// No provider is configured for the kind: recorded and logged only.
    Recorded,
}

impl Sent {
    pub fn outcome(self) -> &'static str {
        match self {
            Sent::Delivered => "delivered",
            Sent::Recorded => "recorded",
        }
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// Which registrations this provider serves.
    fn kind(&self) -> PushProvider;
    async fn send(&self, to: &Registration, push: &OutgoingPush) -> Result<Sent, SendError>;
}

/// Records what it would have sent and logs it: the provider for every
/// kind no real provider is configured for.
pub struct RecordingProvider {
    kind: PushProvider,
    sent: Mutex<Vec<(Registration, OutgoingPush)>>,
}

impl RecordingProvider {
    pub fn new(kind: PushProvider) -> RecordingProvider {
        RecordingProvider {
            kind,
            sent: Mutex::default(),
        }
    }

    pub fn sent(&self) -> Vec<(Registration, OutgoingPush)> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Provider for RecordingProvider {
    fn kind(&self) -> PushProvider {
        self.kind
    }

    async fn send(&self, to: &Registration, push: &OutgoingPush) -> Result<Sent, SendError> {
        tracing::info!(
            provider = to.provider.as_str(), user_id = %to.user_id, device_id = to.device_id,
            notification_id = %push.notification_id,
            "no provider configured: push recorded, not sent"
        );
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((to.clone(), push.clone()));
        }
        Ok(Sent::Recorded)
    }
}
