//! The VAPID key (RFC 8292): the server's P-256 key that signs a JWT on
//! every Web Push request, so push services know the pushes come from the
//! server a browser subscribed with (its public key is the subscription's
//! `applicationServerKey`).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iyagi_store::{KeyStore, SigningKeyRecord};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};

use super::ProviderSetupError;

/// The generated key's row among the stored keys (a fixed id, so that
/// nodes starting together agree on one: the first insert wins).
pub const VAPID_KEY_KID: &str = "vapid-1";
pub const VAPID_KEY_ALGORITHM: &str = "ES256-VAPID";

pub struct VapidKey {
    encoding: EncodingKey,
    /// The uncompressed public point, base64url: what browsers are given.
    public: String,
}

impl VapidKey {
    fn from_secret(secret: &SecretKey) -> Result<VapidKey, ProviderSetupError> {
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| ProviderSetupError(format!("cannot encode the VAPID key: {e}")))?;
        Ok(VapidKey {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            public: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes()),
        })
    }

    /// A configured key: a P-256 private key in PKCS#8 PEM.
    pub fn from_pem_file(path: &Path) -> Result<VapidKey, ProviderSetupError> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| ProviderSetupError(format!("cannot read {}: {e}", path.display())))?;
        let secret = SecretKey::from_pkcs8_pem(&pem).map_err(|e| {
            ProviderSetupError(format!(
                "{} is not a P-256 PKCS#8 PEM key: {e}",
                path.display()
            ))
        })?;
        VapidKey::from_secret(&secret)
    }

    /// The key kept in the database, generated on first start.
    pub async fn load_or_generate(
        store: &dyn KeyStore,
        now_ms: i64,
    ) -> Result<VapidKey, ProviderSetupError> {
        let stored =
            |records: Vec<SigningKeyRecord>| records.into_iter().find(|r| r.kid == VAPID_KEY_KID);
        let keys = store
            .signing_keys()
            .await
            .map_err(|e| ProviderSetupError(e.to_string()))?;
        let record = match stored(keys) {
            Some(record) => record,
            None => {
                let secret = SecretKey::random(&mut rand::rngs::OsRng);
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|e| ProviderSetupError(format!("cannot encode the VAPID key: {e}")))?;
                let record = SigningKeyRecord {
                    kid: VAPID_KEY_KID.to_owned(),
                    algorithm: VAPID_KEY_ALGORITHM.to_owned(),
                    private_der: der.as_bytes().to_vec(),
                    created_at_ms: now_ms,
                };
                if store
                    .insert_signing_key(&record)
                    .await
                    .map_err(|e| ProviderSetupError(e.to_string()))?
                {
                    tracing::info!("generated the Web Push (VAPID) key");
                }
                let keys = store
                    .signing_keys()
                    .await
                    .map_err(|e| ProviderSetupError(e.to_string()))?;
                stored(keys)
                    .ok_or_else(|| ProviderSetupError("the VAPID key vanished".to_owned()))?
            }
        };
        let secret = SecretKey::from_pkcs8_der(&record.private_der)
            .map_err(|e| ProviderSetupError(format!("the stored VAPID key is unreadable: {e}")))?;
        VapidKey::from_secret(&secret)
    }

    /// The public key, base64url (uncompressed point), for
    /// `PushManager.subscribe({ applicationServerKey })`.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push service at `audience` (the
    /// endpoint's origin), valid until `expires` (unix seconds, ≤ 24 h).
    pub fn authorization(
        &self,
        audience: &str,
        expires: u64,
        subject: &str,
    ) -> Result<String, String> {
        let claims = serde_json::json!({ "aud": audience, "exp": expires, "sub": subject });
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".to_owned());
        let token =
            jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| e.to_string())?;
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}
