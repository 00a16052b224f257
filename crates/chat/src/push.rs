//! The push decision: who gets a notification for a new message.
//!
//! A member with at least one device viewing the room sees the message live
//! and is not pushed; every other member (online elsewhere in the app, or
//! offline) is. The author is never pushed. Delivery itself is a
//! [`PushNotifier`]: a logging one for now; the push issue adds real providers.

use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNotification {
    pub user_id: Uuid,
    pub room_id: Uuid,
    pub message_id: Uuid,
    pub seq: i64,
    pub author_id: Uuid,
    pub kind: String,
}

/// A stored message some members are due a push for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    pub room_id: Uuid,
    pub message_id: Uuid,
    pub seq: i64,
    pub author_id: Uuid,
    pub kind: String,
    /// The message's content (JSON text), for the push's text.
    pub content: String,
}

/// Where the push decision goes. `notify_many` gets every recipient of one
/// message at once (a real notifier stores them in one transaction); by
/// default it calls `notify` for each.
#[async_trait]
pub trait PushNotifier: Send + Sync {
    async fn notify(&self, notification: PushNotification);

    async fn notify_many(&self, message: &PushMessage, users: &[Uuid]) {
        for user_id in users {
            self.notify(PushNotification {
                user_id: *user_id,
                room_id: message.room_id,
                message_id: message.message_id,
                seq: message.seq,
                author_id: message.author_id,
                kind: message.kind.clone(),
            })
            .await;
        }
    }
}

/// Logs each decision; the default until push providers exist.
pub struct LogNotifier;

#[async_trait]
impl PushNotifier for LogNotifier {
    async fn notify(&self, n: PushNotification) {
        tracing::info!(user_id = %n.user_id, room_id = %n.room_id, seq = n.seq, "push notification due");
    }
}

/// Keeps every notification, for tests.
#[derive(Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<PushNotification>>,
}

impl RecordingNotifier {
    pub fn sent(&self) -> Vec<PushNotification> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl PushNotifier for RecordingNotifier {
    async fn notify(&self, notification: PushNotification) {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(notification);
        }
    }
}

/// The decision itself: members other than the author whose `in_room` flag
/// is false. `in_room[i]` belongs to `members[i]`.
pub fn to_notify(members: &[Uuid], in_room: &[bool], author: Uuid) -> Vec<Uuid> {
    members
        .iter()
        .zip(in_room)
        .filter(|(member, viewing)| **member != author && !**viewing)
        .map(|(member, _)| *member)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use iyagi_session::{Connection, MemorySessionStore, SessionStore};

    use super::*;

    /// The four cases of the issue, through a real session store.
    #[tokio::test]
    async fn in_room_no_online_elsewhere_yes_offline_yes_one_of_two_devices_in_room_no() {
        let sessions = MemorySessionStore::new();
        let room = Uuid::new_v4();
        let ttl = Duration::from_secs(60);
        let conn = |d: &str| Connection {
            device_id: d.to_owned(),
            connection_id: Uuid::new_v4(),
        };
        let (author, viewer, elsewhere, offline, two_devices) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let viewer_phone = conn("phone");
        sessions.connect(viewer, &viewer_phone, ttl).await.unwrap();
        sessions
            .enter_room(viewer, room, &viewer_phone, ttl)
            .await
            .unwrap();
        sessions
            .connect(elsewhere, &conn("phone"), ttl)
            .await
            .unwrap();
        let (tablet, phone) = (conn("tablet"), conn("phone"));
        sessions.connect(two_devices, &tablet, ttl).await.unwrap();
        sessions.connect(two_devices, &phone, ttl).await.unwrap();
        sessions
            .enter_room(two_devices, room, &tablet, ttl)
            .await
            .unwrap();
        // Viewing another room does not count.
        sessions
            .enter_room(elsewhere, Uuid::new_v4(), &conn("phone"), ttl)
            .await
            .unwrap();

        let members = [author, viewer, elsewhere, offline, two_devices];
        let flags = sessions.in_room_many(&members, room).await.unwrap();
        assert_eq!(
            to_notify(&members, &flags, author),
            vec![elsewhere, offline]
        );
    }
}
