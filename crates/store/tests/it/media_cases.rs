//! The media aggregate's contract.

use std::sync::Arc;

use iyagi_store::*;
use uuid::Uuid;

use crate::cases::{NOW, user};

fn upload(owner: Uuid, kind: &str, size: i64, at: i64) -> NewMedia {
    NewMedia {
        id: Uuid::now_v7(),
        owner_id: owner,
        kind: kind.to_owned(),
        size_bytes: size,
        upload_key: None,
        created_at_ms: at,
    }
}

fn ready(m: &NewMedia, size: i64) -> ReadyMedia {
    ReadyMedia {
        id: m.id,
        kind: m.kind.clone(),
        mime: "image/jpeg".to_owned(),
        size_bytes: size,
        details: r#"{"width":1,"height":1}"#.to_owned(),
        ready_at_ms: NOW,
    }
}

fn using<'a>(
    m: &NewMedia,
    owner: Uuid,
    kind: &'a str,
    room: Uuid,
    client: &'a str,
) -> MediaUse<'a> {
    MediaUse {
        media_id: m.id,
        owner_id: owner,
        kind,
        room_id: room,
        device_id: "phone",
        client_msg_id: client,
        now_ms: NOW,
    }
}

pub async fn media_is_ready_once_and_backs_one_message(store: Arc<dyn Storage>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let room = Uuid::now_v7();
    let m = upload(alice.id, "image", 100, NOW);
    store.create_media(&m).await.unwrap();
    let pending = store.media(m.id).await.unwrap().unwrap();
    assert_eq!(pending.state, MEDIA_PENDING);
    assert_eq!(
        store
            .attach_media(&using(&m, alice.id, "image", room, "c1"))
            .await
            .unwrap(),
        Attach::NotReady
    );
    assert!(store.mark_media_ready(&ready(&m, 90)).await.unwrap());
    assert!(
        !store.mark_media_ready(&ready(&m, 90)).await.unwrap(),
        "ready once"
    );
    let mut wrong_kind = ready(&m, 90);
    wrong_kind.kind = "voice".to_owned();
    assert!(!store.mark_media_ready(&wrong_kind).await.unwrap());

    // Another user's media looks like no media at all.
    assert_eq!(
        store
            .attach_media(&using(&m, bob.id, "image", room, "c1"))
            .await
            .unwrap(),
        Attach::NotFound
    );
    assert_eq!(
        store
            .attach_media(&using(&m, alice.id, "voice", room, "c1"))
            .await
            .unwrap(),
        Attach::WrongKind
    );
    let Attach::Attached(first) = store
        .attach_media(&using(&m, alice.id, "image", room, "c1"))
        .await
        .unwrap()
    else {
        panic!("attach")
    };
    assert_eq!(first.room_id, Some(room));
    assert_eq!(first.size_bytes, 90);
    assert_eq!(first.details.as_deref(), Some(r#"{"width":1,"height":1}"#));
    // A retry of the same send gets it again; any other message does not.
    assert!(matches!(
        store
            .attach_media(&using(&m, alice.id, "image", room, "c1"))
            .await
            .unwrap(),
        Attach::Attached(_)
    ));
    assert_eq!(
        store
            .attach_media(&using(&m, alice.id, "image", room, "c2"))
            .await
            .unwrap(),
        Attach::AlreadyUsed
    );
    assert_eq!(
        store
            .attach_media(&using(&m, alice.id, "image", Uuid::now_v7(), "c1"))
            .await
            .unwrap(),
        Attach::AlreadyUsed
    );
    // The same client id from another device is another message.
    let mut tablet = using(&m, alice.id, "image", room, "c1");
    tablet.device_id = "tablet";
    assert_eq!(
        store.attach_media(&tablet).await.unwrap(),
        Attach::AlreadyUsed
    );
    let unknown = upload(alice.id, "image", 1, NOW);
    assert_eq!(
        store
            .attach_media(&using(&unknown, alice.id, "image", room, "c3"))
            .await
            .unwrap(),
        Attach::NotFound
    );
}

pub async fn media_usage_counts_bytes_and_recent_uploads(store: Arc<dyn Storage>) {
    let alice = user(&store, "alice").await;
    assert_eq!(
        store.media_usage(alice.id, 0).await.unwrap(),
        MediaUsage {
            bytes: 0,
            recent_uploads: 0
        }
    );
    let old = upload(alice.id, "image", 1000, NOW - 10_000);
    let new = upload(alice.id, "voice", 500, NOW);
    store.create_media(&old).await.unwrap();
    store.create_media(&new).await.unwrap();
    assert_eq!(
        store.media_usage(alice.id, NOW - 5_000).await.unwrap(),
        MediaUsage {
            bytes: 1500,
            recent_uploads: 1
        }
    );
    // Once ready, the stored size replaces the declared one.
    store.mark_media_ready(&ready(&old, 700)).await.unwrap();
    assert_eq!(store.media_usage(alice.id, 0).await.unwrap().bytes, 1200);
}

pub async fn the_collector_sees_only_unattached_media(store: Arc<dyn Storage>) {
    let alice = user(&store, "alice").await;
    let room = Uuid::now_v7();
    let attached = upload(alice.id, "image", 1, NOW - 3_000);
    let loose = upload(alice.id, "image", 1, NOW - 2_000);
    let fresh = upload(alice.id, "image", 1, NOW);
    for m in [&attached, &loose, &fresh] {
        store.create_media(m).await.unwrap();
        store.mark_media_ready(&ready(m, 1)).await.unwrap();
    }
    assert!(matches!(
        store
            .attach_media(&using(&attached, alice.id, "image", room, "c"))
            .await
            .unwrap(),
        Attach::Attached(_)
    ));
    let due: Vec<Uuid> = store
        .unattached_media(NOW - 1_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(due, vec![loose.id]);
    // Pending (never completed) uploads, for the collector's shorter clock.
    let pending = upload(alice.id, "voice", 1, NOW - 5_000);
    store.create_media(&pending).await.unwrap();
    let stale: Vec<Uuid> = store
        .pending_media(NOW - 1_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(stale, vec![pending.id], "ready ones are not pending");
    assert!(store.delete_unattached_media(pending.id).await.unwrap());
    assert!(
        !store.delete_unattached_media(attached.id).await.unwrap(),
        "never a used one"
    );
    assert!(store.delete_unattached_media(loose.id).await.unwrap());
    assert!(store.media(attached.id).await.unwrap().is_some());
    let mut existing = store
        .existing_media(&[attached.id, loose.id, fresh.id, Uuid::now_v7()])
        .await
        .unwrap();
    existing.sort();
    let mut expected = vec![attached.id, fresh.id];
    expected.sort();
    assert_eq!(existing, expected);
}
