//! A connection's outbound queue, bounded twice: in items (a slow reader
//! of many small frames) and in bytes (a slow reader of a few huge ones:
//! without a byte bound, one connection that asks for large history pages
//! and never reads pins hundreds of MiB). The bytes of every connection of
//! a node also count against one node-wide budget.
//!
//! A frame is counted from the moment it is queued until the writer has
//! handed it to the socket (or dropped it), including while it is held
//! back during a catch-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::Outbound;

/// Bookkeeping cost of one queued item beyond its frame bytes, so that
/// many empty items still add up.
pub const ITEM_OVERHEAD_BYTES: usize = 64;

/// What an item carrying `frame_len` bytes counts against a byte budget.
pub fn frame_cost(frame_len: usize) -> usize {
    ITEM_OVERHEAD_BYTES + frame_len
}

/// The limits of one connection's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Items queued at most.
    pub items: usize,
    /// Frame bytes queued at most.
    pub bytes: usize,
}

/// Frame bytes queued for all connections of a node, against a budget.
/// While the node is over budget, connections with a backlog of their own
/// (more than an eighth of their byte limit) are refused, which closes
/// them as slow readers; connections that keep up are not.
#[derive(Debug)]
pub struct NodeBudget {
    queued: AtomicUsize,
    limit: usize,
}

impl NodeBudget {
    pub fn new(limit: usize) -> Arc<NodeBudget> {
        Arc::new(NodeBudget {
            queued: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes queued on this node now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// An unlimited budget (tests, tools).
    pub fn unlimited() -> Arc<NodeBudget> {
        NodeBudget::new(usize::MAX)
    }
}

struct Shared {
    queued: AtomicUsize,
    limits: QueueLimits,
    node: Arc<NodeBudget>,
    /// Woken whenever the writer frees bytes.
    drained: Notify,
}

impl Shared {
    /// Reserves `cost` bytes unless that breaks a budget.
    fn reserve(&self, cost: usize) -> bool {
        let own_limit = self.limits.bytes;
        let mut current = self.queued.load(Ordering::Relaxed);
        loop {
            // One item always fits into an empty queue, whatever its size:
            // otherwise a frame above the limit could never be sent.
            if current > 0 && current.saturating_add(cost) > own_limit {
                return false;
            }
            let node_queued = self.node.queued.load(Ordering::Relaxed);
            if node_queued.saturating_add(cost) > self.node.limit && current > own_limit / 8 {
                return false;
            }
            match self.queued.compare_exchange_weak(
                current,
                current + cost,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.node.queued.fetch_add(cost, Ordering::Relaxed);
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    fn release(&self, cost: usize) {
        self.queued.fetch_sub(cost, Ordering::AcqRel);
        self.node.queued.fetch_sub(cost, Ordering::Relaxed);
        self.drained.notify_waiters();
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over a bound: the connection is a slow reader.
    Full,
    /// The connection is gone.
    Closed,
}

/// The sending side of a connection's queue (cheap to clone).
#[derive(Clone)]
pub struct OutboundQueue {
    items: mpsc::Sender<Outbound>,
    shared: Arc<Shared>,
}

/// The writer's side.
pub struct OutboundReceiver {
    items: mpsc::Receiver<Outbound>,
    shared: Arc<Shared>,
}

/// A queue for one connection.
pub fn outbound_queue(
    limits: QueueLimits,
    node: Arc<NodeBudget>,
) -> (OutboundQueue, OutboundReceiver) {
    let (tx, rx) = mpsc::channel(limits.items.max(1));
    let shared = Arc::new(Shared {
        queued: AtomicUsize::new(0),
        limits,
        node,
        drained: Notify::new(),
    });
    (
        OutboundQueue {
            items: tx,
            shared: shared.clone(),
        },
        OutboundReceiver { items: rx, shared },
    )
}

impl OutboundQueue {
    /// Queues `item` now, or says why not. Never waits.
    pub fn try_push(&self, item: Outbound) -> Result<(), Refused> {
        if self.items.is_closed() {
            return Err(Refused::Closed);
        }
        let cost = item.cost();
        if !self.shared.reserve(cost) {
            return Err(Refused::Full);
        }
        match self.items.try_send(item) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.release(cost);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => Refused::Full,
                    mpsc::error::TrySendError::Closed(_) => Refused::Closed,
                })
            }
        }
    }

    /// Queues `item`, waiting while the queue is full, for at most
    /// `patience` without progress (a catch-up is paced by the client's
    /// reading, but a client that stops reading must not hold it forever).
    pub async fn push(&self, item: Outbound, patience: Duration) -> Result<(), Refused> {
        let cost = item.cost();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let drained = self.shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.items.is_closed() {
                return Err(Refused::Closed);
            }
            if self.shared.reserve(cost) {
                break;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return Err(Refused::Full);
            }
        }
        match tokio::time::timeout_at(deadline, self.items.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                self.shared.release(cost);
                Err(Refused::Closed)
            }
            Err(_) => {
                self.shared.release(cost);
                Err(Refused::Full)
            }
        }
    }

    /// Frame bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }
}

impl OutboundReceiver {
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.items.recv().await
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The writer is done with an item of this cost (written or dropped).
    pub fn release(&self, cost: usize) {
        self.shared.release(cost);
    }

