//! push: one group room of M members, none of them connected (so none
//! viewing the room), each with an FCM registration; one sender sends at a
//! fixed rate. Every message becomes M−1 notifications, each delivered to
//! the fake FCM (`iyagi-bench fake-fcm`, which answers at once). Measures
//! notifications stored and delivered per second, server CPU per
//! notification, and the time from commit (the sender's ack) to the
//! provider request.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;

use crate::client::{self, source_for};
use crate::procstat;
use crate::report::{Report, histogram};
use crate::scenarios::Context;
use crate::setup::Setup;

#[derive(Debug, Clone)]
pub struct Options {
    pub members: usize,
    /// Messages per second.
    pub rate: f64,
    pub duration: Duration,
    /// host:port of `iyagi-bench fake-fcm`.
    pub fake_fcm: String,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(!ctx.target.relay, "the push scenario needs iyagi");
    let members = opts.members.max(2);
    let setup = Setup::new(&ctx.target);
    let users = setup.users(members).await?;
    let setup_ref = &setup;
    for chunk in users[1..].chunks(64) {
        let batch = chunk.iter().map(|u| async move {
            setup_ref
                .register_fcm(u, &format!("bench-token-{}", u.id))
                .await
        });
        for result in futures::future::join_all(batch).await {
            result?;
        }
    }
    let room = setup.group_room(&users[0], &users[1..]).await?;
    let already = setup.fake_fcm_accepted(&opts.fake_fcm).await?.len();
    let stored_before = setup
        .metric("iyagi_push_notifications_stored")
        .await
        .unwrap_or(0.0);

    let ws = client::connect(&ctx.target, &users[0].token, source_for(0)).await?;
    let (mut sink, mut stream) = ws.split();
    client::wait_for(&mut stream, "ready").await?;
    client::send_text(&mut sink, client::sync_frame(&[(room.clone(), 1)])).await?;
    client::wait_for(&mut stream, "synced").await?;
    let messages = (opts.rate * opts.duration.as_secs_f64()).ceil() as u64;
    // The sender's acks: seq → when it arrived (unix ms), i.e. the commit.
    let acks = tokio::spawn(async move {
        let mut acked: HashMap<i64, u64> = HashMap::new();
        while (acked.len() as u64) < messages {
            let Some(text) = client::next_text(&mut stream).await else {
                break;
            };
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let seq = frame["message"]["seq"].as_i64();
            if let (true, Some(seq)) = (frame["type"] == "ack", seq) {
                acked.insert(seq, unix_ms());
            }
        }
        acked
    });

    let expected = messages as usize * (members - 1);
    let epoch = Instant::now();
    let before = ctx.server_pid.and_then(procstat::sample);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.rate.max(0.001)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for n in 0..messages {
        tick.tick().await;
        client::send_text(&mut sink, client::send_frame(&room, 0, n, epoch, "")).await?;
    }
    let sending = started.elapsed();
    let acked = tokio::time::timeout(Duration::from_secs(30), acks)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let newest = acked.keys().copied().max();
    // Wait for every notification to be stored, and the newest message's
    // push to reach the fake provider for every member (a member's
    // earlier pushes that were still waiting collapse into it).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored_seconds = None;
    let mut accepted;
    loop {
        if stored_seconds.is_none() {
            let stored = setup
                .metric("iyagi_push_notifications_stored")
                .await
                .unwrap_or(0.0);
            if stored - stored_before >= expected as f64 {
                stored_seconds = Some(started.elapsed().as_secs_f64());
            }
        }
        accepted = setup.fake_fcm_accepted(&opts.fake_fcm).await?;
        let newest_pushed = accepted
            .iter()
            .filter(|(r, seq, _)| r == &room && Some(*seq) == newest)
            .count();
        if (stored_seconds.is_some() && newest_pushed >= members - 1)
            || accepted.len() >= already + expected
            || Instant::now() > deadline
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let after = ctx.server_pid.and_then(procstat::sample);
    drop(sink);

    let ours: Vec<&(String, i64, u64)> = accepted.iter().filter(|(r, _, _)| r == &room).collect();
    let mut latency = histogram();
    let (mut first, mut last) = (u64::MAX, 0u64);
    for (_, seq, at) in &ours {
        first = first.min(*at);
        last = last.max(*at);
        if let Some(committed) = acked.get(seq) {
            // Milliseconds on both clocks (one machine): ns for the histogram.
            let _ = latency.record((at.saturating_sub(*committed) * 1_000_000).max(1_000));
        }
    }
    let delivered = ours.len();
    let newest_pushed = ours
        .iter()
        .filter(|(_, seq, _)| Some(*seq) == newest)
        .count();
    let mut report = Report::new("push", ctx.target.name());
    report.set("members", members as u64);
    report.set("offered_messages_per_second", opts.rate);
    report.set("messages_sent", messages);
    report.set("messages_acked", acked.len() as u64);
    report.set("notifications_expected", expected as u64);
    report.set("notifications_delivered", delivered as u64);
    // Pushes that collapsed into a newer one of the room while waiting.
    report.set(
        "notifications_collapsed",
        expected.saturating_sub(delivered) as u64,
    );
    report.set("newest_message_pushed_to", newest_pushed as u64);
    report.set("send_seconds", sending.as_secs_f64());
    report.set("elapsed_seconds", elapsed.as_secs_f64());
    report.set(
        "notifications_delivered_per_second",
        delivered as f64 / elapsed.as_secs_f64(),
    );
    if last > first {
        report.set("delivery_span_seconds", (last - first) as f64 / 1000.0);
    }
    if let Some(seconds) = stored_seconds {
        report.set("notifications_stored_per_second", expected as f64 / seconds);
    }
    // Commit to provider request, in ms resolution.
    report.latency("commit_to_provider", &latency);
    if let Some(usage) = procstat::delta(before, after) {
        report.set("server_cpu_seconds", usage.cpu_seconds);
        if delivered > 0 {
            report.set(
                "server_cpu_us_per_notification",
                usage.cpu_seconds * 1e6 / delivered as f64,
            );
        }
    }
    if newest_pushed < members - 1 {
        report.notes.push(format!(
            "the newest message reached {newest_pushed} of {} members within 120 s of the last send",
            members - 1
        ));
    }
    Ok(report)
}
