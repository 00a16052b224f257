//! One client must not hurt the server: a connection that asks for much and
//! reads nothing is bounded in the bytes it pins, gets an answer per frame
//! or a real 4001 close, and is never silently dropped.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Pair, TestApp, test_settings};
use crate::ws_client::WsClient;

type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until the server closes the connection, or says nothing for
/// `quiet`; returns the `ref`s of the `history` answers and errors, in
/// arrival order, and the close code (`None`: no close frame).
async fn read_answers(ws: &mut RawWs, quiet: Duration) -> (Vec<String>, Option<u16>) {
    let mut refs = Vec::new();
    loop {
        match tokio::time::timeout(quiet, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "history" || frame["type"] == "error" {
                    refs.push(frame["ref"].as_str().unwrap_or("?").to_owned());
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                // Answer the close, as every client library does.
                while let Some(Ok(_)) = ws.next().await {}
                return (refs, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("socket error instead of a close frame: {e}"),
            Ok(None) | Err(_) => return (refs, None),
        }
    }
}

#[tokio::test]
async fn a_reader_of_large_history_pages_pins_bounded_memory_and_is_closed() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.ws.frames_per_second = 10_000;
    let per_connection = settings.ws.outbound_queue_bytes;
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(settings).await;

    // 200 messages of ~15 KiB: each full history page is ~3 MiB.
    let mut a = WsClient::connect_live(&app, &alice).await;
    let pad = "p".repeat(15 * 1024);
    for chunk in (0..200).collect::<Vec<_>>().chunks(20) {
        for i in chunk {
            a.send(json!({"type": "send", "ref": format!("s{i}"), "room_id": room, "client_msg_id": format!("s{i}"),
                          "kind": "text", "content": {"text": "big", "pad": pad}}))
                .await;
        }
        for _ in chunk {
            a.expect_type("ack").await;
        }
    }
    a.close().await;

    // Bob asks for 60 full pages (~180 MiB of answers) and reads nothing.
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url(&bob.access))
        .await
        .unwrap();
    for i in 0..60 {
        ws.send(Message::Text(
            json!({"type": "history", "ref": format!("h{i}"), "room_id": room, "limit": 200})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    let hub = app.state.hub.clone();
    let mut peak = 0;
    for _ in 0..30 {
        peak = peak.max(hub.queued_bytes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Bounded by its own limit, plus the one page in hand when it filled.
    assert!(
        peak <= per_connection + iyagi_server::settings::HISTORY_PAGE_MAX_BYTES,
        "queued bytes peaked at {peak}"
    );
    let (answers, code) = read_answers(&mut ws, Duration::from_secs(20)).await;
    assert_eq!(
        code,
        Some(4001),
        "a real close frame, after {} answers",
        answers.len()
    );
    assert!(
        answers.len() < 60,
        "it could not have been given all of them"
    );
    let in_order: Vec<String> = (0..answers.len()).map(|i| format!("h{i}")).collect();
    assert_eq!(
        answers, in_order,
        "what did arrive came in order, with nothing skipped"
    );
    assert_eq!(hub.queued_bytes(), 0, "everything it held is released");
    app.stop().await;
    db.cleanup().await;
}

/// A WebSocket client whose socket receive buffer is small, so that what
/// the server sends backs up in the server rather than in this kernel.
async fn connect_with_small_buffer(app: &TestApp, token: &str) -> RawWs {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(app.addr).await.unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(app.ws_url(token), stream)
        .await
        .unwrap();
    ws
}

#[tokio::test]
async fn pipelined_requests_get_an_answer_each_or_a_close() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.ws.frames_per_second = 10_000;
    // Only the frame bound can be reached here.
    settings.ws.outbound_queue_bytes = 256 * 1024 * 1024;
    settings.ws.outbound_total_bytes = 1024 * 1024 * 1024;
    let Pair {
        app, alice, room, ..
    } = Pair::start(settings).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let pad = "p".repeat(15 * 1024);
    for i in 0..8 {
        a.send(json!({"type": "send", "ref": format!("s{i}"), "room_id": room, "client_msg_id": format!("s{i}"),
                      "kind": "text", "content": {"text": "big", "pad": pad}}))
            .await;
        a.expect_type("ack").await;
    }
    // 400 requests of ~120 KiB answers each, pipelined without reading.
    let mut ws = connect_with_small_buffer(&app, &alice.access).await;
    for i in 0..400 {
        ws.send(Message::Text(
            json!({"type": "history", "ref": format!("h{i}"), "room_id": room, "limit": 8})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    // Read only once the server has given up on this connection.
    let hub = app.state.hub.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while hub.slow_closed_total() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed as slow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (answers, code) = read_answers(&mut ws, Duration::from_secs(3)).await;
    let in_order: Vec<String> = (0..answers.len()).map(|i| format!("h{i}")).collect();
    assert_eq!(answers, in_order, "answers in order, none skipped");
    assert!(
        answers.len() < 400,
        "400 answers of 120 KiB cannot all fit 256 queued frames and the socket buffers"
    );
    assert_eq!(
        code,
        Some(4001),
        "after {} answers: the rest is refused with a real close frame",
        answers.len()
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_queue_too_small_for_the_protocol_is_refused_at_start() {
    let mut settings = test_settings("sqlite::memory:");
    settings.ws.outbound_queue = 16;
    let error = settings.validate().unwrap_err();
    assert!(error.contains("ws.outbound_queue = 16"), "{error}");
    let mut settings = test_settings("sqlite::memory:");
    settings.ws.outbound_queue_bytes = 64 * 1024;
    let error = settings.validate().unwrap_err();
    assert!(error.contains("ws.outbound_queue_bytes"), "{error}");
}
