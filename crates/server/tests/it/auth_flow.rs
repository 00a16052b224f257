//! Register, login per device, refresh rotation, logout, logout-all, devices.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_error, test_settings};

crate::api_suite!(auth_flow:
    register_login_refresh_logout_and_logout_all,
    reusing_a_rotated_refresh_token_revokes_the_device,
    removing_a_device_signs_it_out,
    failed_logins_look_the_same_for_unknown_users_and_wrong_passwords,
    usernames_are_unique_case_insensitively,
    relogin_on_the_same_device_replaces_its_session,
);

pub async fn register_login_refresh_logout_and_logout_all(db: String) {
    let app = TestApp::spawn(&db).await;
    let user = app.register("Minji", "correct horse").await;
    assert_eq!(user["username"], "minji", "usernames are stored lower-case");

    let phone = app.login("minji", "correct horse", "phone").await;
    let laptop = app.login("MINJI", "correct horse", "laptop").await;
    assert_eq!(phone.user_id, user["id"].as_str().unwrap());

    let me: Value = app.get_json("/v1/me", &phone.access).await;
    assert_eq!(me["id"], user["id"]);

    let devices: Value = app.get_json("/v1/devices", &phone.access).await;
    let list = devices["devices"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for d in list {
        assert_eq!(
            d["current"],
            d["id"] == "phone",
            "only the calling device is current: {d}"
        );
        assert_eq!(d["platform"], "android");
    }

    // Refresh rotates: a new pair, and the new access token works.
    let response = app.refresh(&phone.refresh).await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    assert_ne!(rotated["refresh_token"], phone.refresh.as_str());
    assert_eq!(rotated["device_id"], "phone");
    assert_eq!(rotated["token_type"], "Bearer");
    let phone_access = rotated["access_token"].as_str().unwrap().to_owned();
    let phone_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/me", &phone_access).await.status(), 200);

    // Logout signs this device out at once; the other device is untouched.
    assert_eq!(
        app.call(Method::POST, "/v1/auth/logout", Some(&phone_access), None)
            .await
            .status(),
        204
    );
    expect_error(
        app.get("/v1/me", &phone_access).await,
        401,
        "unauthenticated",
    )
    .await;
    expect_error(
        app.refresh(&phone_refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(app.get("/v1/me", &laptop.access).await.status(), 200);

    // Log out everywhere.
    let tablet = app.login("minji", "correct horse", "tablet").await;
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/auth/logout-all",
            Some(&tablet.access),
            None
        )
        .await
        .status(),
        204
    );
    for token in [&laptop.access, &tablet.access] {
        expect_error(app.get("/v1/me", token).await, 401, "unauthenticated").await;
    }
    for token in [&laptop.refresh, &tablet.refresh] {
        expect_error(app.refresh(token).await, 401, "invalid_refresh_token").await;
    }
    // Logging in again works after all that.
    let again = app.login("minji", "correct horse", "phone").await;
    assert_eq!(app.get("/v1/me", &again.access).await.status(), 200);
    app.stop().await;
}

pub async fn reusing_a_rotated_refresh_token_revokes_the_device(db: String) {
    let app = TestApp::spawn(&db).await;
    app.register("thief_target", "correct horse").await;
    let first = app.login("thief_target", "correct horse", "phone").await;
    let other = app.login("thief_target", "correct horse", "laptop").await;
    let second: Value = app.refresh(&first.refresh).await.json().await.unwrap();
    let second_access = second["access_token"].as_str().unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();

    // The old token comes back (say, stolen): the whole family dies.
    expect_error(
        app.refresh(&first.refresh).await,
        401,
        "refresh_token_reused",
    )
    .await;
    expect_error(
        app.refresh(second_refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    expect_error(
        app.get("/v1/me", second_access).await,
        401,
        "unauthenticated",
    )
    .await;
    // Only that device: the laptop keeps working.
    assert_eq!(app.get("/v1/me", &other.access).await.status(), 200);
    assert_eq!(app.refresh(&other.refresh).await.status(), 200);
    expect_error(
        app.refresh("rt_not-a-token").await,
        401,
        "invalid_refresh_token",
    )
    .await;
    app.stop().await;
}

pub async fn removing_a_device_signs_it_out(db: String) {
    let app = TestApp::spawn(&db).await;
    app.register("remover", "correct horse").await;
    let phone = app.login("remover", "correct horse", "phone").await;
    let laptop = app.login("remover", "correct horse", "laptop").await;
    let response = app
        .call(
            Method::DELETE,
            "/v1/devices/phone",
            Some(&laptop.access),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    expect_error(
        app.get("/v1/me", &phone.access).await,
        401,
        "unauthenticated",
    )
    .await;
    expect_error(
        app.refresh(&phone.refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    let devices: Value = app.get_json("/v1/devices", &laptop.access).await;
    let ids: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["laptop"]);
    let missing = app
        .call(
            Method::DELETE,
            "/v1/devices/phone",
            Some(&laptop.access),
            None,
        )
        .await;
    expect_error(missing, 404, "not_found").await;

    // Another user cannot touch my devices: theirs is a different namespace.
    app.register("someone", "correct horse").await;
    let someone = app.login("someone", "correct horse", "laptop").await;
    let response = app
        .call(
            Method::DELETE,
            "/v1/devices/laptop",
            Some(&someone.access),
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.get("/v1/me", &laptop.access).await.status(),
        200,
        "remover's laptop unaffected"
    );
    app.stop().await;
}

pub async fn failed_logins_look_the_same_for_unknown_users_and_wrong_passwords(db: String) {
    let app = TestApp::spawn(&db).await;
    app.register("known", "correct horse").await;
    let device = json!({"id": "d1", "platform": "web"});
    let wrong_password = app
        .post(
            "/v1/auth/login",
            json!({"username": "known", "password": "wrong password", "device": device}),
        )
        .await;
    let unknown_user = app
        .post(
            "/v1/auth/login",
            json!({"username": "unknown", "password": "wrong password", "device": device}),
        )
        .await;
    let malformed_user = app
        .post(
            "/v1/auth/login",
            json!({"username": "no spaces allowed", "password": "x", "device": device}),
        )
        .await;
    let a = expect_error(wrong_password, 401, "invalid_credentials").await;
    let b = expect_error(unknown_user, 401, "invalid_credentials").await;
    let c = expect_error(malformed_user, 401, "invalid_credentials").await;
    assert_eq!(a, b);
    assert_eq!(b, c);
    app.stop().await;
}

pub async fn usernames_are_unique_case_insensitively(db: String) {
    let app = TestApp::spawn(&db).await;
    app.register("jisoo", "correct horse").await;
    let again = app
        .post(
            "/v1/auth/register",
            json!({"username": "JiSoo", "password": "another pass"}),
        )
        .await;
    expect_error(again, 409, "username_taken").await;
    // The original password still works; nothing was overwritten.
    app.login("jisoo", "correct horse", "d").await;
    app.stop().await;
}

pub async fn relogin_on_the_same_device_replaces_its_session(db: String) {
    let app = TestApp::spawn(&db).await;
    app.register("relogger", "correct horse").await;
    let first = app.login("relogger", "correct horse", "phone").await;
    let second = app.login("relogger", "correct horse", "phone").await;
    expect_error(
        app.get("/v1/me", &first.access).await,
        401,
        "unauthenticated",
    )
    .await;
    expect_error(
        app.refresh(&first.refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    assert_eq!(app.get("/v1/me", &second.access).await.status(), 200);
    let devices: Value = app.get_json("/v1/devices", &second.access).await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account_and_per_address() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.auth.rate_limit.login_per_account_per_minute = 3;
    settings.auth.rate_limit.login_per_address_per_minute = 6;
    let app = TestApp::spawn_with(settings).await;
    app.register("limited", "correct horse").await;
    let attempt = |username: &'static str, password: &'static str| {
        app.post(
            "/v1/auth/login",
            json!({"username": username, "password": password, "device": {"id": "d", "platform": "web"}}),
        )
    };
    for _ in 0..3 {
        expect_error(
            attempt("limited", "wrong password").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    // The account's bucket is empty: even the right password must wait.
    let limited = attempt("limited", "correct horse").await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    expect_error(limited, 429, "rate_limited").await;
    // Other accounts from this address still get through until the address's bucket is empty.
    expect_error(
        attempt("other1", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    expect_error(
        attempt("other2", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    expect_error(
        attempt("other3", "wrong password").await,
        429,
        "rate_limited",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn access_tokens_expire() {
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    settings.auth.access_token_ttl_secs = 1;
    settings.auth.clock_skew_secs = 0;
    let app = TestApp::spawn_with(settings).await;
    app.register("shortlived", "correct horse").await;
    let tokens = app.login("shortlived", "correct horse", "phone").await;
    assert_eq!(app.get("/v1/me", &tokens.access).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    expect_error(
        app.get("/v1/me", &tokens.access).await,
        401,
        "unauthenticated",
    )
    .await;
    // The refresh token still gets a fresh access token.
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 200);
    app.stop().await;
}
