use std::sync::Arc;

use iyagi_store::*;
use uuid::Uuid;

pub(crate) const NOW: i64 = 1_700_000_000_000;

pub use crate::media_cases::*;
pub use crate::moderation_cases::*;

pub(crate) async fn user(store: &Arc<dyn Storage>, name: &str) -> UserRecord {
    store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            username: name.to_owned(),
            password_hash: Some("hash".to_owned()),
            external_issuer: None,
            external_subject: None,
            created_at_ms: NOW,
        })
        .await
        .expect("create user")
}

fn login(user_id: Uuid, device: &str, token: &[u8]) -> NewLogin {
    NewLogin {
        user_id,
        device_id: device.to_owned(),
        platform: "ios".to_owned(),
        display_name: Some("phone".to_owned()),
        session_id: Uuid::now_v7(),
        refresh_token_hash: token.to_vec(),
        refresh_expires_at_ms: NOW + 60_000,
        now_ms: NOW,
    }
}

fn rotation(presented: &[u8], new: &[u8], now_ms: i64) -> Rotation {
    Rotation {
        presented_hash: presented.to_vec(),
        new_hash: new.to_vec(),
        new_expires_at_ms: now_ms + 60_000,
        now_ms,
    }
}

pub async fn users_are_unique_by_username(store: Arc<dyn Storage>) {
    let minji = user(&store, "minji").await;
    assert_eq!(
        store.user_by_username("minji").await.unwrap(),
        Some(minji.clone())
    );
    assert_eq!(
        store.user_by_id(minji.id).await.unwrap(),
        Some(minji.clone())
    );
    assert_eq!(store.user_by_username("nobody").await.unwrap(), None);
    let again = store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            username: "minji".to_owned(),
            password_hash: None,
            external_issuer: None,
            external_subject: None,
            created_at_ms: NOW,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "got {again:?}");
}

pub async fn external_users_are_found_by_issuer_and_subject(store: Arc<dyn Storage>) {
    let created = store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            username: "ext_1".to_owned(),
            password_hash: None,
            external_issuer: Some("https://idp".to_owned()),
            external_subject: Some("sub-1".to_owned()),
            created_at_ms: NOW,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_external("https://idp", "sub-1")
            .await
            .unwrap(),
        Some(created)
    );
    assert_eq!(
        store
            .user_by_external("https://other", "sub-1")
            .await
            .unwrap(),
        None
    );
    // A second local user for the same external identity is refused.
    let dup = store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            username: "ext_2".to_owned(),
            password_hash: None,
            external_issuer: Some("https://idp".to_owned()),
            external_subject: Some("sub-1".to_owned()),
            created_at_ms: NOW,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict)));
}

pub async fn login_creates_device_and_session_and_relogin_replaces_it(store: Arc<dyn Storage>) {
    let u = user(&store, "dev_user").await;
    let first = store
        .record_login(&login(u.id, "phone", b"t1"))
        .await
        .unwrap()
        .session;
    assert!(store.session(first.id).await.unwrap().unwrap().is_active());
    let devices = store.devices(u.id).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_id, "phone");
    assert_eq!(devices[0].platform, "ios");

    let mut again = login(u.id, "phone", b"t2");
    again.platform = "android".to_owned();
    again.now_ms = NOW + 5;
    let recorded = store.record_login(&again).await.unwrap();
    assert_eq!(
        recorded.replaced,
        vec![first.id],
        "the login names what it replaced"
    );
    let second = recorded.session;
    let old = store.session(first.id).await.unwrap().unwrap();
    assert_eq!(old.revoke_reason.as_deref(), Some("replaced_by_login"));
    assert!(store.session(second.id).await.unwrap().unwrap().is_active());
    let devices = store.devices(u.id).await.unwrap();
    assert_eq!(devices.len(), 1, "same device id is one device");
    assert_eq!(devices[0].platform, "android");
    assert_eq!(devices[0].last_seen_at_ms, NOW + 5);
    // The old session's refresh token no longer works.
    let out = store
        .rotate_refresh_token(&rotation(b"t1", b"t1b", NOW + 6))
        .await
        .unwrap();
    assert_eq!(out, RotateOutcome::Invalid);
}

pub async fn live_sessions_are_told_apart_from_revoked_and_unknown_ones(store: Arc<dyn Storage>) {
    let u = user(&store, "live_user").await;
    let mut ids = Vec::new();
    for i in 0..600 {
        let login = login(u.id, &format!("d{i}"), format!("t{i}").as_bytes());
        ids.push(store.record_login(&login).await.unwrap().session.id);
    }
    store.revoke_session(ids[3], "logout", NOW).await.unwrap();
    store.revoke_session(ids[550], "logout", NOW).await.unwrap();
    let unknown = Uuid::now_v7();
    let mut asked = ids.clone();
    asked.push(unknown);
    let mut live = store.live_sessions(&asked).await.unwrap();
    live.sort();
    let mut expected: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| *id != ids[3] && *id != ids[550])
        .collect();
    expected.sort();
    assert_eq!(
        live, expected,
        "more than one chunk, revoked and unknown left out"
    );
    assert!(store.live_sessions(&[]).await.unwrap().is_empty());
}

