use iyagi_session::SessionError;
use iyagi_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ChatError {
    /// Not a member of the room, or no such room (the two are not told apart,
    /// so room ids cannot be probed).
    #[error("you are not a member of this room")]
    NotAMember,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Forbidden(&'static str),
    /// A room-list cursor this server did not issue.
    #[error("cursor is not one this server issued")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
}
