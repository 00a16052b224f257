//! `/v1/rooms/*` and `/v1/users/*`: rooms, members, history, presence.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use iyagi_protocol::ErrorBody;
use iyagi_protocol::chat::{
    AddMember, CreateDirectRoom, CreateGroupRoom, MessagePage, RoomDetail, RoomList, RoomPresence,
    UserRef,
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/rooms", get(list).post(create_group))
        .route("/v1/rooms/direct", post(open_direct))
        .route("/v1/rooms/{room_id}", get(detail))
        .route("/v1/rooms/{room_id}/members", post(add_member))
        .route(
            "/v1/rooms/{room_id}/members/{user_id}",
            delete(remove_member),
        )
        .route("/v1/rooms/{room_id}/messages", get(history))
        .route("/v1/rooms/{room_id}/presence", get(presence))
        .route("/v1/users/{username}", get(user_by_name))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `next_cursor` of the previous page (`400 invalid_request` for a
    /// cursor this server did not issue).
    #[param(value_type = String, required = false, pattern = "^[0-9]{1,18}\\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
    /// 1 to 200, default 50; out of range: 422 `validation_failed`.
    #[param(value_type = i64, required = false, minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// My rooms, most recent activity first, with last message and unread count.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])), params(ListParams), responses(
    (status = 200, body = RoomList),
    (status = 400, body = ErrorBody, description = "`invalid_request` (bad cursor)"),
    (status = 422, body = ErrorBody, description = "`validation_failed`: `limit` out of range"),
))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<RoomList>, ApiError> {
    Ok(Json(
        state
            .chat
            .room_list(me.user_id, params.cursor.as_deref(), params.limit)
            .await?,
    ))
}

/// Create a group room; the caller becomes its owner.
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])), request_body = CreateGroupRoom, responses(
    (status = 201, body = RoomDetail),
    (status = 404, body = ErrorBody, description = "`not_found`: a member does not exist"),
    (status = 422, body = ErrorBody, description = "`validation_failed`"),
))]
pub async fn create_group(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<CreateGroupRoom>,
) -> Result<(StatusCode, Json<RoomDetail>), ApiError> {
    let room = state
        .chat
        .create_group(me.user_id, &body.title, &body.members)
        .await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// The direct room with another user; the same room every time for the same pair.
#[utoipa::path(post, path = "/v1/rooms/direct", tag = "rooms", security(("bearer" = [])), request_body = CreateDirectRoom, responses(
    (status = 200, body = RoomDetail),
    (status = 404, body = ErrorBody, description = "`not_found`: no such user"),
    (status = 422, body = ErrorBody, description = "`validation_failed`: yourself"),
))]
pub async fn open_direct(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<CreateDirectRoom>,
) -> Result<Json<RoomDetail>, ApiError> {
    Ok(Json(
        state.chat.open_direct(me.user_id, body.user_id).await?,
    ))
}

/// A room with its members.
#[utoipa::path(get, path = "/v1/rooms/{room_id}", tag = "rooms", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)),
    responses((status = 200, body = RoomDetail), (status = 403, body = ErrorBody, description = "`not_a_member`")))]
pub async fn detail(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<RoomDetail>, ApiError> {
    Ok(Json(state.chat.room_detail(me.user_id, room_id).await?))
}

/// Add a member to a group (any member may).
#[utoipa::path(post, path = "/v1/rooms/{room_id}/members", tag = "rooms", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)), request_body = AddMember,
    responses(
        (status = 200, body = RoomDetail),
        (status = 403, body = ErrorBody, description = "`not_a_member`"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such user"),
        (status = 422, body = ErrorBody, description = "`validation_failed`: direct room, or group full"),
    ))]
pub async fn add_member(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<Json<RoomDetail>, ApiError> {
    state
        .chat
        .add_member(me.user_id, room_id, body.user_id)
        .await?;
    Ok(Json(state.chat.room_detail(me.user_id, room_id).await?))
}

/// Remove a member (the owner may remove anyone; anyone may remove themselves, i.e. leave).
#[utoipa::path(delete, path = "/v1/rooms/{room_id}/members/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses(
        (status = 204, description = "removed"),
        (status = 403, body = ErrorBody, description = "`not_a_member`, or `forbidden` (not the owner)"),
        (status = 404, body = ErrorBody, description = "`not_found`: not a member"),
    ))]
pub async fn remove_member(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath((room_id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    state
        .chat
        .remove_member(me.user_id, room_id, user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Newest page below this seq, exclusive (default: the newest page).
    /// With `after_seq` too: the oldest page between the two.
    #[param(value_type = i64, required = false)]
    before_seq: Option<i64>,
    /// Oldest page above this seq, exclusive.
    #[param(value_type = i64, required = false)]
    after_seq: Option<i64>,
    /// 1 to 200, default 50; out of range: 422 `validation_failed`.
    #[param(value_type = i64, required = false, minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A page of the room's messages, ascending by seq.
#[utoipa::path(get, path = "/v1/rooms/{room_id}/messages", tag = "rooms", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), HistoryParams),
    responses(
        (status = 200, body = MessagePage),
        (status = 403, body = ErrorBody, description = "`not_a_member`"),
        (status = 422, body = ErrorBody, description = "`validation_failed`: `limit` out of range"),
    ))]
pub async fn history(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> Result<Json<MessagePage>, ApiError> {
    Ok(Json(
        state
            .chat
            .history(
                me.user_id,
                room_id,
                params.before_seq,
                params.after_seq,
                params.limit,
            )
            .await?,
    ))
}

/// Who of the room's members is online, and who is viewing the room.
#[utoipa::path(get, path = "/v1/rooms/{room_id}/presence", tag = "rooms", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)),
    responses((status = 200, body = RoomPresence), (status = 403, body = ErrorBody, description = "`not_a_member`")))]
pub async fn presence(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Json<RoomPresence>, ApiError> {
    Ok(Json(state.chat.presence(me.user_id, room_id).await?))
}

/// Find a user by username (to start a direct room).
#[utoipa::path(get, path = "/v1/users/{username}", tag = "rooms", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = UserRef), (status = 404, body = ErrorBody, description = "`not_found`")))]
pub async fn user_by_name(
    State(state): State<AppState>,
    Authenticated(_): Authenticated,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<UserRef>, ApiError> {
    Ok(Json(state.chat.user_by_username(&username).await?))
}
