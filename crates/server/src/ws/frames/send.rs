//! `send`: store and deliver a message; answered by `ack` once committed.

use futures::future::BoxFuture;
use iyagi_protocol::chat::MessageKind;
use iyagi_protocol::ws::ServerFrame;
use uuid::Uuid;

use crate::ws::codec::{ack, error_frame};
use crate::ws::socket::ClientSocket;

/// Queues the send for storage; the returned future is its answer (an
/// `ack` once committed, or an error), for the pipeline.
pub(super) async fn queue(
    socket: &ClientSocket,
    reference: Option<String>,
    room_id: Uuid,
    client_msg_id: &str,
    kind: MessageKind,
    content: &serde_json::Value,
) -> BoxFuture<'static, ServerFrame> {
    let chat = socket.state.chat.clone();
    let queued = chat
        .queue_send(
            socket.user,
            &socket.conn.device_id,
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
            Ok(sent) => ack(reference, sent),
            Err(e) => error_frame(reference, e),
        }
    })
}
