//! `GET /metrics`: Prometheus / OpenMetrics text.
//!
//! Served on the main listener unless `metrics.listen` names a listener of
//! its own (then only there), and guarded by a bearer token when
//! `metrics.token` is set: the figures say much about the traffic, so they
//! are for the operator, not for whoever can reach the API port.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use iyagi_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// The push figures: this node's counts, and the outbox as stored.
async fn push_figures(state: &AppState, metrics: &crate::metrics::Metrics) {
    use crate::metrics::{ProviderLabels, PushAttemptLabels};
    let stats = state.push.stats();
    for ((provider, outcome, reason), count) in stats.attempts() {
        let labels = PushAttemptLabels {
            provider,
            outcome,
            reason,
        };
        metrics
            .push_attempts
            .get_or_create(&labels)
            .set(count as i64);
    }
    for (provider, count) in stats.pruned_tokens() {
        metrics
            .push_tokens_pruned
            .get_or_create(&ProviderLabels { provider })
            .set(count as i64);
    }
    metrics
        .push_notifications_stored
        .set(stats.notifications_stored() as i64);
    match state.store.outbox_stats().await {
        Ok(outbox) => {
            metrics.push_outbox_depth.set(outbox.pending);
            let age = outbox.oldest_created_at_ms.map_or(0.0, |t| {
                ((iyagi_protocol::now_ms() - t).max(0) as f64) / 1000.0
            });
            metrics.push_outbox_oldest_seconds.set(age);
        }
        Err(e) => tracing::warn!(error = %e, "outbox figures unavailable"),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The metrics in OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
    (status = 401, body = iyagi_protocol::ErrorBody, description = "`unauthenticated`: `metrics.token` is set and this is not it"),
))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let token = state.settings.metrics.token.expose();
    if !token.is_empty() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time: the token is a secret.
        let matches = presented.is_some_and(|p| {
            p.len() == token.len()
                && p.bytes()
                    .zip(token.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !matches {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "metrics need Authorization: Bearer <metrics.token>",
            ));
        }
    }
    let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let hub = &state.hub;
    let metrics = &state.metrics;
    metrics.ws_frames_out.set(as_gauge(hub.delivered_total()));
    metrics
        .ws_slow_closed
        .set(as_gauge(hub.slow_closed_total()));
    metrics
        .ws_queued_bytes
        .set(as_gauge(hub.queued_bytes() as u64));
    let appends = state.store.append_stats();
    metrics.store_append_commits.set(as_gauge(appends.commits));
    metrics.store_appends.set(as_gauge(appends.appends));
    metrics.store_append_busy_seconds.set(appends.busy_seconds);
    push_figures(&state, metrics).await;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    ))
}
