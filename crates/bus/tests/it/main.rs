//! The bus contract, on the local bus and on NATS, plus what only a
//! multi-node bus can show: delivery to connections held by another node.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iyagi_bus::{
    Bus, ConnectionEntry, Delivery, Hub, LocalBus, NatsBus, Outbound, OutboundReceiver, QueueLimits,
};
use tokio::sync::watch;
use uuid::Uuid;

struct Conn {
    queue: OutboundReceiver,
    close: watch::Receiver<Option<u16>>,
}

fn connect(hub: &Hub, user: Uuid, session: Option<Uuid>, capacity: usize) -> Conn {
    let (tx, queue) = hub.queue(QueueLimits {
        items: capacity,
        bytes: 1 << 20,
    });
    let (close_tx, close) = watch::channel(None);
    hub.register(
        user,
        ConnectionEntry {
            connection_id: Uuid::new_v4(),
            device_id: "d".into(),
            session_id: session,
            queue: tx,
            close: close_tx,
        },
    );
    Conn { queue, close }
}

async fn next_frame(conn: &mut Conn) -> String {
    match tokio::time::timeout(Duration::from_secs(5), conn.queue.recv()).await {
        Ok(Some(Outbound::Frame(f))) => String::from_utf8(f.to_vec()).unwrap(),
        Ok(Some(Outbound::Room(room))) => {
            format!(
                "{}:{}",
                room.seq,
                String::from_utf8(room.frame.to_vec()).unwrap()
            )
        }
        other => panic!("expected a frame, got {other:?}"),
    }
}

async fn nothing_more(conn: &mut Conn) {
    assert!(
        tokio::time::timeout(Duration::from_millis(200), conn.queue.recv())
            .await
            .is_err(),
        "nothing else arrives"
    );
}

async fn contract(bus: Arc<dyn Bus>) {
    let (alice, bob, carol) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut alice_phone = connect(bus.hub(), alice, None, 16);
    let mut alice_laptop = connect(bus.hub(), alice, None, 16);
    let mut bob_conn = connect(bus.hub(), bob, Some(Uuid::new_v4()), 16);
    let mut carol_conn = connect(bus.hub(), carol, None, 16);
    let room = Uuid::new_v4();
    bus.deliver(
        &[alice, bob],
        Delivery::Room {
            room_id: room,
            seq: 7,
            frame: Bytes::from_static(b"m7"),
        },
    );
    for conn in [&mut alice_phone, &mut alice_laptop, &mut bob_conn] {
        assert_eq!(next_frame(conn).await, "7:m7");
        nothing_more(conn).await;
    }
    nothing_more(&mut carol_conn).await;
    bus.deliver(&[carol], Delivery::Frame(Bytes::from_static(b"hello")));
    assert_eq!(next_frame(&mut carol_conn).await, "hello");

    // Closing one session leaves the user's other connections alone.
    let session = Uuid::new_v4();
    let mut other = connect(bus.hub(), bob, Some(session), 16);
    bus.close_sessions(bob, Some(session), 4002);
    other.close.changed().await.unwrap();
    assert_eq!(*other.close.borrow(), Some(4002));
    assert_eq!(*bob_conn.close.borrow(), None);

    // A full queue closes that connection only (slow reader).
    let mut slow = connect(bus.hub(), carol, None, 1);
    for i in 0..3 {
        bus.deliver(&[carol], Delivery::Frame(Bytes::from(format!("f{i}"))));
    }
    slow.close.changed().await.unwrap();
    assert_eq!(
        *slow.close.borrow(),
        Some(iyagi_protocol::ws::close::SLOW_CONSUMER)
    );
    assert_eq!(*carol_conn.close.borrow(), None);
    assert_eq!(bus.hub().slow_closed_total(), 1);
}

#[tokio::test]
async fn local_bus_contract() {
    contract(Arc::new(LocalBus::new(Arc::new(Hub::new())))).await;
}

#[tokio::test]
async fn nats_bus_contract() {
    let Some(url) = iyagi_testkit::service_url("IYAGI_TEST_NATS_URL") else {
        return;
    };
    let prefix = format!("iyagi_t_{}", Uuid::new_v4().simple());
    contract(Arc::new(
        NatsBus::connect(&url, &prefix, Arc::new(Hub::new()))
            .await
            .expect("nats"),
    ))
    .await;
}

#[tokio::test]
async fn nats_bus_reaches_connections_on_other_nodes_in_order_exactly_once() {
    let Some(url) = iyagi_testkit::service_url("IYAGI_TEST_NATS_URL") else {
        return;
    };
    let prefix = format!("iyagi_t_{}", Uuid::new_v4().simple());
    let node_a = NatsBus::connect(&url, &prefix, Arc::new(Hub::new()))
        .await
        .expect("node a");
    let node_b = NatsBus::connect(&url, &prefix, Arc::new(Hub::new()))
        .await
        .expect("node b");
    // Another cluster on the same NATS server is not reached.
    let elsewhere = NatsBus::connect(&url, &format!("{prefix}_other"), Arc::new(Hub::new()))
        .await
        .expect("other");
    let user = Uuid::new_v4();
    let mut on_a = connect(node_a.hub(), user, None, 256);
    let mut on_b = connect(node_b.hub(), user, None, 256);
    let mut on_elsewhere = connect(elsewhere.hub(), user, None, 256);
    let room = Uuid::new_v4();
    for seq in 1..=100 {
        node_a.deliver(
            &[user],
            Delivery::Room {
                room_id: room,
                seq,
                frame: Bytes::from(format!("m{seq}")),
            },
        );
    }
    for conn in [&mut on_a, &mut on_b] {
        for seq in 1..=100 {
            assert_eq!(next_frame(conn).await, format!("{seq}:m{seq}"));
        }
        nothing_more(conn).await;
    }
    nothing_more(&mut on_elsewhere).await;
    // Room membership changes reach every node's listeners, the sender's too.
    let mut changes_a = node_a.room_changes();
    let mut changes_b = node_b.room_changes();
    node_a.room_changed(room);
    for changes in [&mut changes_a, &mut changes_b] {
        let changed = tokio::time::timeout(Duration::from_secs(5), changes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changed, room);
    }
    // Session closes cross nodes too.
    let session = Uuid::new_v4();
    let mut revoked_on_b = connect(node_b.hub(), user, Some(session), 4);
    node_a.close_sessions(user, Some(session), 4002);
    tokio::time::timeout(Duration::from_secs(5), revoked_on_b.close.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*revoked_on_b.close.borrow(), Some(4002));
}
