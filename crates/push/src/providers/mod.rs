//! The real providers. Each one's base URL is a setting, so tests point
//! them at servers of their own that check what the real service checks.

mod apns;
mod ece;
mod fcm;
mod vapid;
mod webpush;

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

pub use apns::ApnsProvider;
pub use ece::encrypt as ece_encrypt;
pub use fcm::FcmProvider;
pub use vapid::{VAPID_KEY_ALGORITHM, VAPID_KEY_KID, VapidKey};
pub use webpush::WebPushProvider;

use crate::provider::SendError;

/// Why a provider could not be set up from its settings.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderSetupError(pub String);

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// What a status other than success means, where providers agree:
/// 429/503 wait (as told, or by backoff), other 5xx retry, the rest is final.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, reason: String) -> SendError {
    match status.as_u16() {
        429 | 503 => match retry_after(headers) {
            Some(after) => SendError::RetryAfter(after, reason),
            None => SendError::Transient(reason),
        },
        500..=599 => SendError::Transient(reason),
        _ => SendError::Permanent(reason),
    }
}

/// A network error (no answer) is worth another try.
pub(crate) fn network(error: reqwest::Error) -> SendError {
    let kind = if error.is_timeout() {
        "timeout"
    } else {
        "network"
    };
    tracing::debug!(error = %error, "push request failed");
    SendError::Transient(kind.to_owned())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The providers `settings` configures. Web Push is always on (a
/// subscription names its push service; only the VAPID key is ours);
/// FCM and APNs when their sections are present. The worker records, and
/// logs, what it would send to any other kind.
pub async fn configure(
    settings: &crate::PushSettings,
    keys: &dyn iyagi_store::KeyStore,
    now_ms: i64,
) -> Result<
    (
        Vec<std::sync::Arc<dyn crate::Provider>>,
        std::sync::Arc<VapidKey>,
    ),
    ProviderSetupError,
> {
    use std::sync::Arc;
    let timeout = Duration::from_millis(settings.request_timeout_ms);
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| ProviderSetupError(format!("cannot build an HTTP client: {e}")))?;
    let vapid = Arc::new(match &settings.webpush.vapid_private_key_file {
        Some(path) => VapidKey::from_pem_file(path)?,
        None => VapidKey::load_or_generate(keys, now_ms).await?,
    });
    let mut providers: Vec<Arc<dyn crate::Provider>> = vec![Arc::new(WebPushProvider::new(
        http.clone(),
        vapid.clone(),
        settings.webpush.clone(),
    ))];
    if let Some(fcm) = &settings.fcm {
        providers.push(Arc::new(FcmProvider::new(http.clone(), fcm)?));
        tracing::info!("push: FCM configured");
    }
    if let Some(apns) = &settings.apns {
        let builder = reqwest::Client::builder().timeout(timeout);
        // APNs speaks only HTTP/2: negotiated over TLS; without TLS (a
        // test server) it must be spoken from the first byte.
        let builder = if apns.endpoint().starts_with("http://") {
            builder.http2_prior_knowledge()
        } else {
            builder
        };
        let http = builder
            .build()
            .map_err(|e| ProviderSetupError(format!("cannot build an HTTP/2 client: {e}")))?;
        providers.push(Arc::new(ApnsProvider::new(http, apns)?));
        tracing::info!(endpoint = apns.endpoint(), "push: APNs configured");
    }
    Ok((providers, vapid))
}
