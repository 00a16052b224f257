//! `/v1/media`: uploads (streamed through iyagi, or presigned straight to
//! the bucket and then completed), what an owner sees of them, and
//! downloads for the uploader and the members of the room that holds them.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use iyagi_media::{ByteRange, Download, MediaError, Variant};
use iyagi_protocol::media::{CreateUpload, MediaKind, MediaView, THUMBNAIL_SIZES, UploadTicket};
use iyagi_protocol::{ErrorBody, ErrorCode};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::body::closing;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::state::AppState;

/// The streamed upload route (see `body.rs`: its body is not read first).
pub const UPLOAD_PATH: &str = "/v1/media";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(UPLOAD_PATH, post(upload))
        .route("/v1/media/uploads", post(create_upload))
        .route("/v1/media/{media_id}", get(info))
        .route("/v1/media/{media_id}/complete", post(complete))
        .route("/v1/media/{media_id}/content", get(content))
        .route("/v1/media/{media_id}/thumbnails/{size}", get(thumbnail))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// `image` or `voice`: what you mean to send. Optional; the type is
    /// decided by the bytes, and a file of the other kind is refused (415).
    #[param(value_type = Option<MediaKind>, required = false)]
    kind: Option<String>,
}

/// Uploads an image or a voice file: the raw bytes are the body (any
/// `Content-Type`; the type is decided by the bytes). Images: JPEG, PNG,
/// WebP, GIF; voice: AAC in MP4/M4A. Answers once the file is processed.
#[utoipa::path(post, path = "/v1/media", tag = "media", security(("bearer" = [])),
    params(UploadParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = MediaView),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type: not a supported type, or not the kind asked for", body = ErrorBody),
        (status = 422, description = "media_undecodable, media_limit_exceeded", body = ErrorBody),
        (status = 403, description = "media_quota_exceeded", body = ErrorBody),
        (status = 429, description = "rate_limited: too many uploads this hour", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<UploadParams>,
    request: Request,
) -> Response {
    // Every refusal closes the connection: the body may be unread.
    let (mut parts, body) = request.into_parts();
    let me = match Authenticated::from_request_parts(&mut parts, &state).await {
        Ok(Authenticated(me)) => me,
        Err(e) => return closing(e),
    };
    let kind = match params.kind.as_deref() {
        None => None,
        Some(text) => match MediaKind::parse(text) {
            Some(kind) => Some(kind),
            None => {
                return closing(ApiError::new(
                    ErrorCode::ValidationFailed,
                    "kind must be image or voice",
                ));
            }
        },
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match state
        .media
        .upload(me.user_id, kind, declared, body.into_data_stream())
        .await
    {
        Ok(view) => (StatusCode::CREATED, Json(view)).into_response(),
        Err(e) => closing(e.into()),
    }
}

/// Asks for a presigned upload straight to the bucket (S3 storage only):
/// PUT the bytes to `upload_url`, then `POST /v1/media/{id}/complete`.
#[utoipa::path(post, path = "/v1/media/uploads", tag = "media", security(("bearer" = [])),
    request_body = CreateUpload,
    responses(
        (status = 201, body = UploadTicket),
        (status = 409, description = "presign_unavailable: this server keeps media on its disk", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 403, description = "media_quota_exceeded", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
pub async fn create_upload(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiJson(request): ApiJson<CreateUpload>,
) -> Result<(StatusCode, Json<UploadTicket>), ApiError> {
    let ticket = state.media.create_upload(me.user_id, &request).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// Completes a presigned upload: the uploaded object is checked and
/// processed like a direct upload (and refused the same ways).
#[utoipa::path(post, path = "/v1/media/{media_id}/complete", tag = "media", security(("bearer" = [])),
    params(("media_id" = Uuid, Path)),
    responses(
        (status = 200, body = MediaView),
        (status = 404, description = "media_not_found", body = ErrorBody),
        (status = 409, description = "media_not_ready: nothing was uploaded yet", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "media_undecodable, media_limit_exceeded", body = ErrorBody),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<MediaView>, ApiError> {
    Ok(Json(state.media.complete_upload(me.user_id, id).await?))
}

/// One of my uploads.
#[utoipa::path(get, path = "/v1/media/{media_id}", tag = "media", security(("bearer" = [])),
    params(("media_id" = Uuid, Path)),
    responses(
        (status = 200, body = MediaView),
        (status = 404, description = "media_not_found", body = ErrorBody),
    ))]
pub async fn info(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<MediaView>, ApiError> {
    Ok(Json(state.media.get(me.user_id, id).await?))
}

/// The file: for its uploader and for members of the room whose message
/// uses it. `Range` works (one range); `If-None-Match` answers 304.
#[utoipa::path(get, path = "/v1/media/{media_id}/content", tag = "media", security(("bearer" = [])),
    params(("media_id" = Uuid, Path)),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 206, description = "the range asked for"),
        (status = 304, description = "not modified"),
        (status = 404, description = "media_not_found: no such media, or not yours to see", body = ErrorBody),
        (status = 416, description = "range_not_satisfiable", body = ErrorBody),
    ))]
pub async fn content(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Response {
    serve(&state, me.user_id, id, Variant::Original, &headers).await
}

/// A JPEG thumbnail (`size` 320 or 1280: the long side, never larger than the original).
#[utoipa::path(get, path = "/v1/media/{media_id}/thumbnails/{size}", tag = "media", security(("bearer" = [])),
    params(("media_id" = Uuid, Path), ("size" = u32, Path, description = "320 or 1280")),
    responses(
        (status = 200, description = "the thumbnail", content_type = "image/jpeg"),
        (status = 206, description = "the range asked for"),
        (status = 304, description = "not modified"),
        (status = 404, description = "media_not_found", body = ErrorBody),
        (status = 416, description = "range_not_satisfiable", body = ErrorBody),
    ))]
pub async fn thumbnail(
    State(state): State<AppState>,
    Authenticated(me): Authenticated,
    ApiPath((id, size)): ApiPath<(Uuid, u32)>,
    headers: HeaderMap,
) -> Response {
    if !THUMBNAIL_SIZES.contains(&size) {
        return ApiError::from(MediaError::NotFound).into_response();
    }
    serve(&state, me.user_id, id, Variant::Thumbnail(size), &headers).await
}

async fn serve(
    state: &AppState,
    viewer: Uuid,
    id: Uuid,
    variant: Variant,
    headers: &HeaderMap,
) -> Response {
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(ByteRange::parse);
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    match state
        .media
        .open(viewer, id, variant, range, if_none_match)
        .await
    {
        Ok(download) => respond(download),
        Err(MediaError::RangeNotSatisfiable { size }) => {
            let mut response =
                ApiError::from(MediaError::RangeNotSatisfiable { size }).into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The headers that keep a stored file from ever being taken for a page
/// of our origin: a type from our own list (decided from the bytes),
/// `nosniff`, a sandboxing CSP and a fixed file name.
fn respond(download: Download) -> Response {
    let Download {
        mime,
        size,
        range,
        etag,
        filename,
        body,
    } = download;
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .header(header::ETAG, etag)
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        )
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{filename}\""),
        )
        .header(header::ACCEPT_RANGES, "bytes");
    let Some(body) = body else {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| {
                ApiError::internal(&"a response could not be built").into_response()
            });
    };
    builder = match range {
        Some((start, end)) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
            .header(header::CONTENT_LENGTH, end - start + 1),
        None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size),
    };
    builder
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| ApiError::internal(&"a response could not be built").into_response())
}
