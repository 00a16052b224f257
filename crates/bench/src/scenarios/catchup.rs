//! catch-up: a device is away while K messages arrive, then reconnects and
//! syncs; how long, and how much server CPU, until it is up to date.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::client::{self, source_for};
use crate::procstat;
use crate::report::Report;
use crate::scenarios::Context;
use crate::setup::Setup;

#[derive(Debug, Clone)]
pub struct Options {
    pub messages: u64,
}

pub async fn run(ctx: &Context, opts: Options) -> anyhow::Result<Report> {
    let mut report = Report::new("catchup", ctx.target.name());
    if ctx.target.relay {
        report
            .notes
            .push("the relay stores nothing, so it has no catch-up to compare with".to_owned());
        return Ok(report);
    }
    let setup = Setup::new(&ctx.target);
    let users = setup.users(2).await?;
    let room = setup.direct_room(&users[0], &users[1]).await?;
    let epoch = Instant::now();

    // The sender fills the room while the receiver is away.
    let ws = client::connect(&ctx.target, &users[0].token, source_for(0)).await?;
    let (mut sink, mut stream) = ws.split();
    client::wait_for(&mut stream, "ready").await?;
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < opts.messages {
        while sent < opts.messages && sent - acked < 64 {
            client::send_text(&mut sink, client::send_frame(&room, 0, sent, epoch, "")).await?;
            sent += 1;
        }
        let Some(text) = client::next_text(&mut stream).await else {
            anyhow::bail!("sender disconnected")
        };
        if client::parse(&text).is_some_and(|f| f.kind == "ack") {
            acked += 1;
        }
    }

    let ws = client::connect(&ctx.target, &users[1].token, source_for(1)).await?;
    let (mut sink, mut stream) = ws.split();
    client::wait_for(&mut stream, "ready").await?;
    let before = ctx.server_pid.and_then(procstat::sample);
    let started = Instant::now();
    // Seq 1 (room_created) is what the device had seen before going away.
    client::send_text(&mut sink, client::sync_frame(&[(room.clone(), 1)])).await?;
    let mut seen = HashSet::new();
    let mut duplicates = 0u64;
    let mut reload = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let next = tokio::time::timeout_at(deadline, client::next_text(&mut stream)).await;
        let Ok(Some(text)) = next else {
            break;
        };
        let Some(frame) = client::parse(&text) else {
            continue;
        };
        match frame.kind.as_str() {
            "message" => {
                if let Some(message) = frame.message
                    && !seen.insert(message.seq)
                {
                    duplicates += 1;
                }
            }
            "reload" => reload = true,
            "synced" => break,
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    let after = ctx.server_pid.and_then(procstat::sample);
    let received = seen.len() as u64;
    report.set("messages", opts.messages);
    report.set("replayed", received);
    report.set("losses", opts.messages.saturating_sub(received));
    report.set("duplicates", duplicates);
    report.set("catchup_seconds", elapsed.as_secs_f64());
    report.set(
        "replayed_per_second",
        received as f64 / elapsed.as_secs_f64(),
    );
    if reload {
        report
            .notes
            .push("the server answered reload: raise ws.max_replay to replay this many".to_owned());
    }
    if let Some(usage) = procstat::delta(before, after) {
        let cpu = usage.cpu_seconds;
        report.set("server_cpu_seconds", cpu);
        report.set("server_cpu_kernel_share", usage.kernel_share());
        if received > 0 {
            report.set("server_cpu_us_per_replayed", cpu * 1e6 / received as f64);
        }
    }
    drop(sink);
    Ok(report)
}
