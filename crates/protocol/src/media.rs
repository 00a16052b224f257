//! Media (`/v1/media`): uploads, their processed details, and the content
//! the server writes for `image` and `voice` messages.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Thumbnails are made at these sizes (pixels on the long side), never
/// larger than the original.
pub const THUMBNAIL_SIZES: [u32; 2] = [320, 1280];

/// Peaks in a voice message's waveform.
pub const WAVEFORM_PEAKS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Voice,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
        }
    }

    pub fn parse(text: &str) -> Option<MediaKind> {
        match text {
            "image" => Some(MediaKind::Image),
            "voice" => Some(MediaKind::Voice),
            _ => None,
        }
    }
}

/// One thumbnail of an image: JPEG, fetched at
/// `/v1/media/{id}/thumbnails/{size}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Thumbnail {
    /// The requested long side (one of 320, 1280); the name in its URL.
    pub size: u32,
    pub width: u32,
    pub height: u32,
}

/// What the server learnt from an image's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageDetails {
    /// Pixels, after the EXIF orientation was applied.
    pub width: u32,
    pub height: u32,
    /// A [BlurHash](https://blurha.sh) (4×3 components) to draw before the bytes arrive.
    pub blurhash: String,
    pub thumbnails: Vec<Thumbnail>,
}

/// What the server learnt from a voice file's audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoiceDetails {
    /// Computed from the decoded audio, not from the container's claim.
    pub duration_ms: i64,
    /// 64 peaks, 0 (silence) to 100 (full scale), evenly spaced over the duration.
    pub waveform: Vec<u8>,
}

/// An upload, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MediaView {
    pub id: Uuid,
    pub kind: MediaKind,
    /// `pending` until the bytes are in and processed, then `ready`.
    pub state: MediaState,
    /// Decided from the bytes: `image/jpeg`, `image/png`, `image/webp`,
    /// `image/gif`, `audio/mp4`. Absent while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Bytes of the stored original (after metadata was stripped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceDetails>,
    /// True once a message uses it (a media id backs one message).
    pub attached: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaState {
    Pending,
    Ready,
}

/// `POST /v1/media/uploads`: asks for a presigned direct-to-bucket upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    pub kind: MediaKind,
    /// The file's size in bytes; checked against the limits and the quota now,
    /// and against the uploaded object at completion.
    #[serde(deserialize_with = "crate::whole::required")]
    #[schema(minimum = 1)]
    pub size: i64,
}

/// The answer to [`CreateUpload`]: PUT the file's bytes to `upload_url`
/// (no other headers needed) before `expires_at`, then
/// `POST /v1/media/{media_id}/complete`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadTicket {
    pub media_id: Uuid,
    pub method: String,
    pub upload_url: String,
    pub expires_at: i64,
}

/// The content of an `image` message, written by the server from the
/// upload (clients send only `{"media_id": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageContent {
    pub media_id: Uuid,
    pub mime: String,
    pub size: i64,
    pub width: u32,
    pub height: u32,
    pub blurhash: String,
    pub thumbnails: Vec<Thumbnail>,
}

/// The content of a `voice` message, written by the server from the upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoiceContent {
    pub media_id: Uuid,
    pub mime: String,
    pub size: i64,
    pub duration_ms: i64,
    pub waveform: Vec<u8>,
}
