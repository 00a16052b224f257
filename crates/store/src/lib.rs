//! iyagi storage.
//!
//! One trait per aggregate ([`UserStore`], [`DeviceStore`], [`KeyStore`],
//! [`RoomStore`], [`MessageStore`], [`PushStore`], [`NotificationStore`],
//! [`MediaStore`]) combined into [`Storage`]; business rules
//! live in the services that call these traits, never here. Two
//! implementations share one SQL text ([`sql`]): [`SqliteStore`] (the
//! embedded default) and [`PgStore`] (production). Both pass the same contract
//! suite in `tests/it`.

mod batch;
mod error;
mod model;
mod pg_nodelay;
mod pg_writer;
mod sql;
mod sqlite_writer;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

pub use error::StoreError;
pub use model::*;
pub use sql::{PgStore, SqliteStore};

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] when the username is taken.
    async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError>;
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    async fn user_by_external(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError>;
}

/// Devices, their login sessions, and the refresh-token families of those sessions.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Records a login atomically: upserts the device, revokes that device's
    /// earlier sessions, creates the new session and its first refresh token.
    async fn record_login(&self, login: &NewLogin) -> Result<RecordedLogin, StoreError>;
    /// Exchanges a refresh token for a new one (see [`RotateOutcome`]).
    async fn rotate_refresh_token(&self, rotation: &Rotation) -> Result<RotateOutcome, StoreError>;
    async fn session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError>;
    /// Of `ids`, the sessions that exist and are not revoked (any order).
    async fn live_sessions(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError>;
    /// Revokes one session; returns whether it was active.
    async fn revoke_session(&self, id: Uuid, reason: &str, now_ms: i64)
    -> Result<bool, StoreError>;
    /// Revokes every active session of a user; returns how many.
    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        reason: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError>;
    async fn devices(&self, user_id: Uuid) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Revokes the device's sessions and forgets the device. Returns the
    /// revoked session ids, or `None` when the device does not exist.
    async fn remove_device(
        &self,
        user_id: Uuid,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<Uuid>>, StoreError>;
}

/// Token signing keys, persisted so restarts and other nodes verify the same tokens.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Inserts unless a key with this kid exists; returns whether it inserted.
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError>;
}

