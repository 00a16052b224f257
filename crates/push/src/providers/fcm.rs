//! FCM HTTP v1: an OAuth access token from the service account (an RS256
//! JWT exchanged at its token URI, cached until shortly before it
//! expires), then one `messages:send` per registration token.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use iyagi_store::{PushProvider, Registration};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{ProviderSetupError, classify, network, unix_now};
use crate::provider::{OutgoingPush, Provider, SendError, Sent};
use crate::settings::FcmSettings;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// A cached access token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The fields of a service-account key file that matter here.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

struct CachedToken {
    token: String,
    renew_at: Instant,
}

pub struct FcmProvider {
    http: reqwest::Client,
    send_url: String,
    token_uri: String,
    client_email: String,
    key_id: String,
    key: EncodingKey,
    token: Mutex<Option<CachedToken>>,
}

impl FcmProvider {
    pub fn new(
        http: reqwest::Client,
        settings: &FcmSettings,
    ) -> Result<FcmProvider, ProviderSetupError> {
        let path = &settings.service_account_file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProviderSetupError(format!("cannot read {}: {e}", path.display())))?;
        let account: ServiceAccount = serde_json::from_str(&text).map_err(|e| {
            ProviderSetupError(format!(
                "{} is not a service-account key file: {e}",
                path.display()
            ))
        })?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|e| {
            ProviderSetupError(format!(
                "the private_key in {} is not an RSA PEM key: {e}",
                path.display()
            ))
        })?;
        Ok(FcmProvider {
            http,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                settings.base_url.trim_end_matches('/'),
                account.project_id
            ),
            token_uri: if settings.token_uri.is_empty() {
                account.token_uri
            } else {
                settings.token_uri.clone()
            },
            client_email: account.client_email,
            key_id: account.private_key_id,
            key,
            token: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one.
    async fn access_token(&self) -> Result<String, SendError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.token.clone());
        }
        let now = unix_now();
        let claims = serde_json::json!({
            "iss": self.client_email, "scope": SCOPE, "aud": self.token_uri,
            "iat": now, "exp": now + 3600,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key_id.clone());
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| SendError::Permanent(format!("signing failed: {e}")))?;
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &assertion),
            ])
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if !status.is_success() {
            // A refused service account is not the token's fault: retry
            // (and alert through the failure metrics) rather than drop.
            tracing::warn!(status = status.as_u16(), "FCM access token refused");
            return Err(SendError::Transient(format!(
                "oauth_http_{}",
                status.as_u16()
            )));
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|_| SendError::Transient("oauth_bad_response".to_owned()))?;
        let lifetime = Duration::from_secs(token.expires_in);
        *cached = Some(CachedToken {
            token: token.access_token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE),
        });
        Ok(token.access_token)
    }

    fn message(to: &Registration, push: &OutgoingPush) -> serde_json::Value {
        let room = push.room_id.map(|r| r.to_string()).unwrap_or_default();
        serde_json::json!({ "message": {
            "token": to.token,
            "notification": { "title": push.title, "body": push.body },
            // FCM data values are strings.
            "data": {
                "notification_id": push.notification_id.to_string(),
                "room_id": room,
                "seq": push.seq.map(|s| s.to_string()).unwrap_or_default(),
            },
            "android": {
                "collapse_key": push.collapse_key,
                "priority": "high",
                "notification": { "tag": push.collapse_key, "notification_count": push.badge },
            },
            "apns": {
                "headers": { "apns-collapse-id": push.collapse_key, "apns-priority": "10" },
                "payload": { "aps": { "badge": push.badge, "thread-id": push.collapse_key } },
            },
        }})
    }
}

/// FCM's error body: `{"error": {"status": ..., "details": [{"errorCode": ...}]}}`.
fn error_code(body: &serde_json::Value) -> String {
    let error = &body["error"];
    error["details"]
        .as_array()
        .and_then(|d| d.iter().find_map(|d| d["errorCode"].as_str()))
        .or_else(|| error["status"].as_str())
        .unwrap_or("")
        .to_owned()
}

#[async_trait]
impl Provider for FcmProvider {
    fn kind(&self) -> PushProvider {
        PushProvider::Fcm
    }

    async fn send(&self, to: &Registration, push: &OutgoingPush) -> Result<Sent, SendError> {
        let token = self.access_token().await?;
        let response = self
            .http
            .post(&self.send_url)
            .bearer_auth(token)
            .json(&FcmProvider::message(to, push))
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent::Delivered);
        }
        let headers = response.headers().clone();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let code = error_code(&body);
        let reason = if code.is_empty() {
            format!("http_{}", status.as_u16())
        } else {
            code.to_lowercase()
        };
        match (status.as_u16(), code.as_str()) {
            (404, _) | (_, "UNREGISTERED") => Err(SendError::DeadToken(reason)),
            (401, _) => {
                // The access token was refused: get a new one next time.
                *self.token.lock().await = None;
                Err(SendError::Transient(reason))
            }
            _ => Err(classify(status, &headers, reason)),
        }
    }
}
