//! media: uploads through `POST /v1/media`, `concurrency` at once, of
//! photo-like JPEGs (decode, strip, two thumbnails, blurhash) or of AAC
//! voice files (decoded whole for duration and waveform). Measures uploads
//! per second, server CPU per upload (and per minute of audio), and the
//! server's peak RSS while they run: decodes are bounded by a semaphore,
//! so it must not grow with concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::procstat;
use crate::report::{Report, histogram};
use crate::scenarios::Context;
use crate::setup::Setup;

#[derive(Debug, Clone)]
pub struct Options {
    pub megapixels: f64,
    pub voice_secs: Option<f64>,
    pub uploads: usize,
    pub concurrency: usize,
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(!ctx.target.relay, "the media scenario needs iyagi");
    let setup = Setup::new(&ctx.target);
    let users = setup.users(opts.concurrency.max(1)).await?;
    let (kind, file) = match opts.voice_secs {
        Some(secs) => ("voice", iyagi_testkit::media_fixtures::m4a(secs as f32)),
        None => {
            // 4:3, like a phone camera.
            let width = (opts.megapixels * 1e6 * 4.0 / 3.0).sqrt().round() as u32;
            let height = (width * 3 / 4).max(1);
            (
                "image",
                iyagi_testkit::media_fixtures::photo_like_jpeg(width, height),
            )
        }
    };
    let file_bytes = file.len();
    // The server's RSS, sampled every 20 ms while the uploads run.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = ctx.server_pid.map(|pid| {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(sample) = procstat::sample(pid) {
                    peak.fetch_max(sample.rss_bytes, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let rss_before = ctx
        .server_pid
        .and_then(procstat::sample)
        .map(|s| s.rss_bytes);
    let before = ctx.server_pid.and_then(procstat::sample);
    let started = Instant::now();
    let mut latency = histogram();
    let mut failures = 0u64;
    let mut audio_ms = 0i64;
    let setup = &setup;
    let file = &file;
    let users = &users;
    let mut results = futures::stream::iter(0..opts.uploads)
        .map(|n| async move {
            let begun = Instant::now();
            let user = &users[n % users.len()];
            let answer = setup.upload_media(user, kind, file.clone()).await;
            (begun.elapsed(), answer)
        })
        .buffer_unordered(opts.concurrency.max(1));
    while let Some((took, answer)) = results.next().await {
        match answer {
            Ok(view) => {
                let _ = latency.record(took.as_nanos() as u64);
                audio_ms += view["voice"]["duration_ms"].as_i64().unwrap_or(0);
            }
            Err(e) => {
                failures += 1;
                eprintln!("upload failed: {e}");
            }
        }
    }
    let elapsed = started.elapsed();
    let after = ctx.server_pid.and_then(procstat::sample);
    sampling.store(false, Ordering::Relaxed);
    if let Some(sampler) = sampler {
        let _ = sampler.await;
    }
    let done = opts.uploads as u64 - failures;
    let mut report = Report::new("media", ctx.target.name());
    report.set("kind", kind);
    if kind == "image" {
        report.set("megapixels", opts.megapixels);
    }
    report.set("file_bytes", file_bytes as u64);
    report.set("uploads", done);
    report.set("failures", failures);
    report.set("concurrency", opts.concurrency as u64);
    report.set("uploads_per_second", done as f64 / elapsed.as_secs_f64());
    report.latency("upload", &latency);
    if let Some(usage) = procstat::delta(before, after) {
        report.set(
            "server_cpu_ms_per_upload",
            usage.cpu_seconds * 1000.0 / done.max(1) as f64,
        );
        if audio_ms > 0 {
            let minutes = audio_ms as f64 / 60_000.0;
            report.set("audio_minutes", minutes);
            report.set(
                "server_cpu_ms_per_audio_minute",
                usage.cpu_seconds * 1000.0 / minutes,
            );
            report.set("audio_minutes_per_second", minutes / elapsed.as_secs_f64());
        }
    }
    if let Some(rss) = rss_before {
        report.set("server_rss_before_mib", rss as f64 / 1048576.0);
        report.set(
            "server_rss_peak_mib",
            peak.load(Ordering::Relaxed) as f64 / 1048576.0,
        );
    }
    Ok(report)
}
