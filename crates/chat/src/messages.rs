//! Messages: sends (pipelined: queued, then committed), read markers,
//! reactions, typing, history pages, and the push decision of each stored
//! message.

use iyagi_bus::Delivery;
use iyagi_protocol::chat::{MessageKind, MessagePage};
use iyagi_protocol::ws::ServerFrame;
use iyagi_store::{Appended, NewMessage, OnCommit, ReadEffect};
use serde_json::json;
use uuid::Uuid;

use crate::gate::encode;
use crate::service::{ChatService, PendingSend, ReadOutcome, Sent, now_ms};
use crate::unread::unread;
use crate::{ChatError, validate, views};

impl ChatService {
    /// Stores a client message and delivers it; a retry returns the original.
    pub async fn send(
        &self,
        me: Uuid,
        device: &str,
        room: Uuid,
        client_msg_id: &str,
        kind: MessageKind,
        content: &serde_json::Value,
    ) -> Result<Sent, ChatError> {
        let pending = self
            .queue_send(me, device, room, client_msg_id, kind, content)
            .await?;
        self.finish_send(pending).await
    }

    /// The first half of [`send`](Self::send): checks the message and the
    /// sender's membership, and queues the message for storage. Returns as
    /// soon as it is queued, so a connection can queue its next send while
    /// this one commits; sends queued one after the other in a room get
    /// increasing seqs.
    pub async fn queue_send(
        &self,
        me: Uuid,
        device: &str,
        room: Uuid,
        client_msg_id: &str,
        kind: MessageKind,
        content: &serde_json::Value,
    ) -> Result<PendingSend, ChatError> {
        validate::client_msg_id(client_msg_id)?;
        // Media messages' content is written from the upload, once the
        // sender is known to be a member (below).
        let media = matches!(kind, MessageKind::Image | MessageKind::Voice);
        let (content, media_id) = if media {
            (String::new(), Some(validate::media_id(content)?))
        } else {
            (validate::content(kind, content)?, None)
        };
        let _guard = self.room_lock(room).lock().await;
        // The (cached) member list answers "may I send?" and "to whom?".
        let mut members = self.cached_members(room).await?;
        if !members.contains(&me) {
            // Maybe added on another node a moment ago: ask the store.
            self.members_cache.forget(room);
            members = self.cached_members(room).await?;
            if !members.contains(&me) {
                return Err(ChatError::NotAMember);
            }
        }
        let content = match media_id {
            Some(media_id) => {
                self.media_content(me, device, room, client_msg_id, kind, media_id)
                    .await?
            }
            None => content,
        };
        let message = NewMessage {
            id: Uuid::now_v7(),
            room_id: room,
            author_id: me,
            device_id: device.to_owned(),
            client_msg_id: client_msg_id.to_owned(),
            kind: kind.as_str().to_owned(),
            content,
            created_at_ms: now_ms(),
            is_content: true,
            bumps_activity: true,
            // Writing in a room means having read it.
            read_effect: ReadEffect::UpToSelf,
        };
        let publish = self.publish_on_commit(members.clone());
        let push_queue = self.push_queue.clone();
        let hook: OnCommit = Box::new(move |appended: &Appended| {
            publish(appended);
            if !appended.duplicate {
                // Its own task: the push decision neither delays the ack nor
                // depends on the sender staying connected.
                push_queue.submit(members, appended.message.clone());
            }
        });
        let stored = self.store.queue_append(message, Some(hook)).await?;
        Ok(PendingSend { stored })
    }

    /// The second half of [`send`](Self::send): waits for the commit. The
    /// message has been published by then, and its push decision started.
    pub async fn finish_send(&self, pending: PendingSend) -> Result<Sent, ChatError> {
        Ok(Sent::from(pending.stored.committed().await?))
    }

