//! Storage rows to wire types. The only place chat records meet the protocol.

use iyagi_protocol::chat::{
    Content, MemberRole, MemberView, MessageKind, MessageView, RoomKind, RoomView, UserRef,
};
use iyagi_store::{self as store, MessageRecord, NamedMember, RoomListEntry};

pub fn message(record: &MessageRecord) -> MessageView {
    MessageView {
        id: record.id,
        room_id: record.room_id,
        seq: record.seq,
        author_id: record.author_id,
        device_id: record.device_id.clone(),
        client_msg_id: record.client_msg_id.clone(),
        // Kinds are written only by this crate, so an unknown one means a
        // newer server wrote it; show it as text rather than fail the page.
        kind: MessageKind::parse(&record.kind).unwrap_or(MessageKind::Text),
        content: Content::from_json_text(record.content.clone()),
        created_at: record.created_at_ms,
    }
}

pub fn room_kind(kind: store::RoomKind) -> RoomKind {
    match kind {
        store::RoomKind::Direct => RoomKind::Direct,
        store::RoomKind::Group => RoomKind::Group,
    }
}

pub fn role(role: store::MemberRole) -> MemberRole {
    match role {
        store::MemberRole::Owner => MemberRole::Owner,
        store::MemberRole::Member => MemberRole::Member,
    }
}

pub fn room(entry: &RoomListEntry) -> RoomView {
    RoomView {
        id: entry.room.id,
        kind: room_kind(entry.room.kind),
        title: entry.room.title.clone(),
        peer: entry.peer.as_ref().map(|(id, username)| UserRef {
            id: *id,
            username: username.clone(),
        }),
        last_seq: entry.room.last_seq,
        last_message: entry.last_message.as_ref().map(message),
        unread: crate::unread::unread(entry.room.content_count, entry.read_count),
        updated_at: entry.room.last_activity_ms,
        created_at: entry.room.created_at_ms,
    }
}

pub fn member(named: &NamedMember) -> MemberView {
    MemberView {
        user: UserRef {
            id: named.member.user_id,
            username: named.username.clone(),
        },
        role: role(named.member.role),
        joined_at: named.member.created_at_ms,
        read_seq: named.member.read_seq,
    }
}
