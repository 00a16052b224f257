use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[auth]` in the configuration file. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `iss` of the access tokens iyagi issues.
    pub issuer: String,
    /// `aud` of the access tokens iyagi issues.
    pub audience: String,
    /// Access token lifetime. Revocation of a device takes effect for HTTP
    /// at once, and for stateless verifiers within this time.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime (each refresh issues a new one).
    pub refresh_token_ttl_secs: u64,
    /// Tolerance for clock differences when checking `exp`/`nbf`.
    pub clock_skew_secs: u64,
    /// Ed25519 private keys (PKCS#8 PEM). The first signs, all verify, so a
    /// key can be rotated by prepending a new one. When empty, a key is
    /// generated on first start and kept in the database, shared by all nodes.
    pub signing_key_files: Vec<PathBuf>,
    pub password: PasswordSettings,
    pub rate_limit: RateLimitSettings,
    /// An external OpenID Connect issuer whose access tokens are accepted.
    pub oidc: Option<OidcSettings>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            issuer: "iyagi".to_owned(),
            audience: "iyagi".to_owned(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            clock_skew_secs: 30,
            signing_key_files: Vec::new(),
            password: PasswordSettings::default(),
            rate_limit: RateLimitSettings::default(),
            oidc: None,
        }
    }
}

/// Argon2id cost. Defaults follow OWASP's minimum (19 MiB, 2 passes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        PasswordSettings {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Per-node limits on authentication attempts (token buckets: the number is
/// both the burst and the refill per minute).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub login_per_account_per_minute: u32,
    pub login_per_address_per_minute: u32,
    pub register_per_address_per_minute: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            login_per_account_per_minute: 10,
            login_per_address_per_minute: 30,
            register_per_address_per_minute: 10,
        }
    }
}

/// `[auth.oidc]`: an external issuer such as Amazon Cognito, Keycloak or Auth0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// Must equal the tokens' `iss` exactly.
    pub issuer: String,
    /// Where the issuer publishes its signing keys (JWKS).
    pub jwks_url: String,
    /// Accepted when it equals `aud` (or one of them) or, as Cognito access
    /// tokens carry it, `client_id`.
    pub audience: String,
    /// Claims tried in order for the local username of a first-seen user.
    #[serde(default = "default_username_claims")]
    pub username_claims: Vec<String>,
    /// An unknown key id triggers a JWKS refetch at most this often.
    #[serde(default = "default_refetch")]
    pub jwks_min_refetch_secs: u64,
}

fn default_username_claims() -> Vec<String> {
    vec![
        "cognito:username".to_owned(),
        "preferred_username".to_owned(),
        "username".to_owned(),
    ]
}

fn default_refetch() -> u64 {
    30
}
