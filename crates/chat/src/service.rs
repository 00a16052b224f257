//! [`ChatService`]: the rules of rooms and messages.
//!
//! Membership rules (documented in docs/protocol.md):
//! - Direct rooms have exactly their two members, forever.
//! - In a group, any member may add members; only the owner may remove
//!   others; anyone may leave. When the owner leaves, the longest-standing
//!   remaining member becomes owner.

use std::sync::Arc;

use iyagi_protocol::chat::{
    GROUP_MAX_MEMBERS, MemberPresence, MessageKind, MessagePage, PAGE_MAX, RoomDetail, RoomList,
    RoomPresence, UserRef,
};
use iyagi_protocol::ws::{RoomState, ServerFrame};
use iyagi_session::SessionStore;
use iyagi_store::{
    Appended, MemberRecord, MembershipChange, MessageRecord, NewMessage, NewRoom, OnCommit,
    PendingAppend, ReadEffect, RoomListEntry, RoomRecord, Storage, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use crate::members_cache::MembersCache;
use crate::push::{PushNotification, PushNotifier, to_notify};
use crate::{ChatError, validate, views};
use iyagi_bus::{Bus, Delivery, Hub};

/// On one node every connection sees a room's messages in seq order:
/// appends are published by the store's writer in commit order (see
/// `MessageStore::queue_append`), and membership changes, which commit in
/// their own transaction, hold the room's lock and first let every queued
/// append settle, so nothing of the room commits around them. Appends hold
/// the lock only while they queue. Rooms share a fixed set of locks
/// (striping) so the set never needs cleaning.
const ROOM_LOCK_STRIPES: usize = 1024;
const SERVER_DEVICE: &str = "server";

#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Catch-up replays at most this many messages per room; more gets `reload`.
    pub max_replay: i64,
    /// Presence changes are pushed to direct peers and to members of groups
    /// of at most this many members; larger groups ask (`presence` frame).
    pub presence_max_group_members: u32,
    /// A room's cached member list is read again after this long, so an
    /// invalidation lost on the bus leaves it stale for no longer.
    pub members_cache_ttl: std::time::Duration,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_replay: 1000,
            presence_max_group_members: 100,
            members_cache_ttl: std::time::Duration::from_secs(10),
        }
    }
}

/// The result of a read marker.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub room_id: Uuid,
    pub read_seq: i64,
    pub unread: i64,
    /// The stored marker; `None` when the position did not move.
    pub marker: Option<MessageRecord>,
}

/// The result of a membership change.
#[derive(Debug, Clone)]
pub struct Membership {
    /// The system message, or `None` when nothing changed.
    pub message: Option<MessageRecord>,
}

