//! iyagi's own access tokens: EdDSA JWTs naming the user, device and session.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AuthError;
use crate::keys::SigningKeys;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The device session (refresh-token family) this token belongs to.
    pub sid: Uuid,
    /// The device id.
    pub did: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: Uuid,
}

pub(crate) fn sign(keys: &SigningKeys, claims: &AccessClaims) -> Result<String, AuthError> {
    let (kid, key) = keys.active();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key)
        .map_err(|e| AuthError::Internal(format!("signing failed: {e}")))
}

pub(crate) fn verify(
    keys: &SigningKeys,
    token: &str,
    issuer: &str,
    audience: &str,
    leeway_secs: u64,
) -> Result<AccessClaims, AuthError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| AuthError::Unauthenticated("malformed token"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(AuthError::Unauthenticated("unexpected algorithm"));
    }
    let kid = header
        .kid
        .ok_or(AuthError::Unauthenticated("token has no key id"))?;
    let key = keys
        .verifier(&kid)
        .ok_or(AuthError::Unauthenticated("unknown key id"))?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.leeway = leeway_secs;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(classify)
}

pub(crate) fn classify(err: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    AuthError::Unauthenticated(match err.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::MissingRequiredClaim(_) => "missing claim",
        _ => "invalid token",
    })
}

/// Reads `iss` from a token WITHOUT verifying it, only to choose which
/// verifier to apply; the chosen verifier then checks everything.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}
