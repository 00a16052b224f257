//! Staff roles over real HTTP: each staff route tried by a normal user, a
//! moderator and an admin; the queue of open reports; role changes audited.

use iyagi_moderation::StaffService;
use iyagi_protocol::moderation::StaffRole;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, expect_error};

crate::api_suite!(moderation: staff_routes_check_roles_and_changes_are_audited);

pub async fn staff_routes_check_roles_and_changes_are_audited(db_url: String) {
    let app = TestApp::spawn(&db_url).await;
    let admin = app.user("boss", "laptop").await;
    let moderator = app.user("mod", "laptop").await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    // The first admin, as `iyagi admin grant` makes one.
    StaffService::new(app.state.store.clone())
        .grant_by_username("BOSS", StaffRole::Admin)
        .await
        .unwrap();

    let set = |who: &str| format!("/v1/admin/staff/{who}");
    // Only an admin grants; moderators and users are refused.
    for caller in [&alice, &moderator] {
        let refused = app
            .call(
                Method::PUT,
                &set(&bob.user_id),
                Some(&caller.access),
                Some(json!({"role": "admin"})),
            )
            .await;
        expect_error(refused, 403, "forbidden").await;
    }
    let granted = app
        .call(
            Method::PUT,
            &set(&moderator.user_id),
            Some(&admin.access),
            Some(json!({"role": "moderator"})),
        )
        .await;
    assert_eq!(granted.status(), 204);
    let unknown = app
        .call(
            Method::PUT,
            &set(&Uuid::now_v7().to_string()),
            Some(&admin.access),
            Some(json!({"role": "moderator"})),
        )
        .await;
    expect_error(unknown, 404, "not_found").await;
    let bad = app
        .call(
            Method::PUT,
            &set(&bob.user_id),
            Some(&admin.access),
            Some(json!({"role": "god"})),
        )
        .await;
    expect_error(bad, 400, "invalid_request").await;

    // Reports to queue: two users report alice, one reports bob.
    for (reporter, target, reason) in [
        (&bob, &alice, "spam"),
        (&moderator, &alice, "hate"),
        (&alice, &bob, "spam"),
    ] {
        let body = json!({"target": {"type": "user", "user_id": target.user_id}, "reason": reason});
        assert_eq!(
            app.call(
                Method::POST,
                "/v1/reports",
                Some(&reporter.access),
                Some(body)
            )
            .await
            .status(),
            201
        );
    }
    expect_error(
        app.call(
            Method::GET,
            "/v1/moderation/queue",
            Some(&alice.access),
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    for staff in [&moderator, &admin] {
        let queue: Value = app.get_json("/v1/moderation/queue", &staff.access).await;
        let items = queue["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0]["target_id"],
            alice.user_id.as_str(),
            "the longest-waiting first"
        );
        assert_eq!(items[0]["reports"], 2);
        assert_eq!(items[0]["reasons"].as_array().unwrap().len(), 2);
        assert_eq!(items[1]["reports"], 1);
    }

    // The audit log: admins only; every role change in it.
    for caller in [&alice, &moderator] {
        expect_error(
            app.call(Method::GET, "/v1/admin/audit", Some(&caller.access), None)
                .await,
            403,
            "forbidden",
        )
        .await;
    }
    let revoked = app
        .call(
            Method::PUT,
            &set(&moderator.user_id),
            Some(&admin.access),
            Some(json!({"role": null})),
        )
        .await;
    assert_eq!(revoked.status(), 204);
    expect_error(
        app.call(
            Method::GET,
            "/v1/moderation/queue",
            Some(&moderator.access),
            None,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let log: Value = app.get_json("/v1/admin/audit", &admin.access).await;
    let entries = log["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["revoke_role", "grant_role", "grant_role"]);
    assert_eq!(
        entries[2]["actor_id"],
        Value::Null,
        "the first grant: the command line"
    );
    assert_eq!(entries[1]["actor_id"], admin.user_id.as_str());
    assert_eq!(entries[1]["target_id"], moderator.user_id.as_str());
    // No route changes the log.
    for method in [Method::PUT, Method::DELETE, Method::POST] {
        let status = app
            .call(
                method,
                "/v1/admin/audit",
                Some(&admin.access),
                Some(json!({})),
            )
            .await
            .status();
        assert_eq!(status, 405);
    }
    app.stop().await;
}
