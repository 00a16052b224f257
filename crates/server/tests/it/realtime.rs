//! Real-time scenarios over real WebSocket connections.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::Backends;
use crate::helpers::{Pair, TestApp, Tokens, expect_error};
use crate::ws_client::WsClient;

crate::ws_suite!(realtime:
    two_users_with_two_devices_each_chat_one_to_one,
    presence_is_announced_for_the_first_and_last_device_only,
    presence_is_pushed_to_direct_peers_and_small_groups_only,
    a_silent_client_is_timed_out_by_the_heartbeat,
    resending_a_client_message_id_never_duplicates,
    read_markers_drive_unread_counts_and_receipts,
    reactions_are_marker_messages,
    group_rooms_and_membership_changes,
    catch_up_after_a_disconnect_has_no_gaps_and_no_duplicates,
    catch_up_while_messages_keep_arriving_stays_ordered,
    a_gap_too_large_to_replay_gets_reload,
    bad_input_gets_error_frames_and_writes_nothing,
    a_slow_reader_does_not_stall_anyone_else,
    push_goes_to_members_not_viewing_the_room,
    revoking_a_session_closes_its_connection,
    typing_is_delivered_live_and_never_stored,
    pipelined_sends_are_answered_in_order_and_delivered_in_seq_order,
);

async fn room_list(app: &TestApp, tokens: &Tokens) -> Vec<Value> {
    let list: Value = app.get_json("/v1/rooms", &tokens.access).await;
    list["rooms"].as_array().unwrap().clone()
}

async fn unread(app: &TestApp, tokens: &Tokens, room: &str) -> i64 {
    let rooms = room_list(app, tokens).await;
    rooms.iter().find(|r| r["id"] == room).expect("room listed")["unread"]
        .as_i64()
        .unwrap()
}

async fn history(app: &TestApp, tokens: &Tokens, room: &str) -> Vec<Value> {
    let page: Value = app
        .get(
            &format!("/v1/rooms/{room}/messages?limit=200"),
            &tokens.access,
        )
        .await
        .json()
        .await
        .unwrap();
    page["messages"].as_array().unwrap().clone()
}

fn text_of(message: &Value) -> &str {
    message["content"]["text"].as_str().unwrap_or_default()
}

pub async fn two_users_with_two_devices_each_chat_one_to_one(b: Backends) {
    let app = TestApp::spawn_with(b.settings()).await;
    let alice_phone = app.user("alice", "phone").await;
    let alice_laptop = app.user("alice", "laptop").await;
    let bob_phone = app.user("bob", "phone").await;
    let bob_tablet = app.user("bob", "tablet").await;
    let room = app.direct_room(&alice_phone, &bob_phone).await;
    assert_eq!(
        app.direct_room(&bob_tablet, &alice_laptop).await,
        room,
        "one room per pair"
    );

    let mut ap = WsClient::connect_live(&app, &alice_phone).await;
    let mut al = WsClient::connect_live(&app, &alice_laptop).await;
    let mut bp = WsClient::connect_live(&app, &bob_phone).await;
    let mut bt = WsClient::connect_live(&app, &bob_tablet).await;
    assert_eq!(ap.ready["device_id"], "phone");

    let sent = ap.say(&room, "a-1", "hi bob").await;
    assert_eq!(sent["seq"], 2, "seq 1 is the room_created message");
    assert_eq!(sent["author_id"], alice_phone.user_id.as_str());
    for client in [&mut ap, &mut al, &mut bp, &mut bt] {
        let got = client.expect_message().await;
        assert_eq!(
            (got["seq"].clone(), text_of(&got)),
            (json!(2), "hi bob"),
            "every device, the sender's included"
        );
        assert_eq!(got["id"], sent["id"]);
    }
    let reply = bt.say(&room, "b-1", "hi alice").await;
    assert_eq!(reply["seq"], 3);
    assert_eq!(reply["device_id"], "tablet");
    for client in [&mut ap, &mut al, &mut bp, &mut bt] {
        assert_eq!(client.expect_message().await["seq"], 3);
    }

    // The room list: last message, unread counts (sending marks your own read position).
    let alice_rooms = room_list(&app, &alice_phone).await;
    assert_eq!(alice_rooms.len(), 1);
    assert_eq!(alice_rooms[0]["peer"]["username"], "bob");
    assert_eq!(text_of(&alice_rooms[0]["last_message"]), "hi alice");
    assert_eq!(alice_rooms[0]["unread"], 1);
    assert_eq!(unread(&app, &bob_phone, &room).await, 0);
    let texts: Vec<String> = history(&app, &bob_phone, &room)
        .await
        .iter()
        .map(|m| text_of(m).to_owned())
        .collect();
    assert_eq!(texts, vec!["", "hi bob", "hi alice"]);
    app.stop().await;
}

/// Matches a `presence` frame saying `user_id` came online (or went offline).
fn presence_of(user_id: &str, online: bool) -> impl Fn(&Value) -> bool + use<> {
    let user_id = user_id.to_owned();
    move |f: &Value| {
        f["type"] == "presence" && f["user_id"] == user_id.as_str() && f["online"] == online
    }
}

