//! The rules of accounts, devices and tokens.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iyagi_store::{
    DeviceRecord, NewLogin, NewUser, RotateOutcome, Rotation, Storage, StoreError, UserRecord,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::keys::SigningKeys;
use crate::limiter::LoginLimiter;
use crate::oidc::{ExternalIdentity, OidcVerifier};
use crate::password::PasswordHasher;
use crate::settings::AuthSettings;
use crate::tokens::{self, AccessClaims};
use crate::validate::{DeviceId, Password, Username, device_name};
use crate::{AuthError, now_ms};

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    /// Set for iyagi's own tokens; external OIDC tokens carry no device.
    pub device_id: Option<String>,
    pub session_id: Option<Uuid>,
}

/// A login or refresh result.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub access_expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub user_id: Uuid,
    pub device_id: String,
}

/// Sessions that stopped being valid, for whoever holds connections open on
/// them (the WebSocket gateway closes those connections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    Session { user_id: Uuid, session_id: Uuid },
    AllSessionsOf { user_id: Uuid },
}

pub struct AuthService {
    store: Arc<dyn Storage>,
    settings: AuthSettings,
    keys: SigningKeys,
    hasher: PasswordHasher,
    /// Verified against when the username is unknown, so a miss costs the
    /// same time as a wrong password and timing reveals nothing.
    dummy_hash: String,
    oidc: Option<OidcVerifier>,
    limiter: LoginLimiter,
    revocations: broadcast::Sender<Revocation>,
}

