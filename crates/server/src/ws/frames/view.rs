//! `view`: the room this connection looks at (its room session); while a
//! device views a room, its user gets no push for it. Answered by `viewing`.

use iyagi_protocol::ws::ServerFrame;
use uuid::Uuid;

use crate::ws::socket::ClientSocket;

pub(super) async fn handle(
    socket: &mut ClientSocket,
    reference: Option<String>,
    room: Option<Uuid>,
) {
    let sessions = socket.state.sessions.clone();
    if let Some(room) = room
        && let Err(e) = socket.state.chat.check_member(socket.user, room).await
    {
        return socket.api_error(reference, e);
    }
    if socket.viewing != room {
        if let Some(previous) = socket.viewing.take()
            && let Err(e) = sessions
                .leave_room(socket.user, previous, &socket.conn)
                .await
        {
            return socket.api_error(reference, e);
        }
        if let Some(room) = room {
            if let Err(e) = sessions
                .enter_room(socket.user, room, &socket.conn, socket.session_ttl)
                .await
            {
                return socket.api_error(reference, e);
            }
            socket.viewing = Some(room);
        }
    }
    socket.frame(ServerFrame::Viewing {
        reference,
        room_id: socket.viewing,
    });
}
