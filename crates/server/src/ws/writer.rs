//! The writer task of one connection: the only owner of the socket's sink.
//!
//! Room messages reach a connection two ways: live (published as they are
//! stored) and replayed (catch-up). The writer merges them so that each
//! room's messages reach the client at most once on this connection:
//! - before the first `sync`, live room messages are dropped (they are in
//!   storage, and the sync fetches them);
//! - while a room is being caught up, its live messages are held back, then
//!   released in seq order after the replay;
//! - a message the client already has (at or below its sync position, or
//!   delivered before on this connection, live or replayed) is dropped —
//!   also when a later `sync` asks for it again.
//!
//! On one node a room's live messages arrive in seq order. With several
//! nodes, messages of one room stored through different nodes can arrive
//! out of order; a late lower seq is still delivered once (not mistaken for
//! a duplicate), which is why the writer remembers ranges of seqs rather
//! than only the highest.
//!
//! Closing: the connection's task sends the close code on `close`. The
//! writer stops at once (whatever is still queued is dropped), sends the
//! close frame after what it already handed to the socket, and returns.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures::SinkExt;
use futures::stream::SplitSink;
use iyagi_bus::{Outbound, OutboundReceiver, RoomFrame, SyncEnd, frame_cost};
use iyagi_protocol::ws::close;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::delivered::Delivered;

type Sink = SplitSink<WebSocket, Message>;

#[derive(Default)]
struct RoomCursor {
    delivered: Delivered,
    /// Live messages held back while the room is being caught up.
    held: Option<Vec<Arc<RoomFrame>>>,
}

struct Writer {
    queue: OutboundReceiver,
    /// False until the first `sync`.
    live: bool,
    rooms: HashMap<Uuid, RoomCursor>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Held frames still count against the queue's byte budget.
        for cursor in self.rooms.values_mut() {
            for room in cursor.held.take().into_iter().flatten() {
                self.queue.release(frame_cost(room.frame.len()));
            }
        }
    }
}

/// What became of an item's bytes.
enum Kept {
    /// Written or dropped: released.
    Done,
    /// Held back during a catch-up: still counted until released.
    Held,
}

enum Step {
    Close(Option<u16>),
    /// `Ok(false)`: the queue closed.
    Wrote(Result<bool, axum::Error>),
}

pub async fn run(
    mut sink: Sink,
    queue: OutboundReceiver,
    mut close: oneshot::Receiver<Option<u16>>,
) {
    let mut writer = Writer {
        queue,
        live: false,
        rooms: HashMap::new(),
    };
    loop {
        let step = tokio::select! {
            biased;
            code = &mut close => Step::Close(code.unwrap_or(None)),
            wrote = writer.next(&mut sink) => Step::Wrote(wrote),
        };
        match step {
            Step::Wrote(Ok(true)) => continue,
            // The queue closed, or the peer is gone (the reader notices
            // too and tears down).
            Step::Wrote(Ok(false) | Err(_)) => return,
            Step::Close(code) => {
                writer.queue.close_and_drain();
                if let Some(code) = code {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: close::reason(code).into(),
                        })))
                        .await;
                }
                return;
            }
        }
    }
}

impl Writer {
    /// Takes the next item and hands what it says to the socket.
    async fn next(&mut self, sink: &mut Sink) -> Result<bool, axum::Error> {
        let Some(item) = self.queue.recv().await else {
            return Ok(false);
        };
        let cost = item.cost();
        let result = self.write(sink, item).await;
        if !matches!(result, Ok(Kept::Held)) {
            self.queue.release(cost);
        }
        // Frames are fed into the socket's write buffer and flushed once
        // the queue is empty: a burst (acks and deliveries arriving
        // together) goes out in one write instead of one syscall per frame.
        match result {
            Ok(_) if self.queue.is_empty() => sink.flush().await.map(|()| true),
            other => other.map(|_| true),
        }
    }

    async fn write(&mut self, sink: &mut Sink, item: Outbound) -> Result<Kept, axum::Error> {
        let done = |result: Result<(), axum::Error>| result.map(|()| Kept::Done);
        match item {
            Outbound::Frame(frame) => done(sink.feed(text(&frame)).await),
            Outbound::Room(room) => {
                if !self.live {
                    return Ok(Kept::Done);
                }
                let cursor = self.rooms.entry(room.room_id).or_default();
                if let Some(held) = &mut cursor.held {
                    held.push(room);
                    return Ok(Kept::Held);
                }
                if !cursor.delivered.insert(room.seq) {
                    return Ok(Kept::Done);
                }
                done(sink.feed(text(&room.frame)).await)
            }
            Outbound::SyncBegin(syncing) => {
                self.live = true;
                for room in *syncing {
                    self.rooms
                        .entry(room)
                        .or_default()
                        .held
                        .get_or_insert_with(Vec::new);
                }
                Ok(Kept::Done)
            }
            Outbound::Replay(replayed) => {
                let cursor = self.rooms.entry(replayed.room_id).or_default();
                if !cursor.delivered.insert(replayed.seq) {
                    return Ok(Kept::Done);
                }
                done(sink.feed(text(&replayed.frame)).await)
            }
            Outbound::SyncEnd(end) => {
                let SyncEnd {
                    room_id,
                    seen_up_to,
                } = *end;
                let cursor = self.rooms.entry(room_id).or_default();
                cursor.delivered.insert_up_to(seen_up_to);
                let mut held = cursor.held.take().unwrap_or_default();
                held.sort_by_key(|room| room.seq);
                let mut result = Ok(());
                for room in held {
                    if result.is_ok() && cursor.delivered.insert(room.seq) {
                        result = sink.feed(text(&room.frame)).await;
                    }
                    self.queue.release(frame_cost(room.frame.len()));
                }
                done(result)
            }
            Outbound::Ping => done(sink.feed(Message::Ping(Default::default())).await),
        }
    }
}

/// The shared frame bytes become the message without a copy.
fn text(frame: &Bytes) -> Message {
    Message::Text(Utf8Bytes::try_from(frame.clone()).unwrap_or_default())
}