pub async fn refresh_rotation_and_reuse_revokes_the_family(store: Arc<dyn Storage>) {
    let u = user(&store, "rot_user").await;
    let session = store
        .record_login(&login(u.id, "web", b"a"))
        .await
        .unwrap()
        .session;
    match store
        .rotate_refresh_token(&rotation(b"a", b"b", NOW + 1))
        .await
        .unwrap()
    {
        RotateOutcome::Rotated(s) => assert_eq!(s.id, session.id),
        other => panic!("expected rotation, got {other:?}"),
    }
    match store
        .rotate_refresh_token(&rotation(b"b", b"c", NOW + 2))
        .await
        .unwrap()
    {
        RotateOutcome::Rotated(s) => assert_eq!(s.id, session.id),
        other => panic!("expected rotation, got {other:?}"),
    }
    // "a" was rotated already: theft is assumed and the family dies.
    match store
        .rotate_refresh_token(&rotation(b"a", b"x", NOW + 3))
        .await
        .unwrap()
    {
        RotateOutcome::Reused(s) => {
            assert_eq!(s.id, session.id);
            assert!(!s.is_active());
        }
        other => panic!("expected reuse, got {other:?}"),
    }
    assert!(
        !store
            .session(session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    // Even the current token "c" is dead now.
    assert_eq!(
        store
            .rotate_refresh_token(&rotation(b"c", b"d", NOW + 4))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert_eq!(
        store
            .rotate_refresh_token(&rotation(b"never-issued", b"e", NOW + 4))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
}

pub async fn expired_refresh_token_is_invalid_and_not_consumed(store: Arc<dyn Storage>) {
    let u = user(&store, "exp_user").await;
    let session = store
        .record_login(&login(u.id, "web", b"old"))
        .await
        .unwrap()
        .session;
    let late = NOW + 60_001;
    assert_eq!(
        store
            .rotate_refresh_token(&rotation(b"old", b"new", late))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    // Not marked rotated, so presenting it again is not mistaken for theft.
    assert_eq!(
        store
            .rotate_refresh_token(&rotation(b"old", b"new2", late))
            .await
            .unwrap(),
        RotateOutcome::Invalid
    );
    assert!(
        store
            .session(session.id)
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
}

pub async fn revoking_sessions_one_and_all(store: Arc<dyn Storage>) {
    let u = user(&store, "rev_user").await;
    let a = store
        .record_login(&login(u.id, "a", b"ta"))
        .await
        .unwrap()
        .session;
    let b = store
        .record_login(&login(u.id, "b", b"tb"))
        .await
        .unwrap()
        .session;
    let c = store
        .record_login(&login(u.id, "c", b"tc"))
        .await
        .unwrap()
        .session;
    assert!(store.revoke_session(a.id, "logout", NOW).await.unwrap());
    assert!(
        !store.revoke_session(a.id, "logout", NOW).await.unwrap(),
        "second revoke is a no-op"
    );
    assert_eq!(
        store
            .session(a.id)
            .await
            .unwrap()
            .unwrap()
            .revoke_reason
            .as_deref(),
        Some("logout")
    );
    assert_eq!(
        store
            .revoke_user_sessions(u.id, "logout_all", NOW)
            .await
            .unwrap(),
        2
    );
    for id in [b.id, c.id] {
        assert!(!store.session(id).await.unwrap().unwrap().is_active());
    }
    assert_eq!(store.session(Uuid::now_v7()).await.unwrap(), None);
}

pub async fn removing_a_device_revokes_its_sessions(store: Arc<dyn Storage>) {
    let u = user(&store, "rm_user").await;
    let phone = store
        .record_login(&login(u.id, "phone", b"p"))
        .await
        .unwrap()
        .session;
    let laptop = store
        .record_login(&login(u.id, "laptop", b"l"))
        .await
        .unwrap()
        .session;
    assert_eq!(
        store.remove_device(u.id, "phone", NOW).await.unwrap(),
        Some(vec![phone.id])
    );
    assert_eq!(store.remove_device(u.id, "phone", NOW).await.unwrap(), None);
    assert_eq!(
        store.remove_device(u.id, "tablet", NOW).await.unwrap(),
        None
    );
    let remaining: Vec<String> = store
        .devices(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(remaining, vec!["laptop".to_owned()]);
    assert!(store.session(laptop.id).await.unwrap().unwrap().is_active());
    assert!(!store.session(phone.id).await.unwrap().unwrap().is_active());
}

pub async fn signing_keys_insert_once(store: Arc<dyn Storage>) {
    let key = SigningKeyRecord {
        kid: "k1".to_owned(),
        algorithm: "EdDSA".to_owned(),
        private_der: vec![1, 2, 3],
        created_at_ms: NOW,
    };
    assert!(store.insert_signing_key(&key).await.unwrap());
    let other = SigningKeyRecord {
        private_der: vec![9],
        ..key.clone()
    };
    assert!(!store.insert_signing_key(&other).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), vec![key]);
}

pub async fn direct_rooms_are_unique_per_pair(store: Arc<dyn Storage>) {
    let a = user(&store, "room_a").await;
    let b = user(&store, "room_b").await;
    let key = format!("{}:{}", a.id.min(b.id), a.id.max(b.id));
    let new_room = |id| NewRoom {
        id,
        kind: RoomKind::Direct,
        title: None,
        direct_key: Some(key.clone()),
        created_at_ms: NOW,
        members: vec![(a.id, MemberRole::Member), (b.id, MemberRole::Member)],
        first_message: system_message(id, a.id, "room_created"),
    };
    let first = store.create_room(&new_room(Uuid::now_v7())).await.unwrap();
    let second = store.create_room(&new_room(Uuid::now_v7())).await.unwrap();
    assert!(first.created && !second.created);
    let first = first.room;
    assert_eq!(first.id, second.room.id);
    assert_eq!(first.last_seq, 1, "the room_created message is seq 1");
    let members: Vec<Uuid> = store
        .members(first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&a.id) && members.contains(&b.id));
    assert_eq!(
        store
            .member(first.id, a.id)
            .await
            .unwrap()
            .unwrap()
            .read_seq,
        0
    );
    assert_eq!(store.member(first.id, Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(
        store.room(first.id).await.unwrap().unwrap().kind,
        RoomKind::Direct
    );
}

fn system_message(room: Uuid, author: Uuid, kind: &str) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        room_id: room,
        author_id: author,
        device_id: "server".to_owned(),
        client_msg_id: Uuid::now_v7().to_string(),
        kind: kind.to_owned(),
        content: "{}".to_owned(),
        created_at_ms: NOW,
        is_content: false,
        bumps_activity: true,
        read_effect: ReadEffect::None,
    }
}

/// A direct room of `a` and `b`.
async fn direct_room(store: &Arc<dyn Storage>, a: Uuid, b: Uuid) -> RoomRecord {
    let id = Uuid::now_v7();
    store
        .create_room(&NewRoom {
            id,
            kind: RoomKind::Direct,
            title: None,
            direct_key: Some(format!("{a}:{b}")),
            created_at_ms: NOW,
            members: vec![(a, MemberRole::Member), (b, MemberRole::Member)],
            first_message: system_message(id, a, "room_created"),
        })
        .await
        .expect("create direct room")
        .room
}

async fn group_room(store: &Arc<dyn Storage>, members: &[Uuid]) -> RoomRecord {
    let id = Uuid::now_v7();
    store
        .create_room(&NewRoom {
            id,
            kind: RoomKind::Group,
            title: Some("friends".to_owned()),
            direct_key: None,
            created_at_ms: NOW,
            members: members.iter().map(|id| (*id, MemberRole::Member)).collect(),
            first_message: system_message(id, members[0], "room_created"),
        })
        .await
        .unwrap()
        .room
}

fn message(room: Uuid, author: Uuid, device: &str, client_id: &str) -> NewMessage {
    NewMessage {
        id: Uuid::now_v7(),
        room_id: room,
        author_id: author,
        device_id: device.to_owned(),
        client_msg_id: client_id.to_owned(),
        kind: "text".to_owned(),
        content: r#"{"text":"hi"}"#.to_owned(),
        created_at_ms: NOW,
        is_content: true,
        bumps_activity: true,
        read_effect: ReadEffect::None,
    }
}

pub async fn messages_get_consecutive_sequence_numbers_and_retries_dedupe(store: Arc<dyn Storage>) {
    let a = user(&store, "msg_a").await;
    let room = group_room(&store, &[a.id]).await;
    let first = store
        .append_message(&message(room.id, a.id, "phone", "c1"))
        .await
        .unwrap();
    assert_eq!((first.message.seq, first.duplicate), (2, false));
    let retry = store
        .append_message(&message(room.id, a.id, "phone", "c1"))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(
        retry.message, first.message,
        "a retry answers with the original"
    );
    // The same client id from another device is another message.
    let other_device = store
        .append_message(&message(room.id, a.id, "laptop", "c1"))
        .await
        .unwrap();
    assert_eq!(
        (other_device.message.seq, other_device.duplicate),
        (3, false)
    );
    let third = store
        .append_message(&message(room.id, a.id, "phone", "c2"))
        .await
        .unwrap();
    assert_eq!(third.message.seq, 4);
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, 4);

    let page: Vec<i64> = store
        .messages_after(room.id, 1, 2)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(page, vec![2, 3]);
    let before: Vec<i64> = store
        .messages_before(room.id, 4, 2)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(before, vec![2, 3], "the page just below, ascending");
    assert_eq!(
        store.message_at(room.id, 4).await.unwrap(),
        Some(third.message.clone())
    );
    assert_eq!(store.message_at(room.id, 99).await.unwrap(), None);
    let rest = store.messages_after(room.id, 3, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0], third.message);

    let missing = store
        .append_message(&message(Uuid::now_v7(), a.id, "phone", "c9"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "got {missing:?}"
    );
}

pub async fn concurrent_appends_get_distinct_contiguous_sequences(store: Arc<dyn Storage>) {
    let a = user(&store, "conc_a").await;
    let room = group_room(&store, &[a.id]).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        // Every id is sent twice, concurrently: retries racing each other.
        let client_id = format!("c{}", i / 2);
        tasks.push(tokio::spawn(async move {
            store
                .append_message(&message(room.id, a.id, "phone", &client_id))
                .await
                .unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        let appended = task.await.unwrap();
        if !appended.duplicate {
            seqs.push(appended.message.seq);
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=13).collect::<Vec<i64>>());
    let stored = store.messages_after(room.id, 1, 100).await.unwrap();
    assert_eq!(stored.len(), 12);
    let room = store.room(room.id).await.unwrap().unwrap();
    assert_eq!((room.last_seq, room.content_count), (13, 12));
}

/// Queued appends are sequenced in queue order; each hook runs after its
/// commit and before its caller hears back, in seq order; a barrier waits
/// for everything queued before it.
pub async fn queued_appends_run_their_hooks_in_order_before_answering(store: Arc<dyn Storage>) {
    let a = user(&store, "hook_a").await;
    let rooms = [
        group_room(&store, &[a.id]).await.id,
        group_room(&store, &[a.id]).await.id,
    ];
    let seen: Arc<std::sync::Mutex<Vec<(Uuid, i64, bool)>>> = Arc::default();
    let mut pending = Vec::new();
    // Interleaved rooms, and one retry queued right behind its original.
    for i in 0..40 {
        let room = rooms[i % 2];
        let client_id = format!("h{}", if i == 11 { 9 } else { i });
        let seen_by_hook = seen.clone();
        let hook: OnCommit = Box::new(move |appended: &Appended| {
            seen_by_hook.lock().unwrap().push((
                appended.message.room_id,
                appended.message.seq,
                appended.duplicate,
            ));
        });
        let queued = store
            .queue_append(message(room, a.id, "phone", &client_id), Some(hook))
            .await
            .unwrap();
        pending.push((room, queued));
    }
    let mut last_seq = [1, 1];
    for (room, queued) in pending {
        let appended = queued.committed().await.unwrap();
        let hooked = seen.lock().unwrap().clone();
        assert!(
            hooked.contains(&(room, appended.message.seq, appended.duplicate)),
            "the hook ran before the caller was answered"
        );
        if !appended.duplicate {
            let slot = usize::from(room == rooms[1]);
            assert_eq!(
                appended.message.seq,
                last_seq[slot] + 1,
                "queue order is seq order"
            );
            last_seq[slot] = appended.message.seq;
        }
    }
    let hooked = seen.lock().unwrap().clone();
    assert_eq!(hooked.len(), 40);
    assert_eq!(
        hooked.iter().filter(|(_, _, dup)| *dup).count(),
        1,
        "the retry is a duplicate"
    );
    for room in rooms {
        let seqs: Vec<i64> = hooked
            .iter()
            .filter(|(r, _, dup)| *r == room && !dup)
            .map(|(_, seq, _)| *seq)
            .collect();
        let expected: Vec<i64> = (2..2 + seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "hooks ran in seq order per room");
    }

    // A barrier: once it returns, everything queued before it is stored
    // and hooked, although nobody awaited those appends.
    seen.lock().unwrap().clear();
    for i in 0..5 {
        let seen_by_hook = seen.clone();
        let hook: OnCommit = Box::new(move |appended: &Appended| {
            seen_by_hook.lock().unwrap().push((
                appended.message.room_id,
                appended.message.seq,
                false,
            ));
        });
        drop(
            store
                .queue_append(
                    message(rooms[0], a.id, "phone", &format!("b{i}")),
                    Some(hook),
                )
                .await
                .unwrap(),
        );
    }
    store.settle_appends().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 5);
    assert_eq!(
        store.room(rooms[0]).await.unwrap().unwrap().last_seq,
        last_seq[0] + 5,
        "appends whose callers went away are still stored"
    );

    // A failed append runs no hook.
    let seen_by_hook = seen.clone();
    let hook: OnCommit = Box::new(move |_: &Appended| seen_by_hook.lock().unwrap().clear());
    let missing = store
        .queue_append(message(Uuid::now_v7(), a.id, "phone", "m1"), Some(hook))
        .await
        .unwrap()
        .committed()
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound)),
        "got {missing:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 5);
}

/// Appends committed together (one batch) mean the same as one by one:
/// counters, read positions and unread counts, also for a read marker whose
/// target is in the same batch, and for a failed append in the middle.
pub async fn a_batch_of_queued_appends_means_the_same_as_one_by_one(store: Arc<dyn Storage>) {
    let a = user(&store, "batch_a").await;
    let b = user(&store, "batch_b").await;
    let room = group_room(&store, &[a.id, b.id]).await;
    let stats_before = store.append_stats();
    let mut queued = Vec::new();
    for i in 0..3 {
        let mut m = message(room.id, a.id, "phone", &format!("x{i}"));
        m.read_effect = ReadEffect::UpToSelf;
        queued.push(store.queue_append(m, None).await.unwrap());
    }
    // b reads up to the second of them (seq 3), queued behind them.
    queued.push(
        store
            .queue_append(marker(room.id, b.id, "read", ReadEffect::UpTo(3)), None)
            .await
            .unwrap(),
    );
    // Unknown room in the middle of the batch: refused alone.
    queued.push(
        store
            .queue_append(message(Uuid::now_v7(), a.id, "phone", "y"), None)
            .await
            .unwrap(),
    );
    let mut last = None;
    let mut late = message(room.id, a.id, "phone", "x3");
    late.bumps_activity = false;
    late.is_content = false;
    late.kind = "reaction".to_owned();
    queued.push(store.queue_append(late, None).await.unwrap());
    let mut outcomes = Vec::new();
    for pending in queued {
        outcomes.push(pending.committed().await);
    }
    // The writer's totals count every queued append once, in at least one
    // and at most one transaction per append.
    let stats = store.append_stats();
    let commits = stats.commits - stats_before.commits;
    assert_eq!(stats.appends - stats_before.appends, 6);
    assert!((1..=6).contains(&commits), "{commits} commits");
    assert!(stats.busy_seconds > stats_before.busy_seconds);
    assert!(
        matches!(outcomes[4], Err(StoreError::NotFound)),
        "{:?}",
        outcomes[4]
    );
    let seqs: Vec<(i64, i64)> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|o| (o.message.seq, o.message.content_ordinal))
        .collect();
    assert_eq!(seqs, vec![(2, 1), (3, 2), (4, 3), (5, 3), (6, 3)]);
    for outcome in outcomes.iter().flatten() {
        last = Some(outcome.message.clone());
        assert_eq!(
            store
                .message_at(room.id, outcome.message.seq)
                .await
                .unwrap()
                .as_ref(),
            Some(&outcome.message)
        );
    }
    let stored_room = store.room(room.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored_room.last_seq,
            stored_room.content_count,
            stored_room.last_content_seq
        ),
        (6, 3, 4)
    );
    assert_eq!(
        stored_room.last_activity_ms, NOW,
        "the last activity is the last bumping message's"
    );
    assert_eq!(last.map(|m| m.seq), Some(6));
    let member_a = store.member(room.id, a.id).await.unwrap().unwrap();
    let member_b = store.member(room.id, b.id).await.unwrap().unwrap();
    assert_eq!((member_a.read_seq, unread(&stored_room, &member_a)), (4, 0));
    assert_eq!((member_b.read_seq, unread(&stored_room, &member_b)), (3, 1));
}

/// A retry of an already stored message, queued together with new ones
/// (one batch, as a reconnecting client resending its outbox makes): the
/// retry gets the original back, and the new messages get the next seqs
/// with no gap, however the writer finds retries.
pub async fn a_retry_in_a_batch_of_new_messages_leaves_no_gap(store: Arc<dyn Storage>) {
    let a = user(&store, "retry_a").await;
    let b = user(&store, "retry_b").await;
    let room = group_room(&store, &[a.id, b.id]).await;
    let original = store
        .queue_append(message(room.id, a.id, "phone", "sent-before"), None)
        .await
        .unwrap()
        .committed()
        .await
        .unwrap()
        .message;
    let mut queued = Vec::new();
    for client_id in ["new-1", "sent-before", "new-2", "new-2"] {
        queued.push(
            store
                .queue_append(message(room.id, a.id, "phone", client_id), None)
                .await
                .unwrap(),
        );
    }
    let mut outcomes = Vec::new();
    for pending in queued {
        outcomes.push(pending.committed().await.unwrap());
    }
    let next = original.seq + 1;
    let seen: Vec<(&str, i64, bool)> = outcomes
        .iter()
        .map(|o| (o.message.client_msg_id.as_str(), o.message.seq, o.duplicate))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("new-1", next, false),
            ("sent-before", original.seq, true),
            ("new-2", next + 1, false),
            ("new-2", next + 1, true),
        ]
    );
    assert_eq!(outcomes[1].message, original);
    let stored_room = store.room(room.id).await.unwrap().unwrap();
    assert_eq!(stored_room.last_seq, next + 1);
    for seq in 1..=next + 1 {
        assert!(
            store.message_at(room.id, seq).await.unwrap().is_some(),
            "seq {seq} is missing"
        );
    }
}

