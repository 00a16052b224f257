//! The Ed25519 keys that sign iyagi's access tokens.
//!
//! Every token names its key (`kid`), so keys can rotate: the active key
//! signs, every known key verifies.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use iyagi_store::{KeyStore, SigningKeyRecord};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::AuthError;

/// The kid of the key generated on first start. A fixed id makes the first
/// start race-free across nodes: whoever inserts first wins, the others load
/// the winner's key.
const GENERATED_KID: &str = "iyagi-1";
const ALGORITHM: &str = "EdDSA";

/// One public key in JWK form (RFC 8037), served at `/v1/.well-known/jwks.json`
/// so other services can verify iyagi's tokens.
#[derive(Debug, Clone, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
    pub x: String,
}

pub struct SigningKeys {
    active_kid: String,
    active: EncodingKey,
    verifiers: HashMap<String, DecodingKey>,
    public: Vec<PublicJwk>,
}

impl SigningKeys {
    /// Loads configured PEM files (first one signs).
    pub fn from_pem_files(paths: &[PathBuf]) -> Result<SigningKeys, AuthError> {
        let mut keys = Vec::new();
        for path in paths {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| AuthError::Keys(format!("cannot read {}: {e}", path.display())))?;
            let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                AuthError::Keys(format!(
                    "{} is not an Ed25519 PKCS#8 PEM key: {e}",
                    path.display()
                ))
            })?;
            keys.push((kid_for(&key), key));
        }
        SigningKeys::from_keys(keys)
    }

    /// Loads the keys kept in the database, generating the first one if there
    /// is none. The newest key signs.
    pub async fn load_or_generate(
        store: &dyn KeyStore,
        now_ms: i64,
    ) -> Result<SigningKeys, AuthError> {
        // The table also keeps other services' keys (the VAPID key): only
        // token signing keys are ours.
        let ours = |records: Vec<SigningKeyRecord>| -> Vec<SigningKeyRecord> {
            records
                .into_iter()
                .filter(|r| r.algorithm == ALGORITHM)
                .collect()
        };
        let mut records = ours(store.signing_keys().await?);
        if records.is_empty() {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let der = key
                .to_pkcs8_der()
                .map_err(|e| AuthError::Keys(e.to_string()))?;
            let record = SigningKeyRecord {
                kid: GENERATED_KID.to_owned(),
                algorithm: ALGORITHM.to_owned(),
                private_der: der.as_bytes().to_vec(),
                created_at_ms: now_ms,
            };
            if store.insert_signing_key(&record).await? {
                tracing::info!(kid = GENERATED_KID, "generated a new token signing key");
            }
            records = ours(store.signing_keys().await?);
        }
        let mut keys = Vec::new();
        // Stored oldest first; the newest signs.
        for record in records.iter().rev() {
            if record.algorithm != ALGORITHM {
                return Err(AuthError::Keys(format!(
                    "stored key {} has unsupported algorithm",
                    record.kid
                )));
            }
            let key = SigningKey::from_pkcs8_der(&record.private_der).map_err(|e| {
                AuthError::Keys(format!("stored key {} is unreadable: {e}", record.kid))
            })?;
            keys.push((record.kid.clone(), key));
        }
        SigningKeys::from_keys(keys)
    }

    fn from_keys(keys: Vec<(String, SigningKey)>) -> Result<SigningKeys, AuthError> {
        let Some((active_kid, active_key)) = keys.first() else {
            return Err(AuthError::Keys("no signing key".to_owned()));
        };
        let der = active_key
            .to_pkcs8_der()
            .map_err(|e| AuthError::Keys(e.to_string()))?;
        let mut verifiers = HashMap::new();
        let mut public = Vec::new();
        for (kid, key) in &keys {
            let raw = key.verifying_key().to_bytes();
            verifiers.insert(kid.clone(), DecodingKey::from_ed_der(&raw));
            public.push(PublicJwk {
                kty: "OKP",
                crv: "Ed25519",
                alg: ALGORITHM,
                use_: "sig",
                kid: kid.clone(),
                x: URL_SAFE_NO_PAD.encode(raw),
            });
        }
        Ok(SigningKeys {
            active_kid: active_kid.clone(),
            active: EncodingKey::from_ed_der(der.as_bytes()),
            verifiers,
            public,
        })
    }

    pub(crate) fn active(&self) -> (&str, &EncodingKey) {
        (&self.active_kid, &self.active)
    }

    pub(crate) fn verifier(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifiers.get(kid)
    }

    pub fn public_jwks(&self) -> &[PublicJwk] {
        &self.public
    }
}

/// Configured keys are named by their public key, so the same file always
/// yields the same kid on every node.
fn kid_for(key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}
