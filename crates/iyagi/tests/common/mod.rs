//! What the real-binary tests share: a server process on a free port
//! (killed when dropped, so a failed assertion leaves none running) and a
//! registered, logged-in user.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `iyagi serve` on `port` and `db` with cheap password hashing and
/// `env` on top, and waits until it answers `/healthz`.
pub async fn start(db: &str, port: u16, env: &[(&str, String)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iyagi"));
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            db,
            "--log-level",
            "warn",
        ])
        .env("IYAGI_AUTH__PASSWORD__MEMORY_KIB", "64")
        .env("IYAGI_AUTH__PASSWORD__ITERATIONS", "1")
        // Media of its own (never the working directory's data/).
        .env(
            "IYAGI_MEDIA__PATH",
            std::env::temp_dir().join(format!("iyagi-bin-media-{port}")),
        )
        .env(
            "IYAGI_MEDIA__SPOOL_PATH",
            std::env::temp_dir().join(format!("iyagi-bin-spool-{port}")),
        )
        .stdout(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let server = Server {
        child: command.spawn().expect("start iyagi"),
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..200 {
        if reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not start");
}

/// Sends `request` and reads its JSON answer.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Registers `name` and logs in on device `d`; the login's answer.
pub async fn login(http: &reqwest::Client, base: &str, name: &str) -> Value {
    http.post(format!("{base}/v1/auth/register"))
        .json(&json!({"username": name, "password": "binary-test-pw"}))
        .send()
        .await
        .unwrap();
    json_of(
        http.post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": name, "password": "binary-test-pw", "device": {"id": "d", "platform": "android"}})),
    )
    .await
}
