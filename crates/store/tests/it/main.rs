//! The storage contract: every case is written once (in `cases`) and run on
//! every backend by `storage_suite!`.

mod cases;
mod media_cases;
mod moderation_cases;

macro_rules! storage_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = iyagi_testkit::TestDb::sqlite();
                    super::cases::$case(db.open().await).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = iyagi_testkit::TestDb::postgres().await else { return };
                    super::cases::$case(db.open().await).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

storage_suite!(
    users_are_unique_by_username,
    external_users_are_found_by_issuer_and_subject,
    login_creates_device_and_session_and_relogin_replaces_it,
    refresh_rotation_and_reuse_revokes_the_family,
    live_sessions_are_told_apart_from_revoked_and_unknown_ones,
    expired_refresh_token_is_invalid_and_not_consumed,
    revoking_sessions_one_and_all,
    removing_a_device_revokes_its_sessions,
    signing_keys_insert_once,
    direct_rooms_are_unique_per_pair,
    messages_get_consecutive_sequence_numbers_and_retries_dedupe,
    concurrent_appends_get_distinct_contiguous_sequences,
    queued_appends_run_their_hooks_in_order_before_answering,
    a_batch_of_queued_appends_means_the_same_as_one_by_one,
    a_retry_in_a_batch_of_new_messages_leaves_no_gap,
    unread_counts_follow_read_markers_without_scanning,
    room_lists_order_by_activity_with_peers_and_last_messages,
    contacts_are_direct_peers_and_members_of_groups_up_to_the_limit,
    membership_changes_are_atomic_with_their_system_message,
    concurrent_adds_never_exceed_the_member_limit,
    a_new_member_starts_with_nothing_unread,
    push_registrations_live_and_die_with_their_device,
    notifications_are_paged_counted_read_and_retired,
    the_outbox_hands_each_delivery_to_one_worker_at_a_time,
    concurrent_claims_never_share_a_delivery,
    a_rooms_waiting_pushes_collapse_into_the_newest,
    mutes_and_the_total_unread_come_from_the_counters,
    media_is_ready_once_and_backs_one_message,
    media_usage_counts_bytes_and_recent_uploads,
    the_collector_sees_only_unattached_media,
    a_report_again_updates_it_and_each_appends_an_event,
    roles_are_audited_and_the_queue_groups_open_reports,
);

/// The audit log is append-only in the database itself: UPDATE and DELETE
/// are refused by triggers, whatever the code does.
#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes_on_sqlite() {
    let db = iyagi_testkit::TestDb::sqlite();
    let store = db.open().await;
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    cases::audit_log_is_append_only(store, &format!("sqlite://{path}")).await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_audit_log_refuses_updates_and_deletes_on_postgres() {
    let Some(db) = iyagi_testkit::TestDb::postgres().await else {
        return;
    };
    let store = db.open().await;
    let url = db.url.clone();
    cases::audit_log_is_append_only(store, &url).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_reopening_applies_no_migration_twice_and_keeps_data() {
    let db = iyagi_testkit::TestDb::sqlite();
    cases::reopening_applies_no_migration_twice_and_keeps_data(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_reopening_applies_no_migration_twice_and_keeps_data() {
    let Some(db) = iyagi_testkit::TestDb::postgres().await else {
        return;
    };
    cases::reopening_applies_no_migration_twice_and_keeps_data(&db).await;
    db.cleanup().await;
}

/// The member limit holds on PostgreSQL even when every add reaches the
/// database at the same moment: the test holds the room's row lock while
/// 16 adds start, so each of them has begun before any can finish. (An add
/// that counted members before taking the room's lock would count 5 in
/// all 16 transactions and let them all in.)
#[tokio::test]
async fn postgres_concurrent_adds_held_at_the_room_lock_keep_the_limit() {
    use sqlx::Connection;
    let Some(db) = iyagi_testkit::TestDb::postgres().await else {
        return;
    };
    let store = db.open_with_connections(20).await;
    let (room, joiners) = cases::a_group_and_joiners(&store, 16).await;
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut hold = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM chat_rooms WHERE id = $1 FOR UPDATE")
        .bind(room.id)
        .execute(&mut *hold)
        .await
        .unwrap();
    let adds: Vec<_> = joiners
        .iter()
        .map(|joiner| {
            let store = store.clone();
            let change = cases::add_change(&room, *joiner, 6);
            tokio::spawn(async move { store.change_membership(&change).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    hold.commit().await.unwrap();
    let mut added = 0;
    for add in adds {
        if let Ok(Some(_)) = add.await.unwrap() {
            added += 1;
        }
    }
    assert_eq!(added, 5, "room for 5 more than the owner");
    assert_eq!(store.members(room.id).await.unwrap().len(), 6);
    db.cleanup().await;
}
