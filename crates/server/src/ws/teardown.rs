//! The end of a connection, on every exit path: leave the hub, close the
//! writer, remove the session entries, announce "offline" if it was the
//! user's last connection, and finish the closing handshake.

use axum::extract::ws::{Message, WebSocket};
use futures::StreamExt;
use futures::stream::SplitStream;
use uuid::Uuid;

use super::socket::{ClientSocket, Writer};
use crate::state::AppState;

/// Tells the user's contacts they came online or went offline. A failure
/// only costs a presence frame, so it is logged, not raised.
pub(super) async fn announce(state: &AppState, user: Uuid, online: bool) {
    if let Err(e) = state.chat.announce_presence(user, online).await {
        tracing::warn!(error = %e, "presence announcement failed");
    }
}

/// Teardown, on every exit path: leave the hub, stop the writer, remove the
/// session entries, announce "offline" if this was the user's last connection.
pub(super) async fn teardown(
    state: AppState,
    socket: ClientSocket,
    mut stream: SplitStream<WebSocket>,
    writer: Writer,
    connection_id: Uuid,
    close: Option<u16>,
) {
    let user = socket.user;
    state.hub.unregister(user, connection_id);
    // The close goes to the writer on its own channel, so a full queue
    // cannot keep the close frame out; what is still queued is dropped.
    let _ = writer.close.send(close);
    let ClientSocket {
        queue,
        viewing,
        conn,
        ..
    } = socket;
    drop(queue);
    match state.sessions.disconnect(user, &conn, viewing).await {
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
