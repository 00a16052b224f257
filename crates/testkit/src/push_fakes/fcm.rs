//! A fake FCM HTTP v1: the OAuth token endpoint of a service account and
//! `messages:send`, checking what Google checks.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

use super::{Reply, Script, lock, unix_now};

const PROJECT: &str = "iyagi-test";
const CLIENT_EMAIL: &str = "push@iyagi-test.iam.gserviceaccount.com";
const KEY_ID: &str = "fake-key-1";

/// One RSA key per test process: generating one takes a while.
fn rsa_pems() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("rsa key");
        let private = key.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
        let public = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        (private, public)
    })
}

struct FcmState {
    token_uri: String,
    public: DecodingKey,
    issued: Mutex<HashSet<String>>,
    token_requests: AtomicUsize,
    send_requests: AtomicUsize,
    accepted: Mutex<Vec<Value>>,
    /// When each accepted message arrived (unix ms), in the same order.
    accepted_at_ms: Mutex<Vec<u64>>,
    rejected: Mutex<Vec<String>>,
    dead: Mutex<HashSet<String>>,
    script: Script,
    delay: Mutex<Duration>,
    down: AtomicBool,
}

pub struct FakeFcm {
    pub base_url: String,
    state: Arc<FcmState>,
    _dir: tempfile::TempDir,
    key_file: PathBuf,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeFcm {
    pub async fn start() -> FakeFcm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        FakeFcm::serve(listener, None).await
    }

    /// A fake on `listener`, writing its service-account file to
    /// `key_file` (default: a temporary directory's). The benchmark runs
    /// one this way, as a process of its own.
    pub async fn serve(listener: tokio::net::TcpListener, key_file: Option<PathBuf>) -> FakeFcm {
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (private, public) = rsa_pems();
        let state = Arc::new(FcmState {
            token_uri: format!("{base_url}/token"),
            public: DecodingKey::from_rsa_pem(public.as_bytes()).expect("public key"),
            issued: Mutex::default(),
            token_requests: AtomicUsize::new(0),
            send_requests: AtomicUsize::new(0),
            accepted: Mutex::default(),
            accepted_at_ms: Mutex::default(),
            rejected: Mutex::default(),
            dead: Mutex::default(),
            script: Script::default(),
            delay: Mutex::new(Duration::ZERO),
            down: AtomicBool::new(false),
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let account = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": private,
            "client_email": CLIENT_EMAIL,
            "client_id": "1",
            "token_uri": state.token_uri,
        });
        let key_file = key_file.unwrap_or_else(|| dir.path().join("service-account.json"));
        // Written whole, then renamed: whoever waits for the file never
        // reads half of it.
        let partial = key_file.with_extension("partial");
        std::fs::write(&partial, account.to_string()).expect("write key file");
        std::fs::rename(&partial, &key_file).expect("rename key file");
        let router = Router::new()
            .route("/token", post(token))
            .route("/stats", axum::routing::get(stats))
            .route("/v1/projects/{project}/{action}", post(send))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeFcm {
            base_url,
            state,
            _dir: dir,
            key_file,
            server,
        }
    }

    /// The service-account key file to configure (`push.fcm.service_account_file`).
    pub fn service_account_file(&self) -> PathBuf {
        self.key_file.clone()
    }

    /// When each accepted message arrived (unix ms), as `accepted()` is ordered.
    pub fn accepted_at_ms(&self) -> Vec<u64> {
        lock(&self.state.accepted_at_ms).clone()
    }

    /// Serves until the process ends.
    pub async fn wait(mut self) {
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = server.await;
    }

    /// The `message` objects accepted, in order.
    pub fn accepted(&self) -> Vec<Value> {
        lock(&self.state.accepted).clone()
    }

    /// Why requests were refused by the checks (none, for a correct client).
    pub fn rejected(&self) -> Vec<String> {
        lock(&self.state.rejected).clone()
    }

    pub fn send_requests(&self) -> usize {
        self.state.send_requests.load(Ordering::SeqCst)
    }

    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The next requests get these replies (after the token check).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.push(replies);
    }

    /// From now on this registration token is unregistered (404 UNREGISTERED).
    pub fn unregister(&self, token: &str) {
        lock(&self.state.dead).insert(token.to_owned());
    }

    /// Each send waits this long before answering.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// While down, every send gets 503 (no `Retry-After`).
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// FCM's error body.
    pub fn error(status: u16, code: &str) -> Reply {
        Reply::status(
            status,
            json!({"error": {"code": status, "status": code, "message": code,
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}}),
        )
    }
}

fn refuse(state: &FcmState, status: u16, code: &str, why: String) -> Response {
    lock(&state.rejected).push(why);
    FakeFcm::error(status, code).into_response()
}

