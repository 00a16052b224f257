use iyagi_store::StoreError;
use thiserror::Error;

use crate::validate::ValidationError;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("username is already taken")]
    UsernameTaken,
    /// Same error for unknown user and wrong password, on purpose.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The reason is for logs; clients see one generic message.
    #[error("not authenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("refresh token was already used; the device has been signed out")]
    RefreshTokenReused,
    #[error("too many attempts")]
    RateLimited { retry_after_secs: u64 },
    #[error("device not found")]
    DeviceNotFound,
    #[error("signing key error: {0}")]
    Keys(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}
