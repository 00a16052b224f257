//! What the two batch writers (`sqlite_writer`, `pg_writer`) share: a
//! batch is sequenced in memory, with the semantics of `append_in_tx`
//! applied message by message, and its counters and read positions are
//! written back once.

use std::collections::HashMap;

use uuid::Uuid;

use crate::NewMessage;

/// A room's counters as a batch sees them: read once from `chat_rooms`,
/// advanced in memory per appended message, written back once.
pub(crate) struct RoomCounters {
    pub(crate) last_seq: i64,
    pub(crate) content_count: i64,
    pub(crate) last_content_seq: i64,
    pub(crate) last_activity_ms: i64,
    /// Whether the batch appended to the room (it needs writing back).
    pub(crate) changed: bool,
}

impl RoomCounters {
    pub(crate) fn new(
        last_seq: i64,
        content_count: i64,
        last_content_seq: i64,
        last_activity_ms: i64,
    ) -> RoomCounters {
        RoomCounters {
            last_seq,
            content_count,
            last_content_seq,
            last_activity_ms,
            changed: false,
        }
    }

    /// The seq and content ordinal `m` gets if it is stored next.
    pub(crate) fn next(&self, m: &NewMessage) -> (i64, i64) {
        (
            self.last_seq + 1,
            self.content_count + i64::from(m.is_content),
        )
    }

    /// Records that `m` was stored at `next(m)`.
    pub(crate) fn advance(&mut self, m: &NewMessage) {
        let (seq, content_ordinal) = self.next(m);
        self.last_seq = seq;
        self.content_count = content_ordinal;
        if m.is_content {
            self.last_content_seq = seq;
        }
        if m.bumps_activity {
            self.last_activity_ms = m.created_at_ms;
        }
        self.changed = true;
    }
}

/// The highest read position each (room, member) reached in a batch.
/// Writing only that one is the same as writing each in turn, because a
/// read position only moves forward (`read_seq <` guard).
#[derive(Default)]
pub(crate) struct ReadPositions(HashMap<(Uuid, Uuid), (i64, i64)>);

impl ReadPositions {
    pub(crate) fn note(&mut self, room_id: Uuid, user_id: Uuid, position: (i64, i64)) {
        let highest = self.0.entry((room_id, user_id)).or_insert(position);
        if position.0 > highest.0 {
            *highest = position;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// ((room, user), (read_seq, read_count)) pairs.
    pub(crate) fn into_positions(self) -> impl Iterator<Item = ((Uuid, Uuid), (i64, i64))> {
        self.0.into_iter()
    }
}
