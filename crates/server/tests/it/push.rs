//! Push end to end: real WebSocket clients send; the server decides who
//! is due a push, stores a notification, and its outbox worker delivers it
//! to fake FCM, APNs and Web Push servers that check what the real ones
//! check (signed tokens, headers, JSON shape, decryptable payloads).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use iyagi_push::{ApnsEnvironment, ApnsSettings, FcmSettings};
use iyagi_server::Settings;
use iyagi_testkit::push_fakes::{FakeApns, FakeFcm, FakeWebPush, eventually};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Backends;
use crate::helpers::{TestApp, Tokens, expect_error, test_settings};
use crate::realtime::group_room;
use crate::ws_client::WsClient;

crate::ws_suite!(push: the_push_decision_end_to_end);
crate::api_suite!(push:
    the_inbox,
    old_notifications_are_deleted,
    bad_push_input_gets_its_code_and_stores_nothing,
    no_provider_configured_still_records,
    registrations_go_with_their_device,
);

const TOPIC: &str = "com.example.iyagi";
const WAIT: Duration = Duration::from_secs(10);

pub struct Fakes {
    pub fcm: FakeFcm,
    pub apns: FakeApns,
    pub web: FakeWebPush,
}

impl Fakes {
    pub async fn start() -> Fakes {
        Fakes {
            fcm: FakeFcm::start().await,
            apns: FakeApns::start(TOPIC).await,
            web: FakeWebPush::start().await,
        }
    }

    /// Points every provider of `settings` at these fakes, with retries
    /// quick enough for a test.
    pub fn configure(&self, settings: &mut Settings) {
        settings.push.fcm = Some(FcmSettings {
            service_account_file: self.fcm.service_account_file(),
            base_url: self.fcm.base_url.clone(),
            token_uri: String::new(),
        });
        settings.push.apns = Some(ApnsSettings {
            key_file: self.apns.key.path(),
            key_id: self.apns.key.key_id.clone(),
            team_id: self.apns.key.team_id.clone(),
            environment: ApnsEnvironment::Sandbox,
            base_url: self.apns.base_url.clone(),
        });
        settings.push.webpush.allow_insecure_endpoints = true;
        settings.push.base_backoff_ms = 100;
        settings.push.max_backoff_secs = 1;
        settings.push.poll_ms = 50;
    }

    /// What no correct client would have been refused for.
    fn assert_no_rejections(&self) {
        assert!(
            self.fcm.rejected().is_empty(),
            "FCM refused: {:?}",
            self.fcm.rejected()
        );
        assert!(
            self.apns.rejected().is_empty(),
            "APNs refused: {:?}",
            self.apns.rejected()
        );
        assert!(
            self.web.rejected().is_empty(),
            "Web Push refused: {:?}",
            self.web.rejected()
        );
    }
}

async fn start(settings: Settings) -> (TestApp, Fakes) {
    let fakes = Fakes::start().await;
    let mut settings = settings;
    fakes.configure(&mut settings);
    (TestApp::spawn_with(settings).await, fakes)
}

