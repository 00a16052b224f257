//! `/v1/auth/*`: register, login, refresh, logout, logout-all; `/v1/me`.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use iyagi_auth::IssuedTokens;
use iyagi_protocol::ErrorBody;
use iyagi_protocol::auth::{
    LoginRequest, RefreshRequest, RegisterRequest, TokenResponse, UserView,
};
use iyagi_store::UserRecord;

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, ClientIp};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/register", post(register))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/logout-all", post(logout_all))
        .route("/v1/me", get(me))
        // Token responses must not be stored by any cache (RFC 6749 §5.1);
        // the other answers here are about credentials too.
        .layer(axum::middleware::map_response(no_store))
}

async fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn user_view(user: UserRecord) -> UserView {
    UserView {
        id: user.id,
        username: user.username,
        created_at: user.created_at_ms,
    }
}

fn token_response(tokens: IssuedTokens) -> TokenResponse {
    TokenResponse {
        access_token: tokens.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: tokens.access_expires_in,
        refresh_token: tokens.refresh_token,
        refresh_expires_in: tokens.refresh_expires_in,
        user_id: tokens.user_id,
        device_id: tokens.device_id,
    }
}

/// Create an account. Usernames are case-insensitive.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = UserView),
    (status = 400, body = ErrorBody, description = "`malformed_json`, `invalid_request`"),
    (status = 409, body = ErrorBody, description = "`username_taken`"),
    (status = 413, body = ErrorBody, description = "`payload_too_large`"),
    (status = 422, body = ErrorBody, description = "`validation_failed`"),
    (status = 429, body = ErrorBody, description = "`rate_limited`"),
))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = state
        .auth
        .register(ip, &body.username, &body.password)
        .await?;
    Ok((StatusCode::CREATED, Json(user_view(user))))
}

/// Log in on a device. Returns an access token and a refresh token bound to
/// that device; logging in again on the same device id replaces its session.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 400, body = ErrorBody, description = "`malformed_json`, `invalid_request`"),
    (status = 401, body = ErrorBody, description = "`invalid_credentials` (unknown user and wrong password alike)"),
    (status = 422, body = ErrorBody, description = "`validation_failed` (device fields)"),
    (status = 429, body = ErrorBody, description = "`rate_limited`, with `Retry-After`"),
))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let tokens = state
        .auth
        .login(
            ip,
            &body.username,
            &body.password,
            &body.device.id,
            body.device.platform.as_str(),
            body.device.name.as_deref(),
        )
        .await?;
    Ok(Json(token_response(tokens)))
}

/// Exchange a refresh token for a new pair. Each refresh token works once:
/// presenting a used one signs the device out (`refresh_token_reused`).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, body = ErrorBody, description = "`invalid_refresh_token`, `refresh_token_reused`"),
))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    Ok(Json(token_response(
        state.auth.refresh(&body.refresh_token).await?,
    )))
}

/// Sign this device out: its tokens stop working at once.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "signed out"),
    (status = 401, body = ErrorBody, description = "`unauthenticated`"),
))]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.auth.logout(&me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign every device of this user out.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "all devices signed out"),
    (status = 401, body = ErrorBody, description = "`unauthenticated`"),
))]
pub async fn logout_all(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<StatusCode, ApiError> {
    state.auth.logout_all(&me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated user.
#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = UserView),
    (status = 401, body = ErrorBody, description = "`unauthenticated`"),
))]
pub async fn me(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(user_view(state.auth.user(me.user_id).await?)))
}
