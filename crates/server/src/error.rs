//! The one place where failures become protocol errors.
//!
//! Every handler returns `Result<_, ApiError>`. Conversions from service
//! errors pick the stable [`ErrorCode`]; internal causes are logged (inside
//! the request's span, so with its request id) and never shown to clients.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use iyagi_auth::AuthError;
use iyagi_chat::ChatError;
use iyagi_protocol::{ErrorBody, ErrorCode};
use iyagi_session::SessionError;
use iyagi_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(ErrorCode::NotFound, "no such resource")
    }

    pub(crate) fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(
            ErrorCode::Internal,
            "internal error; see the server log for this request id",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        if err.is_unavailable() {
            tracing::error!(error = %err, "database unavailable");
            return ApiError::new(
                ErrorCode::Unavailable,
                "the database is unavailable; retry later",
            );
        }
        ApiError::internal(&err)
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        match err {
            AuthError::Validation(e) => ApiError::new(ErrorCode::ValidationFailed, e.0),
            AuthError::UsernameTaken => {
                ApiError::new(ErrorCode::UsernameTaken, "username is already taken")
            }
            AuthError::InvalidCredentials => ApiError::new(
                ErrorCode::InvalidCredentials,
                "invalid username or password",
            ),
            AuthError::Unauthenticated(reason) => {
                tracing::debug!(reason, "authentication failed");
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "missing, invalid, expired or revoked access token",
                )
            }
            AuthError::InvalidRefreshToken => ApiError::new(
                ErrorCode::InvalidRefreshToken,
                "refresh token is invalid, expired or revoked",
            ),
            AuthError::RefreshTokenReused => ApiError::new(
                ErrorCode::RefreshTokenReused,
                "refresh token was already used; this device has been signed out, log in again",
            ),
            AuthError::RateLimited { retry_after_secs } => ApiError {
                code: ErrorCode::RateLimited,
                message: format!("too many attempts; retry in {retry_after_secs} s"),
                retry_after_secs: Some(retry_after_secs),
            },
            AuthError::DeviceNotFound => ApiError::new(ErrorCode::NotFound, "no such device"),
            AuthError::Store(e) => e.into(),
            AuthError::Keys(e) | AuthError::Internal(e) => ApiError::internal(&e),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> ApiError {
        tracing::error!(error = %err, "session store unavailable");
        ApiError::new(
            ErrorCode::Unavailable,
            "the session store is unavailable; retry later",
        )
    }
}

impl From<ChatError> for ApiError {
    fn from(err: ChatError) -> ApiError {
        match err {
            ChatError::NotAMember => {
                ApiError::new(ErrorCode::NotAMember, "you are not a member of this room")
            }
            ChatError::NotFound(what) => ApiError::new(ErrorCode::NotFound, what),
            ChatError::Validation(message) => ApiError::new(ErrorCode::ValidationFailed, message),
            ChatError::Forbidden(why) => ApiError::new(ErrorCode::Forbidden, why),
            ChatError::BadCursor => ApiError::new(
                ErrorCode::InvalidRequest,
                "cursor is not one this server issued",
            ),
            ChatError::Media(problem) => {
                use iyagi_chat::MediaProblem;
                let code = match problem {
                    MediaProblem::NotFound => ErrorCode::MediaNotFound,
                    MediaProblem::WrongKind => ErrorCode::MediaWrongKind,
                    MediaProblem::NotReady => ErrorCode::MediaNotReady,
                    MediaProblem::AlreadyUsed => ErrorCode::MediaAlreadyUsed,
                };
                ApiError::new(code, problem.to_string())
            }
            ChatError::Store(e) => e.into(),
            ChatError::Session(e) => e.into(),
        }
    }
}

impl From<iyagi_push::PushError> for ApiError {
    fn from(err: iyagi_push::PushError) -> ApiError {
        use iyagi_push::PushError;
        let message = err.to_string();
        match err {
            PushError::UnknownProvider(_) => ApiError::new(ErrorCode::UnknownPushProvider, message),
            PushError::InvalidToken(_) => ApiError::new(ErrorCode::InvalidPushToken, message),
            PushError::InsecureEndpoint => ApiError::new(ErrorCode::InsecurePushEndpoint, message),
            PushError::InvalidKeys(_) => ApiError::new(ErrorCode::InvalidPushKeys, message),
            PushError::NotAMember => ApiError::new(ErrorCode::NotAMember, message),
            PushError::Validation(_) => ApiError::new(ErrorCode::ValidationFailed, message),
            // The device was signed out while registering: its session is gone.
            PushError::NoDevice => {
                ApiError::new(ErrorCode::Unauthenticated, "this device session has ended")
            }
            PushError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(ErrorBody {
                code: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == ErrorCode::Unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<iyagi_media::MediaError> for ApiError {
    fn from(err: iyagi_media::MediaError) -> ApiError {
        use iyagi_media::MediaError;
        let message = err.to_string();
        match err {
            MediaError::NotFound => ApiError::new(ErrorCode::MediaNotFound, message),
            MediaError::Unsupported(_) | MediaError::TypeMismatch(_) => {
                ApiError::new(ErrorCode::UnsupportedMediaType, message)
            }
            MediaError::TooLarge(_) => ApiError::new(ErrorCode::PayloadTooLarge, message),
            MediaError::Undecodable(_) => ApiError::new(ErrorCode::MediaUndecodable, message),
            MediaError::LimitExceeded(_) => ApiError::new(ErrorCode::MediaLimitExceeded, message),
            MediaError::QuotaExceeded(_) => ApiError::new(ErrorCode::MediaQuotaExceeded, message),
            MediaError::RateLimited(_) => ApiError::new(ErrorCode::RateLimited, message),
            MediaError::NotReady(_) => ApiError::new(ErrorCode::MediaNotReady, message),
            MediaError::PresignUnavailable => ApiError::new(ErrorCode::PresignUnavailable, message),
            MediaError::Validation(_) => ApiError::new(ErrorCode::ValidationFailed, message),
            MediaError::RangeNotSatisfiable { .. } => {
                ApiError::new(ErrorCode::RangeNotSatisfiable, message)
            }
            MediaError::Timeout => ApiError::new(ErrorCode::RequestTimeout, message),
            MediaError::BodyRead => ApiError::new(ErrorCode::InvalidRequest, message),
            MediaError::Store(e) => e.into(),
            MediaError::Storage(why) => {
                tracing::error!(error = %why, "media storage failed");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "media storage is unavailable; try again",
                )
            }
        }
    }
}

impl From<iyagi_moderation::ModerationError> for ApiError {
    fn from(err: iyagi_moderation::ModerationError) -> ApiError {
        use iyagi_moderation::ModerationError;
        let message = err.to_string();
        match err {
            ModerationError::NotAMember => ApiError::new(ErrorCode::NotAMember, message),
            ModerationError::NotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            ModerationError::Validation(_) => ApiError::new(ErrorCode::ValidationFailed, message),
            ModerationError::RateLimited(_) => ApiError::new(ErrorCode::RateLimited, message),
            ModerationError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            ModerationError::Store(e) => e.into(),
        }
    }
}