pub async fn register_fcm(app: &TestApp, who: &Tokens, token: &str) {
    let response = app
        .call(
            Method::PUT,
            "/v1/push/registrations/fcm",
            Some(&who.access),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        response.status(),
        204,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

async fn register_apns(app: &TestApp, who: &Tokens, token: &str) {
    let response = app
        .call(
            Method::PUT,
            "/v1/push/registrations/apns",
            Some(&who.access),
            Some(json!({"token": token, "topic": TOPIC})),
        )
        .await;
    assert_eq!(
        response.status(),
        204,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

async fn register_webpush(
    app: &TestApp,
    who: &Tokens,
    s: &iyagi_testkit::push_fakes::Subscription,
) {
    let response = app
        .call(
            Method::PUT,
            "/v1/push/registrations/webpush",
            Some(&who.access),
            Some(json!({"endpoint": s.endpoint, "keys": {"p256dh": s.p256dh, "auth": s.auth}})),
        )
        .await;
    assert_eq!(
        response.status(),
        204,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

async fn registrations(app: &TestApp, who: &Tokens) -> Vec<Value> {
    app.get_json("/v1/push/registrations", &who.access).await["registrations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn inbox(app: &TestApp, who: &Tokens, query: &str) -> Value {
    let response = app
        .get(&format!("/v1/notifications{query}"), &who.access)
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// Waits until `who` has `count` notifications; returns the inbox.
async fn inbox_with(app: &TestApp, who: &Tokens, count: usize) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let page = inbox(app, who, "?limit=200").await;
        let have = page["notifications"].as_array().map_or(0, Vec::len);
        if have >= count || Instant::now() > deadline {
            assert_eq!(have, count, "notifications of {}: {page}", who.user_id);
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of a metric's samples whose labels contain every `label`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels.iter().all(|label| l.contains(label))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A user's FCM token, from their name and device.
fn fcm_token(name: &str) -> String {
    format!("fcm-token:{name}")
}

pub async fn the_push_decision_end_to_end(b: Backends) {
    let (app, fakes) = start(b.settings()).await;
    let author = app.user("author", "phone").await;
    let viewer = app.user("viewer", "phone").await;
    let elsewhere = app.user("elsewhere", "phone").await;
    let offline = app.user("offline", "phone").await;
    let two_phone = app.user("twodevices", "phone").await;
    let two_tablet = app.user("twodevices", "tablet").await;
    let muted = app.user("muted", "phone").await;
    let private = app.user("private", "phone").await;
    for (who, name) in [
        (&author, "author"),
        (&viewer, "viewer"),
        (&elsewhere, "elsewhere"),
        (&offline, "offline"),
        (&two_phone, "two-phone"),
        (&two_tablet, "two-tablet"),
        (&muted, "muted"),
        (&private, "private"),
    ] {
        register_fcm(&app, who, &fcm_token(name)).await;
    }
    let room = group_room(
        &app,
        &author,
        &[&viewer, &elsewhere, &offline, &two_phone, &muted, &private],
    )
    .await;
    let other_room = app.direct_room(&elsewhere, &author).await;
    let response = app
        .call(
            Method::PUT,
            &format!("/v1/rooms/{room}/mute"),
            Some(&muted.access),
            Some(json!({})),
        )
        .await;
    assert_eq!(response.status(), 204);
    let response = app
        .call(
            Method::PUT,
            "/v1/me/preferences",
            Some(&private.access),
            Some(json!({"push_previews": false})),
        )
        .await;
    assert_eq!(response.status(), 200);

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
    let secret = "the secret plan is at noon";
    let sent = author_ws.say(&room, "p1", secret).await;

    // Pushed: the one online elsewhere, the offline one, the private one.
    assert!(
        eventually(WAIT, || fakes.fcm.accepted().len() >= 3).await,
        "{:?}",
        fakes.fcm.accepted()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = fakes.fcm.accepted();
    let tokens: HashSet<String> = accepted
        .iter()
        .map(|m| m["token"].as_str().unwrap().to_owned())
        .collect();
    let expected: HashSet<String> = ["elsewhere", "offline", "private"]
        .iter()
        .map(|n| fcm_token(n))
        .collect();
    assert_eq!(
        tokens, expected,
        "in the room (on any device) or muted: no push"
    );
    assert_eq!(accepted.len(), 3);
    fakes.assert_no_rejections();

    for message in &accepted {
        let token = message["token"].as_str().unwrap();
        assert_eq!(message["data"]["room_id"], room.as_str());
        assert_eq!(message["data"]["seq"], sent["seq"].to_string());
        assert_eq!(message["android"]["collapse_key"], room.as_str());
        assert_eq!(
            message["apns"]["headers"]["apns-collapse-id"],
            room.as_str()
        );
        let text = message.to_string();
        if token == fcm_token("private") {
            // Previews off: nothing of the message reaches the provider.
            assert!(!text.contains("secret plan"), "{text}");
            assert!(
                !text.contains("group"),
                "the room title is content too: {text}"
            );
        } else {
            assert_eq!(message["notification"]["title"], "group");
            assert_eq!(message["notification"]["body"], secret);
        }
        // The badge: the user's unread count over all rooms.
        assert!(
            message["android"]["notification"]["notification_count"]
                .as_i64()
                .unwrap()
                >= 1
        );
    }
    // The push's id is its notification's id in the inbox.
    let offline_inbox = inbox_with(&app, &offline, 1).await;
    let offline_push = accepted
        .iter()
        .find(|m| m["token"] == fcm_token("offline").as_str())
        .unwrap();
    assert_eq!(
        offline_push["data"]["notification_id"],
        offline_inbox["notifications"][0]["id"]
    );
    assert_eq!(offline_inbox["notifications"][0]["body"], secret);
    assert_eq!(offline_inbox["notifications"][0]["message_id"], sent["id"]);
    assert_eq!(offline_inbox["unread"], 1);

    // The muted member got no push and no notification, but the message counts as unread.
    assert_eq!(
        inbox(&app, &muted, "").await["notifications"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let rooms = app.get_json("/v1/rooms", &muted.access).await;
    let unread = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room.as_str())
        .unwrap()["unread"]
        .clone();
    assert!(
        unread.as_i64().unwrap() >= 1,
        "muted rooms still count unread: {rooms}"
    );

    // The online member hears of the notification on their socket.
    let frame = elsewhere_ws.expect_type("notification").await;
    assert_eq!(frame["notification"]["room_id"], room.as_str());
    assert_eq!(frame["notification"]["kind"], "message");
    assert_eq!(frame["unread_notifications"], 1);
    assert_eq!(frame["added"], 1);
    assert!(frame["badge"].as_i64().unwrap() >= 1);

    // A direct room's push is titled with the author's name.
    let direct = app.direct_room(&author, &offline).await;
    author_ws.say(&direct, "p2", "psst").await;
    assert!(eventually(WAIT, || fakes.fcm.accepted().len() >= 4).await);
    let last = fakes.fcm.accepted().last().cloned().unwrap();
    assert_eq!(last["notification"]["title"], "author");
    assert_eq!(last["notification"]["body"], "psst");

    // Notifications in quick succession: at most a frame a second per
    // user, each saying how many it announces.
    author_ws.say(&room, "p3", "more").await;
    author_ws.say(&room, "p4", "and more").await;
    author_ws.say(&room, "p5", "still more").await;
    let (mut announced, mut frames) = (0, 0);
    while announced < 3 {
        let frame = elsewhere_ws.expect_type("notification").await;
        announced += frame["added"].as_u64().unwrap();
        frames += 1;
        assert!(frame["unread_notifications"].as_u64().unwrap() >= 2);
    }
    assert_eq!(announced, 3);
    assert!(frames <= 2, "{frames} frames for three notifications");
    app.stop().await;
}

#[tokio::test]
async fn apns_gets_what_apple_checks() {
    let db = iyagi_testkit::TestDb::sqlite();
    let (app, fakes) = start(test_settings(&db.url)).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "iphone").await;
    let device_token = "a1".repeat(32);
    register_apns(&app, &bob, &device_token.to_uppercase()).await;
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    alice_ws.say(&room, "a1", "first").await;
    // The first push is sent before the second message (a room's waiting
    // pushes would collapse into the newest).
    assert!(
        eventually(WAIT, || fakes.apns.accepted().len() == 1).await,
        "{:?}",
        fakes.apns.rejected()
    );
    alice_ws.say(&room, "a2", "second").await;
    assert!(
        eventually(WAIT, || fakes.apns.accepted().len() >= 2).await,
        "{:?}",
        fakes.apns.rejected()
    );
    fakes.assert_no_rejections();
    let page = inbox_with(&app, &bob, 2).await;
    let accepted = fakes.apns.accepted();
    for (i, (token, headers, payload)) in accepted.iter().enumerate() {
        assert_eq!(token, &device_token, "stored lowercased");
        assert_eq!(headers["apns-topic"], TOPIC);
        assert_eq!(headers["apns-push-type"], "alert");
        assert_eq!(headers["apns-priority"], "10");
        assert_eq!(headers["apns-collapse-id"], room);
        assert!(headers["apns-expiration"].parse::<u64>().is_ok());
        let ids: Vec<&str> = page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&headers["apns-id"].as_str()),
            "apns-id is the notification id"
        );
        assert_eq!(payload["aps"]["alert"]["title"], "alice");
        assert_eq!(payload["aps"]["thread-id"], room.as_str());
        // The badge is the unread count when the push is sent.
        let badge = payload["aps"]["badge"].as_i64().unwrap();
        assert!((i as i64 + 1..=2).contains(&badge), "badge {badge}");
    }
    assert_eq!(
        accepted[1].2["aps"]["badge"], 2,
        "the badge counts unread messages"
    );
    assert_eq!(
        fakes.apns.provider_tokens().len(),
        1,
        "one provider token, reused"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn web_push_is_encrypted_for_the_subscription() {
    let db = iyagi_testkit::TestDb::sqlite();
    let (app, fakes) = start(test_settings(&db.url)).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "browser").await;
    let subscription = fakes.web.subscribe();
    register_webpush(&app, &bob, &subscription).await;
    let vapid = app.get_public("/v1/push/webpush/vapid-public-key").await;
    assert_eq!(vapid.status(), 200);
    let vapid: Value = vapid.json().await.unwrap();
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    alice_ws.say(&room, "w1", "안녕, web").await;
    assert!(
        eventually(WAIT, || !fakes.web.received().is_empty()).await,
        "{:?}",
        fakes.web.rejected()
    );
    fakes.assert_no_rejections();
    let received = fakes.web.received().remove(0);
    assert_eq!(received.payload["title"], "alice");
    assert_eq!(received.payload["body"], "안녕, web");
    assert_eq!(received.payload["room_id"], room.as_str());
    assert_eq!(received.headers["urgency"], "high");
    assert_eq!(received.headers["ttl"], "86400");
    assert_eq!(received.headers["topic"], room.replace('-', ""));
    let authorization = &received.headers["authorization"];
    let key = vapid["public_key"].as_str().unwrap();
    assert!(
        authorization.ends_with(&format!("k={key}")),
        "signed with the served VAPID key"
    );

    // The same bytes decrypt with an independent implementation (PyPI's http-ece).
    let script = r#"
import base64, sys, http_ece
from cryptography.hazmat.primitives.asymmetric import ec
b = lambda s: base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
key = ec.derive_private_key(int.from_bytes(b(sys.argv[1]), 'big'), ec.SECP256R1())
body = sys.stdin.buffer.read()
sys.stdout.buffer.write(http_ece.decrypt(body, private_key=key, auth_secret=b(sys.argv[2]), version='aes128gcm'))
"#;
    let mut child = match std::process::Command::new("python3")
        .args(["-c", script, &subscription.private_key, &subscription.auth])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("CI").is_err(),
                "python3 is needed under CI: {e}"
            );
            eprintln!("skipped the http-ece cross-check: {e}");
            return;
        }
    };
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&received.body)
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named") && std::env::var("CI").is_err() {
            eprintln!("skipped the http-ece cross-check (pip install http_ece): {stderr}");
        } else {
            panic!("http-ece could not decrypt: {stderr}");
        }
    } else {
        let plaintext: Value = serde_json::from_slice(&output.stdout).expect("JSON plaintext");
        assert_eq!(plaintext, received.payload);
    }
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn dead_tokens_are_pruned_per_provider() {
    let db = iyagi_testkit::TestDb::sqlite();
    let (app, fakes) = start(test_settings(&db.url)).await;
    let alice = app.user("alice", "phone").await;
    let android = app.user("bob", "android").await;
    let iphone = app.user("bob", "iphone").await;
    let ipad = app.user("bob", "ipad").await;
    let browser = app.user("bob", "browser").await;
    register_fcm(&app, &android, "dead-fcm-token").await;
    register_apns(&app, &iphone, &"b2".repeat(32)).await;
    register_apns(&app, &ipad, &"c3".repeat(32)).await;
    let subscription = fakes.web.subscribe();
    register_webpush(&app, &browser, &subscription).await;
    assert_eq!(registrations(&app, &android).await.len(), 4);
    fakes.fcm.unregister("dead-fcm-token");
    fakes.apns.unregister(&"b2".repeat(32));
    fakes.apns.bad_token(&"c3".repeat(32));
    fakes.web.expire(&subscription);

    let room = app.direct_room(&alice, &android).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    alice_ws.say(&room, "d1", "anyone?").await;
    let deadline = Instant::now() + WAIT;
    while !registrations(&app, &android).await.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        registrations(&app, &android).await,
        Vec::<Value>::new(),
        "every dead registration is gone"
    );
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric(&metrics, "iyagi_push_tokens_pruned", &[r#"provider="fcm""#]),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_tokens_pruned",
            &[r#"provider="apns""#]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_tokens_pruned",
            &[r#"provider="webpush""#]
        ),
        1.0
    );
    // The next message finds nobody to push to, and sends nothing.
    let before = (
        fakes.fcm.send_requests(),
        fakes.apns.requests(),
        fakes.web.requests(),
    );
    alice_ws.say(&room, "d2", "hello?").await;
    inbox_with(&app, &android, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (
            fakes.fcm.send_requests(),
            fakes.apns.requests(),
            fakes.web.requests()
        ),
        before
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn failures_are_retried_or_not_as_they_deserve() {
    let db = iyagi_testkit::TestDb::sqlite();
    let fakes = Fakes::start().await;
    let mut settings = test_settings(&db.url);
    fakes.configure(&mut settings);
    settings.push.max_attempts = 3;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    register_fcm(&app, &bob, "bob-token").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;

    // 429 with Retry-After: waited for, then delivered.
    fakes
        .fcm
        .script([FakeFcm::error(429, "QUOTA_EXCEEDED").with_header("retry-after", "1")]);
    let started = Instant::now();
    alice_ws.say(&room, "r1", "one").await;
    assert!(eventually(WAIT, || fakes.fcm.accepted().len() == 1).await);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(fakes.fcm.send_requests(), 2);

    // 500: retried.
    fakes.fcm.script([FakeFcm::error(500, "INTERNAL")]);
    alice_ws.say(&room, "r2", "two").await;
    assert!(eventually(WAIT, || fakes.fcm.accepted().len() == 2).await);
    assert_eq!(fakes.fcm.send_requests(), 4);

    // 400: not retried.
    fakes.fcm.script([FakeFcm::error(400, "INVALID_ARGUMENT")]);
    alice_ws.say(&room, "r3", "three").await;
    assert!(eventually(WAIT, || fakes.fcm.send_requests() == 5).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fakes.fcm.send_requests(), 5, "a 400 is final");
    assert_eq!(fakes.fcm.accepted().len(), 2);

    // 503 without Retry-After, every time: given up after max_attempts.
    fakes.fcm.script([
        FakeFcm::error(503, "UNAVAILABLE"),
        FakeFcm::error(503, "UNAVAILABLE"),
        FakeFcm::error(503, "UNAVAILABLE"),
    ]);
    alice_ws.say(&room, "r4", "four").await;
    assert!(eventually(WAIT, || fakes.fcm.send_requests() == 8).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fakes.fcm.send_requests(), 8, "three attempts, no more");
    assert_eq!(fakes.fcm.accepted().len(), 2);
    let metrics = app.metrics_text().await;
    let fcm = r#"provider="fcm""#;
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_attempts",
            &[fcm, r#"outcome="delivered""#]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_attempts",
            &[fcm, r#"outcome="retried""#, r#"reason="retry_after""#]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_attempts",
            &[fcm, r#"outcome="failed""#, r#"reason="permanent""#]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_attempts",
            &[fcm, r#"outcome="failed""#, r#"reason="attempts_exhausted""#]
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "iyagi_push_outbox_depth", &[]), 0.0);
    assert_eq!(fakes.fcm.token_requests(), 1, "the access token is cached");
    fakes.assert_no_rejections();
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_rooms_waiting_pushes_collapse_and_a_room_read_elsewhere_is_not_pushed() {
    let db = iyagi_testkit::TestDb::sqlite();
    let fakes = Fakes::start().await;
    let mut settings = test_settings(&db.url);
    fakes.configure(&mut settings);
    // A node that records but does not deliver, so the pushes wait (and
    // the read comes first).
    settings.push.worker = false;
    let app = TestApp::spawn_with(settings.clone()).await;
    let alice = app.user("alice", "phone").await;
    let carol = app.user("carol", "phone").await;
    let bob = app.user("bob", "phone").await;
    let bob_laptop = app.user("bob", "laptop").await;
    register_fcm(&app, &bob, "bob-phone-token").await;
    let room = app.direct_room(&alice, &bob).await;
    let carols = app.direct_room(&carol, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    let mut carol_ws = WsClient::connect_live(&app, &carol).await;
    alice_ws.say(&room, "s1", "one").await;
    alice_ws.say(&room, "s2", "two").await;
    let newest = alice_ws.say(&room, "s3", "three").await;
    let carols_message = carol_ws.say(&carols, "c1", "read me").await;
    inbox_with(&app, &bob, 4).await;
    assert_eq!(
        metric(&app.metrics_text().await, "iyagi_push_outbox_depth", &[]),
        2.0,
        "alice's three waiting pushes collapsed into one; carol's one"
    );
    // Bob reads carol's message on his laptop.
    let mut laptop = WsClient::connect_live(&app, &bob_laptop).await;
    laptop
        .send(json!({"type": "read", "ref": "r", "room_id": carols, "seq": carols_message["seq"]}))
        .await;
    laptop.expect_type("read_ack").await;
    app.stop().await;

    settings.push.worker = true;
    let app = TestApp::spawn_with(settings).await;
    assert!(eventually(WAIT, || fakes.fcm.accepted().len() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted = fakes.fcm.accepted();
    assert_eq!(
        accepted.len(),
        1,
        "one push for alice's room, none for carol's"
    );
    assert_eq!(accepted[0]["data"]["room_id"], room.as_str());
    assert_eq!(accepted[0]["data"]["seq"], newest["seq"].to_string());
    assert_eq!(accepted[0]["notification"]["body"], "three");
    // The badge counts all three unread.
    assert_eq!(
        accepted[0]["android"]["notification"]["notification_count"],
        3
    );
    // The inbox keeps every notification.
    assert_eq!(inbox(&app, &bob, "").await["unread"], 4);
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric(
            &metrics,
            "iyagi_push_attempts",
            &[r#"outcome="skipped""#, r#"reason="already_read""#]
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "iyagi_push_outbox_depth", &[]), 0.0);
    app.stop().await;
    db.cleanup().await;
}

/// Two nodes on one PostgreSQL database, each with its outbox worker,
/// deliver every notification exactly once.
#[tokio::test]
async fn two_nodes_share_the_outbox_exactly_once() {
    let Some(db) = iyagi_testkit::TestDb::postgres().await else {
        return;
    };
    let fakes = Fakes::start().await;
    fakes.fcm.set_delay(Duration::from_millis(10));
    let mut settings = test_settings(&db.url);
    fakes.configure(&mut settings);
    settings.push.batch = 8;
    settings.push.concurrency = 4;
    settings.ws.frames_per_second = 1000;
    let node_a = TestApp::spawn_with(settings.clone()).await;
    let node_b = TestApp::spawn_with(settings).await;
    let author = node_a.user("author", "phone").await;
    let mut members = Vec::new();
    for i in 0..6 {
        let member = node_a.user(&format!("member{i}"), "phone").await;
        register_fcm(&node_a, &member, &format!("token-{i}")).await;
        members.push(member);
    }
    let refs: Vec<&Tokens> = members.iter().collect();
    // One room per message: a room's waiting pushes would collapse into
    // its newest, and here every notification is to be pushed.
    let mut rooms = Vec::new();
    for _ in 0..25 {
        rooms.push(group_room(&node_a, &author, &refs).await);
    }
    let mut author_ws = WsClient::connect_live(&node_a, &author).await;
    for (i, room) in rooms.iter().enumerate() {
        author_ws
            .say(room, &format!("m{i}"), &format!("message {i}"))
            .await;
    }
    let total = 6 * 25;
    assert!(
        eventually(Duration::from_secs(30), || fakes.fcm.accepted().len()
            >= total)
        .await,
        "{} of {total}",
        fakes.fcm.accepted().len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted = fakes.fcm.accepted();
    let ids: HashSet<String> = accepted
        .iter()
        .map(|m| m["data"]["notification_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(accepted.len(), total, "nothing sent twice");
    assert_eq!(ids.len(), total, "every notification once");
    let delivered =
        |text: String| metric(&text, "iyagi_push_attempts", &[r#"outcome="delivered""#]);
    let (a, b) = (
        delivered(node_a.metrics_text().await),
        delivered(node_b.metrics_text().await),
    );
    assert_eq!(a + b, total as f64);
    assert!(a > 0.0 && b > 0.0, "both nodes took part: {a} + {b}");
    node_a.stop().await;
    node_b.stop().await;
    db.cleanup().await;
}

pub async fn the_inbox(db_url: String) {
    let mut settings = test_settings(&db_url);
    settings.push.poll_ms = 50;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    for i in 0..5 {
        alice_ws
            .say(&room, &format!("i{i}"), &format!("note {i}"))
            .await;
    }
    let all = inbox_with(&app, &bob, 5).await;
    assert_eq!(all["unread"], 5);
    let bodies: Vec<&str> = all["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["note 4", "note 3", "note 2", "note 1", "note 0"],
        "newest first"
    );

    // Cursor pagination.
    let first = inbox(&app, &bob, "?limit=2").await;
    assert_eq!(first["notifications"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = inbox(&app, &bob, &format!("?limit=2&before={cursor}")).await;
    assert_eq!(second["notifications"][0]["body"], "note 2");
    let cursor = second["next_cursor"].as_str().unwrap().to_owned();
    let third = inbox(&app, &bob, &format!("?limit=2&before={cursor}")).await;
    assert_eq!(third["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(third["next_cursor"], Value::Null);

    // Mark read up to the third newest: the two newer stay unread.
    let up_to = all["notifications"][2]["id"].clone();
    let response = app
        .call(
            Method::POST,
            "/v1/notifications/read",
            Some(&bob.access),
            Some(json!({"up_to": up_to})),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["unread"], 2);
    let unread = app.get_json("/v1/notifications/unread", &bob.access).await;
    assert_eq!(unread["unread"], 2);
    let listed = inbox(&app, &bob, "").await;
    let read: Vec<bool> = listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["read"].as_bool().unwrap())
        .collect();
    assert_eq!(read, [false, false, true, true, true]);
    // The watermark never moves back.
    let oldest = all["notifications"][4]["id"].clone();
    app.call(
        Method::POST,
        "/v1/notifications/read",
        Some(&bob.access),
        Some(json!({"up_to": oldest})),
    )
    .await;
    assert_eq!(
        app.get_json("/v1/notifications/unread", &bob.access).await["unread"],
        2
    );
    // Read all.
    let response = app
        .call(
            Method::POST,
            "/v1/notifications/read-all",
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.get_json("/v1/notifications/unread", &bob.access).await["unread"],
        0
    );
    // A new one arrives unread; other users see none of bob's.
    alice_ws.say(&room, "i5", "note 5").await;
    inbox_with(&app, &bob, 6).await;
    assert_eq!(
        app.get_json("/v1/notifications/unread", &bob.access).await["unread"],
        1
    );
    assert_eq!(
        inbox(&app, &alice, "").await["notifications"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    app.stop().await;
}

pub async fn old_notifications_are_deleted(db_url: String) {
    let mut settings = test_settings(&db_url);
    settings.push.retention_secs = 1;
    settings.push.retention_check_secs = 1;
    settings.push.poll_ms = 100;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    alice_ws.say(&room, "o1", "soon gone").await;
    inbox_with(&app, &bob, 1).await;
    let deadline = Instant::now() + WAIT;
    while !inbox(&app, &bob, "").await["notifications"]
        .as_array()
        .unwrap()
        .is_empty()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = inbox(&app, &bob, "").await;
    assert_eq!(page["notifications"].as_array().unwrap().len(), 0, "{page}");
    assert_eq!(page["unread"], 0);
    app.stop().await;
}

pub async fn bad_push_input_gets_its_code_and_stores_nothing(db_url: String) {
    let app = TestApp::spawn(&db_url).await;
    let bob = app.user("bob", "phone").await;
    let alice = app.user("alice", "phone").await;
    let put = |path: &'static str, body: Value| {
        let app = &app;
        let token = bob.access.clone();
        async move { app.call(Method::PUT, path, Some(&token), Some(body)).await }
    };
    expect_error(
        put("/v1/push/registrations/gcm", json!({"token": "x"})).await,
        404,
        "unknown_push_provider",
    )
    .await;
    expect_error(
        put("/v1/push/registrations/fcm", json!({"token": "has spaces"})).await,
        422,
        "invalid_push_token",
    )
    .await;
    expect_error(
        put("/v1/push/registrations/fcm", json!({"token": ""})).await,
        422,
        "invalid_push_token",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/fcm",
            json!({"token": "x".repeat(5000)}),
        )
        .await,
        422,
        "invalid_push_token",
    )
    .await;
    expect_error(
        put("/v1/push/registrations/fcm", json!({"tokn": "x"})).await,
        400,
        "invalid_request",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/apns",
            json!({"token": "not-hex", "topic": TOPIC}),
        )
        .await,
        422,
        "invalid_push_token",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/apns",
            json!({"token": "ab".repeat(32), "topic": ""}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let keys = json!({"p256dh": iyagi_testkit::push_fakes::FakeWebPush::start().await.subscribe().p256dh, "auth": "AAAAAAAAAAAAAAAAAAAAAA"});
    expect_error(
        put(
            "/v1/push/registrations/webpush",
            json!({"endpoint": "http://push.example/x", "keys": keys}),
        )
        .await,
        422,
        "insecure_push_endpoint",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/webpush",
            json!({"endpoint": "ftp://push.example/x", "keys": keys}),
        )
        .await,
        422,
        "insecure_push_endpoint",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/webpush",
            json!({"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": keys["auth"]}}),
        )
        .await,
        422,
        "invalid_push_keys",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/webpush",
            json!({"endpoint": "https://push.example/x", "keys": {"p256dh": keys["p256dh"], "auth": "AAAA"}}),
        )
        .await,
        422,
        "invalid_push_keys",
    )
    .await;
    expect_error(
        put(
            "/v1/push/registrations/webpush",
            json!({"endpoint": "https://push.example/x", "keys": {"p256dh": "!!not base64!!", "auth": keys["auth"]}}),
        )
        .await,
        422,
        "invalid_push_keys",
    )
    .await;
    assert_eq!(
        registrations(&app, &bob).await,
        Vec::<Value>::new(),
        "nothing stored"
    );
    let unauthenticated = app
        .client
        .put(app.url("/v1/push/registrations/fcm"))
        .json(&json!({"token": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(unauthenticated, 401, "unauthenticated").await;

    // A good one replaces, and is listed once per (device, provider).
    put("/v1/push/registrations/fcm", json!({"token": "first"})).await;
    put("/v1/push/registrations/fcm", json!({"token": "second"})).await;
    let listed = registrations(&app, &bob).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["token"], "second");
    let response = app
        .call(
            Method::DELETE,
            "/v1/push/registrations/fcm",
            Some(&bob.access),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    assert!(registrations(&app, &bob).await.is_empty());

    // The inbox.
    expect_error(
        app.get("/v1/notifications?limit=0", &bob.access).await,
        422,
        "validation_failed",
    )
    .await;
    expect_error(
        app.get("/v1/notifications?limit=201", &bob.access).await,
        422,
        "validation_failed",
    )
    .await;
    expect_error(
        app.get("/v1/notifications?before=nope", &bob.access).await,
        400,
        "invalid_request",
    )
    .await;
    let read = |body: Value| {
        let app = &app;
        let token = bob.access.clone();
        async move {
            app.call(
                Method::POST,
                "/v1/notifications/read",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    expect_error(read(json!({"up_to": "nope"})).await, 400, "invalid_request").await;
    expect_error(read(json!({})).await, 400, "invalid_request").await;

    // Preferences and mutes.
    expect_error(
        put("/v1/me/preferences", json!({"push_previews": "yes"})).await,
        400,
        "invalid_request",
    )
    .await;
    let room = app
        .direct_room(&alice, &app.user("carol", "phone").await)
        .await;
    expect_error(
        app.call(
            Method::PUT,
            &format!("/v1/rooms/{room}/mute"),
            Some(&bob.access),
            Some(json!({})),
        )
        .await,
        403,
        "not_a_member",
    )
    .await;
    let own = app.direct_room(&alice, &bob).await;
    expect_error(
        app.call(
            Method::PUT,
            &format!("/v1/rooms/{own}/mute"),
            Some(&bob.access),
            Some(json!({"until": -5})),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    expect_error(
        app.call(
            Method::PUT,
            "/v1/rooms/not-a-room/mute",
            Some(&bob.access),
            Some(json!({})),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    app.stop().await;
}

/// With no provider configured the server still records and "sends"
/// (logs) every push.
pub async fn no_provider_configured_still_records(db_url: String) {
    let app = TestApp::spawn(&db_url).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    register_fcm(&app, &bob, "unconfigured").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut alice_ws = WsClient::connect_live(&app, &alice).await;
    alice_ws.say(&room, "n1", "hello").await;
    inbox_with(&app, &bob, 1).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = app.metrics_text().await;
        let delivered = metric(
            &metrics,
            "iyagi_push_attempts",
            &[r#"provider="fcm""#, r#"outcome="recorded""#],
        );
        // The attempt is counted just before the delivery is finished.
        if delivered == 1.0 && metric(&metrics, "iyagi_push_outbox_depth", &[]) == 0.0 {
            assert_eq!(
                metric(&metrics, "iyagi_push_notifications_stored", &[]),
                1.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

/// A registration is deleted with its device: logout, device removal,
/// logout everywhere, refresh-token reuse.
pub async fn registrations_go_with_their_device(db_url: String) {
    let app = TestApp::spawn(&db_url).await;
    let phone = app.user("bob", "phone").await;
    let tablet = app.user("bob", "tablet").await;
    let laptop = app.user("bob", "laptop").await;
    register_fcm(&app, &phone, "phone-token").await;
    register_fcm(&app, &tablet, "tablet-token").await;
    register_fcm(&app, &laptop, "laptop-token").await;
    let devices = |list: Vec<Value>| -> Vec<String> {
        let mut d: Vec<String> = list
            .iter()
            .map(|r| r["device_id"].as_str().unwrap().to_owned())
            .collect();
        d.sort();
        d
    };
    assert_eq!(
        devices(registrations(&app, &laptop).await),
        ["laptop", "phone", "tablet"]
    );
    // Logout.
    let response = app
        .call(Method::POST, "/v1/auth/logout", Some(&phone.access), None)
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        devices(registrations(&app, &laptop).await),
        ["laptop", "tablet"]
    );
    // Device removal.
    let response = app
        .call(
            Method::DELETE,
            "/v1/devices/tablet",
            Some(&laptop.access),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(devices(registrations(&app, &laptop).await), ["laptop"]);
    // Refresh-token reuse signs the device out.
    let first = app.refresh(&laptop.refresh).await;
    assert_eq!(first.status(), 200);
    let fresh: Value = first.json().await.unwrap();
    let reused = app.refresh(&laptop.refresh).await;
    assert_eq!(reused.status(), 401);
    let other = app.user("bob", "watch").await;
    assert!(
        registrations(&app, &other).await.is_empty(),
        "reuse revoked the laptop"
    );
    assert!(fresh["access_token"].is_string());
    // Logout everywhere.
    register_fcm(&app, &other, "watch-token").await;
    let response = app
        .call(
            Method::POST,
            "/v1/auth/logout-all",
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    let again = app.user("bob", "again").await;
    assert!(registrations(&app, &again).await.is_empty());
    app.stop().await;
}
