use std::sync::Arc;

use iyagi_store::*;
use uuid::Uuid;

const NOW: i64 = 1_700_000_000_000;

async fn user(store: &Arc<dyn Storage>, name: &str) -> UserRecord {
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
        .unwrap();
    assert!(store.session(first.id).await.unwrap().unwrap().is_active());
    let devices = store.devices(u.id).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_id, "phone");
    assert_eq!(devices[0].platform, "ios");

    let mut again = login(u.id, "phone", b"t2");
    again.platform = "android".to_owned();
    again.now_ms = NOW + 5;
    let second = store.record_login(&again).await.unwrap();
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

pub async fn refresh_rotation_and_reuse_revokes_the_family(store: Arc<dyn Storage>) {
    let u = user(&store, "rot_user").await;
    let session = store.record_login(&login(u.id, "web", b"a")).await.unwrap();
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
        .unwrap();
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
    let a = store.record_login(&login(u.id, "a", b"ta")).await.unwrap();
    let b = store.record_login(&login(u.id, "b", b"tb")).await.unwrap();
    let c = store.record_login(&login(u.id, "c", b"tc")).await.unwrap();
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
        .unwrap();
    let laptop = store
        .record_login(&login(u.id, "laptop", b"l"))
        .await
        .unwrap();
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
        kind: "direct".to_owned(),
        title: None,
        direct_key: Some(key.clone()),
        created_at_ms: NOW,
        members: vec![(a.id, "member".to_owned()), (b.id, "member".to_owned())],
    };
    let first = store.create_room(&new_room(Uuid::now_v7())).await.unwrap();
    let second = store.create_room(&new_room(Uuid::now_v7())).await.unwrap();
    assert_eq!(first.id, second.id);
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
    assert_eq!(store.room(first.id).await.unwrap().unwrap().kind, "direct");
}

async fn group_room(store: &Arc<dyn Storage>, members: &[Uuid]) -> RoomRecord {
    store
        .create_room(&NewRoom {
            id: Uuid::now_v7(),
            kind: "group".to_owned(),
            title: Some("friends".to_owned()),
            direct_key: None,
            created_at_ms: NOW,
            members: members
                .iter()
                .map(|id| (*id, "member".to_owned()))
                .collect(),
        })
        .await
        .unwrap()
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
    }
}

pub async fn messages_get_consecutive_sequence_numbers_and_retries_dedupe(store: Arc<dyn Storage>) {
    let a = user(&store, "msg_a").await;
    let room = group_room(&store, &[a.id]).await;
    let first = store
        .append_message(&message(room.id, a.id, "phone", "c1"))
        .await
        .unwrap();
    assert_eq!((first.message.seq, first.duplicate), (1, false));
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
        (2, false)
    );
    let third = store
        .append_message(&message(room.id, a.id, "phone", "c2"))
        .await
        .unwrap();
    assert_eq!(third.message.seq, 3);
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, 3);

    let page: Vec<i64> = store
        .messages_after(room.id, 0, 2)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(page, vec![1, 2]);
    let rest = store.messages_after(room.id, 2, 10).await.unwrap();
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
    assert_eq!(seqs, (1..=12).collect::<Vec<i64>>());
    let stored = store.messages_after(room.id, 0, 100).await.unwrap();
    assert_eq!(stored.len(), 12);
    assert_eq!(store.room(room.id).await.unwrap().unwrap().last_seq, 12);
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
