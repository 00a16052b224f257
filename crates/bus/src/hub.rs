//! In-process fan-out: the live connections of this node, by user.
//!
//! A frame is serialised once and shared (`Bytes`, reference-counted, UTF-8
//! JSON) by every recipient's queue down to the socket. Queues are bounded; a connection whose queue is full is a slow
//! reader and is told to close (it catches up with `sync` on reconnect), so
//! one slow client never stalls delivery to anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use iyagi_protocol::ws::close;
use tokio::sync::watch;
use uuid::Uuid;

use crate::queue::{
    NodeBudget, OutboundQueue, OutboundReceiver, QueueLimits, Refused, frame_cost, outbound_queue,
};

/// A stored room message, encoded once and shared by every recipient.
#[derive(Debug)]
pub struct RoomFrame {
    pub room_id: Uuid,
    pub seq: i64,
    pub frame: Bytes,
}

/// The end of one room's catch-up (see [`Outbound::SyncEnd`]).
#[derive(Debug, Clone)]
pub struct SyncEnd {
    pub room_id: Uuid,
    /// The client has seen everything up to here: its own position, the
    /// last replayed seq, or the latest seq after a `reload`.
    pub seen_up_to: i64,
}

/// What goes down a connection's queue to its writer task.
///
/// Kept at 16 bytes (a unit test holds it there): a queue allocates its
/// slots in blocks of 32 when it is created, so every connection, idle or
/// not, pays 32 slots. Payloads live behind one pointer; room frames are
/// shared by all their recipients.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A stored room message. The writer delivers each room's messages in
    /// seq order, without duplicates (see the gateway's writer).
    Room(Arc<RoomFrame>),
    /// Any other frame, written as is.
    Frame(Arc<Bytes>),
    /// Catch-up starts for these rooms: live room messages for them are held
    /// back until their `SyncEnd`.
    SyncBegin(Box<Vec<Uuid>>),
    /// A replayed room message (part of a catch-up).
    Replay(Arc<RoomFrame>),
    /// Catch-up of a room is done.
    SyncEnd(Box<SyncEnd>),
    Ping,
}

impl Outbound {
    pub fn frame(frame: Bytes) -> Outbound {
        Outbound::Frame(Arc::new(frame))
    }

    /// What the item counts against its queue's byte budget.
    pub fn cost(&self) -> usize {
        frame_cost(match self {
            Outbound::Room(room) | Outbound::Replay(room) => room.frame.len(),
            Outbound::Frame(frame) => frame.len(),
            Outbound::SyncBegin(_) | Outbound::SyncEnd(_) | Outbound::Ping => 0,
        })
    }
}

/// One live connection, as the hub sees it.
pub struct ConnectionEntry {
    pub connection_id: Uuid,
    pub device_id: String,
    /// iyagi device session (token family) behind the connection, if any.
    pub session_id: Option<Uuid>,
    pub queue: OutboundQueue,
    /// Set to a close code to make the connection close itself.
    pub close: watch::Sender<Option<u16>>,
}

pub struct Hub {
    // std RwLock: held only for map operations and non-blocking try_send,
    // never across an await.
    users: RwLock<HashMap<Uuid, Vec<ConnectionEntry>>>,
    delivered: AtomicU64,
    slow_closed: AtomicU64,
    /// What every queue of this node may hold together.
    budget: Arc<NodeBudget>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::with_budget(NodeBudget::unlimited())
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A hub whose connections' queues share `budget`.
    pub fn with_budget(budget: Arc<NodeBudget>) -> Hub {
        Hub {
            users: RwLock::default(),
            delivered: AtomicU64::new(0),
            slow_closed: AtomicU64::new(0),
            budget,
        }
    }

    /// A queue for a new connection of this node.
    pub fn queue(&self, limits: QueueLimits) -> (OutboundQueue, OutboundReceiver) {
        outbound_queue(limits, self.budget.clone())
    }

    /// Frame bytes queued for this node's connections now.
    pub fn queued_bytes(&self) -> usize {
        self.budget.queued()
    }

    /// Counts a connection that closed itself as a slow reader (its own
    /// answers did not fit its queue).
    pub fn note_slow_closed(&self) {
        self.slow_closed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn register(&self, user: Uuid, entry: ConnectionEntry) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        users.entry(user).or_default().push(entry);
    }

    pub fn unregister(&self, user: Uuid, connection_id: Uuid) {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        if let Some(entries) = users.get_mut(&user) {
            entries.retain(|e| e.connection_id != connection_id);
            if entries.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Queues `item` for every connection of every user in `users`.
    pub fn deliver(&self, users: &[Uuid], item: &Outbound) {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        for user in users {
            for entry in map.get(user).into_iter().flatten() {
                self.offer(entry, item.clone());
            }
        }
    }

    /// Queues `item` for the connections of `users` except one connection.
    pub fn deliver_except(&self, users: &[Uuid], except: Uuid, item: &Outbound) {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        for user in users {
            for entry in map
                .get(user)
                .into_iter()
                .flatten()
                .filter(|e| e.connection_id != except)
            {
                self.offer(entry, item.clone());
            }
        }
    }

    fn offer(&self, entry: &ConnectionEntry, item: Outbound) {
        match entry.queue.try_push(item) {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(Refused::Full) => {
                if entry
                    .close
                    .send_replace(Some(close::SLOW_CONSUMER))
                    .is_none()
                {
                    self.slow_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(connection_id = %entry.connection_id, "outbound queue full: closing slow connection");
                }
            }
            // The connection is shutting down; its teardown unregisters it.
            Err(Refused::Closed) => {}
        }
    }

    /// Closes the user's connections whose session matches (all of them when
    /// `session` is `None`).
    pub fn close_sessions(&self, user: Uuid, session: Option<Uuid>, code: u16) -> usize {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        let mut closed = 0;
        for entry in map.get(&user).into_iter().flatten() {
            if session.is_none() || entry.session_id == session {
                entry.close.send_replace(Some(code));
                closed += 1;
            }
        }
        closed
    }

    /// The (user, device session) of every connection opened with one of
    /// iyagi's own tokens.
    pub fn sessions(&self) -> Vec<(Uuid, Uuid)> {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .flat_map(|(user, entries)| {
                entries
                    .iter()
                    .filter_map(move |e| e.session_id.map(|s| (*user, s)))
            })
            .collect()
    }

    /// Asks every connection to close (server shutdown).
    pub fn close_all(&self, code: u16) {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        for entry in map.values().flatten() {
            entry.close.send_replace(Some(code));
        }
    }

    /// The user's open connections on this node: all of them, and those of `device`.
    pub fn connections_of(&self, user: Uuid, device: &str) -> (usize, usize) {
        let map = self.users.read().unwrap_or_else(|p| p.into_inner());
        let entries = map.get(&user).map(Vec::as_slice).unwrap_or_default();
        let of_device = entries.iter().filter(|e| e.device_id == device).count();
        (entries.len(), of_device)
    }

    pub fn connection_count(&self) -> usize {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Frames queued since start.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Connections closed for a full queue since start.
    pub fn slow_closed_total(&self) -> u64 {
        self.slow_closed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_queue_slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<super::Outbound>(), 16);
    }
}
