//! `iyagi admin grant`: the first admin is made from the command line,
//! against the configured database, while the server runs.

mod common;
use common::{free_port, login, start};

fn grant(db: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_iyagi"))
        .args(["admin", "grant"])
        .args(args)
        .args(["--database-url", db])
        .env("IYAGI_LOG__LEVEL", "warn")
        .output()
        .expect("run iyagi admin grant")
}

#[tokio::test]
async fn the_first_admin_comes_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/iyagi.db", dir.path().display());
    let server = start(&db, free_port(), &[]).await;
    let http = reqwest::Client::new();
    let boss = login(&http, &server.base, "boss").await;
    let token = boss["access_token"].as_str().unwrap();
    let audit = |token: &str| {
        http.get(format!("{}/v1/admin/audit", server.base))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(audit(token).await.unwrap().status(), 403, "not staff yet");

    let ok = grant(&db, &["Boss", "admin"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("is now admin"));
    let log: serde_json::Value = audit(token).await.unwrap().json().await.unwrap();
    assert_eq!(log["entries"][0]["action"], "grant_role");
    assert_eq!(log["entries"][0]["actor_id"], serde_json::Value::Null);

    for (args, says) in [
        (["nobody", "admin"], "no such user"),
        (["boss", "king"], "unknown role"),
    ] {
        let refused = grant(&db, &args);
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(says),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
}
