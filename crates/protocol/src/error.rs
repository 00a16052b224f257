//! Stable error codes. A code, once published, keeps its meaning forever:
//! clients branch on `code`, humans read `message`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON body of every error response: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human-readable explanation. Never contains internal causes.
    pub message: String,
}

/// Every error code iyagi returns. `docs/protocol.md` lists them with their
/// HTTP status; [`ErrorCode::http_status`] is the single mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON.
    MalformedJson,
    /// The JSON is well-formed but has missing fields or wrong types.
    InvalidRequest,
    /// A field has the right type but breaks a documented rule (length, charset...).
    ValidationFailed,
    /// The request body exceeds the server's limit.
    PayloadTooLarge,
    /// The request has a body that is not `application/json`.
    UnsupportedMediaType,
    /// Registration with a username that is already taken.
    UsernameTaken,
    /// Login failed. Deliberately the same for unknown user and wrong password.
    InvalidCredentials,
    /// No, malformed, expired or revoked access token.
    Unauthenticated,
    /// The refresh token is unknown, expired or belongs to a revoked device.
    InvalidRefreshToken,
    /// An already-rotated refresh token was presented: the device's whole
    /// token family has been revoked (possible theft).
    RefreshTokenReused,
    /// Too many attempts; retry after the `Retry-After` header's seconds.
    RateLimited,
    /// The authenticated user may not do this.
    Forbidden,
    /// The addressed resource does not exist (or is not visible to the caller).
    NotFound,
    /// The route does not accept this HTTP method.
    MethodNotAllowed,
    /// A dependency (database) is unreachable.
    Unavailable,
    /// An unexpected server error; the cause is in the server log under the request id.
    Internal,
    /// The caller is not a member of that room.
    NotAMember,
    /// A WebSocket frame whose `type` is not in the protocol.
    UnknownFrameType,
    /// A WebSocket frame larger than `limits.max_frame_bytes`.
    FrameTooLarge,
    /// Over a connection cap: per client address, per user or per device.
    TooManyConnections,
    /// The request (its body) did not arrive in time.
    RequestTimeout,
    /// A push registration for a provider that does not exist.
    UnknownPushProvider,
    /// A push token that cannot be one (wrong characters or length).
    InvalidPushToken,
    /// A Web Push endpoint that is not `https://`.
    InsecurePushEndpoint,
    /// Web Push keys of the wrong length or encoding.
    InvalidPushKeys,
    /// No such media, or not one the caller may use or see (the cases are
    /// not told apart, so media ids cannot be probed).
    MediaNotFound,
    /// A message of one kind naming media of another (an image id in a voice message).
    MediaWrongKind,
    /// The media's upload has not been completed (or processed) yet.
    MediaNotReady,
    /// The media already backs another message; upload it again to send it again.
    MediaAlreadyUsed,
    /// The bytes are of a supported type but do not decode (truncated, corrupt).
    MediaUndecodable,
    /// The file breaks a documented limit: pixels, dimensions, duration.
    MediaLimitExceeded,
    /// The caller's media would exceed their storage quota.
    MediaQuotaExceeded,
    /// Presigned (direct-to-bucket) uploads need S3 storage; this server stores media on disk.
    PresignUnavailable,
    /// A `Range` the file cannot satisfy.
    RangeNotSatisfiable,
}

impl ErrorCode {
    /// The HTTP status for this code. The one place this mapping is defined.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidRequest => 400,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::UsernameTaken => 409,
            ErrorCode::InvalidCredentials
            | ErrorCode::Unauthenticated
            | ErrorCode::InvalidRefreshToken
            | ErrorCode::RefreshTokenReused => 401,
            ErrorCode::RateLimited => 429,
            ErrorCode::Forbidden | ErrorCode::NotAMember => 403,
            ErrorCode::UnknownFrameType => 400,
            ErrorCode::FrameTooLarge => 413,
            ErrorCode::TooManyConnections => 429,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::UnknownPushProvider => 404,
            ErrorCode::MediaNotFound => 404,
            ErrorCode::MediaWrongKind
            | ErrorCode::MediaUndecodable
            | ErrorCode::MediaLimitExceeded => 422,
            ErrorCode::MediaNotReady
            | ErrorCode::MediaAlreadyUsed
            | ErrorCode::PresignUnavailable => 409,
            ErrorCode::MediaQuotaExceeded => 403,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::InvalidPushToken
            | ErrorCode::InsecurePushEndpoint
            | ErrorCode::InvalidPushKeys => 422,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidRefreshToken => "invalid_refresh_token",
            ErrorCode::RefreshTokenReused => "refresh_token_reused",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::UnknownFrameType => "unknown_frame_type",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnknownPushProvider => "unknown_push_provider",
            ErrorCode::InvalidPushToken => "invalid_push_token",
            ErrorCode::InsecurePushEndpoint => "insecure_push_endpoint",
            ErrorCode::InvalidPushKeys => "invalid_push_keys",
            ErrorCode::MediaNotFound => "media_not_found",
            ErrorCode::MediaWrongKind => "media_wrong_kind",
            ErrorCode::MediaNotReady => "media_not_ready",
            ErrorCode::MediaAlreadyUsed => "media_already_used",
            ErrorCode::MediaUndecodable => "media_undecodable",
            ErrorCode::MediaLimitExceeded => "media_limit_exceeded",
            ErrorCode::MediaQuotaExceeded => "media_quota_exceeded",
            ErrorCode::PresignUnavailable => "presign_unavailable",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
        }
    }

    /// Every code, for documentation and exhaustiveness tests.
    pub const ALL: [ErrorCode; 34] = [
        ErrorCode::MalformedJson,
        ErrorCode::InvalidRequest,
        ErrorCode::ValidationFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::UsernameTaken,
        ErrorCode::InvalidCredentials,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidRefreshToken,
        ErrorCode::RefreshTokenReused,
        ErrorCode::RateLimited,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::NotAMember,
        ErrorCode::UnknownFrameType,
        ErrorCode::FrameTooLarge,
        ErrorCode::TooManyConnections,
        ErrorCode::RequestTimeout,
        ErrorCode::UnknownPushProvider,
        ErrorCode::InvalidPushToken,
        ErrorCode::InsecurePushEndpoint,
        ErrorCode::InvalidPushKeys,
        ErrorCode::MediaNotFound,
        ErrorCode::MediaWrongKind,
        ErrorCode::MediaNotReady,
        ErrorCode::MediaAlreadyUsed,
        ErrorCode::MediaUndecodable,
        ErrorCode::MediaLimitExceeded,
        ErrorCode::MediaQuotaExceeded,
        ErrorCode::PresignUnavailable,
        ErrorCode::RangeNotSatisfiable,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_protocol_docs() {
        let doc = include_str!("../../../docs/protocol.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
            assert!(doc.contains(&row), "docs/protocol.md lacks the row {row}");
        }
    }

    #[test]
    fn wire_name_matches_serde_name_for_every_code() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("serialize code");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }
}
