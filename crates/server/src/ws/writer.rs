//! The writer task of one connection: the only owner of the socket's sink.
//!
//! Room messages reach a connection two ways: live (published as they are
//! stored) and replayed (catch-up). The writer merges them so that each
//! room's messages reach the client at most once:
//! - before the first `sync`, live room messages are dropped (they are in
//!   storage, and the sync fetches them);
//! - while a room is being caught up, its live messages are held back, then
//!   released in seq order after the replay;
//! - a message the client already has (at or below its sync position, or
//!   delivered before) is dropped.
//!
//! On one node a room's live messages arrive in seq order. With several
//! nodes, messages of one room stored through different nodes can arrive
//! out of order; a late lower seq is still delivered once (not mistaken for
//! a duplicate), which is why the writer remembers recent seqs rather than
//! only the highest.

use std::collections::{BTreeSet, HashMap};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::SinkExt;
use futures::stream::SplitSink;
use iyagi_bus::{Outbound, RoomFrame, SyncEnd};
use iyagi_protocol::ws::close;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Out-of-order seqs remembered per room above the contiguous prefix.
const AHEAD_MAX: usize = 256;

#[derive(Default)]
struct RoomCursor {
    /// Every seq at or below this is known to the client (`None` until the
    /// room's first message or sync on this connection).
    floor: Option<i64>,
    /// Seqs above `floor + 1` already delivered (only out-of-order arrivals
    /// land here; in order, nothing is stored).
    ahead: BTreeSet<i64>,
    /// Live messages held back while the room is being caught up.
    held: Option<Vec<(i64, Bytes)>>,
}

impl RoomCursor {
    /// Whether `seq` should go out now; records it if so.
    fn admit(&mut self, seq: i64) -> bool {
        let floor = *self.floor.get_or_insert(seq - 1);
        if seq <= floor {
            return false;
        }
        if seq == floor + 1 {
            // The common case: in order, no allocation.
            let mut floor = seq;
            while self.ahead.remove(&(floor + 1)) {
                floor += 1;
            }
            self.floor = Some(floor);
            return true;
        }
        if !self.ahead.insert(seq) {
            return false;
        }
        if self.ahead.len() > AHEAD_MAX {
            // A gap that never fills: stop waiting for it.
            if let Some(lowest) = self.ahead.pop_first() {
                self.floor = Some(lowest);
                while self.ahead.remove(&(lowest + 1)) {
                    self.floor = self.floor.map(|f| f + 1);
                }
            }
        }
        true
    }

    fn raise_floor(&mut self, seen_up_to: i64) {
        let floor = self.floor.map_or(seen_up_to, |f| f.max(seen_up_to));
        self.ahead.retain(|seq| *seq > floor);
        self.floor = Some(floor);
        while let Some(next) = self.floor.map(|f| f + 1)
            && self.ahead.remove(&next)
        {
            self.floor = Some(next);
        }
    }
}

pub async fn run(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Outbound>) {
    let mut live = false;
    let mut rooms: HashMap<Uuid, RoomCursor> = HashMap::new();
    while let Some(item) = queue.recv().await {
        let result = 'item: {
            match item {
                Outbound::Frame(frame) => sink.feed(text(&frame)).await,
                Outbound::Room(room) => {
                    let RoomFrame {
                        room_id,
                        seq,
                        ref frame,
                    } = *room;
                    if !live {
                        break 'item Ok(());
                    }
                    let cursor = rooms.entry(room_id).or_default();
                    if let Some(held) = &mut cursor.held {
                        held.push((seq, frame.clone()));
                        break 'item Ok(());
                    }
                    if !cursor.admit(seq) {
                        break 'item Ok(());
                    }
                    sink.feed(text(frame)).await
                }
                Outbound::SyncBegin(syncing) => {
                    live = true;
                    for room in *syncing {
                        rooms
                            .entry(room)
                            .or_default()
                            .held
                            .get_or_insert_with(Vec::new);
                    }
                    break 'item Ok(());
                }
                Outbound::Replay(replayed) => {
                    // Replay sends exactly what the client asked for.
                    rooms
                        .entry(replayed.room_id)
                        .or_default()
                        .admit(replayed.seq);
                    sink.feed(text(&replayed.frame)).await
                }
                Outbound::SyncEnd(end) => {
                    let SyncEnd {
                        room_id,
                        seen_up_to,
                    } = *end;
                    let cursor = rooms.entry(room_id).or_default();
                    cursor.raise_floor(seen_up_to);
                    let mut held = cursor.held.take().unwrap_or_default();
                    held.sort_by_key(|(seq, _)| *seq);
                    let mut result = Ok(());
                    for (seq, frame) in held {
                        if cursor.admit(seq) {
                            result = sink.feed(text(&frame)).await;
                            if result.is_err() {
                                break;
                            }
                        }
                    }
                    result
                }
                Outbound::Ping => sink.feed(Message::Ping(Default::default())).await,
                Outbound::Close(code) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: close::reason(code).into(),
                        })))
                        .await;
                    return;
                }
            }
        };
        // Frames are fed into the socket's write buffer and flushed once
        // the queue is empty: a burst (acks and deliveries arriving
        // together) goes out in one write instead of one syscall per frame.
        let result = match result {
            Ok(()) if queue.is_empty() => sink.flush().await,
            other => other,
        };
        if result.is_err() {
            // The peer is gone; the reader notices too and tears down.
            return;
        }
    }
}

/// The shared frame bytes become the message without a copy.
fn text(frame: &Bytes) -> Message {
    Message::Text(Utf8Bytes::try_from(frame.clone()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::RoomCursor;

    #[test]
    fn admits_each_seq_once_even_out_of_order() {
        let mut cursor = RoomCursor::default();
        cursor.raise_floor(10);
        assert!(!cursor.admit(10), "the client has it already");
        assert!(cursor.admit(12));
        assert!(cursor.admit(11), "a late lower seq is still new");
        assert!(
            !cursor.admit(12) && !cursor.admit(11),
            "duplicates are dropped"
        );
        assert_eq!(cursor.floor, Some(12));
        assert!(
            cursor.ahead.is_empty(),
            "in order again: nothing remembered"
        );
        for seq in 13..13 + 300 {
            assert!(cursor.admit(seq));
        }
        assert!(cursor.ahead.is_empty());
        // A gap that never fills is given up after AHEAD_MAX arrivals.
        for seq in 400..400 + 300 {
            assert!(cursor.admit(seq));
        }
        assert!(cursor.ahead.len() <= super::AHEAD_MAX);
    }

    #[test]
    fn the_first_live_message_of_an_unsynced_room_starts_the_count() {
        let mut cursor = RoomCursor::default();
        assert!(cursor.admit(57));
        assert!(cursor.admit(58));
        assert!(!cursor.admit(57));
        assert!(cursor.ahead.is_empty());
    }
}