    /// Stops accepting items and releases everything still queued.
    pub fn close_and_drain(&mut self) {
        self.items.close();
        while let Ok(item) = self.items.try_recv() {
            self.shared.release(item.cost());
        }
    }
}

impl Drop for OutboundReceiver {
    fn drop(&mut self) {
        self.close_and_drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(len: usize) -> Outbound {
        Outbound::frame(Bytes::from(vec![b'x'; len]))
    }

    #[tokio::test]
    async fn bounded_in_bytes_and_items_and_released_by_the_writer() {
        let node = NodeBudget::unlimited();
        let (queue, mut rx) = outbound_queue(
            QueueLimits {
                items: 4,
                bytes: 1000,
            },
            node.clone(),
        );
        queue.try_push(frame(600)).unwrap();
        assert_eq!(queue.try_push(frame(600)), Err(Refused::Full), "bytes");
        queue.try_push(frame(10)).unwrap();
        assert_eq!(node.queued(), 600 + 10 + 2 * ITEM_OVERHEAD_BYTES);
        let first = rx.recv().await.unwrap();
        rx.release(first.cost());
        queue.try_push(frame(600)).unwrap();
        queue.try_push(Outbound::Ping).unwrap();
        queue.try_push(Outbound::Ping).unwrap();
        assert_eq!(queue.try_push(Outbound::Ping), Err(Refused::Full), "items");
        drop(rx);
        assert_eq!(node.queued(), 0, "a dropped receiver releases its bytes");
        assert_eq!(queue.try_push(Outbound::Ping), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn an_oversized_item_fits_an_empty_queue_only() {
        let (queue, _rx) = outbound_queue(
            QueueLimits {
                items: 4,
                bytes: 100,
            },
            NodeBudget::unlimited(),
        );
        queue.try_push(frame(500)).unwrap();
        assert_eq!(queue.try_push(frame(1)), Err(Refused::Full));
    }

    #[tokio::test]
    async fn over_the_node_budget_only_backlogged_connections_are_refused() {
        let node = NodeBudget::new(3000);
        let limits = QueueLimits {
            items: 100,
            bytes: 4000,
        };
        let (backlogged, _a) = outbound_queue(limits, node.clone());
        let (prompt, mut b) = outbound_queue(limits, node.clone());
        backlogged.try_push(frame(2800)).unwrap();
        assert_eq!(backlogged.try_push(frame(500)), Err(Refused::Full));
        prompt.try_push(frame(500)).unwrap();
        let item = b.recv().await.unwrap();
        b.release(item.cost());
    }

    #[tokio::test]
    async fn push_waits_for_the_writer_and_gives_up_after_its_patience() {
        let (queue, mut rx) = outbound_queue(
            QueueLimits {
                items: 4,
                bytes: 1000,
            },
            NodeBudget::unlimited(),
        );
        queue.try_push(frame(900)).unwrap();
        let waiting = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.push(frame(900), Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        let item = rx.recv().await.unwrap();
        rx.release(item.cost());
        waiting.await.unwrap().unwrap();
        assert_eq!(
            queue.push(frame(900), Duration::from_millis(50)).await,
            Err(Refused::Full)
        );
    }
}