/// Chat rooms and their members.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room with its initial members and first message, or returns
    /// the existing room when `direct_key` names a direct room that exists.
    async fn create_room(&self, room: &NewRoom) -> Result<CreatedRoom, StoreError>;
    async fn room(&self, id: Uuid) -> Result<Option<RoomRecord>, StoreError>;
    async fn member(
        &self,
        room_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<MemberRecord>, StoreError>;
    async fn members(&self, room_id: Uuid) -> Result<Vec<MemberRecord>, StoreError>;
    async fn named_members(&self, room_id: Uuid) -> Result<Vec<NamedMember>, StoreError>;
    /// Applies a membership change and appends its system message in one
    /// transaction. `None` when there was nothing to change (already a
    /// member / not a member); nothing is written then.
    async fn change_membership(
        &self,
        change: &MembershipChange,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// The user's rooms, most recent activity first, strictly after the
    /// `(last_activity_ms, room id)` cursor when given.
    async fn rooms_for_user(
        &self,
        user_id: Uuid,
        after: Option<(i64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<RoomListEntry>, StoreError>;
    /// Everyone who shares a direct room, or a group of at most
    /// `max_group_members` members, with the user (the user excluded): the
    /// people told when the user comes online or goes offline. Bounded on
    /// purpose: with every group counted, each connect and disconnect of a
    /// group's N members would reach all N, N² in all.
    async fn contacts(
        &self,
        user_id: Uuid,
        max_group_members: u32,
    ) -> Result<Vec<Uuid>, StoreError>;
    /// Mutes the member's pushes for the room until `until_ms` (`None`:
    /// unmutes). False when the user is not a member.
    async fn set_room_mute(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        until_ms: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// The user's unread count over all their rooms, from the counters.
    async fn total_unread(&self, user_id: Uuid) -> Result<i64, StoreError>;
}

/// Push registrations and push preferences.
#[async_trait]
pub trait PushStore: Send + Sync {
    /// Creates or replaces the device's registration for its provider.
    /// `NotFound` when the device does not exist.
    async fn put_registration(&self, registration: &Registration) -> Result<(), StoreError>;
    /// Removes one registration; returns whether it existed.
    async fn delete_registration(
        &self,
        user_id: Uuid,
        device_id: &str,
        provider: PushProvider,
    ) -> Result<bool, StoreError>;
    /// Removes a registration the provider called dead, unless it was
    /// replaced by a new token meanwhile.
    async fn prune_registration(
        &self,
        user_id: Uuid,
        device_id: &str,
        provider: PushProvider,
        token: &str,
    ) -> Result<bool, StoreError>;
    async fn registrations(&self, user_id: Uuid) -> Result<Vec<Registration>, StoreError>;
    /// The registrations of all of `user_ids` (any order).
    async fn registrations_for(&self, user_ids: &[Uuid]) -> Result<Vec<Registration>, StoreError>;
    /// Whether push texts may show content (`true` unless the user said no).
    async fn push_previews(&self, user_id: Uuid) -> Result<bool, StoreError>;
    async fn set_push_previews(
        &self,
        user_id: Uuid,
        previews: bool,
        now_ms: i64,
    ) -> Result<(), StoreError>;
}

/// Uploads' references ([`MediaRecord`]); the bytes are in the object store.
#[async_trait]
pub trait MediaStore: Send + Sync {
    async fn create_media(&self, media: &NewMedia) -> Result<(), StoreError>;
    async fn media(&self, id: Uuid) -> Result<Option<MediaRecord>, StoreError>;
    /// Records a processed upload; false when it is no longer pending (or gone).
    async fn mark_media_ready(&self, ready: &ReadyMedia) -> Result<bool, StoreError>;
    /// Attaches an upload to a message, at most once: the same message
    /// (room, device, client_msg_id) asking again gets it again, any other
    /// is refused.
    async fn attach_media(&self, using: &MediaUse<'_>) -> Result<Attach, StoreError>;
    /// The owner's stored bytes, and uploads created at or after `since_ms`.
    async fn media_usage(&self, owner_id: Uuid, since_ms: i64) -> Result<MediaUsage, StoreError>;
    /// Uploads no message uses, created before `before_ms`, oldest first.
    async fn unattached_media(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<MediaRecord>, StoreError>;
    /// Pending uploads (never completed), created before `before_ms`, oldest first.
    async fn pending_media(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<MediaRecord>, StoreError>;
    /// Deletes an upload's row unless a message uses it; returns whether it did.
    async fn delete_unattached_media(&self, id: Uuid) -> Result<bool, StoreError>;
    /// Of `ids`, those with a row (any order).
    async fn existing_media(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError>;
}

/// Reports, and the analysis event log they (and later moderation,
/// complaints, blocks...) append to in the same transaction.
#[async_trait]
pub trait ModerationStore: Send + Sync {
    /// Files a report, or updates the reporter's earlier report of the
    /// same target, and appends its `report_filed` analysis event (id
    /// `event_id`; payload `{"report_id", "target_type", "reason",
    /// "created"}`) in the same transaction.
    async fn file_report(
        &self,
        report: &NewReport,
        event_id: Uuid,
    ) -> Result<FiledReport, StoreError>;
    /// The reporter's reports, newest first.
    async fn reports_by(
        &self,
        reporter_id: Uuid,
        limit: u32,
    ) -> Result<Vec<ReportRecord>, StoreError>;
    /// Reports the reporter filed or updated at or after `since_ms`.
    async fn reports_filed_since(
        &self,
        reporter_id: Uuid,
        since_ms: i64,
    ) -> Result<i64, StoreError>;
    /// Analysis events with `since_ms <= at_ms < until_ms` and id above
    /// `after` (a cursor), in id order, at most `limit`.
    async fn analysis_events(
        &self,
        since_ms: i64,
        until_ms: i64,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<AnalysisEvent>, StoreError>;
}

/// Staff roles, the moderation audit log (append-only, enforced by the
/// database) and the queue of open reports.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Sets or removes a user's role and appends its audit entry, in one
    /// transaction. `NotFound` when the user does not exist.
    async fn change_role(&self, change: &RoleChange) -> Result<(), StoreError>;
    async fn staff_role(&self, user_id: Uuid) -> Result<Option<String>, StoreError>;
    /// The newest entries of the audit log first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// Open reports grouped by target, the longest-waiting first.
    async fn open_report_groups(&self, limit: u32) -> Result<Vec<ReportGroup>, StoreError>;
}

/// The notification store (append-only), its read watermarks, and the
/// push outbox.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Stores notifications and their deliveries in one transaction.
    async fn append_notifications(
        &self,
        notifications: &[NotificationRecord],
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError>;
    /// The user's notifications, newest first, strictly older than `before`.
    async fn notifications(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>, StoreError>;
    /// The newest notification the user has read, if any.
    async fn notification_watermark(&self, user_id: Uuid) -> Result<Option<Uuid>, StoreError>;
    /// How many notifications are newer than the watermark.
    async fn unread_notifications(&self, user_id: Uuid) -> Result<i64, StoreError>;
    /// For each of `user_ids` (in no particular order; unknown users are
    /// left out): unread notifications counted up to `cap` (cheap whatever
    /// the backlog), and the badge (unread messages over all rooms, from
    /// the counters), in one query.
    async fn inbox_counts(
        &self,
        user_ids: &[Uuid],
        cap: i64,
    ) -> Result<Vec<InboxCounts>, StoreError>;
    /// Moves the watermark forward to `up_to` (never back).
    async fn mark_notifications_read(
        &self,
        user_id: Uuid,
        up_to: Uuid,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Deletes notifications created before `cutoff_ms`, as their UUIDv7
    /// ids tell (their pending deliveries with them); returns how many.
    async fn delete_notifications_before(&self, cutoff_ms: i64) -> Result<u64, StoreError>;
    /// Claims up to `limit` due deliveries for `lease_ms`: no other worker
    /// (on any node) gets them until the lease ends. Counts the attempt.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Done with a delivery (sent, or given up on).
    async fn finish_delivery(&self, id: Uuid) -> Result<(), StoreError>;
    /// [`finish_delivery`](Self::finish_delivery) for many, in one statement.
    async fn finish_deliveries(&self, ids: &[Uuid]) -> Result<(), StoreError>;
    /// Tries the delivery again at `next_attempt_at_ms`.
    async fn retry_delivery(&self, id: Uuid, next_attempt_at_ms: i64) -> Result<(), StoreError>;
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;
}

/// Messages, sequenced per room.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Appends a message, assigning the room's next sequence number. A retry
    /// with the same (room, author, device, client id) returns the original
    /// message with `duplicate = true` and stores nothing.
    async fn append_message(&self, message: &NewMessage) -> Result<Appended, StoreError> {
        self.queue_append(message.clone(), None)
            .await?
            .committed()
            .await
    }
    /// Queues an append for the store's single writer and returns as soon
    /// as it is queued. Appends are sequenced in queue order: two appends to
    /// one room queued one after the other get increasing seqs. The writer
    /// commits whatever is queued in one transaction (group commit); then,
    /// in the same order, it runs each stored message's `on_commit` hook
    /// and answers its [`PendingAppend`]. So hooks see each room's messages
    /// in seq order, and a caller hears "stored" only after its hook ran.
    async fn queue_append(
        &self,
        message: NewMessage,
        on_commit: Option<OnCommit>,
    ) -> Result<PendingAppend, StoreError>;
    /// Returns once every append queued before this call has been committed
    /// (or has failed) and its hook has run.
    async fn settle_appends(&self) -> Result<(), StoreError>;
    /// Messages with `seq > after_seq`, ascending, at most `limit`.
    async fn messages_after(
        &self,
        room_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// The `limit` messages just below `before_seq`, ascending.
    async fn messages_before(
        &self,
        room_id: Uuid,
        before_seq: i64,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    async fn message_at(
        &self,
        room_id: Uuid,
        seq: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// The message a (room, author, device, client id) already names, if any.
    async fn message_by_client_id(
        &self,
        room_id: Uuid,
        author_id: Uuid,
        device_id: &str,
        client_msg_id: &str,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Running totals of the append writer since the store opened.
    fn append_stats(&self) -> AppendStats;
}

/// What the append writer has done since the store opened: how many
/// transactions it committed, how many appends they held (their ratio is
/// the group-commit batch size) and how long it spent applying and
/// committing them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AppendStats {
    pub commits: u64,
    pub appends: u64,
    pub busy_seconds: f64,
}

/// Runs right after the commit that stored a message (also for a
/// duplicate, with `duplicate = true`), before the caller is answered, in
/// seq order per room, one at a time. It must be quick and must not block:
/// it holds up the answers of every later append.
pub type OnCommit = Box<dyn FnOnce(&Appended) + Send + Sync>;

/// An append waiting for its commit.
pub struct PendingAppend(tokio::sync::oneshot::Receiver<Result<Appended, StoreError>>);

impl PendingAppend {
    pub(crate) fn new(
        answer: tokio::sync::oneshot::Receiver<Result<Appended, StoreError>>,
    ) -> PendingAppend {
        PendingAppend(answer)
    }

    /// The stored message, once committed.
    pub async fn committed(self) -> Result<Appended, StoreError> {
        self.0.await.map_err(|_| StoreError::writer_stopped())?
    }
}

/// Everything iyagi stores.
#[async_trait]
pub trait Storage:
    UserStore
    + DeviceStore
    + KeyStore
    + RoomStore
    + MessageStore
    + PushStore
    + NotificationStore
    + MediaStore
    + ModerationStore
    + StaffStore
{
    /// Which backend this is (`sqlite` or `postgres`), for logs and metrics.
    fn backend(&self) -> &'static str;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes the pool gracefully (SQLite checkpoints its WAL); later calls fail.
    async fn close(&self);
}

/// Connection settings common to both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Opens the backend named by the URL scheme (`sqlite:` or `postgres:`),
/// creating the SQLite file if needed, and applies pending migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Storage>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::open(url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
