//! `/v1/push/*`: this device's push registrations and the Web Push key;
//! `/v1/me/preferences` (push previews); `/v1/rooms/{room_id}/mute`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use iyagi_protocol::notifications::{
    ApnsRegistration, FcmRegistration, Preferences, RegistrationList, RoomMute, VapidPublicKey,
    WebPushRegistration,
};
use iyagi_protocol::{ErrorBody, ErrorCode};
use iyagi_push::NewRegistration;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Authenticated};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/push/registrations", get(list))
        .route(
            "/v1/push/registrations/fcm",
            put(register_fcm).delete(unregister_fcm),
        )
        .route(
            "/v1/push/registrations/apns",
            put(register_apns).delete(unregister_apns),
        )
        .route(
            "/v1/push/registrations/webpush",
            put(register_webpush).delete(unregister_webpush),
        )
        .route(
            "/v1/push/registrations/{provider}",
            put(unknown_provider).delete(unknown_provider),
        )
        .route("/v1/push/webpush/vapid-public-key", get(vapid_public_key))
        .route("/v1/me/preferences", get(preferences).put(set_preferences))
        .route("/v1/rooms/{room_id}/mute", put(mute).delete(unmute))
}

/// The caller's device: push registrations belong to a device session.
fn device(me: &iyagi_auth::Principal) -> Result<&str, ApiError> {
    me.device_id.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ValidationFailed,
            "push registrations need a device session (log in to iyagi with a device)",
        )
    })
}

/// The push registrations of all of the caller's devices.
#[utoipa::path(get, path = "/v1/push/registrations", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = RegistrationList)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<RegistrationList>, ApiError> {
    Ok(Json(RegistrationList {
        registrations: state.push.registrations(me.user_id).await?,
    }))
}

async fn register(
    state: &AppState,
    me: &iyagi_auth::Principal,
    registration: NewRegistration,
) -> Result<StatusCode, ApiError> {
    let allow_insecure = state.settings.push.webpush.allow_insecure_endpoints;
    state
        .push
        .register(me.user_id, device(me)?, registration, allow_insecure)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers this device with FCM (replaces its earlier FCM token).
#[utoipa::path(put, path = "/v1/push/registrations/fcm", tag = "push", security(("bearer" = [])),
    request_body = FcmRegistration,
    responses(
        (status = 204, description = "registered"),
        (status = 422, body = ErrorBody, description = "`invalid_push_token`, `validation_failed` (no device session)"),
    ))]
pub async fn register_fcm(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<FcmRegistration>,
) -> Result<StatusCode, ApiError> {
    register(&state, &me, NewRegistration::Fcm { token: body.token }).await
}

/// Registers this device with APNs (token-based; the app's bundle id is the topic).
#[utoipa::path(put, path = "/v1/push/registrations/apns", tag = "push", security(("bearer" = [])),
    request_body = ApnsRegistration,
    responses(
        (status = 204, description = "registered"),
        (status = 422, body = ErrorBody, description = "`invalid_push_token`, `validation_failed` (topic, no device session)"),
    ))]
pub async fn register_apns(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<ApnsRegistration>,
) -> Result<StatusCode, ApiError> {
    register(
        &state,
        &me,
        NewRegistration::Apns {
            token: body.token,
            topic: body.topic,
        },
    )
    .await
}

/// Registers this browser's `PushSubscription` (Web Push).
#[utoipa::path(put, path = "/v1/push/registrations/webpush", tag = "push", security(("bearer" = [])),
    request_body = WebPushRegistration,
    responses(
        (status = 204, description = "registered"),
        (status = 422, body = ErrorBody, description = "`insecure_push_endpoint`, `invalid_push_keys`, `invalid_push_token`, `validation_failed`"),
    ))]
pub async fn register_webpush(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<WebPushRegistration>,
) -> Result<StatusCode, ApiError> {
    register(
        &state,
        &me,
        NewRegistration::WebPush {
            endpoint: body.endpoint,
            p256dh: body.keys.p256dh,
            auth: body.keys.auth,
        },
    )
    .await
}

