//! The SQLite append path: one OS thread, one rusqlite connection, group commit.
//!
//! Why not sqlx here: sqlx's SQLite driver runs each statement on a worker
//! thread and hands results back through a channel, so an append (four
//! statements) cost eight thread wake-ups; profiles of the pairs benchmark
//! showed most server CPU in the kernel's task switching. This thread takes
//! every queued append (up to a batch), runs the statements synchronously in
//! one `BEGIN IMMEDIATE` transaction, commits once (one fsync for the batch)
//! and only then runs each message's hook and answers its caller.
//!
//! It has the semantics of the shared SQL in `sql/messages.rs` (`append_in_tx`, one
//! message at a time, which PostgreSQL uses) with fewer statements per
//! message (see [`apply`]); the same contract suite runs on both.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use crate::writer::{
    AppendJob, Drained, MAX_BATCH, SideJob, SideWrite, WriterCounters, WriterJob, answer_committed,
    answer_failed, split_batch,
};
use uuid::Uuid;

use crate::batch::{ReadPositions, RoomCounters};
use crate::{
    Appended, MessageRecord, NewDelivery, NewMessage, NotificationRecord, ReadEffect, StoreError,
};

pub(crate) fn spawn(
    path: &Path,
    busy_timeout: Duration,
    queue: usize,
    counters: Arc<WriterCounters>,
) -> Result<mpsc::Sender<WriterJob>, StoreError> {
    let conn = Connection::open(path).map_err(sqlite_error)?;
    conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite_error)?;
    let (jobs_tx, jobs) = mpsc::channel(queue);
    let (done_tx, done) = mpsc::unbounded_channel();
    tokio::spawn(answer_in_order(done));
    std::thread::Builder::new()
        .name("iyagi-sqlite-writer".to_owned())
        .spawn(move || run(conn, jobs, done_tx, &counters))
        .map_err(StoreError::Io)?;
    Ok(jobs_tx)
}

/// A batch the writer has finished with.
struct Finished {
    batch: Vec<AppendJob>,
    side: Vec<SideJob>,
    outcome: Result<Applied, String>,
    barriers: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// What one transaction did: each append's result, each side write's.
struct Applied {
    appends: Vec<Result<Appended, StoreError>>,
    side: Vec<Result<Vec<Uuid>, StoreError>>,
}

/// Runs the hooks and answers the callers of each finished batch, in
/// order, on the async runtime: one hand-off (one wake-up) per batch from
/// the writer thread, instead of one per message and recipient, and the
/// writer starts on the next batch meanwhile.
async fn answer_in_order(mut done: mpsc::UnboundedReceiver<Finished>) {
    while let Some(finished) = done.recv().await {
        match finished.outcome {
            Ok(applied) => {
                answer_committed(finished.batch, applied.appends);
                for (job, result) in finished.side.into_iter().zip(applied.side) {
                    let _ = job.reply.send(result);
                }
            }
            Err(message) => {
                answer_failed(finished.batch, || StoreError::WriteFailed(message.clone()));
                for job in finished.side {
                    let _ = job
                        .reply
                        .send(Err(StoreError::WriteFailed(message.clone())));
                }
            }
        }
        for barrier in finished.barriers {
            let _ = barrier.send(());
        }
    }
}

fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<WriterJob>,
    done: mpsc::UnboundedSender<Finished>,
    counters: &WriterCounters,
) {
    let mut drained = Vec::with_capacity(MAX_BATCH);
    while jobs.blocking_recv_many(&mut drained, MAX_BATCH) > 0 {
        let Drained {
            appends: batch,
            side,
            barriers,
        } = split_batch(std::mem::take(&mut drained));
        let outcome = if batch.is_empty() && side.is_empty() {
            Ok(Applied {
                appends: Vec::new(),
                side: Vec::new(),
            })
        } else {
            let started = Instant::now();
            let outcome = apply(&mut conn, &batch, &side).map_err(|err| {
                tracing::error!(error = %err, size = batch.len(), "append batch failed");
                err.to_string()
            });
            if !batch.is_empty() {
                counters.record(batch.len(), started.elapsed());
            }
            outcome
        };
        let finished = Finished {
            batch,
            side,
            outcome,
            barriers,
        };
        if done.send(finished).is_err() {
            // The runtime is gone: nobody is waiting any more.
            return;
        }
    }
}

