//! Rooms and messages, shared by HTTP (`/v1/rooms/*`) and WebSocket frames.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Limits on what a client may send. Also announced in the WebSocket `ready` frame.
pub const CLIENT_MSG_ID_MAX: usize = 64;
pub const TEXT_MAX_CHARS: usize = 4000;
pub const CONTENT_MAX_BYTES: usize = 16 * 1024;
pub const TITLE_MAX_CHARS: usize = 100;
pub const EMOJI_MAX_BYTES: usize = 32;
pub const GROUP_MAX_MEMBERS: usize = 1000;
pub const PAGE_MAX: u32 = 200;

/// What a message is. The first three are written by clients; the rest are
/// markers and system messages written by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// `{"text": "..."}`.
    Text,
    /// Sent as `{"media_id": "..."}`; stored and delivered as the server
    /// writes it: [`crate::media::ImageContent`].
    Image,
    /// Sent as `{"media_id": "..."}`; stored and delivered as the server
    /// writes it: [`crate::media::VoiceContent`].
    Voice,
    /// A read marker: `{"up_to_seq": N}`.
    Read,
    /// A reaction marker: `{"target_seq": N, "emoji": "👍", "action": "add" | "remove"}`.
    Reaction,
    /// `{"title": "...", "members": [user ids]}`, the first message of a room.
    RoomCreated,
    /// `{"user_id": ..., "by": ...}`.
    MemberJoined,
    /// `{"user_id": ..., "by": ...}` (`by` equals `user_id` when they left themselves).
    MemberLeft,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Voice => "voice",
            MessageKind::Read => "read",
            MessageKind::Reaction => "reaction",
            MessageKind::RoomCreated => "room_created",
            MessageKind::MemberJoined => "member_joined",
            MessageKind::MemberLeft => "member_left",
        }
    }

    pub fn parse(s: &str) -> Option<MessageKind> {
        Some(match s {
            "text" => MessageKind::Text,
            "image" => MessageKind::Image,
            "voice" => MessageKind::Voice,
            "read" => MessageKind::Read,
            "reaction" => MessageKind::Reaction,
            "room_created" => MessageKind::RoomCreated,
            "member_joined" => MessageKind::MemberJoined,
            "member_left" => MessageKind::MemberLeft,
            _ => return None,
        })
    }

    /// Content messages count towards unread; markers and system messages do not.
    pub fn is_content(self) -> bool {
        matches!(
            self,
            MessageKind::Text | MessageKind::Image | MessageKind::Voice
        )
    }
}

/// A message's content (a JSON object). The server holds stored content as
/// JSON text and writes it to the wire as is, without parsing it into a
/// tree and serialising that again for every frame; a client reading frames
/// gets a parsed value.
#[derive(Debug, Clone)]
pub enum Content {
    Parsed(Value),
    Raw(Box<serde_json::value::RawValue>),
}

impl Content {
    /// Stored JSON text; `null` if it is not JSON (never the case for text
    /// the server wrote).
    pub fn from_json_text(text: String) -> Content {
        serde_json::value::RawValue::from_string(text)
            .map(Content::Raw)
            .unwrap_or(Content::Parsed(Value::Null))
    }

    /// The content as a JSON tree.
    pub fn to_value(&self) -> Value {
        match self {
            Content::Parsed(value) => value.clone(),
            Content::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
        }
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Content) -> bool {
        self.to_value() == other.to_value()
    }
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Content::Parsed(value) => value.serialize(serializer),
            Content::Raw(raw) => raw.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Content, D::Error> {
        // A tree, not raw text: raw values cannot be read from inside
        // internally tagged enums such as the server frames.
        Value::deserialize(deserializer).map(Content::Parsed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub room_id: Uuid,
    /// Position in the room: 1, 2, 3... with no gaps, shared by every kind.
    pub seq: i64,
    pub author_id: Uuid,
    pub device_id: String,
    pub client_msg_id: String,
    pub kind: MessageKind,
    #[schema(value_type = Object)]
    pub content: Content,
    /// Milliseconds since the Unix epoch, assigned by the server.
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    Direct,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Owner,
    Member,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserRef {
    pub id: Uuid,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub user: UserRef,
    pub role: MemberRole,
    pub joined_at: i64,
    /// Highest seq this member has marked read.
    pub read_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomView {
    pub id: Uuid,
    pub kind: RoomKind,
    /// Group title; `null` for direct rooms (show `peer`).
    pub title: Option<String>,
    /// The other member of a direct room.
    pub peer: Option<UserRef>,
    /// Highest seq in the room (every kind).
    pub last_seq: i64,
    /// The latest text/image/voice message, if any.
    pub last_message: Option<MessageView>,
    /// Content messages after the caller's latest read marker.
    pub unread: i64,
    /// Milliseconds since the Unix epoch of the latest activity.
    pub updated_at: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomDetail {
    #[serde(flatten)]
    pub room: RoomView,
    pub members: Vec<MemberView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomList {
    pub rooms: Vec<RoomView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDirectRoom {
    /// The other user.
    pub user_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRoom {
    /// 1 to 100 characters, not only whitespace, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub title: String,
    /// Other initial members (the creator is added as owner; repeats are
    /// ignored). Each must exist (else 404 `not_found`).
    #[serde(default)]
    #[schema(max_items = 999)]
    pub members: Vec<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// Ascending by seq.
    pub messages: Vec<MessageView>,
    /// More messages exist in the direction asked for.
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberPresence {
    pub user_id: Uuid,
    /// At least one device connected.
    pub online: bool,
    /// At least one device viewing this room.
    pub in_room: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RoomPresence {
    pub room_id: Uuid,
    pub members: Vec<MemberPresence>,
}

#[cfg(test)]
mod content_tests {
    use super::Content;
    use serde_json::json;

    #[test]
    fn stored_text_goes_out_as_is_and_reads_back_as_a_tree() {
        let raw = Content::from_json_text(r#"{"text":"hi \"you\"","n":1}"#.to_owned());
        let written = serde_json::to_string(&raw).unwrap();
        assert_eq!(written, r#"{"text":"hi \"you\"","n":1}"#);
        let read: Content = serde_json::from_str(&written).unwrap();
        assert!(matches!(read, Content::Parsed(_)));
        assert_eq!(read, raw);
        assert_eq!(read.to_value(), json!({"text": "hi \"you\"", "n": 1}));
        assert_eq!(
            Content::from_json_text("not json".to_owned()).to_value(),
            json!(null)
        );
    }
}
