//! What a user does with push over HTTP: their inbox (list, unread count,
//! mark read), their devices' push registrations, their push preferences
//! and room mutes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iyagi_protocol::notifications::{
    NotificationKind, NotificationList, NotificationView, RegistrationView,
};
use iyagi_protocol::now_ms;
use iyagi_store::{NotificationRecord, PushProvider, Registration, StoreError};
use thiserror::Error;
use uuid::Uuid;

use crate::service::{MessagePayload, PushService};

#[derive(Debug, Error)]
pub enum PushError {
    #[error("unknown push provider {0:?}: fcm, apns or webpush")]
    UnknownProvider(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("Web Push endpoints must be https://")]
    InsecureEndpoint,
    #[error("{0}")]
    InvalidKeys(String),
    #[error("you are not a member of this room")]
    NotAMember,
    #[error("{0}")]
    Validation(String),
    #[error("no such device")]
    NoDevice,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registration as the client asks for it.
pub enum NewRegistration {
    Fcm {
        token: String,
    },
    Apns {
        token: String,
        topic: String,
    },
    WebPush {
        endpoint: String,
        p256dh: String,
        auth: String,
    },
}

/// The record as the inbox shows it.
pub(crate) fn view(record: &NotificationRecord, watermark: Option<Uuid>) -> NotificationView {
    let payload: Option<MessagePayload> = serde_json::from_str(&record.payload).ok();
    NotificationView {
        id: record.id,
        kind: NotificationKind::parse(&record.kind).unwrap_or(NotificationKind::Message),
        room_id: record.room_id,
        message_id: record.message_id,
        author_id: record.author_id,
        seq: record.seq,
        title: payload
            .as_ref()
            .map(|p| p.title.clone())
            .unwrap_or_default(),
        body: payload.map(|p| p.body).unwrap_or_default(),
        read: watermark.is_some_and(|w| record.id <= w),
        created_at: record.created_at_ms,
    }
}

/// Parses a provider name from the path.
pub fn provider(name: &str) -> Result<PushProvider, PushError> {
    PushProvider::parse(name).ok_or_else(|| PushError::UnknownProvider(name.to_owned()))
}

impl PushService {
    /// The user's notifications, newest first, older than `before`.
    pub async fn notifications(
        &self,
        user: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<NotificationList, PushError> {
        let mut records = self.store.notifications(user, before, limit + 1).await?;
        let more = records.len() > limit as usize;
        records.truncate(limit as usize);
        let watermark = self.store.notification_watermark(user).await?;
        let unread = self.store.unread_notifications(user).await?;
        Ok(NotificationList {
            next_cursor: more.then(|| records.last().map(|r| r.id)).flatten(),
            notifications: records.iter().map(|r| view(r, watermark)).collect(),
            unread,
        })
    }

    pub async fn unread_notifications(&self, user: Uuid) -> Result<i64, PushError> {
        Ok(self.store.unread_notifications(user).await?)
    }

    /// Everything up to `up_to` is read (the watermark never moves back,
    /// nor past the newest notification: later ones arrive unread).
    pub async fn mark_read(&self, user: Uuid, up_to: Uuid) -> Result<(), PushError> {
        let Some(newest) = self
            .store
            .notifications(user, None, 1)
            .await?
            .first()
            .map(|n| n.id)
        else {
            return Ok(());
        };
        Ok(self
            .store
            .mark_notifications_read(user, up_to.min(newest), now_ms())
            .await?)
    }

    /// Everything so far is read.
    pub async fn mark_all_read(&self, user: Uuid) -> Result<(), PushError> {
        if let Some(newest) = self.store.notifications(user, None, 1).await?.first() {
            self.store
                .mark_notifications_read(user, newest.id, now_ms())
                .await?;
        }
        Ok(())
    }

    /// Registers (or re-registers) the device for one provider.
    pub async fn register(
        &self,
        user: Uuid,
        device: &str,
        registration: NewRegistration,
        allow_insecure_endpoints: bool,
    ) -> Result<(), PushError> {
        let now = now_ms();
        let (provider, token, topic, p256dh, auth) = match registration {
            NewRegistration::Fcm { token } => {
                check_token(&token, 1, 4096, |c| {
                    c.is_ascii_alphanumeric() || "_:-".contains(c)
                })?;
                (PushProvider::Fcm, token, None, None, None)
            }
            NewRegistration::Apns { token, topic } => {
                check_token(&token, 64, 200, |c| c.is_ascii_hexdigit())?;
                let topic_ok = !topic.is_empty()
                    && topic.len() <= 255
                    && topic
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
                if !topic_ok {
                    return Err(PushError::Validation(
                        "topic must be the app's bundle id (1 to 255 of A-Z a-z 0-9 . -)"
                            .to_owned(),
                    ));
                }
                (
                    PushProvider::Apns,
                    token.to_ascii_lowercase(),
                    Some(topic),
                    None,
                    None,
                )
            }
            NewRegistration::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                let secure = endpoint.starts_with("https://");
                let allowed =
                    secure || (allow_insecure_endpoints && endpoint.starts_with("http://"));
                if !allowed {
                    return Err(PushError::InsecureEndpoint);
                }
                if endpoint.len() > 2048 || !endpoint_shape(&endpoint) {
                    return Err(PushError::InvalidToken(
                        "endpoint must be a URL of at most 2048 characters".to_owned(),
                    ));
                }
                let p256dh = decode_key(&p256dh, 65, "p256dh")?;
                if p256dh[0] != 0x04 {
                    return Err(PushError::InvalidKeys(
                        "p256dh must be an uncompressed P-256 point (65 bytes starting 0x04)"
                            .to_owned(),
                    ));
                }
                let auth = decode_key(&auth, 16, "auth")?;
                (
                    PushProvider::WebPush,
                    endpoint,
                    None,
                    Some(p256dh),
                    Some(auth),
                )
            }
        };
        let result = self
            .store
            .put_registration(&Registration {
                user_id: user,
                device_id: device.to_owned(),
                provider,
                token,
                topic,
                p256dh,
                auth,
                created_at_ms: now,
                updated_at_ms: now,
            })
            .await;
        match result {
            Err(StoreError::NotFound) => Err(PushError::NoDevice),
            other => Ok(other?),
        }
    }

