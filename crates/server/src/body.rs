//! Request bodies are read whole, with a deadline, before any handler runs.
//!
//! Handlers refuse many requests before they would read the body (no token,
//! wrong content type...). A body left unread, or still arriving, when the
//! response goes out makes hyper drop the keep-alive connection after the
//! response, and the client's next request on it fails with a broken pipe.
//! Read first, and every answer leaves the connection usable. Reading first
//! is also where the body's deadline and size limit are enforced, with
//! protocol errors: bodies are small (`server.max_body_bytes`), so holding
//! one in memory costs nothing a handler would not spend anyway.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use iyagi_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn read_first(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_streamed(&request) {
        // A media upload is streamed to its spool file by its handler,
        // under the media limits (up to tens of MB, never held whole in
        // memory); that handler closes the connection when it answers
        // before the body is read.
        return next.run(request).await;
    }
    let settings = &state.settings.server;
    let limit = settings.max_body_bytes;
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if declared.unwrap_or(0) == 0 && !chunked {
        return next.run(request).await;
    }
    if declared.is_some_and(|len| len > limit as u64) {
        return closing(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request bodies are limited to {limit} bytes"),
        ));
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(
        settings.body_read_timeout(),
        Limited::new(body, limit).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return closing(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request bodies are limited to {limit} bytes"),
            ));
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "request body could not be read");
            return closing(ApiError::new(
                ErrorCode::InvalidRequest,
                "the request body could not be read",
            ));
        }
        Err(_) => {
            return closing(ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    settings.body_read_timeout_ms
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The routes whose bodies their handlers stream: `POST /v1/media`.
fn is_streamed(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request.uri().path() == crate::routes::media::UPLOAD_PATH
}

/// An error after which the connection cannot be reused (the rest of the
/// body was not read): the client is told so.
pub(crate) fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
