//! Prometheus metrics, served at `/metrics` in the text exposition format.
//! The registry lives in `AppState`, not in a global, so several servers
//! in one process (tests) keep separate counts.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route pattern (`/v1/devices/{device_id}`), never the raw path,
    /// so label cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PushAttemptLabels {
    pub provider: String,
    /// `delivered`, `recorded` (no provider configured), `retried`,
    /// `failed` or `skipped`.
    pub outcome: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

pub struct Metrics {
    registry: Registry,
    /// Push attempts since start, by provider, outcome and reason.
    pub push_attempts: Family<PushAttemptLabels, Gauge>,
    /// Registrations deleted because their provider said the token is dead.
    pub push_tokens_pruned: Family<ProviderLabels, Gauge>,
    pub push_notifications_stored: Gauge,
    /// Deliveries waiting in the outbox (all nodes).
    pub push_outbox_depth: Gauge,
    pub push_outbox_oldest_seconds: Gauge<f64, AtomicU64>,
    /// Open WebSocket connections on this node.
    pub ws_connections: Gauge,
    /// Client frames accepted (parsed) on this node.
    pub ws_frames_in: Counter,
    /// Frames queued to connections by the fan-out hub (running total).
    pub ws_frames_out: Gauge,
    /// Connections closed for reading too slowly (running total).
    pub ws_slow_closed: Gauge,
    /// Frame bytes queued for this node's connections now.
    pub ws_queued_bytes: Gauge,
    /// Group commits of the message writer (running total).
    pub store_append_commits: Gauge,
    /// Messages those commits stored (running total); divided by the
    /// commits, the batch size.
    pub store_appends: Gauge,
    /// Seconds the message writer spent applying and committing batches
    /// (running total); divided by the commits, the time per commit.
    pub store_append_busy_seconds: Gauge<f64, AtomicU64>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    /// The server's metrics and the media service's.
    pub fn with_media(media: &iyagi_media::MediaStats) -> Metrics {
        let mut metrics = Metrics::new();
        media.register(&mut metrics.registry);
        metrics
    }

    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("iyagi");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        let ws_connections = Gauge::default();
        registry.register(
            "ws_connections",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        let ws_frames_in = Counter::default();
        registry.register(
            "ws_frames_in",
            "Client frames accepted",
            ws_frames_in.clone(),
        );
        let ws_frames_out = Gauge::default();
        registry.register(
            "ws_frames_out",
            "Frames queued to connections since start",
            ws_frames_out.clone(),
        );
        let ws_slow_closed = Gauge::default();
        registry.register(
            "ws_slow_closed",
            "Connections closed as slow readers since start",
            ws_slow_closed.clone(),
        );
        let ws_queued_bytes = Gauge::default();
        registry.register(
            "ws_queued_bytes",
            "Frame bytes queued for connections, not yet written to their sockets",
            ws_queued_bytes.clone(),
        );
        let store_append_commits = Gauge::default();
        registry.register(
            "store_append_commits",
            "Transactions committed by the message writer since start (group commit)",
            store_append_commits.clone(),
        );
        let store_appends = Gauge::default();
        registry.register(
            "store_appends",
            "Messages stored by the message writer since start",
            store_appends.clone(),
        );
        let store_append_busy_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_append_busy_seconds",
            "Seconds the message writer spent applying and committing batches since start",
            store_append_busy_seconds.clone(),
        );
        let push_attempts = Family::<PushAttemptLabels, Gauge>::default();
        registry.register(
            "push_attempts",
            "Push sends tried by this node since start, by provider, outcome (delivered, recorded, retried, failed, skipped) and reason",
            push_attempts.clone(),
        );
        let push_tokens_pruned = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "push_tokens_pruned",
            "Push registrations deleted by this node since start because the provider said the token is dead",
            push_tokens_pruned.clone(),
        );
        let push_notifications_stored = Gauge::default();
        registry.register(
            "push_notifications_stored",
            "Notification records this node stored since start",
            push_notifications_stored.clone(),
        );
        let push_outbox_depth = Gauge::default();
        registry.register(
            "push_outbox_depth",
            "Push deliveries pending in the outbox (every node's)",
            push_outbox_depth.clone(),
        );
        let push_outbox_oldest_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "push_outbox_oldest_seconds",
            "Age of the oldest pending push delivery (0 when none)",
            push_outbox_oldest_seconds.clone(),
        );
        Metrics {
            registry,
            push_attempts,
            push_tokens_pruned,
            push_notifications_stored,
            push_outbox_depth,
            push_outbox_oldest_seconds,
            store_append_commits,
            store_appends,
            store_append_busy_seconds,
            ws_connections,
            ws_frames_in,
            ws_frames_out,
            ws_slow_closed,
            ws_queued_bytes,
            http_requests,
            http_duration,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Middleware recording count and latency of every request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    metrics
        .http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}
