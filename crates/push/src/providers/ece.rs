//! RFC 8291 message encryption for Web Push: the `aes128gcm` content
//! coding (RFC 8188) with a key agreed by ECDH on P-256.
//!
//! Written here on RustCrypto's primitives because the crates that do it
//! whole (`ece`, `web-push`) encrypt through OpenSSL, a second crypto and
//! TLS stack beside rustls. The unit tests check it against RFC 8291's own
//! worked example, and the server tests against Python's `http-ece`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size announced in the header. Push payloads are one record.
const RECORD_SIZE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum EceError {
    #[error("the subscription's p256dh is not a P-256 point")]
    BadPublicKey,
    #[error("the payload is larger than one record")]
    TooLarge,
}

/// Encrypts `plaintext` for a subscription (`ua_public`: its `p256dh`,
/// `auth`: its auth secret), with a fresh key pair and salt.
pub fn encrypt(ua_public: &[u8], auth: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EceError> {
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
    let as_secret = SecretKey::random(&mut rand::rngs::OsRng);
    encrypt_with(ua_public, auth, plaintext, &as_secret, salt)
}

/// [`encrypt`] with the sender's key and salt given (for test vectors).
pub(crate) fn encrypt_with(
    ua_public: &[u8],
    auth: &[u8],
    plaintext: &[u8],
    as_secret: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, EceError> {
    // One record: the plaintext, the last-record delimiter (2), the tag.
    if plaintext.len() + 1 + 16 > RECORD_SIZE as usize {
        return Err(EceError::TooLarge);
    }
    let ua_key = PublicKey::from_sec1_bytes(ua_public).map_err(|_| EceError::BadPublicKey)?;
    let as_public = as_secret.public_key().to_encoded_point(false);
    let as_public = as_public.as_bytes();
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_key.as_affine());

    // RFC 8291 §3.4: IKM from the ECDH secret and the auth secret.
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .map_err(|_| EceError::TooLarge)?;

    // RFC 8188 §2.2-2.3: the content key and nonce from the salt.
    let prk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .and_then(|()| prk.expand(b"Content-Encoding: nonce\0", &mut nonce))
        .map_err(|_| EceError::TooLarge)?;

    let mut padded = Vec::with_capacity(plaintext.len() + 1);
    padded.extend_from_slice(plaintext);
    padded.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| EceError::TooLarge)?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), padded.as_slice())
        .map_err(|_| EceError::TooLarge)?;

    // The header: salt, record size, the sender's public key as key id.
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).expect("base64url")
    }

    /// RFC 8291 §5, "Push Message Encryption Example", byte for byte.
    #[test]
    fn matches_the_rfc_8291_example() {
        let plaintext = b"When I grow up, I want to be a watermelon";
        let as_private = b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw");
        let ua_public = b64(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
        );
        let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16 bytes");
        let secret = SecretKey::from_slice(&as_private).expect("key");
        let body = encrypt_with(&ua_public, &auth, plaintext, &secret, salt).expect("encrypt");
        let expected = b64(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&body),
            URL_SAFE_NO_PAD.encode(&expected)
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let ua = secret.public_key().to_encoded_point(false);
        let big = vec![0u8; 5000];
        assert!(matches!(
            encrypt(ua.as_bytes(), &[0; 16], &big),
            Err(EceError::TooLarge)
        ));
        assert!(matches!(
            encrypt(&[4; 65], &[0; 16], b"x"),
            Err(EceError::BadPublicKey)
        ));
    }
}
