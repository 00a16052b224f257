//! Uploads' references ([`MediaStore`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! media_columns {
    () => {
        "id, owner_id, kind, state, mime, size_bytes, details, upload_key, created_at_ms, \
         ready_at_ms, room_id, device_id, client_msg_id, attached_at_ms"
    };
}

macro_rules! impl_media {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl MediaStore for $store {
            async fn create_media(&self, m: &NewMedia) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO media (id, owner_id, kind, state, size_bytes, upload_key, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(m.id)
                .bind(m.owner_id)
                .bind(&m.kind)
                .bind(MEDIA_PENDING)
                .bind(m.size_bytes)
                .bind(&m.upload_key)
                .bind(m.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn media(&self, id: Uuid) -> Result<Option<MediaRecord>, StoreError> {
                Ok(sqlx::query_as(concat!("SELECT ", media_columns!(), " FROM media WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn mark_media_ready(&self, r: &ReadyMedia) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE media SET state = $2, mime = $3, size_bytes = $4, details = $5, \
                     ready_at_ms = $6, upload_key = NULL \
                     WHERE id = $1 AND state = $7 AND kind = $8",
                )
                .bind(r.id)
                .bind(MEDIA_READY)
                .bind(&r.mime)
                .bind(r.size_bytes)
                .bind(&r.details)
                .bind(r.ready_at_ms)
                .bind(MEDIA_PENDING)
                .bind(&r.kind)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn attach_media(&self, u: &MediaUse<'_>) -> Result<Attach, StoreError> {
                // A conditional update decides between concurrent sends:
                // only one sets room_id; the loser reads the winner's row.
                let claimed: Option<MediaRecord> = sqlx::query_as(concat!(
                    "UPDATE media SET room_id = $3, client_msg_id = $4, attached_at_ms = $5, device_id = $8 \
                     WHERE id = $1 AND owner_id = $2 AND kind = $6 AND state = $7 AND room_id IS NULL \
                     RETURNING ",
                    media_columns!()
                ))
                .bind(u.media_id)
                .bind(u.owner_id)
                .bind(u.room_id)
                .bind(u.client_msg_id)
                .bind(u.now_ms)
                .bind(u.kind)
                .bind(MEDIA_READY)
                .bind(u.device_id)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(record) = claimed {
                    return Ok(Attach::Attached(Box::new(record)));
                }
                let Some(record) = self.media(u.media_id).await? else {
                    return Ok(Attach::NotFound);
                };
                Ok(if record.owner_id != u.owner_id {
                    Attach::NotFound
                } else if record.kind != u.kind {
                    Attach::WrongKind
                } else if !record.is_ready() {
                    Attach::NotReady
                } else if record.room_id == Some(u.room_id)
                    && record.device_id.as_deref() == Some(u.device_id)
                    && record.client_msg_id.as_deref() == Some(u.client_msg_id)
                {
                    Attach::Attached(Box::new(record))
                } else {
                    Attach::AlreadyUsed
                })
            }

            async fn media_usage(&self, owner_id: Uuid, since_ms: i64) -> Result<MediaUsage, StoreError> {
                let (bytes, recent): (Option<i64>, i64) = sqlx::query_as(
                    "SELECT CAST(SUM(size_bytes) AS BIGINT), \
                            CAST(COUNT(CASE WHEN created_at_ms >= $2 THEN 1 END) AS BIGINT) \
                     FROM media WHERE owner_id = $1",
                )
                .bind(owner_id)
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?;
                Ok(MediaUsage { bytes: bytes.unwrap_or(0), recent_uploads: recent })
            }

            async fn unattached_media(&self, before_ms: i64, limit: u32) -> Result<Vec<MediaRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", media_columns!(),
                    " FROM media WHERE room_id IS NULL AND created_at_ms < $1 ORDER BY created_at_ms LIMIT $2"
                ))
                .bind(before_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn pending_media(&self, before_ms: i64, limit: u32) -> Result<Vec<MediaRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", media_columns!(),
                    " FROM media WHERE room_id IS NULL AND state = $3 AND created_at_ms < $1 ORDER BY created_at_ms LIMIT $2"
                ))
                .bind(before_ms)
                .bind(i64::from(limit))
                .bind(MEDIA_PENDING)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn delete_unattached_media(&self, id: Uuid) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM media WHERE id = $1 AND room_id IS NULL")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn existing_media(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
                let mut found = Vec::new();
                // Chunked: both backends limit the number of bound parameters.
                for chunk in ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new("SELECT id FROM media WHERE id IN (");
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    query.push(")");
                    let rows: Vec<(Uuid,)> = query.build_query_as().fetch_all(&self.pool).await?;
                    found.extend(rows.into_iter().map(|(id,)| id));
                }
                Ok(found)
            }
        }
    };
}

for_both_backends!(impl_media);
