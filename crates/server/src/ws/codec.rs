//! Frames in and out: encoding server frames, reading client frames (what
//! is wrong with one that cannot be handled, its `ref` when it has one),
//! and the close code for a broken socket.

use iyagi_protocol::ErrorCode;
use iyagi_protocol::ws::{CLIENT_FRAME_TYPES, ClientFrame, FrameRef, ServerFrame, close};

use crate::error::ApiError;

/// Parses a client frame, telling malformed JSON, unknown types and bad
/// fields apart.
pub(super) fn parse(text: &str) -> Result<ClientFrame, (ErrorCode, String)> {
    // The common case in one pass; only a bad frame is parsed again, to
    // say what is wrong with it.
    if let Ok(frame) = serde_json::from_str(text) {
        return Ok(frame);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        (
            ErrorCode::MalformedJson,
            format!("frame is not valid JSON: {e}"),
        )
    })?;
    let Some(kind) = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned)
    else {
        return Err((
            ErrorCode::InvalidRequest,
            "a frame must be a JSON object with a string \"type\"".to_owned(),
        ));
    };
    if !CLIENT_FRAME_TYPES.contains(&kind.as_str()) {
        return Err((
            ErrorCode::UnknownFrameType,
            format!("unknown frame type {kind:?}"),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| (ErrorCode::InvalidRequest, format!("bad {kind} frame: {e}")))
}

pub(super) fn error_frame(reference: Option<String>, error: impl Into<ApiError>) -> ServerFrame {
    let error = error.into();
    ServerFrame::Error {
        reference,
        code: error.code,
        message: error.message,
        room_id: None,
    }
}

/// The `ref` of a frame that could not be handled, when it has a string one.
pub(super) fn reference_of(text: &str) -> Option<String> {
    serde_json::from_str::<FrameRef>(text).ok()?.reference
}

/// The close code for a failed read: the peer broke the protocol (1002),
/// sent text that is not UTF-8 (1007) or a frame over the hard limit
/// (1009). `None` when the socket itself is gone.
pub(super) fn close_code_for(error: axum::Error) -> Option<u16> {
    use tungstenite::error::{CapacityError, Error as WsError};
    let cause = error.into_inner();
    match cause.downcast_ref::<WsError>()? {
        WsError::Capacity(CapacityError::MessageTooLong { .. })
        | WsError::Capacity(CapacityError::TooManyHeaders) => Some(close::TOO_BIG),
        WsError::Protocol(_) => Some(close::PROTOCOL_ERROR),
        WsError::Utf8(_) => Some(close::INVALID_DATA),
        _ => None,
    }
}

/// Encodes a server frame for a socket (once, whoever it goes to).
pub(super) fn encode(frame: &ServerFrame) -> bytes::Bytes {
    // Serialising our own enum of strings, numbers and JSON values cannot fail.
    serde_json::to_string(frame).unwrap_or_default().into()
}

/// The `ack` of a stored client message (`send`, `react`).
pub(super) fn ack(reference: Option<String>, sent: iyagi_chat::Sent) -> ServerFrame {
    ServerFrame::Ack {
        reference,
        message: sent.message,
        duplicate: sent.duplicate,
    }
}
