//! The notification store, its read watermarks, and the push outbox
//! ([`NotificationStore`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! notification_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "id, ",
            $prefix,
            "user_id, ",
            $prefix,
            "kind, ",
            $prefix,
            "room_id, ",
            $prefix,
            "message_id, ",
            $prefix,
            "author_id, ",
            $prefix,
            "seq, ",
            $prefix,
            "payload, ",
            $prefix,
            "created_at_ms"
        )
    };
}

/// Appended to a deliveries INSERT: a registration's fresh delivery with
/// the same collapse key takes the newer notification over instead of a
/// second row (see `NewDelivery::collapse_key`). The predicate names the
/// partial unique index `push_deliveries_fresh`. A macro, so both
/// backends' statements can `concat!` it.
macro_rules! collapse_into_fresh_delivery {
    () => {
        " ON CONFLICT (user_id, device_id, provider, collapse_key) \
         WHERE attempts = 0 AND claimed_until_ms = 0 \
         DO UPDATE SET notification_id = excluded.notification_id \
         WHERE push_deliveries.notification_id < excluded.notification_id"
    };
}
pub(crate) use collapse_into_fresh_delivery;

/// The smallest UUIDv7 of the millisecond `ms`: every id made before it
/// sorts below (a v7 id starts with its unix milliseconds, big-endian), on
/// both backends (SQLite compares the blobs, PostgreSQL the uuids,
/// byte by byte).
fn first_v7_id_at(ms: i64) -> Uuid {
    let ms = u64::try_from(ms.max(0)).unwrap_or(0).min((1 << 48) - 1);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// A claimed delivery with its notification and (maybe) its registration.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    d_id: Uuid,
    d_attempts: i64,
    id: Uuid,
    user_id: Uuid,
    kind: String,
    room_id: Option<Uuid>,
    message_id: Option<Uuid>,
    author_id: Option<Uuid>,
    seq: Option<i64>,
    payload: String,
    created_at_ms: i64,
    r_user_id: Option<Uuid>,
    r_device_id: Option<String>,
    r_provider: Option<PushProvider>,
    r_token: Option<String>,
    r_topic: Option<String>,
    r_p256dh: Option<Vec<u8>>,
    r_auth: Option<Vec<u8>>,
    r_created_at_ms: Option<i64>,
    r_updated_at_ms: Option<i64>,
    m_read_seq: Option<i64>,
    p_previews: Option<bool>,
    badge: Option<i64>,
}

impl ClaimedRow {
    fn into_claimed(self) -> ClaimedDelivery {
        let registration = match (
            self.r_user_id,
            self.r_device_id,
            self.r_provider,
            self.r_token,
            self.r_created_at_ms,
            self.r_updated_at_ms,
        ) {
            (
                Some(user_id),
                Some(device_id),
                Some(provider),
                Some(token),
                Some(created),
                Some(updated),
            ) => Some(Registration {
                user_id,
                device_id,
                provider,
                token,
                topic: self.r_topic,
                p256dh: self.r_p256dh,
                auth: self.r_auth,
                created_at_ms: created,
                updated_at_ms: updated,
            }),
            _ => None,
        };
        ClaimedDelivery {
            id: self.d_id,
            attempts: self.d_attempts,
            read_seq: self.m_read_seq,
            push_previews: self.p_previews.unwrap_or(true),
            badge: self.badge.unwrap_or(0),
            notification: NotificationRecord {
                id: self.id,
                user_id: self.user_id,
                kind: self.kind,
                room_id: self.room_id,
                message_id: self.message_id,
                author_id: self.author_id,
                seq: self.seq,
                payload: self.payload,
                created_at_ms: self.created_at_ms,
            },
            registration,
        }
    }
}

impl SqliteStore {
    /// Through the writer thread, in its next transaction (see
    /// `writer::SideJob` for why).
    async fn side_write(&self, write: crate::writer::SideWrite) -> Result<Vec<Uuid>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = crate::writer::WriterJob::Side(crate::writer::SideJob { write, reply });
        self.appender
            .send(job)
            .await
            .map_err(|_| StoreError::writer_stopped())?;
        answer.await.map_err(|_| StoreError::writer_stopped())?
    }

    async fn store_notifications(
        &self,
        notifications: &[NotificationRecord],
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        self.side_write(crate::writer::SideWrite::Notifications {
            notifications: notifications.to_vec(),
            deliveries: deliveries.to_vec(),
        })
        .await
        .map(|_| ())
    }

    /// SQLite's write transaction excludes every other writer: no two
    /// workers get one delivery.
    async fn claim_ids(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        self.side_write(crate::writer::SideWrite::Claim {
            now_ms,
            lease_ms,
            limit,
        })
        .await
    }

    async fn delete_deliveries(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        self.side_write(crate::writer::SideWrite::Finish { ids: ids.to_vec() })
            .await
            .map(|_| ())
    }
}

