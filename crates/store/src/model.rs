//! Storage rows. These are not wire types: the server maps them to
//! `iyagi-protocol` types at the edge.

use uuid::Uuid;

// Rows of the later aggregates, one file each.
mod media;
mod moderation;
pub use media::*;
pub use moderation::*;

/// An enum stored as TEXT: the enum, its text, parsing it back, and what
/// lets sqlx bind and read it on either backend.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <String as sqlx::Encode<'q, DB>>::encode(self.as_str().to_owned(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                $name::parse(&text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($name)).into())
            }
        }
    };
}

text_enum! {
    /// What a room is.
    RoomKind { Direct => "direct", Group => "group" }
}

text_enum! {
    /// A member's role in a room.
    MemberRole { Owner => "owner", Member => "member" }
}

text_enum! {
    /// Where a device receives pushes.
    PushProvider { Fcm => "fcm", Apns => "apns", WebPush => "webpush" }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub password_hash: Option<String>,
    pub external_issuer: Option<String>,
    pub external_subject: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub username: String,
    pub password_hash: Option<String>,
    /// Set (with `external_subject`) for users created from an external OIDC token.
    pub external_issuer: Option<String>,
    pub external_subject: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceRecord {
    pub user_id: Uuid,
    pub device_id: String,
    pub platform: String,
    pub display_name: Option<String>,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoke_reason: Option<String>,
}

impl SessionRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at_ms.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct NewLogin {
    pub user_id: Uuid,
    pub device_id: String,
    pub platform: String,
    pub display_name: Option<String>,
    pub session_id: Uuid,
    /// SHA-256 of the refresh token; the token itself is never stored.
    pub refresh_token_hash: Vec<u8>,
    pub refresh_expires_at_ms: i64,
    pub now_ms: i64,
}

/// `record_login`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedLogin {
    pub session: SessionRecord,
    /// The device's earlier sessions that this login revoked (their open
    /// connections must close).
    pub replaced: Vec<Uuid>,
}

#[derive(Debug, Clone)]
pub struct Rotation {
    pub presented_hash: Vec<u8>,
    pub new_hash: Vec<u8>,
    pub new_expires_at_ms: i64,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was current; the new token is now the current one.
    Rotated(SessionRecord),
    /// The presented token had already been rotated: the session (the whole
    /// token family) has been revoked as a precaution.
    Reused(SessionRecord),
    /// Unknown, expired, or the session is revoked. Nothing changed.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub private_der: Vec<u8>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoomRecord {
    pub id: Uuid,
    pub kind: RoomKind,
    pub title: Option<String>,
    pub direct_key: Option<String>,
    pub created_at_ms: i64,
    pub last_seq: i64,
    pub content_count: i64,
    pub last_content_seq: i64,
    pub last_activity_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewRoom {
    pub id: Uuid,
    pub kind: RoomKind,
    pub title: Option<String>,
    pub direct_key: Option<String>,
    pub created_at_ms: i64,
    /// (user id, role) of the initial members.
    pub members: Vec<(Uuid, MemberRole)>,
    /// Stored as seq 1 in the same transaction (the room_created message).
    pub first_message: NewMessage,
}

/// `create_room`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedRoom {
    pub room: RoomRecord,
    /// False when an existing direct room was returned.
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberRecord {
    pub id: Uuid,
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub role: MemberRole,
    pub created_at_ms: i64,
    pub read_seq: i64,
    pub read_count: i64,
    /// No pushes for this room until then (ms); `None`: not muted.
    pub muted_until_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub room_id: Uuid,
    pub author_id: Uuid,
    pub device_id: String,
    pub client_msg_id: String,
    pub kind: String,
    /// JSON text.
    pub content: String,
    pub created_at_ms: i64,
    /// Content messages count towards unread (text, image, voice).
    pub is_content: bool,
    /// Whether the room moves to the top of its members' room lists.
    pub bumps_activity: bool,
    /// What this message does to its author's read position.
    pub read_effect: ReadEffect,
}

impl NewMessage {
    /// The stored message, once it has its seq and content ordinal.
    pub(crate) fn stored_as(&self, seq: i64, content_ordinal: i64) -> MessageRecord {
        MessageRecord {
            id: self.id,
            room_id: self.room_id,
            seq,
            author_id: self.author_id,
            device_id: self.device_id.clone(),
            client_msg_id: self.client_msg_id.clone(),
            kind: self.kind.clone(),
            content: self.content.clone(),
            created_at_ms: self.created_at_ms,
            content_ordinal,
        }
    }