/// One member's entry in a `presence_state` frame or presence response.
fn member_presence(presence: &Value, user_id: &str) -> Value {
    presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user_id)
        .cloned()
        .unwrap()
}

pub async fn presence_is_announced_for_the_first_and_last_device_only(b: Backends) {
    let app = TestApp::spawn_with(b.settings()).await;
    let alice_phone = app.user("alice", "phone").await;
    let alice_laptop = app.user("alice", "laptop").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice_phone, &bob).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let is_alice = |online: bool| presence_of(&alice_phone.user_id, online);

    let phone = WsClient::connect_live(&app, &alice_phone).await;
    bob_ws.expect("alice online", is_alice(true)).await;
    let laptop = WsClient::connect_live(&app, &alice_laptop).await;
    bob_ws
        .expect_none(Duration::from_millis(300), |f| f["type"] == "presence")
        .await;

    // Ask: who is online in the room?
    bob_ws
        .send(json!({"type": "presence", "ref": "p1", "room_id": room}))
        .await;
    let state = bob_ws.expect_type("presence_state").await;
    assert_eq!(state["ref"], "p1");
    for member in state["members"].as_array().unwrap() {
        assert_eq!(member["online"], true, "{member}");
        assert_eq!(member["in_room"], false, "nobody views the room yet");
    }

    phone.close().await;
    bob_ws
        .expect_none(Duration::from_millis(300), |f| f["type"] == "presence")
        .await;
    laptop.close().await;
    bob_ws.expect("alice offline", is_alice(false)).await;
    let presence: Value = app
        .get_json(&format!("/v1/rooms/{room}/presence"), &bob.access)
        .await;
    assert_eq!(
        member_presence(&presence, &alice_phone.user_id)["online"],
        false
    );
    app.stop().await;
}

