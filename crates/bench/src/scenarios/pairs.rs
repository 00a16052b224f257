//! pairs: P pairs of users in direct rooms; each sender keeps W messages in
//! flight (or sends at a fixed rate); receivers count and time deliveries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::client::{self, source_for};
use crate::procstat;
use crate::report::Report;
use crate::scenarios::{Context, Progress, Recorder, shared_histogram};
use crate::setup::{Setup, WriterTotals};

#[derive(Debug, Clone)]
pub struct Options {
    pub pairs: usize,
    /// Messages in flight per sender (closed loop), when `rate` is unset.
    pub window: usize,
    pub messages: u64,
    /// Offered load in messages per second over all senders (open loop).
    pub rate: Option<f64>,
    /// Extra text bytes per message.
    pub pad: usize,
    /// Receivers register for FCM: every message is also a push (they
    /// are connected but not viewing the room).
    pub push: bool,
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    let setup = Setup::new(&ctx.target);
    let users = setup.users(opts.pairs * 2).await?;
    let mut rooms = Vec::with_capacity(opts.pairs);
    for p in 0..opts.pairs {
        rooms.push(setup.direct_room(&users[2 * p], &users[2 * p + 1]).await?);
    }
    if opts.push {
        for p in 0..opts.pairs {
            let receiver = &users[2 * p + 1];
            setup
                .register_fcm(receiver, &format!("bench-token-{}", receiver.id))
                .await?;
        }
    }
    let pad = "x".repeat(opts.pad);
    let epoch = Instant::now();
    let latency = shared_histogram();
    let progress = Arc::new(Progress::default());
    progress
        .total
        .store(opts.messages * opts.pairs as u64, Ordering::Relaxed);
    let duplicates = Arc::new(AtomicU64::new(0));

