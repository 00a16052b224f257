//! Where commit hooks hand stored messages for their push decision. A
//! room's messages go to one of a few queues, each drained in order by one
//! task: a room's notifications are recorded in seq order (so the inbox,
//! newest first by id, lists them in message order), while rooms proceed in
//! parallel, and nothing here delays an ack.
//!
//! The queues are unbounded because a commit hook must not block; each job
//! is one message's decision (a session lookup and one store write), so a
//! queue grows only while the store is slower than the messages arriving,
//! as the writer's own queue would.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use iyagi_session::SessionStore;
use iyagi_store::MessageRecord;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::push::{PushMessage, PushNotifier, to_notify};

/// Queues (and tasks) for push decisions.
const SHARDS: usize = 8;

struct Job {
    members: Arc<Vec<Uuid>>,
    message: MessageRecord,
}

pub(crate) struct PushQueue {
    shards: Vec<mpsc::UnboundedSender<Job>>,
}

impl PushQueue {
    /// Starts the tasks on `runtime`; they end when the queue is dropped.
    pub(crate) fn start(
        runtime: &tokio::runtime::Handle,
        sessions: Arc<dyn SessionStore>,
        push: Arc<dyn PushNotifier>,
    ) -> PushQueue {
        let shards = (0..SHARDS)
            .map(|_| {
                let (send, mut jobs) = mpsc::unbounded_channel::<Job>();
                let (sessions, push) = (sessions.clone(), push.clone());
                runtime.spawn(async move {
                    while let Some(job) = jobs.recv().await {
                        decide(sessions.as_ref(), push.as_ref(), &job.members, &job.message).await;
                    }
                });
                send
            })
            .collect();
        PushQueue { shards }
    }

    /// The push decision for `message`, after the ones queued before it
    /// for its room.
    pub(crate) fn submit(&self, members: Arc<Vec<Uuid>>, message: MessageRecord) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        message.room_id.hash(&mut hasher);
        let shard = (hasher.finish() % self.shards.len() as u64) as usize;
        if self.shards[shard].send(Job { members, message }).is_err() {
            tracing::warn!("push decisions stopped; a message goes without its pushes");
        }
    }
}

/// The push decision for one stored message (see [`crate::push`]).
async fn decide(
    sessions: &dyn SessionStore,
    push: &dyn PushNotifier,
    members: &[Uuid],
    message: &MessageRecord,
) {
    let in_room = match sessions.in_room_many(members, message.room_id).await {
        Ok(flags) => flags,
        Err(e) => {
            // Better a push too many than a message nobody hears about.
            tracing::warn!(error = %e, "session store unavailable; notifying every other member");
            vec![false; members.len()]
        }
    };
    let due = to_notify(members, &in_room, message.author_id);
    if due.is_empty() {
        return;
    }
    let push_message = PushMessage {
        room_id: message.room_id,
        message_id: message.id,
        seq: message.seq,
        author_id: message.author_id,
        kind: message.kind.clone(),
        content: message.content.clone(),
    };
    push.notify_many(&push_message, &due).await;
}