pub(crate) async fn group_room(app: &TestApp, owner: &Tokens, others: &[&Tokens]) -> String {
    let members: Vec<&str> = others.iter().map(|t| t.user_id.as_str()).collect();
    let created = app
        .call(
            Method::POST,
            "/v1/rooms",
            Some(&owner.access),
            Some(json!({"title": "group", "members": members})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

pub async fn presence_is_pushed_to_direct_peers_and_small_groups_only(b: Backends) {
    let mut settings = b.settings();
    settings.ws.presence_max_group_members = 2;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let carol = app.user("carol", "phone").await;
    let dave = app.user("dave", "phone").await;
    // Three members: over the limit of 2. Bob shares only this room with Alice.
    let big = group_room(&app, &alice, &[&bob, &carol]).await;
    // Two members: within the limit. Carol shares it too (and the big one).
    group_room(&app, &alice, &[&carol]).await;
    app.direct_room(&alice, &dave).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let mut carol_ws = WsClient::connect_live(&app, &carol).await;
    let mut dave_ws = WsClient::connect_live(&app, &dave).await;
    let is_alice = |online: bool| presence_of(&alice.user_id, online);

    let alice_ws = WsClient::connect_live(&app, &alice).await;
    dave_ws.expect("direct peer told", is_alice(true)).await;
    carol_ws
        .expect("small-group member told", is_alice(true))
        .await;
    carol_ws
        .expect_none(Duration::from_millis(300), |f| f["type"] == "presence")
        .await;
    bob_ws
        .expect_none(Duration::from_millis(300), |f| f["type"] == "presence")
        .await;

    // Bob still learns who is online in the big group by asking.
    bob_ws
        .send(json!({"type": "presence", "ref": "p", "room_id": big}))
        .await;
    let state = bob_ws.expect_type("presence_state").await;
    assert_eq!(member_presence(&state, &alice.user_id)["online"], true);

    alice_ws.close().await;
    dave_ws.expect("direct peer told", is_alice(false)).await;
    carol_ws
        .expect("small-group member told", is_alice(false))
        .await;
    bob_ws
        .expect_none(Duration::from_millis(300), |f| f["type"] == "presence")
        .await;
    app.stop().await;
}

pub async fn a_silent_client_is_timed_out_by_the_heartbeat(b: Backends) {
    let mut settings = b.settings();
    settings.ws.heartbeat_interval_ms = 200;
    settings.ws.heartbeat_timeout_ms = 300;
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(settings).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;

    // A raw client that never reads: it never answers a ping.
    let (silent, _) = tokio_tungstenite::connect_async(app.ws_url(&alice.access))
        .await
        .unwrap();
    bob_ws
        .expect("alice online", |f| {
            f["type"] == "presence" && f["online"] == true
        })
        .await;
    let went_online = tokio::time::Instant::now();
    bob_ws
        .expect("alice offline", |f| {
            f["type"] == "presence" && f["online"] == false
        })
        .await;
    let after = went_online.elapsed();
    // interval + timeout = 500 ms; allow scheduling slack, but not "never".
    assert!(after < Duration::from_secs(3), "timed out after {after:?}");
    let presence: Value = app
        .get_json(&format!("/v1/rooms/{room}/presence"), &bob.access)
        .await;
    assert!(
        presence["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["user_id"] == bob.user_id.as_str() || m["online"] == false)
    );
    drop(silent);

    // A live client survives many heartbeat rounds.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    bob_ws.say(&room, "still-here", "still connected").await;
    app.stop().await;
}

pub async fn resending_a_client_message_id_never_duplicates(b: Backends) {
    let app = TestApp::spawn_with(b.settings()).await;
    let alice = app.user("alice", "phone").await;
    let alice_laptop = app.user("alice", "laptop").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;

    let first = a.say(&room, "same-id", "once").await;
    a.send(json!({"type": "send", "ref": "retry", "room_id": room, "client_msg_id": "same-id", "kind": "text",
                  "content": {"text": "once"}}))
        .await;
    let retry = a
        .expect("retry ack", |f| f["type"] == "ack" && f["ref"] == "retry")
        .await;
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["message"], first, "the original acknowledgement");
    // Idempotency is per device: the laptop's "same-id" is a new message.
    let mut laptop = WsClient::connect_live(&app, &alice_laptop).await;
    let other = laptop.say(&room, "same-id", "from the laptop").await;
    assert_ne!(other["id"], first["id"]);

    assert_eq!(bob_ws.expect_message().await["id"], first["id"]);
    assert_eq!(
        bob_ws.expect_message().await["id"],
        other["id"],
        "the retry was not delivered again"
    );
    let stored: Vec<Value> = history(&app, &bob, &room)
        .await
        .into_iter()
        .filter(|m| m["kind"] == "text")
        .collect();
    assert_eq!(stored.len(), 2);
    app.stop().await;
}

pub async fn read_markers_drive_unread_counts_and_receipts(b: Backends) {
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(b.settings()).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(
            a.say(&room, &format!("m{i}"), &format!("message {i}"))
                .await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(unread(&app, &bob, &room).await, 3);

    bob_ws
        .send(json!({"type": "read", "ref": "r1", "room_id": room, "seq": seqs[1]}))
        .await;
    let ack = bob_ws.expect_type("read_ack").await;
    assert_eq!(
        (
            ack["ref"].clone(),
            ack["read_seq"].clone(),
            ack["unread"].clone()
        ),
        (json!("r1"), json!(seqs[1]), json!(1))
    );
    // Alice gets the receipt live: a read marker message.
    let receipt = a
        .expect("read receipt", |f| {
            f["type"] == "message" && f["message"]["kind"] == "read"
        })
        .await;
    assert_eq!(receipt["message"]["author_id"], bob.user_id.as_str());
    assert_eq!(receipt["message"]["content"]["up_to_seq"], seqs[1]);
    assert_eq!(unread(&app, &bob, &room).await, 1);

    // Markers are not content: they do not make alice's count grow.
    assert_eq!(unread(&app, &alice, &room).await, 0);
    // Going backwards changes nothing and stores nothing.
    let before = history(&app, &bob, &room).await.len();
    bob_ws
        .send(json!({"type": "read", "ref": "r2", "room_id": room, "seq": 1}))
        .await;
    let ack = bob_ws.expect_type("read_ack").await;
    assert_eq!(
        (ack["read_seq"].clone(), ack["unread"].clone()),
        (json!(seqs[1]), json!(1))
    );
    assert_eq!(history(&app, &bob, &room).await.len(), before);
    // Beyond the end is refused.
    bob_ws
        .send(json!({"type": "read", "ref": "r3", "room_id": room, "seq": 999}))
        .await;
    bob_ws.expect_error("validation_failed").await;
    // Reading to the end clears the count.
    bob_ws
        .send(json!({"type": "read", "ref": "r4", "room_id": room, "seq": seqs[2]}))
        .await;
    assert_eq!(bob_ws.expect_type("read_ack").await["unread"], 0);
    assert_eq!(unread(&app, &bob, &room).await, 0);
    let members: Value = app
        .get_json(&format!("/v1/rooms/{room}"), &bob.access)
        .await;
    let bob_member = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["id"] == bob.user_id.as_str())
        .cloned();
    assert_eq!(bob_member.unwrap()["read_seq"], seqs[2]);
    app.stop().await;
}

pub async fn reactions_are_marker_messages(b: Backends) {
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(b.settings()).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let target = a.say(&room, "t", "react to me").await["seq"]
        .as_i64()
        .unwrap();

    bob_ws
        .send(json!({"type": "react", "ref": "x1", "room_id": room, "seq": target, "emoji": "👍"}))
        .await;
    let ack = bob_ws
        .expect("react ack", |f| f["type"] == "ack" && f["ref"] == "x1")
        .await;
    assert_eq!(ack["message"]["kind"], "reaction");
    let seen = a
        .expect("reaction", |f| {
            f["type"] == "message" && f["message"]["kind"] == "reaction"
        })
        .await;
    assert_eq!(
        seen["message"]["content"],
        json!({"target_seq": target, "emoji": "👍", "action": "add"})
    );

    bob_ws.send(json!({"type": "react", "ref": "x2", "room_id": room, "seq": target, "emoji": "👍", "remove": true})).await;
    let removed = a
        .expect("un-reaction", |f| {
            f["type"] == "message" && f["message"]["content"]["action"] == "remove"
        })
        .await;
    assert_eq!(removed["message"]["content"]["emoji"], "👍");
    // Not on a missing message, nor on a marker.
    bob_ws
        .send(json!({"type": "react", "ref": "x3", "room_id": room, "seq": 999, "emoji": "👍"}))
        .await;
    bob_ws.expect_error("not_found").await;
    let marker_seq = ack["message"]["seq"].clone();
    bob_ws.send(json!({"type": "react", "ref": "x4", "room_id": room, "seq": marker_seq, "emoji": "👍"})).await;
    bob_ws.expect_error("not_found").await;
    bob_ws.send(json!({"type": "react", "ref": "x5", "room_id": room, "seq": target, "emoji": "two words"})).await;
    bob_ws.expect_error("validation_failed").await;
    // Reactions never count as unread.
    assert_eq!(unread(&app, &alice, &room).await, 0);
    app.stop().await;
}

pub async fn group_rooms_and_membership_changes(b: Backends) {
    let app = TestApp::spawn_with(b.settings()).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let carol = app.user("carol", "phone").await;
    let created = app
        .call(
            Method::POST,
            "/v1/rooms",
            Some(&alice.access),
            Some(json!({"title": "weekend", "members": [bob.user_id]})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let room = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["title"], "weekend");
    assert_eq!(created["members"].as_array().unwrap().len(), 2);

    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let mut carol_ws = WsClient::connect_live(&app, &carol).await;
    carol_ws.send(json!({"type": "send", "ref": "c0", "room_id": room, "client_msg_id": "c0", "kind": "text", "content": {"text": "let me in"}})).await;
    carol_ws.expect_error("not_a_member").await;

    // Any member may add: bob adds carol. Everyone, carol included, sees the join.
    let added = app
        .call(
            Method::POST,
            &format!("/v1/rooms/{room}/members"),
            Some(&bob.access),
            Some(json!({"user_id": carol.user_id})),
        )
        .await;
    assert_eq!(added.status(), 200);
    for client in [&mut a, &mut bob_ws, &mut carol_ws] {
        let joined = client.expect_message().await;
        assert_eq!(joined["kind"], "member_joined");
        assert_eq!(
            joined["content"],
            json!({"user_id": carol.user_id, "by": bob.user_id})
        );
    }
    let hello = carol_ws.say(&room, "c1", "hello all").await;
    assert_eq!(a.expect_message().await["id"], hello["id"]);

    // Only the owner removes others.
    let denied = app
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", carol.user_id),
            Some(&bob.access),
            None,
        )
        .await;
    expect_error(denied, 403, "forbidden").await;
    let removed = app
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", carol.user_id),
            Some(&alice.access),
            None,
        )
        .await;
    assert_eq!(removed.status(), 204);
    for client in [&mut a, &mut bob_ws, &mut carol_ws] {
        let left = client
            .expect("member_left", |f| {
                f["type"] == "message" && f["message"]["kind"] == "member_left"
            })
            .await;
        assert_eq!(
            left["message"]["content"]["user_id"],
            carol.user_id.as_str()
        );
    }
    carol_ws.send(json!({"type": "send", "ref": "c2", "room_id": room, "client_msg_id": "c2", "kind": "text", "content": {"text": "still here?"}})).await;
    carol_ws.expect_error("not_a_member").await;
    expect_error(
        app.get(&format!("/v1/rooms/{room}/messages"), &carol.access)
            .await,
        403,
        "not_a_member",
    )
    .await;
    // The owner leaves: bob, the longest-standing member, becomes owner.
    let left = app
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", alice.user_id),
            Some(&alice.access),
            None,
        )
        .await;
    assert_eq!(left.status(), 204);
    let detail: Value = app
        .get_json(&format!("/v1/rooms/{room}"), &bob.access)
        .await;
    let members = detail["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (
            members[0]["user"]["username"].clone(),
            members[0]["role"].clone()
        ),
        (json!("bob"), json!("owner"))
    );
    // Direct rooms keep their two members.
    let direct = app.direct_room(&bob, &carol).await;
    let refused = app
        .call(
            Method::POST,
            &format!("/v1/rooms/{direct}/members"),
            Some(&bob.access),
            Some(json!({"user_id": alice.user_id})),
        )
        .await;
    expect_error(refused, 422, "validation_failed").await;
    app.stop().await;
}

