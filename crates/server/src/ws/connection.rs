//! One WebSocket connection: setup, the reader loop, heartbeat, the
//! answers it owes, and teardown on every exit path. What each client frame
//! does is in `frames/`, one module per frame type.

use std::num::NonZeroU32;

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::stream::SplitStream;
use governor::{Quota, RateLimiter};
use iyagi_auth::Principal;
use iyagi_bus::{ConnectionEntry, Outbound, QueueLimits};
use iyagi_protocol::ErrorCode;
use iyagi_protocol::chat::CLIENT_MSG_ID_MAX;
use iyagi_protocol::chat::{CONTENT_MAX_BYTES, TEXT_MAX_CHARS};
use iyagi_protocol::ws::{Limits, SENDS_IN_FLIGHT_MAX, ServerFrame, close};
use iyagi_session::Connection;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::codec::{close_code_for, parse, reference_of};
use super::frames::{self, Pipeline};
use super::socket::{ClientSocket, Writer};
use super::teardown::{announce, teardown};
use crate::listener::ConnectionPermit;
use crate::state::AppState;

/// Sets a connection up and returns its task. The setup is synchronous on
/// purpose: an async fn keeps its arguments (here the whole socket, which
/// moves on into the reader and writer halves) in its future for the
/// connection's life; this way the task holds only what it uses.
pub fn run(
    socket: WebSocket,
    state: AppState,
    principal: Principal,
    device_id: String,
    permit: Option<ConnectionPermit>,
) -> impl Future<Output = ()> + Send + 'static {
    let connection_id = Uuid::now_v7();
    let span = tracing::info_span!("ws", %connection_id, user_id = %principal.user_id, device_id);
    let settings = &state.settings.ws;
    let (sink, stream) = socket.split();
    let (queue, queue_rx) = state.hub.queue(QueueLimits {
        items: settings.outbound_queue,
        bytes: settings.outbound_queue_bytes,
    });
    let (close_writer, writer_closed) = oneshot::channel();
    let writer =
        tokio::spawn(super::writer::run(sink, queue_rx, writer_closed).instrument(span.clone()));
    let (close_tx, close_rx) = watch::channel(None);
    let user = principal.user_id;
    let per_second = NonZeroU32::new(settings.frames_per_second).unwrap_or(NonZeroU32::MIN);
    let session_ttl = settings.session_ttl();
    state.hub.register(
        user,
        ConnectionEntry {
            connection_id,
            device_id: device_id.clone(),
            session_id: principal.session_id,
            queue: queue.clone(),
            close: close_tx,
        },
    );
    state.metrics.ws_connections.inc();
    let socket = ClientSocket {
        state,
        user,
        conn: Connection {
            device_id,
            connection_id,
        },
        queue,
        viewing: None,
        limiter: RateLimiter::direct(Quota::per_second(per_second)),
        session_ttl,
        closing: None,
        _permit: permit,
    };
    let writer = Writer {
        task: writer,
        close: close_writer,
    };
    ClientSocket::open(socket, stream, close_rx, writer).instrument(span)
}

