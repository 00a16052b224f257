//! fanout: one group room of M connected members; S of them send at a fixed
//! total rate; every member receives every message.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::client::{self, source_for};
use crate::procstat;
use crate::report::Report;
use crate::scenarios::{Context, Progress, Recorder, shared_histogram};
use crate::setup::Setup;

#[derive(Debug, Clone)]
pub struct Options {
    pub members: usize,
    pub senders: usize,
    /// Messages per second over all senders.
    pub rate: f64,
    pub duration: Duration,
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    let members = opts.members.max(2);
    let senders = opts.senders.clamp(1, members);
    let setup = Setup::new(&ctx.target);
    let users = setup.users(members).await?;
    let room = setup.group_room(&users[0], &users[1..]).await?;
    let per_sender = ((opts.rate * opts.duration.as_secs_f64()) / senders as f64).ceil() as u64;
    let expected_per_member = per_sender * senders as u64;
    let epoch = Instant::now();
    let latency = shared_histogram();
    let progress = Arc::new(Progress::default());
    progress
        .total
        .store(expected_per_member * members as u64, Ordering::Relaxed);
    let duplicates = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));

    let mut receivers = Vec::new();
    let mut sender_sinks = Vec::new();
    // Members connect one after another: the time and server CPU of that
    // show what a room's members reconnecting costs (presence work, sync).
    let connecting = Instant::now();
    let before_connecting = ctx.server_pid.and_then(procstat::sample);
    for (i, user) in users.iter().enumerate() {
        let ws = client::connect(&ctx.target, &user.token, source_for(i)).await?;
        let (mut sink, mut stream) = ws.split();
        client::wait_for(&mut stream, "ready").await?;
        client::send_text(&mut sink, client::sync_frame(&[(room.clone(), 1)])).await?;
        client::wait_for(&mut stream, "synced").await?;
        if i < senders {
            sender_sinks.push(sink);
        } else {
            drop(sink);
        }
        let (latency, progress, duplicates) =
            (latency.clone(), progress.clone(), duplicates.clone());
        receivers.push(tokio::spawn(async move {
            let mut seen = HashSet::with_capacity(expected_per_member as usize);
            let mut recorder = Recorder::new(&latency);
            while (seen.len() as u64) < expected_per_member {
                let Some(text) = client::next_text(&mut stream).await else {
                    break;
                };
                let Some(frame) = client::parse(&text) else {
                    continue;
                };
                if frame.kind != "message" {
                    continue;
                }
                let Some(content) = frame.message.and_then(|m| m.content) else {
                    continue;
                };
                let (Some(t), Some(s), Some(n)) = (content.t, content.s, content.n) else {
                    continue;
                };
                if seen.insert((s << 32) | n) {
                    recorder.record(epoch, t);
                    progress.done.fetch_add(1, Ordering::Relaxed);
                } else {
                    duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            recorder.merge().await;
            seen.len() as u64
        }));
    }

    let connect_seconds = connecting.elapsed().as_secs_f64();
    let connect_usage =
        procstat::delta(before_connecting, ctx.server_pid.and_then(procstat::sample));
    let printer = progress.spawn_printer("deliveries", ctx.progress);
    // Let connection-time work (presence announcements, in rooms within
    // the server's presence limit) finish, so it is not counted as the
    // cost of the traffic below.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ctx.server_pid.and_then(procstat::sample);
    let started = Instant::now();
    let interval = Duration::from_secs_f64(senders as f64 / opts.rate.max(0.001));
    let mut sender_tasks = Vec::new();
    for (s, mut sink) in sender_sinks.into_iter().enumerate() {
        let room = room.clone();
        sender_tasks.push(tokio::spawn(async move {
            // Spread over one interval (see the pairs scenario).
            let offset = interval.mul_f64(s as f64 / senders as f64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent = 0;
            while sent < per_sender {
                tick.tick().await;
                if client::send_text(
                    &mut sink,
                    client::send_frame(&room, s as u64, sent, epoch, ""),
                )
                .await
                .is_err()
                {
                    break;
                }
                sent += 1;
            }
            // Keep the sink (and so the connection) until the end.
            (sent, sink)
        }));
    }
    let mut sent = 0;
    let mut sinks = Vec::new();
    for task in sender_tasks {
        let (n, sink) = task.await?;
        sent += n;
        sinks.push(sink);
    }
    let mut deliveries = 0;
    for receiver in receivers {
        deliveries += tokio::time::timeout(Duration::from_secs(20), receiver)
            .await
            .map(|r| r.unwrap_or(0))
            .unwrap_or(0);
    }
    let elapsed = started.elapsed();
    let after = ctx.server_pid.and_then(procstat::sample);
    printer.abort();
    drop(sinks);

    let expected = sent * members as u64;
    let mut report = Report::new("fanout", ctx.target.name());
    report.set("members", members as u64);
    report.set("senders", senders as u64);
    report.set("offered_messages_per_second", opts.rate);
    report.set("messages_sent", sent);
    report.set("deliveries", deliveries);
    report.set("deliveries_expected", expected);
    report.set("losses", expected.saturating_sub(deliveries));
    report.set("duplicates", duplicates.load(Ordering::Relaxed));
    report.set("receivers_closed_by_server", closed.load(Ordering::Relaxed));
    report.set("elapsed_seconds", elapsed.as_secs_f64());
    report.set("connect_seconds", connect_seconds);
    if let Some(usage) = connect_usage {
        report.set(
            "server_cpu_us_per_connect",
            usage.cpu_seconds * 1e6 / members as f64,
        );
    }
    report.set(
        "deliveries_per_second",
        deliveries as f64 / elapsed.as_secs_f64(),
    );
    report.latency("latency", &*latency.lock().await);
    if closed.load(Ordering::Relaxed) > 0 {
        report.notes.push(
            "some receivers were closed by the server (slow reader, code 4001); their missing deliveries are counted as losses, though every message is stored and a reconnecting client would catch up".to_owned(),
        );
    }
    if let Some(usage) = procstat::delta(before, after) {
        let cpu = usage.cpu_seconds;
        report.set("server_cpu_seconds", cpu);
        report.set("server_cpu_kernel_share", usage.kernel_share());
        if deliveries > 0 {
            report.set("server_cpu_us_per_delivery", cpu * 1e6 / deliveries as f64);
        }
        if sent > 0 {
            report.set("server_cpu_us_per_message", cpu * 1e6 / sent as f64);
        }
    }
    Ok(report)
}
