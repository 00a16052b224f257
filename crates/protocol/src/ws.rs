//! WebSocket frames (`GET /v1/ws`). Every frame is one JSON text message
//! with a `type` field; `docs/protocol.md` documents each with examples.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::chat::{MessageKind, MessageView, RoomPresence};
use crate::error::ErrorCode;

/// Every client frame type, for telling an unknown `type` from a malformed
/// frame: the variants of [`ClientFrame`], named as serde names them.
pub const CLIENT_FRAME_TYPES: &[&str] = <ClientFrame as strum::VariantNames>::VARIANTS;

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::VariantNames)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum ClientFrame {
    /// Store and deliver a message. Retrying with the same `client_msg_id`
    /// from the same device returns the original `ack` and stores nothing.
    Send {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Uuid,
        client_msg_id: String,
        kind: MessageKind,
        content: Value,
    },
    /// Write a read marker: everything up to `seq` is read.
    Read {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Uuid,
        seq: i64,
    },
    /// Add (or, with `remove: true`, remove) an emoji reaction on message `seq`.
    React {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Uuid,
        seq: i64,
        emoji: String,
        #[serde(default)]
        remove: bool,
        /// Optional: makes a retried reaction idempotent, like `send`.
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    /// "I am typing in this room." Delivered live to the other members,
    /// never stored; no answer unless it fails (then `error` with the `ref`).
    Typing {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Uuid,
    },
    /// The room this device is looking at (`null`: none). While a device
    /// views a room, its user gets no push notifications for it.
    View {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Option<Uuid>,
    },
    /// Start live delivery and catch up: for each listed room, every message
    /// after `after_seq` is replayed (or `reload` is sent if too many).
    Sync {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        #[serde(default)]
        rooms: Vec<SyncPosition>,
    },
    /// A page of a room's messages before or after a seq.
    History {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Uuid,
        #[serde(default)]
        before_seq: Option<i64>,
        #[serde(default)]
        after_seq: Option<i64>,
        /// 1 to 200, default 50.
        #[serde(default)]
        limit: Option<i64>,
    },
    /// Who of the room's members is online, and who is viewing the room.
    Presence {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
        room_id: Uuid,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPosition {
    pub room_id: Uuid,
    /// The highest seq this device has seen in the room.
    pub after_seq: i64,
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame after the upgrade.
    Ready {
        user_id: Uuid,
        device_id: String,
        connection_id: Uuid,
        heartbeat_interval_ms: u64,
        heartbeat_timeout_ms: u64,
        limits: Limits,
    },
    /// A `send`, `read` or `react` was stored (or was a retry of a stored one).
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        message: MessageView,
        duplicate: bool,
    },
    /// The answer to `read`: your read position and unread count in the room
    /// (unchanged when the marker was not ahead of your position).
    ReadAck {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room_id: Uuid,
        read_seq: i64,
        unread: i64,
    },
    /// The answer to `view`: the room this connection now views.
    Viewing {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room_id: Option<Uuid>,
    },
    /// A message in one of your rooms (yours included).
    Message {
        message: MessageView,
    },
    Typing {
        room_id: Uuid,
        user_id: Uuid,
    },
    /// A user you share a room with came online (first device) or went offline (last device).
    Presence {
        user_id: Uuid,
        online: bool,
    },
    PresenceState {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(flatten)]
        presence: RoomPresence,
    },
    History {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        room_id: Uuid,
        messages: Vec<MessageView>,
        has_more: bool,
    },
    /// The gap since `after_seq` is too large to replay: fetch history
    /// (HTTP or `history` frames) from `latest_seq` backwards instead.
    Reload {
        room_id: Uuid,
        latest_seq: i64,
    },
    /// Catch-up finished; live delivery is on. One entry per room of yours.
    Synced {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        rooms: Vec<RoomState>,
    },
    /// Notifications were added to your inbox: `added` of them since the
    /// last such frame (those recorded together share one frame), the
    /// newest being `notification`.
    Notification {
        notification: crate::notifications::NotificationView,
        added: u32,
        /// Notifications newer than your read watermark, counted up to 100
        /// (100 means "100 or more").
        unread_notifications: i64,
        /// Unread messages over all your rooms (the app icon's badge).
        badge: i64,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        code: ErrorCode,
        message: String,
        /// The room the error is about, when one frame names several (`sync`).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        room_id: Option<Uuid>,
    },
}

/// Only the `ref` of a client frame: read from a frame that could not be
/// parsed (or was refused unread), so its error can still be matched.
#[derive(Debug, Deserialize)]
pub struct FrameRef {
    #[serde(default, rename = "ref")]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    pub room_id: Uuid,
    pub latest_seq: i64,
    pub unread: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_content_bytes: usize,
    pub max_text_chars: usize,
    pub max_client_msg_id_chars: usize,
    pub send_per_second: u32,
    pub max_replay: i64,
    /// `send` frames a connection may have waiting for their acks; while
    /// that many are pending, the server reads no further frames.
    pub max_sends_in_flight: usize,
}

/// See [`Limits::max_sends_in_flight`].
pub const SENDS_IN_FLIGHT_MAX: usize = 64;

/// WebSocket close codes iyagi uses (4000-4999 are application codes).
pub mod close {
    /// Heartbeat: no pong within the timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The outbound queue filled up (slow reader). Reconnect and `sync`.
    pub const SLOW_CONSUMER: u16 = 4001;
    /// The device's session was revoked (logout, removed device, token reuse).
    pub const SESSION_REVOKED: u16 = 4002;
    /// The server is shutting down. Reconnect (to another node).
    pub const GOING_AWAY: u16 = 1001;
    /// A frame over the hard size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The client broke the WebSocket protocol (e.g. an unmasked frame).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;

    /// The reason text sent with each close code.
    pub fn reason(code: u16) -> &'static str {
        match code {
            HEARTBEAT_TIMEOUT => "heartbeat timeout",
            SLOW_CONSUMER => "too slow to read; reconnect and sync",
            SESSION_REVOKED => "session revoked",
            GOING_AWAY => "server shutting down",
            TOO_BIG => "frame over the hard size limit",
            PROTOCOL_ERROR => "WebSocket protocol violation",
            INVALID_DATA => "text frame is not UTF-8",
            _ => "closing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_frame_type_is_one_serde_knows_and_no_other() {
        assert_eq!(CLIENT_FRAME_TYPES.len(), 8);
        for kind in CLIENT_FRAME_TYPES {
            let error = serde_json::from_value::<ClientFrame>(serde_json::json!({"type": kind}))
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string());
            assert!(!error.contains("unknown variant"), "{kind}: {error}");
        }
        let unknown = serde_json::from_value::<ClientFrame>(serde_json::json!({"type": "explode"}))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("unknown variant"), "{unknown}");
    }
}
