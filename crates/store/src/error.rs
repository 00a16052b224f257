use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique constraint was violated (e.g. username taken).
    #[error("conflict with an existing row")]
    Conflict,
    /// A row the operation depends on does not exist.
    #[error("not found")]
    NotFound,
    /// A limit the caller set (e.g. a room's member count) would be exceeded.
    #[error("limit reached")]
    LimitReached,
    /// A batched write failed as a whole; nothing of it was stored.
    #[error("write failed: {0}")]
    WriteFailed(String),
    #[error("database url must start with sqlite: or postgres:")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create database directory: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Database(err),
        }
    }
}

impl StoreError {
    /// The append writer is gone (the store was closed).
    pub(crate) fn writer_stopped() -> StoreError {
        StoreError::WriteFailed("the writer has stopped".to_owned())
    }

    /// True when the database could not be reached (pool timeout, I/O), as
    /// opposed to a query that failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
            )
        )
    }
}
