//! The storage contract: every case is written once (in `cases`) and run on
//! every backend by `storage_suite!`.

mod cases;

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
);

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