/// Opening the same database again, as a restart or a second node does,
/// applies no migration twice and sees the same data.
pub async fn reopening_applies_no_migration_twice_and_keeps_data(db: &iyagi_testkit::TestDb) {
    let first = db.open().await;
    let u = user(&first, "persist").await;
    let (second, third) = tokio::join!(db.open(), db.open());
    for store in [second, third] {
        store.ping().await.unwrap();
        assert_eq!(
            store.user_by_id(u.id).await.unwrap().unwrap().username,
            "persist"
        );
    }
}

fn marker(room: Uuid, author: Uuid, kind: &str, effect: ReadEffect) -> NewMessage {
    NewMessage {
        is_content: false,
        bumps_activity: false,
        read_effect: effect,
        ..system_message(room, author, kind)
    }
}

fn unread(room: &RoomRecord, member: &MemberRecord) -> i64 {
    room.content_count - member.read_count
}

pub async fn unread_counts_follow_read_markers_without_scanning(store: Arc<dyn Storage>) {
    let a = user(&store, "unread_a").await;
    let b = user(&store, "unread_b").await;
    let room = group_room(&store, &[a.id, b.id]).await;
    let state = |user_id| {
        let store = store.clone();
        async move {
            let room = store.room(room.id).await.unwrap().unwrap();
            let member = store.member(room.id, user_id).await.unwrap().unwrap();
            (unread(&room, &member), member.read_seq)
        }
    };
    // a sends three messages; sending marks a's own read position.
    let mut last = None;
    for i in 0..3 {
        let mut m = message(room.id, a.id, "phone", &format!("u{i}"));
        m.read_effect = ReadEffect::UpToSelf;
        last = Some(store.append_message(&m).await.unwrap().message);
    }
    let last = last.unwrap();
    assert_eq!(state(a.id).await, (0, last.seq));
    assert_eq!(state(b.id).await, (3, 0));
    // b reads up to the second message (seq 3): one unread left. The marker
    // itself is a message (seq 5) but not content.
    let second_seq = last.seq - 1;
    let read = store
        .append_message(&marker(room.id, b.id, "read", ReadEffect::UpTo(second_seq)))
        .await
        .unwrap();
    assert_eq!(read.message.seq, last.seq + 1);
    assert_eq!(state(b.id).await, (1, second_seq));
    // A marker below the current position changes nothing.
    store
        .append_message(&marker(room.id, b.id, "read", ReadEffect::UpTo(2)))
        .await
        .unwrap();
    assert_eq!(state(b.id).await, (1, second_seq));
    // Reading a seq that is a marker counts everything up to it.
    store
        .append_message(&marker(
            room.id,
            b.id,
            "read",
            ReadEffect::UpTo(read.message.seq),
        ))
        .await
        .unwrap();
    assert_eq!(state(b.id).await, (0, read.message.seq));
    // A read marker for a seq that does not exist is refused and writes nothing.
    let before = store.room(room.id).await.unwrap().unwrap().last_seq;
    let bad = store
        .append_message(&marker(room.id, b.id, "read", ReadEffect::UpTo(999)))
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound)), "{bad:?}");
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, before);
}

