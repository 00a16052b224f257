//! Media end to end over real HTTP and WebSockets: uploads made by the
//! test (JPEGs with EXIF and GPS, PNGs, M4A from ffmpeg), image and voice
//! messages, downloads with their headers and ranges, who may fetch and
//! use what, refusals that leave nothing behind, and the collector. On
//! local disk and on a real S3-compatible server (s3s-fs).

use iyagi_media::MediaBackend;
use iyagi_protocol::now_ms;
use iyagi_server::Settings;
use iyagi_testkit::PrivateService;
use iyagi_testkit::media_fixtures::{self, PLANTED, contains};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, Tokens, expect_error, test_settings};
use crate::realtime::group_room;
use crate::ws_client::WsClient;

crate::api_suite!(media:
    images_and_voice_end_to_end,
    who_may_fetch_and_use_media,
    bad_uploads_are_refused_and_store_nothing,
    quota_and_upload_rate,
    the_collector_keeps_what_messages_use,
);

const BUCKET: &str = "iyagi-media";

fn s3_settings(settings: &mut Settings, server: &PrivateService) {
    settings.media.backend = MediaBackend::S3;
    settings.media.s3 = server.s3_media_settings(BUCKET);
}

/// Uploads `bytes` as `kind` (if given); the raw response.
async fn upload_raw(
    app: &TestApp,
    who: &Tokens,
    kind: Option<&str>,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let path = match kind {
        Some(kind) => format!("/v1/media?kind={kind}"),
        None => "/v1/media".to_owned(),
    };
    app.client
        .post(app.url(&path))
        .bearer_auth(&who.access)
        .header("content-type", "text/html") // ignored: the bytes decide
        .body(bytes)
        .send()
        .await
        .expect("upload sent")
}

async fn upload(app: &TestApp, who: &Tokens, kind: &str, bytes: Vec<u8>) -> Value {
    let response = upload_raw(app, who, Some(kind), bytes).await;
    assert_eq!(
        response.status(),
        201,
        "upload: {:?}",
        response.text().await
    );
    response.json().await.unwrap()
}

