//! Every way a request can be wrong gets its documented code, and nothing is written.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, expect_error};

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: impl Into<String>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        path,
        content_type: Some("application/json"),
        body: body.into(),
        status,
        code,
    }
}

crate::api_suite!(bad_input:
    bad_bodies_get_documented_codes_and_write_nothing,
    every_paginated_route_refuses_a_limit_out_of_range,
);

pub async fn bad_bodies_get_documented_codes_and_write_nothing(db: String) {
    let app = TestApp::spawn(&db).await;
    let device = r#"{"id":"d1","platform":"web"}"#;
    let cases = vec![
        case(
            "malformed json",
            "/v1/auth/register",
            r#"{"username": "ghost1", "password": "#,
            400,
            "malformed_json",
        ),
        case(
            "not json at all",
            "/v1/auth/register",
            "username=ghost2",
            400,
            "malformed_json",
        ),
        case(
            "missing field",
            "/v1/auth/register",
            r#"{"username": "ghost3"}"#,
            400,
            "invalid_request",
        ),
        case(
            "wrong type",
            "/v1/auth/register",
            r#"{"username": 42, "password": "long enough"}"#,
            400,
            "invalid_request",
        ),
        case(
            "array instead of object",
            "/v1/auth/register",
            r#"["ghost4", "long enough"]"#,
            400,
            "invalid_request",
        ),
        case(
            "unknown field",
            "/v1/auth/register",
            r#"{"username": "ghost5", "password": "long enough", "admin": true}"#,
            400,
            "invalid_request",
        ),
        case(
            "over-long username",
            "/v1/auth/register",
            json!({"username": "g".repeat(33), "password": "long enough"}).to_string(),
            422,
            "validation_failed",
        ),
        case(
            "short username",
            "/v1/auth/register",
            r#"{"username": "gh", "password": "long enough"}"#,
            422,
            "validation_failed",
        ),
        case(
            "bad characters",
            "/v1/auth/register",
            r#"{"username": "ghost 6", "password": "long enough"}"#,
            422,
            "validation_failed",
        ),
        case(
            "short password",
            "/v1/auth/register",
            r#"{"username": "ghost7", "password": "short"}"#,
            422,
            "validation_failed",
        ),
        case(
            "oversized body",
            "/v1/auth/register",
            json!({"username": "ghost8", "password": "x".repeat(128 * 1024)}).to_string(),
            413,
            "payload_too_large",
        ),
        Case {
            name: "no content type",
            path: "/v1/auth/register",
            content_type: None,
            body: r#"{"username": "ghost9", "password": "long enough"}"#.to_owned(),
            status: 415,
            code: "unsupported_media_type",
        },
        case(
            "login with unknown platform",
            "/v1/auth/login",
            r#"{"username": "ghost10", "password": "long enough", "device": {"id": "d", "platform": "toaster"}}"#,
            400,
            "invalid_request",
        ),
        case(
            "login without device",
            "/v1/auth/login",
            r#"{"username": "ghost11", "password": "long enough"}"#,
            400,
            "invalid_request",
        ),
        case(
            "login with bad device id",
            "/v1/auth/login",
            format!(
                r#"{{"username": "ghost12", "password": "long enough", "device": {{"id": "{}", "platform": "web"}}}}"#,
                "d".repeat(65)
            ),
            422,
            "validation_failed",
        ),
        case(
            "refresh with number",
            "/v1/auth/refresh",
            r#"{"refresh_token": 7}"#,
            400,
            "invalid_request",
        ),
        case(
            "login malformed",
            "/v1/auth/login",
            format!(r#"{{"username": "ghost13", "device": {device}"#),
            400,
            "malformed_json",
        ),
    ];
    for c in &cases {
        let mut request = app.client.post(app.url(c.path)).body(c.body.clone());
        if let Some(ct) = c.content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), c.status, "case {:?}", c.name);
        let body: serde_json::Value = response.json().await.expect("JSON error body");
        assert_eq!(body["code"], c.code, "case {:?}: {body}", c.name);
    }
    // Nothing was written by any of them.
    for n in 1..=13 {
        let name = format!("ghost{n}");
        assert!(
            app.state
                .store
                .user_by_username(&name)
                .await
                .unwrap()
                .is_none(),
            "{name} must not exist"
        );
    }
    assert!(
        app.state
            .store
            .user_by_username(&"g".repeat(33))
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_bearer_tokens_are_unauthenticated() {
    let db = iyagi_testkit::TestDb::sqlite();
    let app = TestApp::spawn(&db.url).await;
    let missing = app.call(Method::GET, "/v1/me", None, None).await;
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    expect_error(missing, 401, "unauthenticated").await;
    for token in [
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJpc3MiOiJpeWFnaSJ9.",
    ] {
        expect_error(app.get("/v1/me", token).await, 401, "unauthenticated").await;
    }
    let basic = app
        .client
        .get(app.url("/v1/devices"))
        .header("authorization", "Basic dTpw")
        .send()
        .await
        .unwrap();
    expect_error(basic, 401, "unauthenticated").await;
    app.stop().await;
}

/// One rule for every paginated answer: `limit` is 1 to 200 (50 when
/// absent); out of range is refused with `validation_failed`, not clamped.
pub async fn every_paginated_route_refuses_a_limit_out_of_range(db: String) {
    let app = TestApp::spawn(&db).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let routes = ["/v1/rooms".to_owned(), format!("/v1/rooms/{room}/messages")];
    for route in &routes {
        for limit in ["0", "201", "100000", "-1"] {
            let response = app
                .get(&format!("{route}?limit={limit}"), &alice.access)
                .await;
            expect_error(response, 422, "validation_failed").await;
        }
        for limit in ["1.5", "many", ""] {
            let response = app
                .get(&format!("{route}?limit={limit}"), &alice.access)
                .await;
            expect_error(response, 400, "invalid_request").await;
        }
        for limit in ["1", "200"] {
            let response = app
                .get(&format!("{route}?limit={limit}"), &alice.access)
                .await;
            assert_eq!(response.status(), 200, "{route}?limit={limit}");
        }
    }
    let mut ws = crate::ws_client::WsClient::connect_live(&app, &alice).await;
    for limit in [0, 201] {
        ws.send(json!({"type": "history", "ref": "h", "room_id": room, "limit": limit}))
            .await;
        let error = ws.expect_error("validation_failed").await;
        assert_eq!(error["ref"], "h");
    }
    app.stop().await;
}