/// The OAuth 2.0 JWT bearer grant (RFC 7523), as Google's token endpoint does it.
async fn token(
    State(state): State<Arc<FcmState>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let bad = |why: &str| {
        lock(&state.rejected).push(format!("token: {why}"));
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return bad("no assertion");
    };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return bad("not a JWT");
    };
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(KEY_ID) {
        return bad("alg or kid");
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[state.token_uri.as_str()]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &state.public, &validation) {
        Ok(data) => data.claims,
        Err(e) => return bad(&format!("signature or claims: {e}")),
    };
    let scope_ok = claims["scope"].as_str().is_some_and(|s| {
        s.split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/firebase.messaging")
    });
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    if !scope_ok || exp <= iat || exp - iat > 3600 || iat > unix_now() + 60 {
        return bad("scope, iat or exp");
    }
    let access = format!("ya29.{}", uuid::Uuid::new_v4().simple());
    lock(&state.issued).insert(access.clone());
    Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

const MESSAGE_FIELDS: [&str; 10] = [
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];

/// `POST /v1/projects/{project}/messages:send`.
async fn send(
    State(state): State<Arc<FcmState>>,
    Path((project, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    state.send_requests.fetch_add(1, Ordering::SeqCst);
    let delay = *lock(&state.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return FakeFcm::error(503, "UNAVAILABLE").into_response();
    }
    if action != "messages:send" {
        return refuse(&state, 404, "NOT_FOUND", format!("action {action}"));
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| lock(&state.issued).contains(t)) {
        return refuse(
            &state,
            401,
            "UNAUTHENTICATED",
            "no valid access token".to_owned(),
        );
    }
    if project != PROJECT {
        return refuse(
            &state,
            403,
            "PERMISSION_DENIED",
            format!("project {project}"),
        );
    }
    if let Some(reply) = state.script.next() {
        return reply.into_response();
    }
    let body: Value = match serde_json::from_str(&body) {
        Ok(body) => body,
        Err(_) => return refuse(&state, 400, "INVALID_ARGUMENT", "not JSON".to_owned()),
    };
    let Some(message) = body.get("message").and_then(Value::as_object) else {
        return refuse(&state, 400, "INVALID_ARGUMENT", "no message".to_owned());
    };
    if let Some(field) = message
        .keys()
        .find(|k| !MESSAGE_FIELDS.contains(&k.as_str()))
    {
        return refuse(
            &state,
            400,
            "INVALID_ARGUMENT",
            format!("unknown field {field}"),
        );
    }
    let Some(token) = message
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return refuse(&state, 400, "INVALID_ARGUMENT", "no token".to_owned());
    };
    // Data values must be strings; the notification's fields too.
    let data_ok = message.get("data").is_none_or(|d| {
        d.as_object()
            .is_some_and(|d| d.values().all(Value::is_string))
    });
    let notification_ok = message.get("notification").is_none_or(|n| {
        n.as_object()
            .is_some_and(|n| n.values().all(Value::is_string))
    });
    let android = &message.get("android").cloned().unwrap_or(Value::Null);
    let android_ok = android.is_null()
        || (android["priority"]
            .as_str()
            .is_none_or(|p| p == "normal" || p == "high")
            && android["collapse_key"]
                .as_str()
                .is_none_or(|c| !c.is_empty())
            && android["notification"]
                .get("notification_count")
                .is_none_or(|n| n.as_i64().is_some_and(|n| n >= 0)));
    let apns = &message.get("apns").cloned().unwrap_or(Value::Null);
    let apns_ok = apns.is_null()
        || (apns["headers"]
            .as_object()
            .is_none_or(|h| h.values().all(Value::is_string))
            && apns["payload"]["aps"].is_object());
    if !(data_ok && notification_ok && android_ok && apns_ok) {
        return refuse(
            &state,
            400,
            "INVALID_ARGUMENT",
            format!("bad shape: {body}"),
        );
    }
    if lock(&state.dead).contains(token) {
        return FakeFcm::error(404, "UNREGISTERED").into_response();
    }
    let name = format!(
        "projects/{PROJECT}/messages/{}",
        uuid::Uuid::new_v4().simple()
    );
    {
        // Under one lock with the arrival time, so the two lists line up.
        let mut accepted = lock(&state.accepted);
        accepted.push(Value::Object(message.clone()));
        lock(&state.accepted_at_ms).push(unix_now_ms());
    }
    Json(json!({ "name": name })).into_response()
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// `GET /stats` (for the benchmark): requests, and `[room_id, seq,
/// arrived_ms]` of every accepted message.
async fn stats(State(state): State<Arc<FcmState>>) -> Json<Value> {
    let accepted = lock(&state.accepted);
    let at = lock(&state.accepted_at_ms);
    let deliveries: Vec<Value> = accepted
        .iter()
        .zip(at.iter())
        .map(|(m, at)| json!([m["data"]["room_id"], m["data"]["seq"], at]))
        .collect();
    Json(json!({
        "send_requests": state.send_requests.load(Ordering::SeqCst),
        "accepted": deliveries,
    }))
}
