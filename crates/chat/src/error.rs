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
    /// An `image` or `voice` message's media cannot back it.
    #[error("{0}")]
    Media(MediaProblem),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Why a media message's upload cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MediaProblem {
    /// No such media, or another user's (not told apart).
    #[error("no such media among your uploads")]
    NotFound,
    #[error("the media is of another kind than the message")]
    WrongKind,
    #[error("the media's upload is not complete yet")]
    NotReady,
    #[error("the media already backs another message; upload it again to send it again")]
    AlreadyUsed,
}
