//! The notification inbox (`/v1/notifications`), push registrations
//! (`/v1/push/*`) and push preferences, over HTTP; the `notification`
//! WebSocket frame carries a [`NotificationView`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a notification is about. A closed set: later capabilities add
/// their kinds here (and in docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A message in one of your rooms while you were not viewing it.
    Message,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Message => "message",
        }
    }

    pub fn parse(text: &str) -> Option<NotificationKind> {
        match text {
            "message" => Some(NotificationKind::Message),
            _ => None,
        }
    }
}

/// One notification of the inbox. Records are never modified: read state
/// is the user's watermark (`read`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub seq: Option<i64>,
    /// The room's title (groups) or the author's name (direct rooms).
    pub title: String,
    /// The text, shortened; "Photo" / "Voice message" for media.
    pub body: String,
    /// True when at or below the user's read watermark.
    pub read: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// `GET /v1/notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NotificationList {
    /// Newest first.
    pub notifications: Vec<NotificationView>,
    /// `before` of the next page; `null` on the last page.
    pub next_cursor: Option<Uuid>,
    /// Notifications newer than the read watermark.
    pub unread: i64,
}

/// `GET /v1/notifications/unread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnreadNotifications {
    pub unread: i64,
}

/// `POST /v1/notifications/read`: everything up to this notification is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkNotificationsRead {
    pub up_to: Uuid,
}

/// `PUT /v1/push/registrations/fcm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FcmRegistration {
    /// The FCM registration token (1 to 4096 of `A-Z a-z 0-9 - _ :`).
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = "^[A-Za-z0-9_:-]{1,4096}$"
    )]
    pub token: String,
}

/// `PUT /v1/push/registrations/apns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApnsRegistration {
    /// The APNs device token, hex (64 to 200 digits).
    #[schema(min_length = 64, max_length = 200, pattern = "^[0-9A-Fa-f]{64,200}$")]
    pub token: String,
    /// The app's bundle id (the `apns-topic`).
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9.-]{1,255}$")]
    pub topic: String,
}

/// `PUT /v1/push/registrations/webpush`: a browser's `PushSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushRegistration {
    /// `https://` (at most 2048 characters), as the browser gave it.
    #[schema(
        min_length = 9,
        max_length = 2048,
        pattern = "^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[!-~]*)?$"
    )]
    pub endpoint: String,
    pub keys: WebPushKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushKeys {
    /// The subscription's P-256 public key, base64url: 65 bytes, uncompressed
    /// (so it starts with `B`); `=` padding is accepted too.
    #[schema(pattern = "^B[A-P][A-Za-z0-9_-]{84}[AEIMQUYcgkosw048]$")]
    pub p256dh: String,
    /// The subscription's auth secret, base64url: 16 bytes.
    #[schema(pattern = "^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub auth: String,
}

/// A registration as listed (`GET /v1/push/registrations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationView {
    pub device_id: String,
    /// `fcm`, `apns` or `webpush`.
    pub provider: String,
    /// The token, or the Web Push endpoint.
    pub token: String,
    pub topic: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegistrationList {
    pub registrations: Vec<RegistrationView>,
}

/// `GET /v1/push/webpush/vapid-public-key`: for `PushManager.subscribe`'s
/// `applicationServerKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VapidPublicKey {
    /// Uncompressed P-256 point, base64url without padding.
    pub public_key: String,
}

/// `GET` / `PUT /v1/me/preferences`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    /// Whether push texts show the room and the message (else generic text:
    /// the content never reaches Google or Apple). Default true.
    pub push_previews: bool,
}

/// `PUT /v1/rooms/{room_id}/mute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomMute {
    /// Until when (ms since the epoch); absent or null: until unmuted.
    #[serde(default, deserialize_with = "crate::whole::optional")]
    #[schema(minimum = 1)]
    pub until: Option<i64>,
}
