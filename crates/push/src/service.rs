//! [`PushService`]: turns the chat rules' push decision into notification
//! records and outbox deliveries, in one transaction per message, and
//! tells the recipients' online devices (the `notification` frame).
//!
//! It runs on the push decision's own task (started by the message's
//! commit hook), so nothing here delays an `ack`.

use std::sync::Arc;

use async_trait::async_trait;
use iyagi_bus::{Bus, Delivery};
use iyagi_chat::{PushMessage, PushNotification, PushNotifier};
use iyagi_protocol::notifications::NotificationKind;
use iyagi_protocol::now_ms;
use iyagi_protocol::ws::ServerFrame;
use iyagi_session::SessionStore;
use iyagi_store::{NewDelivery, NotificationRecord, RoomKind, Storage, StoreError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::stats::PushStats;
use crate::text;

pub struct PushService {
    pub(crate) store: Arc<dyn Storage>,
    sessions: Arc<dyn SessionStore>,
    bus: Arc<dyn Bus>,
    pub(crate) stats: Arc<PushStats>,
    /// Wakes the outbox worker when deliveries were added.
    wake: Arc<Notify>,
}

/// What a stored message notification says (the record's payload).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct MessagePayload {
    pub title: String,
    pub body: String,
    pub message_kind: String,
}

impl PushService {
    pub fn new(
        store: Arc<dyn Storage>,
        sessions: Arc<dyn SessionStore>,
        bus: Arc<dyn Bus>,
        stats: Arc<PushStats>,
        wake: Arc<Notify>,
    ) -> PushService {
        PushService {
            store,
            sessions,
            bus,
            stats,
            wake,
        }
    }

    pub fn stats(&self) -> &Arc<PushStats> {
        &self.stats
    }

    /// Stores a notification for each of `users` due a push for `message`
    /// (but those who muted the room), with a delivery for each of their
    /// registrations, and tells their online devices.
    async fn record(&self, message: &PushMessage, users: &[Uuid]) -> Result<(), StoreError> {
        let now = now_ms();
        let Some(room) = self.store.room(message.room_id).await? else {
            return Ok(());
        };
        let members = self.store.members(message.room_id).await?;
        let recipients: Vec<Uuid> = users
            .iter()
            .copied()
            .filter(|user| {
                members.iter().any(|m| {
                    m.user_id == *user && m.muted_until_ms.is_none_or(|until| until <= now)
                })
            })
            .collect();
        if recipients.is_empty() {
            return Ok(());
        }
        let title = match room.kind {
            RoomKind::Group => room.title.clone().unwrap_or_default(),
            RoomKind::Direct => self
                .store
                .user_by_id(message.author_id)
                .await?
                .map(|u| u.username)
                .unwrap_or_default(),
        };
        let payload = serde_json::to_string(&MessagePayload {
            title,
            body: text::body(&message.kind, &message.content),
            message_kind: message.kind.clone(),
        })
        .unwrap_or_default();
        let notifications: Vec<NotificationRecord> = recipients
            .iter()
            .map(|user| NotificationRecord {
                id: Uuid::now_v7(),
                user_id: *user,
                kind: NotificationKind::Message.as_str().to_owned(),
                room_id: Some(message.room_id),
                message_id: Some(message.message_id),
                author_id: Some(message.author_id),
                seq: Some(message.seq),
                payload: payload.clone(),
                created_at_ms: now,
            })
            .collect();
        let registrations = self.store.registrations_for(&recipients).await?;
        let deliveries: Vec<NewDelivery> = registrations
            .iter()
            .filter_map(|r| {
                let notification = notifications.iter().find(|n| n.user_id == r.user_id)?;
                Some(NewDelivery {
                    id: Uuid::now_v7(),
                    notification_id: notification.id,
                    user_id: r.user_id,
                    device_id: r.device_id.clone(),
                    provider: r.provider,
                    next_attempt_at_ms: now,
                })
            })
            .collect();
        self.store
            .append_notifications(&notifications, &deliveries)
            .await?;
        self.stats.stored(notifications.len() as u64);
        if !deliveries.is_empty() {
            self.wake.notify_one();
        }
        self.tell_online_devices(&notifications).await;
        Ok(())
    }

    /// The `notification` frame, for recipients with a device online.
    async fn tell_online_devices(&self, notifications: &[NotificationRecord]) {
        let users: Vec<Uuid> = notifications.iter().map(|n| n.user_id).collect();
        let online = match self.sessions.online_many(&users).await {
            Ok(online) => online,
            Err(e) => {
                tracing::warn!(error = %e, "session store unavailable: no notification frames");
                return;
            }
        };
        for (notification, online) in notifications.iter().zip(online) {
            if !online {
                continue;
            }
            let user = notification.user_id;
            let (unread, badge) = match (
                self.store.unread_notifications(user).await,
                self.store.total_unread(user).await,
            ) {
                (Ok(unread), Ok(badge)) => (unread, badge),
                _ => continue,
            };
            let frame = ServerFrame::Notification {
                notification: crate::inbox::view(notification, None),
                unread_notifications: unread,
                badge,
            };
            let frame = serde_json::to_string(&frame).unwrap_or_default();
            self.bus.deliver(&[user], Delivery::Frame(frame.into()));
        }
    }
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
        if let Err(e) = self.record(message, users).await {
            // The message is stored; only its notifications are lost.
            tracing::error!(error = %e, room_id = %message.room_id, seq = message.seq, "storing notifications failed");
        }
    }
}
