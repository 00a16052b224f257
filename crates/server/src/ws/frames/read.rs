//! `read`: a read marker; answered by `read_ack` with the unread count.

use iyagi_protocol::ws::ServerFrame;
use uuid::Uuid;

use crate::ws::socket::ClientSocket;

pub(super) async fn handle(
    socket: &mut ClientSocket,
    reference: Option<String>,
    room_id: Uuid,
    seq: i64,
) {
    let chat = socket.state.chat.clone();
    match chat
        .read(socket.user, &socket.conn.device_id, room_id, seq)
        .await
    {
        Ok(read) => socket.frame(ServerFrame::ReadAck {
            reference,
            room_id,
            read_seq: read.read_seq,
            unread: read.unread,
        }),
        Err(e) => socket.api_error(reference, e),
    }
}