impl ClientSocket {
    async fn open(
        mut socket: ClientSocket,
        mut stream: SplitStream<WebSocket>,
        mut close_rx: watch::Receiver<Option<u16>>,
        writer: Writer,
    ) {
        let state = socket.state.clone();
        let settings = &state.settings.ws;
        let (interval, timeout) = (settings.heartbeat_interval(), settings.heartbeat_timeout());
        let user = socket.user;
        let connection_id = socket.conn.connection_id;
        let device_id = socket.conn.device_id.clone();
        // Setup awaits run once; boxed, they do not enlarge every idle
        // connection's task for its whole life.
        match Box::pin(
            state
                .sessions
                .connect(user, &socket.conn, socket.session_ttl),
        )
        .await
        {
            Ok(true) => Box::pin(announce(&state, user, true)).await,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "session store unavailable at connect"),
        }
        tracing::info!("connected");
        socket.frame(ServerFrame::Ready {
            user_id: user,
            device_id,
            connection_id,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            heartbeat_timeout_ms: settings.heartbeat_timeout_ms,
            limits: Limits {
                max_frame_bytes: settings.max_frame_bytes,
                max_content_bytes: CONTENT_MAX_BYTES,
                max_text_chars: TEXT_MAX_CHARS,
                max_client_msg_id_chars: CLIENT_MSG_ID_MAX,
                send_per_second: settings.frames_per_second,
                max_replay: settings.max_replay,
                max_sends_in_flight: SENDS_IN_FLIGHT_MAX,
            },
        });

        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        // One heap timer for the connection's life, pushed back on every
        // sign of life (rather than a new timer per loop iteration).
        let mut silence_deadline = Box::pin(tokio::time::sleep(interval + timeout));
        let mut in_flight = Pipeline::default();
        let close: Option<u16> = loop {
            if let Some(code) = socket.closing {
                break Some(code);
            }
            tokio::select! {
                reply = std::future::poll_fn(|cx| in_flight.poll_reply(cx)) => socket.frame(*reply),
                // At the pipelining limit, stop reading: TCP pushes back.
                incoming = stream.next(), if in_flight.len() < SENDS_IN_FLIGHT_MAX => match incoming {
                    None | Some(Ok(Message::Close(_))) => break None,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket error");
                        break close_code_for(e);
                    }
                    Some(Ok(message)) => {
                        silence_deadline.as_mut().reset(Instant::now() + interval + timeout);
                        match message {
                            // Boxed: the handler futures (send, sync...) are large,
                            // and inlined they would make every idle connection's
                            // task as large as the largest of them.
                            Message::Text(text) => Box::pin(socket.handle_text(text.as_str(), &mut in_flight)).await,
                            Message::Binary(_) => socket.error(None, ErrorCode::InvalidRequest, "frames must be JSON text"),
                            Message::Ping(_) | Message::Pong(_) => {}
                            Message::Close(_) => break None,
                        }
                    }
                },
                _ = ping.tick() => {
                    // Best effort: a full queue is already being handled as a slow reader.
                    let _ = socket.queue.try_push(Outbound::Ping);
                    if let Err(e) = state.sessions
                        .heartbeat(user, &socket.conn, socket.viewing, socket.session_ttl).await {
                        tracing::warn!(error = %e, "session heartbeat failed");
                    }
                }
                () = &mut silence_deadline => {
                    tracing::info!("heartbeat timeout");
                    break Some(close::HEARTBEAT_TIMEOUT);
                }
                // Slow reader, revoked session, server shutdown (the hub
                // closes every connection then).
                _ = close_rx.changed() => {
                    break Some((*close_rx.borrow()).unwrap_or(close::GOING_AWAY));
                }
            }
        };

        // Teardown, on every exit path.
        Box::pin(teardown(
            state,
            socket,
            stream,
            writer,
            connection_id,
            close,
        ))
        .await;
    }

    async fn handle_text(&mut self, text: &str, in_flight: &mut Pipeline) {
        let max = self.state.settings.ws.max_frame_bytes;
        let refused = if text.len() > max {
            Some((
                ErrorCode::FrameTooLarge,
                format!("frames are limited to {max} bytes"),
            ))
        } else if self.limiter.check().is_err() {
            Some((
                ErrorCode::RateLimited,
                format!(
                    "at most {} frames per second",
                    self.state.settings.ws.frames_per_second
                ),
            ))
        } else {
            None
        };
        let parsed = match refused {
            Some(refusal) => Err(refusal),
            None => parse(text),
        };
        let frame = match parsed {
            Ok(frame) => frame,
            Err((code, message)) => {
                let error = ServerFrame::Error {
                    reference: reference_of(text),
                    code,
                    message,
                    room_id: None,
                };
                // Behind pending sends' replies, to keep replies in order.
                if let Some(error) = in_flight.queue_behind(error) {
                    self.frame(error);
                }
                return;
            }
        };
        self.state.metrics.ws_frames_in.inc();
        frames::dispatch(self, frame, in_flight).await;
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn returns, without calling it.
    fn future_size<Args, F: std::future::Future>(_: impl FnOnce(Args) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle connection holds its task's future; keep it small (the
    /// idle benchmark's memory target is 8 KiB per connection in all).
    #[test]
    fn the_connection_task_stays_small() {
        let size = future_size(
            |(socket, state, principal, device, permit): (_, _, _, String, _)| {
                super::run(socket, state, principal, device, permit)
            },
        );
        eprintln!("connection task future: {size} bytes");
        assert!(
            size < 1400,
            "connection task future is {size} bytes (debug build)"
        );
    }
}
