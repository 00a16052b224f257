//! Catch-up under concurrency: a message committed while a `sync` is being
//! served is delivered exactly once, and a re-sync on a live connection
//! repeats nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use iyagi_server::BuildOptions;
use iyagi_server::hooks::{Pause, TestHooks};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use crate::Backends;
use crate::helpers::{Pair, TestApp, Tokens};
use crate::realtime::collect_until;
use crate::ws_client::WsClient;

crate::ws_suite!(catch_up:
    a_message_committed_while_a_sync_is_served_is_delivered_once,
    devices_reconnecting_under_traffic_never_miss_a_message,
    a_re_sync_on_a_live_connection_repeats_nothing,
);

/// A hook that, the first time it runs, says so and waits to be resumed.
fn pause_once() -> (Pause, oneshot::Receiver<()>, oneshot::Sender<()>) {
    let (reached, reached_rx) = oneshot::channel();
    let (resume_tx, resume) = oneshot::channel::<()>();
    let once = Arc::new(Mutex::new(Some((reached, resume))));
    let hook: Pause = Arc::new(move || {
        let taken = once.lock().unwrap().take();
        Box::pin(async move {
            if let Some((reached, resume)) = taken {
                let _ = reached.send(());
                let _ = resume.await;
            }
        })
    });
    (hook, reached_rx, resume_tx)
}