/// Collects `message` frames for `room` until `last_seq` has been seen.
pub(crate) async fn collect_until(client: &mut WsClient, room: &str, last_seq: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|s| *s < last_seq) {
        let frame = client
            .expect("message", |f| {
                f["type"] == "message" && f["message"]["room_id"] == room
            })
            .await;
        seqs.push(frame["message"]["seq"].as_i64().unwrap());
    }
    seqs
}

pub async fn catch_up_after_a_disconnect_has_no_gaps_and_no_duplicates(b: Backends) {
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(b.settings()).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let seen = a.say(&room, "before", "before the drop").await["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(bob_ws.expect_message().await["seq"], seen);
    bob_ws.close().await;

    // While bob is away: five messages and a reaction (a marker) by alice.
    // (A read marker by alice would change nothing: sending already marked
    // her own messages read.)
    let mut last = seen;
    for i in 0..5 {
        last = a
            .say(&room, &format!("away{i}"), &format!("while away {i}"))
            .await["seq"]
            .as_i64()
            .unwrap();
    }
    a.send(json!({"type": "react", "ref": "r", "room_id": room, "seq": seen, "emoji": "🎉"}))
        .await;
    a.expect("react ack", |f| f["type"] == "ack" && f["ref"] == "r")
        .await;
    let latest = last + 1;

    let mut back = WsClient::connect(&app, &bob).await;
    back.send(
        json!({"type": "sync", "ref": "s1", "rooms": [{"room_id": room, "after_seq": seen}]}),
    )
    .await;
    let got = collect_until(&mut back, &room, latest).await;
    assert_eq!(
        got,
        ((seen + 1)..=latest).collect::<Vec<i64>>(),
        "every missed message, in order, once"
    );
    let synced = back.expect_type("synced").await;
    assert_eq!(synced["ref"], "s1");
    let state = synced["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (state["latest_seq"].clone(), state["unread"].clone()),
        (json!(latest), json!(6)),
        "bob received but never marked read the 6 messages"
    );
    // Live delivery continues after the catch-up, with no repeats.
    let next = a.say(&room, "after", "welcome back").await["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(back.expect_message().await["seq"], next);
    back.expect_none(Duration::from_millis(200), |f| f["type"] == "message")
        .await;
    app.stop().await;
}

pub async fn catch_up_while_messages_keep_arriving_stays_ordered(b: Backends) {
    let mut settings = b.settings();
    settings.ws.frames_per_second = 1000;
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(settings).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    for i in 0..20 {
        a.say(&room, &format!("old{i}"), "old").await;
    }
    // Bob syncs from the start while alice keeps sending 40 more.
    let sender = {
        let room = room.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..40 {
                last = a.say(&room, &format!("new{i}"), "new").await["seq"]
                    .as_i64()
                    .unwrap();
            }
            (a, last)
        })
    };
    let mut bob_ws = WsClient::connect(&app, &bob).await;
    bob_ws
        .send(json!({"type": "sync", "rooms": [{"room_id": room, "after_seq": 0}]}))
        .await;
    let (_a, last) = sender.await.unwrap();
    let got = collect_until(&mut bob_ws, &room, last).await;
    assert_eq!(
        got,
        (1..=last).collect::<Vec<i64>>(),
        "no gap, no duplicate, in order"
    );
    bob_ws
        .expect_none(Duration::from_millis(300), |f| f["type"] == "message")
        .await;
    app.stop().await;
}

