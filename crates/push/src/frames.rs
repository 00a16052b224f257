//! The `notification` frame: at most one per user per interval
//! ([`FRAME_INTERVAL`]), announcing together what came meanwhile, with the
//! counts read in one query per batch of frames due.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use iyagi_bus::{Bus, Delivery};
use iyagi_protocol::ws::ServerFrame;
use iyagi_session::SessionStore;
use iyagi_store::{NotificationRecord, Storage};
use uuid::Uuid;

/// A user gets at most one `notification` frame this often: the first
/// notification after a quiet spell is announced in its round, later ones
/// wait for the interval and are announced together (`added`). A frame
/// per round would, in a busy conversation, add a frame per user every
/// 10 ms on top of the messages themselves.
pub const FRAME_INTERVAL: Duration = Duration::from_secs(1);
/// The `notification` frame counts unread notifications up to this (so a
/// frame costs the same whatever the backlog); the inbox's unread endpoint
/// gives the exact count.
pub const FRAME_UNREAD_CAP: i64 = 100;

/// The `notification` frames not sent yet, and when each user's last went.
#[derive(Default)]
pub(crate) struct FrameThrottle {
    users: HashMap<Uuid, UserFrames>,
}

struct UserFrames {
    last_sent: Option<Instant>,
    /// Notifications added since the last frame, and the newest of them.
    added: u32,
    newest: Option<NotificationRecord>,
}

impl FrameThrottle {
    pub(crate) fn add(&mut self, notifications: &[NotificationRecord]) {
        for n in notifications {
            let user = self.users.entry(n.user_id).or_insert(UserFrames {
                last_sent: None,
                added: 0,
                newest: None,
            });
            user.added = user.added.saturating_add(1);
            user.newest = Some(n.clone());
        }
    }

    /// Takes the frames due now (their users marked as sent), and forgets
    /// users with nothing pending whose interval has passed (so the map
    /// holds only users notified within the last interval).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<(Uuid, u32, NotificationRecord)> {
        let mut due = Vec::new();
        self.users.retain(|user_id, user| {
            let free = user
                .last_sent
                .is_none_or(|at| now.duration_since(at) >= FRAME_INTERVAL);
            match (free, user.newest.take()) {
                (true, Some(newest)) => {
                    due.push((*user_id, user.added, newest));
                    user.added = 0;
                    user.last_sent = Some(now);
                    true
                }
                (false, Some(newest)) => {
                    user.newest = Some(newest);
                    true
                }
                (free, None) => !free,
            }
        });
        due
    }

    /// When the next pending frame comes due, if any is pending.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.users
            .values()
            .filter(|user| user.newest.is_some())
            .map(|user| {
                user.last_sent
                    .map_or_else(Instant::now, |at| at + FRAME_INTERVAL)
            })
            .min()
    }
}

/// Sends the `notification` frames that came due, to users with a device
/// online, with the counts read in one query.
pub(crate) async fn send(
    store: &dyn Storage,
    sessions: &dyn SessionStore,
    bus: &dyn Bus,
    due: Vec<(Uuid, u32, NotificationRecord)>,
) {
    if due.is_empty() {
        return;
    }
    let users: Vec<Uuid> = due.iter().map(|(user, _, _)| *user).collect();
    let online = match sessions.online_many(&users).await {
        Ok(online) => online,
        Err(e) => {
            tracing::warn!(error = %e, "session store unavailable: no notification frames");
            return;
        }
    };
    let online: Vec<Uuid> = users
        .iter()
        .zip(online)
        .filter_map(|(user, online)| online.then_some(*user))
        .collect();
    if online.is_empty() {
        return;
    }
    let counts = match store.inbox_counts(&online, FRAME_UNREAD_CAP).await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = %e, "inbox counts unavailable: no notification frames");
            return;
        }
    };
    let due: HashMap<Uuid, (u32, NotificationRecord)> = due
        .into_iter()
        .map(|(user, added, newest)| (user, (added, newest)))
        .collect();
    for count in counts {
        let Some((added, newest)) = due.get(&count.user_id) else {
            continue;
        };
        let frame = ServerFrame::Notification {
            notification: crate::inbox::view(newest, None),
            added: *added,
            unread_notifications: count.unread_notifications,
            badge: count.badge,
        };
        let frame = serde_json::to_string(&frame).unwrap_or_default();
        bus.deliver(&[count.user_id], Delivery::Frame(frame.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(user_id: Uuid) -> NotificationRecord {
        NotificationRecord {
            id: Uuid::now_v7(),
            user_id,
            kind: "message".to_owned(),
            room_id: None,
            message_id: None,
            author_id: None,
            seq: None,
            payload: "{}".to_owned(),
            created_at_ms: 0,
        }
    }

    #[test]
    fn a_users_frames_are_held_for_the_interval_and_announced_together() {
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut frames = FrameThrottle::default();
        let start = Instant::now();
        frames.add(&[notification(alice)]);
        let due = frames.take_due(start);
        assert_eq!(due.len(), 1, "the first goes at once");
        assert_eq!((due[0].0, due[0].1), (alice, 1));
        assert_eq!(frames.next_due(), None, "nothing pending");

        let (second, third) = (notification(alice), notification(alice));
        frames.add(&[second, third.clone(), notification(bob)]);
        let due = frames.take_due(start + Duration::from_millis(10));
        assert_eq!(
            due.iter().map(|d| (d.0, d.1)).collect::<Vec<_>>(),
            vec![(bob, 1)],
            "alice's wait for her interval; bob's first goes"
        );
        assert_eq!(frames.next_due(), Some(start + FRAME_INTERVAL));
        let due = frames.take_due(start + FRAME_INTERVAL);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].0, due[0].1, due[0].2.id), (alice, 2, third.id));

        // Users quiet for an interval are forgotten.
        assert!(frames.take_due(start + FRAME_INTERVAL * 3).is_empty());
        assert!(frames.users.is_empty());
    }
}
