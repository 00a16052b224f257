//! One WebSocket connection: reader loop, heartbeat, dispatch, teardown.

use std::num::NonZeroU32;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, SplitStream};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use iyagi_auth::Principal;
use std::sync::Arc;

use iyagi_bus::{OutboundQueue, QueueLimits, Refused};
use iyagi_chat::{ConnectionEntry, Outbound, RoomFrame, SyncEnd, encode_frame, views};
use iyagi_protocol::ErrorCode;
use iyagi_protocol::chat::CLIENT_MSG_ID_MAX;
use iyagi_protocol::chat::{CONTENT_MAX_BYTES, TEXT_MAX_CHARS};
use iyagi_protocol::ws::{
    CLIENT_FRAME_TYPES, ClientFrame, FrameRef, Limits, SENDS_IN_FLIGHT_MAX, ServerFrame,
    SyncPosition, close,
};
use iyagi_session::Connection;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;
use crate::listener::ConnectionPermit;
use crate::state::AppState;

/// Messages fetched per storage round trip during catch-up.
const REPLAY_PAGE: u32 = 200;

/// Replies to the sends a connection has queued for storage, in the order
/// the sends arrived. Sends are pipelined: the reader queues a send and
/// reads on, so one connection's sends share group commits instead of
/// waiting one commit each. Created on the first send (idle connections
/// do not pay for it).
type InFlight = Option<FuturesOrdered<BoxFuture<'static, ServerFrame>>>;

fn in_flight_len(in_flight: &InFlight) -> usize {
    in_flight.as_ref().map_or(0, FuturesOrdered::len)
}

