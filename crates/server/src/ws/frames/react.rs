//! `react`: add or remove a reaction (a marker message); answered by `ack`.

use uuid::Uuid;

use crate::ws::codec::ack;
use crate::ws::socket::ClientSocket;

pub(super) async fn handle(
    socket: &mut ClientSocket,
    reference: Option<String>,
    room_id: Uuid,
    seq: i64,
    emoji: &str,
    remove: bool,
    client_msg_id: Option<&str>,
) {
    let chat = socket.state.chat.clone();
    let result = chat
        .react(
            socket.user,
            &socket.conn.device_id,
            room_id,
            seq,
            emoji,
            remove,
            client_msg_id,
        )
        .await;
    match result {
        Ok(sent) => socket.frame(ack(reference, sent)),
        Err(e) => socket.api_error(reference, e),
    }
}