    // Receivers first, so nothing is sent before they listen.
    let mut receivers = Vec::new();
    for (p, room) in rooms.iter().enumerate() {
        let ws =
            client::connect(&ctx.target, &users[2 * p + 1].token, source_for(2 * p + 1)).await?;
        let (mut sink, mut stream) = ws.split();
        client::wait_for(&mut stream, "ready").await?;
        client::send_text(&mut sink, client::sync_frame(&[(room.clone(), 0)])).await?;
        client::wait_for(&mut stream, "synced").await?;
        let (latency, progress, duplicates) =
            (latency.clone(), progress.clone(), duplicates.clone());
        let expected = opts.messages;
        receivers.push(tokio::spawn(async move {
            let mut seen = vec![false; expected as usize];
            let mut unique = 0u64;
            let mut recorder = Recorder::new(&latency);
            while unique < expected {
                let Some(text) = client::next_text(&mut stream).await else {
                    break;
                };
                let Some(message) = client::parse(&text).and_then(|f| f.message) else {
                    continue;
                };
                let Some(content) = message.content else {
                    continue;
                };
                let (Some(t), Some(n)) = (content.t, content.n) else {
                    continue;
                };
                match seen.get_mut(n as usize) {
                    Some(flag) if !*flag => {
                        *flag = true;
                        unique += 1;
                        recorder.record(epoch, t);
                        progress.done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            recorder.merge().await;
            drop(sink);
            unique
        }));
    }
    let mut senders = Vec::new();
    for (p, room) in rooms.iter().enumerate() {
        let ws = client::connect(&ctx.target, &users[2 * p].token, source_for(2 * p)).await?;
        let (mut sink, mut stream) = ws.split();
        client::wait_for(&mut stream, "ready").await?;
        client::send_text(&mut sink, r#"{"type":"sync"}"#.to_owned()).await?;
        client::wait_for(&mut stream, "synced").await?;
        senders.push((p, room.clone(), sink, stream));
    }

    let printer = progress.spawn_printer("delivered", ctx.progress);
    // Let connection-time work (presence announcements to every member)
    // finish, so it is not counted as the cost of the traffic below.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ctx.server_pid.and_then(procstat::sample);
    let writer_before = setup.writer_totals().await;
    let started = Instant::now();
    let per_sender_interval = opts
        .rate
        .map(|rate| Duration::from_secs_f64(opts.pairs as f64 / rate.max(0.001)));
    let mut sender_tasks = Vec::new();
    for (p, room, mut sink, mut stream) in senders {
        let (pad, window, messages) = (pad.clone(), opts.window.max(1), opts.messages);
        let pairs = opts.pairs.max(1);
        sender_tasks.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let mut acked = 0u64;
            match per_sender_interval {
                Some(interval) => {
                    // Open loop: a fixed schedule, acks read concurrently.
                    let reader = tokio::spawn(async move {
                        let mut acked = 0u64;
                        while acked < messages {
                            let Some(text) = client::next_text(&mut stream).await else {
                                break;
                            };
                            if client::parse(&text).is_some_and(|f| f.kind == "ack") {
                                acked += 1;
                            }
                        }
                        acked
                    });
                    // Senders start spread over one interval: started
                    // together, they would send in bursts of one message
                    // per sender, and the latency would measure how long a
                    // server takes to work off a burst, not the rate.
                    let offset = interval.mul_f64(p as f64 / pairs as f64);
                    let mut tick =
                        tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    while sent < messages {
                        tick.tick().await;
                        if client::send_text(
                            &mut sink,
                            client::send_frame(&room, p as u64, sent, epoch, &pad),
                        )
                        .await
                        .is_err()
                        {
                            break;
                        }
                        sent += 1;
                    }
                    acked = reader.await.unwrap_or(0);
                }
                None => {
                    while acked < messages {
                        while sent < messages && sent - acked < window as u64 {
                            if client::send_text(
                                &mut sink,
                                client::send_frame(&room, p as u64, sent, epoch, &pad),
                            )
                            .await
                            .is_err()
                            {
                                return (sent, acked);
                            }
                            sent += 1;
                        }
                        let Some(text) = client::next_text(&mut stream).await else {
                            break;
                        };
                        if client::parse(&text).is_some_and(|f| f.kind == "ack") {
                            acked += 1;
                        }
                    }
                }
            }
            (sent, acked)
        }));
    }
    let (mut sent, mut acked) = (0, 0);
    for task in sender_tasks {
        let (s, a) = task.await?;
        sent += s;
        acked += a;
    }
    let mut delivered = 0;
    for receiver in receivers {
        delivered += tokio::time::timeout(Duration::from_secs(15), receiver)
            .await
            .map(|r| r.unwrap_or(0))
            .unwrap_or(0);
    }
    let elapsed = started.elapsed();
    let after = ctx.server_pid.and_then(procstat::sample);
    let writer_after = setup.writer_totals().await;
    printer.abort();

    let mut report = Report::new("pairs", ctx.target.name());
    report.set("pairs", opts.pairs as u64);
    match opts.rate {
        Some(rate) => report.set("offered_messages_per_second", rate),
        None => report.set("window", opts.window as u64),
    }
    report.set("messages_sent", sent);
    report.set("messages_acked", acked);
    report.set("delivered", delivered);
    report.set("losses", sent.saturating_sub(delivered));
    report.set("duplicates", duplicates.load(Ordering::Relaxed));
    report.set("elapsed_seconds", elapsed.as_secs_f64());
    report.set(
        "delivered_per_second",
        delivered as f64 / elapsed.as_secs_f64(),
    );
    report.latency("latency", &*latency.lock().await);
    if let (Some(before), Some(after)) = (writer_before, writer_after)
        && let Some((batch, commit_ms)) = WriterTotals::per_commit(before, after)
    {
        report.set("server_messages_per_commit", batch);
        report.set("server_ms_per_commit", commit_ms);
    }
    if let Some(usage) = procstat::delta(before, after) {
        let cpu = usage.cpu_seconds;
        report.set("server_cpu_seconds", cpu);
        report.set("server_cpu_kernel_share", usage.kernel_share());
        if delivered > 0 {
            report.set("server_cpu_us_per_delivered", cpu * 1e6 / delivered as f64);
        }
    }
    Ok(report)
}