pub async fn a_gap_too_large_to_replay_gets_reload(b: Backends) {
    let mut settings = b.settings();
    settings.ws.max_replay = 5;
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(settings).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut last = 0;
    for i in 0..10 {
        last = a.say(&room, &format!("m{i}"), "x").await["seq"]
            .as_i64()
            .unwrap();
    }
    let mut bob_ws = WsClient::connect(&app, &bob).await;
    bob_ws
        .send(json!({"type": "sync", "rooms": [{"room_id": room, "after_seq": 0}]}))
        .await;
    // A `notification` frame (bob was offline for ten messages) is a
    // user-level signal that may arrive at any time; the room's answer
    // to the sync is what this test is about.
    let first = bob_ws
        .expect("the sync's answer", |f| f["type"] != "notification")
        .await;
    assert_eq!(
        first,
        json!({"type": "reload", "room_id": room, "latest_seq": last}),
        "a signal, not a flood"
    );
    bob_ws.expect_type("synced").await;
    // History pages are how a client reloads.
    let page: Value = app
        .get_json(&format!("/v1/rooms/{room}/messages?limit=4"), &bob.access)
        .await;
    let seqs: Vec<i64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, ((last - 3)..=last).collect::<Vec<i64>>());
    assert_eq!(page["has_more"], true);
    bob_ws.send(json!({"type": "history", "ref": "h", "room_id": room, "before_seq": last - 3, "limit": 100})).await;
    let older = bob_ws.expect_type("history").await;
    assert_eq!(older["messages"].as_array().unwrap().len() as i64, last - 4);
    assert_eq!(older["has_more"], false);
    // Live messages flow after a reload.
    let next = a.say(&room, "live", "x").await["seq"].clone();
    assert_eq!(bob_ws.expect_message().await["seq"], next);
    app.stop().await;
}

