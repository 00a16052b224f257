//! Devices, their sessions and refresh-token families ([`DeviceStore`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! impl_devices {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl DeviceStore for $store {
            async fn record_login(&self, login: &NewLogin) -> Result<RecordedLogin, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO devices (user_id, device_id, platform, display_name, created_at_ms, last_seen_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (user_id, device_id) DO UPDATE SET \
                       platform = excluded.platform, display_name = excluded.display_name, \
                       last_seen_at_ms = excluded.last_seen_at_ms",
                )
                .bind(login.user_id)
                .bind(&login.device_id)
                .bind(&login.platform)
                .bind(&login.display_name)
                .bind(login.now_ms)
                .execute(&mut *tx)
                .await?;
                // One live session per device: a new login replaces the old one.
                let replaced: Vec<(Uuid,)> = sqlx::query_as(
                    "UPDATE device_sessions SET revoked_at_ms = $3, revoke_reason = 'replaced_by_login' \
                     WHERE user_id = $1 AND device_id = $2 AND revoked_at_ms IS NULL RETURNING id",
                )
                .bind(login.user_id)
                .bind(&login.device_id)
                .bind(login.now_ms)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO device_sessions (id, user_id, device_id, created_at_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(login.session_id)
                .bind(login.user_id)
                .bind(&login.device_id)
                .bind(login.now_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&login.refresh_token_hash)
                .bind(login.session_id)
                .bind(login.now_ms)
                .bind(login.refresh_expires_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                let session = SessionRecord {
                    id: login.session_id,
                    user_id: login.user_id,
                    device_id: login.device_id.clone(),
                    created_at_ms: login.now_ms,
                    revoked_at_ms: None,
                    revoke_reason: None,
                };
                Ok(RecordedLogin { session, replaced: replaced.into_iter().map(|(id,)| id).collect() })
            }

            async fn rotate_refresh_token(&self, rotation: &Rotation) -> Result<RotateOutcome, StoreError> {
                let mut tx = self.begin_write().await?;
                let found: Option<(Uuid, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT session_id, expires_at_ms, rotated_at_ms FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(&rotation.presented_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((session_id, expires_at_ms, rotated_at_ms)) = found else {
                    return Ok(RotateOutcome::Invalid);
                };
                let session: SessionRecord = sqlx::query_as(
                    "SELECT id, user_id, device_id, created_at_ms, revoked_at_ms, revoke_reason \
                     FROM device_sessions WHERE id = $1",
                )
                .bind(session_id)
                .fetch_one(&mut *tx)
                .await?;
                if !session.is_active() {
                    return Ok(RotateOutcome::Invalid);
                }
                // The guarded UPDATE is the race-free test for "already
                // rotated": of two concurrent uses of one token, exactly one
                // matches `rotated_at_ms IS NULL`.
                let rotated_now = rotated_at_ms.is_none()
                    && sqlx::query(
                        "UPDATE refresh_tokens SET rotated_at_ms = $2 \
                         WHERE token_hash = $1 AND rotated_at_ms IS NULL",
                    )
                    .bind(&rotation.presented_hash)
                    .bind(rotation.now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                if !rotated_now {
                    sqlx::query(
                        "UPDATE device_sessions SET revoked_at_ms = $2, revoke_reason = 'refresh_token_reused' \
                         WHERE id = $1 AND revoked_at_ms IS NULL",
                    )
                    .bind(session_id)
                    .bind(rotation.now_ms)
                    .execute(&mut *tx)
                    .await?;
                    forget_push_registrations(&mut tx, session.user_id, Some(&session.device_id)).await?;
                    tx.commit().await?;
                    let revoked = SessionRecord {
                        revoked_at_ms: Some(rotation.now_ms),
                        revoke_reason: Some("refresh_token_reused".to_owned()),
                        ..session
                    };
                    return Ok(RotateOutcome::Reused(revoked));
                }
                if expires_at_ms <= rotation.now_ms {
                    // Dropping the transaction rolls the rotation back.
                    return Ok(RotateOutcome::Invalid);
                }
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&rotation.new_hash)
                .bind(session_id)
                .bind(rotation.now_ms)
                .bind(rotation.new_expires_at_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE devices SET last_seen_at_ms = $3 WHERE user_id = $1 AND device_id = $2")
                    .bind(session.user_id)
                    .bind(&session.device_id)
                    .bind(rotation.now_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RotateOutcome::Rotated(session))
            }

            async fn session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, user_id, device_id, created_at_ms, revoked_at_ms, revoke_reason \
                     FROM device_sessions WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn live_sessions(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
                let mut live = Vec::new();
                // Chunked: both backends limit the number of bound parameters.
                for chunk in ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id FROM device_sessions WHERE revoked_at_ms IS NULL AND id IN (",
                    );
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    query.push(")");
                    let rows: Vec<(Uuid,)> = query.build_query_as().fetch_all(&self.pool).await?;
                    live.extend(rows.into_iter().map(|(id,)| id));
                }
                Ok(live)
            }

            async fn revoke_session(&self, id: Uuid, reason: &str, now_ms: i64) -> Result<bool, StoreError> {
                let mut tx = self.begin_write().await?;
                let revoked: Option<(Uuid, String)> = sqlx::query_as(
                    "UPDATE device_sessions SET revoked_at_ms = $2, revoke_reason = $3 \
                     WHERE id = $1 AND revoked_at_ms IS NULL RETURNING user_id, device_id",
                )
                .bind(id)
                .bind(now_ms)
                .bind(reason)
                .fetch_optional(&mut *tx)
                .await?;
                // A signed-out device is no longer reached by pushes.
                if let Some((user_id, device_id)) = &revoked {
                    forget_push_registrations(&mut tx, *user_id, Some(device_id)).await?;
                }
                tx.commit().await?;
                Ok(revoked.is_some())
            }

            async fn revoke_user_sessions(
                &self,
                user_id: Uuid,
                reason: &str,
                now_ms: i64,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE device_sessions SET revoked_at_ms = $2, revoke_reason = $3 \
                     WHERE user_id = $1 AND revoked_at_ms IS NULL",
                )
                .bind(user_id)
                .bind(now_ms)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                forget_push_registrations(&mut tx, user_id, None).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn devices(&self, user_id: Uuid) -> Result<Vec<DeviceRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT user_id, device_id, platform, display_name, created_at_ms, last_seen_at_ms \
                     FROM devices WHERE user_id = $1 ORDER BY created_at_ms, device_id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn remove_device(
                &self,
                user_id: Uuid,
                device_id: &str,
                now_ms: i64,
            ) -> Result<Option<Vec<Uuid>>, StoreError> {
                let mut tx = self.begin_write().await?;
                let deleted = sqlx::query("DELETE FROM devices WHERE user_id = $1 AND device_id = $2")
                    .bind(user_id)
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() == 0 {
                    return Ok(None);
                }
                let revoked: Vec<(Uuid,)> = sqlx::query_as(
                    "UPDATE device_sessions SET revoked_at_ms = $3, revoke_reason = 'device_removed' \
                     WHERE user_id = $1 AND device_id = $2 AND revoked_at_ms IS NULL RETURNING id",
                )
                .bind(user_id)
                .bind(device_id)
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(revoked.into_iter().map(|(id,)| id).collect()))
            }
        }


        /// Deletes the push registrations of one device (or of every device
        /// of the user), inside a revoking transaction.
        async fn forget_push_registrations(
            tx: &mut sqlx::Transaction<'static, $db>,
            user_id: Uuid,
            device_id: Option<&str>,
        ) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM push_registrations WHERE user_id = $1 AND ($2 IS NULL OR device_id = $2)")
                .bind(user_id)
                .bind(device_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}

for_both_backends!(impl_devices);