pub async fn room_lists_order_by_activity_with_peers_and_last_messages(store: Arc<dyn Storage>) {
    let me = user(&store, "lister").await;
    let peer = user(&store, "peer").await;
    let direct = direct_room(&store, me.id, peer.id).await;
    let mut rooms = vec![direct.id];
    for _ in 0..4 {
        rooms.push(group_room(&store, &[me.id, peer.id]).await.id);
    }
    // Activity: each room gets a message at a later time, the direct room last.
    for (i, room_id) in rooms.iter().rev().enumerate() {
        let mut m = message(*room_id, peer.id, "p", &format!("act{i}"));
        m.created_at_ms = NOW + 10 + i as i64;
        store.append_message(&m).await.unwrap();
    }
    // A marker does not reorder the list.
    let mut late_marker = marker(rooms[4], me.id, "read", ReadEffect::None);
    late_marker.created_at_ms = NOW + 1000;
    store.append_message(&late_marker).await.unwrap();

    let first_page = store.rooms_for_user(me.id, None, 2).await.unwrap();
    let ids: Vec<Uuid> = first_page.iter().map(|e| e.room.id).collect();
    assert_eq!(ids, vec![rooms[0], rooms[1]]);
    let head = &first_page[0];
    assert_eq!(head.peer, Some((peer.id, "peer".to_owned())));
    assert_eq!(
        head.last_message.as_ref().map(|m| m.kind.as_str()),
        Some("text")
    );
    assert_eq!(head.room.content_count - head.read_count, 1);
    assert!(first_page[1].peer.is_none(), "groups have no peer");
    let cursor = first_page
        .last()
        .map(|e| (e.room.last_activity_ms, e.room.id));
    let rest = store.rooms_for_user(me.id, cursor, 10).await.unwrap();
    let rest_ids: Vec<Uuid> = rest.iter().map(|e| e.room.id).collect();
    assert_eq!(rest_ids, vec![rooms[2], rooms[3], rooms[4]]);
    assert!(
        store
            .rooms_for_user(Uuid::now_v7(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.contacts(me.id, 100).await.unwrap(), vec![peer.id]);
}

pub async fn contacts_are_direct_peers_and_members_of_groups_up_to_the_limit(
    store: Arc<dyn Storage>,
) {
    let me = user(&store, "me").await;
    let peer = user(&store, "peer").await;
    let small = user(&store, "small").await;
    let mut big = Vec::new();
    for i in 0..4 {
        big.push(user(&store, &format!("big{i}")).await);
    }
    direct_room(&store, me.id, peer.id).await;
    group_room(&store, &[me.id, small.id]).await;
    let mut big_members = vec![me.id];
    big_members.extend(big.iter().map(|u| u.id));
    group_room(&store, &big_members).await;
    // A member of the big group who is also a direct peer counts once.
    direct_room(&store, me.id, big[0].id).await;

    let sorted = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids
    };
    let contacts = |limit: u32| {
        let store = store.clone();
        async move { sorted(store.contacts(me.id, limit).await.expect("contacts")) }
    };
    // The big group has 5 members: over a limit of 4, within 5.
    assert_eq!(
        contacts(4).await,
        sorted(vec![peer.id, small.id, big[0].id]),
        "groups over the limit are left out, direct rooms never are"
    );
    let mut everyone = vec![peer.id, small.id];
    everyone.extend(big.iter().map(|u| u.id));
    assert_eq!(contacts(5).await, sorted(everyone));
    assert_eq!(
        contacts(0).await,
        sorted(vec![peer.id, big[0].id]),
        "a limit of 0 keeps direct peers only"
    );
    assert!(
        store
            .contacts(Uuid::now_v7(), 100)
            .await
            .expect("contacts")
            .is_empty()
    );
}

pub async fn membership_changes_are_atomic_with_their_system_message(store: Arc<dyn Storage>) {
    let owner = user(&store, "owner").await;
    let joiner = user(&store, "joiner").await;
    let room = group_room(&store, &[owner.id]).await;
    let change = |user_id, add_as: Option<&str>, promote| MembershipChange {
        room_id: room.id,
        user_id,
        add_as: add_as.map(|role| MemberRole::parse(role).expect("a role")),
        max_members: None,
        promote,
        message: system_message(
            room.id,
            owner.id,
            if add_as.is_some() {
                "member_joined"
            } else {
                "member_left"
            },
        ),
    };
    let joined = store
        .change_membership(&change(joiner.id, Some("member"), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((joined.seq, joined.kind.as_str()), (2, "member_joined"));
    assert_eq!(
        store
            .change_membership(&change(joiner.id, Some("member"), None))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.room(room.id).await.unwrap().unwrap().last_seq,
        2,
        "a no-op writes nothing"
    );
    let names: Vec<String> = store
        .named_members(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.username)
        .collect();
    assert_eq!(names, vec!["owner".to_owned(), "joiner".to_owned()]);

    let left = store
        .change_membership(&change(owner.id, None, Some(joiner.id)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.kind, "member_left");
    assert_eq!(store.member(room.id, owner.id).await.unwrap(), None);
    assert_eq!(
        store
            .member(room.id, joiner.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        MemberRole::Owner
    );
    assert_eq!(
        store
            .change_membership(&change(owner.id, None, None))
            .await
            .unwrap(),
        None
    );
}

/// A group of one owner and `n` users who are not members yet.
pub async fn a_group_and_joiners(store: &Arc<dyn Storage>, n: usize) -> (RoomRecord, Vec<Uuid>) {
    let owner = user(store, "lim_owner").await;
    let room = group_room(store, &[owner.id]).await;
    let mut joiners = Vec::new();
    for i in 0..n {
        joiners.push(user(store, &format!("lim_joiner_{i}")).await.id);
    }
    (room, joiners)
}

/// Adds `user` to `room` unless it has `max` members.
pub fn add_change(room: &RoomRecord, user: Uuid, max: u32) -> MembershipChange {
    MembershipChange {
        room_id: room.id,
        user_id: user,
        add_as: Some(MemberRole::Member),
        max_members: Some(max),
        promote: None,
        message: system_message(room.id, user, "member_joined"),
    }
}

pub async fn concurrent_adds_never_exceed_the_member_limit(store: Arc<dyn Storage>) {
    let (room, joiners) = a_group_and_joiners(&store, 16).await;
    // Room for 5 more than the owner; 16 try at once.
    let adds: Vec<_> = joiners
        .iter()
        .map(|joiner| {
            let store = store.clone();
            let change = add_change(&room, *joiner, 6);
            tokio::spawn(async move { store.change_membership(&change).await })
        })
        .collect();
    let mut results = Vec::new();
    for add in adds {
        results.push(add.await.unwrap());
    }
    let added = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::LimitReached)))
        .count();
    assert_eq!((added, refused), (5, 11), "{results:?}");
    assert_eq!(store.members(room.id).await.unwrap().len(), 6);
    let room_now = store.room(room.id).await.unwrap().unwrap();
    assert_eq!(
        room_now.last_seq, 6,
        "one system message per add, none for a refusal"
    );
    // Adding someone already in a full room is a no-op, not a refusal.
    let member = store.members(room.id).await.unwrap()[0].user_id;
    assert_eq!(
        store
            .change_membership(&add_change(&room, member, 6))
            .await
            .unwrap(),
        None
    );
}

pub async fn a_new_member_starts_with_nothing_unread(store: Arc<dyn Storage>) {
    let owner = user(&store, "ru_owner").await;
    let joiner = user(&store, "ru_joiner").await;
    let room = group_room(&store, &[owner.id]).await;
    for i in 0..3 {
        let mut message = system_message(room.id, owner.id, "text");
        message.is_content = true;
        message.client_msg_id = format!("t{i}");
        message.device_id = "phone".to_owned();
        store.append_message(&message).await.unwrap();
    }
    let joined = store
        .change_membership(&MembershipChange {
            room_id: room.id,
            user_id: joiner.id,
            add_as: Some(MemberRole::Member),
            max_members: None,
            promote: None,
            message: system_message(room.id, owner.id, "member_joined"),
        })
        .await
        .unwrap()
        .unwrap();
    let member = store.member(room.id, joiner.id).await.unwrap().unwrap();
    assert_eq!(
        (member.read_seq, member.read_count),
        (joined.seq, 3),
        "read position at the join"
    );
    let entry = store
        .rooms_for_user(joiner.id, None, 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(entry.room.content_count - entry.read_count, 0);
}

fn registration(user_id: Uuid, device: &str, provider: PushProvider, token: &str) -> Registration {
    Registration {
        user_id,
        device_id: device.to_owned(),
        provider,
        token: token.to_owned(),
        topic: (provider == PushProvider::Apns).then(|| "com.example.app".to_owned()),
        p256dh: (provider == PushProvider::WebPush).then(|| vec![4; 65]),
        auth: (provider == PushProvider::WebPush).then(|| vec![7; 16]),
        created_at_ms: NOW,
        updated_at_ms: NOW,
    }
}

pub async fn push_registrations_live_and_die_with_their_device(store: Arc<dyn Storage>) {
    let u = user(&store, "push_user").await;
    let phone = store
        .record_login(&login(u.id, "phone", b"p1"))
        .await
        .unwrap()
        .session;
    store
        .record_login(&login(u.id, "web", b"w1"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_registration(&registration(u.id, "nope", PushProvider::Fcm, "t"))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .put_registration(&registration(u.id, "phone", PushProvider::Fcm, "t1"))
        .await
        .unwrap();
    store
        .put_registration(&registration(u.id, "phone", PushProvider::Apns, "a1"))
        .await
        .unwrap();
    store
        .put_registration(&registration(
            u.id,
            "web",
            PushProvider::WebPush,
            "https://push/x",
        ))
        .await
        .unwrap();
    // One per (device, provider): a new token replaces the old one.
    store
        .put_registration(&registration(u.id, "phone", PushProvider::Fcm, "t2"))
        .await
        .unwrap();
    let all = store.registrations(u.id).await.unwrap();
    let tokens: Vec<&str> = all.iter().map(|r| r.token.as_str()).collect();
    assert_eq!(tokens, vec!["a1", "t2", "https://push/x"]);
    assert_eq!(all[2].p256dh.as_deref(), Some(&[4u8; 65][..]));
    let stranger = user(&store, "push_stranger").await;
    let mut many = store.registrations_for(&[u.id, stranger.id]).await.unwrap();
    many.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(many.len(), 3);
    // A dead-token report for the replaced token prunes nothing.
    assert!(
        !store
            .prune_registration(u.id, "phone", PushProvider::Fcm, "t1")
            .await
            .unwrap()
    );
    assert!(
        store
            .prune_registration(u.id, "phone", PushProvider::Fcm, "t2")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_registration(u.id, "phone", PushProvider::Apns)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_registration(u.id, "phone", PushProvider::Apns)
            .await
            .unwrap()
    );
    // Signing a device out forgets its registrations; so does removing it.
    store
        .put_registration(&registration(u.id, "phone", PushProvider::Fcm, "t3"))
        .await
        .unwrap();
    store.revoke_session(phone.id, "logout", NOW).await.unwrap();
    let left: Vec<String> = store
        .registrations(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.device_id)
        .collect();
    assert_eq!(left, vec!["web".to_owned()]);
    store.remove_device(u.id, "web", NOW).await.unwrap();
    assert!(store.registrations(u.id).await.unwrap().is_empty());
    // Signing every device out forgets every registration.
    store
        .record_login(&login(u.id, "tablet", b"t9"))
        .await
        .unwrap();
    store
        .put_registration(&registration(u.id, "tablet", PushProvider::Fcm, "t9"))
        .await
        .unwrap();
    store
        .revoke_user_sessions(u.id, "logout_all", NOW)
        .await
        .unwrap();
    assert!(store.registrations(u.id).await.unwrap().is_empty());
    // Preferences: previews on unless turned off.
    assert!(store.push_previews(u.id).await.unwrap());
    store.set_push_previews(u.id, false, NOW).await.unwrap();
    assert!(!store.push_previews(u.id).await.unwrap());
}

fn notification(user_id: Uuid, created_at_ms: i64) -> NotificationRecord {
    // The id carries the creation time, as the server's do (retention goes by id).
    let at = u64::try_from(created_at_ms).unwrap();
    let timestamp =
        uuid::Timestamp::from_unix(uuid::NoContext, at / 1000, (at % 1000) as u32 * 1_000_000);
    NotificationRecord {
        id: Uuid::new_v7(timestamp),
        user_id,
        kind: "message".to_owned(),
        room_id: Some(Uuid::now_v7()),
        message_id: Some(Uuid::now_v7()),
        author_id: Some(Uuid::now_v7()),
        seq: Some(2),
        payload: r#"{"title":"t","body":"b"}"#.to_owned(),
        created_at_ms,
    }
}

pub async fn notifications_are_paged_counted_read_and_retired(store: Arc<dyn Storage>) {
    let u = user(&store, "inbox_user").await;
    let other = user(&store, "inbox_other").await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(notification(u.id, NOW + i));
    }
    store.append_notifications(&made, &[]).await.unwrap();
    store
        .append_notifications(&[notification(other.id, NOW)], &[])
        .await
        .unwrap();
    let first = store.notifications(u.id, None, 3).await.unwrap();
    let ids: Vec<Uuid> = first.iter().map(|n| n.id).collect();
    assert_eq!(
        ids,
        vec![made[4].id, made[3].id, made[2].id],
        "newest first"
    );
    let rest = store
        .notifications(u.id, Some(made[2].id), 3)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![made[1].id, made[0].id]
    );
    assert_eq!(rest[0], made[1], "stored as given");
    assert_eq!(store.unread_notifications(u.id).await.unwrap(), 5);
    assert_eq!(store.notification_watermark(u.id).await.unwrap(), None);
    store
        .mark_notifications_read(u.id, made[2].id, NOW)
        .await
        .unwrap();
    assert_eq!(store.unread_notifications(u.id).await.unwrap(), 2);
    // The watermark only moves forward.
    store
        .mark_notifications_read(u.id, made[0].id, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.notification_watermark(u.id).await.unwrap(),
        Some(made[2].id)
    );
    assert_eq!(store.unread_notifications(other.id).await.unwrap(), 1);
    // The frame's counts: capped, per user, unknown users left out.
    let mut counts = store
        .inbox_counts(&[u.id, other.id, Uuid::now_v7()], 10)
        .await
        .unwrap();
    counts.sort_by_key(|c| c.unread_notifications);
    assert_eq!(
        counts,
        vec![
            InboxCounts {
                user_id: other.id,
                unread_notifications: 1,
                badge: 0
            },
            InboxCounts {
                user_id: u.id,
                unread_notifications: 2,
                badge: 0
            },
        ]
    );
    let capped = store.inbox_counts(&[u.id], 1).await.unwrap();
    assert_eq!(capped[0].unread_notifications, 1, "counted up to the cap");
    // Retention: what is older than the cutoff goes.
    assert_eq!(store.delete_notifications_before(NOW + 2).await.unwrap(), 3);
    assert_eq!(store.notifications(u.id, None, 10).await.unwrap().len(), 3);
}

/// A user signed in on "phone" with an FCM registration ("tok") for it.
async fn user_with_fcm_phone(store: &Arc<dyn Storage>, name: &str, refresh: &[u8]) -> UserRecord {
    let u = user(store, name).await;
    store
        .record_login(&login(u.id, "phone", refresh))
        .await
        .unwrap();
    store
        .put_registration(&registration(u.id, "phone", PushProvider::Fcm, "tok"))
        .await
        .unwrap();
    u
}

/// An FCM delivery of `n` to its user's `device`, due at `at`.
fn fcm_delivery(n: &NotificationRecord, device: &str, collapse_key: &str, at: i64) -> NewDelivery {
    NewDelivery {
        id: Uuid::now_v7(),
        notification_id: n.id,
        user_id: n.user_id,
        device_id: device.to_owned(),
        provider: PushProvider::Fcm,
        collapse_key: collapse_key.to_owned(),
        next_attempt_at_ms: at,
    }
}

pub async fn the_outbox_hands_each_delivery_to_one_worker_at_a_time(store: Arc<dyn Storage>) {
    let u = user_with_fcm_phone(&store, "outbox_user", b"o1").await;
    let n = notification(u.id, NOW);
    // Distinct keys: none of these collapse into another.
    let delivery = |device: &str, at| fcm_delivery(&n, device, &Uuid::now_v7().to_string(), at);
    let due = delivery("phone", NOW);
    let later = delivery("phone", NOW + 60_000);
    let orphan = delivery("gone", NOW);
    store
        .append_notifications(
            std::slice::from_ref(&n),
            &[due.clone(), later.clone(), orphan.clone()],
        )
        .await
        .unwrap();
    assert_eq!(store.outbox_stats().await.unwrap().pending, 3);
    let claimed = store.claim_deliveries(NOW, 30_000, 10).await.unwrap();
    let mut ids: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
    ids.sort();
    let mut expected = vec![due.id, orphan.id];
    expected.sort();
    assert_eq!(ids, expected, "only what is due");
    let got_due = claimed.iter().find(|c| c.id == due.id).unwrap();
    assert_eq!(got_due.attempts, 1);
    assert_eq!(got_due.notification, n);
    // What the push needs of its user comes with the claim.
    assert_eq!(
        (got_due.read_seq, got_due.push_previews, got_due.badge),
        (None, true, 0),
        "not a member of the room; previews on; nothing unread"
    );
    assert_eq!(
        got_due.registration.as_ref().map(|r| r.token.as_str()),
        Some("tok")
    );
    assert!(
        claimed
            .iter()
            .find(|c| c.id == orphan.id)
            .unwrap()
            .registration
            .is_none()
    );
    // Leased: nobody else gets them until the lease ends.
    assert!(
        store
            .claim_deliveries(NOW + 1, 30_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    store.finish_delivery(orphan.id).await.unwrap();
    store.retry_delivery(due.id, NOW + 5).await.unwrap();
    store.set_push_previews(u.id, false, NOW).await.unwrap();
    assert!(
        store
            .claim_deliveries(NOW + 4, 30_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_deliveries(NOW + 5, 30_000, 10).await.unwrap();
    assert_eq!(
        (
            again.len(),
            again[0].id,
            again[0].attempts,
            again[0].push_previews
        ),
        (1, due.id, 2, false)
    );
    // A lease that ran out (a worker died) makes it due again.
    let after_lease = store
        .claim_deliveries(NOW + 5 + 30_000, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(after_lease.len(), 1);
    // Finished in a batch (an id already gone is no error).
    store.finish_deliveries(&[due.id, orphan.id]).await.unwrap();
    store.finish_deliveries(&[]).await.unwrap();
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.oldest_created_at_ms),
        (1, Some(NOW + 60_000))
    );
}

pub async fn a_rooms_waiting_pushes_collapse_into_the_newest(store: Arc<dyn Storage>) {
    let u = user_with_fcm_phone(&store, "collapse_user", b"c1").await;
    let room = Uuid::now_v7();
    let in_room = |at| NotificationRecord {
        room_id: Some(room),
        ..notification(u.id, at)
    };
    let delivery =
        |n: &NotificationRecord, device: &str, key: &str| fcm_delivery(n, device, key, NOW);
    let key = room.to_string();
    let (first, second, third) = (in_room(NOW), in_room(NOW + 1), in_room(NOW + 2));
    store
        .append_notifications(
            std::slice::from_ref(&first),
            &[delivery(&first, "phone", &key)],
        )
        .await
        .unwrap();
    // The second and third come in one call, the third's delivery first:
    // the newest notification wins whatever the order.
    store
        .append_notifications(
            &[second.clone(), third.clone()],
            &[
                delivery(&third, "phone", &key),
                delivery(&second, "phone", &key),
                delivery(&second, "tablet", &key),
                delivery(&second, "phone", "another-room"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.outbox_stats().await.unwrap().pending,
        3,
        "phone+room, tablet+room, phone+another room"
    );
    let claimed = store.claim_deliveries(NOW, 30_000, 10).await.unwrap();
    let mut got: Vec<(String, Uuid)> = claimed
        .iter()
        .map(|c| {
            (
                c.registration
                    .as_ref()
                    .map_or("gone".to_owned(), |r| r.device_id.clone()),
                c.notification.id,
            )
        })
        .collect();
    got.sort();
    // (The tablet has no registration: its delivery comes without one.)
    let mut expected = vec![
        ("gone".to_owned(), second.id),
        ("phone".to_owned(), second.id),
        ("phone".to_owned(), third.id),
    ];
    expected.sort();
    assert_eq!(got, expected, "the phone's room push is the newest");
    // Claimed (in flight): a newer notification gets a row of its own.
    let fourth = in_room(NOW + 3);
    store
        .append_notifications(
            std::slice::from_ref(&fourth),
            &[delivery(&fourth, "phone", &key)],
        )
        .await
        .unwrap();
    assert_eq!(store.outbox_stats().await.unwrap().pending, 4);
    // A delivery waiting for its retry is not taken over either.
    let phone = claimed
        .iter()
        .find(|c| c.notification.id == third.id)
        .unwrap();
    store.retry_delivery(phone.id, NOW + 10).await.unwrap();
    let fifth = in_room(NOW + 4);
    store
        .append_notifications(
            std::slice::from_ref(&fifth),
            &[delivery(&fifth, "phone", &key)],
        )
        .await
        .unwrap();
    assert_eq!(
        store.outbox_stats().await.unwrap().pending,
        4,
        "the fifth took the fourth's fresh row over"
    );
    let due = store.claim_deliveries(NOW + 10, 30_000, 10).await.unwrap();
    let mut ids: Vec<Uuid> = due.iter().map(|c| c.notification.id).collect();
    ids.sort();
    assert_eq!(ids, vec![third.id, fifth.id]);
    // Every notification stays in the inbox.
    assert_eq!(store.notifications(u.id, None, 10).await.unwrap().len(), 5);
}

pub async fn concurrent_claims_never_share_a_delivery(store: Arc<dyn Storage>) {
    let u = user(&store, "claim_user").await;
    let n = notification(u.id, NOW);
    let deliveries: Vec<NewDelivery> = (0..60)
        .map(|_| fcm_delivery(&n, "d", &Uuid::now_v7().to_string(), NOW))
        .collect();
    store.append_notifications(&[n], &deliveries).await.unwrap();
    let claims: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_deliveries(NOW, 60_000, 7).await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for claim in claims {
        for delivery in claim.await.unwrap().unwrap() {
            assert!(seen.insert(delivery.id), "claimed twice: {}", delivery.id);
            total += 1;
        }
    }
    assert_eq!(total, 42, "6 workers × 7 each, none shared");
}

pub async fn mutes_and_the_total_unread_come_from_the_counters(store: Arc<dyn Storage>) {
    let a = user(&store, "mute_a").await;
    let b = user(&store, "mute_b").await;
    let room = direct_room(&store, a.id, b.id).await;
    for i in 0..3 {
        let mut message = system_message(room.id, a.id, "text");
        message.is_content = true;
        message.client_msg_id = format!("c{i}");
        message.device_id = "phone".to_owned();
        message.read_effect = ReadEffect::UpToSelf;
        store.append_message(&message).await.unwrap();
    }
    assert_eq!(store.total_unread(b.id).await.unwrap(), 3);
    assert_eq!(store.total_unread(a.id).await.unwrap(), 0);
    let mut badges: Vec<(Uuid, i64)> = store
        .inbox_counts(&[a.id, b.id], 10)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.user_id, c.badge))
        .collect();
    badges.sort();
    let mut expected = vec![(a.id, 0), (b.id, 3)];
    expected.sort();
    assert_eq!(badges, expected, "the frame's badge is total_unread");
    assert!(
        store
            .set_room_mute(room.id, b.id, Some(i64::MAX))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .member(room.id, b.id)
            .await
            .unwrap()
            .unwrap()
            .muted_until_ms,
        Some(i64::MAX)
    );
    assert_eq!(
        store.total_unread(b.id).await.unwrap(),
        3,
        "muted rooms still count"
    );
    assert!(store.set_room_mute(room.id, b.id, None).await.unwrap());
    assert_eq!(
        store
            .member(room.id, b.id)
            .await
            .unwrap()
            .unwrap()
            .muted_until_ms,
        None
    );
    assert!(
        !store
            .set_room_mute(room.id, Uuid::now_v7(), None)
            .await
            .unwrap()
    );
}
