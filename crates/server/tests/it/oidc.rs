//! Tokens from an external OIDC issuer (Cognito-style), verified against a
//! JWKS served by the test itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iyagi_auth::OidcSettings;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey as _;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{TestApp, expect_error, test_settings};

const ISSUER: &str = "https://idp.example.test/pool-1";
const AUDIENCE: &str = "iyagi-app-client";

struct Key {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn rsa_key(kid: &str) -> Key {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pem = private.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let public = private.to_public_key();
    Key {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        jwk: json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
                    "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())}),
    }
}

fn ec_key(kid: &str) -> Key {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    Key {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        jwk: json!({"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "use": "sig",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(key: &Key, claims: Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now() + 300, "iat": now(),
           "cognito:username": "Cloud_User"})
}

/// A JWKS endpoint whose key set the test can change, counting fetches.
struct Issuer {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

async fn start_issuer(keys: Vec<Value>) -> Issuer {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let (k, f) = (k.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                Json(json!({"keys": *k.lock().await}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    Issuer { keys, fetches, url }
}

async fn app_trusting(
    issuer: &Issuer,
    db: &iyagi_testkit::TestDb,
    min_refetch_secs: u64,
) -> TestApp {
    let mut settings = test_settings(&db.url);
    settings.auth.clock_skew_secs = 0;
    settings.auth.oidc = Some(OidcSettings {
        issuer: ISSUER.to_owned(),
        jwks_url: issuer.url.clone(),
        audience: AUDIENCE.to_owned(),
        username_claims: vec![
            "cognito:username".to_owned(),
            "preferred_username".to_owned(),
        ],
        jwks_min_refetch_secs: min_refetch_secs,
    });
    TestApp::spawn_with(settings).await
}

#[tokio::test]
async fn external_tokens_are_accepted_and_mapped_to_one_local_user() {
    let rsa = rsa_key("rsa-1");
    let ec = ec_key("ec-1");
    let issuer = start_issuer(vec![rsa.jwk.clone(), ec.jwk.clone()]).await;
    let db = iyagi_testkit::TestDb::sqlite();
    let app = app_trusting(&issuer, &db, 0).await;

    let first = app.get("/v1/me", &sign(&rsa, claims("sub-123"))).await;
    assert_eq!(first.status(), 200);
    let me: Value = first.json().await.unwrap();
    assert_eq!(
        me["username"], "cloud_user",
        "created on first sight from cognito:username"
    );

    // Same subject again (ES256 this time): the same local user, no new fetch.
    let again: Value = app
        .get("/v1/me", &sign(&ec, claims("sub-123")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], me["id"]);
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "JWKS is cached");

    // Another subject wanting the same username gets a generated one.
    let other: Value = app
        .get("/v1/me", &sign(&rsa, claims("sub-456")))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["id"], me["id"]);
    assert!(
        other["username"].as_str().unwrap().starts_with("u_"),
        "{other}"
    );

    // Cognito access tokens name the client in client_id instead of aud.
    let mut cognito_access = claims("sub-123");
    cognito_access.as_object_mut().unwrap().remove("aud");
    cognito_access["client_id"] = json!(AUDIENCE);
    assert_eq!(
        app.get("/v1/me", &sign(&rsa, cognito_access))
            .await
            .status(),
        200
    );

    // External users can use the API like anyone else.
    let devices = app.get("/v1/devices", &sign(&rsa, claims("sub-123"))).await;
    assert_eq!(devices.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn external_tokens_are_rejected_when_anything_is_off() {
    let rsa = rsa_key("rsa-1");
    let ec = ec_key("ec-1");
    let issuer = start_issuer(vec![rsa.jwk.clone(), ec.jwk.clone()]).await;
    let db = iyagi_testkit::TestDb::sqlite();
    let app = app_trusting(&issuer, &db, 0).await;

    let mut wrong_issuer = claims("s");
    wrong_issuer["iss"] = json!("https://evil.example.test/");
    let mut wrong_audience = claims("s");
    wrong_audience["aud"] = json!("someone-else");
    let mut expired = claims("s");
    expired["exp"] = json!(now() - 10);
    let mut no_subject = claims("s");
    no_subject.as_object_mut().unwrap().remove("sub");
    // Signed by a key the issuer never published, under a published kid.
    let impostor = Key {
        kid: "rsa-1".to_owned(),
        ..rsa_key("rsa-1")
    };
    let unknown_kid = rsa_key("never-published");

    let cases = [
        ("wrong issuer", sign(&rsa, wrong_issuer)),
        ("wrong audience", sign(&rsa, wrong_audience)),
        ("expired", sign(&rsa, expired)),
        ("no subject", sign(&rsa, no_subject)),
        ("bad signature", sign(&impostor, claims("s"))),
        ("unknown key id", sign(&unknown_kid, claims("s"))),
        ("HS256 with the public key as secret", {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("rsa-1".to_owned());
            jsonwebtoken::encode(&header, &claims("s"), &EncodingKey::from_secret(b"n")).unwrap()
        }),
    ];
    for (name, token) in &cases {
        let response = app.get("/v1/me", token).await;
        assert_eq!(response.status(), 401, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unauthenticated", "{name}");
    }
    // None of the rejected tokens created a user.
    assert!(
        app.state
            .store
            .user_by_username("cloud_user")
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_key_id_triggers_a_refetch_so_issuer_rotation_works() {
    let old = rsa_key("2025");
    let rotated = ec_key("2026");
    let issuer = start_issuer(vec![old.jwk.clone()]).await;
    let db = iyagi_testkit::TestDb::sqlite();
    let app = app_trusting(&issuer, &db, 0).await;

    assert_eq!(
        app.get("/v1/me", &sign(&old, claims("rotating")))
            .await
            .status(),
        200
    );
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    // Before the issuer publishes the new key, its tokens fail.
    expect_error(
        app.get("/v1/me", &sign(&rotated, claims("rotating"))).await,
        401,
        "unauthenticated",
    )
    .await;
    issuer.keys.lock().await.push(rotated.jwk.clone());
    assert_eq!(
        app.get("/v1/me", &sign(&rotated, claims("rotating")))
            .await
            .status(),
        200
    );
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        3,
        "one refetch per unknown kid"
    );
    app.stop().await;
}

#[tokio::test]
async fn refetches_are_throttled_against_floods_of_unknown_key_ids() {
    let known = rsa_key("known");
    let issuer = start_issuer(vec![known.jwk.clone()]).await;
    let db = iyagi_testkit::TestDb::sqlite();
    let app = app_trusting(&issuer, &db, 3600).await;
    assert_eq!(
        app.get("/v1/me", &sign(&known, claims("x"))).await.status(),
        200
    );
    for i in 0..5 {
        let forged = rsa_key(&format!("forged-{i}"));
        assert_eq!(
            app.get("/v1/me", &sign(&forged, claims("x")))
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        issuer.fetches.load(Ordering::SeqCst),
        1,
        "no refetch inside the minimum interval"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_issuer_rejects_cleanly() {
    let key = rsa_key("k");
    let db = iyagi_testkit::TestDb::sqlite();
    // Bind and drop a listener, so the port is very likely closed.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = Issuer {
        keys: Arc::new(Mutex::new(vec![])),
        fetches: Arc::new(AtomicUsize::new(0)),
        url: format!("http://127.0.0.1:{port}/jwks.json"),
    };
    let app = app_trusting(&issuer, &db, 0).await;
    expect_error(
        app.get("/v1/me", &sign(&key, claims("x"))).await,
        401,
        "unauthenticated",
    )
    .await;
    app.stop().await;
}
