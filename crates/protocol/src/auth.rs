//! Accounts, devices and tokens over HTTP (`/v1/auth/*`, `/v1/devices`, `/v1/me`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Usernames: 3 to 32 characters of `a-z 0-9 _ . -`, case-insensitive
/// (stored lower-case).
pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
/// Passwords: 8 to 256 characters (the upper bound keeps hashing cost bounded).
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 256;
/// Device ids are chosen by the client: 1 to 64 characters of `A-Z a-z 0-9 _ . : -`.
pub const DEVICE_ID_MAX: usize = 64;
/// Device display names: at most 64 characters.
pub const DEVICE_NAME_MAX: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 32 of `a-z 0-9 _ . -` (upper-case ASCII is lower-cased).
    #[schema(
        example = "minji",
        pattern = "^[A-Za-z0-9_.-]{3,32}$",
        min_length = 3,
        max_length = 32
    )]
    pub username: String,
    /// 8 to 256 characters.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 256
    )]
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// What kind of device a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Ios,
    Android,
    Web,
    Desktop,
    Other,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Web => "web",
            Platform::Desktop => "desktop",
            Platform::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Some(match s {
            "ios" => Platform::Ios,
            "android" => Platform::Android,
            "web" => Platform::Web,
            "desktop" => Platform::Desktop,
            "other" => Platform::Other,
            _ => return None,
        })
    }
}

/// The device a login is for. Logging in again with the same device id
/// replaces that device's previous session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInfo {
    /// 1 to 64 of `A-Z a-z 0-9 _ . : -`, stable per installation.
    #[schema(
        example = "phone-1",
        pattern = "^[A-Za-z0-9_.:-]{1,64}$",
        min_length = 1,
        max_length = 64
    )]
    pub id: String,
    pub platform: Platform,
    /// At most 64 characters, no control characters.
    #[serde(default)]
    #[schema(
        example = "Minji's phone",
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Any string: a malformed username is answered like a wrong password
    /// (401 `invalid_credentials`).
    pub username: String,
    pub password: String,
    pub device: DeviceInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Tokens issued by login and refresh.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; single use. Exchange at `/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    pub user_id: Uuid,
    pub device_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    pub id: String,
    pub platform: Platform,
    pub name: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Last login or token refresh, milliseconds since the Unix epoch.
    pub last_seen_at: i64,
    /// True for the device that made this request.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthStatus {
    /// `ok` or `unavailable`.
    pub status: String,
}

/// `GET /readyz`: every backend this node depends on, checked now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every check passed, else `unavailable`.
    pub status: String,
    /// With 503: `unavailable`, as in every error body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::ErrorCode>,
    /// With 503: which backends failed, for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub checks: Vec<ReadinessCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadinessCheck {
    /// `storage`, `sessions` or `bus`.
    pub name: String,
    /// What implements it here: `sqlite`, `postgres`, `memory`, `redis`, `local`, `nats`.
    pub backend: String,
    pub ok: bool,
    /// Why it failed (absent when `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
