//! [`PushService`]: turns the chat rules' push decision into notification
//! records and outbox deliveries, and tells the recipients' online devices
//! (the `notification` frame).
//!
//! The decisions arrive one message at a time (from the chat crate's
//! decision tasks, started by commit hooks, so nothing here delays an
//! `ack`); one recorder task gathers the decisions of a short window
//! ([`LINGER`]) and stores them in ONE transaction, with one registrations
//! query per round, and room facts cached for a second; the
//! `notification` frames go at most once a second per user (`frames.rs`). Per message, the notifications cost a few rows in the writer's
//! transaction and nothing else: a store write (and a handful of reads)
//! per message would compete with the message path for the same two cores
//! and SQLite's single write lock, which is what push must not cost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use iyagi_bus::Bus;
use iyagi_chat::{PushMessage, PushNotification, PushNotifier};
use iyagi_protocol::notifications::NotificationKind;
use iyagi_protocol::now_ms;
use iyagi_session::SessionStore;
use iyagi_store::{
    MemberRecord, NewDelivery, NotificationRecord, PushProvider, RoomKind, RoomRecord, Storage,
    StoreError,
};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::frames::{self, FrameThrottle};
use crate::stats::PushStats;
use crate::text;

/// Most decisions one recorder round stores (one transaction).
const ROUND_MAX: usize = 512;
/// How long a round gathers decisions after its first: pushes are not
/// latency-critical to the millisecond, and a window makes each round's
/// reads and write serve every message that arrived meanwhile.
pub const LINGER: Duration = Duration::from_millis(10);
/// How long a room's title and mutes are reused. A mute made on this node
/// applies at once (it clears the entry); one made on another node within
/// this time.
pub const ROOM_FACTS_TTL: Duration = Duration::from_secs(1);
/// Rooms cached at most (the cache is cleared when it is full).
const ROOM_FACTS_MAX: usize = 10_000;
pub struct PushService {
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) stats: Arc<PushStats>,
    /// The recorder's queue; the task ends when the service is dropped.
    decisions: mpsc::UnboundedSender<Decision>,
    /// Shared with the recorder, so a mute here clears its room's entry.
    pub(crate) room_facts: Arc<RoomFactsCache>,
    /// The Web Push (VAPID) public key, base64url, served to browsers; set
    /// once the key is loaded (it lives with the signing keys).
    vapid_public_key: std::sync::OnceLock<String>,
}

/// One message's push decision: the members due a push for it.
struct Decision {
    message: PushMessage,
    users: Vec<Uuid>,
}

/// What a stored message notification says (the record's payload).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct MessagePayload {
    pub title: String,
    pub body: String,
    pub message_kind: String,
}

impl PushService {
    /// Starts the recorder task (on the current runtime).
    pub fn new(
        store: Arc<dyn Storage>,
        sessions: Arc<dyn SessionStore>,
        bus: Arc<dyn Bus>,
        stats: Arc<PushStats>,
        wake: Arc<Notify>,
    ) -> PushService {
        let (decisions, queue) = mpsc::unbounded_channel();
        let room_facts = Arc::new(RoomFactsCache::default());
        let recorder = Recorder {
            store: store.clone(),
            sessions,
            bus,
            stats: stats.clone(),
            wake,
            room_facts: room_facts.clone(),
        };
        tokio::spawn(recorder.run(queue));
        PushService {
            store,
            stats,
            decisions,
            room_facts,
            vapid_public_key: std::sync::OnceLock::new(),
        }
    }

    /// Records the VAPID public key (the first call wins).
    pub fn set_vapid_public_key(&self, key: String) {
        let _ = self.vapid_public_key.set(key);
    }

    /// The VAPID public key ("" before it is set).
    pub fn vapid_public_key(&self) -> &str {
        self.vapid_public_key.get().map_or("", String::as_str)
    }

    pub fn stats(&self) -> &Arc<PushStats> {
        &self.stats
    }
}

/// The task that stores the queued decisions, a round at a time.
struct Recorder {
    store: Arc<dyn Storage>,
    sessions: Arc<dyn SessionStore>,
    bus: Arc<dyn Bus>,
    stats: Arc<PushStats>,
    /// Wakes the outbox worker when deliveries were added.
    wake: Arc<Notify>,
    room_facts: Arc<RoomFactsCache>,
}