impl AuthService {
    pub async fn new(
        store: Arc<dyn Storage>,
        settings: AuthSettings,
    ) -> Result<AuthService, AuthError> {
        let keys = if settings.signing_key_files.is_empty() {
            SigningKeys::load_or_generate(store.as_ref(), now_ms()).await?
        } else {
            SigningKeys::from_pem_files(&settings.signing_key_files)?
        };
        let hasher = PasswordHasher::new(&settings.password)?;
        let dummy_hash = hasher.hash("iyagi-timing-equaliser".to_owned()).await?;
        let oidc = match &settings.oidc {
            Some(oidc) => Some(OidcVerifier::new(oidc.clone(), settings.clock_skew_secs)?),
            None => None,
        };
        let limiter = LoginLimiter::new(&settings.rate_limit);
        let (revocations, _) = broadcast::channel(1024);
        Ok(AuthService {
            store,
            settings,
            keys,
            hasher,
            dummy_hash,
            oidc,
            limiter,
            revocations,
        })
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn limiter(&self) -> &LoginLimiter {
        &self.limiter
    }

    pub fn subscribe_revocations(&self) -> broadcast::Receiver<Revocation> {
        self.revocations.subscribe()
    }

    pub async fn register(
        &self,
        client: IpAddr,
        username: &str,
        password: &str,
    ) -> Result<UserRecord, AuthError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        self.limiter.check_register(client)?;
        if self
            .store
            .user_by_username(username.as_str())
            .await?
            .is_some()
        {
            return Err(AuthError::UsernameTaken);
        }
        let hash = self.hasher.hash(password.expose().to_owned()).await?;
        let user = NewUser {
            id: Uuid::now_v7(),
            username: username.as_str().to_owned(),
            password_hash: Some(hash),
            external_issuer: None,
            external_subject: None,
            created_at_ms: now_ms(),
        };
        match self.store.create_user(&user).await {
            Ok(user) => Ok(user),
            // Lost a race with a concurrent registration of the same name.
            Err(StoreError::Conflict) => Err(AuthError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn login(
        &self,
        client: IpAddr,
        username: &str,
        password: &str,
        device_id: &str,
        platform: &str,
        name: Option<&str>,
    ) -> Result<IssuedTokens, AuthError> {
        let device_id = DeviceId::parse(device_id)?;
        let name = device_name(name)?;
        // Malformed usernames and passwords can never match: answer exactly
        // as for a wrong password, but still count the attempt.
        let username = Username::parse(username).ok();
        self.limiter
            .check_login(client, username.as_ref().map(Username::as_str))?;
        let user = match &username {
            Some(name) => self.store.user_by_username(name.as_str()).await?,
            None => None,
        };
        let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let matches = self
            .hasher
            .verify(
                password.to_owned(),
                stored_hash
                    .clone()
                    .unwrap_or_else(|| self.dummy_hash.clone()),
            )
            .await?;
        let user = match user {
            Some(user) if matches && stored_hash.is_some() => user,
            _ => return Err(AuthError::InvalidCredentials),
        };

        let now = now_ms();
        let session_id = Uuid::now_v7();
        let (refresh_token, refresh_hash) = new_refresh_token();
        let recorded = self
            .store
            .record_login(&NewLogin {
                user_id: user.id,
                device_id: device_id.as_str().to_owned(),
                platform: platform.to_owned(),
                display_name: name,
                session_id,
                refresh_token_hash: refresh_hash,
                refresh_expires_at_ms: now + self.refresh_ttl_ms(),
                now_ms: now,
            })
            .await?;
        let session = recorded.session;
        // The device's earlier session is revoked: its open connections,
        // on every node, close now (not when their token expires).
        for session_id in recorded.replaced {
            self.announce(Revocation::Session {
                user_id: user.id,
                session_id,
            });
        }
        tracing::info!(user_id = %user.id, device_id = device_id.as_str(), session_id = %session.id, "login");
        self.issue(user.id, session.id, device_id.as_str(), refresh_token)
    }

    pub async fn refresh(&self, presented: &str) -> Result<IssuedTokens, AuthError> {
        let now = now_ms();
        let (new_token, new_hash) = new_refresh_token();
        let outcome = self
            .store
            .rotate_refresh_token(&Rotation {
                presented_hash: hash_token(presented),
                new_hash,
                new_expires_at_ms: now + self.refresh_ttl_ms(),
                now_ms: now,
            })
            .await?;
        match outcome {
            RotateOutcome::Rotated(session) => {
                self.issue(session.user_id, session.id, &session.device_id, new_token)
            }
            RotateOutcome::Reused(session) => {
                tracing::warn!(
                    user_id = %session.user_id, device_id = session.device_id, session_id = %session.id,
                    "refresh token reused: device session revoked"
                );
                self.announce(Revocation::Session {
                    user_id: session.user_id,
                    session_id: session.id,
                });
                Err(AuthError::RefreshTokenReused)
            }
            RotateOutcome::Invalid => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// Checks a bearer token: iyagi's own (signature, expiry, and that its
    /// device session is still live) or, if configured, an external issuer's.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let issuer = tokens::unverified_issuer(token)
            .ok_or(AuthError::Unauthenticated("malformed token"))?;
        if issuer == self.settings.issuer {
            let claims = tokens::verify(
                &self.keys,
                token,
                &self.settings.issuer,
                &self.settings.audience,
                self.settings.clock_skew_secs,
            )?;
            let live = self
                .store
                .session(claims.sid)
                .await?
                .is_some_and(|s| s.is_active() && s.user_id == claims.sub);
            if !live {
                return Err(AuthError::Unauthenticated("session revoked"));
            }
            return Ok(Principal {
                user_id: claims.sub,
                device_id: Some(claims.did),
                session_id: Some(claims.sid),
            });
        }
        match &self.oidc {
            Some(oidc) if oidc.issuer() == issuer => {
                let identity = oidc.verify(token).await?;
                let user = self.external_user(identity).await?;
                Ok(Principal {
                    user_id: user.id,
                    device_id: None,
                    session_id: None,
                })
            }
            _ => Err(AuthError::Unauthenticated("wrong issuer")),
        }
    }

    /// Of the given device sessions, those still live (not revoked).
    pub async fn live_sessions(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, AuthError> {
        Ok(self.store.live_sessions(ids).await?)
    }

    pub async fn user(&self, id: Uuid) -> Result<UserRecord, AuthError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::Unauthenticated("user no longer exists"))
    }

    /// Revokes the caller's device session. External tokens have no local
    /// session; for them this does nothing.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        if let Some(session_id) = principal.session_id {
            self.store
                .revoke_session(session_id, "logout", now_ms())
                .await?;
            self.announce(Revocation::Session {
                user_id: principal.user_id,
                session_id,
            });
        }
        Ok(())
    }

    pub async fn logout_all(&self, principal: &Principal) -> Result<u64, AuthError> {
        let count = self
            .store
            .revoke_user_sessions(principal.user_id, "logout_all", now_ms())
            .await?;
        self.announce(Revocation::AllSessionsOf {
            user_id: principal.user_id,
        });
        Ok(count)
    }

    pub async fn devices(&self, principal: &Principal) -> Result<Vec<DeviceRecord>, AuthError> {
        Ok(self.store.devices(principal.user_id).await?)
    }

    pub async fn remove_device(
        &self,
        principal: &Principal,
        device_id: &str,
    ) -> Result<(), AuthError> {
        let revoked = self
            .store
            .remove_device(principal.user_id, device_id, now_ms())
            .await?
            .ok_or(AuthError::DeviceNotFound)?;
        for session_id in revoked {
            self.announce(Revocation::Session {
                user_id: principal.user_id,
                session_id,
            });
        }
        Ok(())
    }

    fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        device_id: &str,
        refresh_token: String,
    ) -> Result<IssuedTokens, AuthError> {
        let now_secs = (now_ms() / 1000) as u64;
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user_id,
            sid: session_id,
            did: device_id.to_owned(),
            iat: now_secs,
            exp: now_secs + self.settings.access_token_ttl_secs,
            jti: Uuid::now_v7(),
        };
        Ok(IssuedTokens {
            access_token: tokens::sign(&self.keys, &claims)?,
            access_expires_in: self.settings.access_token_ttl_secs,
            refresh_token,
            refresh_expires_in: self.settings.refresh_token_ttl_secs,
            user_id,
            device_id: device_id.to_owned(),
        })
    }

    /// The local user of an external identity, created on first sight.
    async fn external_user(&self, identity: ExternalIdentity) -> Result<UserRecord, AuthError> {
        if let Some(user) = self
            .store
            .user_by_external(&identity.issuer, &identity.subject)
            .await?
        {
            return Ok(user);
        }
        let fallback = format!(
            "u_{}",
            hex_prefix(&Sha256::digest(format!(
                "{}|{}",
                identity.issuer, identity.subject
            )))
        );
        let preferred = identity
            .username_hint
            .as_deref()
            .and_then(|hint| Username::parse(hint).ok());
        let candidates = preferred
            .map(|u| u.as_str().to_owned())
            .into_iter()
            .chain([fallback]);
        for username in candidates {
            let created = self
                .store
                .create_user(&NewUser {
                    id: Uuid::now_v7(),
                    username,
                    password_hash: None,
                    external_issuer: Some(identity.issuer.clone()),
                    external_subject: Some(identity.subject.clone()),
                    created_at_ms: now_ms(),
                })
                .await;
            match created {
                Ok(user) => {
                    tracing::info!(user_id = %user.id, issuer = identity.issuer, "created local user for external identity");
                    return Ok(user);
                }
                Err(StoreError::Conflict) => {
                    // Either the username is taken (try the next), or a
                    // concurrent request created this very identity.
                    if let Some(user) = self
                        .store
                        .user_by_external(&identity.issuer, &identity.subject)
                        .await?
                    {
                        return Ok(user);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::Internal(
            "no free username for external identity".to_owned(),
        ))
    }

    fn refresh_ttl_ms(&self) -> i64 {
        (self.settings.refresh_token_ttl_secs as i64).saturating_mul(1000)
    }

    fn announce(&self, revocation: Revocation) {
        // No receiver simply means no open connections to close.
        let _ = self.revocations.send(revocation);
    }
}

/// Refresh tokens: 256 random bits, stored only as their SHA-256.
fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
