//! Argon2id password hashing, run on the blocking pool with bounded
//! concurrency: each hash takes ~20 MiB and tens of milliseconds of CPU, so
//! it must neither stall the async runtime nor be multiplied without bound
//! by a flood of login attempts.
//!
//! The ~20 MiB of each hash come from a fixed pool of work buffers, one per
//! permit, allocated once and reused. The crate's own API allocates them
//! per hash; freed, they stay with the allocator (glibc keeps them in
//! per-thread arenas, and blocking-pool threads come and go), so a flood of
//! failed logins raised the process's memory for good (129 → 813 MiB after
//! 1,200 attempts). With the pool, hashing holds at most
//! `permits × memory_kib` KiB, whatever the load.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::AuthError;
use crate::settings::PasswordSettings;

/// Hash length of new hashes (argon2's default).
const OUTPUT_LEN: usize = 32;

#[derive(Clone)]
pub(crate) struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Idle work buffers, each `params.block_count()` blocks; never more
    /// than there are permits.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
}

impl PasswordHasher {
    pub(crate) fn new(settings: &PasswordSettings) -> Result<PasswordHasher, AuthError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| AuthError::Internal(format!("invalid argon2 parameters: {e}")))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(PasswordHasher::with_permits(params, cores * 2))
    }

    fn with_permits(params: Params, permits: usize) -> PasswordHasher {
        PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            buffers: Arc::default(),
        }
    }

    pub(crate) async fn hash(&self, password: String) -> Result<String, AuthError> {
        let params = self.params.clone();
        self.run(move |blocks| {
            let failed =
                |e: &dyn std::fmt::Display| AuthError::Internal(format!("hashing failed: {e}"));
            let salt = SaltString::generate(&mut OsRng);
            let mut salt_bytes = [0u8; 64];
            let salt_bytes = salt
                .as_salt()
                .decode_b64(&mut salt_bytes)
                .map_err(|e| failed(&e))?;
            let mut out = [0u8; OUTPUT_LEN];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt_bytes,
                    &mut out,
                    blocks.get_mut(..params.block_count()).unwrap_or_default(),
                )
                .map_err(|e| failed(&e))?;
            let hash = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
                salt: Some(salt.as_salt()),
                hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
            };
            Ok(hash.to_string())
        })
        .await?
    }

    /// False for a wrong password and for an unparsable stored hash.
    pub(crate) async fn verify(&self, password: String, hash: String) -> Result<bool, AuthError> {
        self.run(move |blocks| verify_with(password.as_bytes(), &hash, blocks).unwrap_or(false))
            .await
    }

    /// Runs `work` on the blocking pool with a work buffer of its own.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| AuthError::Internal("hasher closed".into()))?;
        let buffers = self.buffers.clone();
        let size = self.params.block_count();
        tokio::task::spawn_blocking(move || {
            // A permit is held, so a buffer is free or may be allocated.
            let mut blocks = buffers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_else(|| vec![Block::default(); size]);
            let result = work(&mut blocks);
            if blocks.len() == size {
                buffers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(blocks);
            }
            result
        })
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))
    }

    /// Work buffers allocated so far (at most one per permit).
    #[cfg(test)]
    fn buffers_allocated(&self) -> usize {
        self.buffers.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// Checks `password` against a PHC string, computing into `blocks`. The
/// stored hash carries its own parameters, so older hashes keep verifying
/// after the configured cost changes; one costlier than the pool's buffers
/// gets a buffer of its own (grown here, and dropped after).
fn verify_with(password: &[u8], hash: &str, blocks: &mut Vec<Block>) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut blocks[..params.block_count()],
        )
        .ok()?;
    // `Output`'s equality is constant-time.
    Some(Output::new(&out).ok()? == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};

    fn hasher(permits: usize) -> PasswordHasher {
        PasswordHasher::with_permits(Params::new(256, 1, 1, None).unwrap(), permits)
    }

    #[tokio::test]
    async fn pooled_hashes_are_standard_argon2id_both_ways() {
        let ours = hasher(2);
        let hash = ours.hash("correct horse".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{hash}");
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        // A hash made by the crate's own API, with other costs, verifies.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 2, 2, None).unwrap(),
        )
        .hash_password(b"battery staple", &salt)
        .unwrap()
        .to_string();
        assert!(
            ours.verify("battery staple".to_owned(), theirs.clone())
                .await
                .unwrap()
        );
        assert!(
            !ours
                .verify("battery stapler".to_owned(), theirs)
                .await
                .unwrap()
        );
        assert!(
            !ours
                .verify("x".to_owned(), "not a hash".to_owned())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_flood_allocates_one_buffer_per_permit_and_no_more() {
        let ours = hasher(3);
        let hash = ours.hash("correct horse".to_owned()).await.unwrap();
        let attempts = (0..64).map(|i| {
            let ours = ours.clone();
            let hash = hash.clone();
            tokio::spawn(async move { ours.verify(format!("guess {i}"), hash).await })
        });
        for attempt in attempts.collect::<Vec<_>>() {
            assert!(!attempt.await.unwrap().unwrap());
        }
        assert!(
            ours.buffers_allocated() <= 3,
            "{}",
            ours.buffers_allocated()
        );
        assert!(ours.buffers_allocated() >= 1);
    }
}