/// A room as the recorder needs it: what its pushes are titled, and which
/// members muted it.
struct RoomFacts {
    room: RoomRecord,
    members: Vec<MemberRecord>,
    /// Direct rooms: the members' names (the title is the author's).
    names: HashMap<Uuid, String>,
}

/// Room facts by room id, each with when it was read.
#[derive(Default)]
pub(crate) struct RoomFactsCache {
    rooms: Mutex<HashMap<Uuid, (Instant, Arc<RoomFacts>)>>,
}

impl RoomFactsCache {
    fn get(&self, room: Uuid) -> Option<Arc<RoomFacts>> {
        let rooms = self.rooms.lock().ok()?;
        let (read_at, facts) = rooms.get(&room)?;
        (read_at.elapsed() < ROOM_FACTS_TTL).then(|| facts.clone())
    }

    fn put(&self, room: Uuid, facts: Arc<RoomFacts>) {
        if let Ok(mut rooms) = self.rooms.lock() {
            if rooms.len() >= ROOM_FACTS_MAX {
                rooms.clear();
            }
            rooms.insert(room, (Instant::now(), facts));
        }
    }

    /// A member's mute changed: read the room afresh next time.
    pub(crate) fn forget(&self, room: Uuid) {
        if let Ok(mut rooms) = self.rooms.lock() {
            rooms.remove(&room);
        }
    }
}

