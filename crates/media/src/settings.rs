//! `[media]`: where uploads are kept and the limits they must keep.
//! `docs/configuration.md` documents every key.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// `local` (a folder, the default) or `s3`.
    pub backend: MediaBackend,
    /// The folder of the `local` backend.
    pub path: PathBuf,
    /// Where uploads are spooled while they arrive and are checked (a
    /// local folder on every backend; files there live for one request).
    pub spool_path: PathBuf,
    pub s3: S3Settings,
    /// Largest image file accepted (default 20 MiB).
    pub max_image_bytes: u64,
    /// Largest image accepted, in pixels (width × height; default 40 M).
    pub max_image_pixels: u64,
    /// Largest voice file accepted (default 20 MiB).
    pub max_voice_bytes: u64,
    /// Longest voice message accepted, in seconds (default 15 minutes).
    pub max_voice_secs: u64,
    /// Bytes of media one user may hold (default 2 GiB).
    pub quota_bytes: u64,
    /// Uploads one user may start per hour (default 300).
    pub uploads_per_hour: u32,
    /// Uploads arriving at once on this node (default 64): each may take
    /// its size limit in the spool folder, so this bounds that folder.
    pub max_uploads_in_flight: usize,
    /// Uploads one user may have arriving at once on a node (default 4).
    pub max_uploads_in_flight_per_user: usize,
    /// Images and voice files decoded at once on this node (default 2).
    pub decode_concurrency: usize,
    /// An upload must arrive within this long (default 300 s).
    pub upload_timeout_secs: u64,
    /// A presigned upload URL is valid this long (default 15 minutes).
    pub presign_ttl_secs: u64,
    /// Uploads no message uses are deleted after this long (default 24 h).
    pub unattached_ttl_secs: u64,
    /// How often the collector runs (default 10 minutes).
    pub collect_every_secs: u64,
    /// Objects without a row are deleted once older than this (default 1 h):
    /// younger ones may belong to an upload whose row is being written.
    pub orphan_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaBackend {
    Local,
    S3,
}

/// An S3-compatible bucket. Credentials may also come from the usual AWS
/// environment variables when left empty here.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible services (MinIO, R2, ...): their URL. Empty for AWS.
    pub endpoint: String,
    /// Path-style requests (`endpoint/bucket/key`), which most
    /// S3-compatible services need; AWS takes virtual-hosted style.
    pub path_style: bool,
    /// Allow `http://` endpoints (tests, a bucket on the same host).
    pub allow_http: bool,
    pub access_key_id: String,
    /// Never printed: `iyagi config` shows `***`.
    #[serde(serialize_with = "redacted")]
    pub secret_access_key: String,
}

fn redacted<S: serde::Serializer>(secret: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if secret.is_empty() { "" } else { "***" })
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

const MIB: u64 = 1024 * 1024;

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            backend: MediaBackend::Local,
            path: PathBuf::from("data/media"),
            spool_path: PathBuf::from("data/media-spool"),
            s3: S3Settings {
                region: "us-east-1".to_owned(),
                ..S3Settings::default()
            },
            max_image_bytes: 20 * MIB,
            max_image_pixels: 40_000_000,
            max_voice_bytes: 20 * MIB,
            max_voice_secs: 15 * 60,
            quota_bytes: 2048 * MIB,
            uploads_per_hour: 300,
            max_uploads_in_flight: 64,
            max_uploads_in_flight_per_user: 4,
            decode_concurrency: 2,
            upload_timeout_secs: 300,
            presign_ttl_secs: 15 * 60,
            unattached_ttl_secs: 24 * 3600,
            collect_every_secs: 600,
            orphan_grace_secs: 3600,
        }
    }
}

impl MediaSettings {
    /// The largest upload of any kind: the limit before the bytes say which kind.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_image_bytes.max(self.max_voice_bytes)
    }

    pub fn upload_timeout(&self) -> Duration {
        Duration::from_secs(self.upload_timeout_secs)
    }
}
