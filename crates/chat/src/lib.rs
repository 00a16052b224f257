//! The messenger's rules.
//!
//! [`ChatService`] decides who may do what in which room, turns client
//! intents into stored messages (through `iyagi-store`), hands every stored
//! message to the [`Bus`] for live delivery, and decides which members get a
//! push notification ([`push`]). It knows nothing of sockets or HTTP.

mod error;
mod members_cache;
pub mod push;
mod service;
mod validate;
pub mod views;

pub use error::ChatError;
pub use iyagi_bus::{
    Bus, BusState, ConnectionEntry, Delivery, Hub, LocalBus, NatsBus, Outbound, RoomFrame, SyncEnd,
};
pub use push::{LogNotifier, PushNotification, PushNotifier, RecordingNotifier, to_notify};
pub use service::{ChatLimits, ChatService, Membership, PendingSend, ReadOutcome, encode_frame};
