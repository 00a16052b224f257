//! Web Push (RFC 8030): one encrypted POST to the subscription's endpoint,
//! signed with the server's VAPID key.

use std::sync::Arc;

use async_trait::async_trait;
use iyagi_store::{PushProvider, Registration};

use super::{VapidKey, classify, ece, network, unix_now};
use crate::provider::{OutgoingPush, Provider, SendError, Sent};
use crate::settings::WebPushSettings;

pub struct WebPushProvider {
    http: reqwest::Client,
    vapid: Arc<VapidKey>,
    settings: WebPushSettings,
}

impl WebPushProvider {
    pub fn new(
        http: reqwest::Client,
        vapid: Arc<VapidKey>,
        settings: WebPushSettings,
    ) -> WebPushProvider {
        WebPushProvider {
            http,
            vapid,
            settings,
        }
    }
}

/// What the service worker gets (decrypted) in its `push` event.
pub(crate) fn payload(push: &OutgoingPush) -> serde_json::Value {
    serde_json::json!({
        "notification_id": push.notification_id,
        "title": push.title,
        "body": push.body,
        "badge": push.badge,
        "room_id": push.room_id,
        "seq": push.seq,
    })
}

#[async_trait]
impl Provider for WebPushProvider {
    fn kind(&self) -> PushProvider {
        PushProvider::WebPush
    }

    async fn send(&self, to: &Registration, push: &OutgoingPush) -> Result<Sent, SendError> {
        let (Some(p256dh), Some(auth)) = (&to.p256dh, &to.auth) else {
            return Err(SendError::Permanent("subscription_without_keys".to_owned()));
        };
        let url = reqwest::Url::parse(&to.token)
            .map_err(|_| SendError::DeadToken("bad_endpoint".to_owned()))?;
        let audience = url.origin().ascii_serialization();
        let plaintext = payload(push).to_string();
        let body = ece::encrypt(p256dh, auth, plaintext.as_bytes()).map_err(|e| match e {
            // Registration checks the key's length, not that it is a point
            // on the curve: one that is not can never be pushed to.
            ece::EceError::BadPublicKey => SendError::DeadToken("bad_p256dh".to_owned()),
            ece::EceError::TooLarge => SendError::Permanent("payload_too_large".to_owned()),
        })?;
        // VAPID tokens may live 24 h; 12 h leaves room for clock skew.
        let authorization = self
            .vapid
            .authorization(&audience, unix_now() + 12 * 3600, &self.settings.subject)
            .map_err(SendError::Permanent)?;
        let response = self
            .http
            .post(url)
            .header("authorization", authorization)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", self.settings.ttl_secs.to_string())
            .header("urgency", &self.settings.urgency)
            // A room's pushes replace each other while undelivered (RFC
            // 8030 §5.4: at most 32 base64url characters; a simple UUID is 32).
            .header(
                "topic",
                push.room_id.map_or_else(
                    || push.notification_id.simple().to_string(),
                    |r| r.simple().to_string(),
                ),
            )
            .body(body)
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent::Delivered);
        }
        let reason = format!("http_{}", status.as_u16());
        match status.as_u16() {
            404 | 410 => Err(SendError::DeadToken(reason)),
            _ => Err(classify(status, response.headers(), reason)),
        }
    }
}
