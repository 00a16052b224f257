use std::sync::Arc;
use std::time::Duration;

use iyagi_session::{Connection, SessionStore};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

fn conn(device: &str) -> Connection {
    Connection {
        device_id: device.to_owned(),
        connection_id: Uuid::new_v4(),
    }
}

pub async fn first_connection_brings_online_and_last_takes_offline(store: Arc<dyn SessionStore>) {
    let user = Uuid::new_v4();
    let (phone, laptop, phone_again) = (conn("phone"), conn("laptop"), conn("phone"));
    assert!(!store.is_online(user).await.unwrap());
    assert!(
        store.connect(user, &phone, LONG).await.unwrap(),
        "first connection: came online"
    );
    assert!(!store.connect(user, &laptop, LONG).await.unwrap());
    // The same device reconnecting before its old connection is reaped.
    assert!(!store.connect(user, &phone_again, LONG).await.unwrap());
    assert_eq!(
        store.online_devices(user).await.unwrap(),
        vec!["laptop".to_owned(), "phone".to_owned()]
    );
    assert!(!store.disconnect(user, &phone, None).await.unwrap());
    assert_eq!(
        store.online_devices(user).await.unwrap(),
        vec!["laptop".to_owned(), "phone".to_owned()]
    );
    assert!(!store.disconnect(user, &laptop, None).await.unwrap());
    assert!(
        store.disconnect(user, &phone_again, None).await.unwrap(),
        "last connection: went offline"
    );
    assert!(!store.is_online(user).await.unwrap());
    assert!(store.online_devices(user).await.unwrap().is_empty());
    // Other users are untouched by all of this.
    assert!(!store.is_online(Uuid::new_v4()).await.unwrap());
}

pub async fn room_views_are_per_user_and_room(store: Arc<dyn SessionStore>) {
    let (user, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (room, elsewhere) = (Uuid::new_v4(), Uuid::new_v4());
    let (phone, tablet) = (conn("phone"), conn("tablet"));
    store.connect(user, &phone, LONG).await.unwrap();
    store.connect(user, &tablet, LONG).await.unwrap();
    assert!(!store.in_room(user, room).await.unwrap());
    store.enter_room(user, room, &phone, LONG).await.unwrap();
    // A second device viewing the same room: one room session, two devices.
    store.enter_room(user, room, &tablet, LONG).await.unwrap();
    assert!(store.in_room(user, room).await.unwrap());
    assert!(!store.in_room(user, elsewhere).await.unwrap());
    assert!(!store.in_room(other, room).await.unwrap());
    assert_eq!(
        store.devices_in_room(user, room).await.unwrap(),
        vec!["phone".to_owned(), "tablet".to_owned()]
    );
    assert_eq!(
        store
            .in_room_many(&[user, other, user], room)
            .await
            .unwrap(),
        vec![true, false, true]
    );
    assert_eq!(
        store.online_many(&[other, user]).await.unwrap(),
        vec![false, true]
    );
    assert!(store.in_room_many(&[], room).await.unwrap().is_empty());
    store.leave_room(user, room, &phone).await.unwrap();
    assert!(
        store.in_room(user, room).await.unwrap(),
        "the tablet still views it"
    );
    // Disconnecting removes the connection's view too.
    store.disconnect(user, &tablet, Some(room)).await.unwrap();
    assert!(!store.in_room(user, room).await.unwrap());
    assert!(
        store.is_online(user).await.unwrap(),
        "the phone is still connected"
    );
}

pub async fn entries_expire_without_heartbeat_and_heartbeat_extends_them(
    store: Arc<dyn SessionStore>,
) {
    let (user, room) = (Uuid::new_v4(), Uuid::new_v4());
    let (kept, dropped) = (conn("kept"), conn("dropped"));
    let ttl = Duration::from_millis(400);
    store.connect(user, &kept, ttl).await.unwrap();
    store.connect(user, &dropped, ttl).await.unwrap();
    store.enter_room(user, room, &kept, ttl).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store.heartbeat(user, &kept, Some(room), ttl).await.unwrap();
    }
    // 600 ms on: the silent connection is gone, the heartbeating one is not.
    assert_eq!(
        store.online_devices(user).await.unwrap(),
        vec!["kept".to_owned()]
    );
    assert!(store.in_room(user, room).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !store.is_online(user).await.unwrap(),
        "a node that died stops counting as online"
    );
    assert!(!store.in_room(user, room).await.unwrap());
    // Coming back after expiry counts as coming online again.
    assert!(store.connect(user, &conn("kept"), ttl).await.unwrap());
}

pub async fn a_heartbeat_restores_entries_that_vanished(store: Arc<dyn SessionStore>) {
    // Entries can vanish under a live connection (Redis restarted and keeps
    // nothing; an expiry while the node stalled): its next heartbeat writes
    // them again, the room view included.
    let user = Uuid::new_v4();
    let room = Uuid::new_v4();
    let c = conn("phone");
    store.connect(user, &c, LONG).await.unwrap();
    store.enter_room(user, room, &c, LONG).await.unwrap();
    store.disconnect(user, &c, Some(room)).await.unwrap();
    assert!(!store.is_online(user).await.unwrap());
    store.heartbeat(user, &c, Some(room), LONG).await.unwrap();
    assert!(store.is_online(user).await.unwrap());
    assert!(store.in_room(user, room).await.unwrap());
    assert_eq!(
        store.online_devices(user).await.unwrap(),
        vec!["phone".to_owned()]
    );
    store.ping().await.unwrap();
}