pub async fn bad_input_gets_error_frames_and_writes_nothing(b: Backends) {
    let mut settings = b.settings();
    settings.ws.max_frame_bytes = 8 * 1024;
    settings.ws.hard_max_frame_bytes = 64 * 1024;
    settings.ws.frames_per_second = 5;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let mallory = app.user("mallory", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    let mut m = WsClient::connect_live(&app, &mallory).await;
    let pace = || tokio::time::sleep(Duration::from_millis(250));

    let cases: Vec<(&str, Message, &str)> = vec![
        ("malformed JSON", Message::Text("{\"type\": \"send\",".into()), "malformed_json"),
        ("not an object", Message::Text("[1, 2]".into()), "invalid_request"),
        ("unknown type", Message::Text(json!({"type": "explode"}).to_string().into()), "unknown_frame_type"),
        ("missing fields", Message::Text(json!({"type": "send", "room_id": room}).to_string().into()), "invalid_request"),
        ("malformed id", Message::Text(json!({"type": "send", "room_id": "not-a-uuid", "client_msg_id": "x", "kind": "text", "content": {"text": "x"}}).to_string().into()), "invalid_request"),
        ("not my room", Message::Text(json!({"type": "send", "room_id": room, "client_msg_id": "x", "kind": "text", "content": {"text": "hi"}}).to_string().into()), "not_a_member"),
        ("unknown kind", Message::Text(json!({"type": "send", "room_id": room, "client_msg_id": "x", "kind": "sticker", "content": {}}).to_string().into()), "invalid_request"),
        ("binary frame", Message::Binary(vec![1, 2, 3].into()), "invalid_request"),
        ("oversized frame", Message::Text(json!({"type": "typing", "room_id": room, "pad": "x".repeat(9000)}).to_string().into()), "frame_too_large"),
        ("view a room of others", Message::Text(json!({"type": "view", "room_id": room}).to_string().into()), "not_a_member"),
        ("history of others", Message::Text(json!({"type": "history", "room_id": room}).to_string().into()), "not_a_member"),
    ];
    for (name, frame, code) in cases {
        m.send_raw(frame).await;
        let error = m.expect_type("error").await;
        assert_eq!(error["code"], code, "case {name}: {error}");
        assert!(error["message"].as_str().is_some_and(|s| !s.is_empty()));
        pace().await;
    }
    // A member's own bad content is refused too.
    let mut a = WsClient::connect_live(&app, &alice).await;
    for (name, content) in [
        ("empty text", json!({"text": ""})),
        ("text too long", json!({"text": "x".repeat(4001)})),
        ("no text", json!({"body": "x"})),
    ] {
        a.send(json!({"type": "send", "ref": name, "room_id": room, "client_msg_id": name, "kind": "text", "content": content})).await;
        assert_eq!(
            a.expect_type("error").await["code"],
            "validation_failed",
            "{name}"
        );
        pace().await;
    }
    a.send(json!({"type": "send", "room_id": room, "client_msg_id": "", "kind": "text", "content": {"text": "x"}})).await;
    a.expect_error("validation_failed").await;
    pace().await;
    a.send(json!({"type": "send", "room_id": room, "client_msg_id": "img", "kind": "image", "content": {"object": "x"}})).await;
    a.expect_error("validation_failed").await;

    // Over the rate limit: refused, then fine again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..12 {
        m.send(json!({"type": "typing", "room_id": format!("00000000-0000-0000-0000-{i:012}")}))
            .await;
    }
    m.expect("rate_limited", |f| {
        f["type"] == "error" && f["code"] == "rate_limited"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Through all of it, nothing was stored, nobody else saw anything, and the connections are still open.
    let stored = history(&app, &bob, &room).await;
    assert_eq!(stored.len(), 1, "only the room_created message: {stored:?}");
    bob_ws
        .expect_none(Duration::from_millis(200), |f| f["type"] == "message")
        .await;
    m.send(json!({"type": "sync", "ref": "still-open"})).await;
    assert_eq!(m.expect_type("synced").await["ref"], "still-open");
    let ok = a.say(&room, "fine", "all good").await;
    assert_eq!(bob_ws.expect_message().await["id"], ok["id"]);

    // Past the hard limit the connection is closed with 1009.
    m.send_raw(Message::Text("x".repeat(70 * 1024).into()))
        .await;
    assert_eq!(m.expect_closed().await, Some(1009));
    app.stop().await;
}

pub async fn a_slow_reader_does_not_stall_anyone_else(b: Backends) {
    let mut settings = b.settings();
    settings.ws.outbound_queue = 192;
    settings.ws.frames_per_second = 100_000;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob_fast = app.user("bob", "phone").await;
    let bob_slow = app.user("bob", "tablet").await;
    let room = app.direct_room(&alice, &bob_fast).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut fast = WsClient::connect_live(&app, &bob_fast).await;
    // The slow device syncs, then never reads again.
    let (mut slow, _) = tokio_tungstenite::connect_async(app.ws_url(&bob_slow.access))
        .await
        .unwrap();
    futures::SinkExt::send(
        &mut slow,
        Message::Text(json!({"type": "sync"}).to_string().into()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Enough bulk to fill the slow device's socket buffers many times over.
    let padding = "p".repeat(12 * 1024);
    let count = 600;
    // The sender pipelines five sends at a time and reads its acks (a
    // sender that never reads would be a slow reader itself).
    for chunk in (0..count).collect::<Vec<_>>().chunks(5) {
        for i in chunk {
            a.send(json!({"type": "send", "ref": format!("s{i}"), "room_id": room, "client_msg_id": format!("s{i}"),
                          "kind": "text", "content": {"text": format!("bulk {i}"), "pad": padding}}))
                .await;
        }
        for i in chunk {
            let frame = a.expect("ack", |f| f["type"] == "ack").await;
            assert_eq!(frame["duplicate"], false);
            assert_eq!(frame["ref"], format!("s{i}"), "acks come in send order");
        }
    }
    let got = collect_until(&mut fast, &room, count as i64 + 1).await;
    assert_eq!(got.len(), count, "the fast device got every message");
    let metrics = app.metrics_text().await;
    let slow_closed = metrics
        .lines()
        .find(|l| l.starts_with("iyagi_ws_slow_closed "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        slow_closed.ends_with(" 1"),
        "the slow device was closed: {slow_closed:?}"
    );
    // The message writer's totals: every stored message (the room's
    // creation message may be written outside the writer), in group
    // commits of one or more.
    let total = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    let appends = total("iyagi_store_appends");
    let commits = total("iyagi_store_append_commits");
    assert!(appends >= count as f64, "{appends} appends");
    assert!(commits >= 1.0 && commits <= appends, "{commits} commits");
    assert!(total("iyagi_store_append_busy_seconds") > 0.0);
    drop(slow);
    app.stop().await;
}

pub async fn push_goes_to_members_not_viewing_the_room(b: Backends) {
    let recorder = Arc::new(iyagi_chat::RecordingNotifier::default());
    let app = TestApp::spawn_with_push(b.settings(), recorder.clone()).await;
    let author = app.user("author", "phone").await;
    let viewer = app.user("viewer", "phone").await;
    let elsewhere = app.user("elsewhere", "phone").await;
    let offline = app.user("offline", "phone").await;
    let two_phone = app.user("twodevices", "phone").await;
    let two_tablet = app.user("twodevices", "tablet").await;
    let room = group_room(&app, &author, &[&viewer, &elsewhere, &offline, &two_phone]).await;
    let other_room = app.direct_room(&elsewhere, &author).await;

    let mut author_ws = WsClient::connect_live(&app, &author).await;
    let mut viewer_ws = WsClient::connect_live(&app, &viewer).await;
    let mut elsewhere_ws = WsClient::connect_live(&app, &elsewhere).await;
    let mut phone_ws = WsClient::connect_live(&app, &two_phone).await;
    let _tablet_ws = WsClient::connect_live(&app, &two_tablet).await;
    for (client, room_id) in [
        (&mut viewer_ws, &room),
        (&mut phone_ws, &room),
        (&mut elsewhere_ws, &other_room),
    ] {
        client
            .send(json!({"type": "view", "room_id": room_id}))
            .await;
        assert_eq!(
            client.expect_type("viewing").await["room_id"],
            room_id.as_str()
        );
    }
    let sent = author_ws.say(&room, "p1", "who gets a push?").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while recorder.sent().len() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut pushed: Vec<String> = recorder
        .sent()
        .iter()
        .map(|n| n.user_id.to_string())
        .collect();
    pushed.sort();
    let mut expected = vec![elsewhere.user_id.clone(), offline.user_id.clone()];
    expected.sort();
    assert_eq!(
        pushed, expected,
        "viewer and the two-device user (one device in the room) are not pushed"
    );
    assert!(
        recorder
            .sent()
            .iter()
            .all(|n| n.message_id.to_string() == sent["id"].as_str().unwrap())
    );

    // Leaving the room view turns pushes back on.
    viewer_ws
        .send(json!({"type": "view", "room_id": null}))
        .await;
    assert_eq!(
        viewer_ws.expect_type("viewing").await["room_id"],
        Value::Null
    );
    author_ws.say(&room, "p2", "now?").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !recorder
        .sent()
        .iter()
        .any(|n| n.user_id.to_string() == viewer.user_id)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        recorder
            .sent()
            .iter()
            .any(|n| n.user_id.to_string() == viewer.user_id)
    );
    app.stop().await;
}

pub async fn revoking_a_session_closes_its_connection(b: Backends) {
    let app = TestApp::spawn_with(b.settings()).await;
    let phone = app.user("alice", "phone").await;
    let laptop = app.user("alice", "laptop").await;
    let mut phone_ws = WsClient::connect_live(&app, &phone).await;
    let mut laptop_ws = WsClient::connect_live(&app, &laptop).await;
    assert_eq!(
        app.call(Method::POST, "/v1/auth/logout", Some(&phone.access), None)
            .await
            .status(),
        204
    );
    assert_eq!(phone_ws.expect_closed().await, Some(4002));
    laptop_ws
        .send(json!({"type": "sync", "ref": "alive"}))
        .await;
    assert_eq!(laptop_ws.expect_type("synced").await["ref"], "alive");
    // A revoked token cannot open a new connection either.
    let refused = tokio_tungstenite::connect_async(app.ws_url(&phone.access)).await;
    assert!(refused.is_err(), "upgrade refused with 401");

    // Logging in again with the same device id replaces that device's
    // session: the connection opened with the old one closes too.
    let tablet = app.user("alice", "tablet").await;
    let mut tablet_ws = WsClient::connect_live(&app, &tablet).await;
    let tablet_again = app.login("alice", "correct horse", "tablet").await;
    assert_eq!(tablet_ws.expect_closed().await, Some(4002));
    let refused = tokio_tungstenite::connect_async(app.ws_url(&tablet.access)).await;
    assert!(refused.is_err(), "the replaced token opens nothing");
    let mut replacement = WsClient::connect_live(&app, &tablet_again).await;
    replacement
        .send(json!({"type": "sync", "ref": "new"}))
        .await;
    assert_eq!(replacement.expect_type("synced").await["ref"], "new");
    app.stop().await;
    // Shutdown closes the rest with 1001 (going away).
    assert_eq!(laptop_ws.expect_closed().await, Some(1001));
}

pub async fn typing_is_delivered_live_and_never_stored(b: Backends) {
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(b.settings()).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;
    a.send(json!({"type": "typing", "room_id": room})).await;
    let typing = bob_ws.expect_type("typing").await;
    assert_eq!(
        typing,
        json!({"type": "typing", "room_id": room, "user_id": alice.user_id})
    );
    a.expect_none(Duration::from_millis(200), |f| f["type"] == "typing")
        .await;
    assert_eq!(history(&app, &bob, &room).await.len(), 1);
    // The open-connections gauge counts each connection once, in and out
    // (shutdown waits on it before closing storage).
    let gauge = |text: String| {
        text.lines()
            .find(|l| l.starts_with("iyagi_ws_connections "))
            .map(str::to_owned)
    };
    let metrics = app.metrics_text().await;
    assert_eq!(gauge(metrics).as_deref(), Some("iyagi_ws_connections 2"));
    a.close().await;
    bob_ws.close().await;
    let mut last = None;
    for _ in 0..100 {
        let metrics = app.metrics_text().await;
        last = gauge(metrics);
        if last.as_deref() == Some("iyagi_ws_connections 0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last.as_deref(), Some("iyagi_ws_connections 0"));
    app.stop().await;
}

/// A client may send without waiting for acks. Replies come in the order
/// of the frames; a frame after the sends sees their effects; and while
/// sends and a membership change race, every member still receives the
/// room's messages in seq order without gaps.
pub async fn pipelined_sends_are_answered_in_order_and_delivered_in_seq_order(b: Backends) {
    let mut settings = b.settings();
    settings.ws.frames_per_second = 100_000;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let carol = app.user("carol", "phone").await;
    let room = group_room(&app, &alice, &[&bob]).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect_live(&app, &bob).await;

    let count = 60;
    let adding = {
        let (client, url, token, carol_id) = (
            app.client.clone(),
            app.url(&format!("/v1/rooms/{room}/members")),
            bob.access.clone(),
            carol.user_id.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"user_id": carol_id}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    for i in 0..count {
        // One invalid send and one retry among them.
        let content = if i == 7 {
            json!({"text": ""})
        } else {
            json!({"text": format!("p{i}")})
        };
        let client_id = if i == 20 {
            "p3".to_owned()
        } else {
            format!("p{i}")
        };
        a.send(
            json!({"type": "send", "ref": format!("r{i}"), "room_id": room,
                      "client_msg_id": client_id, "kind": "text", "content": content}),
        )
        .await;
    }
    a.send(json!({"type": "history", "ref": "h", "room_id": room, "after_seq": 0, "limit": 200}))
        .await;

    let mut replies = Vec::new();
    let history = loop {
        let frame = a.next().await;
        match frame["type"].as_str() {
            Some("ack") | Some("error") => replies.push(frame),
            Some("history") => break frame,
            _ => {}
        }
    };
    assert_eq!(
        replies.len(),
        count,
        "every send answered before the history"
    );
    let mut seq_of = std::collections::HashMap::new();
    let mut last_seq = 0;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(
            reply["ref"],
            format!("r{i}"),
            "replies in the order of the sends"
        );
        match i {
            7 => assert_eq!(reply["code"], "validation_failed"),
            20 => {
                assert_eq!(reply["duplicate"], true);
                assert_eq!(reply["message"]["seq"], seq_of[&3]);
            }
            _ => {
                assert_eq!(reply["type"], "ack", "{reply}");
                assert_eq!(reply["duplicate"], false);
                let seq = reply["message"]["seq"].as_i64().unwrap();
                assert!(
                    seq > last_seq,
                    "a connection's sends are sequenced in order"
                );
                last_seq = seq;
                seq_of.insert(i, seq);
            }
        }
    }
    assert_eq!(adding.await.unwrap(), 200);
    let stored = history["messages"].as_array().unwrap();
    let texts = stored.iter().filter(|m| m["kind"] == "text").count();
    assert_eq!(texts, count - 2, "the history sees every send before it");

    // Bob got every message of the room (the join included), in seq order.
    let latest = stored.last().unwrap()["seq"]
        .as_i64()
        .unwrap()
        .max(last_seq);
    let mut seqs = collect_until(&mut bob_ws, &room, latest).await;
    if seqs.len() < (latest - 1) as usize {
        // The join may land after the history page was read.
        seqs.extend(collect_until(&mut bob_ws, &room, latest + 1).await);
    }
    let expected: Vec<i64> = (2..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected, "live delivery in seq order, without gaps");
    app.stop().await;
}