async fn unregister(
    state: &AppState,
    me: &iyagi_auth::Principal,
    provider: iyagi_store::PushProvider,
) -> Result<StatusCode, ApiError> {
    state
        .push
        .unregister(me.user_id, device(me)?, provider)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes this device's FCM registration (204 also when there was none).
#[utoipa::path(delete, path = "/v1/push/registrations/fcm", tag = "push", security(("bearer" = [])),
    responses((status = 204, description = "removed")))]
pub async fn unregister_fcm(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<StatusCode, ApiError> {
    unregister(&state, &me, iyagi_store::PushProvider::Fcm).await
}

/// Removes this device's APNs registration (204 also when there was none).
#[utoipa::path(delete, path = "/v1/push/registrations/apns", tag = "push", security(("bearer" = [])),
    responses((status = 204, description = "removed")))]
pub async fn unregister_apns(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<StatusCode, ApiError> {
    unregister(&state, &me, iyagi_store::PushProvider::Apns).await
}

/// Removes this device's Web Push registration (204 also when there was none).
#[utoipa::path(delete, path = "/v1/push/registrations/webpush", tag = "push", security(("bearer" = [])),
    responses((status = 204, description = "removed")))]
pub async fn unregister_webpush(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<StatusCode, ApiError> {
    unregister(&state, &me, iyagi_store::PushProvider::WebPush).await
}

/// Any other provider name: 404 `unknown_push_provider` (docs/protocol.md).
/// Not in the OpenAPI document: a path parameter that means "anything but
/// the three routes above" cannot be said in it, and this is the error
/// answer of a route that does not exist rather than an operation.
pub async fn unknown_provider(
    Authenticated(_): Authenticated,
    ApiPath(provider): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    Err(iyagi_push::provider(&provider)
        .map(|_| ())
        .err()
        .map_or_else(
            || ApiError::new(ErrorCode::UnknownPushProvider, "unknown push provider"),
            ApiError::from,
        ))
}

/// The server's VAPID public key, for `PushManager.subscribe({applicationServerKey})`.
#[utoipa::path(get, path = "/v1/push/webpush/vapid-public-key", tag = "push",
    responses((status = 200, body = VapidPublicKey)))]
pub async fn vapid_public_key(State(state): State<AppState>) -> Json<VapidPublicKey> {
    Json(VapidPublicKey {
        public_key: state.push.vapid_public_key().to_owned(),
    })
}

/// The caller's preferences.
#[utoipa::path(get, path = "/v1/me/preferences", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
pub async fn preferences(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<Preferences>, ApiError> {
    Ok(Json(Preferences {
        push_previews: state.push.push_previews(me.user_id).await?,
    }))
}

/// Sets the caller's preferences.
#[utoipa::path(put, path = "/v1/me/preferences", tag = "push", security(("bearer" = [])),
    request_body = Preferences, responses((status = 200, body = Preferences)))]
pub async fn set_preferences(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(body): ApiJson<Preferences>,
) -> Result<Json<Preferences>, ApiError> {
    state
        .push
        .set_push_previews(me.user_id, body.push_previews)
        .await?;
    Ok(Json(body))
}

/// Mutes the room's pushes for the caller (until a time, or until unmuted).
/// Unread counts are not affected.
#[utoipa::path(put, path = "/v1/rooms/{room_id}/mute", tag = "push", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)), request_body = RoomMute,
    responses(
        (status = 204, description = "muted"),
        (status = 403, body = ErrorBody, description = "`not_a_member`"),
    ))]
pub async fn mute(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(room_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RoomMute>,
) -> Result<StatusCode, ApiError> {
    state.push.mute(me.user_id, room_id, body.until).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unmutes the room for the caller.
#[utoipa::path(delete, path = "/v1/rooms/{room_id}/mute", tag = "push", security(("bearer" = [])),
    params(("room_id" = Uuid, Path)),
    responses(
        (status = 204, description = "unmuted"),
        (status = 403, body = ErrorBody, description = "`not_a_member`"),
    ))]
pub async fn unmute(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    state.push.unmute(me.user_id, room_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
