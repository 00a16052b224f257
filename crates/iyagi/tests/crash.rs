//! "Acknowledged means stored": the real binary is killed with SIGKILL
//! while sends are in flight; after a restart on the same database every
//! acknowledged message is there, exactly once.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{free_port, json_of, login, start};

#[tokio::test]
async fn acknowledged_messages_survive_kill_dash_nine() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/iyagi.db", dir.path().display());
    let port = free_port();
    let mut server = start(&db, port, &ws_settings()).await;
    let http = reqwest::Client::new();
    let alice = login(&http, &server.base, "alice").await;
    let bob = login(&http, &server.base, "bob").await;
    let room = json_of(
        http.post(format!("{}/v1/rooms/direct", server.base))
            .bearer_auth(alice["access_token"].as_str().unwrap())
            .json(&json!({"user_id": bob["user_id"]})),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();

    let url = format!(
        "ws://127.0.0.1:{port}/v1/ws?access_token={}",
        alice["access_token"].as_str().unwrap()
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    // Pipeline many sends, and kill the server while acks are still coming.
    // At most a window of sends is unacknowledged, as a real client keeps
    // it: a client that sends without reading its acks and echoes fills
    // its outbound queue and is closed as a slow reader (which the reader
    // below, sharing this test's one thread with the sender, sometimes was).
    let total = 3000;
    let window = Arc::new(tokio::sync::Semaphore::new(64));
    let sender_window = window.clone();
    let sender = tokio::spawn(async move {
        for i in 0..total {
            let Ok(permit) = sender_window.acquire().await else {
                break;
            };
            permit.forget();
            let frame = json!({"type": "send", "room_id": room, "client_msg_id": format!("c{i}"), "kind": "text", "content": {"text": format!("m{i}")}});
            if sink
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        (sink, room)
    });
    let mut acked = Vec::new();
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "ack" {
            window.add_permits(1);
            acked.push(
                frame["message"]["client_msg_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            if acked.len() == 500 {
                server.child.kill().unwrap(); // SIGKILL
                server.child.wait().unwrap();
            }
        }
    }
    // The server is gone: release a sender waiting for its window.
    window.close();
    let (_, room) = sender.await.unwrap();
    assert!(acked.len() >= 500, "acks before the kill: {}", acked.len());
    assert!(acked.len() < total, "the kill interrupted the run");

    let mut server = start(&db, port, &ws_settings()).await;
    let token = bob["access_token"].as_str().unwrap();
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = http
            .get(format!(
                "{}/v1/rooms/{room}/messages?after_seq={after}&limit=200",
                server.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages = page["messages"].as_array().unwrap();
        for m in messages {
            if m["kind"] == "text" {
                stored.push(m["client_msg_id"].as_str().unwrap().to_owned());
            }
            after = m["seq"].as_i64().unwrap();
        }
        if page["has_more"] != true {
            break;
        }
    }
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "no duplicates after the crash");
    for id in &acked {
        assert!(stored.contains(id), "acknowledged {id} was lost");
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// Sends are pipelined faster than the default frame rate allows.
fn ws_settings() -> Vec<(&'static str, String)> {
    vec![("IYAGI_WS__FRAMES_PER_SECOND", "100000".to_owned())]
}
