//! `typing`: delivered live to the other members; no answer but errors.

use uuid::Uuid;

use crate::ws::socket::ClientSocket;

pub(super) async fn handle(socket: &mut ClientSocket, reference: Option<String>, room_id: Uuid) {
    let chat = socket.state.chat.clone();
    if let Err(e) = chat.typing(socket.user, room_id).await {
        socket.api_error(reference, e);
    }
}
