//! Accepting access tokens from an external OpenID Connect issuer.
//!
//! The issuer's JWKS is fetched on first use and cached by key id. A token
//! with an unknown key id triggers one refetch (the issuer may have rotated
//! keys), at most once per `jwks_min_refetch_secs`, so a flood of forged key
//! ids cannot turn into a flood of requests to the issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use crate::AuthError;
use crate::settings::OidcSettings;
use crate::tokens::classify;

/// Who an external token says the caller is.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    /// A preferred local username, from the configured claims.
    pub username_hint: Option<String>,
}

pub struct OidcVerifier {
    settings: OidcSettings,
    leeway_secs: u64,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_fetch: Mutex<Option<Instant>>,
}

const ACCEPTED: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

impl OidcVerifier {
    pub fn new(settings: OidcSettings, leeway_secs: u64) -> Result<OidcVerifier, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AuthError::Internal(format!("http client: {e}")))?;
        Ok(OidcVerifier {
            settings,
            leeway_secs,
            http,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    pub async fn verify(&self, token: &str) -> Result<ExternalIdentity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Unauthenticated("malformed token"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::Unauthenticated("unexpected algorithm"));
        }
        let kid = header
            .kid
            .ok_or(AuthError::Unauthenticated("token has no key id"))?;
        let key = self.key(&kid).await?;

        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        // Audience is checked below: Cognito access tokens carry the client
        // in `client_id` rather than `aud`.
        validation.validate_aud = false;
        validation.leeway = self.leeway_secs;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<HashMap<String, Value>>(token, &key, &validation)
            .map_err(classify)?
            .claims;
        if !self.audience_matches(&claims) {
            return Err(AuthError::Unauthenticated("wrong audience"));
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Unauthenticated("missing claim"))?
            .to_owned();
        let username_hint = self
            .settings
            .username_claims
            .iter()
            .find_map(|claim| claims.get(claim).and_then(Value::as_str))
            .map(str::to_owned);
        Ok(ExternalIdentity {
            issuer: self.settings.issuer.clone(),
            subject,
            username_hint,
        })
    }

    fn audience_matches(&self, claims: &HashMap<String, Value>) -> bool {
        let wanted = self.settings.audience.as_str();
        let aud_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == wanted,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(wanted)),
            _ => false,
        };
        aud_ok || claims.get("client_id").and_then(Value::as_str) == Some(wanted)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        // One fetch at a time; waiters re-check the cache the winner filled.
        let mut last_fetch = self.last_fetch.lock().await;
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        let min_gap = Duration::from_secs(self.settings.jwks_min_refetch_secs);
        if last_fetch.is_some_and(|at| at.elapsed() < min_gap) {
            return Err(AuthError::Unauthenticated("unknown key id"));
        }
        *last_fetch = Some(Instant::now());
        let fresh = self.fetch_jwks().await?;
        let mut keys = self.keys.write().await;
        *keys = fresh;
        keys.get(kid)
            .cloned()
            .ok_or(AuthError::Unauthenticated("unknown key id"))
    }

    async fn fetch_jwks(&self) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let set: JwkSet = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| {
                tracing::warn!(error = %e, url = %self.settings.jwks_url, "JWKS fetch failed");
                AuthError::Unauthenticated("issuer keys unavailable")
            })?
            .json()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, url = %self.settings.jwks_url, "JWKS is not valid JSON");
                AuthError::Unauthenticated("issuer keys unavailable")
            })?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(e) => tracing::warn!(kid, error = %e, "skipping unusable JWK"),
            }
        }
        tracing::debug!(count = keys.len(), "fetched issuer keys");
        Ok(keys)
    }
}
