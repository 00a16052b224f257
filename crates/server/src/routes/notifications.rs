//! `/v1/notifications`: the inbox.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use iyagi_protocol::ErrorBody;
use iyagi_protocol::notifications::{MarkNotificationsRead, NotificationList, UnreadNotifications};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/notifications", get(list))
        .route("/v1/notifications/unread", get(unread))
        .route("/v1/notifications/read", post(mark_read))
        .route("/v1/notifications/read-all", post(mark_all_read))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `next_cursor` of the previous page: notifications older than this one.
    #[param(value_type = Uuid, required = false)]
    before: Option<Uuid>,
    /// 1 to 200, default 50; out of range: 422 `validation_failed`.
    #[param(value_type = i64, required = false, minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// My notifications, newest first, with the unread count.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, body = NotificationList),
        (status = 422, body = ErrorBody, description = "`validation_failed`: `limit` out of range"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<NotificationList>, ApiError> {
    let limit = iyagi_chat::page_limit(params.limit)?;
    Ok(Json(
        state
            .push
            .notifications(me.user_id, params.before, limit)
            .await?,
    ))
}

/// How many of my notifications are unread.
#[utoipa::path(get, path = "/v1/notifications/unread", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadNotifications)))]
pub async fn unread(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<UnreadNotifications>, ApiError> {
    Ok(Json(UnreadNotifications {
        unread: state.push.unread_notifications(me.user_id).await?,
    }))
}

/// Marks everything up to a notification read.
#[utoipa::path(post, path = "/v1/notifications/read", tag = "notifications", security(("bearer" = [])),
    request_body = MarkNotificationsRead,
    responses((status = 200, body = UnreadNotifications)))]
pub async fn mark_read(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<MarkNotificationsRead>,
) -> Result<Json<UnreadNotifications>, ApiError> {
    state.push.mark_read(me.user_id, body.up_to).await?;
    unread(State(state), Authenticated(me)).await
}

/// Marks all my notifications read.
#[utoipa::path(post, path = "/v1/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses((status = 204, description = "all read")))]
pub async fn mark_all_read(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.push.mark_all_read(me.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
