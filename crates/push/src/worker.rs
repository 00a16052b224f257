//! The outbox worker: claims due deliveries (a lease, so no other worker
//! on any node sends them meanwhile), sends each through its provider, and
//! finishes or reschedules it. Pending deliveries survive restarts: they
//! are rows, and a lease that runs out makes them due again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use iyagi_protocol::now_ms;
use iyagi_store::{ClaimedDelivery, PushProvider, Storage};
use rand::Rng;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::provider::{OutgoingPush, Provider, RecordingProvider, SendError};
use crate::service::MessagePayload;
use crate::stats::PushStats;
use crate::text::{GENERIC_BODY, GENERIC_TITLE};

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// Deliveries claimed per round.
    pub batch: u32,
    /// How long a claim lasts; a worker that dies holds its deliveries no longer.
    pub lease: Duration,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Attempts before a delivery is given up.
    pub max_attempts: i64,
    /// The first retry's delay; each further one doubles it, with jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How often to look for due retries when nothing wakes the worker.
    pub poll: Duration,
    /// Notifications older than this are deleted, every `retention_check`.
    pub retention: Duration,
    pub retention_check: Duration,
    /// The worker thread's CPU priority (see [`WorkerPriority`]).
    pub priority: WorkerPriority,
}

/// How the outbox worker's thread competes for CPU with the message path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerPriority {
    /// Linux `SCHED_IDLE`: the worker runs on CPU nothing else wants, and
    /// yields at once to any other thread that wakes. A CPU-bound node
    /// delays its pushes (they wait in the outbox, where a room's collapse
    /// into its newest) instead of its messages.
    #[default]
    Idle,
    /// Nice 10: a small share of a busy CPU.
    Low,
    /// The same priority as the rest of the server.
    Normal,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            batch: 128,
            lease: Duration::from_secs(60),
            concurrency: 16,
            // With the backoff below: retries for about 35 minutes (1 s, 2 s, …
            // 512 s, then 600 s twice). An outage longer than that leaves
            // the notification in the inbox, but unpushed: a push hours late
            // is worse than none.
            max_attempts: 12,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            poll: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 24 * 3600),
            retention_check: Duration::from_secs(3600),
            priority: WorkerPriority::default(),
        }
    }
}

pub struct OutboxWorker {
    store: Arc<dyn Storage>,
    providers: HashMap<PushProvider, Arc<dyn Provider>>,
    stats: Arc<PushStats>,
    wake: Arc<Notify>,
    settings: WorkerSettings,
}

impl OutboxWorker {
    /// A worker over `providers`; every kind without one gets a
    /// [`RecordingProvider`] (it records and logs what it would send).
    pub fn new(
        store: Arc<dyn Storage>,
        providers: Vec<Arc<dyn Provider>>,
        stats: Arc<PushStats>,
        wake: Arc<Notify>,
        settings: WorkerSettings,
    ) -> OutboxWorker {
        let mut by_kind: HashMap<PushProvider, Arc<dyn Provider>> =
            providers.into_iter().map(|p| (p.kind(), p)).collect();
        for kind in [PushProvider::Fcm, PushProvider::Apns, PushProvider::WebPush] {
            by_kind
                .entry(kind)
                .or_insert_with(|| Arc::new(RecordingProvider::new(kind)));
        }
        OutboxWorker {
            store,
            providers: by_kind,
            stats,
            wake,
            settings,
        }
    }

    /// Runs [`run`](Self::run) on a thread of its own, with its own
    /// runtime, at a lower scheduling priority (`settings.priority`): the
    /// provider requests (TLS, HTTP, JSON, signing) are the bulk of push's
    /// CPU, and when the node is CPU-bound they must yield to the message
    /// path; the pushes then wait in the durable outbox, late but not
    /// lost, and a room's waiting pushes collapse into its newest.
    /// The answer resolves when the worker has stopped.
    pub fn start_background(
        self,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
        let (stopped, answer) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("iyagi-push-outbox".to_owned())
            .spawn(move || {
                set_this_threads_priority(self.settings.priority);
                runtime.block_on(self.run(shutdown));
                let _ = stopped.send(());
            })?;
        Ok(answer)
    }

