//! One client's connection as the frame handlers see it, and the answers
//! it owes: queued in order, never dropped (a full queue closes the
//! connection as a slow reader instead).

use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use iyagi_bus::{Outbound, OutboundQueue, Refused};
use iyagi_protocol::ErrorCode;
use iyagi_protocol::ws::{ServerFrame, close};
use iyagi_session::Connection;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::codec::{encode, error_frame};
use crate::error::ApiError;
use crate::listener::ConnectionPermit;
use crate::state::AppState;

/// The connection's writer task and how to tell it to close.
pub(super) struct Writer {
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) close: oneshot::Sender<Option<u16>>,
}

/// One client's connection, as the frame handlers see it. (Not a "session":
/// that word is the device session of `iyagi-auth` and the presence
/// entries of `iyagi-session`.)
pub(super) struct ClientSocket {
    pub(super) state: AppState,
    pub(super) user: Uuid,
    pub(super) conn: Connection,
    pub(super) queue: OutboundQueue,
    /// The room this connection views (`view` frame).
    pub(super) viewing: Option<Uuid>,
    pub(super) limiter: DefaultDirectRateLimiter,
    pub(super) session_ttl: Duration,
    /// Set when this connection must close (its own answers overflowed
    /// its queue); the reader loop stops at its next turn.
    pub(super) closing: Option<u16>,
    /// Its place under `server.max_connections`, for as long as it lives.
    pub(super) _permit: Option<ConnectionPermit>,
}

impl ClientSocket {
    /// Queues a frame for this connection. Every frame is an answer the
    /// client is owed, so it is never dropped: if it does not fit, this
    /// client is not reading, and the connection closes as a slow reader
    /// (4001), which tells the client to reconnect and sync.
    pub(super) fn frame(&mut self, frame: ServerFrame) {
        let queued = self.queue.try_push(Outbound::frame(encode(&frame)));
        if queued == Err(Refused::Full) {
            self.slow_reader();
        }
    }

    pub(super) fn slow_reader(&mut self) {
        if self.closing.is_none() {
            tracing::warn!("own answers overflow the outbound queue: closing slow connection");
            self.state.hub.note_slow_closed();
            self.closing = Some(close::SLOW_CONSUMER);
        }
    }

    /// Queues a catch-up item, waiting while the client reads; false when
    /// the connection is closing (the client stopped reading, or left).
    pub(super) async fn enqueue(&mut self, item: Outbound) -> bool {
        let patience = self.state.settings.ws.heartbeat_timeout();
        match self.queue.push(item, patience).await {
            Ok(()) => true,
            Err(Refused::Full) => {
                self.slow_reader();
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    pub(super) fn error(
        &mut self,
        reference: Option<String>,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        self.frame(ServerFrame::Error {
            reference,
            code,
            message: message.into(),
            room_id: None,
        });
    }

    pub(super) fn api_error(&mut self, reference: Option<String>, error: impl Into<ApiError>) {
        self.frame(error_frame(reference, error));
    }

    /// An error about one room of a frame that names several.
    pub(super) fn room_error(
        &mut self,
        reference: Option<String>,
        room_id: Uuid,
        error: impl Into<ApiError>,
    ) {
        let error = error.into();
        self.frame(ServerFrame::Error {
            reference,
            code: error.code,
            message: format!("room {room_id}: {}", error.message),
            room_id: Some(room_id),
        });
    }
}
