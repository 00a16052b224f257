//! Two server nodes sharing PostgreSQL, Redis and NATS: a user on one node
//! chats with a user on the other.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cluster_settings};
use crate::ws_client::WsClient;

#[tokio::test]
async fn two_nodes_share_rooms_presence_revocations_and_catch_up() {
    let Some(nats_url) = iyagi_testkit::service_url("IYAGI_TEST_NATS_URL") else {
        return;
    };
    let Some(redis) = iyagi_testkit::TestRedis::new().await else {
        return;
    };
    let Some(db) = iyagi_testkit::TestDb::postgres().await else {
        return;
    };
    let settings = cluster_settings(&db.url, &redis, nats_url);
    let pushes = Arc::new(iyagi_chat::RecordingNotifier::default());
    let node_a = TestApp::spawn_with_push(settings.clone(), pushes.clone()).await;
    let node_b = TestApp::spawn_with(settings).await;

    let alice = node_a.user("alice", "phone").await;
    let bob = node_b.user("bob", "phone").await;
    let room: Value = node_a
        .call(
            Method::POST,
            "/v1/rooms/direct",
            Some(&alice.access),
            Some(json!({"user_id": bob.user_id})),
        )
        .await
        .json()
        .await
        .unwrap();
    let room = room["id"].as_str().unwrap().to_owned();

    let mut bob_ws = WsClient::connect_live(&node_b, &bob).await;
    let mut alice_ws = WsClient::connect_live(&node_a, &alice).await;
    bob_ws
        .expect("alice online, seen across nodes", |f| {
            f["type"] == "presence" && f["user_id"] == alice.user_id.as_str() && f["online"] == true
        })
        .await;

    // Bob views the room on node B; alice writes on node A.
    bob_ws.send(json!({"type": "view", "room_id": room})).await;
    bob_ws.expect_type("viewing").await;
    let sent = alice_ws.say(&room, "a1", "hello from node A").await;
    assert_eq!(bob_ws.expect_message().await["id"], sent["id"]);
    let reply = bob_ws.say(&room, "b1", "hello from node B").await;
    assert_eq!(
        alice_ws
            .expect("bob's reply", |f| f["type"] == "message"
                && f["message"]["id"] == reply["id"])
            .await["message"]["seq"],
        3
    );
    // Bob was viewing the room (on the other node): no push for him.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pushes
            .sent()
            .iter()
            .all(|n| n.user_id.to_string() != bob.user_id),
        "{:?}",
        pushes.sent()
    );

    // Bob drops off node B and catches up on node A.
    bob_ws.close().await;
    alice_ws
        .expect("bob offline", |f| {
            f["type"] == "presence" && f["online"] == false
        })
        .await;
    let mut last = 0;
    for i in 0..3 {
        last = alice_ws
            .say(&room, &format!("m{i}"), "while you were away")
            .await["seq"]
            .as_i64()
            .unwrap();
    }
    let mut bob_on_a = WsClient::connect(&node_a, &bob).await;
    bob_on_a
        .send(json!({"type": "sync", "rooms": [{"room_id": room, "after_seq": 3}]}))
        .await;
    for seq in 4..=last {
        assert_eq!(bob_on_a.expect_message().await["seq"], seq);
    }
    bob_on_a.expect_type("synced").await;

    // A group: node A caches its members as soon as alice writes there; carol
    // is then added through node B and must get alice's next message.
    let carol = node_b.user("carol", "phone").await;
    let group: Value = node_a
        .call(
            Method::POST,
            "/v1/rooms",
            Some(&alice.access),
            Some(json!({"title": "g", "members": [bob.user_id]})),
        )
        .await
        .json()
        .await
        .unwrap();
    let group = group["id"].as_str().unwrap().to_owned();
    alice_ws.say(&group, "g1", "before carol").await;
    let mut carol_ws = WsClient::connect_live(&node_b, &carol).await;
    let added = node_b
        .call(
            Method::POST,
            &format!("/v1/rooms/{group}/members"),
            Some(&bob.access),
            Some(json!({"user_id": carol.user_id})),
        )
        .await;
    assert_eq!(added.status(), 200);
    carol_ws
        .expect("carol's join", |f| {
            f["type"] == "message" && f["message"]["kind"] == "member_joined"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = alice_ws.say(&group, "g2", "welcome carol").await;
    let got = carol_ws
        .expect("alice's message", |f| {
            f["type"] == "message" && f["message"]["kind"] == "text"
        })
        .await;
    assert_eq!(got["message"]["id"], after["id"]);

    // Logging in again on the same device through node A replaces the
    // session: the old one's connection on node B closes.
    let carol_again = node_a.login("carol", "correct horse", "phone").await;
    let mut carol_on_a = WsClient::connect_live(&node_a, &carol_again).await;
    assert_eq!(carol_ws.expect_closed().await, Some(4002));
    carol_on_a.send(json!({"type": "sync", "ref": "c"})).await;
    assert_eq!(carol_on_a.expect_type("synced").await["ref"], "c");

    // Logging out through node B closes alice's connection on node A.
    assert_eq!(
        node_b
            .call(Method::POST, "/v1/auth/logout", Some(&alice.access), None)
            .await
            .status(),
        204
    );
    assert_eq!(alice_ws.expect_closed().await, Some(4002));

    node_a.stop().await;
    node_b.stop().await;
    db.cleanup().await;
    redis.cleanup().await;
}