async fn fetch(
    app: &TestApp,
    who: Option<&Tokens>,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(who) = who {
        request = request.bearer_auth(&who.access);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("fetch sent")
}

/// Sends a media message; the `ack`'s message or the `error` frame.
async fn send_media(
    ws: &mut WsClient,
    room: &str,
    client_msg_id: &str,
    kind: &str,
    media_id: &str,
) -> Value {
    ws.send(json!({"type": "send", "ref": client_msg_id, "room_id": room, "client_msg_id": client_msg_id,
                   "kind": kind, "content": {"media_id": media_id, "width": 99999, "duration_ms": 1}}))
        .await;
    let answer = ws
        .expect("ack or error", |f| {
            (f["type"] == "ack" || f["type"] == "error") && f["ref"] == client_msg_id
        })
        .await;
    if answer["type"] == "ack" {
        answer["message"].clone()
    } else {
        answer
    }
}

pub async fn images_and_voice_end_to_end(db_url: String) {
    end_to_end(test_settings(&db_url)).await;
}

#[tokio::test]
async fn images_and_voice_end_to_end_on_s3() {
    let Some(s3) = PrivateService::s3(BUCKET).await else {
        return;
    };
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    s3_settings(&mut settings, &s3);
    end_to_end(settings).await;
    db.cleanup().await;
}

async fn end_to_end(settings: Settings) {
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;

    // A photo taken on its side (EXIF orientation 6: rotate 90°), with GPS.
    let photo = media_fixtures::jpeg_with_exif(400, 200, 6);
    assert!(contains(&photo, b"Exif\0\0") && contains(&photo, PLANTED));
    let image = upload(&app, &alice, "image", photo).await;
    assert_eq!(image["kind"], "image");
    assert_eq!(image["state"], "ready");
    assert_eq!(image["mime"], "image/jpeg");
    assert_eq!(
        (
            image["image"]["width"].as_u64(),
            image["image"]["height"].as_u64()
        ),
        (Some(200), Some(400)),
        "oriented"
    );
    assert!(
        image["image"]["blurhash"]
            .as_str()
            .is_some_and(|b| b.len() >= 6)
    );
    let thumbs = image["image"]["thumbnails"].as_array().unwrap();
    assert_eq!(thumbs.len(), 2);
    assert_eq!(
        (
            thumbs[0]["size"].as_u64(),
            thumbs[0]["width"].as_u64(),
            thumbs[0]["height"].as_u64()
        ),
        (Some(320), Some(160), Some(320))
    );
    assert_eq!(
        (thumbs[1]["size"].as_u64(), thumbs[1]["height"].as_u64()),
        (Some(1280), Some(400)),
        "never larger than the original"
    );
    let image_id = image["id"].as_str().unwrap().to_owned();

    // An upright photo with GPS: stripped without re-encoding.
    let upright = upload(
        &app,
        &alice,
        "image",
        media_fixtures::jpeg_with_exif(300, 100, 1),
    )
    .await;
    assert_eq!(
        (
            upright["image"]["width"].as_u64(),
            upright["image"]["height"].as_u64()
        ),
        (Some(300), Some(100))
    );

    // WebP and an animated GIF (first frame for thumbnails, every frame kept).
    let webp = upload(&app, &alice, "image", media_fixtures::webp(120, 90)).await;
    assert_eq!(webp["mime"], "image/webp");
    assert_eq!(
        (
            webp["image"]["width"].as_u64(),
            webp["image"]["height"].as_u64()
        ),
        (Some(120), Some(90))
    );
    let gif = upload(
        &app,
        &alice,
        "image",
        media_fixtures::animated_gif(50, 40, 3),
    )
    .await;
    assert_eq!(gif["mime"], "image/gif");
    assert_eq!(
        (
            gif["image"]["width"].as_u64(),
            gif["image"]["height"].as_u64()
        ),
        (Some(50), Some(40))
    );
    let gif_bytes = fetch(
        &app,
        Some(&alice),
        &format!("/v1/media/{}/content", gif["id"].as_str().unwrap()),
        &[],
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(media_fixtures::gif_frames(&gif_bytes), 3, "animation kept");
    assert!(!contains(&gif_bytes, PLANTED), "comment gone");
    let gif_thumb = fetch(
        &app,
        Some(&alice),
        &format!("/v1/media/{}/thumbnails/320", gif["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(gif_thumb.headers()["content-type"], "image/jpeg");

    let tagged = media_fixtures::m4a_tagged(3.0);
    assert!(contains(&tagged, PLANTED), "ffmpeg wrote the title");
    let voice = upload(
        &app,
        &alice,
        "voice",
        [tagged, b"<html>trailing</html>".to_vec()].concat(),
    )
    .await;
    assert_eq!(voice["mime"], "audio/mp4");
    let duration = voice["voice"]["duration_ms"].as_i64().unwrap();
    assert!(
        (2900..=3100).contains(&duration),
        "duration from the audio: {duration}"
    );
    let waveform = voice["voice"]["waveform"].as_array().unwrap();
    assert_eq!(waveform.len(), 64);
    // A tone at 1/8 of full scale: every peak near 12.5 of 100.
    assert!(
        waveform
            .iter()
            .all(|p| (10..=16).contains(&p.as_u64().unwrap())),
        "{waveform:?}"
    );
    let voice_id = voice["id"].as_str().unwrap().to_owned();

    // Messages: the server writes the content; the client's claims are dropped.
    let mut a = WsClient::connect_live(&app, &alice).await;
    let mut b = WsClient::connect_live(&app, &bob).await;
    let sent = send_media(&mut a, &room, "img-1", "image", &image_id).await;
    assert_eq!(sent["kind"], "image", "{sent}");
    let content = &sent["content"];
    assert_eq!(content["media_id"], image_id.as_str());
    assert_eq!(
        (content["width"].as_u64(), content["height"].as_u64()),
        (Some(200), Some(400)),
        "not the client's 99999"
    );
    assert_eq!(content["mime"], "image/jpeg");
    assert_eq!(content["thumbnails"], image["image"]["thumbnails"]);
    assert_eq!(content["blurhash"], image["image"]["blurhash"]);
    let got = b.expect_message().await;
    assert_eq!(got["kind"], "image");
    assert_eq!(got["content"], *content);
    // A retry of the same send is the same message.
    let retry = send_media(&mut a, &room, "img-1", "image", &image_id).await;
    assert_eq!(retry["seq"], sent["seq"]);

    let sent_voice = send_media(&mut a, &room, "voice-1", "voice", &voice_id).await;
    assert_eq!(
        sent_voice["content"]["duration_ms"].as_i64(),
        Some(duration),
        "not the client's 1"
    );
    assert_eq!(
        sent_voice["content"]["waveform"].as_array().map(Vec::len),
        Some(64)
    );
    assert_eq!(b.expect_message().await["kind"], "voice");

    // Room list: the voice message is the last one, both count as unread.
    let rooms: Value = app.get_json("/v1/rooms", &bob.access).await;
    let listed = &rooms["rooms"][0];
    assert_eq!(listed["last_message"]["kind"], "voice");
    assert_eq!(listed["unread"], 2);

    // Bob fetches the original: no EXIF, no GPS, nothing planted.
    let original = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{image_id}/content"),
        &[],
    )
    .await;
    assert_eq!(original.status(), 200);
    let headers = original.headers().clone();
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline; filename=\"")
    );
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("private")
    );
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let bytes = original.bytes().await.unwrap();
    assert_eq!(
        headers["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert_eq!(Some(bytes.len() as i64), content["size"].as_i64());
    assert!(!contains(&bytes, b"Exif"), "EXIF gone");
    assert!(
        !contains(&bytes, PLANTED),
        "description, XMP and comment gone"
    );
    let decoded = image::load_from_memory(&bytes).expect("still a JPEG");
    assert_eq!(
        (decoded.width(), decoded.height()),
        (200, 400),
        "pixels rotated, not just tagged"
    );
    let upright_id = upright["id"].as_str().unwrap();
    let upright_bytes = fetch(
        &app,
        Some(&alice),
        &format!("/v1/media/{upright_id}/content"),
        &[],
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert!(!contains(&upright_bytes, b"Exif") && !contains(&upright_bytes, PLANTED));
    assert!(upright_bytes.starts_with(&[0xFF, 0xD8]));

    // Cached: the same ETag answers 304 without a body.
    let again = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{image_id}/content"),
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status(), 304);
    let weak = format!("W/{etag}");
    let again = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{image_id}/content"),
        &[("if-none-match", &weak)],
    )
    .await;
    assert_eq!(again.status(), 304, "weak comparison");

    // Thumbnails.
    for (size, long_side) in [(320, 320), (1280, 400)] {
        let thumb = fetch(
            &app,
            Some(&bob),
            &format!("/v1/media/{image_id}/thumbnails/{size}"),
            &[],
        )
        .await;
        assert_eq!(thumb.status(), 200);
        assert_eq!(thumb.headers()["content-type"], "image/jpeg");
        let decoded = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
        assert_eq!(decoded.width().max(decoded.height()), long_side);
    }
    let no_such_size = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{image_id}/thumbnails/77"),
        &[],
    )
    .await;
    expect_error(no_such_size, 404, "media_not_found").await;

    // Seeking in a voice message: ranges.
    let whole = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{voice_id}/content"),
        &[],
    )
    .await;
    assert_eq!(whole.headers()["content-type"], "audio/mp4");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let whole = whole.bytes().await.unwrap();
    assert!(
        !contains(&whole, PLANTED),
        "the recorder's metadata is gone"
    );
    assert!(!contains(&whole, b"126.9780"), "the GPS position is gone");
    assert!(!contains(&whole, b"<html>"), "nothing after the last box");
    let part = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{voice_id}/content"),
        &[("range", "bytes=100-199")],
    )
    .await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{}", whole.len())
    );
    assert_eq!(part.headers()["content-length"], "100");
    assert_eq!(part.bytes().await.unwrap(), whole.slice(100..200));
    let tail = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{voice_id}/content"),
        &[("range", "bytes=-10")],
    )
    .await;
    assert_eq!(tail.bytes().await.unwrap(), whole.slice(whole.len() - 10..));
    let past = fetch(
        &app,
        Some(&bob),
        &format!("/v1/media/{voice_id}/content"),
        &[("range", &format!("bytes={}-", whole.len()))],
    )
    .await;
    assert_eq!(
        past.headers()["content-range"].to_str().unwrap(),
        format!("bytes */{}", whole.len())
    );
    expect_error(past, 416, "range_not_satisfiable").await;

    // Metrics saw it all.
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("iyagi_media_uploads_total{kind=\"image\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("iyagi_media_uploads_total{kind=\"voice\"} 1"));
    assert!(metrics.contains("iyagi_media_processing_seconds_count{kind=\"image\"} 4"));
    app.stop().await;
}

