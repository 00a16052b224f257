//! Health, readiness, metrics, the OpenAPI document and request ids.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, expect_error};

#[tokio::test]
async fn health_readiness_and_unknown_routes() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    let health: Value = app.get_public("/healthz").await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = app.get_public("/readyz").await;
    assert_eq!(ready.status(), 200);
    expect_error(app.get_public("/v1/nothing-here").await, 404, "not_found").await;
    let wrong_method = app.call(Method::GET, "/v1/auth/login", None, None).await;
    expect_error(wrong_method, 405, "method_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn readiness_fails_when_storage_is_gone() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    // Close the pool under the running server: storage is now unreachable.
    app.state.store.close().await;
    expect_error(app.get_public("/readyz").await, 503, "unavailable").await;
    assert_eq!(
        app.get_public("/healthz").await.status(),
        200,
        "still alive"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    for _ in 0..3 {
        app.get_public("/healthz").await;
    }
    let text = app.metrics_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("iyagi_http_requests_total") && l.contains(r#"route="/healthz""#))
        .unwrap_or_else(|| panic!("no healthz counter in:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("iyagi_http_request_duration_seconds_bucket"));
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    let doc: Value = app
        .get_public("/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/auth/register",
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/auth/logout-all",
        "/v1/me",
        "/v1/devices",
        "/v1/devices/{device_id}",
        "/v1/.well-known/jwks.json",
        "/v1/rooms",
        "/v1/rooms/direct",
        "/v1/rooms/{room_id}",
        "/v1/rooms/{room_id}/members",
        "/v1/rooms/{room_id}/members/{user_id}",
        "/v1/rooms/{room_id}/messages",
        "/v1/rooms/{room_id}/presence",
        "/v1/users/{username}",
        "/v1/ws",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("error codes enumerated");
    assert_eq!(codes.len(), iyagi_protocol::ErrorCode::ALL.len());
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    let generated = app.get_public("/healthz").await;
    assert!(!generated.headers()["x-request-id"].is_empty());
    let given = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_need_a_token_or_a_listener_of_their_own() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = crate::helpers::test_settings(&db.url);
    settings.metrics.token = iyagi_server::SecretString::new("s3cret-scrape");
    let app = TestApp::spawn_with(settings).await;
    let without = app.get_public("/metrics").await;
    expect_error(without, 401, "unauthenticated").await;
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-scrapf")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-scrape")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("iyagi_ws_queued_bytes")
    );
    app.stop().await;

    let mut settings = crate::helpers::test_settings(&db.url);
    settings.metrics.listen = "127.0.0.1:0".to_owned();
    let app = TestApp::spawn_with(settings).await;
    assert_ne!(app.metrics_addr, app.addr);
    let main = app.get_public("/metrics").await;
    expect_error(main, 404, "not_found").await;
    let own = app
        .client
        .get(format!("http://{}/metrics", app.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    app.stop().await;
    db.cleanup().await;
}
