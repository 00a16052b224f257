//! The moderation aggregate's contract: reports and the analysis event log.

use std::sync::Arc;

use iyagi_store::*;
use uuid::Uuid;

use crate::cases::{NOW, user};

fn report(reporter: Uuid, target: &str, reason: &str, at: i64) -> NewReport {
    NewReport {
        id: Uuid::now_v7(),
        reporter_id: reporter,
        target_type: "user".to_owned(),
        target_id: target.to_owned(),
        room_id: None,
        reason: reason.to_owned(),
        details: Some("details".to_owned()),
        evidence: r#"{"user":{}}"#.to_owned(),
        now_ms: at,
    }
}

pub async fn a_report_again_updates_it_and_each_appends_an_event(store: Arc<dyn Storage>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let first = store
        .file_report(
            &report(alice.id, &bob.id.to_string(), "spam", NOW),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.report.status, REPORT_OPEN);
    let again = store
        .file_report(
            &report(alice.id, &bob.id.to_string(), "harassment", NOW + 10),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    assert!(!again.created, "the same reporter and target: updated");
    assert_eq!(again.report.id, first.report.id);
    assert_eq!(again.report.reason, "harassment");
    assert_eq!(again.report.created_at_ms, NOW);
    assert_eq!(again.report.updated_at_ms, NOW + 10);
    // Another reporter's report of the same target is its own.
    let other = store
        .file_report(
            &report(bob.id, &alice.id.to_string(), "spam", NOW + 20),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    assert!(other.created);
    let mine = store.reports_by(alice.id, 10).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        store.reports_filed_since(alice.id, NOW + 5).await.unwrap(),
        1
    );
    assert_eq!(
        store.reports_filed_since(alice.id, NOW + 11).await.unwrap(),
        0
    );

    let events = store.analysis_events(0, i64::MAX, None, 10).await.unwrap();
    assert_eq!(events.len(), 3, "one per change");
    assert!(events.iter().all(|e| e.kind == EVENT_REPORT_FILED));
    let payload: serde_json::Value = serde_json::from_str(&events[1].payload).unwrap();
    assert_eq!(payload["created"], false);
    assert_eq!(payload["reason"], "harassment");
    assert!(
        !events[0].payload.contains("details"),
        "no free text in events"
    );
    // The cursor and the time window.
    let page = store
        .analysis_events(0, i64::MAX, Some(events[0].id), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(
        store
            .analysis_events(NOW + 15, NOW + 25, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn roles_are_audited_and_the_queue_groups_open_reports(store: Arc<dyn Storage>) {
    let admin = user(&store, "admin").await;
    let mod1 = user(&store, "mod1").await;
    let change = |user_id: Uuid, role: Option<&str>, actor: Option<Uuid>, at: i64| RoleChange {
        user_id,
        role: role.map(str::to_owned),
        actor_id: actor,
        audit_id: Uuid::now_v7(),
        now_ms: at,
    };
    store
        .change_role(&change(admin.id, Some("admin"), None, NOW))
        .await
        .unwrap();
    store
        .change_role(&change(mod1.id, Some("moderator"), Some(admin.id), NOW + 1))
        .await
        .unwrap();
    assert_eq!(
        store.staff_role(admin.id).await.unwrap().as_deref(),
        Some("admin")
    );
    assert_eq!(
        store.staff_role(mod1.id).await.unwrap().as_deref(),
        Some("moderator")
    );
    store
        .change_role(&change(mod1.id, None, Some(admin.id), NOW + 2))
        .await
        .unwrap();
    assert_eq!(store.staff_role(mod1.id).await.unwrap(), None);
    assert!(matches!(
        store
            .change_role(&change(Uuid::now_v7(), Some("admin"), None, NOW))
            .await,
        Err(StoreError::NotFound)
    ));
    let log = store.audit_log(10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["revoke_role", "grant_role", "grant_role"],
        "newest first"
    );
    assert_eq!(log[2].actor_id, None, "the command line");
    assert_eq!(log[1].actor_id, Some(admin.id));

    // The queue: targets by their first report, with counts and reasons.
    let (a, b, c) = (
        user(&store, "a").await,
        user(&store, "b").await,
        user(&store, "c").await,
    );
    let x = Uuid::now_v7().to_string();
    let y = Uuid::now_v7().to_string();
    for (reporter, target, reason, at) in [
        (a.id, &y, "spam", NOW + 5),
        (a.id, &x, "spam", NOW + 10),
        (b.id, &x, "hate", NOW + 20),
        (c.id, &x, "spam", NOW + 30),
    ] {
        store
            .file_report(&report(reporter, target, reason, at), Uuid::now_v7())
            .await
            .unwrap();
    }
    let queue = store.open_report_groups(10).await.unwrap();
    assert_eq!(queue.len(), 2);
    assert_eq!(
        (queue[0].target_id.as_str(), queue[0].reports),
        (y.as_str(), 1),
        "oldest first"
    );
    assert_eq!(queue[1].reports, 3);
    assert_eq!(
        queue[1].reasons,
        vec![("spam".to_owned(), 2), ("hate".to_owned(), 1)]
    );
    assert_eq!(
        (queue[1].first_reported_ms, queue[1].last_reported_ms),
        (NOW + 10, NOW + 30)
    );
}

/// The database itself refuses UPDATE and DELETE on the audit log (`url`:
/// the store's own database, reached with a connection of the test's).
pub async fn audit_log_is_append_only(store: Arc<dyn Storage>, url: &str) {
    use sqlx::Connection;
    let admin = user(&store, "admin").await;
    let grant = RoleChange {
        user_id: admin.id,
        role: Some("admin".to_owned()),
        actor_id: None,
        audit_id: Uuid::now_v7(),
        now_ms: NOW,
    };
    store.change_role(&grant).await.unwrap();
    let statements = [
        "UPDATE moderation_audit SET note = 'x'",
        "DELETE FROM moderation_audit",
    ];
    // The same statements on either backend's own connection type.
    macro_rules! refusals {
        ($connection:ty) => {{
            let mut conn = <$connection>::connect(url).await.unwrap();
            let mut refusals = Vec::new();
            for sql in statements {
                refusals.push(
                    sqlx::query(sql)
                        .execute(&mut conn)
                        .await
                        .expect_err(sql)
                        .to_string(),
                );
            }
            refusals
        }};
    }
    let refusals = if url.starts_with("sqlite") {
        refusals!(sqlx::SqliteConnection)
    } else {
        refusals!(sqlx::PgConnection)
    };
    for refusal in refusals {
        assert!(refusal.contains("append-only"), "{refusal}");
    }
    assert_eq!(store.audit_log(10).await.unwrap().len(), 1);
}
