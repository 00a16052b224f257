//! Token signing keys ([`KeyStore`]).

use async_trait::async_trait;

use crate::*;

macro_rules! impl_keys {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl KeyStore for $store {
            async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT kid, algorithm, private_der, created_at_ms FROM signing_keys ORDER BY created_at_ms, kid",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO signing_keys (kid, algorithm, private_der, created_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kid) DO NOTHING",
                )
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.private_der)
                .bind(key.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

    };
}

for_both_backends!(impl_keys);