pub struct ChatService {
    store: Arc<dyn Storage>,
    sessions: Arc<dyn SessionStore>,
    bus: Arc<dyn Bus>,
    push: Arc<dyn PushNotifier>,
    limits: ChatLimits,
    /// For the tasks commit hooks start (a store may run hooks outside the
    /// runtime's context).
    runtime: tokio::runtime::Handle,
    room_locks: Vec<tokio::sync::Mutex<()>>,
    /// Member ids per room (see [`MembersCache`] for what keeps it fresh).
    members_cache: Arc<MembersCache>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn encode(frame: &ServerFrame) -> bytes::Bytes {
    // Serialising our own enum of strings, numbers and JSON values cannot fail.
    serde_json::to_string(frame).unwrap_or_default().into()
}

impl ChatService {
    pub fn new(
        store: Arc<dyn Storage>,
        sessions: Arc<dyn SessionStore>,
        bus: Arc<dyn Bus>,
        push: Arc<dyn PushNotifier>,
        limits: ChatLimits,
    ) -> ChatService {
        let room_locks = (0..ROOM_LOCK_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        let members_cache = MembersCache::new(bus.as_ref(), limits.members_cache_ttl);
        ChatService {
            store,
            sessions,
            bus,
            push,
            limits,
            runtime: tokio::runtime::Handle::current(),
            room_locks,
            members_cache,
        }
    }

    pub fn limits(&self) -> ChatLimits {
        self.limits
    }

    /// This node's connections.
    pub fn hub(&self) -> &Arc<Hub> {
        self.bus.hub()
    }

    /// Delivery to every node.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }

    fn room_lock(&self, room: Uuid) -> &tokio::sync::Mutex<()> {
        &self.room_locks[(room.as_u128() % ROOM_LOCK_STRIPES as u128) as usize]
    }

    /// The caller's membership, or `NotAMember` (also for unknown rooms).
    pub async fn require_member(&self, user: Uuid, room: Uuid) -> Result<MemberRecord, ChatError> {
        self.store
            .member(room, user)
            .await?
            .ok_or(ChatError::NotAMember)
    }

    /// The caller's membership of a group room (direct rooms never change members).
    async fn require_group_member(&self, me: Uuid, room: Uuid) -> Result<MemberRecord, ChatError> {
        let member = self.require_member(me, room).await?;
        if self.require_room(room).await?.kind == "direct" {
            return Err(ChatError::Validation(
                "direct rooms cannot change members".to_owned(),
            ));
        }
        Ok(member)
    }

    async fn require_room(&self, room: Uuid) -> Result<RoomRecord, ChatError> {
        self.store.room(room).await?.ok_or(ChatError::NotAMember)
    }

    fn system_message(
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
    fn publish(&self, members: &[Uuid], record: &MessageRecord) {
        publish_to(self.bus.as_ref(), members, record);
    }

    /// The store hook that publishes a newly stored message (not a
    /// duplicate) to `members` on the writer, in commit order.
    fn publish_on_commit(&self, members: Arc<Vec<Uuid>>) -> OnCommit {
        let bus = self.bus.clone();
        Box::new(move |appended: &Appended| {
            if !appended.duplicate {
                publish_to(bus.as_ref(), &members, &appended.message);
            }
        })
    }

    /// Stores a marker message (read, reaction) and publishes it to the
    /// room's members in seq order.
    async fn append_for_members(&self, message: NewMessage) -> Result<Appended, ChatError> {
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
    async fn lock_room_settled(
        &self,
        room: Uuid,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, ChatError> {
        let guard = self.room_lock(room).lock().await;
        self.store.settle_appends().await?;
        Ok(guard)
    }

    /// The room's member ids, from the cache or the store.
    async fn cached_members(&self, room: Uuid) -> Result<Arc<Vec<Uuid>>, ChatError> {
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

    fn forget_members(&self, room: Uuid) {
        self.members_cache.forget(room);
        self.bus.room_changed(room);
    }

    // ----- rooms -----

    /// The direct room of the caller and `other`, created on first request.
    pub async fn open_direct(&self, me: Uuid, other: Uuid) -> Result<RoomDetail, ChatError> {
        if me == other {
            return Err(ChatError::Validation(
                "a direct room needs another user".to_owned(),
            ));
        }
        if self.store.user_by_id(other).await?.is_none() {
            return Err(ChatError::NotFound("no such user"));
        }
        let (a, b) = if me < other { (me, other) } else { (other, me) };
        let id = Uuid::now_v7();
        let created = self
            .store
            .create_room(&NewRoom {
                id,
                kind: "direct".to_owned(),
                title: None,
                direct_key: Some(format!("{a}:{b}")),
                created_at_ms: now_ms(),
                members: vec![(a, "member".to_owned()), (b, "member".to_owned())],
                first_message: self.system_message(
                    id,
                    me,
                    MessageKind::RoomCreated,
                    json!({"members": [a, b]}),
                ),
            })
            .await?;
        if created.created {
            self.publish_first_message(created.room.id, &[a, b]).await?;
        }
        self.room_detail(me, created.room.id).await
    }

    pub async fn create_group(
        &self,
        me: Uuid,
        title: &str,
        members: &[Uuid],
    ) -> Result<RoomDetail, ChatError> {
        let title = validate::title(title)?;
        let mut others: Vec<Uuid> = members.iter().copied().filter(|m| *m != me).collect();
        others.sort();
        others.dedup();
        if others.len() + 1 > GROUP_MAX_MEMBERS {
            return Err(ChatError::Validation(format!(
                "a group has at most {GROUP_MAX_MEMBERS} members"
            )));
        }
        for user in &others {
            if self.store.user_by_id(*user).await?.is_none() {
                return Err(ChatError::NotFound("no such user"));
            }
        }
        let id = Uuid::now_v7();
        let mut initial = vec![(me, "owner".to_owned())];
        initial.extend(others.iter().map(|u| (*u, "member".to_owned())));
        let all: Vec<Uuid> = initial.iter().map(|(u, _)| *u).collect();
        self.store
            .create_room(&NewRoom {
                id,
                kind: "group".to_owned(),
                title: Some(title.clone()),
                direct_key: None,
                created_at_ms: now_ms(),
                members: initial,
                first_message: self.system_message(
                    id,
                    me,
                    MessageKind::RoomCreated,
                    json!({"title": title, "members": all}),
                ),
            })
            .await?;
        self.publish_first_message(id, &all).await?;
        self.room_detail(me, id).await
    }

    async fn publish_first_message(&self, room: Uuid, members: &[Uuid]) -> Result<(), ChatError> {
        if let Some(first) = self.store.message_at(room, 1).await? {
            self.publish(members, &first);
        }
        Ok(())
    }

    pub async fn add_member(
        &self,
        me: Uuid,
        room: Uuid,
        user: Uuid,
    ) -> Result<Membership, ChatError> {
        self.require_group_member(me, room).await?;
        if self.store.user_by_id(user).await?.is_none() {
            return Err(ChatError::NotFound("no such user"));
        }
        let _guard = self.lock_room_settled(room).await?;
        let message = self
            .store
            .change_membership(&MembershipChange {
                room_id: room,
                user_id: user,
                add_as: Some("member".to_owned()),
                max_members: Some(GROUP_MAX_MEMBERS as u32),
                promote: None,
                message: self.system_message(
                    room,
                    me,
                    MessageKind::MemberJoined,
                    json!({"user_id": user, "by": me}),
                ),
            })
            .await
            .map_err(|e| match e {
                StoreError::LimitReached => ChatError::Validation(format!(
                    "a group has at most {GROUP_MAX_MEMBERS} members"
                )),
                other => other.into(),
            })?;
        if let Some(message) = &message {
            self.forget_members(room);
            let members = self.cached_members(room).await?;
            self.publish(&members, message);
        }
        Ok(Membership { message })
    }

    pub async fn remove_member(
        &self,
        me: Uuid,
        room: Uuid,
        user: Uuid,
    ) -> Result<Membership, ChatError> {
        let my_membership = self.require_group_member(me, room).await?;
        if user != me && my_membership.role != "owner" {
            return Err(ChatError::Forbidden(
                "only the room's owner may remove other members",
            ));
        }
        let members = self.store.members(room).await?;
        let Some(target) = members.iter().find(|m| m.user_id == user) else {
            return Err(ChatError::NotFound("no such member"));
        };
        // Members come oldest first: the heir is the first one who stays.
        let promote = (target.role == "owner")
            .then(|| {
                members
                    .iter()
                    .find(|m| m.user_id != user)
                    .map(|m| m.user_id)
            })
            .flatten();
        let _guard = self.lock_room_settled(room).await?;
        let message = self
            .store
            .change_membership(&MembershipChange {
                room_id: room,
                user_id: user,
                add_as: None,
                max_members: None,
                promote,
                message: self.system_message(
                    room,
                    me,
                    MessageKind::MemberLeft,
                    json!({"user_id": user, "by": me}),
                ),
            })
            .await?;
        if let Some(message) = &message {
            self.forget_members(room);
            // The removed member learns of it too.
            let recipients: Vec<Uuid> = members.iter().map(|m| m.user_id).collect();
            self.publish(&recipients, message);
        }
        Ok(Membership { message })
    }

    pub async fn room_list(
        &self,
        me: Uuid,
        cursor: Option<(i64, Uuid)>,
        limit: Option<i64>,
    ) -> Result<RoomList, ChatError> {
        let limit = validate::page_limit(limit)?;
        let entries = self.store.rooms_for_user(me, cursor, limit + 1).await?;
        let has_more = entries.len() > limit as usize;
        let page: Vec<&RoomListEntry> = entries.iter().take(limit as usize).collect();
        let next_cursor = has_more
            .then(|| {
                page.last()
                    .map(|e| format!("{}.{}", e.room.last_activity_ms, e.room.id))
            })
            .flatten();
        Ok(RoomList {
            rooms: page.into_iter().map(views::room).collect(),
            next_cursor,
        })
    }

    pub async fn room_detail(&self, me: Uuid, room: Uuid) -> Result<RoomDetail, ChatError> {
        let mine = self.require_member(me, room).await?;
        let record = self.require_room(room).await?;
        let named = self.store.named_members(room).await?;
        let last_message = match record.last_content_seq {
            0 => None,
            seq => self.store.message_at(room, seq).await?,
        };
        let peer = (record.kind == "direct")
            .then(|| named.iter().find(|m| m.member.user_id != me))
            .flatten()
            .map(|m| (m.member.user_id, m.username.clone()));
        let entry = RoomListEntry {
            room: record,
            role: mine.role,
            read_seq: mine.read_seq,
            read_count: mine.read_count,
            peer,
            last_message,
        };
        Ok(RoomDetail {
            room: views::room(&entry),
            members: named.iter().map(views::member).collect(),
        })
    }

    // ----- messages -----

    /// Stores a client message and delivers it; a retry returns the original.
    pub async fn send(
        &self,
        me: Uuid,
        device: &str,
        room: Uuid,
        client_msg_id: &str,
        kind: MessageKind,
        content: &serde_json::Value,
    ) -> Result<Appended, ChatError> {
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
        let content = validate::content(kind, content)?;
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
        let sessions = self.sessions.clone();
        let push = self.push.clone();
        let runtime = self.runtime.clone();
        let hook: OnCommit = Box::new(move |appended: &Appended| {
            publish(appended);
            if !appended.duplicate {
                // Its own task: the push decision neither delays the ack nor
                // depends on the sender staying connected.
                let message = appended.message.clone();
                runtime.spawn(async move {
                    notify_absent_members(sessions.as_ref(), push.as_ref(), &members, &message)
                        .await;
                });
            }
        });
        let stored = self.store.queue_append(message, Some(hook)).await?;
        Ok(PendingSend { stored })
    }

    /// The second half of [`send`](Self::send): waits for the commit. The
    /// message has been published by then, and its push decision started.
    pub async fn finish_send(&self, pending: PendingSend) -> Result<Appended, ChatError> {
        Ok(pending.stored.committed().await?)
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
                unread: (record.content_count - member.read_count).max(0),
                marker: None,
            });
        }
        let marker = NewMessage {
            is_content: false,
            bumps_activity: false,
            read_effect: ReadEffect::UpTo(seq),
            device_id: device.to_owned(),
            ..self.system_message(room, me, MessageKind::Read, json!({"up_to_seq": seq}))
        };
        let marker = self.append_for_members(marker).await?.message;
        let member = self.require_member(me, room).await?;
        let record = self.require_room(room).await?;
        Ok(ReadOutcome {
            room_id: room,
            read_seq: member.read_seq,
            unread: (record.content_count - member.read_count).max(0),
            marker: Some(marker),
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
    ) -> Result<Appended, ChatError> {
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
        self.append_for_members(message).await
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

    /// Who of the room's members is online and who is viewing it.
    pub async fn presence(&self, me: Uuid, room: Uuid) -> Result<RoomPresence, ChatError> {
        self.require_member(me, room).await?;
        let members = self.cached_members(room).await?;
        let online = self.sessions.online_many(&members).await?;
        let in_room = self.sessions.in_room_many(&members, room).await?;
        Ok(RoomPresence {
            room_id: room,
            members: members
                .iter()
                .zip(online.iter().zip(in_room))
                .map(|(user_id, (online, in_room))| MemberPresence {
                    user_id: *user_id,
                    online: *online,
                    in_room,
                })
                .collect(),
        })
    }

    /// Tells `user`'s direct peers, and the members of their groups up to
    /// `presence_max_group_members`, that they came online or went offline.
    /// Larger groups are left out: each of N members connecting would
    /// otherwise reach the other N (N² frames and rows whenever a node
    /// restarts); their members ask with `presence` when they open the room.
    pub async fn announce_presence(&self, user: Uuid, online: bool) -> Result<(), ChatError> {
        let contacts = self
            .store
            .contacts(user, self.limits.presence_max_group_members)
            .await?;
        let frame = encode(&ServerFrame::Presence {
            user_id: user,
            online,
        });
        self.bus.deliver(&contacts, Delivery::Frame(frame));
        Ok(())
    }

    // ----- catch-up -----

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
                unread: (e.room.content_count - e.read_count).max(0),
            }));
            if done {
                return Ok(states);
            }
        }
    }