/// Applies a batch in one transaction with the semantics of `append_in_tx`
/// applied message by message, in fewer statements: each room's counter
/// row is read once and written once per batch (not once per message),
/// each member's read position is written once per batch (the highest; the
/// `read_seq <` guard makes that equal to applying them in turn), and the
/// idempotency check is the insert itself (`ON CONFLICT DO NOTHING`), with
/// a lookup only for an actual retry.
///
/// Side writes (notifications, outbox claims and finishes) share the
/// transaction (and its fsync), each in its own savepoint: one that fails
/// (a notification's user deleted meanwhile) is answered with its error
/// and takes no message down with it.
fn apply(
    conn: &mut Connection,
    batch: &[AppendJob],
    side: &[SideJob],
) -> Result<Applied, StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    // Prepared once per batch: rusqlite's statement cache allocates each
    // time a statement goes back into it, and this one runs per message.
    let mut insert_message = tx.prepare_cached(INSERT_MESSAGE).map_err(sqlite_error)?;
    let mut rooms: HashMap<Uuid, RoomCounters> = HashMap::new();
    let mut reads = ReadPositions::default();
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        let m = &job.message;
        let counters = match rooms.entry(m.room_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => match room_counters(&tx, m.room_id)? {
                Some(counters) => entry.insert(counters),
                None => {
                    results.push(Err(StoreError::NotFound));
                    continue;
                }
            },
        };
        // A read marker's target is resolved before anything is written.
        let target = match m.read_effect {
            ReadEffect::UpTo(target) => match content_ordinal_at(&tx, m.room_id, target)? {
                Some(ordinal) => Some((target, ordinal)),
                None => {
                    results.push(Err(StoreError::NotFound));
                    continue;
                }
            },
            _ => None,
        };
        let (seq, content_ordinal) = counters.next(m);
        if !insert(&mut insert_message, m, seq, content_ordinal)? {
            // The (room, author, device, client id) exists: a retry.
            let existing = find(&tx, m)?.ok_or_else(|| {
                StoreError::WriteFailed(format!("seq {seq} of room {} is taken", m.room_id))
            })?;
            results.push(Ok(Appended {
                message: existing,
                duplicate: true,
            }));
            continue;
        }
        counters.advance(m);
        if let Some(position) = m.read_position(seq, content_ordinal, target) {
            reads.note(m.room_id, m.author_id, position);
        }
        results.push(Ok(Appended {
            message: m.stored_as(seq, content_ordinal),
            duplicate: false,
        }));
    }
    drop(insert_message);
    for (room_id, counters) in rooms.iter().filter(|(_, c)| c.changed) {
        tx.prepare_cached(
            "UPDATE chat_rooms SET last_seq = ?2, content_count = ?3, last_content_seq = ?4, \
               last_activity_ms = ?5 WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                room_id,
                counters.last_seq,
                counters.content_count,
                counters.last_content_seq,
                counters.last_activity_ms
            ])
        })
        .map_err(sqlite_error)?;
    }
    for ((room_id, user_id), (read_seq, read_count)) in reads.into_positions() {
        tx.prepare_cached(
            "UPDATE room_members SET read_seq = ?3, read_count = ?4 \
             WHERE room_id = ?1 AND user_id = ?2 AND read_seq < ?3",
        )
        .and_then(|mut stmt| stmt.execute(params![room_id, user_id, read_seq, read_count]))
        .map_err(sqlite_error)?;
    }
    let mut stored = Vec::with_capacity(side.len());
    for job in side {
        let mut savepoint = tx.savepoint().map_err(sqlite_error)?;
        let result = side_write(&savepoint, &job.write);
        if result.is_ok() {
            savepoint.commit().map_err(sqlite_error)?;
        } else {
            savepoint.rollback().map_err(sqlite_error)?;
        }
        stored.push(result);
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(Applied {
        appends: results,
        side: stored,
    })
}

