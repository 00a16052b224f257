//! Fake push providers for tests: real servers on ephemeral ports that
//! check what the real services check (signed tokens, headers, the JSON
//! shape; the Web Push receiver decrypts), record what they accepted, and
//! answer with scripted replies when a test wants failures.

mod apns;
mod fcm;
mod webpush;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use apns::{ApnsKey, FakeApns};
pub use fcm::FakeFcm;
pub use webpush::{FakeWebPush, Received, Subscription, decrypt_aes128gcm};

/// A reply a fake gives instead of checking and accepting a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn status(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, headers, axum::Json(self.body)).into_response()
    }
}

/// Scripted replies, used first-in first-out before normal handling.
#[derive(Default)]
pub(crate) struct Script(Mutex<VecDeque<Reply>>);

impl Script {
    pub(crate) fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(replies);
    }

    pub(crate) fn next(&self) -> Option<Reply> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Waits until `check` holds, for at most `within`; says whether it did.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
