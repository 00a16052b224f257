//! The real-time gateway: `GET /v1/ws`.
//!
//! Each connection is one device's session. The upgrade is authenticated
//! first (bearer header, or `access_token` query parameter for browsers);
//! then [`connection::run`] owns the socket: a reader loop in the
//! connection's task, a writer task fed by a bounded queue, a heartbeat, and
//! teardown on every exit path.

mod codec;
mod connection;
mod delivered;
mod frames;
mod socket;
mod teardown;
mod writer;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use iyagi_auth::validate::DeviceId;
use iyagi_protocol::ErrorCode;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::listener::{AddressSlot, ConnectionPermit};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ws", get(upgrade))
}

#[derive(Debug, Deserialize)]
pub struct WsParams {
    /// For clients that cannot set headers on a WebSocket (browsers).
    access_token: Option<String>,
    /// Required with external OIDC tokens, which carry no device.
    device_id: Option<String>,
}

/// Upgrade to the WebSocket protocol (see docs/protocol.md for the frames).
#[utoipa::path(get, path = "/v1/ws", tag = "realtime",
    security((), ("bearer" = [])),
    params(
        ("access_token" = Option<String>, Query, description = "access token, when the client cannot send Authorization"),
        ("device_id" = Option<String>, Query, description = "device id; needed only with external OIDC tokens"),
        ("Upgrade" = String, Header, description = "`websocket` (RFC 6455; any WebSocket client library sends these four)"),
        ("Connection" = String, Header, description = "`Upgrade`"),
        ("Sec-WebSocket-Version" = String, Header, description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, description = "16 random bytes in base64"),
    ),
    responses(
        (status = 101, description = "switching to WebSocket"),
        (status = 401, body = iyagi_protocol::ErrorBody, description = "`unauthenticated`"),
        (status = 400, body = iyagi_protocol::ErrorBody, description = "`invalid_request`: not a WebSocket upgrade"),
        (status = 429, body = iyagi_protocol::ErrorBody, description = "`too_many_connections`: over the per-user or per-device cap"),
    ))]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<WsParams>,
    slot: Option<Extension<AddressSlot>>,
    permit: Option<Extension<ConnectionPermit>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_owned)
        .or(params.access_token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "missing access token"))?;
    let principal = state.auth.authenticate(token.trim()).await?;
    let device_id = match (&principal.device_id, params.device_id) {
        (Some(device), _) => device.clone(),
        (None, Some(device)) => DeviceId::parse(&device)
            .map_err(iyagi_auth::AuthError::from)?
            .as_str()
            .to_owned(),
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "device_id is required with external tokens",
            ));
        }
    };
    let upgrade = upgrade.map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "this endpoint needs a WebSocket upgrade request",
        )
    })?;
    let ws = &state.settings.ws;
    let (of_user, of_device) = state.hub.connections_of(principal.user_id, &device_id);
    if of_user >= ws.max_connections_per_user || of_device >= ws.max_connections_per_device {
        return Err(ApiError {
            retry_after_secs: Some(1),
            ..ApiError::new(
                ErrorCode::TooManyConnections,
                format!(
                    "at most {} connections per user and {} per device",
                    ws.max_connections_per_user, ws.max_connections_per_device
                ),
            )
        });
    }
    // Authenticated: from here the connection counts per user and device,
    // no longer against its address's cap for unauthenticated ones.
    if let Some(Extension(slot)) = slot {
        slot.release();
    }
    Ok(upgrade
        .max_message_size(ws.hard_max_frame_bytes)
        .max_frame_size(ws.hard_max_frame_bytes)
        // Small socket buffers: most frames are far below 2 KiB, and every
        // idle connection pays for its buffers. Writes collect up to 16 KiB
        // until the writer flushes (when its queue is empty); the buffer
        // only grows on connections that receive bursts.
        .read_buffer_size(ws.read_buffer_bytes)
        .write_buffer_size(16 * 1024)
        // One pointer captured: the upgrade task keeps its callback's
        // captures for the connection's life.
        .on_upgrade({
            // The connection keeps its place under the server's cap.
            let permit = permit.map(|Extension(permit)| permit);
            let setup = Box::new((state, principal, device_id, permit));
            move |socket| {
                let (state, principal, device_id, permit) = *setup;
                connection::run(socket, state, principal, device_id, permit)
            }
        }))
}
