//! The SQLite append path: one OS thread, one rusqlite connection, group commit.
//!
//! Why not sqlx here: sqlx's SQLite driver runs each statement on a worker
//! thread and hands results back through a channel, so an append (four
//! statements) cost eight thread wake-ups; profiles of the pairs benchmark
//! showed most server CPU in the kernel's task switching. This thread takes
//! every queued append (up to a batch), runs the statements synchronously in
//! one `BEGIN IMMEDIATE` transaction, commits once (one fsync for the batch)
//! and only then answers each caller. It keeps the exact semantics of the
//! shared SQL in `sql.rs` (`append_in_tx`), and the same contract suite runs
//! on it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;

use crate::sql::{AppendJob, MAX_BATCH};
use crate::{Appended, MessageRecord, NewMessage, ReadEffect, StoreError};

pub(crate) fn spawn(
    path: &Path,
    busy_timeout: Duration,
    queue: usize,
) -> Result<mpsc::Sender<AppendJob>, StoreError> {
    let conn = Connection::open(path).map_err(sqlite_error)?;
    conn.busy_timeout(busy_timeout).map_err(sqlite_error)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite_error)?;
    let (jobs_tx, jobs) = mpsc::channel(queue);
    std::thread::Builder::new()
        .name("iyagi-sqlite-writer".to_owned())
        .spawn(move || run(conn, jobs))
        .map_err(StoreError::Io)?;
    Ok(jobs_tx)
}

fn run(mut conn: Connection, mut jobs: mpsc::Receiver<AppendJob>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match apply(&mut conn, &batch) {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, size = batch.len(), "append batch failed");
                let message = err.to_string();
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(StoreError::WriteFailed(message.clone())));
                }
            }
        }
    }
}

fn apply(
    conn: &mut Connection,
    batch: &[AppendJob],
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        if let Some(existing) = find(&tx, &job.message)? {
            results.push(Ok(Appended {
                message: existing,
                duplicate: true,
            }));
            continue;
        }
        match append(&tx, &job.message) {
            Ok(stored) => results.push(Ok(Appended {
                message: stored,
                duplicate: false,
            })),
            // Raised before anything of this message was written.
            Err(StoreError::NotFound) => results.push(Err(StoreError::NotFound)),
            Err(err) => return Err(err),
        }
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(results)
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

/// The same steps as `append_in_tx` in `sql.rs`.
fn append(conn: &Connection, m: &NewMessage) -> Result<MessageRecord, StoreError> {
    let target = match m.read_effect {
        ReadEffect::UpTo(target) => {
            let ordinal: Option<i64> = conn
                .prepare_cached(
                    "SELECT content_ordinal FROM messages WHERE room_id = ?1 AND seq = ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_row(params![m.room_id, target], |row| row.get(0))
                        .optional()
                })
                .map_err(sqlite_error)?;
            Some((target, ordinal.ok_or(StoreError::NotFound)?))
        }
        _ => None,
    };
    let counters: Option<(i64, i64)> = conn
        .prepare_cached(
            "UPDATE chat_rooms SET last_seq = last_seq + 1, \
               content_count = content_count + ?2, \
               last_content_seq = CASE WHEN ?2 = 1 THEN last_seq + 1 ELSE last_content_seq END, \
               last_activity_ms = COALESCE(?3, last_activity_ms) \
             WHERE id = ?1 RETURNING last_seq, content_count",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    m.room_id,
                    i64::from(m.is_content),
                    m.bumps_activity.then_some(m.created_at_ms)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
        .map_err(sqlite_error)?;
    let (seq, content_ordinal) = counters.ok_or(StoreError::NotFound)?;
    conn.prepare_cached(
        "INSERT INTO messages (id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
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
    })
    .map_err(sqlite_error)?;
    let read_to = match m.read_effect {
        ReadEffect::None => None,
        ReadEffect::UpToSelf => Some((seq, content_ordinal)),
        ReadEffect::UpTo(_) => target,
    };
    if let Some((read_seq, read_count)) = read_to {
        conn.prepare_cached(
            "UPDATE room_members SET read_seq = ?3, read_count = ?4 \
             WHERE room_id = ?1 AND user_id = ?2 AND read_seq < ?3",
        )
        .and_then(|mut stmt| stmt.execute(params![m.room_id, m.author_id, read_seq, read_count]))
        .map_err(sqlite_error)?;
    }
    Ok(MessageRecord {
        id: m.id,
        room_id: m.room_id,
        seq,
        author_id: m.author_id,
        device_id: m.device_id.clone(),
        client_msg_id: m.client_msg_id.clone(),
        kind: m.kind.clone(),
        content: m.content.clone(),
        created_at_ms: m.created_at_ms,
        content_ordinal,
    })
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