    /// Where this message, stored at `seq` with `content_ordinal`, moves its
    /// author's read position (`read_seq`, `read_count`) to. `target` is a
    /// read marker's target seq with that message's content ordinal.
    pub(crate) fn read_position(
        &self,
        seq: i64,
        content_ordinal: i64,
        target: Option<(i64, i64)>,
    ) -> Option<(i64, i64)> {
        match self.read_effect {
            ReadEffect::None => None,
            ReadEffect::UpToSelf => Some((seq, content_ordinal)),
            ReadEffect::UpTo(_) => target,
        }
    }
}

/// Read positions move only forward; a marker at or below the current
/// position changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEffect {
    None,
    /// The author has read up to this very message (they just sent it).
    UpToSelf,
    /// A read marker: the author has read up to this seq.
    UpTo(i64),
}

/// One row of a user's room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomListEntry {
    pub room: RoomRecord,
    pub role: MemberRole,
    pub read_seq: i64,
    pub read_count: i64,
    /// For direct rooms: the other member.
    pub peer: Option<(Uuid, String)>,
    pub last_message: Option<MessageRecord>,
}

/// A member with their username, for room details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedMember {
    pub member: MemberRecord,
    pub username: String,
}

/// Adding or removing one member, atomically with its system message.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    pub room_id: Uuid,
    pub user_id: Uuid,
    /// `Some(role)` adds the user; `None` removes them.
    pub add_as: Option<MemberRole>,
    /// An add fails with [`StoreError::LimitReached`](crate::StoreError)
    /// when the room already has this many members, checked inside the
    /// transaction that adds (concurrent adds cannot overshoot it).
    pub max_members: Option<u32>,
    /// A member to make owner in the same transaction (the owner left).
    pub promote: Option<Uuid>,
    pub message: NewMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub author_id: Uuid,
    pub device_id: String,
    pub client_msg_id: String,
    pub kind: String,
    pub content: String,
    pub created_at_ms: i64,
    /// The room's content count at this message.
    pub content_ordinal: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: MessageRecord,
    /// True when this was a retry of an already stored message.
    pub duplicate: bool,
}

/// A device's push registration (one per device and provider).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Registration {
    pub user_id: Uuid,
    pub device_id: String,
    pub provider: PushProvider,
    /// FCM registration token, APNs device token, or the Web Push endpoint.
    pub token: String,
    /// APNs: the app's bundle id.
    pub topic: Option<String>,
    /// Web Push: the subscription's P-256 public key and auth secret.
    pub p256dh: Option<Vec<u8>>,
    pub auth: Option<Vec<u8>>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What a `notification` frame tells about a user's inbox (see
/// `NotificationStore::inbox_counts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct InboxCounts {
    pub user_id: Uuid,
    /// At most the cap asked for.
    pub unread_notifications: i64,
    pub badge: i64,
}

/// A stored notification: append-only, never updated.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub room_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub seq: Option<i64>,
    /// JSON text.
    pub payload: String,
    pub created_at_ms: i64,
}

/// One push still to be delivered: a notification to one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub user_id: Uuid,
    pub device_id: String,
    pub provider: PushProvider,
    /// Pushes with one key collapse while they wait: when the registration
    /// already has a fresh (never tried, unclaimed) delivery with this
    /// key, that delivery takes this notification over (if it is the
    /// newer) instead of a second row being added. A room's id, for
    /// message notifications (a device shows only a room's newest push).
    pub collapse_key: String,
    pub next_attempt_at_ms: i64,
}

/// A delivery claimed by a worker, with what it needs to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: Uuid,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub notification: NotificationRecord,
    /// `None` when the registration is gone (the delivery is moot).
    pub registration: Option<Registration>,
    /// What the push needs to know of its user, read with the claim (so
    /// the worker asks nothing more per push): how far they have read the
    /// notification's room (`None`: not a member, or no room),
    pub read_seq: Option<i64>,
    /// whether their pushes show content,
    pub push_previews: bool,
    /// and their unread messages over all rooms (the badge).
    pub badge: i64,
}

/// The outbox at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub pending: i64,
    /// When the oldest pending delivery was created (ms); `None` if none.
    pub oldest_created_at_ms: Option<i64>,
}
