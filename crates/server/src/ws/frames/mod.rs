//! What each client frame does, one module per frame type (as mini-redis
//! has one per command), and the dispatcher that keeps their answers in
//! the order of the frames.

mod history;
mod presence;
mod react;
mod read;
mod send;
mod sync;
mod typing;
mod view;

use std::task::{Context, Poll};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use iyagi_protocol::ws::{ClientFrame, ServerFrame};

use super::socket::ClientSocket;

/// Replies to the sends a connection has queued for storage, in the order
/// the sends arrived. Sends are pipelined: the reader queues a send and
/// reads on, so one connection's sends share group commits instead of
/// waiting one commit each. Created on the first send (idle connections
/// do not pay for it).
#[derive(Default)]
pub(super) struct Pipeline(Option<FuturesOrdered<BoxFuture<'static, ServerFrame>>>);

impl Pipeline {
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    /// The next reply of a pipelined send; pending while none is ready.
    pub(super) fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Box<ServerFrame>> {
        match self.0.as_mut().map(|replies| replies.poll_next_unpin(cx)) {
            Some(Poll::Ready(Some(reply))) => Poll::Ready(Box::new(reply)),
            _ => Poll::Pending,
        }
    }

    fn push(&mut self, reply: BoxFuture<'static, ServerFrame>) {
        self.0
            .get_or_insert_with(FuturesOrdered::new)
            .push_back(reply);
    }

    /// Puts an answer behind the pending sends' replies; gives it back
    /// when none is pending (answer it now).
    pub(super) fn queue_behind(&mut self, frame: ServerFrame) -> Option<ServerFrame> {
        match &mut self.0 {
            Some(replies) if !replies.is_empty() => {
                replies.push_back(Box::pin(std::future::ready(frame)));
                None
            }
            _ => Some(frame),
        }
    }

    /// Waits for every pending send's reply, in order.
    async fn drain(&mut self, socket: &mut ClientSocket) {
        if let Some(replies) = &mut self.0 {
            while let Some(reply) = replies.next().await {
                socket.frame(reply);
            }
        }
    }
}

pub(super) async fn dispatch(
    socket: &mut ClientSocket,
    frame: ClientFrame,
    pipeline: &mut Pipeline,
) {
    // Sends are pipelined. Every other frame sees the effects of the sends
    // before it, and its reply comes after theirs.
    if !matches!(frame, ClientFrame::Send { .. }) {
        pipeline.drain(socket).await;
    }
    match frame {
        ClientFrame::Send {
            reference,
            room_id,
            client_msg_id,
            kind,
            content,
        } => {
            let reply =
                send::queue(socket, reference, room_id, &client_msg_id, kind, &content).await;
            pipeline.push(reply);
        }
        ClientFrame::Read {
            reference,
            room_id,
            seq,
        } => read::handle(socket, reference, room_id, seq).await,
        ClientFrame::React {
            reference,
            room_id,
            seq,
            emoji,
            remove,
            client_msg_id,
        } => {
            react::handle(
                socket,
                reference,
                room_id,
                seq,
                &emoji,
                remove,
                client_msg_id.as_deref(),
            )
            .await
        }
        ClientFrame::Typing { reference, room_id } => {
            typing::handle(socket, reference, room_id).await
        }
        ClientFrame::View { reference, room_id } => view::handle(socket, reference, room_id).await,
        ClientFrame::Sync { reference, rooms } => sync::handle(socket, reference, rooms).await,
        ClientFrame::History {
            reference,
            room_id,
            before_seq,
            after_seq,
            limit,
        } => history::handle(socket, reference, room_id, before_seq, after_seq, limit).await,
        ClientFrame::Presence { reference, room_id } => {
            presence::handle(socket, reference, room_id).await
        }
    }
}