pub async fn a_message_committed_while_a_sync_is_served_is_delivered_once(b: Backends) {
    let (hook, reached, resume) = pause_once();
    let options = BuildOptions {
        hooks: TestHooks {
            sync_after_latest: Some(hook),
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with_options(b.settings(), options).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let seen = a.say(&room, "m1", "before").await["seq"].as_i64().unwrap();

    // Bob's sync has read the room's latest seq and is paused there; alice's
    // message commits (and is published) in exactly that window.
    let mut bob_ws = WsClient::connect(&app, &bob).await;
    bob_ws
        .send(json!({"type": "sync", "ref": "s", "rooms": [{"room_id": room, "after_seq": seen}]}))
        .await;
    tokio::time::timeout(Duration::from_secs(10), reached)
        .await
        .expect("the sync reached its pause")
        .unwrap();
    let during = a.say(&room, "m2", "during the sync").await["seq"]
        .as_i64()
        .unwrap();
    resume.send(()).unwrap();

    let synced = bob_ws.expect_type("synced").await;
    let state = &synced["rooms"][0];
    assert_eq!(state["latest_seq"], during, "synced counts it");
    assert_eq!(
        collect_until(&mut bob_ws, &room, during).await,
        vec![during],
        "and it arrives, once"
    );
    let after = a.say(&room, "m3", "after").await["seq"].as_i64().unwrap();
    assert_eq!(collect_until(&mut bob_ws, &room, after).await, vec![after]);
    bob_ws
        .expect_none(Duration::from_millis(200), |f| f["type"] == "message")
        .await;
    app.stop().await;
}

pub async fn a_re_sync_on_a_live_connection_repeats_nothing(b: Backends) {
    let Pair {
        app,
        alice,
        bob,
        room,
    } = Pair::start(b.settings()).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut bob_ws = WsClient::connect(&app, &bob).await;
    bob_ws
        .send(json!({"type": "sync", "rooms": [{"room_id": room, "after_seq": 1}]}))
        .await;
    bob_ws.expect_type("synced").await;
    for i in 2..=4 {
        assert_eq!(a.say(&room, &format!("m{i}"), "x").await["seq"], i);
    }
    assert_eq!(collect_until(&mut bob_ws, &room, 4).await, vec![2, 3, 4]);

    // The doc tells clients to sync after a gap; on a live connection that
    // replays only what this connection has not delivered yet.
    bob_ws
        .send(json!({"type": "sync", "ref": "again", "rooms": [{"room_id": room, "after_seq": 2}]}))
        .await;
    assert_eq!(bob_ws.expect_type("synced").await["ref"], "again");
    bob_ws
        .expect_none(Duration::from_millis(200), |f| f["type"] == "message")
        .await;
    assert_eq!(a.say(&room, "m5", "x").await["seq"], 5);
    assert_eq!(collect_until(&mut bob_ws, &room, 5).await, vec![5]);

    // A room that went live before it was caught up: the sync fills the
    // gap below what arrived live, and repeats nothing.
    let carol = app.user("carol", "phone").await;
    let other = app.direct_room(&alice, &carol).await;
    let mut c = WsClient::connect_live(&app, &carol).await;
    let mut alice2 = WsClient::connect(&app, &app.user("alice", "laptop").await).await;
    alice2.send(json!({"type": "sync"})).await;
    alice2.expect_type("synced").await;
    for i in 2..=4 {
        c.say(&other, &format!("c{i}"), "x").await;
    }
    assert_eq!(collect_until(&mut alice2, &other, 4).await, vec![2, 3, 4]);
    alice2
        .send(json!({"type": "sync", "rooms": [{"room_id": other, "after_seq": 0}]}))
        .await;
    assert_eq!(collect_until(&mut alice2, &other, 1).await, vec![1]);
    alice2.expect_type("synced").await;
    alice2
        .expect_none(Duration::from_millis(200), |f| f["type"] == "message")
        .await;
    app.stop().await;
}

/// What one catch-up of one device delivered.
struct CatchUp {
    after_seq: i64,
    latest_seq: i64,
    got: Vec<i64>,
}

/// Connects, syncs the room from `after_seq`, and collects the room's
/// messages for `stay`, then until it has everything `synced` counted.
async fn catch_up(
    app: &TestApp,
    tokens: &Tokens,
    room: &str,
    after_seq: i64,
    stay: Duration,
) -> CatchUp {
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_url(&tokens.access))
        .await
        .expect("connect");
    ws.send(Message::Text(
        json!({"type": "sync", "rooms": [{"room_id": room, "after_seq": after_seq}]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut latest_seq = None;
    let stop_at = tokio::time::Instant::now() + stay;
    let give_up = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = tokio::time::Instant::now();
        let complete =
            latest_seq.is_some_and(|l: i64| l <= after_seq || got.last().is_some_and(|g| *g >= l));
        if complete && now >= stop_at {
            break;
        }
        assert!(
            now < give_up,
            "catch-up from {after_seq} stalled: got {got:?}, synced {latest_seq:?}"
        );
        let frame = match tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<Value>(&text).unwrap(),
            Ok(Some(Ok(_))) | Err(_) => continue,
            Ok(other) => panic!("connection ended: {other:?}"),
        };
        match frame["type"].as_str() {
            Some("message") if frame["message"]["room_id"] == room => {
                got.push(frame["message"]["seq"].as_i64().unwrap())
            }
            Some("synced") => {
                latest_seq = frame["rooms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["room_id"] == room)
                    .map(|r| r["latest_seq"].as_i64().unwrap())
            }
            Some("reload") => panic!("unexpected reload: {frame}"),
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    CatchUp {
        after_seq,
        latest_seq: latest_seq.unwrap(),
        got,
    }
}

pub async fn devices_reconnecting_under_traffic_never_miss_a_message(b: Backends) {
    let mut settings = b.settings();
    settings.ws.frames_per_second = 10_000;
    settings.auth.rate_limit.login_per_account_per_minute = 1000;
    let app = Arc::new(TestApp::spawn_with(settings).await);
    let bob_devices: Vec<Tokens> = {
        let mut devices = Vec::new();
        for d in 0..4 {
            devices.push(app.user("bob", &format!("bob-{d}")).await);
        }
        devices
    };
    let alice_devices: Vec<Tokens> = {
        let mut devices = Vec::new();
        for d in 0..3 {
            devices.push(app.user("alice", &format!("alice-{d}")).await);
        }
        devices
    };
    let room = app.direct_room(&alice_devices[0], &bob_devices[0]).await;
    let run_for = Duration::from_secs(4);
    let until = tokio::time::Instant::now() + run_for;

    let mut senders = Vec::new();
    for (d, tokens) in alice_devices.into_iter().enumerate() {
        let app = app.clone();
        let room = room.clone();
        senders.push(tokio::spawn(async move {
            let mut ws = WsClient::connect_live(&app, &tokens).await;
            let mut i = 0;
            while tokio::time::Instant::now() < until {
                ws.say(&room, &format!("d{d}-{i}"), "traffic").await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            i
        }));
    }
    let mut readers = Vec::new();
    for tokens in bob_devices {
        let app = app.clone();
        let room = room.clone();
        readers.push(tokio::spawn(async move {
            let mut position = 1;
            let mut catch_ups = Vec::new();
            while tokio::time::Instant::now() < until {
                let caught =
                    catch_up(&app, &tokens, &room, position, Duration::from_millis(200)).await;
                position = caught.got.last().copied().unwrap_or(position).max(position);
                catch_ups.push(caught);
            }
            catch_ups
        }));
    }
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.unwrap();
    }
    assert!(sent > 50, "traffic flowed: {sent} messages");
    let mut checked = 0;
    for reader in readers {
        for c in reader.await.unwrap() {
            let expected: Vec<i64> = ((c.after_seq + 1)
                ..=c.got
                    .last()
                    .copied()
                    .unwrap_or(c.after_seq)
                    .max(c.latest_seq))
                .collect();
            assert_eq!(
                c.got, expected,
                "sync after {}, synced.latest_seq {}: every message once, in order",
                c.after_seq, c.latest_seq
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked} catch-ups");
    Arc::try_unwrap(app)
        .ok()
        .expect("app is no longer shared")
        .stop()
        .await;
}
