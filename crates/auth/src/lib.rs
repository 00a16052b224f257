//! iyagi's token service.
//!
//! [`AuthService`] holds the rules: register, log in per device, rotate
//! refresh tokens (reuse revokes the family), log out one device or all,
//! and authenticate bearer tokens — iyagi's own EdDSA access tokens, or an
//! external OIDC issuer's RS256/ES256 tokens when one is configured.
//! Storage is behind `iyagi_store` traits; nothing here speaks HTTP.

mod error;
mod keys;
mod limiter;
mod oidc;
mod password;
mod service;
mod settings;
mod tokens;
pub mod validate;

pub use error::AuthError;
pub use keys::{PublicJwk, SigningKeys};
pub use limiter::LoginLimiter;
pub use oidc::OidcVerifier;
pub use service::{AuthService, IssuedTokens, Principal, Revocation};
pub use settings::{AuthSettings, OidcSettings, PasswordSettings, RateLimitSettings};
pub use tokens::AccessClaims;

pub use iyagi_protocol::now_ms;
