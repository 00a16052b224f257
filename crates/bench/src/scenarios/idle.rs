//! idle: N authenticated connections held open with heartbeats running;
//! the server's resident memory per connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{Mutex, Semaphore, watch};

use crate::client::{self, source_for};
use crate::procstat;
use crate::report::Report;
use crate::scenarios::{Context, Progress};
use crate::setup::Setup;

#[derive(Debug, Clone)]
pub struct Options {
    pub connections: usize,
    /// Accounts to spread the connections over (each login is one device).
    pub users: usize,
    /// How long to hold the connections once all are up (span a heartbeat).
    pub hold: Duration,
    /// Connection attempts in flight during the ramp.
    pub concurrency: usize,
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    let setup = Setup::new(&ctx.target);
    let users = setup
        .users(opts.users.clamp(1, opts.connections.max(1)))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = ctx.server_pid.and_then(procstat::sample);

    let progress = Arc::new(Progress::default());
    progress
        .total
        .store(opts.connections as u64, Ordering::Relaxed);
    let printer = progress.spawn_printer("connections", ctx.progress);
    let failures: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let started = Instant::now();
    let mut holders = Vec::with_capacity(opts.connections);
    for i in 0..opts.connections {
        let permit = permits.clone().acquire_owned().await?;
        let target = ctx.target.clone();
        let token = users[i % users.len()].token.clone();
        let (progress, failures, mut stop) = (progress.clone(), failures.clone(), stop_rx.clone());
        holders.push(tokio::spawn(async move {
            let connected = tokio::time::timeout(Duration::from_secs(20), async {
                let ws = client::connect(&target, &token, source_for(i)).await?;
                let (mut sink, mut stream) = ws.split();
                client::wait_for(&mut stream, "ready").await?;
                client::send_text(&mut sink, r#"{"type":"sync"}"#.to_owned()).await?;
                client::wait_for(&mut stream, "synced").await?;
                anyhow::Ok((sink, stream))
            })
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 20 s (server at its open-file limit?)")));
            drop(permit);
            match connected {
                Ok((sink, mut stream)) => {
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    // Keep reading, so pings are answered, until told to stop.
                    tokio::select! {
                        _ = async { while let Some(Ok(_)) = stream.next().await {} } => {
                            *failures.lock().await.entry("closed by the server while idle".to_owned()).or_default() += 1;
                        }
                        () = async { let _ = stop.wait_for(|s| *s).await; } => {}
                    }
                    drop(sink);
                }
                Err(e) => *failures.lock().await.entry(classify(&e)).or_default() += 1,
            }
        }));
    }
    // Wait for the ramp to settle: every attempt has succeeded or failed.
    while progress.done.load(Ordering::Relaxed) + failure_count(&failures).await
        < opts.connections as u64
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ramp = started.elapsed();
    let established = progress.done.load(Ordering::Relaxed);
    tokio::time::sleep(opts.hold).await;
    let after = ctx.server_pid.and_then(procstat::sample);
    let still_open = established
        - failures
            .lock()
            .await
            .get("closed by the server while idle")
            .copied()
            .unwrap_or(0) as u64;
    let _ = stop_tx.send(true);
    for holder in holders {
        let _ = holder.await;
    }
    printer.abort();

    let mut report = Report::new("idle", ctx.target.name());
    report.set("connections_target", opts.connections as u64);
    report.set("connections_established", established);
    report.set("connections_open_after_hold", still_open);
    report.set("ramp_seconds", ramp.as_secs_f64());
    report.set("hold_seconds", opts.hold.as_secs_f64());
    if let (Some(b), Some(a)) = (before, after) {
        report.set("server_rss_before_mib", b.rss_bytes as f64 / 1048576.0);
        report.set("server_rss_after_mib", a.rss_bytes as f64 / 1048576.0);
        if still_open > 0 {
            let per = (a.rss_bytes as f64 - b.rss_bytes as f64) / still_open as f64;
            report.set("server_kib_per_connection", per / 1024.0);
        }
    }
    for (reason, count) in failures.lock().await.iter() {
        report
            .notes
            .push(format!("{count} connections failed: {reason}"));
        if reason.contains("open-file limit") {
            report.notes.push(
                "the ramp was stopped by the generator's open-file limit, not by the server"
                    .to_owned(),
            );
        }
    }
    Ok(report)
}

async fn failure_count(failures: &Mutex<HashMap<String, usize>>) -> u64 {
    failures.lock().await.values().sum::<usize>() as u64
}

fn classify(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.contains("Too many open files") || text.contains("os error 24") {
        "this process hit its open-file limit".to_owned()
    } else if text.contains("Connection refused") || text.contains("Connection reset") {
        format!("refused or reset by the server (its open-file limit?): {text}")
    } else {
        text
    }
}
