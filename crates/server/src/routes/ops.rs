//! Health, readiness, metrics and API documents.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use iyagi_protocol::ErrorCode;
use iyagi_protocol::auth::HealthStatus;
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/.well-known/jwks.json", get(jwks))
}

/// Liveness: the process is serving.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = HealthStatus)))]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".to_owned(),
    })
}

/// Readiness: storage answers within two seconds.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = HealthStatus),
    (status = 503, body = iyagi_protocol::ErrorBody, description = "`unavailable`"),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthStatus>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(HealthStatus {
            status: "ok".to_owned(),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                ErrorCode::Unavailable,
                "storage is unreachable",
            ))
        }
        Err(_) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "storage did not answer in time",
        )),
    }
}

/// Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let hub = state.chat.hub();
    state
        .metrics
        .ws_frames_out
        .set(i64::try_from(hub.delivered_total()).unwrap_or(i64::MAX));
    state
        .metrics
        .ws_slow_closed
        .set(i64::try_from(hub.slow_closed_total()).unwrap_or(i64::MAX));
    let appends = state.store.append_stats();
    state
        .metrics
        .store_append_commits
        .set(i64::try_from(appends.commits).unwrap_or(i64::MAX));
    state
        .metrics
        .store_appends
        .set(i64::try_from(appends.appends).unwrap_or(i64::MAX));
    state
        .metrics
        .store_append_busy_seconds
        .set(appends.busy_seconds);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// The public keys that verify iyagi's access tokens (RFC 7517 JWK set).
#[utoipa::path(get, path = "/v1/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JWK set")))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "keys": state.auth.keys().public_jwks() }))
}
