//! Every error over the socket can be matched to the frame it answers.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, test_settings};
use crate::ws_client::WsClient;

#[tokio::test]
async fn every_answer_and_error_echoes_the_ref_it_could_read() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.ws.max_frame_bytes = 8 * 1024;
    settings.ws.frames_per_second = 3;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let carol = app.user("carol", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let theirs = app.direct_room(&bob, &carol).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let pace = || tokio::time::sleep(Duration::from_millis(400));

    let cases = vec![
        (
            "unknown type",
            json!({"type": "explode", "ref": "r1"}),
            "unknown_frame_type",
        ),
        (
            "missing field",
            json!({"type": "send", "ref": "r2", "room_id": room}),
            "invalid_request",
        ),
        (
            "malformed id",
            json!({"type": "read", "ref": "r3", "room_id": "nope", "seq": 1}),
            "invalid_request",
        ),
        (
            "wrong type",
            json!({"type": "read", "ref": "r4", "room_id": room, "seq": "one"}),
            "invalid_request",
        ),
        (
            "typing elsewhere",
            json!({"type": "typing", "ref": "r5", "room_id": theirs}),
            "not_a_member",
        ),
        (
            "view elsewhere",
            json!({"type": "view", "ref": "r6", "room_id": theirs}),
            "not_a_member",
        ),
        (
            "too large",
            json!({"type": "typing", "ref": "r7", "room_id": room, "pad": "x".repeat(9000)}),
            "frame_too_large",
        ),
    ];
    for (name, frame, code) in cases {
        let reference = frame["ref"].clone();
        a.send(frame).await;
        let error = a.expect_type("error").await;
        assert_eq!(
            (error["code"].clone(), error["ref"].clone()),
            (json!(code), reference),
            "{name}: {error}"
        );
        pace().await;
    }
    // A ref that is not a string cannot be echoed; the error still comes.
    a.send(json!({"type": "explode", "ref": 7})).await;
    let error = a.expect_type("error").await;
    assert!(error.get("ref").is_none(), "{error}");
    pace().await;

    // `view` answers with its ref.
    a.send(json!({"type": "view", "ref": "v", "room_id": room}))
        .await;
    let viewing = a.expect_type("viewing").await;
    assert_eq!(
        (viewing["ref"].clone(), viewing["room_id"].clone()),
        (json!("v"), json!(room))
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Refused unread for the rate: the ref still comes back.
    for i in 0..6 {
        a.send_raw(Message::Text(
            json!({"type": "typing", "ref": format!("t{i}"), "room_id": room})
                .to_string()
                .into(),
        ))
        .await;
    }
    let limited = a
        .expect("rate_limited", |f| f["code"] == "rate_limited")
        .await;
    assert!(
        limited["ref"].as_str().is_some_and(|r| r.starts_with('t')),
        "{limited}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // A sync naming a room one is not in says which room.
    a.send(json!({"type": "sync", "ref": "s", "rooms": [{"room_id": theirs, "after_seq": 0}, {"room_id": room, "after_seq": 0}]}))
        .await;
    let error = a
        .expect("sync's error", |f| f["type"] == "error" && f["ref"] == "s")
        .await;
    assert_eq!(
        (
            error["code"].clone(),
            error["ref"].clone(),
            error["room_id"].clone()
        ),
        (json!("not_a_member"), json!("s"), json!(theirs)),
        "{error}"
    );
    assert_eq!(
        a.expect_message().await["seq"],
        1,
        "the other room is caught up"
    );
    assert_eq!(a.expect_type("synced").await["ref"], "s");
    app.stop().await;
    db.cleanup().await;
}
