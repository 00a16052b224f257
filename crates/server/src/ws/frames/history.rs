//! `history`: a page of a room's messages; answered by `history`.

use iyagi_protocol::ws::ServerFrame;
use uuid::Uuid;

use crate::ws::socket::ClientSocket;

pub(super) async fn handle(
    socket: &mut ClientSocket,
    reference: Option<String>,
    room_id: Uuid,
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: Option<i64>,
) {
    let chat = socket.state.chat.clone();
    match chat
        .history(socket.user, room_id, before_seq, after_seq, limit)
        .await
    {
        Ok(page) => socket.frame(ServerFrame::History {
            reference,
            room_id,
            messages: page.messages,
            has_more: page.has_more,
        }),
        Err(e) => socket.api_error(reference, e),
    }
}
