//! Accounts ([`UserStore`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! impl_users {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, external_issuer, external_subject, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.id)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(&user.external_issuer)
                .bind(&user.external_subject)
                .bind(user.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(UserRecord {
                    id: user.id,
                    username: user.username.clone(),
                    password_hash: user.password_hash.clone(),
                    external_issuer: user.external_issuer.clone(),
                    external_subject: user.external_subject.clone(),
                    created_at_ms: user.created_at_ms,
                })
            }

            async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, username, password_hash, external_issuer, external_subject, created_at_ms \
                     FROM users WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, username, password_hash, external_issuer, external_subject, created_at_ms \
                     FROM users WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn user_by_external(
                &self,
                issuer: &str,
                subject: &str,
            ) -> Result<Option<UserRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, username, password_hash, external_issuer, external_subject, created_at_ms \
                     FROM users WHERE external_issuer = $1 AND external_subject = $2",
                )
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?)
            }
        }

    };
}

for_both_backends!(impl_users);
