//! Health, readiness, metrics and API documents.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use iyagi_protocol::ErrorCode;
use iyagi_protocol::auth::{HealthStatus, Readiness, ReadinessCheck};

use crate::settings::{BusBackend, SessionBackend};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/.well-known/jwks.json", get(jwks))
}

/// Liveness: the process is serving.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = HealthStatus)))]
pub async fn healthz() -> Json<HealthStatus> {
    Json(HealthStatus {
        status: "ok".to_owned(),
    })
}

/// How long each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: every backend this node depends on answers (storage within
/// two seconds, the session store, the bus connected). 503 names the ones
/// that do not.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = Readiness),
    (status = 503, body = Readiness, description = "`unavailable`: `checks` says which backend failed"),
))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let timed = |what: &'static str, check: BoxFuture<'static, Result<(), String>>| async move {
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(result) => result,
            Err(_) => Err(format!("{what} did not answer within {CHECK_TIMEOUT:?}")),
        }
    };
    let store = state.store.clone();
    let sessions = state.sessions.clone();
    let (storage, session_check) = futures::join!(
        timed(
            "storage",
            Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
        ),
        timed(
            "session store",
            Box::pin(async move { sessions.ping().await.map_err(|e| e.to_string()) })
        ),
    );
    let bus_connected = state.bus.state().borrow().connected;
    let settings = &state.settings;
    let session_backend = match settings.session.store {
        SessionBackend::Memory => "memory",
        SessionBackend::Redis => "redis",
    };
    let bus_backend = match settings.bus.kind {
        BusBackend::Local => "local",
        BusBackend::Nats => "nats",
    };
    let check = |name: &str, backend: &str, result: Result<(), String>| ReadinessCheck {
        name: name.to_owned(),
        backend: backend.to_owned(),
        ok: result.is_ok(),
        error: result.err(),
    };
    let checks = vec![
        check("storage", state.store.backend(), storage),
        check("sessions", session_backend, session_check),
        check(
            "bus",
            bus_backend,
            if bus_connected {
                Ok(())
            } else {
                Err("disconnected".to_owned())
            },
        ),
    ];
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{} ({})", c.name, c.backend))
        .collect();
    if failed.is_empty() {
        return (
            StatusCode::OK,
            Json(Readiness {
                status: "ok".to_owned(),
                code: None,
                message: None,
                checks,
            }),
        );
    }
    tracing::warn!(failed = ?failed, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Readiness {
            status: "unavailable".to_owned(),
            code: Some(ErrorCode::Unavailable),
            message: Some(format!("not ready: {} unreachable", failed.join(", "))),
            checks,
        }),
    )
}

/// The public keys that verify iyagi's access tokens (RFC 7517 JWK set).
#[utoipa::path(get, path = "/v1/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JWK set")))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({ "keys": state.auth.keys().public_jwks() }))
}
