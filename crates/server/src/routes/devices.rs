//! `/v1/devices`: the caller's devices.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use iyagi_protocol::ErrorBody;
use iyagi_protocol::auth::{DeviceList, DeviceView, Platform};

use crate::error::ApiError;
use crate::extract::{ApiPath, Authenticated};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", get(list))
        .route("/v1/devices/{device_id}", delete(remove))
}

/// Devices that have logged in to this account (revoked sessions included
/// until the device is removed).
#[utoipa::path(get, path = "/v1/devices", tag = "devices", security(("bearer" = [])), responses(
    (status = 200, body = DeviceList),
    (status = 401, body = ErrorBody, description = "`unauthenticated`"),
))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<DeviceList>, ApiError> {
    let devices = state
        .auth
        .devices(&me)
        .await?
        .into_iter()
        .map(|d| DeviceView {
            current: me.device_id.as_deref() == Some(d.device_id.as_str()),
            platform: Platform::parse(&d.platform).unwrap_or(Platform::Other),
            id: d.device_id,
            name: d.display_name,
            created_at: d.created_at_ms,
            last_seen_at: d.last_seen_at_ms,
        })
        .collect();
    Ok(Json(DeviceList { devices }))
}

/// Sign a device out and forget it.
#[utoipa::path(delete, path = "/v1/devices/{device_id}", tag = "devices", security(("bearer" = [])),
    params(("device_id" = String, Path, description = "the device's id")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, body = ErrorBody, description = "`unauthenticated`"),
        (status = 404, body = ErrorBody, description = "`not_found`"),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(device_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.auth.remove_device(&me, &device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
