//! Fan-out across nodes through NATS (core pub/sub).
//!
//! Every node subscribes to one subject, `{prefix}.fanout`. A node delivers
//! to its own connections directly and publishes once; the others deliver
//! what they receive to theirs (ignoring their own echo). One subject for
//! all is simplest and right for tens of nodes: each node filters by the
//! users it holds, and a node without such users does a map lookup per
//! event. Publishes go through one task in order, and NATS keeps one
//! publisher's order, so each room's messages from one node stay in seq order.
//!
//! Wire format of one event: a JSON header line, then the frame text as is
//! (so the frame, already JSON, is not escaped a second time).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{Bus, BusState, Delivery, Hub};

#[derive(Debug, Error)]
pub enum NatsBusError {
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("cannot subscribe: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
enum Header {
    Room {
        o: Uuid,
        u: Vec<Uuid>,
        r: Uuid,
        s: i64,
    },
    Frame {
        o: Uuid,
        u: Vec<Uuid>,
    },
    Close {
        o: Uuid,
        user: Uuid,
        session: Option<Uuid>,
        code: u16,
    },
    RoomChanged {
        o: Uuid,
        room: Uuid,
    },
}

impl Header {
    fn origin(&self) -> Uuid {
        match self {
            Header::Room { o, .. }
            | Header::Frame { o, .. }
            | Header::Close { o, .. }
            | Header::RoomChanged { o, .. } => *o,
        }
    }
}

/// Events waiting to be published; beyond this, live delivery to other
/// nodes is shed (they catch up from storage on `sync`).
const PUBLISH_QUEUE: usize = 65_536;

/// How often the client pings the NATS server.
const PING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

pub struct NatsBus {
    hub: Arc<Hub>,
    changes: tokio::sync::broadcast::Sender<Uuid>,
    node: Uuid,
    outgoing: mpsc::Sender<Bytes>,
    state: tokio::sync::watch::Sender<BusState>,
}

/// Records what a connection event means for events in flight: while
/// disconnected, other nodes' events are missed (and ours may not reach
/// them); a reconnect or a subscription that fell behind means some may be
/// gone for good.
fn note_event(state: &tokio::sync::watch::Sender<BusState>, event: &async_nats::Event) {
    let connected = match event {
        async_nats::Event::Connected => Some(true),
        async_nats::Event::Disconnected | async_nats::Event::Closed => Some(false),
        async_nats::Event::SlowConsumer(_) => None,
        _ => return,
    };
    tracing::warn!(%event, "NATS connection event: events may have been lost");
    state.send_modify(|s| {
        if let Some(connected) = connected {
            s.connected = connected;
        }
        s.epoch += 1;
    });
}

impl NatsBus {
    /// Connects, subscribes, and starts the publish and receive tasks.
    pub async fn connect(
        url: &str,
        subject_prefix: &str,
        hub: Arc<Hub>,
    ) -> Result<NatsBus, NatsBusError> {
        let (state_tx, _) = tokio::sync::watch::channel(BusState::RELIABLE);
        let state = state_tx.clone();
        let options = async_nats::ConnectOptions::new()
            // A server that vanished without closing the connection is
            // noticed after two unanswered pings, not the default minutes.
            .ping_interval(PING_INTERVAL)
            .event_callback(move |event| {
                note_event(&state, &event);
                async {}
            });
        let client = options.connect(url).await?;
        let subject = format!("{subject_prefix}.fanout");
        let mut subscription = client.subscribe(subject.clone()).await?;
        let node = Uuid::now_v7();
        let (outgoing, mut queue) = mpsc::channel::<Bytes>(PUBLISH_QUEUE);

        let publisher = client.clone();
        let publish_subject = subject.clone();
        tokio::spawn(async move {
            while let Some(payload) = queue.recv().await {
                if let Err(e) = publisher.publish(publish_subject.clone(), payload).await {
                    tracing::warn!(error = %e, "publishing to NATS failed");
                }
            }
        });

        let receiving_hub = hub.clone();
        let changes = tokio::sync::broadcast::channel(1024).0;
        let remote_changes = changes.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                deliver_remote(&receiving_hub, &remote_changes, node, &message.payload);
            }
            tracing::warn!("NATS subscription ended");
        });
        tracing::info!(%node, subject, "fan-out over NATS");
        Ok(NatsBus {
            hub,
            changes,
            node,
            outgoing,
            state: state_tx,
        })
    }

    fn publish(&self, header: &Header, frame: Option<&Bytes>) {
        let Ok(head) = serde_json::to_vec(header) else {
            return;
        };
        let mut payload = BytesMut::with_capacity(head.len() + 1 + frame.map_or(0, Bytes::len));
        payload.put_slice(&head);
        payload.put_u8(b'\n');
        if let Some(frame) = frame {
            payload.put_slice(frame);
        }
        if self.outgoing.try_send(payload.freeze()).is_err() {
            tracing::warn!("NATS publish queue full; other nodes will catch up from storage");
        }
    }
}

fn deliver_remote(
    hub: &Hub,
    changes: &tokio::sync::broadcast::Sender<Uuid>,
    me: Uuid,
    payload: &Bytes,
) {
    let Some(split) = payload.iter().position(|b| *b == b'\n') else {
        return;
    };
    let Ok(header) = serde_json::from_slice::<Header>(&payload[..split]) else {
        tracing::warn!("ignoring a malformed fan-out event");
        return;
    };
    if header.origin() == me {
        return;
    }
    // The frame is the rest of the payload: shared, not copied.
    let frame = || -> Option<Bytes> {
        std::str::from_utf8(&payload[split + 1..]).ok()?;
        Some(payload.slice(split + 1..))
    };
    match header {
        Header::Room { u, r, s, .. } => {
            if let Some(frame) = frame() {
                hub.deliver(
                    &u,
                    &crate::Outbound::Room(std::sync::Arc::new(crate::RoomFrame {
                        room_id: r,
                        seq: s,
                        frame,
                    })),
                );
            }
        }
        Header::Frame { u, .. } => {
            if let Some(frame) = frame() {
                hub.deliver(&u, &crate::Outbound::frame(frame));
            }
        }
        Header::Close {
            user,
            session,
            code,
            ..
        } => {
            hub.close_sessions(user, session, code);
        }
        Header::RoomChanged { room, .. } => {
            let _ = changes.send(room);
        }
    }
}

impl Bus for NatsBus {
    fn state(&self) -> tokio::sync::watch::Receiver<BusState> {
        self.state.subscribe()
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn deliver(&self, users: &[Uuid], delivery: Delivery) {
        self.hub.deliver(users, &delivery.outbound());
        match &delivery {
            Delivery::Room {
                room_id,
                seq,
                frame,
            } => {
                self.publish(
                    &Header::Room {
                        o: self.node,
                        u: users.to_vec(),
                        r: *room_id,
                        s: *seq,
                    },
                    Some(frame),
                );
            }
            Delivery::Frame(frame) => self.publish(
                &Header::Frame {
                    o: self.node,
                    u: users.to_vec(),
                },
                Some(frame),
            ),
        }
    }

    fn close_sessions(&self, user: Uuid, session: Option<Uuid>, code: u16) {
        self.hub.close_sessions(user, session, code);
        self.publish(
            &Header::Close {
                o: self.node,
                user,
                session,
                code,
            },
            None,
        );
    }

    fn room_changed(&self, room: Uuid) {
        let _ = self.changes.send(room);
        self.publish(&Header::RoomChanged { o: self.node, room }, None);
    }

    fn room_changes(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.changes.subscribe()
    }
}
