use std::net::SocketAddr;

use iyagi_server::{AppState, Application, BuildOptions, Settings};
use reqwest::{Client, Method, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served (`addr` unless `metrics.listen` is set).
    pub metrics_addr: SocketAddr,
    pub client: Client,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Settings for tests: port 0, the given database, cheap password hashing.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.database.url = database_url.into();
    settings.database.max_connections = 4;
    // Real argon2id, at a cost that keeps the suite fast.
    settings.auth.password.memory_kib = 256;
    settings.auth.password.iterations = 1;
    // Media of one's own per test (never the working directory's data/).
    let media = std::env::temp_dir().join(format!("iyagi-test-media-{}", uuid::Uuid::now_v7()));
    settings.media.path = media.join("objects");
    settings.media.spool_path = media.join("spool");
    settings
}

/// Settings for a node of a cluster: PostgreSQL (`database_url`), sessions
/// in Redis and fan-out over NATS, both under the test's own prefix.
pub fn cluster_settings(
    database_url: &str,
    redis: &iyagi_testkit::TestRedis,
    nats_url: String,
) -> Settings {
    let mut settings = test_settings(database_url);
    settings.session = iyagi_server::SessionSettings {
        store: iyagi_server::SessionBackend::Redis,
        redis_url: redis.url.clone().into(),
        redis_prefix: redis.prefix.clone(),
        ..Default::default()
    };
    settings.bus = iyagi_server::BusSettings {
        kind: iyagi_server::BusBackend::Nats,
        nats_url: nats_url.into(),
        subject_prefix: redis.prefix.clone(),
        ..Default::default()
    };
    settings
}

impl TestApp {
    pub async fn spawn(database_url: &str) -> TestApp {
        TestApp::spawn_with(test_settings(database_url)).await
    }

    pub async fn spawn_with(settings: Settings) -> TestApp {
        TestApp::spawn_with_options(settings, BuildOptions::default()).await
    }

    pub async fn spawn_with_push(
        settings: Settings,
        push: std::sync::Arc<dyn iyagi_chat::PushNotifier>,
    ) -> TestApp {
        TestApp::spawn_with_options(
            settings,
            BuildOptions {
                push: Some(push),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn spawn_with_options(settings: Settings, options: BuildOptions) -> TestApp {
        let app = Application::build_with(settings, options)
            .await
            .expect("build app");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            metrics_addr,
            client: Client::new(),
            state,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server and waits until it has shut down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// A GET without a token.
    pub async fn get_public(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// A GET with a token, its body parsed as JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.get(path, token)
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    /// `/metrics` as text (wherever it is served).
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.metrics_addr))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("a text body")
    }

    /// The direct room of `a` and `b` (created on first call).
    pub async fn direct_room(&self, a: &Tokens, b: &Tokens) -> String {
        let response = self
            .call(
                Method::POST,
                "/v1/rooms/direct",
                Some(&a.access),
                Some(json!({"user_id": b.user_id})),
            )
            .await;
        assert_eq!(response.status(), 200);
        let room: Value = response.json().await.expect("a JSON body");
        room["id"].as_str().expect("a room id").to_owned()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.call(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Value {
        let response = self
            .post(
                "/v1/auth/register",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(response.status(), 201, "register {username}");
        response.json().await.expect("json")
    }

    pub async fn login(&self, username: &str, password: &str, device: &str) -> Tokens {
        let response = self
            .post(
                "/v1/auth/login",
                json!({"username": username, "password": password,
                       "device": {"id": device, "platform": "android", "name": format!("{device} of {username}")}}),
            )
            .await;
        assert_eq!(response.status(), 200, "login {username}/{device}");
        Tokens::from(response.json::<Value>().await.expect("json"))
    }

    /// Registers `name` (if needed) and logs in on `device`.
    pub async fn user(&self, name: &str, device: &str) -> Tokens {
        let _ = self
            .post(
                "/v1/auth/register",
                json!({"username": name, "password": "correct horse"}),
            )
            .await;
        self.login(name, "correct horse", device).await
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/v1/ws?access_token={}", self.addr, token)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/v1/auth/refresh", json!({"refresh_token": refresh_token}))
            .await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The setup most scenarios start from: a server, two users on their
/// phones, and their direct room.
pub struct Pair {
    pub app: TestApp,
    pub alice: Tokens,
    pub bob: Tokens,
    pub room: String,
}

impl Pair {
    pub async fn start(settings: Settings) -> Pair {
        let app = TestApp::spawn_with(settings).await;
        let alice = app.user("alice", "phone").await;
        let bob = app.user("bob", "phone").await;
        let room = app.direct_room(&alice, &bob).await;
        Pair {
            app,
            alice,
            bob,
            room,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl From<Value> for Tokens {
    fn from(v: Value) -> Tokens {
        Tokens {
            access: v["access_token"].as_str().expect("access_token").to_owned(),
            refresh: v["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
            user_id: v["user_id"].as_str().expect("user_id").to_owned(),
        }
    }
}

/// Asserts an error response: status and stable code; returns the body.
pub async fn expect_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status, "status for expected {code}");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error has a message: {body}"
    );
    body
}
