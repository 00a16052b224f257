//! The scenarios. Each prepares accounts and rooms over HTTP, connects real
//! WebSocket clients, drives traffic, and returns a [`crate::Report`].

pub mod catchup;
pub mod fanout;
pub mod idle;
pub mod login_flood;
pub mod media;
pub mod pairs;
pub mod push;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;

use crate::setup::Target;

/// What every scenario needs to know.
#[derive(Debug, Clone)]
pub struct Context {
    pub target: Target,
    /// The server process, for CPU and memory figures.
    pub server_pid: Option<u32>,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// Counters shared by client tasks, printed as the progress line.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

impl Progress {
    pub fn spawn_printer(
        self: &Arc<Self>,
        label: &'static str,
        enabled: bool,
    ) -> tokio::task::JoinHandle<()> {
        let progress = self.clone();
        tokio::spawn(async move {
            if !enabled {
                return;
            }
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                eprintln!(
                    "[{:>5.1}s] {label}: {} / {}",
                    started.elapsed().as_secs_f64(),
                    progress.done.load(Ordering::Relaxed),
                    progress.total.load(Ordering::Relaxed)
                );
            }
        })
    }
}

/// Latency samples from many tasks.
pub type SharedHistogram = Arc<Mutex<Histogram<u64>>>;

pub fn shared_histogram() -> SharedHistogram {
    Arc::new(Mutex::new(crate::report::histogram()))
}

/// Per-task latency recorder: collects locally, merges once at the end.
pub struct Recorder {
    local: Histogram<u64>,
    shared: SharedHistogram,
}

impl Recorder {
    pub fn new(shared: &SharedHistogram) -> Recorder {
        Recorder {
            local: crate::report::histogram(),
            shared: shared.clone(),
        }
    }

    pub fn record(&mut self, epoch: Instant, sent_at_ns: u64) {
        let now = epoch.elapsed().as_nanos() as u64;
        let _ = self.local.record(now.saturating_sub(sent_at_ns).max(1_000));
    }

    pub async fn merge(self) {
        let _ = self.shared.lock().await.add(&self.local);
    }
}