impl PgStore {
    /// On the pool: PostgreSQL's row locks let it run beside the writer.
    async fn store_notifications(
        &self,
        notifications: &[NotificationRecord],
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        // Chunked: PostgreSQL limits the number of bound parameters.
        for chunk in notifications.chunks(100) {
            let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO notifications (id, user_id, kind, room_id, message_id, author_id, seq, payload, created_at_ms) ",
            );
            query.push_values(chunk, |mut row, n| {
                row.push_bind(n.id)
                    .push_bind(n.user_id)
                    .push_bind(&n.kind)
                    .push_bind(n.room_id)
                    .push_bind(n.message_id)
                    .push_bind(n.author_id)
                    .push_bind(n.seq)
                    .push_bind(&n.payload)
                    .push_bind(n.created_at_ms);
            });
            query.build().execute(&mut *tx).await?;
        }
        // One statement may not upsert a row twice on PostgreSQL: deliveries
        // that collapse into each other are collapsed here first (the
        // newest notification wins, as the upsert would decide).
        let mut newest: std::collections::HashMap<(Uuid, &str, PushProvider, &str), &NewDelivery> =
            std::collections::HashMap::new();
        for d in deliveries {
            let key = (
                d.user_id,
                d.device_id.as_str(),
                d.provider,
                d.collapse_key.as_str(),
            );
            let entry = newest.entry(key).or_insert(d);
            if entry.notification_id < d.notification_id {
                *entry = d;
            }
        }
        let mut collapsed: Vec<&NewDelivery> = newest.into_values().collect();
        collapsed.sort_by_key(|d| d.id);
        for chunk in collapsed.chunks(100) {
            let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO push_deliveries (id, notification_id, user_id, device_id, provider, collapse_key, next_attempt_at_ms, created_at_ms) ",
            );
            query.push_values(chunk, |mut row, d| {
                row.push_bind(d.id)
                    .push_bind(d.notification_id)
                    .push_bind(d.user_id)
                    .push_bind(&d.device_id)
                    .push_bind(d.provider)
                    .push_bind(&d.collapse_key)
                    .push_bind(d.next_attempt_at_ms)
                    .push_bind(d.next_attempt_at_ms);
            });
            query.push(collapse_into_fresh_delivery!());
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The candidate rows are locked, and rows another node has locked are
    /// skipped rather than waited for: no two nodes get one delivery.
    async fn claim_ids(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let claimed: Vec<(Uuid,)> = sqlx::query_as(
            "UPDATE push_deliveries SET claimed_until_ms = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM push_deliveries \
               WHERE next_attempt_at_ms <= $1 AND claimed_until_ms <= $1 \
               ORDER BY next_attempt_at_ms LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id",
        )
        .bind(now_ms)
        .bind(now_ms + lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(claimed.into_iter().map(|(id,)| id).collect())
    }

    async fn delete_deliveries(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        let mut query =
            sqlx::QueryBuilder::<sqlx::Postgres>::new("DELETE FROM push_deliveries WHERE id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(")");
        query.build().execute(&self.pool).await?;
        Ok(())
    }
}

macro_rules! impl_notifications {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl NotificationStore for $store {
            async fn append_notifications(
                &self,
                notifications: &[NotificationRecord],
                deliveries: &[NewDelivery],
            ) -> Result<(), StoreError> {
                if notifications.is_empty() {
                    return Ok(());
                }
                self.store_notifications(notifications, deliveries).await
            }

            async fn notifications(&self, user_id: Uuid, before: Option<Uuid>, limit: u32) -> Result<Vec<NotificationRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", notification_columns!(""), " FROM notifications \
                     WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                ))
                .bind(user_id)
                .bind(before.unwrap_or(Uuid::max()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn notification_watermark(&self, user_id: Uuid) -> Result<Option<Uuid>, StoreError> {
                let row: Option<(Uuid,)> = sqlx::query_as("SELECT read_up_to FROM notification_reads WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(id,)| id))
            }

            async fn unread_notifications(&self, user_id: Uuid) -> Result<i64, StoreError> {
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM notifications n WHERE n.user_id = $1 AND n.id > \
                     COALESCE((SELECT r.read_up_to FROM notification_reads r WHERE r.user_id = $1), $2)",
                )
                .bind(user_id)
                .bind(Uuid::nil())
                .fetch_one(&self.pool)
                .await?;
                Ok(count)
            }

            async fn inbox_counts(&self, user_ids: &[Uuid], cap: i64) -> Result<Vec<InboxCounts>, StoreError> {
                let mut found = Vec::new();
                // Chunked: both backends limit the number of bound parameters.
                for chunk in user_ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT u.id AS user_id, \
                           (SELECT COUNT(*) FROM (SELECT 1 FROM notifications n WHERE n.user_id = u.id AND n.id > \
                              COALESCE((SELECT r.read_up_to FROM notification_reads r WHERE r.user_id = u.id), ",
                    );
                    query.push_bind(Uuid::nil()).push(") LIMIT ").push_bind(cap).push(
                        ") capped) AS unread_notifications, \
                           (SELECT CAST(COALESCE(SUM(CASE WHEN c.content_count > m.read_count THEN c.content_count - m.read_count ELSE 0 END), 0) AS BIGINT) \
                              FROM room_members m JOIN chat_rooms c ON c.id = m.room_id WHERE m.user_id = u.id) AS badge \
                         FROM users u WHERE u.id IN (",
                    );
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    query.push(")");
                    found.extend(query.build_query_as::<InboxCounts>().fetch_all(&self.pool).await?);
                }
                Ok(found)
            }

            async fn mark_notifications_read(&self, user_id: Uuid, up_to: Uuid, now_ms: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO notification_reads (user_id, read_up_to, updated_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET read_up_to = excluded.read_up_to, updated_at_ms = excluded.updated_at_ms \
                     WHERE notification_reads.read_up_to < excluded.read_up_to",
                )
                .bind(user_id)
                .bind(up_to)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_notifications_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
                let cutoff = first_v7_id_at(cutoff_ms);
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM push_deliveries WHERE notification_id < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM notifications WHERE id < $1")
                    .bind(cutoff)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn claim_deliveries(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<ClaimedDelivery>, StoreError> {
                let claimed = self.claim_ids(now_ms, lease_ms, limit).await?;
                if claimed.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT d.id AS d_id, d.attempts AS d_attempts, ", notification_columns!("n."), ", \
                     r.user_id AS r_user_id, r.device_id AS r_device_id, r.provider AS r_provider, r.token AS r_token, \
                     r.topic AS r_topic, r.p256dh AS r_p256dh, r.auth AS r_auth, \
                     r.created_at_ms AS r_created_at_ms, r.updated_at_ms AS r_updated_at_ms, \
                     m.read_seq AS m_read_seq, p.push_previews AS p_previews, \
                     (SELECT CAST(SUM(CASE WHEN cr.content_count > cm.read_count THEN cr.content_count - cm.read_count ELSE 0 END) AS BIGINT) \
                        FROM room_members cm JOIN chat_rooms cr ON cr.id = cm.room_id WHERE cm.user_id = n.user_id) AS badge \
                     FROM push_deliveries d JOIN notifications n ON n.id = d.notification_id \
                     LEFT JOIN push_registrations r ON r.user_id = d.user_id AND r.device_id = d.device_id AND r.provider = d.provider \
                     LEFT JOIN room_members m ON m.room_id = n.room_id AND m.user_id = n.user_id \
                     LEFT JOIN user_preferences p ON p.user_id = n.user_id \
                     WHERE d.id IN ("
                ));
                let mut ids = query.separated(", ");
                for id in &claimed {
                    ids.push_bind(*id);
                }
                query.push(") ORDER BY d.next_attempt_at_ms");
                // After the claim's commit: the lease keeps the rows ours.
                let rows: Vec<ClaimedRow> = query.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(ClaimedRow::into_claimed).collect())
            }

            async fn finish_delivery(&self, id: Uuid) -> Result<(), StoreError> {
                // The batch's path: on SQLite, through the writer thread.
                self.delete_deliveries(&[id]).await
            }

            async fn finish_deliveries(&self, ids: &[Uuid]) -> Result<(), StoreError> {
                if ids.is_empty() {
                    return Ok(());
                }
                self.delete_deliveries(ids).await
            }

            async fn retry_delivery(&self, id: Uuid, next_attempt_at_ms: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE push_deliveries SET next_attempt_at_ms = $2, claimed_until_ms = 0 WHERE id = $1")
                    .bind(id)
                    .bind(next_attempt_at_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
                let (pending, oldest): (i64, Option<i64>) =
                    sqlx::query_as("SELECT COUNT(*), MIN(created_at_ms) FROM push_deliveries")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(OutboxStats { pending, oldest_created_at_ms: oldest })
            }
        }
    };
}

for_both_backends!(impl_notifications);
