//! The embedded session store: two maps behind one mutex.
//!
//! A std `Mutex` rather than tokio's: it is never held across an `.await`,
//! and every critical section is a few hash-map operations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use crate::{Connection, SessionError, SessionStore, distinct_devices};

/// member -> expiry
type Entries = HashMap<String, Instant>;

#[derive(Default)]
pub struct MemorySessionStore {
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    users: HashMap<Uuid, Entries>,
    views: HashMap<(Uuid, Uuid), Entries>,
}

impl MemorySessionStore {
    pub fn new() -> MemorySessionStore {
        MemorySessionStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Maps) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of a
        // cache of live state; the maps are still structurally valid.
        let mut maps = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut maps)
    }
}

/// Drops expired entries; true when some remain.
fn prune(entries: &mut Entries, now: Instant) -> bool {
    entries.retain(|_, expires| *expires > now);
    !entries.is_empty()
}

fn live(entries: Option<&Entries>, now: Instant) -> Vec<String> {
    entries
        .map(|e| {
            e.iter()
                .filter(|(_, exp)| **exp > now)
                .map(|(m, _)| m.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn connect(
        &self,
        user: Uuid,
        conn: &Connection,
        ttl: Duration,
    ) -> Result<bool, SessionError> {
        let now = Instant::now();
        Ok(self.with(|maps| {
            let entries = maps.users.entry(user).or_default();
            let was_online = prune(entries, now);
            entries.insert(conn.member(), now + ttl);
            !was_online
        }))
    }

    async fn disconnect(
        &self,
        user: Uuid,
        conn: &Connection,
        viewing: Option<Uuid>,
    ) -> Result<bool, SessionError> {
        let now = Instant::now();
        Ok(self.with(|maps| {
            if let Some(room) = viewing {
                remove(&mut maps.views, (user, room), &conn.member(), now);
            }
            !remove(&mut maps.users, user, &conn.member(), now)
        }))
    }

    async fn heartbeat(
        &self,
        user: Uuid,
        conn: &Connection,
        viewing: Option<Uuid>,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let expires = Instant::now() + ttl;
        self.with(|maps| {
            maps.users
                .entry(user)
                .or_default()
                .insert(conn.member(), expires);
            if let Some(room) = viewing {
                maps.views
                    .entry((user, room))
                    .or_default()
                    .insert(conn.member(), expires);
            }
        });
        Ok(())
    }

    async fn enter_room(
        &self,
        user: Uuid,
        room: Uuid,
        conn: &Connection,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        self.with(|maps| {
            let entries = maps.views.entry((user, room)).or_default();
            prune(entries, now);
            entries.insert(conn.member(), now + ttl);
        });
        Ok(())
    }

    async fn leave_room(
        &self,
        user: Uuid,
        room: Uuid,
        conn: &Connection,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        self.with(|maps| remove(&mut maps.views, (user, room), &conn.member(), now));
        Ok(())
    }

    async fn is_online(&self, user: Uuid) -> Result<bool, SessionError> {
        let now = Instant::now();
        Ok(self.with(|maps| {
            maps.users
                .get(&user)
                .is_some_and(|e| e.values().any(|exp| *exp > now))
        }))
    }

    async fn online_devices(&self, user: Uuid) -> Result<Vec<String>, SessionError> {
        let now = Instant::now();
        Ok(distinct_devices(
            self.with(|maps| live(maps.users.get(&user), now)),
        ))
    }

    async fn in_room(&self, user: Uuid, room: Uuid) -> Result<bool, SessionError> {
        let now = Instant::now();
        Ok(self.with(|maps| {
            maps.views
                .get(&(user, room))
                .is_some_and(|e| e.values().any(|exp| *exp > now))
        }))
    }

    async fn devices_in_room(&self, user: Uuid, room: Uuid) -> Result<Vec<String>, SessionError> {
        let now = Instant::now();
        Ok(distinct_devices(
            self.with(|maps| live(maps.views.get(&(user, room)), now)),
        ))
    }

    async fn in_room_many(&self, users: &[Uuid], room: Uuid) -> Result<Vec<bool>, SessionError> {
        let now = Instant::now();
        Ok(self.with(|maps| {
            users
                .iter()
                .map(|u| any_live(&maps.views, &(*u, room), now))
                .collect()
        }))
    }

    async fn online_many(&self, users: &[Uuid]) -> Result<Vec<bool>, SessionError> {
        let now = Instant::now();
        Ok(self.with(|maps| {
            users
                .iter()
                .map(|u| any_live(&maps.users, u, now))
                .collect()
        }))
    }

    async fn ping(&self) -> Result<(), SessionError> {
        Ok(())
    }
}

fn any_live<K: std::hash::Hash + Eq>(map: &HashMap<K, Entries>, key: &K, now: Instant) -> bool {
    map.get(key)
        .is_some_and(|e| e.values().any(|exp| *exp > now))
}

/// Removes a member; drops the key when nothing live remains. True when
/// live entries remain.
fn remove<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Entries>,
    key: K,
    member: &str,
    now: Instant,
) -> bool {
    let Some(entries) = map.get_mut(&key) else {
        return false;
    };
    entries.remove(member);
    let remaining = prune(entries, now);
    if !remaining {
        map.remove(&key);
    }
    remaining
}
