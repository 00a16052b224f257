//! Catch-up: what a reconnecting device gets for each room it names in
//! `sync` — a replay of what it missed, or `reload` when that is more than
//! `ChatLimits::max_replay` — and the state of all its rooms.

use iyagi_protocol::chat::{MessageView, PAGE_MAX};
use iyagi_protocol::ws::{RoomState, SyncPosition};
use uuid::Uuid;

use crate::service::ChatService;
use crate::unread::unread;
use crate::{ChatError, views};

/// Messages read per storage round trip during a replay.
pub const REPLAY_PAGE: u32 = 200;

/// What one room of a `sync` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// More is missing than `max_replay`: the client pages back with
    /// `history` from `latest_seq` instead.
    Reload { latest_seq: i64 },
    /// Replay the room's messages from the position up to `latest_seq`.
    Replay(ReplayPlan),
}

/// A replay the caller may run: made only by [`ChatService::catch_up`],
/// after the membership check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPlan {
    room_id: Uuid,
    from_seq: i64,
    latest_seq: i64,
}

impl ReplayPlan {
    pub fn room_id(&self) -> Uuid {
        self.room_id
    }

    /// Where the replay starts: the client's position, or the room's end
    /// when the position is beyond it (nothing to replay then).
    pub fn from_seq(&self) -> i64 {
        self.from_seq
    }

    /// The room's latest seq when the plan was made.
    pub fn latest_seq(&self) -> i64 {
        self.latest_seq
    }
}

impl ChatService {
    /// Decides what a room of a `sync` gets. Reads the room's latest seq
    /// (and checks membership): a message committed after this read is not
    /// in the plan, so the caller must hold the room's live messages back
    /// *before* calling this (see the gateway's writer).
    pub async fn catch_up(&self, me: Uuid, position: SyncPosition) -> Result<CatchUp, ChatError> {
        if position.after_seq < 0 {
            return Err(ChatError::Validation(
                "after_seq must be 0 or more".to_owned(),
            ));
        }
        let latest = self.latest_seq(me, position.room_id).await?;
        if latest - position.after_seq > self.limits.max_replay {
            return Ok(CatchUp::Reload { latest_seq: latest });
        }
        Ok(CatchUp::Replay(ReplayPlan {
            room_id: position.room_id,
            from_seq: position.after_seq.min(latest),
            latest_seq: latest,
        }))
    }

    /// The next page of a replay: messages with `seq > after_seq`,
    /// ascending, at most [`REPLAY_PAGE`]. Empty once past the room's end.
    pub async fn replay_page(
        &self,
        plan: &ReplayPlan,
        after_seq: i64,
    ) -> Result<Vec<MessageView>, ChatError> {
        let rows = self
            .store
            .messages_after(plan.room_id, after_seq, REPLAY_PAGE)
            .await?;
        Ok(rows.iter().map(views::message).collect())
    }

    /// Every room of the user with its latest seq and unread count.
    pub async fn room_states(&self, me: Uuid) -> Result<Vec<RoomState>, ChatError> {
        let mut states = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.rooms_for_user(me, cursor, PAGE_MAX).await?;
            let done = page.len() < PAGE_MAX as usize;
            cursor = page.last().map(|e| (e.room.last_activity_ms, e.room.id));
            states.extend(page.iter().map(|e| RoomState {
                room_id: e.room.id,
                latest_seq: e.room.last_seq,
                unread: unread(e.room.content_count, e.read_count),
            }));
            if done {
                return Ok(states);
            }
        }
    }

    /// The room's latest seq, checking membership.
    async fn latest_seq(&self, me: Uuid, room: Uuid) -> Result<i64, ChatError> {
        self.require_member(me, room).await?;
        Ok(self.require_room(room).await?.last_seq)
    }
}
