//! Push registrations and preferences ([`PushStore`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! impl_push {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl PushStore for $store {
            async fn put_registration(&self, r: &Registration) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "INSERT INTO push_registrations (user_id, device_id, provider, token, topic, p256dh, auth, created_at_ms, updated_at_ms) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                     WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2) \
                     ON CONFLICT (user_id, device_id, provider) DO UPDATE SET \
                       token = excluded.token, topic = excluded.topic, p256dh = excluded.p256dh, \
                       auth = excluded.auth, updated_at_ms = excluded.updated_at_ms",
                )
                .bind(r.user_id)
                .bind(&r.device_id)
                .bind(r.provider)
                .bind(&r.token)
                .bind(&r.topic)
                .bind(&r.p256dh)
                .bind(&r.auth)
                .bind(r.created_at_ms)
                .bind(r.updated_at_ms)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_registration(&self, user_id: Uuid, device_id: &str, provider: PushProvider) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM push_registrations WHERE user_id = $1 AND device_id = $2 AND provider = $3")
                    .bind(user_id)
                    .bind(device_id)
                    .bind(provider)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_registration(&self, user_id: Uuid, device_id: &str, provider: PushProvider, token: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM push_registrations WHERE user_id = $1 AND device_id = $2 AND provider = $3 AND token = $4",
                )
                .bind(user_id)
                .bind(device_id)
                .bind(provider)
                .bind(token)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn registrations(&self, user_id: Uuid) -> Result<Vec<Registration>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT user_id, device_id, provider, token, topic, p256dh, auth, created_at_ms, updated_at_ms \
                     FROM push_registrations WHERE user_id = $1 ORDER BY device_id, provider",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn registrations_for(&self, user_ids: &[Uuid]) -> Result<Vec<Registration>, StoreError> {
                let mut found = Vec::new();
                // Chunked: both backends limit the number of bound parameters.
                for chunk in user_ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT user_id, device_id, provider, token, topic, p256dh, auth, created_at_ms, updated_at_ms \
                         FROM push_registrations WHERE user_id IN (",
                    );
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    query.push(")");
                    found.extend(query.build_query_as::<Registration>().fetch_all(&self.pool).await?);
                }
                Ok(found)
            }

            async fn push_previews(&self, user_id: Uuid) -> Result<bool, StoreError> {
                let row: Option<(bool,)> = sqlx::query_as("SELECT push_previews FROM user_preferences WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_none_or(|(previews,)| previews))
            }

            async fn set_push_previews(&self, user_id: Uuid, previews: bool, now_ms: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO user_preferences (user_id, push_previews, updated_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET push_previews = excluded.push_previews, updated_at_ms = excluded.updated_at_ms",
                )
                .bind(user_id)
                .bind(previews)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

for_both_backends!(impl_push);
