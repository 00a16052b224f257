//! What the two append writers (`sqlite_writer.rs`, a thread on rusqlite;
//! `pg_writer.rs`, a task on sqlx) share: the jobs they are given, their
//! running totals, and how a batch's callers are answered.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    AppendStats, Appended, NewDelivery, NewMessage, NotificationRecord, OnCommit, StoreError,
};

/// Appends waiting for the writer.
pub(crate) const APPEND_QUEUE: usize = 8192;
/// Appends committed together at most.
pub(crate) const MAX_BATCH: usize = 512;

/// One queued append, waiting for its batch to commit.
pub(crate) struct AppendJob {
    pub(crate) message: NewMessage,
    pub(crate) on_commit: Option<OnCommit>,
    pub(crate) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// A write beside the appends, done in the writer's next transaction. Only
/// the SQLite writer takes these: SQLite has one write lock, and a second
/// writer (the push recorder or the outbox worker on their own
/// connections) would make the message writer wait for it and its fsync.
/// PostgreSQL locks rows, so its store does these on the pool.
pub(crate) struct SideJob {
    pub(crate) write: SideWrite,
    /// The claimed delivery ids for `Claim`, empty otherwise.
    pub(crate) reply: oneshot::Sender<Result<Vec<Uuid>, StoreError>>,
}

pub(crate) enum SideWrite {
    /// Notification records and their outbox deliveries.
    Notifications {
        notifications: Vec<NotificationRecord>,
        deliveries: Vec<NewDelivery>,
    },
    /// Claims up to `limit` due deliveries until `now_ms + lease_ms`.
    Claim {
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    },
    /// Deletes finished deliveries.
    Finish { ids: Vec<Uuid> },
}

/// What the writer (SQLite thread or PostgreSQL task) is asked to do.
pub(crate) enum WriterJob {
    Append(AppendJob),
    Side(SideJob),
    /// Answered once every append queued before it has committed (or
    /// failed) and its hook has run.
    Barrier(oneshot::Sender<()>),
}

/// The append writer's running totals (see [`AppendStats`]), shared by the
/// writer, which adds to them once per batch, and the store, which reads them.
#[derive(Debug, Default)]
pub(crate) struct WriterCounters {
    commits: AtomicU64,
    appends: AtomicU64,
    busy_micros: AtomicU64,
}

impl WriterCounters {
    /// One batch of `appends` applied in `busy` (committed or failed).
    pub(crate) fn record(&self, appends: usize, busy: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends as u64, Ordering::Relaxed);
        let micros = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AppendStats {
        AppendStats {
            commits: self.commits.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            busy_seconds: self.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A drained batch, by kind of job.
pub(crate) struct Drained {
    pub(crate) appends: Vec<AppendJob>,
    pub(crate) side: Vec<SideJob>,
    pub(crate) barriers: Vec<oneshot::Sender<()>>,
}

/// Splits a drained batch into its appends, notification writes and
/// barriers. A barrier only promises "everything queued before me", so
/// answering it after the whole batch is correct.
pub(crate) fn split_batch(jobs: Vec<WriterJob>) -> Drained {
    let mut drained = Drained {
        appends: Vec::with_capacity(jobs.len()),
        side: Vec::new(),
        barriers: Vec::new(),
    };
    for job in jobs {
        match job {
            WriterJob::Append(append) => drained.appends.push(append),
            WriterJob::Side(job) => drained.side.push(job),
            WriterJob::Barrier(done) => drained.barriers.push(done),
        }
    }
    drained
}

/// After a commit: runs each stored message's hook, in batch order (which
/// is seq order within each room), then answers its caller.
pub(crate) fn answer_committed(batch: Vec<AppendJob>, results: Vec<Result<Appended, StoreError>>) {
    for (job, result) in batch.into_iter().zip(results) {
        if let (Some(hook), Ok(appended)) = (job.on_commit, &result) {
            // A panicking hook must not take the writer (and every later
            // append) down with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(appended))).is_err() {
                tracing::error!(message_id = %appended.message.id, "commit hook panicked");
            }
        }
        let _ = job.reply.send(result);
    }
}

/// After a failed batch: every caller gets the error; no hook runs.
pub(crate) fn answer_failed(batch: Vec<AppendJob>, error: impl Fn() -> StoreError) {
    for job in batch {
        let _ = job.reply.send(Err(error()));
    }
}
