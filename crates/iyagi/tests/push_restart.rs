//! Pending pushes survive a crash: the real binary, configured with a fake
//! FCM that is down, stores notifications whose deliveries cannot be made;
//! it is killed with SIGKILL, FCM comes back, and after a restart every
//! notification is delivered exactly once.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use iyagi_testkit::push_fakes::{FakeFcm, eventually};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{Server, free_port, json_of, login};

async fn start(db: &str, port: u16, fcm: &FakeFcm) -> Server {
    let env = [
        (
            "IYAGI_PUSH__FCM__SERVICE_ACCOUNT_FILE",
            fcm.service_account_file().display().to_string(),
        ),
        ("IYAGI_PUSH__FCM__BASE_URL", fcm.base_url.clone()),
        ("IYAGI_PUSH__BASE_BACKOFF_MS", "100".to_owned()),
        ("IYAGI_PUSH__MAX_BACKOFF_SECS", "1".to_owned()),
        ("IYAGI_PUSH__MAX_ATTEMPTS", "1000".to_owned()),
        ("IYAGI_PUSH__POLL_MS", "50".to_owned()),
        // A delivery in flight when the server is killed waits out its
        // lease before it is claimed again: short here, so the restart
        // sends it within the test's patience.
        ("IYAGI_PUSH__LEASE_SECS", "2".to_owned()),
    ];
    common::start(db, port, &env).await
}

#[tokio::test]
async fn pending_pushes_survive_kill_dash_nine() {
    let fcm = FakeFcm::start().await;
    fcm.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/iyagi.db", dir.path().display());
    let port = free_port();
    let mut server = start(&db, port, &fcm).await;
    let http = reqwest::Client::new();
    let alice = login(&http, &server.base, "alice").await;
    let bob = login(&http, &server.base, "bob").await;
    let registered = http
        .put(format!("{}/v1/push/registrations/fcm", server.base))
        .bearer_auth(bob["access_token"].as_str().unwrap())
        .json(&json!({"token": "bobs-phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 204);
    // One room per message: a room's waiting pushes collapse into its
    // newest, and here every notification is to be pushed.
    let count = 5;
    let mut rooms = Vec::new();
    for _ in 0..count {
        let room = json_of(
            http.post(format!("{}/v1/rooms", server.base))
                .bearer_auth(alice["access_token"].as_str().unwrap())
                .json(&json!({"title": "group", "members": [bob["user_id"]]})),
        )
        .await;
        rooms.push(room["id"].as_str().unwrap().to_owned());
    }
    let url = format!(
        "ws://127.0.0.1:{port}/v1/ws?access_token={}",
        alice["access_token"].as_str().unwrap()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for (i, room) in rooms.iter().enumerate() {
        let frame = json!({"type": "send", "room_id": room, "client_msg_id": format!("c{i}"), "kind": "text", "content": {"text": format!("m{i}")}});
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < count {
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            panic!("socket closed")
        };
        if serde_json::from_str::<Value>(&text).unwrap()["type"] == "ack" {
            acks += 1;
        }
    }
    // Every delivery has been tried (and failed) at least once.
    assert!(eventually(Duration::from_secs(10), || fcm.send_requests() >= count).await);
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert!(fcm.accepted().is_empty());

    fcm.set_down(false);
    let server = start(&db, port, &fcm).await;
    assert!(
        eventually(Duration::from_secs(20), || fcm.accepted().len() >= count).await,
        "delivered after the restart: {}",
        fcm.accepted().len()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for message in fcm.accepted() {
        *delivered
            .entry(
                message["data"]["notification_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    let inbox = json_of(
        http.get(format!("{}/v1/notifications", server.base))
            .bearer_auth(bob["access_token"].as_str().unwrap()),
    )
    .await;
    let stored: Vec<String> = inbox["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored.len(), count, "{inbox}");
    for id in &stored {
        assert_eq!(
            delivered.get(id),
            Some(&1),
            "notification {id} delivered once: {delivered:?}"
        );
    }
    assert_eq!(delivered.len(), count);
}
