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

use iyagi_chat::{ConnectionEntry, Outbound, RoomFrame, SyncEnd, encode_frame, views};
use iyagi_protocol::ErrorCode;
use iyagi_protocol::chat::CLIENT_MSG_ID_MAX;
use iyagi_protocol::chat::{CONTENT_MAX_BYTES, TEXT_MAX_CHARS};
use iyagi_protocol::ws::{
    CLIENT_FRAME_TYPES, ClientFrame, Limits, SENDS_IN_FLIGHT_MAX, ServerFrame, SyncPosition, close,
};
use iyagi_session::Connection;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;
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
) -> impl Future<Output = ()> + Send + 'static {
    let connection_id = Uuid::now_v7();
    let span = tracing::info_span!("ws", %connection_id, user_id = %principal.user_id, device_id);
    let settings = &state.settings.ws;
    let (sink, stream) = socket.split();
    let (queue, queue_rx) = mpsc::channel(settings.outbound_queue);
    let writer = tokio::spawn(super::writer::run(sink, queue_rx).instrument(span.clone()));
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
    };
    Session::open(session, stream, close_rx, writer).instrument(span)
}

struct Session {
    state: AppState,
    user: Uuid,
    conn: Connection,
    queue: mpsc::Sender<Outbound>,
    viewing: Option<Uuid>,
    limiter: DefaultDirectRateLimiter,
    session_ttl: Duration,
}

impl Session {
    async fn open(
        mut session: Session,
        mut stream: SplitStream<WebSocket>,
        mut close_rx: watch::Receiver<Option<u16>>,
        writer: tokio::task::JoinHandle<()>,
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
            tokio::select! {
                reply = std::future::poll_fn(|cx| poll_reply(&mut in_flight, cx)) => session.frame(*reply),
                // At the pipelining limit, stop reading: TCP pushes back.
                incoming = stream.next(), if in_flight_len(&in_flight) < SENDS_IN_FLIGHT_MAX => match incoming {
                    None | Some(Ok(Message::Close(_))) => break None,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket error");
                        let too_big = e.to_string().to_lowercase().contains("too long")
                            || e.to_string().to_lowercase().contains("too big");
                        break too_big.then_some(close::TOO_BIG);
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
                    let _ = session.queue.try_send(Outbound::Ping);
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
        Box::pin(teardown(state, session, writer, connection_id, close)).await;
    }

    /// Queues a frame for this connection. A full queue means this client
    /// is not reading; the hub's slow-reader rule closes it.
    fn frame(&self, frame: ServerFrame) {
        if self
            .queue
            .try_send(Outbound::frame(encode_frame(&frame)))
            .is_err()
        {
            tracing::debug!("own queue full; dropping a reply");
        }
    }

    fn error(&self, reference: Option<String>, code: ErrorCode, message: impl Into<String>) {
        self.frame(ServerFrame::Error {
            reference,
            code,
            message: message.into(),
        });
    }

    fn api_error(&self, reference: Option<String>, error: impl Into<ApiError>) {
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
                    reference: None,
                    code,
                    message,
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
            ClientFrame::Typing { room_id } => {
                if let Err(e) = chat.typing(user, room_id).await {
                    self.api_error(None, e);
                }
            }
            ClientFrame::View { room_id } => self.view(room_id).await,
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
    async fn view(&mut self, room: Option<Uuid>) {
        let sessions = self.state.chat.sessions().clone();
        if let Some(room) = room
            && let Err(e) = self.state.chat.require_member(self.user, room).await
        {
            return self.api_error(None, e);
        }
        if self.viewing != room {
            if let Some(previous) = self.viewing.take()
                && let Err(e) = sessions.leave_room(self.user, previous, &self.conn).await
            {
                return self.api_error(None, e);
            }
            if let Some(room) = room {
                if let Err(e) = sessions
                    .enter_room(self.user, room, &self.conn, self.session_ttl)
                    .await
                {
                    return self.api_error(None, e);
                }
                self.viewing = Some(room);
            }
        }
        self.frame(ServerFrame::Viewing {
            room_id: self.viewing,
        });
    }

    /// Catch-up (see the writer for how replay and live delivery merge).
    async fn sync(&mut self, reference: Option<String>, positions: Vec<SyncPosition>) {
        let chat = self.state.chat.clone();
        let max_replay = self.state.settings.ws.max_replay;
        let mut plan = Vec::new();
        for position in dedupe(positions) {
            if position.after_seq < 0 {
                self.error(
                    reference.clone(),
                    ErrorCode::ValidationFailed,
                    "after_seq must be 0 or more",
                );
                continue;
            }
            match chat.latest_seq(self.user, position.room_id).await {
                Ok(latest) => plan.push((position, latest)),
                Err(e) => self.api_error(reference.clone(), e),
            }
        }
        // Awaited sends: catch-up is paced by this client's own reading.
        let rooms = plan.iter().map(|(p, _)| p.room_id).collect();
        if self
            .queue
            .send(Outbound::SyncBegin(Box::new(rooms)))
            .await
            .is_err()
        {
            return;
        }
        for (position, latest) in plan {
            let room_id = position.room_id;
            let mut seen_up_to = position.after_seq.min(latest);
            if latest - position.after_seq > max_replay {
                let reload = encode_frame(&ServerFrame::Reload {
                    room_id,
                    latest_seq: latest,
                });
                seen_up_to = latest;
                if self.queue.send(Outbound::frame(reload)).await.is_err() {
                    return;
                }
            } else {
                while seen_up_to < latest {
                    let page = match chat.replay_page(room_id, seen_up_to, REPLAY_PAGE).await {
                        Ok(page) => page,
                        Err(e) => {
                            self.api_error(reference.clone(), e);
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
                        if self
                            .queue
                            .send(Outbound::Replay(Arc::new(RoomFrame {
                                room_id,
                                seq: message.seq,
                                frame,
                            })))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    seen_up_to = last;
                }
            }
            if self
                .queue
                .send(Outbound::SyncEnd(Box::new(SyncEnd {
                    room_id,
                    seen_up_to,
                })))
                .await
                .is_err()
            {
                return;
            }
        }
        match chat.room_states(self.user).await {
            Ok(rooms) => self.frame(ServerFrame::Synced { reference, rooms }),
            Err(e) => self.api_error(reference, e),
        }
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
    writer: tokio::task::JoinHandle<()>,
    connection_id: Uuid,
    close: Option<u16>,
) {
    let user = session.user;
    state.chat.hub().unregister(user, connection_id);
    if let Some(code) = close {
        let _ = session.queue.try_send(Outbound::Close(code));
    }
    let Session {
        queue,
        viewing,
        conn,
        ..
    } = session;
    drop(queue);
    let mut writer = writer;
    // A slow reader's writer may be stuck on a full socket: give it a
    // moment to send the close frame, then drop the socket.
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    match state.chat.sessions().disconnect(user, &conn, viewing).await {
        Ok(true) => {
            announce(&state, user, false).await;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "session store unavailable at disconnect; entries will expire")
        }
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
        let size = future_size(|(socket, state, principal, device): (_, _, _, String)| {
            super::run(socket, state, principal, device)
        });
        eprintln!("connection task future: {size} bytes");
        assert!(
            size < 1400,
            "connection task future is {size} bytes (debug build)"
        );
    }
}