    pub async fn unregister(
        &self,
        user: Uuid,
        device: &str,
        provider: PushProvider,
    ) -> Result<bool, PushError> {
        Ok(self
            .store
            .delete_registration(user, device, provider)
            .await?)
    }

    pub async fn registrations(&self, user: Uuid) -> Result<Vec<RegistrationView>, PushError> {
        Ok(self
            .store
            .registrations(user)
            .await?
            .into_iter()
            .map(|r| RegistrationView {
                device_id: r.device_id,
                provider: r.provider.as_str().to_owned(),
                token: r.token,
                topic: r.topic,
                updated_at: r.updated_at_ms,
            })
            .collect())
    }

    pub async fn push_previews(&self, user: Uuid) -> Result<bool, PushError> {
        Ok(self.store.push_previews(user).await?)
    }

    pub async fn set_push_previews(&self, user: Uuid, previews: bool) -> Result<(), PushError> {
        Ok(self
            .store
            .set_push_previews(user, previews, now_ms())
            .await?)
    }

    /// Mutes the room's pushes for the user until `until_ms` (`None`:
    /// until unmuted); `unmute` lifts it. Unread counts are unaffected.
    pub async fn mute(
        &self,
        user: Uuid,
        room: Uuid,
        until_ms: Option<i64>,
    ) -> Result<(), PushError> {
        if until_ms.is_some_and(|t| t <= 0) {
            return Err(PushError::Validation(
                "until must be a time in ms since the epoch".to_owned(),
            ));
        }
        let until = Some(until_ms.unwrap_or(i64::MAX));
        if !self.store.set_room_mute(room, user, until).await? {
            return Err(PushError::NotAMember);
        }
        self.room_facts.forget(room);
        Ok(())
    }

    pub async fn unmute(&self, user: Uuid, room: Uuid) -> Result<(), PushError> {
        if !self.store.set_room_mute(room, user, None).await? {
            return Err(PushError::NotAMember);
        }
        self.room_facts.forget(room);
        Ok(())
    }
}

fn check_token(
    token: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), PushError> {
    if !(min..=max).contains(&token.len()) || !token.chars().all(allowed) {
        return Err(PushError::InvalidToken(format!(
            "token must be {min} to {max} characters of the provider's alphabet"
        )));
    }
    Ok(())
}

fn decode_key(text: &str, len: usize, name: &str) -> Result<Vec<u8>, PushError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| PushError::InvalidKeys(format!("{name} must be base64url")))?;
    if bytes.len() != len {
        return Err(PushError::InvalidKeys(format!(
            "{name} must be {len} bytes, not {}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// `scheme://host[:port][/path]` with an ASCII host name or address and a
/// printable-ASCII path: what push services hand out, and what the OpenAPI
/// document's pattern for the endpoint says.
fn endpoint_shape(endpoint: &str) -> bool {
    let Some(rest) = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = authority
        .split_once(':')
        .map_or((authority, None), |(h, p)| (h, Some(p)));
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()));
    let path_ok = path.chars().all(|c| c.is_ascii_graphic());
    host_ok && port_ok && path_ok
}
