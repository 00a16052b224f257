//! The object-store contract: every case on local disk and on a real
//! S3-compatible server (`s3s-fs`, which checks SigV4 signatures and
//! presigned URLs' expiry). Under `CI=true` a missing S3 server fails.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use iyagi_media::{MediaBackend, MediaSettings, Objects, id_of};
use iyagi_testkit::PrivateService;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, PutPayload};
use uuid::Uuid;

const BUCKET: &str = "iyagi-media";

/// The backends a case runs on; the S3 server lives as long as the value.
enum Backend {
    Local(tempfile::TempDir),
    S3(PrivateService),
}

impl Backend {
    fn settings(&self) -> MediaSettings {
        match self {
            Backend::Local(dir) => MediaSettings {
                path: dir.path().to_owned(),
                ..MediaSettings::default()
            },
            Backend::S3(server) => MediaSettings {
                backend: MediaBackend::S3,
                s3: server.s3_media_settings(BUCKET),
                ..MediaSettings::default()
            },
        }
    }
}

async fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Local(tempfile::tempdir().unwrap())];
    if let Some(s3) = PrivateService::s3(BUCKET).await {
        all.push(Backend::S3(s3));
    }
    all
}

#[tokio::test]
async fn objects_round_trip_with_ranges_listing_and_deletion() {
    for backend in backends().await {
        let objects = Objects::open(&backend.settings()).expect("open");
        let store = &objects.store;
        let id = Uuid::now_v7();
        let original = Path::from(format!("media/{id}/original"));
        let thumb = Path::from(format!("media/{id}/320"));
        let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        store
            .put(&original, PutPayload::from(body.clone()))
            .await
            .unwrap();
        store
            .put(&thumb, PutPayload::from_static(b"thumb"))
            .await
            .unwrap();
        assert_eq!(store.head(&original).await.unwrap().size, 100_000);
        let whole = store.get(&original).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole, Bytes::from(body.clone()));
        let range = store
            .get_opts(
                &original,
                GetOptions {
                    range: Some(GetRange::Bounded(1000..1010)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&range[..], &body[1000..1010]);
        let mut listed: Vec<String> = store
            .list(Some(&Path::from(format!("media/{id}"))))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec![format!("media/{id}/320"), format!("media/{id}/original")]
        );
        assert_eq!(id_of(&original), Some(id));
        store.delete(&original).await.unwrap();
        assert!(matches!(
            store.head(&original).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert!(matches!(
            store.get(&original).await,
            Err(object_store::Error::NotFound { .. })
        ));
        // Every node of a cluster sees the same objects: a second client
        // opened on the same settings reads what the first wrote.
        let other = Objects::open(&backend.settings()).unwrap();
        assert_eq!(
            other
                .store
                .get(&thumb)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap(),
            "thumb"
        );
    }
}

#[tokio::test]
async fn presigned_uploads_are_signed_checked_and_expire() {
    let Some(server) = PrivateService::s3(BUCKET).await else {
        return;
    };
    let backend = Backend::S3(server);
    let settings = backend.settings();
    let objects = Objects::open(&settings).unwrap();
    let signer = objects.signer.clone().expect("S3 signs");
    let http = reqwest::Client::new();
    let path = Path::from(format!("uploads/{}", Uuid::now_v7()));

    let url = signer
        .signed_url(http::Method::PUT, &path, Duration::from_secs(60))
        .await
        .unwrap();
    let put = http.put(url.clone()).body("hello").send().await.unwrap();
    assert!(put.status().is_success(), "signed PUT: {}", put.status());
    assert_eq!(
        objects
            .store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        "hello"
    );

    // The server checks the signature: a tampered one is refused.
    let (signed, signature) = url.as_str().split_once("X-Amz-Signature=").unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    let tampered = format!("{signed}X-Amz-Signature={flipped}{}", &signature[1..]);
    let refused = http.put(tampered).body("evil").send().await.unwrap();
    assert_eq!(refused.status(), 403, "{}", refused.text().await.unwrap());
    // Unsigned requests are refused.
    let unsigned = format!("{}/{BUCKET}/{path}", settings.s3.endpoint);
    assert_eq!(
        http.put(unsigned)
            .body("evil")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // And so is a URL past its expiry.
    let short = signer
        .signed_url(http::Method::PUT, &path, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = http.put(short).body("late").send().await.unwrap();
    let status = late.status();
    let text = late.text().await.unwrap();
    assert!(
        status == 403 || status == 400,
        "expired presigned URL: {status} {text}"
    );
    assert!(
        text.contains("expired") || text.contains("Expired"),
        "refused for its expiry: {text}"
    );
    assert_eq!(
        objects
            .store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        "hello"
    );
}

#[tokio::test]
async fn local_disk_does_not_presign() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&MediaSettings {
        path: dir.path().to_owned(),
        ..MediaSettings::default()
    })
    .unwrap();
    assert!(objects.signer.is_none());
}

#[tokio::test]
async fn collecting_an_empty_store_finds_nothing() {
    let db = iyagi_testkit::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let settings = MediaSettings {
        path: dir.path().join("objects"),
        spool_path: dir.path().join("spool"),
        ..MediaSettings::default()
    };
    let service = iyagi_media::MediaService::new(
        db.open().await,
        Objects::open(&settings).unwrap(),
        settings,
        iyagi_media::MediaStats::default(),
    );
    let collected = service
        .collect(iyagi_protocol::now_ms() + 10 * 86_400_000)
        .await
        .expect("no error");
    assert_eq!((collected.unattached, collected.orphans), (0, 0));
    db.cleanup().await;
}
