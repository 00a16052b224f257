//! What every area of the chat rules goes through: the room locks, the
//! membership checks, the room's cached member list, system messages, and
//! publishing stored messages to the members' connections.
//!
//! On one node every connection sees a room's messages in seq order:
//! appends are published by the store's writer in commit order (see
//! `MessageStore::queue_append`), and membership changes, which commit in
//! their own transaction, hold the room's lock and first let every queued
//! append settle, so nothing of the room commits around them. Appends hold
//! the lock only while they queue. Rooms share a fixed set of locks
//! (striping) so the set never needs cleaning.

use std::sync::Arc;

use iyagi_bus::{Bus, Delivery};
use iyagi_protocol::chat::MessageKind;
use iyagi_protocol::ws::ServerFrame;
use iyagi_store::{
    Appended, MemberRecord, MessageRecord, NewMessage, OnCommit, ReadEffect, RoomKind, RoomRecord,
};
use uuid::Uuid;

use crate::service::{ChatService, SERVER_DEVICE, now_ms};
use crate::{ChatError, views};

impl ChatService {
    /// `Ok` when `user` is a member of `room`; `NotAMember` otherwise (also
    /// for a room that does not exist).
    pub async fn check_member(&self, user: Uuid, room: Uuid) -> Result<(), ChatError> {
        self.require_member(user, room).await.map(|_| ())
    }

    pub(crate) fn room_lock(&self, room: Uuid) -> &tokio::sync::Mutex<()> {
        &self.room_locks[(room.as_u128() % self.room_locks.len() as u128) as usize]
    }

    /// The caller's membership, or `NotAMember` (also for unknown rooms).
    pub(crate) async fn require_member(
        &self,
        user: Uuid,
        room: Uuid,
    ) -> Result<MemberRecord, ChatError> {
        self.store
            .member(room, user)
            .await?
            .ok_or(ChatError::NotAMember)
    }

    /// The caller's membership of a group room (direct rooms never change members).
    pub(crate) async fn require_group_member(
        &self,
        me: Uuid,
        room: Uuid,
    ) -> Result<MemberRecord, ChatError> {
        let member = self.require_member(me, room).await?;
        if self.require_room(room).await?.kind == RoomKind::Direct {
            return Err(ChatError::Validation(
                "direct rooms cannot change members".to_owned(),
            ));
        }
        Ok(member)
    }

    pub(crate) async fn require_room(&self, room: Uuid) -> Result<RoomRecord, ChatError> {
        self.store.room(room).await?.ok_or(ChatError::NotAMember)
    }

    pub(crate) fn system_message(
        &self,
        room: Uuid,
        author: Uuid,
        kind: MessageKind,
        content: serde_json::Value,
    ) -> NewMessage {
        NewMessage {
            id: Uuid::now_v7(),
            room_id: room,
            author_id: author,
            device_id: SERVER_DEVICE.to_owned(),
            client_msg_id: Uuid::now_v7().to_string(),
            kind: kind.as_str().to_owned(),
            content: content.to_string(),
            created_at_ms: now_ms(),
            is_content: false,
            bumps_activity: true,
            read_effect: ReadEffect::None,
        }
    }

    /// Publishes a stored message to every connection of `members`.
    pub(crate) fn publish(&self, members: &[Uuid], record: &MessageRecord) {
        publish_to(self.bus.as_ref(), members, record);
    }

    /// The store hook that publishes a newly stored message (not a
    /// duplicate) to `members` on the writer, in commit order.
    pub(crate) fn publish_on_commit(&self, members: Arc<Vec<Uuid>>) -> OnCommit {
        let bus = self.bus.clone();
        Box::new(move |appended: &Appended| {
            if !appended.duplicate {
                publish_to(bus.as_ref(), &members, &appended.message);
            }
        })
    }

    /// Stores a marker message (read, reaction) and publishes it to the
    /// room's members in seq order.
    pub(crate) async fn append_for_members(
        &self,
        message: NewMessage,
    ) -> Result<Appended, ChatError> {
        let pending = {
            let _guard = self.room_lock(message.room_id).lock().await;
            let members = self.cached_members(message.room_id).await?;
            let hook = self.publish_on_commit(members);
            self.store.queue_append(message, Some(hook)).await?
        };
        Ok(pending.committed().await?)
    }

    /// Holds the room's lock and waits until every queued append has
    /// committed and been published, so a transaction that stores a
    /// message of its own (membership changes) is published in seq order.
    pub(crate) async fn lock_room_settled(
        &self,
        room: Uuid,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, ChatError> {
        let guard = self.room_lock(room).lock().await;
        self.store.settle_appends().await?;
        Ok(guard)
    }

    /// The room's member ids, from the cache or the store.
    pub(crate) async fn cached_members(&self, room: Uuid) -> Result<Arc<Vec<Uuid>>, ChatError> {
        if let Some(members) = self.members_cache.get(room) {
            return Ok(members);
        }
        let fetched = std::time::Instant::now();
        let members: Arc<Vec<Uuid>> = Arc::new(
            self.store
                .members(room)
                .await?
                .into_iter()
                .map(|m| m.user_id)
                .collect(),
        );
        self.members_cache.put(room, members.clone(), fetched);
        Ok(members)
    }

    pub(crate) fn forget_members(&self, room: Uuid) {
        self.members_cache.forget(room);
        self.bus.room_changed(room);
    }
}

/// Encodes `record` once and queues it for every connection of `members`.
pub(crate) fn publish_to(bus: &dyn Bus, members: &[Uuid], record: &MessageRecord) {
    let frame = encode(&ServerFrame::Message {
        message: views::message(record),
    });
    bus.deliver(
        members,
        Delivery::Room {
            room_id: record.room_id,
            seq: record.seq,
            frame,
        },
    );
}

/// Encodes a server frame (once, for however many recipients).
pub(crate) fn encode(frame: &ServerFrame) -> bytes::Bytes {
    // Serialising our own enum of strings, numbers and JSON values cannot fail.
    serde_json::to_string(frame).unwrap_or_default().into()
}
