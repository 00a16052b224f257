//! Reports over real HTTP: each target type, who may report what, the
//! evidence kept, reporting again, the rate, bad input, and the analysis
//! event each change appends.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Pair, expect_error, test_settings};
use crate::ws_client::WsClient;

crate::api_suite!(reports:
    reports_keep_their_evidence_and_a_report_again_updates,
    only_what_you_can_see_can_be_reported,
    reports_are_rate_limited_and_bad_input_stores_nothing,
);

async fn report(pair: &Pair, who: &crate::helpers::Tokens, body: Value) -> reqwest::Response {
    pair.app
        .call(Method::POST, "/v1/reports", Some(&who.access), Some(body))
        .await
}

pub async fn reports_keep_their_evidence_and_a_report_again_updates(db_url: String) {
    let pair = Pair::start(test_settings(&db_url)).await;
    let mut a = WsClient::connect_live(&pair.app, &pair.alice).await;
    let mut seqs = Vec::new();
    for i in 0..7 {
        seqs.push(
            a.say(&pair.room, &format!("m{i}"), &format!("text {i}"))
                .await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    let target = json!({"type": "message", "room_id": pair.room, "seq": seqs[3]});
    let filed = report(
        &pair,
        &pair.bob,
        json!({"target": target, "reason": "spam", "details": "buy now"}),
    )
    .await;
    assert_eq!(filed.status(), 201);
    let filed: Value = filed.json().await.unwrap();
    assert_eq!(filed["target_type"], "message");
    assert_eq!(filed["status"], "open");
    assert_eq!(filed["reason"], "spam");

    // The evidence: the message with three on each side, as they were.
    let bob = Uuid::parse_str(&pair.bob.user_id).unwrap();
    let stored = pair.app.state.store.reports_by(bob, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    let evidence: Value = serde_json::from_str(&stored[0].evidence).unwrap();
    assert_eq!(evidence["message"]["content"]["text"], "text 3");
    let texts = |side: &str| -> Vec<String> {
        evidence[side]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"]["text"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(texts("after"), vec!["text 4", "text 5", "text 6"]);
    assert_eq!(texts("before").len(), 3);
    assert_eq!(texts("before")[2], "text 2");

    // Again: the same report, updated.
    let again = report(
        &pair,
        &pair.bob,
        json!({"target": target, "reason": "harassment"}),
    )
    .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], filed["id"]);
    assert_eq!(again["reason"], "harassment");
    assert_eq!(again["details"], Value::Null);

    // A user and a room.
    let user = report(&pair, &pair.bob, json!({"target": {"type": "user", "user_id": pair.alice.user_id}, "reason": "impersonation"})).await;
    assert_eq!(user.status(), 201);
    let room = report(&pair, &pair.bob, json!({"target": {"type": "room", "room_id": pair.room}, "reason": "other", "details": "  "})).await;
    assert_eq!(room.status(), 201);
    let mine: Value = pair.app.get_json("/v1/reports", &pair.bob.access).await;
    assert_eq!(mine["reports"].as_array().unwrap().len(), 3);
    assert_eq!(mine["reports"][0]["target_type"], "room", "newest first");

    // One analysis event per change, without the free text.
    let events = pair
        .app
        .state
        .store
        .analysis_events(0, i64::MAX, None, 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        events
            .iter()
            .all(|e| e.kind == "report_filed" && !e.payload.contains("buy now"))
    );
    pair.app.stop().await;
}

pub async fn only_what_you_can_see_can_be_reported(db_url: String) {
    let pair = Pair::start(test_settings(&db_url)).await;
    let carol = pair.app.user("carol", "phone").await;
    let mut a = WsClient::connect_live(&pair.app, &pair.alice).await;
    let seq = a.say(&pair.room, "m1", "private").await["seq"]
        .as_i64()
        .unwrap();
    let message = |seq: i64| json!({"type": "message", "room_id": pair.room, "seq": seq});
    // (who reports, target, status, code)
    let refused = [
        // Carol is not in the room: neither its messages nor the room
        // itself, and an unknown room looks the same.
        (&carol, message(seq), 403, "not_a_member"),
        (
            &carol,
            json!({"type": "room", "room_id": pair.room}),
            403,
            "not_a_member",
        ),
        (
            &carol,
            json!({"type": "room", "room_id": Uuid::now_v7()}),
            403,
            "not_a_member",
        ),
        // Markers and system messages are not reportable content; nor is
        // a seq past the end.
        (&pair.bob, message(1), 404, "not_found"),
        (&pair.bob, message(seq + 10), 404, "not_found"),
        (
            &carol,
            json!({"type": "user", "user_id": Uuid::now_v7()}),
            404,
            "not_found",
        ),
        (
            &carol,
            json!({"type": "user", "user_id": carol.user_id}),
            422,
            "validation_failed",
        ),
    ];
    for (who, target, status, code) in refused {
        let response = report(&pair, who, json!({"target": target, "reason": "spam"})).await;
        expect_error(response, status, code).await;
    }
    // A user anyone can report.
    let alice = json!({"type": "user", "user_id": pair.alice.user_id});
    assert_eq!(
        report(&pair, &carol, json!({"target": alice, "reason": "hate"}))
            .await
            .status(),
        201
    );
    expect_error(
        pair.app.call(Method::GET, "/v1/reports", None, None).await,
        401,
        "unauthenticated",
    )
    .await;
    pair.app.stop().await;
}

pub async fn reports_are_rate_limited_and_bad_input_stores_nothing(db_url: String) {
    let mut settings = test_settings(&db_url);
    // 31 messages at once, past the sender's frame rate otherwise.
    settings.ws.frames_per_second = 1000;
    let pair = Pair::start(settings).await;
    let mut a = WsClient::connect_live(&pair.app, &pair.alice).await;
    let mut seqs = Vec::new();
    for i in 0..31 {
        seqs.push(
            a.say(&pair.room, &format!("m{i}"), "x").await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    let bad: Vec<(Value, u16, &str)> = vec![
        (
            json!({"target": {"type": "post", "post_id": 1}, "reason": "spam"}),
            400,
            "invalid_request",
        ),
        (
            json!({"target": {"type": "message", "room_id": pair.room, "seq": seqs[0]}, "reason": "boring"}),
            400,
            "invalid_request",
        ),
        (
            json!({"target": {"type": "message", "room_id": pair.room, "seq": seqs[0]}, "reason": "spam", "details": "x".repeat(1001)}),
            422,
            "validation_failed",
        ),
        (json!({"reason": "spam"}), 400, "invalid_request"),
    ];
    for (body, status, code) in bad {
        expect_error(report(&pair, &pair.bob, body.clone()).await, status, code).await;
    }
    let bob = Uuid::parse_str(&pair.bob.user_id).unwrap();
    assert!(
        pair.app
            .state
            .store
            .reports_by(bob, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
    assert!(
        pair.app
            .state
            .store
            .analysis_events(0, i64::MAX, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for seq in &seqs[..30] {
        let target = json!({"type": "message", "room_id": pair.room, "seq": seq});
        assert_eq!(
            report(
                &pair,
                &pair.bob,
                json!({"target": target, "reason": "spam"})
            )
            .await
            .status(),
            201
        );
    }
    let target = json!({"type": "message", "room_id": pair.room, "seq": seqs[30]});
    expect_error(
        report(
            &pair,
            &pair.bob,
            json!({"target": target, "reason": "spam"}),
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(
        pair.app
            .state
            .store
            .reports_by(bob, 100)
            .await
            .unwrap()
            .len(),
        30
    );
    pair.app.stop().await;
}
