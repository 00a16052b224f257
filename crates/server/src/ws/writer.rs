//! The writer task of one connection: the only owner of the socket's sink.
//!
//! Room messages reach a connection two ways: live (published as they are
//! stored) and replayed (catch-up). The writer merges them so that each room's
//! messages go out in seq order with no duplicates:
//! - before the first `sync`, live room messages are dropped (they are in
//!   storage, and the sync fetches them);
//! - while a room is being caught up, its live messages are held back, then
//!   those beyond the replay are released in order;
//! - afterwards, a live message at or below the room's high-water mark is a
//!   duplicate and is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use iyagi_chat::Outbound;
use tokio::sync::mpsc;
use uuid::Uuid;

#[derive(Default)]
struct RoomCursor {
    /// Highest seq this connection has been given in the room.
    high_water: Option<i64>,
    /// Live messages held back while the room is being caught up.
    held: Option<Vec<(i64, Arc<str>)>>,
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
                if cursor.high_water.is_some_and(|h| seq <= h) {
                    continue;
                }
                cursor.high_water = Some(seq);
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
                let cursor = rooms.entry(room_id).or_default();
                cursor.high_water = Some(cursor.high_water.map_or(seq, |h| h.max(seq)));
                sink.send(text(&frame)).await
            }
            Outbound::SyncEnd {
                room_id,
                seen_up_to,
            } => {
                let cursor = rooms.entry(room_id).or_default();
                let mut high = cursor.high_water.map_or(seen_up_to, |h| h.max(seen_up_to));
                let mut held = cursor.held.take().unwrap_or_default();
                held.sort_by_key(|(seq, _)| *seq);
                let mut result = Ok(());
                for (seq, frame) in held {
                    if seq > high {
                        high = seq;
                        result = sink.feed(text(&frame)).await;
                        if result.is_err() {
                            break;
                        }
                    }
                }
                cursor.high_water = Some(high);
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
