//! Clients that never finish their requests, or open too many connections,
//! cannot hold the server's sockets or shut others out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{TestApp, expect_error, test_settings};
use crate::ws_client::WsClient;

/// A raw TCP connection to the server from `source` (127.0.0.x).
async fn connect_from(app: &TestApp, source: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket.connect(app.addr).await.unwrap()
}

/// Waits until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {within:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// Reads one HTTP/1.1 response (headers and a content-length body).
async fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while got.len() < end + 4 + length {
                let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                    .await
                    .expect("body in time")
                    .unwrap();
                assert!(n > 0, "closed mid-body");
                got.extend_from_slice(&buf[..n]);
            }
            let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
            let body =
                serde_json::from_slice(&got[end + 4..end + 4 + length]).unwrap_or(Value::Null);
            return (status, head, body);
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before a response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

fn fast_timeouts(db: &iyagi_testkit::TestDb) -> iyagi_server::Settings {
    let mut settings = test_settings(&db.url);
    settings.server.header_read_timeout_ms = 500;
    settings.server.body_read_timeout_ms = 500;
    settings
}

#[tokio::test]
async fn requests_that_never_finish_are_closed() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn_with(fast_timeouts(&db)).await;

    // Silent from the start.
    let mut silent = connect_from(&app, [127, 0, 0, 1]).await;
    let started = Instant::now();
    read_until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(400));

    // Headers dripping in, one line at a time (slowloris).
    let mut dripping = connect_from(&app, [127, 0, 0, 1]).await;
    dripping
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let drip = async {
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if dripping
                .write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let started = Instant::now();
    drip.await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drip was cut off"
    );
    read_until_closed(&mut dripping, Duration::from_secs(3)).await;

    // Slowloris on the WebSocket upgrade, the same.
    let mut upgrade = connect_from(&app, [127, 0, 0, 1]).await;
    upgrade
        .write_all(b"GET /v1/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n")
        .await
        .unwrap();
    read_until_closed(&mut upgrade, Duration::from_secs(3)).await;

    // Idle on a keep-alive connection after a complete request.
    let mut keep_alive = connect_from(&app, [127, 0, 0, 1]).await;
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut keep_alive).await;
    assert_eq!(status, 200);
    read_until_closed(&mut keep_alive, Duration::from_secs(3)).await;

    // A body that stops arriving: 408 with the JSON error, then closed.
    let mut slow_body = connect_from(&app, [127, 0, 0, 1]).await;
    slow_body
        .write_all(b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user")
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut slow_body).await;
    assert_eq!(
        (status, body["code"].clone()),
        (408, json!("request_timeout")),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    read_until_closed(&mut slow_body, Duration::from_secs(3)).await;
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_refused_request_whose_body_comes_late_keeps_the_connection_usable() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    let mut stream = connect_from(&app, [127, 0, 0, 1]).await;
    let body = br#"{"refresh_token": "rt_nothing"}"#;
    // Refused without a token; the body follows the headers a little later.
    stream
        .write_all(format!("POST /v1/auth/logout HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(body).await.unwrap();
    let (status, head, error) = read_response(&mut stream).await;
    assert_eq!(
        (status, error["code"].clone()),
        (401, json!("unauthenticated")),
        "{head}"
    );
    // The same connection serves the next request.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.server.max_unauthenticated_per_address = 5;
    let app = TestApp::spawn_with(settings).await;
    let tokens = app.user("alice", "phone").await;

    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from(&app, [127, 0, 0, 3]).await);
    }
    let mut sixth = connect_from(&app, [127, 0, 0, 3]).await;
    let refused =
        String::from_utf8(read_until_closed(&mut sixth, Duration::from_secs(3)).await).unwrap();
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.contains(r#""code":"too_many_connections""#),
        "{refused}"
    );
    // Another address is not affected.
    let mut other = connect_from(&app, [127, 0, 0, 4]).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut other).await.0, 200);
    // Once they go, the address may connect again; an authenticated
    // WebSocket no longer counts against it.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sockets = Vec::new();
    for _ in 0..6 {
        sockets.push(WsClient::connect_live(&app, &tokens).await);
    }
    let mut plain = connect_from(&app, [127, 0, 0, 1]).await;
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut plain).await.0, 200);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_server_caps_its_connections() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.server.max_connections = 4;
    let app = TestApp::spawn_with(settings).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(connect_from(&app, [127, 0, 0, 10 + i]).await);
    }
    let mut fifth = connect_from(&app, [127, 0, 0, 20]).await;
    let refused =
        String::from_utf8(read_until_closed(&mut fifth, Duration::from_secs(3)).await).unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(&app, [127, 0, 0, 20]).await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut again).await.0, 200);
    drop(again);

    // WebSockets keep their place for their whole life (the login goes
    // through a client that keeps no idle connection to take one).
    let no_pool = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = app.url("/v1/auth/register");
    no_pool
        .post(&url)
        .json(&json!({"username": "alice", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    let login: Value = no_pool
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": "alice", "password": "correct horse", "device": {"id": "p", "platform": "ios"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tokens = crate::helpers::Tokens::from(login);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(WsClient::connect_live(&app, &tokens).await);
    }
    let mut over = connect_from(&app, [127, 0, 0, 21]).await;
    let refused =
        String::from_utf8(read_until_closed(&mut over, Duration::from_secs(3)).await).unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn one_user_or_device_cannot_open_unbounded_sockets() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.ws.max_connections_per_device = 2;
    settings.ws.max_connections_per_user = 3;
    let app = TestApp::spawn_with(settings).await;
    let phone = app.user("alice", "phone").await;
    let laptop = app.user("alice", "laptop").await;
    let tablet = app.user("alice", "tablet").await;
    let _a = WsClient::connect(&app, &phone).await;
    let _b = WsClient::connect(&app, &phone).await;
    let refused = app
        .client
        .get(app.ws_url(&phone.access).replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    expect_error(refused, 429, "too_many_connections").await;
    let _c = WsClient::connect(&app, &laptop).await;
    let refused = tokio_tungstenite::connect_async(app.ws_url(&tablet.access)).await;
    assert!(
        refused.is_err(),
        "a fourth connection of the user is refused"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn token_answers_are_never_cached_and_bad_paths_get_json_errors() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    app.register("alice", "correct horse").await;
    let login = app
        .post(
            "/v1/auth/login",
            json!({"username": "alice", "password": "correct horse", "device": {"id": "p", "platform": "ios"}}),
        )
        .await;
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    assert_eq!(login.headers()["pragma"], "no-cache");
    let tokens: Value = login.json().await.unwrap();
    let refreshed = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let access = refreshed.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bad = app
        .call(
            reqwest::Method::DELETE,
            "/v1/devices/%ff",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(bad.headers()["content-type"], "application/json");
    expect_error(bad, 400, "invalid_request").await;
    app.stop().await;
    db.cleanup().await;
}

/// Opens a WebSocket by hand (so the test can then send frames no client
/// library would) and returns the raw stream after the 101.
async fn raw_websocket(app: &TestApp, token: &str) -> TcpStream {
    let mut stream = connect_from(app, [127, 0, 0, 1]).await;
    let request = format!(
        "GET /v1/ws?access_token={token} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// Reads frames until a close frame; returns its code.
async fn close_code(stream: &mut TcpStream) -> u16 {
    loop {
        let mut header = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut header))
            .await
            .expect("a frame in time")
            .expect("a close frame before the socket ends");
        let opcode = header[0] & 0x0f;
        let mut len = u64::from(header[1] & 0x7f);
        if len == 126 {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.unwrap();
            len = u64::from(u16::from_be_bytes(ext));
        } else if len == 127 {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.unwrap();
            len = u64::from_be_bytes(ext);
        }
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload).await.unwrap();
        if opcode == 0x8 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

#[tokio::test]
async fn protocol_violations_get_a_close_frame() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    let tokens = app.user("alice", "phone").await;

    // Text that is not UTF-8 (masked, as a client must): 1007.
    let mut stream = raw_websocket(&app, &tokens.access).await;
    let payload = [0xffu8, 0xfe, 0xfd];
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.unwrap();
    assert_eq!(close_code(&mut stream).await, 1007);

    // An unmasked client frame: 1002.
    let mut stream = raw_websocket(&app, &tokens.access).await;
    stream.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(close_code(&mut stream).await, 1002);
    app.stop().await;
    db.cleanup().await;
}
