use iyagi_store::StoreError;
use thiserror::Error;

/// Why a media request failed; the server maps each to one error code.
#[derive(Debug, Error)]
pub enum MediaError {
    /// No such media, or not one the caller may see or use.
    #[error("no such media")]
    NotFound,
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    TypeMismatch(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Undecodable(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    NotReady(String),
    #[error(
        "presigned uploads need S3 storage; this server keeps media on its disk (upload with POST /v1/media)"
    )]
    PresignUnavailable,
    #[error("{0}")]
    Validation(String),
    #[error("the range is outside the file")]
    RangeNotSatisfiable { size: u64 },
    #[error("the upload did not arrive in time")]
    Timeout,
    #[error("the upload could not be read")]
    BodyRead,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The object store or the spool failed (logged; the client sees `unavailable`).
    #[error("media storage failed: {0}")]
    Storage(String),
}

impl MediaError {
    /// The `rejects` metric's reason label.
    pub fn reason(&self) -> &'static str {
        match self {
            MediaError::NotFound => "not_found",
            MediaError::Unsupported(_) => "unsupported_type",
            MediaError::TypeMismatch(_) => "type_mismatch",
            MediaError::TooLarge(_) => "too_large",
            MediaError::Undecodable(_) => "undecodable",
            MediaError::LimitExceeded(_) => "limit_exceeded",
            MediaError::QuotaExceeded(_) => "quota",
            MediaError::RateLimited(_) => "rate_limited",
            MediaError::NotReady(_) => "not_ready",
            MediaError::PresignUnavailable => "presign_unavailable",
            MediaError::Validation(_) => "validation",
            MediaError::RangeNotSatisfiable { .. } => "range",
            MediaError::Timeout => "timeout",
            MediaError::BodyRead => "body_read",
            MediaError::Store(_) | MediaError::Storage(_) => "storage",
        }
    }
}

impl From<object_store::Error> for MediaError {
    fn from(err: object_store::Error) -> MediaError {
        match err {
            object_store::Error::NotFound { .. } => MediaError::NotFound,
            other => MediaError::Storage(other.to_string()),
        }
    }
}

impl From<std::io::Error> for MediaError {
    fn from(err: std::io::Error) -> MediaError {
        MediaError::Storage(format!("spool: {err}"))
    }
}
