//! Faults of the services a cluster shares, with private NATS and Redis
//! processes that these tests kill and start again (never the shared ones).

use std::sync::Arc;
use std::time::{Duration, Instant};

use iyagi_testkit::PrivateService;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cluster_settings, test_settings};
use crate::realtime::group_room;
use crate::ws_client::WsClient;

/// Waits until the node's bus is (or is not) connected.
async fn bus_connected(node: &TestApp, connected: bool) {
    let mut state = node.state.bus.state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| s.connected == connected),
    )
    .await
    .expect("the bus changed state in time")
    .expect("bus alive");
}

#[tokio::test]
async fn lost_bus_events_never_leave_stale_authorization() {
    let Some(mut nats) = PrivateService::nats().await else {
        return;
    };
    let Some(redis) = iyagi_testkit::TestRedis::new().await else {
        return;
    };
    let Some(db) = iyagi_testkit::TestDb::postgres().await else {
        return;
    };
    let mut settings = cluster_settings(&db.url, &redis, nats.url());
    // Long enough that only the outage handling can explain a refusal.
    settings.bus.member_cache_ttl_ms = 600_000;
    settings.bus.session_recheck_secs = 600;
    settings.bus.outage_recheck_ms = 300;
    let node_a = TestApp::spawn_with(settings.clone()).await;
    let node_b = TestApp::spawn_with(settings).await;

    let alice = node_a.user("alice", "phone").await;
    let bob = node_b.user("bob", "phone").await;
    let carol = node_b.user("carol", "phone").await;
    let dave = node_b.user("dave", "phone").await;
    let group = group_room(&node_a, &alice, &[&bob]).await;
    let mut alice_ws = WsClient::connect_live(&node_a, &alice).await;
    let mut bob_ws = WsClient::connect_live(&node_b, &bob).await;
    let mut carol_ws = WsClient::connect_live(&node_b, &carol).await;
    // Node B caches the group's members.
    bob_ws.say(&group, "b1", "hi").await;

    nats.kill().await;
    bus_connected(&node_a, false).await;
    bus_connected(&node_b, false).await;
    // Through node A, while no event can reach node B: bob is removed from
    // the group and carol's device signs out.
    let removed = node_a
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{group}/members/{}", bob.user_id),
            Some(&alice.access),
            None,
        )
        .await;
    assert_eq!(removed.status(), 204);
    let logout = node_a
        .call(Method::POST, "/v1/auth/logout", Some(&carol.access), None)
        .await;
    assert_eq!(logout.status(), 204);

    // Node B must not go on trusting what it knew.
    bob_ws
        .send(
            json!({"type": "send", "ref": "during", "room_id": group, "client_msg_id": "b2",
                     "kind": "text", "content": {"text": "still here?"}}),
        )
        .await;
    let refused = bob_ws
        .expect("the send's answer", |f| f["ref"] == "during")
        .await;
    assert_eq!(
        (refused["type"].clone(), refused["code"].clone()),
        (json!("error"), json!("not_a_member")),
        "{refused}"
    );
    let started = Instant::now();
    assert_eq!(carol_ws.expect_closed().await, Some(4002));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed within the outage re-check, took {:?}",
        started.elapsed()
    );

    // NATS comes back: still refused, and the cluster works again.
    nats.start().await;
    bus_connected(&node_a, true).await;
    bus_connected(&node_b, true).await;
    bob_ws
        .send(
            json!({"type": "send", "ref": "after", "room_id": group, "client_msg_id": "b3",
                     "kind": "text", "content": {"text": "and now?"}}),
        )
        .await;
    let refused = bob_ws
        .expect("the send's answer", |f| f["ref"] == "after")
        .await;
    assert_eq!(refused["code"], "not_a_member", "{refused}");
    let added = node_a
        .call(
            Method::POST,
            &format!("/v1/rooms/{group}/members"),
            Some(&alice.access),
            Some(json!({"user_id": dave.user_id})),
        )
        .await;
    assert_eq!(added.status(), 200);
    let mut dave_ws = WsClient::connect_live(&node_b, &dave).await;
    let sent = dave_ws.say(&group, "d1", "hello from node B").await;
    let got = alice_ws
        .expect("dave's message across nodes", |f| {
            f["type"] == "message" && f["message"]["id"] == sent["id"]
        })
        .await;
    assert_eq!(got["message"]["room_id"], json!(group));
    let history: Value = node_a
        .get_json(&format!("/v1/rooms/{group}/messages"), &alice.access)
        .await;
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"]["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        vec!["hi", "hello from node B"],
        "nothing of bob's after his removal was stored"
    );

    node_a.stop().await;
    node_b.stop().await;
    db.cleanup().await;
    redis.cleanup().await;
}

#[tokio::test]
async fn a_redis_restart_restores_sessions_and_an_outage_fails_fast() {
    let Some(mut redis) = PrivateService::redis().await else {
        return;
    };
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.session = iyagi_server::SessionSettings {
        store: iyagi_server::SessionBackend::Redis,
        redis_url: redis.url().into(),
        redis_prefix: "iyagi".to_owned(),
        redis_timeout_ms: 500,
    };
    settings.ws.heartbeat_interval_ms = 300;
    settings.ws.heartbeat_timeout_ms = 5_000;
    let pushes = Arc::new(iyagi_chat::RecordingNotifier::default());
    let app = TestApp::spawn_with_push(settings, pushes.clone()).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    bob_ws.send(json!({"type": "view", "room_id": room})).await;
    bob_ws.expect_type("viewing").await;
    let presence_path = format!("/v1/rooms/{room}/presence");
    let bob_state = |body: &Value| {
        body["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user_id"] == bob.user_id.as_str())
            .map(|m| (m["online"].clone(), m["in_room"].clone()))
            .unwrap()
    };
    let before: Value = app.get_json(&presence_path, &alice.access).await;
    assert_eq!(bob_state(&before), (json!(true), json!(true)));

    // Redis goes away: answers come fast, and readiness says which backend.
    redis.kill().await;
    let started = Instant::now();
    let response = app.get(&presence_path, &alice.access).await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "presence took {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let ready = app.get_public("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "readyz took {:?}",
        started.elapsed()
    );
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["code"], "unavailable");
    let failed: Vec<&Value> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{ready}");
    assert_eq!(
        (failed[0]["name"].clone(), failed[0]["backend"].clone()),
        (json!("sessions"), json!("redis"))
    );
    let started = Instant::now();
    let _late = WsClient::connect_live(&app, &app.user("carol", "phone").await).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "connecting took {:?}",
        started.elapsed()
    );

    // Redis is back, empty: the next heartbeats restore who is connected
    // and who views what.
    redis.start().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Value = app.get_json(&presence_path, &alice.access).await;
    assert_eq!(bob_state(&after), (json!(true), json!(true)), "{after}");
    assert_eq!(app.get_public("/readyz").await.status(), 200);
    let pushed_before = pushes.sent().len();
    let sent = alice_ws.say(&room, "a1", "are you there?").await;
    assert_eq!(bob_ws.expect_message().await["id"], sent["id"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        pushes.sent()[pushed_before..]
            .iter()
            .all(|n| n.user_id.to_string() != bob.user_id),
        "bob is viewing the room again: no push for him"
    );
    app.stop().await;
    db.cleanup().await;
}
