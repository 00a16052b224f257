//! [`ChatService`]: the rules of rooms and messages, one area per module
//! (`gate` — locks, membership checks, the member cache, publishing;
//! `rooms`, `membership`, `messages`, `presence`, `catchup`). Its answers
//! are wire values (`iyagi-protocol` types); storage rows stay inside.

use std::sync::Arc;

use iyagi_bus::Bus;
use iyagi_protocol::chat::MessageView;
use iyagi_session::SessionStore;
use iyagi_store::{Appended, PendingAppend, Storage};
use uuid::Uuid;

use crate::members_cache::MembersCache;
use crate::push::PushNotifier;
use crate::views;

/// Room locks, shared by all rooms by striping (see `gate.rs` for what
/// they order), so the set never needs cleaning.
const ROOM_LOCK_STRIPES: usize = 1024;

/// The device id of messages the server writes (system messages).
pub(crate) const SERVER_DEVICE: &str = "server";

#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Catch-up replays at most this many messages per room; more gets `reload`.
    pub max_replay: i64,
    /// Presence changes are pushed to direct peers and to members of groups
    /// of at most this many members; larger groups ask (`presence` frame).
    pub presence_max_group_members: u32,
    /// A room's cached member list is read again after this long, so an
    /// invalidation lost on the bus leaves it stale for no longer.
    pub members_cache_ttl: std::time::Duration,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_replay: 1000,
            presence_max_group_members: 100,
            members_cache_ttl: std::time::Duration::from_secs(10),
        }
    }
}

/// The result of a read marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    pub room_id: Uuid,
    pub read_seq: i64,
    pub unread: i64,
}

/// The result of a membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    /// False when there was nothing to change (already a member, not a member).
    pub changed: bool,
}

/// A stored client message (a send, a reaction), as its `ack` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub message: MessageView,
    /// True when this was a retry of an already stored message.
    pub duplicate: bool,
}

impl From<Appended> for Sent {
    fn from(appended: Appended) -> Sent {
        Sent {
            message: views::message(&appended.message),
            duplicate: appended.duplicate,
        }
    }
}

/// A send queued for storage (see [`ChatService::queue_send`]).
pub struct PendingSend {
    pub(crate) stored: PendingAppend,
}

pub struct ChatService {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) limits: ChatLimits,
    pub(crate) room_locks: Vec<tokio::sync::Mutex<()>>,
    /// Member ids per room (see [`MembersCache`] for what keeps it fresh).
    pub(crate) members_cache: Arc<MembersCache>,
    /// Push decisions, in seq order per room.
    pub(crate) push_queue: Arc<crate::push_queue::PushQueue>,
}

pub(crate) use iyagi_protocol::now_ms;

impl ChatService {
    pub fn new(
        store: Arc<dyn Storage>,
        sessions: Arc<dyn SessionStore>,
        bus: Arc<dyn Bus>,
        push: Arc<dyn PushNotifier>,
        limits: ChatLimits,
    ) -> ChatService {
        let room_locks = (0..ROOM_LOCK_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        let members_cache = MembersCache::new(bus.as_ref(), limits.members_cache_ttl);
        // The push decisions' tasks (a store may run commit hooks outside
        // the runtime's context, so they are started here).
        let runtime = tokio::runtime::Handle::current();
        let push_queue = Arc::new(crate::push_queue::PushQueue::start(
            &runtime,
            sessions.clone(),
            push.clone(),
        ));
        ChatService {
            store,
            sessions,
            bus,
            limits,
            push_queue,
            room_locks,
            members_cache,
        }
    }

    pub fn limits(&self) -> ChatLimits {
        self.limits
    }
}
