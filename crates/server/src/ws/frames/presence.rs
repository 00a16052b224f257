//! `presence`: who of a room's members is online and viewing it.

use iyagi_protocol::ws::ServerFrame;
use uuid::Uuid;

use crate::ws::socket::ClientSocket;

pub(super) async fn handle(socket: &mut ClientSocket, reference: Option<String>, room_id: Uuid) {
    let chat = socket.state.chat.clone();
    match chat.presence(socket.user, room_id).await {
        Ok(presence) => socket.frame(ServerFrame::PresenceState {
            reference,
            presence,
        }),
        Err(e) => socket.api_error(reference, e),
    }
}
