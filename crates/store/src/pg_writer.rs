//! The PostgreSQL append path: one writer task, group commit, and a fixed
//! number of statements per batch.
//!
//! Every statement is a network round trip, so the batch is applied with
//! array parameters (`UNNEST`) instead of statements per message: lock and
//! read the batch's room counters (in room-id order, one lock order for
//! every node), find the retried client ids, resolve read-marker targets,
//! then one insert for the new messages, one update for the counters and
//! one for the read positions. The result is the same as applying
//! `append_in_tx` message by message (the contract suite runs on it).
//!
//! Retries are rare, so a batch is first applied assuming none of its
//! client ids is stored yet (no lookup; the insert skips rows whose client
//! id exists). Only if it skipped one is that transaction rolled back and
//! the batch applied again with the lookup, so seqs stay contiguous.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::batch::{ReadPositions, RoomCounters};
use crate::writer::{
    AppendJob, Drained, MAX_BATCH, WriterCounters, WriterJob, answer_committed, answer_failed,
    split_batch,
};
use crate::{Appended, MessageRecord, ReadEffect, StoreError};

/// The writer: takes every queued append (up to a batch), applies them in
/// one transaction, commits once, then runs the hooks and answers each.
pub(crate) async fn run(
    pool: PgPool,
    mut jobs: mpsc::Receiver<WriterJob>,
    counters: Arc<WriterCounters>,
) {
    let mut drained = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut drained, MAX_BATCH).await > 0 {
        let Drained {
            appends: mut batch,
            side,
            barriers,
        } = split_batch(std::mem::take(&mut drained));
        for job in side {
            // Never queued here: `PgStore` does these on the pool.
            let _ = job.reply.send(Err(StoreError::WriteFailed(
                "the PostgreSQL writer takes appends only".to_owned(),
            )));
        }
        if !batch.is_empty() {
            // Stable: each room's appends keep their queue order, so seqs
            // and hooks follow the order of queueing.
            batch.sort_by_key(|job| job.message.room_id);
            let started = Instant::now();
            let mut outcome = apply(&pool, &batch, Retries::AssumeNone).await;
            // A conflict means the batch retries a stored message: apply it
            // with the lookup. Once more if that conflicts too: a client id
            // stored meanwhile outside the room lock (cannot happen with
            // iyagi's own writers) is then found as a duplicate.
            for _ in 0..2 {
                if !matches!(outcome, Err(StoreError::Conflict)) {
                    break;
                }
                outcome = apply(&pool, &batch, Retries::LookUp).await;
            }
            counters.record(batch.len(), started.elapsed());
            match outcome {
                Ok(results) => answer_committed(batch, results),
                Err(err) => {
                    tracing::error!(error = %err, size = batch.len(), "append batch failed");
                    let unavailable = err.is_unavailable();
                    answer_failed(batch, || {
                        if unavailable {
                            StoreError::Database(sqlx::Error::PoolTimedOut)
                        } else {
                            StoreError::WriteFailed(err.to_string())
                        }
                    });
                }
            }
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

type ClientKey = (Uuid, Uuid, String, String);

/// Whether a batch looks up its client ids before inserting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retries {
    /// No lookup: the insert skips a stored client id, and the batch then
    /// fails with `Conflict` (its seqs assumed that row was new).
    AssumeNone,
    /// Look every client id up first; retries become duplicates.
    LookUp,
}

/// The new messages of a batch, as columns for one `UNNEST` insert.
#[derive(Default)]
struct NewRows {
    id: Vec<Uuid>,
    room_id: Vec<Uuid>,
    seq: Vec<i64>,
    author_id: Vec<Uuid>,
    device_id: Vec<String>,
    client_msg_id: Vec<String>,
    kind: Vec<String>,
    content: Vec<String>,
    created_at_ms: Vec<i64>,
    content_ordinal: Vec<i64>,
}

impl NewRows {
    fn push(&mut self, m: &MessageRecord) {
        self.id.push(m.id);
        self.room_id.push(m.room_id);
        self.seq.push(m.seq);
        self.author_id.push(m.author_id);
        self.device_id.push(m.device_id.clone());
        self.client_msg_id.push(m.client_msg_id.clone());
        self.kind.push(m.kind.clone());
        self.content.push(m.content.clone());
        self.created_at_ms.push(m.created_at_ms);
        self.content_ordinal.push(m.content_ordinal);
    }
}

async fn apply(
    pool: &PgPool,
    batch: &[AppendJob],
    retries: Retries,
) -> Result<Vec<Result<Appended, StoreError>>, StoreError> {
    let mut tx: Transaction<'static, Postgres> = pool.begin().await?;

    // 1. Lock and read the rooms' counters, in id order.
    let mut room_ids: Vec<Uuid> = batch.iter().map(|job| job.message.room_id).collect();
    room_ids.dedup();
    let rows: Vec<(Uuid, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, last_seq, content_count, last_content_seq, last_activity_ms \
         FROM chat_rooms WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&room_ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut rooms: HashMap<Uuid, RoomCounters> = rows
        .into_iter()
        .map(
            |(id, last_seq, content_count, last_content_seq, last_activity_ms)| {
                let counters =
                    RoomCounters::new(last_seq, content_count, last_content_seq, last_activity_ms);
                (id, counters)
            },
        )
        .collect();

    // 2. Client ids already stored: retries.
    let mut stored: HashMap<ClientKey, MessageRecord> = if retries == Retries::AssumeNone {
        HashMap::new()
    } else {
        let (mut r, mut a, mut d, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for job in batch {
            let m = &job.message;
            r.push(m.room_id);
            a.push(m.author_id);
            d.push(m.device_id.clone());
            c.push(m.client_msg_id.clone());
        }
        // One index probe per key: a LATERAL subquery with LIMIT (the key
        // is unique) is never flattened into a join. As a plain join, the
        // planner picked a hash join over the whole messages table while
        // its statistics still described a small table: 30–50 ms per batch
        // at 50,000 messages, growing with the table.
        let found: Vec<MessageRecord> = sqlx::query_as(
            "SELECT m.id, m.room_id, m.seq, m.author_id, m.device_id, m.client_msg_id, m.kind, \
               m.content, m.created_at_ms, m.content_ordinal \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[]) \
               AS k(room_id, author_id, device_id, client_msg_id) \
             CROSS JOIN LATERAL ( \
               SELECT * FROM messages \
               WHERE room_id = k.room_id AND author_id = k.author_id \
                 AND device_id = k.device_id AND client_msg_id = k.client_msg_id \
               LIMIT 1 \
             ) m",
        )
        .bind(&r)
        .bind(&a)
        .bind(&d)
        .bind(&c)
        .fetch_all(&mut *tx)
        .await?;
        found.into_iter().map(|m| (client_key(&m), m)).collect()
    };

    // 3. Read markers' targets that are already stored.
    let mut ordinals: HashMap<(Uuid, i64), i64> = {
        let (mut r, mut s) = (Vec::new(), Vec::new());
        for job in batch {
            if let ReadEffect::UpTo(target) = job.message.read_effect {
                r.push(job.message.room_id);
                s.push(target);
            }
        }
        if r.is_empty() {
            HashMap::new()
        } else {
            // LATERAL for the same reason as the lookup above.
            let found: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                "SELECT m.room_id, m.seq, m.content_ordinal \
                 FROM UNNEST($1::uuid[], $2::int8[]) AS t(room_id, seq) \
                 CROSS JOIN LATERAL ( \
                   SELECT room_id, seq, content_ordinal FROM messages \
                   WHERE room_id = t.room_id AND seq = t.seq \
                   LIMIT 1 \
                 ) m",
            )
            .bind(&r)
            .bind(&s)
            .fetch_all(&mut *tx)
            .await?;
            found.into_iter().map(|(r, s, o)| ((r, s), o)).collect()
        }
    };

    // 4. Sequence the batch in memory, exactly as one by one.
    let mut results = Vec::with_capacity(batch.len());
    let mut new_rows = NewRows::default();
    let mut reads = ReadPositions::default();
    for job in batch {
        let m = &job.message;
        let Some(counters) = rooms.get_mut(&m.room_id) else {
            results.push(Err(StoreError::NotFound));
            continue;
        };
        let key = (
            m.room_id,
            m.author_id,
            m.device_id.clone(),
            m.client_msg_id.clone(),
        );
        if let Some(existing) = stored.get(&key) {
            results.push(Ok(Appended {
                message: existing.clone(),
                duplicate: true,
            }));
            continue;
        }
        let target = match m.read_effect {
            ReadEffect::UpTo(target) => match ordinals.get(&(m.room_id, target)) {
                Some(ordinal) => Some((target, *ordinal)),
                None => {
                    results.push(Err(StoreError::NotFound));
                    continue;
                }
            },
            _ => None,
        };
        let (seq, content_ordinal) = counters.next(m);
        counters.advance(m);
        let record = m.stored_as(seq, content_ordinal);
        new_rows.push(&record);
        ordinals.insert((m.room_id, seq), content_ordinal);
        if let Some(position) = m.read_position(seq, content_ordinal, target) {
            reads.note(m.room_id, m.author_id, position);
        }
        stored.insert(key, record.clone());
        results.push(Ok(Appended {
            message: record,
            duplicate: false,
        }));
    }

    // 5. One insert, one counter update, one read-position update.
    if !new_rows.id.is_empty() {
        let inserted = sqlx::query(
            "INSERT INTO messages (id, room_id, seq, author_id, device_id, client_msg_id, kind, \
               content, created_at_ms, content_ordinal) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::uuid[], $5::text[], \
               $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[]) \
             ON CONFLICT (room_id, author_id, device_id, client_msg_id) DO NOTHING",
        )
        .bind(&new_rows.id)
        .bind(&new_rows.room_id)
        .bind(&new_rows.seq)
        .bind(&new_rows.author_id)
        .bind(&new_rows.device_id)
        .bind(&new_rows.client_msg_id)
        .bind(&new_rows.kind)
        .bind(&new_rows.content)
        .bind(&new_rows.created_at_ms)
        .bind(&new_rows.content_ordinal)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted != new_rows.id.len() as u64 {
            // A skipped row: a retry of a stored message (without the
            // lookup), or a client id stored meanwhile by a writer outside
            // the room lock. The seqs after it are wrong; undo, and the
            // caller applies the batch again with the lookup.
            tx.rollback().await?;
            return Err(StoreError::Conflict);
        }
        let (mut id, mut last, mut count, mut content, mut activity) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (room_id, c) in rooms.iter().filter(|(_, c)| c.changed) {
            id.push(*room_id);
            last.push(c.last_seq);
            count.push(c.content_count);
            content.push(c.last_content_seq);
            activity.push(c.last_activity_ms);
        }
        sqlx::query(
            "UPDATE chat_rooms AS r SET last_seq = u.last_seq, content_count = u.content_count, \
               last_content_seq = u.last_content_seq, last_activity_ms = u.last_activity_ms \
             FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) \
               AS u(id, last_seq, content_count, last_content_seq, last_activity_ms) \
             WHERE r.id = u.id",
        )
        .bind(&id)
        .bind(&last)
        .bind(&count)
        .bind(&content)
        .bind(&activity)
        .execute(&mut *tx)
        .await?;
    }
    if !reads.is_empty() {
        let (mut r, mut u, mut s, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((room_id, user_id), (read_seq, read_count)) in reads.into_positions() {
            r.push(room_id);
            u.push(user_id);
            s.push(read_seq);
            c.push(read_count);
        }
        sqlx::query(
            "UPDATE room_members AS m SET read_seq = u.read_seq, read_count = u.read_count \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::int8[]) \
               AS u(room_id, user_id, read_seq, read_count) \
             WHERE m.room_id = u.room_id AND m.user_id = u.user_id AND m.read_seq < u.read_seq",
        )
        .bind(&r)
        .bind(&u)
        .bind(&s)
        .bind(&c)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(results)
}

fn client_key(m: &MessageRecord) -> ClientKey {
    (
        m.room_id,
        m.author_id,
        m.device_id.clone(),
        m.client_msg_id.clone(),
    )
}
