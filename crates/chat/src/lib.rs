//! The messenger's rules.
//!
//! [`ChatService`] decides who may do what in which room, turns client
//! intents into stored messages (through `iyagi-store`), hands every stored
//! message to the bus for live delivery, and decides which members get a
//! push notification ([`push`]). It knows nothing of sockets or HTTP, and
//! it answers in wire values (`iyagi-protocol`): storage rows stay inside.

mod catchup;
mod error;
mod gate;
mod media;
mod members_cache;
mod membership;
mod messages;
mod presence;
pub mod push;
mod push_queue;
mod rooms;
mod service;
mod unread;
mod validate;
mod views;

pub use catchup::{CatchUp, REPLAY_PAGE, ReplayPlan};
pub use error::{ChatError, MediaProblem};
pub use push::{
    LogNotifier, PushMessage, PushNotification, PushNotifier, RecordingNotifier, to_notify,
};
pub use service::{ChatLimits, ChatService, Membership, PendingSend, ReadOutcome, Sent};
pub use validate::page_limit;
