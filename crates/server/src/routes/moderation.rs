//! Staff routes: `/v1/moderation/*` (moderators and admins) and
//! `/v1/admin/*` (admins). Every route checks the caller's role in the
//! database on each request.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use iyagi_moderation::StaffService;
use iyagi_protocol::ErrorBody;
use iyagi_protocol::moderation::{AuditLog, ModerationQueue, SetStaffRole, StaffRole};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Authenticated};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/moderation/queue", get(queue))
        .route("/v1/admin/audit", get(audit))
        .route("/v1/admin/staff/{user_id}", put(set_role))
}

/// Stateless over the store: made per request (see `reports.rs`).
fn staff(state: &AppState) -> StaffService {
    StaffService::new(state.store.clone())
}

/// Open reports grouped by target, the longest-waiting first (moderators, admins).
#[utoipa::path(get, path = "/v1/moderation/queue", tag = "moderation", security(("bearer" = [])),
    responses(
        (status = 200, body = ModerationQueue),
        (status = 403, description = "forbidden: not a moderator or admin", body = ErrorBody),
    ))]
pub async fn queue(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<ModerationQueue>, ApiError> {
    let staff = staff(&state);
    staff.require(me.user_id, StaffRole::Moderator).await?;
    Ok(Json(ModerationQueue {
        items: staff.queue(200).await?,
    }))
}

/// The audit log of staff actions, newest first (admins). It is
/// append-only: no route changes it, and the database refuses to.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "moderation", security(("bearer" = [])),
    responses(
        (status = 200, body = AuditLog),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody),
    ))]
pub async fn audit(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<AuditLog>, ApiError> {
    let staff = staff(&state);
    staff.require(me.user_id, StaffRole::Admin).await?;
    Ok(Json(AuditLog {
        entries: staff.audit(200).await?,
    }))
}

/// Grants a user a role, or (`null`) takes it away (admins; audited).
#[utoipa::path(put, path = "/v1/admin/staff/{user_id}", tag = "moderation", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    request_body = SetStaffRole,
    responses(
        (status = 204, description = "set"),
        (status = 403, description = "forbidden: not an admin", body = ErrorBody),
        (status = 404, description = "not_found: no such user", body = ErrorBody),
    ))]
pub async fn set_role(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(user_id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<SetStaffRole>,
) -> Result<StatusCode, ApiError> {
    let staff = staff(&state);
    staff.require(me.user_id, StaffRole::Admin).await?;
    staff
        .set_role(Some(me.user_id), user_id, request.role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
