//! Rooms: direct rooms (one per pair, created on first request), groups,
//! the caller's room list and a room's details.

use iyagi_protocol::chat::{GROUP_MAX_MEMBERS, MessageKind, RoomDetail, RoomList, UserRef};
use iyagi_store::{MemberRole, NewRoom, RoomKind, RoomListEntry};
use serde_json::json;
use uuid::Uuid;

use crate::service::{ChatService, now_ms};
use crate::{ChatError, validate, views};

impl ChatService {
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
                kind: RoomKind::Direct,
                title: None,
                direct_key: Some(format!("{a}:{b}")),
                created_at_ms: now_ms(),
                members: vec![(a, MemberRole::Member), (b, MemberRole::Member)],
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
        let mut initial = vec![(me, MemberRole::Owner)];
        initial.extend(others.iter().map(|u| (*u, MemberRole::Member)));
        let all: Vec<Uuid> = initial.iter().map(|(u, _)| *u).collect();
        self.store
            .create_room(&NewRoom {
                id,
                kind: RoomKind::Group,
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

    pub(crate) async fn publish_first_message(
        &self,
        room: Uuid,
        members: &[Uuid],
    ) -> Result<(), ChatError> {
        if let Some(first) = self.store.message_at(room, 1).await? {
            self.publish(members, &first);
        }
        Ok(())
    }

    pub async fn room_list(
        &self,
        me: Uuid,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<RoomList, ChatError> {
        let limit = validate::page_limit(limit)?;
        let cursor = cursor.map(cursor::decode).transpose()?;
        let entries = self.store.rooms_for_user(me, cursor, limit + 1).await?;
        let has_more = entries.len() > limit as usize;
        let page: Vec<&RoomListEntry> = entries.iter().take(limit as usize).collect();
        let next_cursor = has_more
            .then(|| {
                page.last()
                    .map(|e| cursor::encode(e.room.last_activity_ms, e.room.id))
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
        let peer = (record.kind == RoomKind::Direct)
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

/// The room list's cursor: the last entry's `last_activity_ms` and id, as
/// `"{ms}.{id}"`. Encoded and decoded only here.
pub(crate) mod cursor {
    use uuid::Uuid;

    use crate::ChatError;

    pub(crate) fn encode(last_activity_ms: i64, room: Uuid) -> String {
        format!("{last_activity_ms}.{room}")
    }

    pub(crate) fn decode(cursor: &str) -> Result<(i64, Uuid), ChatError> {
        let (ms, id) = cursor.split_once('.').ok_or(ChatError::BadCursor)?;
        Ok((
            ms.parse().map_err(|_| ChatError::BadCursor)?,
            id.parse().map_err(|_| ChatError::BadCursor)?,
        ))
    }
}