/// The next reply of a pipelined send; pending while none is ready.
fn poll_reply(in_flight: &mut InFlight, cx: &mut Context<'_>) -> Poll<Box<ServerFrame>> {
    match in_flight
        .as_mut()
        .map(|replies| replies.poll_next_unpin(cx))
    {
        Some(Poll::Ready(Some(reply))) => Poll::Ready(Box::new(reply)),
        _ => Poll::Pending,
    }
}

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
    let (queue, queue_rx) = state.chat.hub().queue(QueueLimits {
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
    state.chat.hub().register(
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
    let session = Session {
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
    Session::open(session, stream, close_rx, writer).instrument(span)
}

/// The connection's writer task and how to tell it to close.
struct Writer {
    task: tokio::task::JoinHandle<()>,
    close: oneshot::Sender<Option<u16>>,
}

struct Session {
    state: AppState,
    user: Uuid,
    conn: Connection,
    queue: OutboundQueue,
    viewing: Option<Uuid>,
    limiter: DefaultDirectRateLimiter,
    session_ttl: Duration,
    /// Set when this connection must close (its own answers overflowed
    /// its queue); the reader loop stops at its next turn.
    closing: Option<u16>,
    /// Its place under `server.max_connections`, for as long as it lives.
    _permit: Option<ConnectionPermit>,
}

impl Session {
    async fn open(
        mut session: Session,
        mut stream: SplitStream<WebSocket>,
        mut close_rx: watch::Receiver<Option<u16>>,
        writer: Writer,
    ) {
        let state = session.state.clone();
        let settings = &state.settings.ws;
        let (interval, timeout) = (settings.heartbeat_interval(), settings.heartbeat_timeout());
        let user = session.user;
        let connection_id = session.conn.connection_id;
        let device_id = session.conn.device_id.clone();
        // Setup awaits run once; boxed, they do not enlarge every idle
        // connection's task for its whole life.
        match Box::pin(
            state
                .chat
                .sessions()
                .connect(user, &session.conn, session.session_ttl),
        )
        .await
        {
            Ok(true) => Box::pin(announce(&state, user, true)).await,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "session store unavailable at connect"),
        }
        tracing::info!("connected");
        session.frame(ServerFrame::Ready {
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
        let mut in_flight: InFlight = None;
        let close: Option<u16> = loop {
            if let Some(code) = session.closing {
                break Some(code);
            }
            tokio::select! {
                reply = std::future::poll_fn(|cx| poll_reply(&mut in_flight, cx)) => session.frame(*reply),
                // At the pipelining limit, stop reading: TCP pushes back.
                incoming = stream.next(), if in_flight_len(&in_flight) < SENDS_IN_FLIGHT_MAX => match incoming {
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
                            Message::Text(text) => Box::pin(session.handle_text(text.as_str(), &mut in_flight)).await,
                            Message::Binary(_) => session.error(None, ErrorCode::InvalidRequest, "frames must be JSON text"),
                            Message::Ping(_) | Message::Pong(_) => {}
                            Message::Close(_) => break None,
                        }
                    }
                },
                _ = ping.tick() => {
                    // Best effort: a full queue is already being handled as a slow reader.
                    let _ = session.queue.try_push(Outbound::Ping);
                    if let Err(e) = state.chat.sessions()
                        .heartbeat(user, &session.conn, session.viewing, session.session_ttl).await {
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
            session,
            stream,
            writer,
            connection_id,
            close,
        ))
        .await;
    }

    /// Queues a frame for this connection. Every frame is an answer the
    /// client is owed, so it is never dropped: if it does not fit, this
    /// client is not reading, and the connection closes as a slow reader
    /// (4001), which tells the client to reconnect and sync.
    fn frame(&mut self, frame: ServerFrame) {
        let queued = self.queue.try_push(Outbound::frame(encode_frame(&frame)));
        if queued == Err(Refused::Full) {
            self.slow_reader();
        }
    }

    fn slow_reader(&mut self) {
        if self.closing.is_none() {
            tracing::warn!("own answers overflow the outbound queue: closing slow connection");
            self.state.chat.hub().note_slow_closed();
            self.closing = Some(close::SLOW_CONSUMER);
        }
    }

    /// Queues a catch-up item, waiting while the client reads; false when
    /// the connection is closing (the client stopped reading, or left).
    async fn enqueue(&mut self, item: Outbound) -> bool {
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

    fn error(&mut self, reference: Option<String>, code: ErrorCode, message: impl Into<String>) {
        self.frame(ServerFrame::Error {
            reference,
            code,
            message: message.into(),
            room_id: None,
        });
    }

    fn api_error(&mut self, reference: Option<String>, error: impl Into<ApiError>) {
        self.frame(error_frame(reference, error));
    }

    async fn handle_text(&mut self, text: &str, in_flight: &mut InFlight) {
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
                return match in_flight {
                    Some(replies) if !replies.is_empty() => {
                        replies.push_back(Box::pin(std::future::ready(error)))
                    }
                    _ => self.frame(error),
                };
            }
        };
        self.state.metrics.ws_frames_in.inc();
        self.dispatch(frame, in_flight).await;
    }

    /// Queues a send for storage; the returned future is its reply (an
    /// ack once committed, or an error).
    async fn queue_send(
        &self,
        reference: Option<String>,
        room_id: Uuid,
        client_msg_id: &str,
        kind: iyagi_protocol::chat::MessageKind,
        content: &serde_json::Value,
    ) -> BoxFuture<'static, ServerFrame> {
        let chat = self.state.chat.clone();
        let queued = chat
            .queue_send(
                self.user,
                &self.conn.device_id,
                room_id,
                client_msg_id,
                kind,
                content,
            )
            .await;
        Box::pin(async move {
            let stored = match queued {
                Ok(pending) => chat.finish_send(pending).await,
                Err(e) => Err(e),
            };
            match stored {
                Ok(appended) => ServerFrame::Ack {
                    reference,
                    message: views::message(&appended.message),
                    duplicate: appended.duplicate,
                },
                Err(e) => error_frame(reference, e),
            }
        })
    }

    async fn dispatch(&mut self, frame: ClientFrame, in_flight: &mut InFlight) {
        let chat = self.state.chat.clone();
        let user = self.user;
        // Sends are pipelined. Every other frame sees the effects of the
        // sends before it, and its reply comes after theirs.
        if !matches!(frame, ClientFrame::Send { .. })
            && let Some(replies) = in_flight
        {
            while let Some(reply) = replies.next().await {
                self.frame(reply);
            }
        }
        match frame {
            ClientFrame::Send {
                reference,
                room_id,
                client_msg_id,
                kind,
                content,
            } => {
                let reply = self
                    .queue_send(reference, room_id, &client_msg_id, kind, &content)
                    .await;
                in_flight
                    .get_or_insert_with(FuturesOrdered::new)
                    .push_back(reply);
            }
            ClientFrame::Read {
                reference,
                room_id,
                seq,
            } => match chat.read(user, &self.conn.device_id, room_id, seq).await {
                Ok(read) => self.frame(ServerFrame::ReadAck {
                    reference,
                    room_id,
                    read_seq: read.read_seq,
                    unread: read.unread,
                }),
                Err(e) => self.api_error(reference, e),
            },
            ClientFrame::React {
                reference,
                room_id,
                seq,
                emoji,
                remove,
                client_msg_id,
            } => {
                let result = chat
                    .react(
                        user,
                        &self.conn.device_id,
                        room_id,
                        seq,
                        &emoji,
                        remove,
                        client_msg_id.as_deref(),
                    )
                    .await;
                match result {
                    Ok(appended) => self.frame(ServerFrame::Ack {
                        reference,
                        message: views::message(&appended.message),
                        duplicate: appended.duplicate,
                    }),
                    Err(e) => self.api_error(reference, e),
                }
            }
            ClientFrame::Typing { reference, room_id } => {
                if let Err(e) = chat.typing(user, room_id).await {
                    self.api_error(reference, e);
                }
            }
            ClientFrame::View { reference, room_id } => self.view(reference, room_id).await,
            ClientFrame::Sync { reference, rooms } => self.sync(reference, rooms).await,
            ClientFrame::History {
                reference,
                room_id,
                before_seq,
                after_seq,
                limit,
            } => {
                match chat
                    .history(user, room_id, before_seq, after_seq, limit)
                    .await
                {
                    Ok(page) => self.frame(ServerFrame::History {
                        reference,
                        room_id,
                        messages: page.messages,
                        has_more: page.has_more,
                    }),
                    Err(e) => self.api_error(reference, e),
                }
            }
            ClientFrame::Presence { reference, room_id } => {
                match chat.presence(user, room_id).await {
                    Ok(presence) => self.frame(ServerFrame::PresenceState {
                        reference,
                        presence,
                    }),
                    Err(e) => self.api_error(reference, e),
                }
            }
        }
    }

    /// Moves this connection's room view.
    async fn view(&mut self, reference: Option<String>, room: Option<Uuid>) {
        let sessions = self.state.chat.sessions().clone();
        if let Some(room) = room
            && let Err(e) = self.state.chat.require_member(self.user, room).await
        {
            return self.api_error(reference, e);
        }
        if self.viewing != room {
            if let Some(previous) = self.viewing.take()
                && let Err(e) = sessions.leave_room(self.user, previous, &self.conn).await
            {
                return self.api_error(reference, e);
            }
            if let Some(room) = room {
                if let Err(e) = sessions
                    .enter_room(self.user, room, &self.conn, self.session_ttl)
                    .await
                {
                    return self.api_error(reference, e);
                }
                self.viewing = Some(room);
            }
        }
        self.frame(ServerFrame::Viewing {
            reference,
            room_id: self.viewing,
        });
    }

    /// Catch-up (see the writer for how replay and live delivery merge).
    async fn sync(&mut self, reference: Option<String>, positions: Vec<SyncPosition>) {
        let mut rooms = Vec::new();
        for position in dedupe(positions) {
            if position.after_seq < 0 {
                self.room_error(
                    reference.clone(),
                    position.room_id,
                    ApiError::new(ErrorCode::ValidationFailed, "after_seq must be 0 or more"),
                );
            } else {
                rooms.push(position);
            }
        }
        // Hold these rooms' live messages back *before* reading how far
        // each room goes. A message committed after that read is then held
        // and released after the replay; one committed before it is in the
        // replay. (Read first and hold later, and a message published in
        // between would be neither: dropped as not yet live, or skipped as
        // already seen, and never replayed.)
        let syncing = rooms.iter().map(|p| p.room_id).collect();
        if !self.enqueue(Outbound::SyncBegin(Box::new(syncing))).await {
            return;
        }
        for position in rooms {
            let room_id = position.room_id;
            let seen_up_to = match self.state.chat.latest_seq(self.user, room_id).await {
                Ok(latest) => {
                    crate::hooks::pause(&self.state.hooks.sync_after_latest).await;
                    match self.replay(reference.clone(), position, latest).await {
                        Some(seen) => seen,
                        None => return,
                    }
                }
                Err(e) => {
                    self.room_error(reference.clone(), room_id, e);
                    position.after_seq
                }
            };
            let end = Outbound::SyncEnd(Box::new(SyncEnd {
                room_id,
                seen_up_to,
            }));
            if !self.enqueue(end).await {
                return;
            }
        }
        match self.state.chat.room_states(self.user).await {
            Ok(rooms) => self.frame(ServerFrame::Synced { reference, rooms }),
            Err(e) => self.api_error(reference, e),
        }
    }

    /// Replays one room from its sync position up to `latest` (or sends
    /// `reload`); returns what the client has seen by then, `None` when
    /// the connection is closing.
    async fn replay(
        &mut self,
        reference: Option<String>,
        position: SyncPosition,
        latest: i64,
    ) -> Option<i64> {
        let chat = self.state.chat.clone();
        let room_id = position.room_id;
        if latest - position.after_seq > self.state.settings.ws.max_replay {
            let reload = encode_frame(&ServerFrame::Reload {
                room_id,
                latest_seq: latest,
            });
            return self
                .enqueue(Outbound::frame(reload))
                .await
                .then_some(latest);
        }
        // A position beyond the room's end counts as its end.
        let mut seen_up_to = position.after_seq.min(latest);
        while seen_up_to < latest {
            let page = match chat.replay_page(room_id, seen_up_to, REPLAY_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    self.room_error(reference, room_id, e);
                    break;
                }
            };
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            for message in &page {
                let frame = encode_frame(&ServerFrame::Message {
                    message: views::message(message),
                });
                let replayed = Outbound::Replay(Arc::new(RoomFrame {
                    room_id,
                    seq: message.seq,
                    frame,
                }));
                if !self.enqueue(replayed).await {
                    return None;
                }
            }
            seen_up_to = last;
        }
        Some(seen_up_to)
    }

    /// An error about one room of a frame that names several.
    fn room_error(&mut self, reference: Option<String>, room_id: Uuid, error: impl Into<ApiError>) {
        let error = error.into();
        self.frame(ServerFrame::Error {
            reference,
            code: error.code,
            message: format!("room {room_id}: {}", error.message),
            room_id: Some(room_id),
        });
    }
}

/// Tells the user's contacts they came online or went offline. A failure
/// only costs a presence frame, so it is logged, not raised.
async fn announce(state: &AppState, user: Uuid, online: bool) {
    if let Err(e) = state.chat.announce_presence(user, online).await {
        tracing::warn!(error = %e, "presence announcement failed");
    }
}

/// Teardown, on every exit path: leave the hub, stop the writer, remove the
/// session entries, announce "offline" if this was the user's last connection.
async fn teardown(
    state: AppState,
    session: Session,
    mut stream: SplitStream<WebSocket>,
    writer: Writer,
    connection_id: Uuid,
    close: Option<u16>,
) {
    let user = session.user;
    state.chat.hub().unregister(user, connection_id);
    // The close goes to the writer on its own channel, so a full queue
    // cannot keep the close frame out; what is still queued is dropped.
    let _ = writer.close.send(close);
    let Session {
        queue,
        viewing,
        conn,
        ..
    } = session;
    drop(queue);
    match state.chat.sessions().disconnect(user, &conn, viewing).await {
        Ok(true) => {
            announce(&state, user, false).await;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable at disconnect; entries will expire")
        }
    }
    // The closing handshake: the writer sends the close frame after what
    // it already handed to the socket (a slow reader's writer waits for the
    // client to read), while this side reads and discards until the
    // client's own close frame. Dropping a socket with unread input makes
    // the kernel reset the connection, and the client would lose the close
    // frame and the answers before it. Past the heartbeat timeout the
    // socket is dropped anyway.
    let mut task = writer.task;
    let drain = async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let handshake = async { futures::join!(drain, &mut task) };
    if tokio::time::timeout(state.settings.ws.heartbeat_timeout(), handshake)
        .await
        .is_err()
    {
        task.abort();
    }
    tracing::info!(close_code = close, "disconnected");
    // Last: shutdown waits for this gauge to reach zero before closing storage.
    state.metrics.ws_connections.dec();
}

fn dedupe(mut positions: Vec<SyncPosition>) -> Vec<SyncPosition> {
    positions.sort_by_key(|p| (p.room_id, p.after_seq));
    positions.dedup_by_key(|p| p.room_id);
    positions
}

/// Parses a client frame, telling malformed JSON, unknown types and bad
/// fields apart.
fn parse(text: &str) -> Result<ClientFrame, (ErrorCode, String)> {
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

fn error_frame(reference: Option<String>, error: impl Into<ApiError>) -> ServerFrame {
    let error = error.into();
    ServerFrame::Error {
        reference,
        code: error.code,
        message: error.message,
        room_id: None,
    }
}

/// The `ref` of a frame that could not be handled, when it has a string one.
fn reference_of(text: &str) -> Option<String> {
    serde_json::from_str::<FrameRef>(text).ok()?.reference
}

/// The close code for a failed read: the peer broke the protocol (1002),
/// sent text that is not UTF-8 (1007) or a frame over the hard limit
/// (1009). `None` when the socket itself is gone.
fn close_code_for(error: axum::Error) -> Option<u16> {
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
