//! Private instances of Redis and NATS for fault tests: each on a port of
//! its own, which the test stops and starts again. Fault tests never stop
//! the shared services that other tests are using at the same moment.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The credentials of [`PrivateService::s3`].
pub const S3_ACCESS_KEY: &str = "iyagi-test-access";
pub const S3_SECRET_KEY: &str = "iyagi-test-secret-key-0123456789";

/// A service process the test owns. Killed when dropped.
pub struct PrivateService {
    program: String,
    args: Vec<String>,
    port: u16,
    scheme: &'static str,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl PrivateService {
    /// A private `redis-server` (keeping nothing on disk, like the shared one).
    /// `None` outside CI when it is not installed; a failure under CI.
    pub async fn redis() -> Option<PrivateService> {
        let program = find("redis-server")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            dir.path().display().to_string(),
        ];
        PrivateService::started(program, args, port, "redis", dir).await
    }

    /// A private `nats-server` (core NATS, no JetStream).
    pub async fn nats() -> Option<PrivateService> {
        let program = find("nats-server")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        PrivateService::started(program, args, port, "nats", dir).await
    }

    /// A private S3-compatible server: `s3s-fs` (crates.io), which checks
    /// SigV4 signatures and presigned URLs' expiry, on a folder of its own
    /// holding the bucket `bucket`; credentials [`S3_ACCESS_KEY`] /
    /// [`S3_SECRET_KEY`]. Found at `$IYAGI_TEST_S3FS` or on PATH (`.ci/run`
    /// installs it). `None` outside CI when missing; a failure under CI.
    pub async fn s3(bucket: &str) -> Option<PrivateService> {
        let program = match std::env::var("IYAGI_TEST_S3FS") {
            Ok(path) if !path.is_empty() => path,
            _ => find("s3s-fs")?,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(bucket)).expect("bucket folder");
        let port = free_port();
        let args = vec![
            "--host".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port.to_string(),
            "--access-key".to_owned(),
            S3_ACCESS_KEY.to_owned(),
            "--secret-key".to_owned(),
            S3_SECRET_KEY.to_owned(),
            dir.path().display().to_string(),
        ];
        PrivateService::started(program, args, port, "http", dir).await
    }

    /// Media settings for this S3 server's `bucket` (see [`PrivateService::s3`]).
    pub fn s3_media_settings(&self, bucket: &str) -> iyagi_media::S3Settings {
        iyagi_media::S3Settings {
            bucket: bucket.to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: self.url(),
            path_style: true,
            allow_http: true,
            access_key_id: S3_ACCESS_KEY.to_owned(),
            secret_access_key: S3_SECRET_KEY.to_owned(),
        }
    }

    async fn started(
        program: String,
        args: Vec<String>,
        port: u16,
        scheme: &'static str,
        dir: tempfile::TempDir,
    ) -> Option<PrivateService> {
        let mut service = PrivateService {
            program,
            args,
            port,
            scheme,
            child: None,
            _dir: dir,
        };
        service.start().await;
        Some(service)
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// Starts it (again, on the same port) and waits until it accepts connections.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program));
        self.child = Some(child);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not start listening on {}", self.program, self.port);
    }

    /// Kills it (SIGKILL: nothing is flushed, nobody is told) and waits
    /// until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for PrivateService {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The program on PATH or in the sbin directories Debian puts servers in.
fn find(program: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"])
        .map(|dir| format!("{dir}/{program}"))
        .find(|candidate| std::path::Path::new(candidate).is_file());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{program} is not installed, and under CI=true a missing service is a failure");
        }
        eprintln!("skipped: {program} is not installed");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
