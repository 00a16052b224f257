//! Messages ([`MessageStore`]), and appending one inside another transaction.

use sqlx::Transaction;
use tokio::sync::oneshot;

use crate::writer::{AppendJob, WriterJob};
use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! impl_messages {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl MessageStore for $store {
            /// Group commit: the call queues the message for the store's one
            /// writer task, which commits everything queued meanwhile in one
            /// transaction (one fsync), and answers only after the commit.
            async fn queue_append(&self, message: NewMessage, on_commit: Option<OnCommit>) -> Result<PendingAppend, StoreError> {
                let (reply, answer) = oneshot::channel();
                let job = WriterJob::Append(AppendJob { message, on_commit, reply });
                self.appender.send(job).await.map_err(|_| StoreError::writer_stopped())?;
                Ok(PendingAppend::new(answer))
            }

            fn append_stats(&self) -> AppendStats {
                self.writer_counters.snapshot()
            }

            async fn settle_appends(&self) -> Result<(), StoreError> {
                let (done, settled) = oneshot::channel();
                self.appender.send(WriterJob::Barrier(done)).await.map_err(|_| StoreError::writer_stopped())?;
                settled.await.map_err(|_| StoreError::writer_stopped())
            }

            async fn messages_after(
                &self,
                room_id: Uuid,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<MessageRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(room_id)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn messages_before(
                &self,
                room_id: Uuid,
                before_seq: i64,
                limit: u32,
            ) -> Result<Vec<MessageRecord>, StoreError> {
                let mut rows: Vec<MessageRecord> = sqlx::query_as(concat!(
                    "SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
                ))
                .bind(room_id)
                .bind(before_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.reverse();
                Ok(rows)
            }

            async fn message_at(&self, room_id: Uuid, seq: i64) -> Result<Option<MessageRecord>, StoreError> {
                Ok(sqlx::query_as(concat!("SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND seq = $2"))
                    .bind(room_id)
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn message_by_client_id(&self, room_id: Uuid, author_id: Uuid, device_id: &str, client_msg_id: &str) -> Result<Option<MessageRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", message_columns!(),
                    " FROM messages WHERE room_id = $1 AND author_id = $2 AND device_id = $3 AND client_msg_id = $4"
                ))
                .bind(room_id)
                .bind(author_id)
                .bind(device_id)
                .bind(client_msg_id)
                .fetch_optional(&self.pool)
                .await?)
            }
        }
        /// Appends inside the caller's transaction: allocates the seq (the
        /// room row is the per-room counter, and updating it locks it so
        /// concurrent senders get distinct numbers), inserts, and applies
        /// the read effect.
        pub(crate) async fn append_in_tx(tx: &mut Transaction<'static, $db>, message: &NewMessage) -> Result<MessageRecord, StoreError> {
            // Resolve a read marker's target first: every error below
            // this point is raised before anything is written.
            let target_ordinal = match message.read_effect {
                ReadEffect::UpTo(target) => {
                    let ordinal: Option<(i64,)> =
                        sqlx::query_as("SELECT content_ordinal FROM messages WHERE room_id = $1 AND seq = $2")
                            .bind(message.room_id)
                            .bind(target)
                            .fetch_optional(&mut **tx)
                            .await?;
                    Some((target, ordinal.ok_or(StoreError::NotFound)?.0))
                }
                _ => None,
            };
            let counters: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE chat_rooms SET last_seq = last_seq + 1, \
                   content_count = content_count + $2, \
                   last_content_seq = CASE WHEN $2 = 1 THEN last_seq + 1 ELSE last_content_seq END, \
                   last_activity_ms = COALESCE($3, last_activity_ms) \
                 WHERE id = $1 RETURNING last_seq, content_count",
            )
            .bind(message.room_id)
            .bind(i64::from(message.is_content))
            .bind(message.bumps_activity.then_some(message.created_at_ms))
            .fetch_optional(&mut **tx)
            .await?;
            let Some((seq, content_ordinal)) = counters else {
                return Err(StoreError::NotFound);
            };
            sqlx::query(
                "INSERT INTO messages (id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(message.id)
            .bind(message.room_id)
            .bind(seq)
            .bind(message.author_id)
            .bind(&message.device_id)
            .bind(&message.client_msg_id)
            .bind(&message.kind)
            .bind(&message.content)
            .bind(message.created_at_ms)
            .bind(content_ordinal)
            .execute(&mut **tx)
            .await?;
            let read_to = message.read_position(seq, content_ordinal, target_ordinal);
            if let Some((read_seq, read_count)) = read_to {
                sqlx::query(
                    "UPDATE room_members SET read_seq = $3, read_count = $4 \
                     WHERE room_id = $1 AND user_id = $2 AND read_seq < $3",
                )
                .bind(message.room_id)
                .bind(message.author_id)
                .bind(read_seq)
                .bind(read_count)
                .execute(&mut **tx)
                .await?;
            }
            Ok(message.stored_as(seq, content_ordinal))
        }
    };
}

for_both_backends!(impl_messages);