fn side_write(conn: &Connection, write: &SideWrite) -> Result<Vec<Uuid>, StoreError> {
    match write {
        SideWrite::Notifications {
            notifications,
            deliveries,
        } => insert_notifications(conn, notifications, deliveries).map(|()| Vec::new()),
        SideWrite::Claim {
            now_ms,
            lease_ms,
            limit,
        } => conn
            .prepare_cached(
                "UPDATE push_deliveries SET claimed_until_ms = ?2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM push_deliveries \
                   WHERE next_attempt_at_ms <= ?1 AND claimed_until_ms <= ?1 \
                   ORDER BY next_attempt_at_ms LIMIT ?3) RETURNING id",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![now_ms, now_ms + lease_ms, limit], |row| row.get(0))?
                    .collect()
            })
            .map_err(sqlite_error),
        SideWrite::Finish { ids } => {
            let mut delete = conn
                .prepare_cached("DELETE FROM push_deliveries WHERE id = ?1")
                .map_err(sqlite_error)?;
            for id in ids {
                delete.execute(params![id]).map_err(sqlite_error)?;
            }
            Ok(Vec::new())
        }
    }
}

fn insert_notifications(
    conn: &Connection,
    notifications: &[NotificationRecord],
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO notifications (id, user_id, kind, room_id, message_id, author_id, seq, payload, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(sqlite_error)?;
    for n in notifications {
        insert
            .execute(params![
                n.id,
                n.user_id,
                n.kind,
                n.room_id,
                n.message_id,
                n.author_id,
                n.seq,
                n.payload,
                n.created_at_ms
            ])
            .map_err(sqlite_error)?;
    }
    let mut insert = conn
        .prepare_cached(concat!(
            "INSERT INTO push_deliveries (id, notification_id, user_id, device_id, provider, collapse_key, next_attempt_at_ms, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            crate::sql::notifications::collapse_into_fresh_delivery!()
        ))
        .map_err(sqlite_error)?;
    for d in deliveries {
        insert
            .execute(params![
                d.id,
                d.notification_id,
                d.user_id,
                d.device_id,
                d.provider.as_str(),
                d.collapse_key,
                d.next_attempt_at_ms
            ])
            .map_err(sqlite_error)?;
    }
    Ok(())
}

fn room_counters(conn: &Connection, room_id: Uuid) -> Result<Option<RoomCounters>, StoreError> {
    conn.prepare_cached(
        "SELECT last_seq, content_count, last_content_seq, last_activity_ms FROM chat_rooms WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![room_id], |row| {
            Ok(RoomCounters::new(
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
            ))
        })
        .optional()
    })
    .map_err(sqlite_error)
}

fn content_ordinal_at(
    conn: &Connection,
    room_id: Uuid,
    seq: i64,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT content_ordinal FROM messages WHERE room_id = ?1 AND seq = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![room_id, seq], |row| row.get(0))
                .optional()
        })
        .map_err(sqlite_error)
}

const INSERT_MESSAGE: &str = "INSERT INTO messages (id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
     ON CONFLICT (room_id, author_id, device_id, client_msg_id) DO NOTHING";

/// Inserts the message at `seq`; `false` when its client id was taken.
fn insert(
    statement: &mut rusqlite::CachedStatement<'_>,
    m: &NewMessage,
    seq: i64,
    content_ordinal: i64,
) -> Result<bool, StoreError> {
    let inserted = statement
        .execute(params![
            m.id,
            m.room_id,
            seq,
            m.author_id,
            m.device_id,
            m.client_msg_id,
            m.kind,
            m.content,
            m.created_at_ms,
            content_ordinal
        ])
        .map_err(sqlite_error)?;
    Ok(inserted == 1)
}

fn find(conn: &Connection, m: &NewMessage) -> Result<Option<MessageRecord>, StoreError> {
    conn.prepare_cached(
        "SELECT id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal \
         FROM messages WHERE room_id = ?1 AND author_id = ?2 AND device_id = ?3 AND client_msg_id = ?4",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![m.room_id, m.author_id, m.device_id, m.client_msg_id], |row| {
            Ok(MessageRecord {
                id: row.get(0)?,
                room_id: row.get(1)?,
                seq: row.get(2)?,
                author_id: row.get(3)?,
                device_id: row.get(4)?,
                client_msg_id: row.get(5)?,
                kind: row.get(6)?,
                content: row.get(7)?,
                created_at_ms: row.get(8)?,
                content_ordinal: row.get(9)?,
            })
        })
        .optional()
    })
    .map_err(sqlite_error)
}

fn sqlite_error(err: rusqlite::Error) -> StoreError {
    match &err {
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict
        }
        _ => StoreError::WriteFailed(err.to_string()),
    }
}
