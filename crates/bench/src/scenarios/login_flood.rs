//! login-flood: failed logins from many addresses at once, and what they
//! do to the server's memory, during and after. Password hashing is the
//! expensive part of a login; a flood must not raise memory for good.
//! Run it against a server with the default hashing cost (the bench
//! configuration lowers it) to see what production sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::client::source_for;
use crate::procstat;
use crate::report::Report;
use crate::scenarios::{Context, Progress};

#[derive(Debug, Clone)]
pub struct Options {
    pub attempts: usize,
    /// Client addresses (127.0.0.1 ..= 127.0.0.N) the attempts come from.
    pub addresses: usize,
    pub concurrency: usize,
    /// How long to wait after the flood before the last memory sample.
    pub settle: Duration,
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("login-flood", ctx.target.name());
    if ctx.target.relay {
        report
            .notes
            .push("the relay has no accounts, so it has no login to flood".to_owned());
        return Ok(report);
    }
    let clients: Vec<reqwest::Client> = (0..opts.addresses.max(1))
        .map(|i| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::V4(source_for(i)))
                .build()
        })
        .collect::<Result<_, _>>()?;
    let before = ctx.server_pid.and_then(procstat::sample);
    let peak = Arc::new(AtomicU64::new(before.map_or(0, |s| s.rss_bytes)));
    let sampler = {
        let (peak, pid) = (peak.clone(), ctx.server_pid);
        tokio::spawn(async move {
            loop {
                if let Some(sample) = pid.and_then(procstat::sample) {
                    peak.fetch_max(sample.rss_bytes, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let progress = Arc::new(Progress::default());
    progress
        .total
        .store(opts.attempts as u64, Ordering::Relaxed);
    let printer = progress.spawn_printer("login attempts", ctx.progress);
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let (refused, limited, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(opts.attempts);
    for i in 0..opts.attempts {
        let client = clients[i % clients.len()].clone();
        let url = format!("{}/v1/auth/login", ctx.target.http);
        let permit = permits.clone().acquire_owned().await?;
        let (refused, limited, other, progress) = (
            refused.clone(),
            limited.clone(),
            other.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"username": format!("nobody{i}"), "password": "not the password",
                              "device": {"id": "flood", "platform": "other"}});
            let status = client
                .post(url)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16());
            match status {
                Ok(401) => refused.fetch_add(1, Ordering::Relaxed),
                Ok(429) => limited.fetch_add(1, Ordering::Relaxed),
                _ => other.fetch_add(1, Ordering::Relaxed),
            };
            progress.done.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        }));
    }
    for task in tasks {
        task.await?;
    }
    let flood_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(opts.settle).await;
    let after = ctx.server_pid.and_then(procstat::sample);
    sampler.abort();
    printer.abort();
    report.set("attempts", opts.attempts as u64);
    report.set("addresses", opts.addresses as u64);
    report.set("refused_401", refused.load(Ordering::Relaxed));
    report.set("rate_limited_429", limited.load(Ordering::Relaxed));
    report.set("other_answers", other.load(Ordering::Relaxed));
    report.set("flood_secs", flood_secs);
    report.set("attempts_per_sec", opts.attempts as f64 / flood_secs);
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    if let (Some(before), Some(after)) = (before, after) {
        report.set("server_rss_before_mib", mib(before.rss_bytes));
        report.set("server_rss_peak_mib", mib(peak.load(Ordering::Relaxed)));
        report.set("server_rss_after_mib", mib(after.rss_bytes));
        report.set(
            "server_cpu_ms_per_attempt",
            (after.cpu_seconds - before.cpu_seconds) * 1000.0 / opts.attempts as f64,
        );
    }
    Ok(report)
}