    /// The room's latest seq, checking membership.
    pub async fn latest_seq(&self, me: Uuid, room: Uuid) -> Result<i64, ChatError> {
        self.require_member(me, room).await?;
        Ok(self.require_room(room).await?.last_seq)
    }

    /// A page of stored messages after `after_seq`, for replay.
    pub async fn replay_page(
        &self,
        room: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, ChatError> {
        Ok(self.store.messages_after(room, after_seq, limit).await?)
    }

    /// Users in the system, for looking up a chat partner by name.
    pub async fn user_by_username(&self, username: &str) -> Result<UserRef, ChatError> {
        let user = self
            .store
            .user_by_username(&username.to_lowercase())
            .await?
            .ok_or(ChatError::NotFound("no such user"))?;
        Ok(UserRef {
            id: user.id,
            username: user.username,
        })
    }
}

/// A send queued for storage (see [`ChatService::queue_send`]).
pub struct PendingSend {
    stored: PendingAppend,
}

/// The push decision for one stored message (see [`crate::push`]).
async fn notify_absent_members(
    sessions: &dyn SessionStore,
    push: &dyn PushNotifier,
    members: &[Uuid],
    message: &MessageRecord,
) {
    let in_room = match sessions.in_room_many(members, message.room_id).await {
        Ok(flags) => flags,
        Err(e) => {
            // Better a push too many than a message nobody hears about.
            tracing::warn!(error = %e, "session store unavailable; notifying every other member");
            vec![false; members.len()]
        }
    };
    for user_id in to_notify(members, &in_room, message.author_id) {
        push.notify(PushNotification {
            user_id,
            room_id: message.room_id,
            message_id: message.id,
            seq: message.seq,
            author_id: message.author_id,
            kind: message.kind.clone(),
        })
        .await;
    }
}

/// Encodes `record` once and queues it for every connection of `members`.
fn publish_to(bus: &dyn Bus, members: &[Uuid], record: &MessageRecord) {
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

/// Encodes a frame once for many recipients; exposed for the gateway.
pub fn encode_frame(frame: &ServerFrame) -> bytes::Bytes {
    encode(frame)
}
