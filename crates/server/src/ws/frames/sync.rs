//! `sync`: catch up the listed rooms and go live. The rules (replay or
//! `reload`, membership) are chat's (`ChatService::catch_up`); this module
//! runs them against the connection's writer, which merges the replay with
//! live traffic (see `ws/writer.rs`).

use std::sync::Arc;

use iyagi_bus::{Outbound, RoomFrame, SyncEnd};
use iyagi_chat::{CatchUp, ReplayPlan};
use iyagi_protocol::ws::{ServerFrame, SyncPosition};
use uuid::Uuid;

use crate::ws::codec::encode;
use crate::ws::socket::ClientSocket;

pub(super) async fn handle(
    socket: &mut ClientSocket,
    reference: Option<String>,
    positions: Vec<SyncPosition>,
) {
    let rooms = dedupe(positions);
    // Hold these rooms' live messages back *before* reading how far each
    // room goes (in `catch_up`). A message committed after that read is
    // then held and released after the replay; one committed before it is
    // in the replay. (Read first and hold later, and a message published in
    // between would be neither: dropped as not yet live, or skipped as
    // already seen, and never replayed.)
    let syncing = rooms.iter().map(|p| p.room_id).collect();
    if !socket.enqueue(Outbound::SyncBegin(Box::new(syncing))).await {
        return;
    }
    let chat = socket.state.chat.clone();
    for position in rooms {
        let room_id = position.room_id;
        let seen_up_to = match chat.catch_up(socket.user, position).await {
            Ok(catch_up) => {
                crate::hooks::pause(&socket.state.hooks.sync_after_latest).await;
                match run(socket, reference.clone(), room_id, catch_up).await {
                    Some(seen) => seen,
                    None => return,
                }
            }
            Err(e) => {
                socket.room_error(reference.clone(), room_id, e);
                position.after_seq
            }
        };
        let end = Outbound::SyncEnd(Box::new(SyncEnd {
            room_id,
            seen_up_to,
        }));
        if !socket.enqueue(end).await {
            return;
        }
    }
    match chat.room_states(socket.user).await {
        Ok(rooms) => socket.frame(ServerFrame::Synced { reference, rooms }),
        Err(e) => socket.api_error(reference, e),
    }
}

/// Sends one room's `reload`, or its replay; returns what the client has
/// seen by then, `None` when the connection is closing.
async fn run(
    socket: &mut ClientSocket,
    reference: Option<String>,
    room_id: Uuid,
    catch_up: CatchUp,
) -> Option<i64> {
    let plan = match catch_up {
        CatchUp::Reload { latest_seq } => {
            let reload = encode(&ServerFrame::Reload {
                room_id,
                latest_seq,
            });
            return socket
                .enqueue(Outbound::frame(reload))
                .await
                .then_some(latest_seq);
        }
        CatchUp::Replay(plan) => plan,
    };
    replay(socket, reference, plan).await
}

/// Replays a room page by page up to the plan's latest seq.
async fn replay(
    socket: &mut ClientSocket,
    reference: Option<String>,
    plan: ReplayPlan,
) -> Option<i64> {
    let chat = socket.state.chat.clone();
    let room_id = plan.room_id();
    let mut seen_up_to = plan.from_seq();
    while seen_up_to < plan.latest_seq() {
        let page = match chat.replay_page(&plan, seen_up_to).await {
            Ok(page) => page,
            Err(e) => {
                socket.room_error(reference, room_id, e);
                break;
            }
        };
        let Some(last) = page.last().map(|m| m.seq) else {
            break;
        };
        for message in page {
            let seq = message.seq;
            let frame = encode(&ServerFrame::Message { message });
            let replayed = Outbound::Replay(Arc::new(RoomFrame {
                room_id,
                seq,
                frame,
            }));
            if !socket.enqueue(replayed).await {
                return None;
            }
        }
        seen_up_to = last;
    }
    Some(seen_up_to)
}

/// One position per room: a room listed twice is caught up once, from
/// the lower position.
fn dedupe(mut positions: Vec<SyncPosition>) -> Vec<SyncPosition> {
    positions.sort_by_key(|p| (p.room_id, p.after_seq));
    positions.dedup_by_key(|p| p.room_id);
    positions
}