pub async fn who_may_fetch_and_use_media(db_url: String) {
    let app = TestApp::spawn(&db_url).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let carol = app.user("carol", "phone").await;
    let group = group_room(&app, &alice, &[&bob, &carol]).await;
    let mut a = WsClient::connect_live(&app, &alice).await;

    let before = upload(&app, &alice, "image", media_fixtures::jpeg(64, 64)).await;
    let before_id = before["id"].as_str().unwrap().to_owned();
    let path = |id: &str| format!("/v1/media/{id}/content");

    // Not attached yet: only the uploader sees it.
    assert_eq!(
        fetch(&app, Some(&alice), &path(&before_id), &[])
            .await
            .status(),
        200
    );
    expect_error(
        fetch(&app, Some(&bob), &path(&before_id), &[]).await,
        404,
        "media_not_found",
    )
    .await;
    let sent = send_media(&mut a, &group, "m1", "image", &before_id).await;
    assert_eq!(sent["kind"], "image");
    assert_eq!(
        fetch(&app, Some(&carol), &path(&before_id), &[])
            .await
            .status(),
        200,
        "a member"
    );
    expect_error(
        fetch(&app, None, &path(&before_id), &[]).await,
        401,
        "unauthenticated",
    )
    .await;
    let dave = app.user("dave", "phone").await;
    expect_error(
        fetch(&app, Some(&dave), &path(&before_id), &[]).await,
        404,
        "media_not_found",
    )
    .await;
    expect_error(
        fetch(
            &app,
            Some(&dave),
            &format!("/v1/media/{before_id}/thumbnails/320"),
            &[],
        )
        .await,
        404,
        "media_not_found",
    )
    .await;
    expect_error(
        app.call(
            Method::GET,
            &format!("/v1/media/{before_id}"),
            Some(&dave.access),
            None,
        )
        .await,
        404,
        "media_not_found",
    )
    .await;

    // Removed from the room: the room's media is gone for carol.
    let removed = app
        .call(
            Method::DELETE,
            &format!("/v1/rooms/{group}/members/{}", carol.user_id),
            Some(&alice.access),
            None,
        )
        .await;
    assert!(removed.status().is_success(), "{}", removed.status());
    let after = upload(&app, &alice, "image", media_fixtures::jpeg(32, 32)).await;
    let after_id = after["id"].as_str().unwrap().to_owned();
    send_media(&mut a, &group, "m2", "image", &after_id).await;
    expect_error(
        fetch(&app, Some(&carol), &path(&after_id), &[]).await,
        404,
        "media_not_found",
    )
    .await;
    expect_error(
        fetch(&app, Some(&carol), &path(&before_id), &[]).await,
        404,
        "media_not_found",
    )
    .await;
    assert_eq!(
        fetch(&app, Some(&bob), &path(&after_id), &[])
            .await
            .status(),
        200
    );

    // Using media: forged, someone else's, the wrong kind, used twice.
    let forged = send_media(&mut a, &group, "m3", "image", &Uuid::now_v7().to_string()).await;
    assert_eq!(forged["code"], "media_not_found", "{forged}");
    let bobs = upload(&app, &bob, "image", media_fixtures::jpeg(16, 16)).await;
    let stolen = send_media(&mut a, &group, "m4", "image", bobs["id"].as_str().unwrap()).await;
    assert_eq!(stolen["code"], "media_not_found");
    let image = upload(&app, &alice, "image", media_fixtures::png(16, 16)).await;
    assert_eq!(image["mime"], "image/png");
    let wrong = send_media(&mut a, &group, "m5", "voice", image["id"].as_str().unwrap()).await;
    assert_eq!(wrong["code"], "media_wrong_kind");
    let twice = send_media(&mut a, &group, "m6", "image", &before_id).await;
    assert_eq!(twice["code"], "media_already_used");
    // Reusing the client id of a stored message is a retry of that message:
    // the upload is not attached to it.
    let reused = upload(&app, &alice, "image", media_fixtures::jpeg(16, 16)).await;
    let reused_id = reused["id"].as_str().unwrap();
    let retry = send_media(&mut a, &group, "m1", "image", reused_id).await;
    assert_eq!(retry["seq"], sent["seq"], "the original message");
    assert_eq!(retry["content"]["media_id"], before_id.as_str());
    let still: Value = app
        .get_json(&format!("/v1/media/{reused_id}"), &alice.access)
        .await;
    assert_eq!(still["attached"], false);
    let malformed = send_media(&mut a, &group, "m7", "image", "not-a-uuid").await;
    assert_eq!(malformed["code"], "validation_failed");
    // A non-member cannot attach their upload to the room.
    let mut c = WsClient::connect_live(&app, &carol).await;
    let carols = upload(&app, &carol, "image", media_fixtures::jpeg(16, 16)).await;
    let outsider = send_media(
        &mut c,
        &group,
        "m8",
        "image",
        carols["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(outsider["code"], "not_a_member");
    let still_loose: Value = app
        .get_json(
            &format!("/v1/media/{}", carols["id"].as_str().unwrap()),
            &carol.access,
        )
        .await;
    assert_eq!(
        still_loose["attached"], false,
        "refused sends attach nothing"
    );

    // Presigned uploads need S3: on local disk a documented refusal.
    let presign = app
        .call(
            Method::POST,
            "/v1/media/uploads",
            Some(&alice.access),
            Some(json!({"kind": "image", "size": 100})),
        )
        .await;
    expect_error(presign, 409, "presign_unavailable").await;
    app.stop().await;
}

/// Files in the media folder (objects; the spool is elsewhere).
fn stored_files(settings: &Settings) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&settings.media.path) + walk(&settings.media.spool_path)
}

