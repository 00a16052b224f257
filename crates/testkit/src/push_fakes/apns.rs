//! A fake APNs: HTTP/2 only (h2c, prior knowledge: an HTTP/1 client gets
//! nowhere), token-based auth checked as Apple checks it, and the request
//! headers and payload validated.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

use super::{Reply, Script, lock, unix_now};

pub const TEAM_ID: &str = "TEAMID1234";
pub const KEY_ID: &str = "KEYID12345";

/// A `.p8` key as Apple issues it, in a file.
pub struct ApnsKey {
    pub key_id: String,
    pub team_id: String,
    dir: tempfile::TempDir,
    public_pem: String,
}

impl ApnsKey {
    pub fn path(&self) -> PathBuf {
        self.dir.path().join(format!("AuthKey_{}.p8", self.key_id))
    }
}

/// An accepted push: the device token, the `apns-*` headers, the payload.
pub type AcceptedPush = (String, HashMap<String, String>, Value);

struct ApnsState {
    public: DecodingKey,
    topic: String,
    requests: AtomicUsize,
    accepted: Mutex<Vec<AcceptedPush>>,
    rejected: Mutex<Vec<String>>,
    provider_tokens: Mutex<Vec<String>>,
    dead: Mutex<HashMap<String, &'static str>>,
    script: Script,
}

