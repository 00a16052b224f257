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

/// Whether this node may have missed events from other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusState {
    /// False while the bus is disconnected: events of other nodes (member
    /// changes, session closes) may be going missing right now.
    pub connected: bool,
    /// Bumped whenever events may have been lost (a disconnect, a
    /// reconnect, a subscriber that fell behind). Whoever caches what
    /// events keep fresh drops its caches when this changes.
    pub epoch: u64,
}

impl BusState {
    /// A bus that cannot lose events (one node).
    pub const RELIABLE: BusState = BusState {
        connected: true,
        epoch: 0,
    };
}

pub trait Bus: Send + Sync {
    /// Whether events may have been lost, now and since when (see [`BusState`]).
    fn state(&self) -> tokio::sync::watch::Receiver<BusState>;
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
    state: tokio::sync::watch::Sender<BusState>,
}

impl LocalBus {
    pub fn new(hub: Arc<Hub>) -> LocalBus {
        LocalBus {
            hub,
            changes: tokio::sync::broadcast::channel(1024).0,
            state: tokio::sync::watch::channel(BusState::RELIABLE).0,
        }
    }
}

impl Bus for LocalBus {
    fn state(&self) -> tokio::sync::watch::Receiver<BusState> {
        self.state.subscribe()
    }

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
