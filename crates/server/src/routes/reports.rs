//! `/v1/reports`: users report messages, users and rooms.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use iyagi_moderation::{ReportLimits, ReportService};
use iyagi_protocol::ErrorBody;
use iyagi_protocol::moderation::{NewReportRequest, ReportList, ReportView};

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/reports", post(file).get(mine))
}

/// The service is a view over the store (no state of its own), so it is
/// made per request rather than held in `AppState`, which every idle
/// connection's task copies.
fn reports(state: &AppState) -> ReportService {
    ReportService::new(state.store.clone(), ReportLimits::default())
}

/// Reports a message (of a room you are in), a user or a room (you are
/// in). The server keeps a snapshot of the target as it is now. Reporting
/// the same target again updates your report (200) instead of adding one.
#[utoipa::path(post, path = "/v1/reports", tag = "reports", security(("bearer" = [])),
    request_body = NewReportRequest,
    responses(
        (status = 201, body = ReportView, description = "a new report"),
        (status = 200, body = ReportView, description = "your earlier report of this target, updated"),
        (status = 403, description = "not_a_member: a message or room of a room you are not in", body = ErrorBody),
        (status = 404, description = "not_found: no such message or user", body = ErrorBody),
        (status = 422, description = "validation_failed: details too long, reporting yourself", body = ErrorBody),
        (status = 429, description = "rate_limited: 30 reports an hour", body = ErrorBody),
    ))]
pub async fn file(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(request): ApiJson<NewReportRequest>,
) -> Result<(StatusCode, Json<ReportView>), ApiError> {
    let (view, created) = reports(&state).report(me.user_id, &request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// My reports, newest first.
#[utoipa::path(get, path = "/v1/reports", tag = "reports", security(("bearer" = [])),
    responses((status = 200, body = ReportList)))]
pub async fn mine(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<ReportList>, ApiError> {
    Ok(Json(ReportList {
        reports: reports(&state).mine(me.user_id).await?,
    }))
}