    /// Writes a read marker up to `seq` (a no-op when already read further).
    pub async fn read(
        &self,
        me: Uuid,
        device: &str,
        room: Uuid,
        seq: i64,
    ) -> Result<ReadOutcome, ChatError> {
        let member = self.require_member(me, room).await?;
        let record = self.require_room(room).await?;
        if seq < 1 || seq > record.last_seq {
            return Err(ChatError::Validation(format!(
                "seq must be between 1 and {}",
                record.last_seq
            )));
        }
        if seq <= member.read_seq {
            return Ok(ReadOutcome {
                room_id: room,
                read_seq: member.read_seq,
                unread: unread(record.content_count, member.read_count),
            });
        }
        let marker = NewMessage {
            is_content: false,
            bumps_activity: false,
            read_effect: ReadEffect::UpTo(seq),
            device_id: device.to_owned(),
            ..self.system_message(room, me, MessageKind::Read, json!({"up_to_seq": seq}))
        };
        self.append_for_members(marker).await?;
        let member = self.require_member(me, room).await?;
        let record = self.require_room(room).await?;
        Ok(ReadOutcome {
            room_id: room,
            read_seq: member.read_seq,
            unread: unread(record.content_count, member.read_count),
        })
    }

    /// Adds or removes a reaction on the content message at `seq`.
    #[allow(clippy::too_many_arguments)]
    pub async fn react(
        &self,
        me: Uuid,
        device: &str,
        room: Uuid,
        seq: i64,
        emoji: &str,
        remove: bool,
        client_msg_id: Option<&str>,
    ) -> Result<Sent, ChatError> {
        validate::emoji(emoji)?;
        if let Some(id) = client_msg_id {
            validate::client_msg_id(id)?;
        }
        self.require_member(me, room).await?;
        let target = self.store.message_at(room, seq).await?;
        if !target.is_some_and(|m| MessageKind::parse(&m.kind).is_some_and(MessageKind::is_content))
        {
            return Err(ChatError::NotFound("no message with that seq to react to"));
        }
        let action = if remove { "remove" } else { "add" };
        let mut message = NewMessage {
            is_content: false,
            bumps_activity: false,
            device_id: device.to_owned(),
            ..self.system_message(
                room,
                me,
                MessageKind::Reaction,
                json!({"target_seq": seq, "emoji": emoji, "action": action}),
            )
        };
        if let Some(id) = client_msg_id {
            message.client_msg_id = id.to_owned();
        }
        Ok(Sent::from(self.append_for_members(message).await?))
    }

    /// Tells the other members' connections that `me` is typing. Not stored.
    pub async fn typing(&self, me: Uuid, room: Uuid) -> Result<(), ChatError> {
        self.require_member(me, room).await?;
        let others: Vec<Uuid> = self
            .cached_members(room)
            .await?
            .iter()
            .copied()
            .filter(|u| *u != me)
            .collect();
        let frame = encode(&ServerFrame::Typing {
            room_id: room,
            user_id: me,
        });
        self.bus.deliver(&others, Delivery::Frame(frame));
        Ok(())
    }

    /// A page of history: after `after_seq` (the oldest page above it, and
    /// below `before_seq` when both are given) or, by default, before
    /// `before_seq` (the newest page below it).
    pub async fn history(
        &self,
        me: Uuid,
        room: Uuid,
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: Option<i64>,
    ) -> Result<MessagePage, ChatError> {
        let limit = validate::page_limit(limit)?;
        self.require_member(me, room).await?;
        let (mut messages, has_more) = match (before_seq, after_seq) {
            // Ascending from `after`, and with `before` too, only below it
            // (a range).
            (before, Some(after)) => {
                let mut rows = self.store.messages_after(room, after, limit + 1).await?;
                if let Some(before) = before {
                    rows.retain(|m| m.seq < before);
                }
                let more = rows.len() > limit as usize;
                rows.truncate(limit as usize);
                (rows, more)
            }
            (before, None) => {
                let mut rows = self
                    .store
                    .messages_before(room, before.unwrap_or(i64::MAX), limit + 1)
                    .await?;
                let more = rows.len() > limit as usize;
                if more {
                    rows.remove(0);
                }
                (rows, more)
            }
        };
        Ok(MessagePage {
            messages: messages.drain(..).map(|m| views::message(&m)).collect(),
            has_more,
        })
    }
}
