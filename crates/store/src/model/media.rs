//! The media aggregate's rows.

use uuid::Uuid;

/// An upload's reference (the bytes are in the object store).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MediaRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    /// `image` or `voice`.
    pub kind: String,
    /// `pending` or `ready`.
    pub state: String,
    pub mime: Option<String>,
    pub size_bytes: i64,
    /// JSON object: what processing learnt.
    pub details: Option<String>,
    pub upload_key: Option<String>,
    pub created_at_ms: i64,
    pub ready_at_ms: Option<i64>,
    pub room_id: Option<Uuid>,
    pub device_id: Option<String>,
    pub client_msg_id: Option<String>,
    pub attached_at_ms: Option<i64>,
}

impl MediaRecord {
    pub fn is_ready(&self) -> bool {
        self.state == MEDIA_READY
    }
}

pub const MEDIA_PENDING: &str = "pending";
pub const MEDIA_READY: &str = "ready";

/// A new upload, written before its bytes.
#[derive(Debug, Clone)]
pub struct NewMedia {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub kind: String,
    /// The declared (or so far received) size, charged to the quota.
    pub size_bytes: i64,
    pub upload_key: Option<String>,
    pub created_at_ms: i64,
}

/// What processing found, written when an upload becomes ready.
#[derive(Debug, Clone)]
pub struct ReadyMedia {
    pub id: Uuid,
    pub kind: String,
    pub mime: String,
    pub size_bytes: i64,
    pub details: String,
    pub ready_at_ms: i64,
}

/// A message asking to use an upload.
#[derive(Debug, Clone)]
pub struct MediaUse<'a> {
    pub media_id: Uuid,
    pub owner_id: Uuid,
    pub kind: &'a str,
    pub room_id: Uuid,
    pub device_id: &'a str,
    pub client_msg_id: &'a str,
    pub now_ms: i64,
}

/// The answer to [`MediaUse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// Now used by this message (or already was: a retry of its send).
    Attached(Box<MediaRecord>),
    /// No such media, or not the caller's.
    NotFound,
    WrongKind,
    NotReady,
    /// Used by another message.
    AlreadyUsed,
}

/// What an owner holds, for the quota and the upload rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaUsage {
    /// Bytes of all their uploads (pending ones at their declared size).
    pub bytes: i64,
    /// Uploads created since the time asked about.
    pub recent_uploads: i64,
}
