//! A fake Web Push service: hands out subscriptions (each with its own
//! P-256 key pair and auth secret, as a browser makes them), checks the
//! VAPID signature and the headers, and decrypts what it receives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Reply, Script, lock, unix_now};

/// A subscription as `PushManager.subscribe()` gives it, with the private
/// half a browser keeps.
#[derive(Clone)]
pub struct Subscription {
    pub endpoint: String,
    /// base64url of the uncompressed public point.
    pub p256dh: String,
    /// base64url of the 16-byte auth secret.
    pub auth: String,
    /// base64url of the 32-byte private key.
    pub private_key: String,
}

/// A push the service accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub subscription: String,
    /// The decrypted payload.
    pub payload: Value,
    /// The body as sent (encrypted).
    pub body: Vec<u8>,
    pub headers: HashMap<String, String>,
}

struct Keys {
    secret: SecretKey,
    auth: [u8; 16],
}

struct WebPushState {
    origin: String,
    subscriptions: Mutex<HashMap<String, Keys>>,
    gone: Mutex<Vec<String>>,
    received: Mutex<Vec<Received>>,
    rejected: Mutex<Vec<String>>,
    requests: AtomicUsize,
    script: Script,
}

pub struct FakeWebPush {
    pub origin: String,
    state: Arc<WebPushState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeWebPush {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeWebPush {
    pub async fn start() -> FakeWebPush {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(WebPushState {
            origin: origin.clone(),
            subscriptions: Mutex::default(),
            gone: Mutex::default(),
            received: Mutex::default(),
            rejected: Mutex::default(),
            requests: AtomicUsize::new(0),
            script: Script::default(),
        });
        let router = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeWebPush {
            origin,
            state,
            server,
        }
    }

    /// A new subscription, as a browser would make one.
    pub fn subscribe(&self) -> Subscription {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let mut auth = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut auth);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let subscription = Subscription {
            endpoint: format!("{}/push/{id}", self.origin),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
            auth: URL_SAFE_NO_PAD.encode(auth),
            private_key: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
        };
        lock(&self.state.subscriptions).insert(id, Keys { secret, auth });
        subscription
    }

    /// The browser unsubscribed: its endpoint answers 410 Gone.
    pub fn expire(&self, subscription: &Subscription) {
        lock(&self.state.gone).push(
            subscription
                .endpoint
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned(),
        );
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    pub fn rejected(&self) -> Vec<String> {
        lock(&self.state.rejected).clone()
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.push(replies);
    }
}

fn refuse(state: &WebPushState, status: StatusCode, why: String) -> Response {
    lock(&state.rejected).push(why.clone());
    (status, Json(json!({"reason": why}))).into_response()
}

/// `Authorization: vapid t=<JWT>, k=<public key>` (RFC 8292 §3).
fn check_vapid(state: &WebPushState, headers: &HeaderMap) -> Result<(), String> {
    let value = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let params = value.strip_prefix("vapid ").ok_or("not the vapid scheme")?;
    let mut t = None;
    let mut k = None;
    for part in params.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("k", v)) => k = Some(v.to_owned()),
            _ => {}
        }
    }
    let (t, k) = (t.ok_or("no t")?, k.ok_or("no k")?);
    let point = URL_SAFE_NO_PAD
        .decode(&k)
        .map_err(|_| "k is not base64url")?;
    let public = PublicKey::from_sec1_bytes(&point).map_err(|_| "k is not a P-256 point")?;
    let encoded = public.to_encoded_point(false);
    let (x, y) = (encoded.x().ok_or("x")?, encoded.y().ok_or("y")?);
    let key =
        DecodingKey::from_ec_components(&URL_SAFE_NO_PAD.encode(x), &URL_SAFE_NO_PAD.encode(y))
            .map_err(|e| format!("key: {e}"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[state.origin.as_str()]);
    validation.set_required_spec_claims(&["exp", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(&t, &key, &validation)
        .map_err(|e| format!("JWT: {e}"))?
        .claims;
    if claims["exp"].as_u64().unwrap_or(0) > unix_now() + 24 * 3600 {
        return Err("exp more than 24 hours ahead".to_owned());
    }
    let sub = claims["sub"].as_str().unwrap_or("");
    if !(sub.starts_with("mailto:") || sub.starts_with("https://")) {
        return Err("sub is not a mailto: or https: URL".to_owned());
    }
    Ok(())
}

async fn receive(
    State(state): State<Arc<WebPushState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if let Err(why) = check_vapid(&state, &headers) {
        return refuse(&state, StatusCode::UNAUTHORIZED, why);
    }
    if let Some(reply) = state.script.next() {
        return reply.into_response();
    }
    if lock(&state.gone).contains(&id) {
        return (StatusCode::GONE, "unsubscribed").into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if header("content-encoding").as_deref() != Some("aes128gcm") {
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            "Content-Encoding is not aes128gcm".to_owned(),
        );
    }
    if header("ttl").is_none_or(|t| t.parse::<u64>().is_err()) {
        return refuse(
            &state,
            StatusCode::BAD_REQUEST,
            "TTL missing or not a number".to_owned(),
        );
    }
    if header("urgency")
        .is_some_and(|u| !["very-low", "low", "normal", "high"].contains(&u.as_str()))
    {
        return refuse(&state, StatusCode::BAD_REQUEST, "bad Urgency".to_owned());
    }
    if header("topic").is_some_and(|t| {
        t.len() > 32
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        return refuse(&state, StatusCode::BAD_REQUEST, "bad Topic".to_owned());
    }
    if body.len() > 4096 {
        return refuse(
            &state,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large".to_owned(),
        );
    }
    let plaintext = {
        let subscriptions = lock(&state.subscriptions);
        let Some(keys) = subscriptions.get(&id) else {
            drop(subscriptions);
            return (StatusCode::NOT_FOUND, "no such subscription").into_response();
        };
        decrypt_aes128gcm(&body, &keys.secret, &keys.auth)
    };
    let payload = match plaintext.map(|p| serde_json::from_slice::<Value>(&p)) {
        Ok(Ok(payload)) => payload,
        Ok(Err(_)) => {
            return refuse(
                &state,
                StatusCode::BAD_REQUEST,
                "plaintext is not JSON".to_owned(),
            );
        }
        Err(why) => return refuse(&state, StatusCode::BAD_REQUEST, why),
    };
    let recorded = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    lock(&state.received).push(Received {
        subscription: id,
        payload,
        body: body.to_vec(),
        headers: recorded,
    });
    StatusCode::CREATED.into_response()
}

/// Decrypts an `aes128gcm` body (RFC 8188) for the subscription whose
/// private key is `secret` (RFC 8291 §3.4), as the browser does.
pub fn decrypt_aes128gcm(body: &[u8], secret: &SecretKey, auth: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("shorter than the header".to_owned());
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let id_len = body[20] as usize;
    let rest = &body[21..];
    if rest.len() < id_len || id_len != 65 {
        return Err("key id is not a P-256 point".to_owned());
    }
    let (as_public, ciphertext) = rest.split_at(id_len);
    if ciphertext.len() > record_size {
        return Err("more than one record".to_owned());
    }
    let sender = PublicKey::from_sec1_bytes(as_public).map_err(|_| "bad sender key".to_owned())?;
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), sender.as_affine());
    let ua_public = secret.public_key().to_encoded_point(false);
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public.as_bytes());
    info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .map_err(|e| e.to_string())?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|e| e.to_string())?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|e| e.to_string())?;
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;
    let mut padded = cipher
        .decrypt(&Nonce::from(nonce), ciphertext)
        .map_err(|_| "does not decrypt".to_owned())?;
    while padded.last() == Some(&0) {
        padded.pop();
    }
    if padded.pop() != Some(2) {
        return Err("no last-record delimiter".to_owned());
    }
    Ok(padded)
}