    /// Drains the outbox until `shutdown` turns true: woken when
    /// deliveries are added, and every `poll` for retries.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut last_retention = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let handled = match self.drain_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "push outbox unavailable; trying again");
                    0
                }
            };
            if last_retention.elapsed() >= self.settings.retention_check {
                last_retention = tokio::time::Instant::now();
                self.retire_old().await;
            }
            if handled < self.settings.batch as usize {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.poll) => {}
                    changed = shutdown.changed() => {
                        // The server is gone (its sender dropped): stop too,
                        // as this thread outlives its runtime otherwise.
                        if changed.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// One round: claims up to a batch of due deliveries and handles them.
    pub async fn drain_once(&self) -> Result<usize, iyagi_store::StoreError> {
        let lease = self.settings.lease.as_millis() as i64;
        let claimed = self
            .store
            .claim_deliveries(now_ms(), lease, self.settings.batch)
            .await?;
        let count = claimed.len();
        // Done deliveries are deleted together: one write per round, not
        // one per push (on SQLite each write is a sync to disk). A crash
        // before it sends the round's pushes again when their lease ends:
        // delivery is at least once, and a room's pushes collapse on the
        // device.
        let finished: Vec<Uuid> = futures::stream::iter(claimed)
            .map(|delivery| self.deliver(delivery))
            .buffer_unordered(self.settings.concurrency)
            .filter_map(|done| async move { done })
            .collect()
            .await;
        self.store.finish_deliveries(&finished).await?;
        Ok(count)
    }

    /// Deletes notifications past the retention.
    pub async fn retire_old(&self) {
        let cutoff = now_ms() - self.settings.retention.as_millis() as i64;
        match self.store.delete_notifications_before(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old notifications deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting old notifications failed"),
        }
    }

    /// Handles one delivery; `Some(id)` when it is done (sent, or given up).
    async fn deliver(&self, delivery: ClaimedDelivery) -> Option<Uuid> {
        match self.try_deliver(&delivery).await {
            Ok(done) => done.then_some(delivery.id),
            Err(e) => {
                // The lease runs out and the delivery is tried again.
                tracing::warn!(error = %e, delivery_id = %delivery.id, "push delivery could not be handled");
                None
            }
        }
    }

    /// Whether the delivery is done; a retry is scheduled here.
    async fn try_deliver(
        &self,
        delivery: &ClaimedDelivery,
    ) -> Result<bool, iyagi_store::StoreError> {
        let notification = &delivery.notification;
        let Some(registration) = &delivery.registration else {
            // The device was signed out or unregistered meanwhile.
            return Ok(true);
        };
        let provider_name = registration.provider.as_str();
        // No stale pushes: a room read (on any device) since is not pushed
        // (nor one whose user has left the room).
        let read_since = notification.room_id.is_some()
            && notification
                .seq
                .is_some_and(|seq| delivery.read_seq.is_none_or(|read| read >= seq));
        if read_since {
            self.stats.attempt(provider_name, "skipped", "already_read");
            return Ok(true);
        }
        let payload: MessagePayload =
            serde_json::from_str(&notification.payload).unwrap_or(MessagePayload {
                title: String::new(),
                body: String::new(),
                message_kind: String::new(),
            });
        let (title, body) = if delivery.push_previews {
            (payload.title, payload.body)
        } else {
            (GENERIC_TITLE.to_owned(), GENERIC_BODY.to_owned())
        };
        let push = OutgoingPush {
            notification_id: notification.id,
            collapse_key: crate::service::collapse_key(notification),
            title,
            body,
            badge: delivery.badge,
            room_id: notification.room_id,
            seq: notification.seq,
        };
        let Some(provider) = self.providers.get(&registration.provider) else {
            return Ok(true);
        };
        let outcome = provider.send(registration, &push).await;
        let log = |outcome: &str, reason: &str| {
            tracing::info!(
                notification_id = %notification.id, delivery_id = %delivery.id, provider = provider_name,
                device_id = registration.device_id, attempt = delivery.attempts, outcome, reason,
                "push delivery"
            );
        };
        match outcome {
            Ok(sent) => {
                log(sent.outcome(), "");
                self.stats.attempt(provider_name, sent.outcome(), "");
                Ok(true)
            }
            Err(SendError::DeadToken(reason)) => {
                log("failed", &reason);
                self.stats.attempt(provider_name, "failed", "dead_token");
                if self
                    .store
                    .prune_registration(
                        registration.user_id,
                        &registration.device_id,
                        registration.provider,
                        &registration.token,
                    )
                    .await?
                {
                    self.stats.pruned(provider_name);
                }
                Ok(true)
            }
            Err(SendError::Permanent(reason)) => {
                log("failed", &reason);
                self.stats.attempt(provider_name, "failed", "permanent");
                Ok(true)
            }
            Err(error @ (SendError::RetryAfter(..) | SendError::Transient(_))) => {
                if delivery.attempts >= self.settings.max_attempts {
                    log("failed", error.reason());
                    self.stats
                        .attempt(provider_name, "failed", "attempts_exhausted");
                    return Ok(true);
                }
                let delay = match &error {
                    SendError::RetryAfter(after, _) => *after,
                    _ => self.backoff(delivery.attempts),
                };
                log("retried", error.reason());
                self.stats.attempt(
                    provider_name,
                    "retried",
                    match error {
                        SendError::RetryAfter(..) => "retry_after",
                        _ => "transient",
                    },
                );
                self.store
                    .retry_delivery(delivery.id, now_ms() + delay.as_millis() as i64)
                    .await?;
                Ok(false)
            }
        }
    }

    /// Exponential backoff with jitter: base × 2^(attempts − 1), capped,
    /// times a random factor in [0.5, 1.5).
    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = attempts.clamp(1, 30) as u32 - 1;
        let plain = self
            .settings
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.settings.max_backoff);
        plain.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

/// Sets the calling thread's scheduling priority (on Linux,
/// `sched_setscheduler` and `setpriority` with 0 act on the calling thread
/// only). Best effort: a failure leaves the normal priority.
fn set_this_threads_priority(priority: WorkerPriority) {
    #[cfg(target_os = "linux")]
    {
        let failed = match priority {
            WorkerPriority::Normal => false,
            WorkerPriority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: reads only its arguments; `param` outlives the call.
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 }
            }
            // SAFETY: setpriority reads only its integer arguments.
            WorkerPriority::Low => unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) != 0 },
        };
        if failed {
            tracing::warn!(?priority, "could not lower the push worker's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}
