//! Token signing keys: generated once and persisted, or configured and rotated.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use serde_json::Value;

use crate::helpers::{TestApp, test_settings};

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

crate::api_suite!(keys: generated_key_survives_a_restart);

pub async fn generated_key_survives_a_restart(db: String) {
    let app = TestApp::spawn(&db).await;
    app.register("restarter", "correct horse").await;
    let tokens = app.login("restarter", "correct horse", "phone").await;
    let jwks: Value = app
        .get_public("/v1/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], kid_of(&tokens.access));
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    app.stop().await;

    // Same database, new process: tokens issued before the restart still verify.
    let restarted = TestApp::spawn(&db).await;
    assert_eq!(restarted.get("/v1/me", &tokens.access).await.status(), 200);
    assert_eq!(restarted.refresh(&tokens.refresh).await.status(), 200);
    restarted.stop().await;
}

#[tokio::test]
async fn configured_keys_rotate_first_signs_all_verify() {
    let dir = tempfile::tempdir().unwrap();
    let write_key = |name: &str| {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let path = dir.path().join(name);
        std::fs::write(&path, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        path
    };
    let old_key = write_key("old.pem");
    let new_key = write_key("new.pem");
    let db = iyagi_testkit::TestDb::sqlite();

    let mut settings = test_settings(&db.url);
    settings.auth.signing_key_files = vec![old_key.clone()];
    let app = TestApp::spawn_with(settings.clone()).await;
    app.register("rotator", "correct horse").await;
    let before = app.login("rotator", "correct horse", "phone").await;
    app.stop().await;

    // Rotate: the new key first (signs), the old one kept (verifies).
    settings.auth.signing_key_files = vec![new_key.clone(), old_key];
    let app = TestApp::spawn_with(settings.clone()).await;
    assert_eq!(
        app.get("/v1/me", &before.access).await.status(),
        200,
        "old-key token still verifies"
    );
    let after = app.login("rotator", "correct horse", "laptop").await;
    assert_ne!(
        kid_of(&after.access),
        kid_of(&before.access),
        "new tokens are signed by the new key"
    );
    let jwks: Value = app
        .get_public("/v1/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    app.stop().await;

    // Old key retired: its tokens stop verifying.
    settings.auth.signing_key_files = vec![new_key];
    let app = TestApp::spawn_with(settings).await;
    assert_eq!(app.get("/v1/me", &before.access).await.status(), 401);
    assert_eq!(app.get("/v1/me", &after.access).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn an_unreadable_key_file_fails_startup_with_its_path() {
    let db = iyagi_testkit::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let mut settings = test_settings(&db.url);
    settings.auth.signing_key_files = vec![bad.clone()];
    let Err(err) = iyagi_server::Application::build(settings).await else {
        panic!("must fail")
    };
    assert!(err.to_string().contains("bad.pem"), "{err}");
}
