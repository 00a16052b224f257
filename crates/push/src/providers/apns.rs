//! APNs over HTTP/2 with token-based auth: an ES256 provider token signed
//! with the team's `.p8` key, reused for 40 minutes (Apple refuses tokens
//! renewed more often than every 20 minutes and tokens older than an hour),
//! and one `POST /3/device/{token}` per registration.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use iyagi_store::{PushProvider, Registration};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::Mutex;

use super::{ProviderSetupError, classify, network, unix_now};
use crate::provider::{OutgoingPush, Provider, SendError, Sent};
use crate::settings::ApnsSettings;

/// How long one provider token is used: inside Apple's 20–60 minute window.
pub const PROVIDER_TOKEN_REUSE: Duration = Duration::from_secs(40 * 60);

struct ProviderToken {
    token: String,
    issued: Instant,
}

pub struct ApnsProvider {
    http: reqwest::Client,
    endpoint: String,
    key_id: String,
    team_id: String,
    key: EncodingKey,
    token: Mutex<Option<ProviderToken>>,
}

impl ApnsProvider {
    /// `http` must speak HTTP/2: over TLS it is negotiated; for an
    /// `http://` endpoint (tests) the caller builds it with prior knowledge.
    pub fn new(
        http: reqwest::Client,
        settings: &ApnsSettings,
    ) -> Result<ApnsProvider, ProviderSetupError> {
        let path = &settings.key_file;
        let pem = std::fs::read(path)
            .map_err(|e| ProviderSetupError(format!("cannot read {}: {e}", path.display())))?;
        let key = EncodingKey::from_ec_pem(&pem).map_err(|e| {
            ProviderSetupError(format!(
                "{} is not an APNs .p8 (P-256 PKCS#8) key: {e}",
                path.display()
            ))
        })?;
        Ok(ApnsProvider {
            http,
            endpoint: settings.endpoint(),
            key_id: settings.key_id.clone(),
            team_id: settings.team_id.clone(),
            key,
            token: Mutex::new(None),
        })
    }

    /// The current provider token; a new one when it is 40 minutes old,
    /// or when `renew` (APNs said it expired or is invalid).
    async fn provider_token(&self, renew: bool) -> Result<String, SendError> {
        let mut cached = self.token.lock().await;
        let reusable = cached
            .as_ref()
            .filter(|t| !renew && t.issued.elapsed() < PROVIDER_TOKEN_REUSE);
        if let Some(token) = reusable {
            return Ok(token.token.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = serde_json::json!({ "iss": self.team_id, "iat": unix_now() });
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| SendError::Permanent(format!("signing failed: {e}")))?;
        *cached = Some(ProviderToken {
            token: token.clone(),
            issued: Instant::now(),
        });
        Ok(token)
    }

    fn payload(push: &OutgoingPush) -> serde_json::Value {
        serde_json::json!({
            "aps": {
                "alert": { "title": push.title, "body": push.body },
                "badge": push.badge,
                "sound": "default",
                "thread-id": push.collapse_key,
            },
            "notification_id": push.notification_id,
            "room_id": push.room_id,
            "seq": push.seq,
        })
    }
}

#[async_trait]
impl Provider for ApnsProvider {
    fn kind(&self) -> PushProvider {
        PushProvider::Apns
    }

    async fn send(&self, to: &Registration, push: &OutgoingPush) -> Result<Sent, SendError> {
        let Some(topic) = &to.topic else {
            return Err(SendError::Permanent(
                "registration_without_topic".to_owned(),
            ));
        };
        let token = self.provider_token(false).await?;
        let url = format!("{}/3/device/{}", self.endpoint, to.token);
        let response = self
            .http
            .post(&url)
            .header("authorization", format!("bearer {token}"))
            .header("apns-push-type", "alert")
            .header("apns-topic", topic)
            // The notification id: APNs reports it back, and a retry is the
            // same notification.
            .header("apns-id", push.notification_id.to_string())
            // A room's pushes replace each other in Notification Center.
            .header("apns-collapse-id", &push.collapse_key)
            // 10: deliver now (an alert with sound); Apple allows it for alerts.
            .header("apns-priority", "10")
            // Kept by APNs for a day if the device is offline.
            .header("apns-expiration", (unix_now() + 24 * 3600).to_string())
            .json(&ApnsProvider::payload(push))
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent::Delivered);
        }
        let headers = response.headers().clone();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let reason = body["reason"].as_str().unwrap_or("").to_owned();
        let label = if reason.is_empty() {
            format!("http_{}", status.as_u16())
        } else {
            reason.clone()
        };
        match (status.as_u16(), reason.as_str()) {
            (410, _) | (400, "BadDeviceToken") | (_, "Unregistered") => {
                Err(SendError::DeadToken(label))
            }
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                self.provider_token(true).await?;
                Err(SendError::Transient(label))
            }
            (429, _) => Err(SendError::Transient(label)),
            _ => Err(classify(status, &headers, label)),
        }
    }
}
