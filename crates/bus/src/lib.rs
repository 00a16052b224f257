//! Fan-out: getting a frame to every connection of a set of users.
//!
//! [`Hub`] holds this node's connections. A [`Bus`] delivers to the Hubs of
//! every node: [`LocalBus`] when there is one node, [`NatsBus`] when there
//! are several (each node publishes once to NATS and delivers what the
//! others publish). Services talk to the `Bus`, never to another node.

mod hub;
mod nats;
mod queue;

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

pub use hub::{ConnectionEntry, Hub, Outbound, RoomFrame, SyncEnd};
pub use nats::{NatsBus, NatsBusError};
pub use queue::{
    NodeBudget, OutboundQueue, OutboundReceiver, QueueLimits, Refused, frame_cost, outbound_queue,
};

/// What may cross nodes: stored room messages and other frames.
#[derive(Debug, Clone)]
pub enum Delivery {
    Room {
        room_id: Uuid,
        seq: i64,
        frame: Bytes,
    },
    Frame(Bytes),
}

impl Delivery {
    fn outbound(&self) -> Outbound {
        match self {
            Delivery::Room {
                room_id,
                seq,
                frame,
            } => Outbound::Room(Arc::new(RoomFrame {
                room_id: *room_id,
                seq: *seq,
                frame: frame.clone(),
            })),
            Delivery::Frame(frame) => Outbound::frame(frame.clone()),
        }
    }
}

pub trait Bus: Send + Sync {
    /// This node's connections.
    fn hub(&self) -> &Arc<Hub>;
    /// Tells every node (this one included) that a room's membership changed,
    /// so caches of it are dropped.
    fn room_changed(&self, room: Uuid);
    /// Room ids announced by `room_changed`, from any node.
    fn room_changes(&self) -> tokio::sync::broadcast::Receiver<Uuid>;
    /// Queues `delivery` for every connection of `users` on every node.
    /// Never blocks: live delivery is best effort, storage is the truth.
    fn deliver(&self, users: &[Uuid], delivery: Delivery);
    /// Closes, on every node, the user's connections of `session` (all of
    /// them when `None`).
    fn close_sessions(&self, user: Uuid, session: Option<Uuid>, code: u16);
}

/// One node: delivery is the Hub.
pub struct LocalBus {
    hub: Arc<Hub>,
    changes: tokio::sync::broadcast::Sender<Uuid>,
}

impl LocalBus {
    pub fn new(hub: Arc<Hub>) -> LocalBus {
        LocalBus {
            hub,
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl Bus for LocalBus {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn deliver(&self, users: &[Uuid], delivery: Delivery) {
        self.hub.deliver(users, &delivery.outbound());
    }

    fn close_sessions(&self, user: Uuid, session: Option<Uuid>, code: u16) {
        self.hub.close_sessions(user, session, code);
    }

    fn room_changed(&self, room: Uuid) {
        let _ = self.changes.send(room);
    }

    fn room_changes(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.changes.subscribe()
    }
}