pub struct FakeApns {
    pub base_url: String,
    pub key: ApnsKey,
    state: Arc<ApnsState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApns {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeApns {
    /// A fake for an app whose bundle id is `topic`.
    pub async fn start(topic: &str) -> FakeApns {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let dir = tempfile::tempdir().expect("tempdir");
        let public_pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let key = ApnsKey {
            key_id: KEY_ID.to_owned(),
            team_id: TEAM_ID.to_owned(),
            dir,
            public_pem,
        };
        let pem = secret.to_pkcs8_pem(LineEnding::LF).expect("pem");
        std::fs::write(key.path(), pem.as_bytes()).expect("write .p8");
        let state = Arc::new(ApnsState {
            public: DecodingKey::from_ec_pem(key.public_pem.as_bytes()).expect("public key"),
            topic: topic.to_owned(),
            requests: AtomicUsize::new(0),
            accepted: Mutex::default(),
            rejected: Mutex::default(),
            provider_tokens: Mutex::default(),
            dead: Mutex::default(),
            script: Script::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = Router::new()
            .route("/3/device/{token}", post(push))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(router.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeApns {
            base_url,
            key,
            state,
            server,
        }
    }

    /// `(device token, request headers, payload)` of each accepted push.
    pub fn accepted(&self) -> Vec<AcceptedPush> {
        lock(&self.state.accepted).clone()
    }

    pub fn rejected(&self) -> Vec<String> {
        lock(&self.state.rejected).clone()
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The distinct provider tokens seen, in order.
    pub fn provider_tokens(&self) -> Vec<String> {
        lock(&self.state.provider_tokens).clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.push(replies);
    }

    /// From now on this device token is gone: 410 Unregistered.
    pub fn unregister(&self, token: &str) {
        lock(&self.state.dead).insert(token.to_lowercase(), "Unregistered");
    }

    /// From now on this device token is refused: 400 BadDeviceToken.
    pub fn bad_token(&self, token: &str) {
        lock(&self.state.dead).insert(token.to_lowercase(), "BadDeviceToken");
    }
}

fn reason(state: &ApnsState, status: u16, reason: &str) -> Response {
    lock(&state.rejected).push(reason.to_owned());
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({"reason": reason})),
    )
        .into_response()
}

async fn push(
    State(state): State<Arc<ApnsState>>,
    Path(token): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if version != Version::HTTP_2 {
        return reason(&state, 400, "BadRequest");
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    // Token-based authentication.
    let Some(jwt) =
        header("authorization").and_then(|v| v.strip_prefix("bearer ").map(str::to_owned))
    else {
        return reason(&state, 403, "MissingProviderToken");
    };
    let Ok(jwt_header) = jsonwebtoken::decode_header(&jwt) else {
        return reason(&state, 403, "InvalidProviderToken");
    };
    if jwt_header.alg != Algorithm::ES256 || jwt_header.kid.as_deref() != Some(KEY_ID) {
        return reason(&state, 403, "InvalidProviderToken");
    }
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[TEAM_ID]);
    validation.set_required_spec_claims(&["iss"]);
    validation.validate_exp = false;
    let claims = match jsonwebtoken::decode::<Value>(&jwt, &state.public, &validation) {
        Ok(data) => data.claims,
        Err(_) => return reason(&state, 403, "InvalidProviderToken"),
    };
    let iat = claims["iat"].as_u64().unwrap_or(0);
    let now = unix_now();
    if iat + 3600 < now || iat > now + 60 {
        return reason(&state, 403, "ExpiredProviderToken");
    }
    {
        // Apple refuses a new token within 20 minutes of the last one.
        let mut tokens = lock(&state.provider_tokens);
        if tokens.last() != Some(&jwt) {
            if tokens.iter().any(|t| t == &jwt) {
                // An older token again: fine while it is valid.
            } else if let Some(last) = tokens.last() {
                let last_iat = jsonwebtoken::dangerous::insecure_decode::<Value>(last)
                    .ok()
                    .and_then(|d| d.claims["iat"].as_u64())
                    .unwrap_or(0);
                if iat < last_iat + 20 * 60 {
                    drop(tokens);
                    return reason(&state, 429, "TooManyProviderTokenUpdates");
                }
                tokens.push(jwt.clone());
            } else {
                tokens.push(jwt.clone());
            }
        }
    }
    if let Some(reply) = state.script.next() {
        return reply.into_response();
    }
    if token.len() < 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return reason(&state, 400, "BadDeviceToken");
    }
    match header("apns-topic") {
        None => return reason(&state, 400, "MissingTopic"),
        Some(topic) if topic != state.topic => {
            return reason(&state, 400, "DeviceTokenNotForTopic");
        }
        Some(_) => {}
    }
    let push_type = header("apns-push-type");
    let known_types: HashSet<&str> = [
        "alert",
        "background",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
    ]
    .into();
    if !push_type
        .as_deref()
        .is_some_and(|t| known_types.contains(t))
    {
        return reason(&state, 400, "InvalidPushType");
    }
    if header("apns-id").is_some_and(|id| {
        uuid::Uuid::try_parse(&id).map_or(true, |u| u.hyphenated().to_string() != id.to_lowercase())
    }) {
        return reason(&state, 400, "BadMessageId");
    }
    if header("apns-collapse-id").is_some_and(|c| c.len() > 64) {
        return reason(&state, 400, "BadCollapseId");
    }
    if header("apns-priority").is_some_and(|p| p != "5" && p != "10" && p != "1") {
        return reason(&state, 400, "BadPriority");
    }
    if header("apns-expiration").is_some_and(|e| e.parse::<u64>().is_err()) {
        return reason(&state, 400, "BadExpirationDate");
    }
    if body.is_empty() {
        return reason(&state, 400, "PayloadEmpty");
    }
    if body.len() > 4096 {
        return reason(&state, 413, "PayloadTooLarge");
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return reason(&state, 400, "BadRequest");
    };
    let aps = &payload["aps"];
    if !aps.is_object() || (push_type.as_deref() == Some("alert") && aps.get("alert").is_none()) {
        return reason(&state, 400, "BadRequest");
    }
    if let Some(why) = lock(&state.dead).get(&token.to_lowercase()).copied() {
        let status = if why == "Unregistered" { 410 } else { 400 };
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::GONE),
            Json(json!({"reason": why, "timestamp": now * 1000})),
        )
            .into_response();
    }
    let recorded: HashMap<String, String> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("apns-"))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let apns_id = header("apns-id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    lock(&state.accepted).push((token, recorded, payload));
    (StatusCode::OK, [("apns-id", apns_id)]).into_response()
}