impl Recorder {
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Decision>) {
        let mut round = Vec::with_capacity(ROUND_MAX);
        let mut frames = FrameThrottle::default();
        loop {
            // Waits for decisions, or for the next held frame to come due.
            let received = match frames.next_due() {
                Some(due) => {
                    let due = tokio::time::Instant::from_std(due);
                    match tokio::time::timeout_at(due, queue.recv_many(&mut round, ROUND_MAX)).await
                    {
                        Ok(n) => n,
                        Err(_) => {
                            frames::send(
                                &*self.store,
                                &*self.sessions,
                                &*self.bus,
                                frames.take_due(Instant::now()),
                            )
                            .await;
                            continue;
                        }
                    }
                }
                None => queue.recv_many(&mut round, ROUND_MAX).await,
            };
            if received == 0 {
                return;
            }
            let deadline = tokio::time::Instant::now() + LINGER;
            while round.len() < ROUND_MAX {
                let room_left = ROUND_MAX - round.len();
                let more = queue.recv_many(&mut round, room_left);
                match tokio::time::timeout_at(deadline, more).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            match self.record(&round).await {
                Ok(stored) => frames.add(&stored),
                // The messages are stored; only these notifications are lost.
                Err(e) => {
                    tracing::error!(error = %e, decisions = round.len(), "storing notifications failed")
                }
            }
            round.clear();
            frames::send(
                &*self.store,
                &*self.sessions,
                &*self.bus,
                frames.take_due(Instant::now()),
            )
            .await;
        }
    }

    /// Stores a notification for each user due a push in `round` (but those
    /// who muted the room), with a delivery for each of their registrations,
    /// in one transaction; returns them.
    async fn record(&self, round: &[Decision]) -> Result<Vec<NotificationRecord>, StoreError> {
        let now = now_ms();
        let mut rooms: HashMap<Uuid, Option<Arc<RoomFacts>>> = HashMap::new();
        let mut notifications: Vec<NotificationRecord> = Vec::new();
        for Decision { message, users } in round {
            if let std::collections::hash_map::Entry::Vacant(entry) = rooms.entry(message.room_id) {
                entry.insert(self.room_facts(message.room_id).await?);
            }
            let Some(facts) = rooms.get(&message.room_id).and_then(Option::as_ref) else {
                continue;
            };
            let recipients: Vec<Uuid> = users
                .iter()
                .copied()
                .filter(|user| {
                    facts.members.iter().any(|m| {
                        m.user_id == *user && m.muted_until_ms.is_none_or(|until| until <= now)
                    })
                })
                .collect();
            if recipients.is_empty() {
                continue;
            }
            let title = match facts.room.kind {
                RoomKind::Group => facts.room.title.clone().unwrap_or_default(),
                RoomKind::Direct => facts
                    .names
                    .get(&message.author_id)
                    .cloned()
                    .unwrap_or_default(),
            };
            let payload = serde_json::to_string(&MessagePayload {
                title,
                body: text::body(&message.kind, &message.content),
                message_kind: message.kind.clone(),
            })
            .unwrap_or_default();
            notifications.extend(recipients.iter().map(|user| NotificationRecord {
                id: Uuid::now_v7(),
                user_id: *user,
                kind: NotificationKind::Message.as_str().to_owned(),
                room_id: Some(message.room_id),
                message_id: Some(message.message_id),
                author_id: Some(message.author_id),
                seq: Some(message.seq),
                payload: payload.clone(),
                created_at_ms: now,
            }));
        }
        if notifications.is_empty() {
            return Ok(notifications);
        }
        let mut users: Vec<Uuid> = notifications.iter().map(|n| n.user_id).collect();
        users.sort_unstable();
        users.dedup();
        let registrations = self.store.registrations_for(&users).await?;
        let mut by_user: HashMap<Uuid, Vec<&iyagi_store::Registration>> = HashMap::new();
        for r in &registrations {
            by_user.entry(r.user_id).or_default().push(r);
        }
        // A device shows only a room's newest push: the round's pushes for
        // one room and registration collapse into the newest here, and
        // into a delivery still waiting in the outbox in the store.
        let mut newest: HashMap<(Uuid, &str, PushProvider, String), NewDelivery> = HashMap::new();
        for n in &notifications {
            let collapse_key = collapse_key(n);
            for r in by_user.get(&n.user_id).into_iter().flatten() {
                newest.insert(
                    (
                        r.user_id,
                        r.device_id.as_str(),
                        r.provider,
                        collapse_key.clone(),
                    ),
                    NewDelivery {
                        id: Uuid::now_v7(),
                        notification_id: n.id,
                        user_id: r.user_id,
                        device_id: r.device_id.clone(),
                        provider: r.provider,
                        collapse_key: collapse_key.clone(),
                        next_attempt_at_ms: now,
                    },
                );
            }
        }
        let mut deliveries: Vec<NewDelivery> = newest.into_values().collect();
        deliveries.sort_by_key(|d| d.id);
        self.store
            .append_notifications(&notifications, &deliveries)
            .await?;
        self.stats.stored(notifications.len() as u64);
        if !deliveries.is_empty() {
            self.wake.notify_one();
        }
        Ok(notifications)
    }

    /// A room's title and mutes, from the cache or the store; `None` for a
    /// room that is gone.
    async fn room_facts(&self, room_id: Uuid) -> Result<Option<Arc<RoomFacts>>, StoreError> {
        if let Some(facts) = self.room_facts.get(room_id) {
            return Ok(Some(facts));
        }
        let Some(room) = self.store.room(room_id).await? else {
            return Ok(None);
        };
        let members = self.store.members(room_id).await?;
        let mut names = HashMap::new();
        if room.kind == RoomKind::Direct {
            for member in &members {
                if let Some(user) = self.store.user_by_id(member.user_id).await? {
                    names.insert(user.id, user.username);
                }
            }
        }
        let facts = Arc::new(RoomFacts {
            room,
            members,
            names,
        });
        self.room_facts.put(room_id, facts.clone());
        Ok(Some(facts))
    }
}

/// What a notification's pushes collapse by: its room (the collapse key
/// the providers are given too), or itself when it has none.
pub(crate) fn collapse_key(n: &NotificationRecord) -> String {
    n.room_id.unwrap_or(n.id).to_string()
}

#[async_trait]
impl PushNotifier for PushService {
    async fn notify(&self, n: PushNotification) {
        let message = PushMessage {
            room_id: n.room_id,
            message_id: n.message_id,
            seq: n.seq,
            author_id: n.author_id,
            kind: n.kind,
            content: "{}".to_owned(),
        };
        self.notify_many(&message, &[n.user_id]).await;
    }

    async fn notify_many(&self, message: &PushMessage, users: &[Uuid]) {
        let decision = Decision {
            message: message.clone(),
            users: users.to_vec(),
        };
        if self.decisions.send(decision).is_err() {
            tracing::warn!(room_id = %message.room_id, seq = message.seq, "push recorder stopped; a message goes without its notifications");
        }
    }
}
