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
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use iyagi_bus::Outbound;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How many recent seqs per room are remembered above the floor.
const RECENT: usize = 256;

#[derive(Default)]
struct RoomCursor {
    /// Every seq at or below this is known to the client.
    floor: i64,
    /// Seqs above `floor` delivered on this connection.
    delivered: BTreeSet<i64>,
    /// Live messages held back while the room is being caught up.
    held: Option<Vec<(i64, Arc<str>)>>,
}

impl RoomCursor {
    /// Whether `seq` should go out now; records it if so.
    fn admit(&mut self, seq: i64) -> bool {
        if seq <= self.floor || !self.delivered.insert(seq) {
            return false;
        }
        while self.delivered.len() > RECENT {
            if let Some(lowest) = self.delivered.pop_first() {
                self.floor = self.floor.max(lowest);
            }
        }
        true
    }

    fn raise_floor(&mut self, seen_up_to: i64) {
        self.floor = self.floor.max(seen_up_to);
        self.delivered.retain(|seq| *seq > seen_up_to);
    }
}

pub async fn run(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<Outbound>) {
    let mut live = false;
    let mut rooms: HashMap<Uuid, RoomCursor> = HashMap::new();
    while let Some(item) = queue.recv().await {
        let result = match item {
            Outbound::Frame(frame) => sink.send(text(&frame)).await,
            Outbound::Room {
                room_id,
                seq,
                frame,
            } => {
                if !live {
                    continue;
                }
                let cursor = rooms.entry(room_id).or_default();
                if let Some(held) = &mut cursor.held {
                    held.push((seq, frame));
                    continue;
                }
                if !cursor.admit(seq) {
                    continue;
                }
                sink.send(text(&frame)).await
            }
            Outbound::SyncBegin { rooms: syncing } => {
                live = true;
                for room in syncing {
                    rooms
                        .entry(room)
                        .or_default()
                        .held
                        .get_or_insert_with(Vec::new);
                }
                continue;
            }
            Outbound::Replay {
                room_id,
                seq,
                frame,
            } => {
                // Replay sends exactly what the client asked for.
                rooms.entry(room_id).or_default().admit(seq);
                sink.send(text(&frame)).await
            }
            Outbound::SyncEnd {
                room_id,
                seen_up_to,
            } => {
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
                match result {
                    Ok(()) => sink.flush().await,
                    Err(e) => Err(e),
                }
            }
            Outbound::Ping => sink.send(Message::Ping(Default::default())).await,
            Outbound::Close { code, reason } => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code,
                        reason: reason.into(),
                    })))
                    .await;
                return;
            }
        };
        if result.is_err() {
            // The peer is gone; the reader notices too and tears down.
            return;
        }
    }
}

fn text(frame: &str) -> Message {
    Message::Text(frame.into())
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
        for seq in 13..13 + 300 {
            assert!(cursor.admit(seq));
        }
        assert!(cursor.delivered.len() <= super::RECENT);
        assert!(
            !cursor.admit(20),
            "old seqs below the window are assumed delivered"
        );
    }
}
