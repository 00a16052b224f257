//! Push notifications: every push is first a record in the notification
//! store (append-only), then deliveries in a durable outbox that a worker
//! drains through the providers (FCM, APNs, Web Push), with retries.
//!
//! [`PushService`] is the chat crate's [`iyagi_chat::PushNotifier`]: the
//! chat rules decide *who* is due a push (members not viewing the room);
//! this crate decides what it says, keeps it, and delivers it.

mod frames;
mod inbox;
mod provider;
pub mod providers;
mod service;
mod settings;
mod stats;
mod text;
mod worker;

pub use inbox::{NewRegistration, PushError, provider};
pub use provider::{OutgoingPush, Provider, RecordingProvider, SendError, Sent};
pub use service::PushService;
pub use settings::{ApnsEnvironment, ApnsSettings, FcmSettings, PushSettings, WebPushSettings};
pub use stats::PushStats;
pub use text::BODY_MAX_CHARS;
pub use worker::{OutboxWorker, WorkerPriority, WorkerSettings};
