//! Member ids per room, so a send reads no database.
//!
//! The cache decides who may send and who receives, so it must never be
//! trusted beyond what keeps it fresh. Entries are dropped on every
//! membership change, on every node (through the bus); and because a bus
//! event can be lost, the cache also falls back to the database on its
//! own:
//! - while the bus is disconnected, it holds nothing (every look-up reads
//!   the database);
//! - when events may have been lost (a disconnect, a reconnect, a
//!   subscriber that fell behind), it is emptied;
//! - each entry lives at most `ttl`, which bounds how stale an entry can
//!   get through a lost event the bus did not notice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use iyagi_bus::{Bus, BusState};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Rooms cached at most; past it the cache starts over.
const ROOMS_MAX: usize = 100_000;

struct Entry {
    members: Arc<Vec<Uuid>>,
    fetched: Instant,
}

pub(crate) struct MembersCache {
    // std Mutex: never held across an await.
    entries: Mutex<HashMap<Uuid, Entry>>,
    ttl: Duration,
    bus: watch::Receiver<BusState>,
}

impl MembersCache {
    /// A cache kept fresh by `bus` (and its own `ttl`).
    pub(crate) fn new(bus: &dyn Bus, ttl: Duration) -> Arc<MembersCache> {
        let cache = Arc::new(MembersCache {
            entries: Mutex::default(),
            ttl,
            bus: bus.state(),
        });
        tokio::spawn(forget_changed_rooms(
            bus.room_changes(),
            Arc::downgrade(&cache),
        ));
        tokio::spawn(forget_all_when_events_were_lost(
            bus.state(),
            Arc::downgrade(&cache),
        ));
        cache
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's members if cached and fresh.
    pub(crate) fn get(&self, room: Uuid) -> Option<Arc<Vec<Uuid>>> {
        if !self.bus.borrow().connected {
            return None;
        }
        let entries = self.entries();
        let entry = entries.get(&room)?;
        (entry.fetched.elapsed() < self.ttl).then(|| entry.members.clone())
    }

    /// Remembers members just read from the database (not while the bus
    /// is disconnected: nothing would tell us they changed).
    pub(crate) fn put(&self, room: Uuid, members: Arc<Vec<Uuid>>, fetched: Instant) {
        if !self.bus.borrow().connected {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= ROOMS_MAX {
            entries.clear();
        }
        entries.insert(room, Entry { members, fetched });
    }

    pub(crate) fn forget(&self, room: Uuid) {
        self.entries().remove(&room);
    }

    fn clear(&self) {
        self.entries().clear();
    }
}

async fn forget_changed_rooms(mut changes: broadcast::Receiver<Uuid>, cache: Weak<MembersCache>) {
    loop {
        let room = match changes.recv().await {
            Ok(room) => Some(room),
            // Missed some: forget everything rather than keep a stale entry.
            Err(broadcast::error::RecvError::Lagged(_)) => None,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(cache) = cache.upgrade() else { return };
        match room {
            Some(room) => cache.forget(room),
            None => cache.clear(),
        }
    }
}

async fn forget_all_when_events_were_lost(
    mut state: watch::Receiver<BusState>,
    cache: Weak<MembersCache>,
) {
    while state.changed().await.is_ok() {
        let Some(cache) = cache.upgrade() else { return };
        tracing::info!(state = ?*state.borrow(), "bus events may have been lost: member cache emptied");
        cache.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iyagi_bus::{Hub, LocalBus};

    #[tokio::test]
    async fn an_entry_lives_at_most_its_ttl() {
        let bus = LocalBus::new(Arc::new(Hub::new()));
        let cache = MembersCache::new(&bus, Duration::from_millis(100));
        let room = Uuid::now_v7();
        let members = Arc::new(vec![Uuid::now_v7()]);
        cache.put(room, members.clone(), Instant::now());
        assert_eq!(cache.get(room), Some(members.clone()));
        cache.put(room, members, Instant::now() - Duration::from_millis(150));
        assert_eq!(cache.get(room), None, "stale: read the database again");
    }
}