pub async fn bad_uploads_are_refused_and_store_nothing(db_url: String) {
    let mut settings = test_settings(&db_url);
    settings.media.max_image_bytes = 200_000;
    let app = TestApp::spawn_with(settings.clone()).await;
    let alice = app.user("alice", "phone").await;
    let owner = Uuid::parse_str(&alice.user_id).unwrap();

    let jpeg = media_fixtures::jpeg(200, 100);
    // (what, ?kind=, bytes, status, code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated",
            Some("image"),
            jpeg[..jpeg.len() / 2].to_vec(),
            422,
            "media_undecodable",
        ),
        (
            "html",
            None,
            b"<html><script>alert(1)</script></html>".to_vec(),
            415,
            "unsupported_media_type",
        ),
        ("empty", None, Vec::new(), 415, "unsupported_media_type"),
        (
            "jpeg magic, garbage",
            Some("image"),
            [&[0xFF, 0xD8, 0xFF, 0xE0][..], &[0x42; 500][..]].concat(),
            422,
            "media_undecodable",
        ),
        (
            "an image sent as voice",
            Some("voice"),
            jpeg.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "audio magic, no audio",
            Some("voice"),
            b"\0\0\0\x18ftypM4A \0\0\0\0garbage-not-a-box".to_vec(),
            422,
            "media_undecodable",
        ),
        (
            "a table claiming 4 billion entries",
            Some("voice"),
            huge_table(),
            422,
            "media_undecodable",
        ),
        (
            "ogg",
            None,
            b"OggS\0\x02\0\0\0\0\0\0\0\0".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "bomb: 100k x 100k",
            None,
            media_fixtures::png_bomb(100_000, 100_000),
            422,
            "media_limit_exceeded",
        ),
        (
            "bomb: 8k x 8k, 64 MP",
            None,
            media_fixtures::png_bomb(8_000, 8_000),
            422,
            "media_limit_exceeded",
        ),
        (
            "oversized",
            Some("image"),
            vec![0xFF; 300_000],
            413,
            "payload_too_large",
        ),
        (
            "kind unknown",
            Some("video"),
            jpeg.clone(),
            422,
            "validation_failed",
        ),
    ];
    for (what, kind, bytes, status, code) in cases {
        let response = upload_raw(&app, &alice, kind, bytes).await;
        assert_eq!(response.status(), status, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{what}: {body}");
    }
    // Oversized without a Content-Length (chunked): cut off while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![0xFF; 50_000])).collect();
    let chunked = app
        .client
        .post(app.url("/v1/media?kind=image"))
        .bearer_auth(&alice.access)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    expect_error(chunked, 413, "payload_too_large").await;
    // Unauthenticated.
    let anonymous = app
        .client
        .post(app.url("/v1/media"))
        .body(jpeg.clone())
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "unauthenticated").await;

    // Nothing was stored for any of them: no rows, no objects, no spool files.
    let usage = app.state.store.media_usage(owner, 0).await.unwrap();
    assert_eq!((usage.bytes, usage.recent_uploads), (0, 0));
    assert_eq!(stored_files(&settings), 0);

    // A polyglot: a real JPEG with an HTML page after its end. Accepted as
    // the image it is, stored without the page, served as an image.
    let mut polyglot = jpeg.clone();
    polyglot.extend(b"<html><body><script>alert(document.cookie)</script></body></html>");
    let stored = upload(&app, &alice, "image", polyglot).await;
    let served = fetch(
        &app,
        Some(&alice),
        &format!("/v1/media/{}/content", stored["id"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert!(
        served.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert!(
        !contains(&served.bytes().await.unwrap(), b"<script>"),
        "the page is gone"
    );
    // The server is still well.
    assert_eq!(app.get_public("/healthz").await.status(), 200);
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("iyagi_media_rejects_total{reason=\"undecodable\"} 4"),
        "{metrics}"
    );
    app.stop().await;
}

pub async fn quota_and_upload_rate(db_url: String) {
    let mut settings = test_settings(&db_url);
    let small = media_fixtures::jpeg(400, 400);
    settings.media.quota_bytes = small.len() as u64 * 2 + 10;
    settings.media.uploads_per_hour = 3;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    upload(&app, &alice, "image", small.clone()).await;
    upload(&app, &alice, "image", small.clone()).await;
    expect_error(
        upload_raw(&app, &alice, Some("image"), small.clone()).await,
        403,
        "media_quota_exceeded",
    )
    .await;
    // Another user has their own quota; the rate counts uploads started.
    let bob = app.user("bob", "phone").await;
    for _ in 0..2 {
        upload(&app, &bob, "image", media_fixtures::jpeg(2, 2)).await;
    }
    let third = upload_raw(&app, &bob, Some("image"), media_fixtures::jpeg(2, 2)).await;
    assert_eq!(third.status(), 201);
    expect_error(
        upload_raw(&app, &bob, Some("image"), media_fixtures::jpeg(2, 2)).await,
        429,
        "rate_limited",
    )
    .await;
    // One user's uploads at once are capped (4 by default): bodies that
    // never finish hold their slots; the next upload is refused; slots come
    // back when those requests go away. (A server of its own: the rate
    // above would refuse these attempts first.)
    app.stop().await;
    let app = TestApp::spawn(&db_url).await;
    let carol = app.user("carol", "phone").await;
    let mut hanging = Vec::new();
    for _ in 0..4 {
        let request = app
            .client
            .post(app.url("/v1/media?kind=image"))
            .bearer_auth(&carol.access)
            .body(reqwest::Body::wrap_stream(futures::stream::unfold(
                false,
                |sent| async move {
                    if sent {
                        futures::future::pending::<()>().await;
                    }
                    Some((Ok::<_, std::io::Error>(vec![0xFFu8, 0xD8, 0xFF]), true))
                },
            )));
        hanging.push(tokio::spawn(request.send()));
    }
    // All four are in once each has its spool file (slots are taken first).
    let spool = app.state.settings.media.spool_path.clone();
    let spooling = || std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spooling() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the four uploads did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let fifth = upload_raw(&app, &carol, Some("image"), media_fixtures::jpeg(2, 2)).await;
    let body = expect_error(fifth, 429, "rate_limited").await;
    assert!(
        body["message"].as_str().unwrap().contains("at once"),
        "{body}"
    );
    for request in hanging {
        request.abort();
    }
    // Their slots come back once the server sees them gone.
    while spooling() > 0 {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "the uploads did not end"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        upload_raw(&app, &carol, Some("image"), media_fixtures::jpeg(2, 2))
            .await
            .status(),
        201
    );
    app.stop().await;
}

pub async fn the_collector_keeps_what_messages_use(db_url: String) {
    let settings = test_settings(&db_url);
    let app = TestApp::spawn_with(settings.clone()).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut a = WsClient::connect_live(&app, &alice).await;
    let used = upload(&app, &alice, "image", media_fixtures::jpeg(40, 40)).await;
    let loose = upload(&app, &alice, "image", media_fixtures::jpeg(40, 40)).await;
    let used_id = used["id"].as_str().unwrap().to_owned();
    let loose_id = loose["id"].as_str().unwrap().to_owned();
    send_media(&mut a, &room, "keep", "image", &used_id).await;
    let files = stored_files(&settings);
    assert_eq!(files, 6, "original and two thumbnails each");

    // An orphan: an object no row knows (a crash between store and database).
    let orphan = Uuid::now_v7();
    let orphan_path = iyagi_media::object_path(orphan, iyagi_media::Variant::Original);
    app.state
        .media
        .objects_for_tests()
        .store
        .put(
            &orphan_path,
            object_store::PutPayload::from_static(b"left behind"),
        )
        .await
        .unwrap();

    // Before their time, nothing goes.
    let now = now_ms();
    let early = app.state.media.collect(now).await.unwrap();
    assert_eq!((early.unattached, early.orphans), (0, 0));
    // After it: the loose upload and the orphan go, the used one stays.
    let day_later = now + (settings.media.unattached_ttl_secs as i64 + 1) * 1000;
    let collected = app.state.media.collect(day_later).await.unwrap();
    assert_eq!((collected.unattached, collected.orphans), (1, 1));
    assert_eq!(stored_files(&settings), 3);
    assert_eq!(
        fetch(
            &app,
            Some(&bob),
            &format!("/v1/media/{used_id}/content"),
            &[]
        )
        .await
        .status(),
        200
    );
    expect_error(
        fetch(
            &app,
            Some(&alice),
            &format!("/v1/media/{loose_id}/content"),
            &[],
        )
        .await,
        404,
        "media_not_found",
    )
    .await;
    let late = send_media(&mut a, &room, "late", "image", &loose_id).await;
    assert_eq!(late["code"], "media_not_found");
    // Collecting again finds nothing, however late.
    let again = app.state.media.collect(day_later * 2).await.unwrap();
    assert_eq!((again.unattached, again.orphans), (0, 0));
    assert_eq!(stored_files(&settings), 3);
    assert!(
        app.metrics_text()
            .await
            .contains("iyagi_media_collected_total{what=\"unattached\"} 1")
    );
    app.stop().await;
}

#[tokio::test]
async fn presigned_uploads_on_s3() {
    let Some(s3) = PrivateService::s3(BUCKET).await else {
        return;
    };
    let db = iyagi_testkit::TestDb::sqlite();
    let mut settings = test_settings(&db.url);
    s3_settings(&mut settings, &s3);
    settings.media.max_voice_bytes = 100_000;
    let app = TestApp::spawn_with(settings).await;
    let alice = app.user("alice", "phone").await;
    let bob = app.user("bob", "phone").await;
    let room = app.direct_room(&alice, &bob).await;
    let mut a = WsClient::connect_live(&app, &alice).await;

    let voice = media_fixtures::m4a(2.0);
    let ticket = presigned(&app, &alice, voice.len()).await;
    assert_eq!(ticket["method"], "PUT");
    let id = ticket["media_id"].as_str().unwrap().to_owned();
    let url = ticket["upload_url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");

    // Before the bytes are in: not ready, and a message cannot use it.
    let early = complete(&app, &alice, &id).await;
    expect_error(early, 409, "media_not_ready").await;
    let incomplete = send_media(&mut a, &room, "v0", "voice", &id).await;
    assert_eq!(incomplete["code"], "media_not_ready");

    // The client PUTs straight to the bucket, then completes.
    let put = put_to(url, voice.clone()).await;
    assert!(put.status().is_success(), "{}", put.status());
    let other = complete(&app, &bob, &id).await;
    expect_error(other, 404, "media_not_found").await;
    let done: Value = complete(&app, &alice, &id).await.json().await.unwrap();
    assert_eq!(done["state"], "ready", "{done}");
    let duration = done["voice"]["duration_ms"].as_i64().unwrap();
    assert!((1900..=2100).contains(&duration), "{duration}");
    let sent = send_media(&mut a, &room, "v1", "voice", &id).await;
    assert_eq!(sent["content"]["duration_ms"].as_i64(), Some(duration));
    let fetched = fetch(&app, Some(&bob), &format!("/v1/media/{id}/content"), &[]).await;
    assert_eq!(fetched.status(), 200);
    let fetched = fetched.bytes().await.unwrap();
    // The same file, its metadata boxes blanked in place (same length).
    assert_eq!(fetched.len(), voice.len());
    assert!(contains(&voice, b"udta") && !contains(&fetched, b"udta"));

    // Limits are checked at creation and again against what arrived.
    let big = presign(&app, &alice, 200_000).await;
    expect_error(big, 413, "payload_too_large").await;
    let liar: Value = presigned(&app, &alice, 1000).await;
    let liar_id = liar["media_id"].as_str().unwrap();
    reqwest::Client::new()
        .put(liar["upload_url"].as_str().unwrap())
        .body(vec![0u8; 150_000])
        .send()
        .await
        .unwrap();
    let refused = complete(&app, &alice, liar_id).await;
    expect_error(refused, 413, "payload_too_large").await;
    let gone = app
        .call(
            Method::GET,
            &format!("/v1/media/{liar_id}"),
            Some(&alice.access),
            None,
        )
        .await;
    expect_error(gone, 404, "media_not_found").await;
    // A file that is not audio, uploaded as voice: refused, nothing kept.
    let fake: Value = presigned(&app, &alice, 100).await;
    put_to(
        fake["upload_url"].as_str().unwrap(),
        media_fixtures::jpeg(8, 8),
    )
    .await;
    let mismatch = app
        .call(
            Method::POST,
            &format!("/v1/media/{}/complete", fake["media_id"].as_str().unwrap()),
            Some(&alice.access),
            None,
        )
        .await;
    expect_error(mismatch, 415, "unsupported_media_type").await;

    // A second PUT to the completed upload's still-valid URL is not kept,
    // and an upload created but never completed is collected once no
    // request can still finish it.
    put_to(url, voice.clone()).await;
    let abandoned: Value = presigned(&app, &alice, 100).await;
    let abandoned_id = abandoned["media_id"].as_str().unwrap();
    let m = &app.state.settings.media;
    let later = now_ms()
        + ((m.presign_ttl_secs + m.upload_timeout_secs + m.orphan_grace_secs) as i64 + 5) * 1000;
    let collected = app.state.media.collect(later).await.unwrap();
    assert_eq!(
        (collected.unattached, collected.orphans),
        (1, 1),
        "the abandoned row; the second PUT's object"
    );
    let gone = app
        .call(
            Method::GET,
            &format!("/v1/media/{abandoned_id}"),
            Some(&alice.access),
            None,
        )
        .await;
    expect_error(gone, 404, "media_not_found").await;
    assert_eq!(
        fetch(&app, Some(&bob), &format!("/v1/media/{id}/content"), &[])
            .await
            .status(),
        200,
        "the sent one stays"
    );
    let mut listing = app
        .state
        .media
        .objects_for_tests()
        .store
        .list(Some(&object_store::path::Path::from("uploads")));
    assert!(
        futures::StreamExt::next(&mut listing).await.is_none(),
        "no upload objects left"
    );
    app.stop().await;
    drop(s3);
    db.cleanup().await;
}

#[test]
fn status_codes_are_what_the_docs_say() {
    assert_eq!(StatusCode::RANGE_NOT_SATISFIABLE.as_u16(), 416);
}

/// A real M4A whose sample-to-chunk table claims 2^32-1 entries (a decoder
/// believing it would ask for tens of GB).
fn huge_table() -> Vec<u8> {
    let mut file = media_fixtures::m4a(1.0);
    let at = file
        .windows(4)
        .position(|w| w == b"stsc")
        .expect("an stsc box");
    file[at + 8..at + 12].copy_from_slice(&u32::MAX.to_be_bytes());
    file
}

/// Asks for a presigned voice upload of `size` bytes.
async fn presign(app: &TestApp, who: &Tokens, size: usize) -> reqwest::Response {
    let body = json!({"kind": "voice", "size": size});
    app.call(
        Method::POST,
        "/v1/media/uploads",
        Some(&who.access),
        Some(body),
    )
    .await
}

async fn presigned(app: &TestApp, who: &Tokens, size: usize) -> Value {
    presign(app, who, size).await.json().await.unwrap()
}

async fn complete(app: &TestApp, who: &Tokens, id: &str) -> reqwest::Response {
    app.call(
        Method::POST,
        &format!("/v1/media/{id}/complete"),
        Some(&who.access),
        None,
    )
    .await
}

/// What a client does with a presigned URL: PUT the bytes, no other headers.
async fn put_to(url: &str, bytes: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .put(url)
        .body(bytes)
        .send()
        .await
        .unwrap()
}
