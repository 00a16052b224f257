//! The SQL behind [`crate::Storage`], written once for SQLite and PostgreSQL.
//!
//! Both backends accept `$1`-style placeholders, `RETURNING` and
//! `ON CONFLICT`, and the schema keeps to types both map the same way (UUIDs,
//! BIGINT milliseconds, TEXT, bytes). So the implementation is one macro
//! body instantiated per pool type: a query fixed for one backend is fixed
//! for both. The only per-backend code is how to open the pool and how to
//! begin a write transaction.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::*;

pub(crate) fn writer_stopped() -> StoreError {
    StoreError::WriteFailed("the writer has stopped".to_owned())
}

/// Appends waiting for the writer.
const APPEND_QUEUE: usize = 8192;
/// Appends committed together at most.
pub(crate) const MAX_BATCH: usize = 512;

/// One queued append, waiting for its batch to commit.
pub(crate) struct AppendJob {
    pub(crate) message: NewMessage,
    pub(crate) on_commit: Option<OnCommit>,
    pub(crate) reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// What the writer (SQLite thread or PostgreSQL task) is asked to do.
pub(crate) enum WriterJob {
    Append(AppendJob),
    /// Answered once every append queued before it has committed (or
    /// failed) and its hook has run.
    Barrier(oneshot::Sender<()>),
}

/// The append writer's running totals (see [`AppendStats`]), shared by the
/// writer, which adds to them once per batch, and the store, which reads them.
#[derive(Debug, Default)]
pub(crate) struct WriterCounters {
    commits: AtomicU64,
    appends: AtomicU64,
    busy_micros: AtomicU64,
}

impl WriterCounters {
    /// One batch of `appends` applied in `busy` (committed or failed).
    pub(crate) fn record(&self, appends: usize, busy: std::time::Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends as u64, Ordering::Relaxed);
        let micros = u64::try_from(busy.as_micros()).unwrap_or(u64::MAX);
        self.busy_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AppendStats {
        AppendStats {
            commits: self.commits.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            busy_seconds: self.busy_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Splits a drained batch into its appends and its barriers. A barrier
/// only promises "everything queued before me", so answering it after the
/// whole batch is correct.
pub(crate) fn split_batch(jobs: Vec<WriterJob>) -> (Vec<AppendJob>, Vec<oneshot::Sender<()>>) {
    let mut appends = Vec::with_capacity(jobs.len());
    let mut barriers = Vec::new();
    for job in jobs {
        match job {
            WriterJob::Append(append) => appends.push(append),
            WriterJob::Barrier(done) => barriers.push(done),
        }
    }
    (appends, barriers)
}

/// After a commit: runs each stored message's hook, in batch order (which
/// is seq order within each room), then answers its caller.
pub(crate) fn answer_committed(batch: Vec<AppendJob>, results: Vec<Result<Appended, StoreError>>) {
    for (job, result) in batch.into_iter().zip(results) {
        if let (Some(hook), Ok(appended)) = (job.on_commit, &result) {
            // A panicking hook must not take the writer (and every later
            // append) down with it.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(appended))).is_err() {
                tracing::error!(message_id = %appended.message.id, "commit hook panicked");
            }
        }
        let _ = job.reply.send(result);
    }
}

/// After a failed batch: every caller gets the error; no hook runs.
pub(crate) fn answer_failed(batch: Vec<AppendJob>, error: impl Fn() -> StoreError) {
    for job in batch {
        let _ = job.reply.send(Err(error()));
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The embedded backend: one SQLite file in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    appender: mpsc::Sender<WriterJob>,
    writer_counters: Arc<WriterCounters>,
}

impl SqliteStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout);
        let filename = connect.get_filename().to_path_buf();
        if let Some(parent) = connect.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        let writer_counters = Arc::new(WriterCounters::default());
        let appender = crate::sqlite_writer::spawn(
            &filename,
            options.acquire_timeout,
            APPEND_QUEUE,
            writer_counters.clone(),
        )?;
        Ok(SqliteStore {
            pool,
            appender,
            writer_counters,
        })
    }

    /// Write transactions take SQLite's write lock up front. A deferred
    /// transaction that reads and then writes can fail with SQLITE_BUSY when
    /// another writer committed in between, and busy_timeout does not retry
    /// that case; IMMEDIATE makes writers queue on the lock instead.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Self::begin_write_on(&self.pool).await
    }

    async fn begin_write_on(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The production backend.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    appender: mpsc::Sender<WriterJob>,
    writer_counters: Arc<WriterCounters>,
}

impl PgStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
        let connect = PgConnectOptions::from_str(url)?;
        let servers = Arc::new(crate::pg_nodelay::server_addresses(&connect).await);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |_, _| {
                let servers = servers.clone();
                Box::pin(async move {
                    if !servers.is_empty() {
                        // Best effort: a failed scan leaves Nagle on, as before.
                        let _ =
                            tokio::task::spawn_blocking(move || crate::pg_nodelay::apply(&servers))
                                .await;
                    }
                    Ok(())
                })
            })
            .connect_with(connect)
            .await?;
        // sqlx holds a PostgreSQL advisory lock while migrating, so several
        // nodes starting at once apply each migration exactly once.
        POSTGRES_MIGRATIONS.run(&pool).await?;
        let (appender, jobs) = mpsc::channel(APPEND_QUEUE);
        let writer_counters = Arc::new(WriterCounters::default());
        tokio::spawn(crate::pg_writer::run(
            pool.clone(),
            jobs,
            writer_counters.clone(),
        ));
        Ok(PgStore {
            pool,
            appender,
            writer_counters,
        })
    }

    /// Row locks taken by the statements themselves (UPDATE ... RETURNING)
    /// serialise the writers that must be serialised.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Self::begin_write_on(&self.pool).await
    }

    async fn begin_write_on(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(pool.begin().await?)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

macro_rules! room_columns {
    () => {
        "id, kind, title, direct_key, created_at_ms, last_seq, content_count, last_content_seq, last_activity_ms"
    };
}

macro_rules! member_columns {
    () => {
        "id, room_id, user_id, role, created_at_ms, read_seq, read_count"
    };
}

macro_rules! message_columns {
    () => {
        "id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal"
    };
}

macro_rules! impl_storage {
    ($store:ty, $db:ty, $pool:ty, $backend:literal) => {
        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, external_issuer, external_subject, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user.id)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(&user.external_issuer)
                .bind(&user.external_subject)
                .bind(user.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(UserRecord {
                    id: user.id,
                    username: user.username.clone(),
                    password_hash: user.password_hash.clone(),
                    external_issuer: user.external_issuer.clone(),
                    external_subject: user.external_subject.clone(),
                    created_at_ms: user.created_at_ms,
                })
            }

            async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, username, password_hash, external_issuer, external_subject, created_at_ms \
                     FROM users WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, username, password_hash, external_issuer, external_subject, created_at_ms \
                     FROM users WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn user_by_external(
                &self,
                issuer: &str,
                subject: &str,
            ) -> Result<Option<UserRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, username, password_hash, external_issuer, external_subject, created_at_ms \
                     FROM users WHERE external_issuer = $1 AND external_subject = $2",
                )
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?)
            }
        }

        #[async_trait]
        impl DeviceStore for $store {
            async fn record_login(&self, login: &NewLogin) -> Result<RecordedLogin, StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO devices (user_id, device_id, platform, display_name, created_at_ms, last_seen_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (user_id, device_id) DO UPDATE SET \
                       platform = excluded.platform, display_name = excluded.display_name, \
                       last_seen_at_ms = excluded.last_seen_at_ms",
                )
                .bind(login.user_id)
                .bind(&login.device_id)
                .bind(&login.platform)
                .bind(&login.display_name)
                .bind(login.now_ms)
                .execute(&mut *tx)
                .await?;
                // One live session per device: a new login replaces the old one.
                let replaced: Vec<(Uuid,)> = sqlx::query_as(
                    "UPDATE device_sessions SET revoked_at_ms = $3, revoke_reason = 'replaced_by_login' \
                     WHERE user_id = $1 AND device_id = $2 AND revoked_at_ms IS NULL RETURNING id",
                )
                .bind(login.user_id)
                .bind(&login.device_id)
                .bind(login.now_ms)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO device_sessions (id, user_id, device_id, created_at_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(login.session_id)
                .bind(login.user_id)
                .bind(&login.device_id)
                .bind(login.now_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&login.refresh_token_hash)
                .bind(login.session_id)
                .bind(login.now_ms)
                .bind(login.refresh_expires_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                let session = SessionRecord {
                    id: login.session_id,
                    user_id: login.user_id,
                    device_id: login.device_id.clone(),
                    created_at_ms: login.now_ms,
                    revoked_at_ms: None,
                    revoke_reason: None,
                };
                Ok(RecordedLogin { session, replaced: replaced.into_iter().map(|(id,)| id).collect() })
            }

            async fn rotate_refresh_token(&self, rotation: &Rotation) -> Result<RotateOutcome, StoreError> {
                let mut tx = self.begin_write().await?;
                let found: Option<(Uuid, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT session_id, expires_at_ms, rotated_at_ms FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(&rotation.presented_hash)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((session_id, expires_at_ms, rotated_at_ms)) = found else {
                    return Ok(RotateOutcome::Invalid);
                };
                let session: SessionRecord = sqlx::query_as(
                    "SELECT id, user_id, device_id, created_at_ms, revoked_at_ms, revoke_reason \
                     FROM device_sessions WHERE id = $1",
                )
                .bind(session_id)
                .fetch_one(&mut *tx)
                .await?;
                if !session.is_active() {
                    return Ok(RotateOutcome::Invalid);
                }
                // The guarded UPDATE is the race-free test for "already
                // rotated": of two concurrent uses of one token, exactly one
                // matches `rotated_at_ms IS NULL`.
                let rotated_now = rotated_at_ms.is_none()
                    && sqlx::query(
                        "UPDATE refresh_tokens SET rotated_at_ms = $2 \
                         WHERE token_hash = $1 AND rotated_at_ms IS NULL",
                    )
                    .bind(&rotation.presented_hash)
                    .bind(rotation.now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                if !rotated_now {
                    sqlx::query(
                        "UPDATE device_sessions SET revoked_at_ms = $2, revoke_reason = 'refresh_token_reused' \
                         WHERE id = $1 AND revoked_at_ms IS NULL",
                    )
                    .bind(session_id)
                    .bind(rotation.now_ms)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    let revoked = SessionRecord {
                        revoked_at_ms: Some(rotation.now_ms),
                        revoke_reason: Some("refresh_token_reused".to_owned()),
                        ..session
                    };
                    return Ok(RotateOutcome::Reused(revoked));
                }
                if expires_at_ms <= rotation.now_ms {
                    // Dropping the transaction rolls the rotation back.
                    return Ok(RotateOutcome::Invalid);
                }
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&rotation.new_hash)
                .bind(session_id)
                .bind(rotation.now_ms)
                .bind(rotation.new_expires_at_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE devices SET last_seen_at_ms = $3 WHERE user_id = $1 AND device_id = $2")
                    .bind(session.user_id)
                    .bind(&session.device_id)
                    .bind(rotation.now_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RotateOutcome::Rotated(session))
            }

            async fn session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, user_id, device_id, created_at_ms, revoked_at_ms, revoke_reason \
                     FROM device_sessions WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn live_sessions(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
                let mut live = Vec::new();
                // Chunked: both backends limit the number of bound parameters.
                for chunk in ids.chunks(500) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT id FROM device_sessions WHERE revoked_at_ms IS NULL AND id IN (",
                    );
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    query.push(")");
                    let rows: Vec<(Uuid,)> = query.build_query_as().fetch_all(&self.pool).await?;
                    live.extend(rows.into_iter().map(|(id,)| id));
                }
                Ok(live)
            }

            async fn revoke_session(&self, id: Uuid, reason: &str, now_ms: i64) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE device_sessions SET revoked_at_ms = $2, revoke_reason = $3 \
                     WHERE id = $1 AND revoked_at_ms IS NULL",
                )
                .bind(id)
                .bind(now_ms)
                .bind(reason)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_user_sessions(
                &self,
                user_id: Uuid,
                reason: &str,
                now_ms: i64,
            ) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "UPDATE device_sessions SET revoked_at_ms = $2, revoke_reason = $3 \
                     WHERE user_id = $1 AND revoked_at_ms IS NULL",
                )
                .bind(user_id)
                .bind(now_ms)
                .bind(reason)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn devices(&self, user_id: Uuid) -> Result<Vec<DeviceRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT user_id, device_id, platform, display_name, created_at_ms, last_seen_at_ms \
                     FROM devices WHERE user_id = $1 ORDER BY created_at_ms, device_id",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn remove_device(
                &self,
                user_id: Uuid,
                device_id: &str,
                now_ms: i64,
            ) -> Result<Option<Vec<Uuid>>, StoreError> {
                let mut tx = self.begin_write().await?;
                let deleted = sqlx::query("DELETE FROM devices WHERE user_id = $1 AND device_id = $2")
                    .bind(user_id)
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() == 0 {
                    return Ok(None);
                }
                let revoked: Vec<(Uuid,)> = sqlx::query_as(
                    "UPDATE device_sessions SET revoked_at_ms = $3, revoke_reason = 'device_removed' \
                     WHERE user_id = $1 AND device_id = $2 AND revoked_at_ms IS NULL RETURNING id",
                )
                .bind(user_id)
                .bind(device_id)
                .bind(now_ms)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(revoked.into_iter().map(|(id,)| id).collect()))
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT kid, algorithm, private_der, created_at_ms FROM signing_keys ORDER BY created_at_ms, kid",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO signing_keys (kid, algorithm, private_der, created_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kid) DO NOTHING",
                )
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.private_der)
                .bind(key.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait]
        impl RoomStore for $store {
            async fn create_room(&self, room: &NewRoom) -> Result<CreatedRoom, StoreError> {
                let mut tx = self.begin_write().await?;
                if let Some(key) = &room.direct_key {
                    let existing: Option<RoomRecord> =
                        sqlx::query_as(concat!("SELECT ", room_columns!(), " FROM chat_rooms WHERE direct_key = $1"))
                            .bind(key)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some(existing) = existing {
                        return Ok(CreatedRoom { room: existing, created: false });
                    }
                }
                let inserted = sqlx::query(
                    "INSERT INTO chat_rooms (id, kind, title, direct_key, created_at_ms, last_activity_ms) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(room.id)
                .bind(&room.kind)
                .bind(&room.title)
                .bind(&room.direct_key)
                .bind(room.created_at_ms)
                .execute(&mut *tx)
                .await;
                match inserted.map_err(StoreError::from) {
                    Ok(_) => {}
                    // A concurrent creator of the same direct room won: use theirs.
                    Err(StoreError::Conflict) if room.direct_key.is_some() => {
                        drop(tx);
                        let existing: RoomRecord =
                            sqlx::query_as(concat!("SELECT ", room_columns!(), " FROM chat_rooms WHERE direct_key = $1"))
                                .bind(&room.direct_key)
                                .fetch_one(&self.pool)
                                .await?;
                        return Ok(CreatedRoom { room: existing, created: false });
                    }
                    Err(err) => return Err(err),
                }
                for (user_id, role) in &room.members {
                    insert_member(&mut tx, room.id, *user_id, role, room.created_at_ms).await?;
                }
                append_in_tx(&mut tx, &room.first_message).await?;
                let created: RoomRecord =
                    sqlx::query_as(concat!("SELECT ", room_columns!(), " FROM chat_rooms WHERE id = $1"))
                        .bind(room.id)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(CreatedRoom { room: created, created: true })
            }

            async fn room(&self, id: Uuid) -> Result<Option<RoomRecord>, StoreError> {
                Ok(sqlx::query_as(concat!("SELECT ", room_columns!(), " FROM chat_rooms WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn member(&self, room_id: Uuid, user_id: Uuid) -> Result<Option<MemberRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", member_columns!(), " FROM room_members WHERE room_id = $1 AND user_id = $2"
                ))
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn members(&self, room_id: Uuid) -> Result<Vec<MemberRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", member_columns!(), " FROM room_members WHERE room_id = $1 ORDER BY created_at_ms, user_id"
                ))
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn named_members(&self, room_id: Uuid) -> Result<Vec<NamedMember>, StoreError> {
                let rows: Vec<(Uuid, Uuid, Uuid, String, i64, i64, i64, String)> = sqlx::query_as(
                    "SELECT m.id, m.room_id, m.user_id, m.role, m.created_at_ms, m.read_seq, m.read_count, u.username \
                     FROM room_members m JOIN users u ON u.id = m.user_id \
                     WHERE m.room_id = $1 ORDER BY m.created_at_ms, m.user_id",
                )
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, room_id, user_id, role, created_at_ms, read_seq, read_count, username)| NamedMember {
                        member: MemberRecord { id, room_id, user_id, role, created_at_ms, read_seq, read_count },
                        username,
                    })
                    .collect())
            }

            async fn change_membership(&self, change: &MembershipChange) -> Result<Option<MessageRecord>, StoreError> {
                let mut tx = self.begin_write().await?;
                // Lock the room row first (SQLite's write transaction
                // already excludes other writers; on PostgreSQL this row
                // lock serialises changes to one room), so the member count
                // read below cannot change before this transaction commits.
                let locked = sqlx::query("UPDATE chat_rooms SET last_seq = last_seq WHERE id = $1")
                    .bind(change.room_id)
                    .execute(&mut *tx)
                    .await?;
                if locked.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                let changed = match &change.add_as {
                    Some(role) => {
                        if let Some(max) = change.max_members {
                            let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM room_members WHERE room_id = $1")
                                .bind(change.room_id)
                                .fetch_one(&mut *tx)
                                .await?;
                            let already: Option<(Uuid,)> = sqlx::query_as("SELECT user_id FROM room_members WHERE room_id = $1 AND user_id = $2")
                                .bind(change.room_id)
                                .bind(change.user_id)
                                .fetch_optional(&mut *tx)
                                .await?;
                            if already.is_none() && count >= i64::from(max) {
                                return Err(StoreError::LimitReached);
                            }
                        }
                        match insert_member(&mut tx, change.room_id, change.user_id, role, change.message.created_at_ms).await {
                            Ok(()) => true,
                            Err(StoreError::Conflict) => false,
                            Err(err) => return Err(err),
                        }
                    }
                    None => {
                        sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
                            .bind(change.room_id)
                            .bind(change.user_id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                            == 1
                    }
                };
                if !changed {
                    return Ok(None);
                }
                if let Some(new_owner) = change.promote {
                    sqlx::query("UPDATE room_members SET role = 'owner' WHERE room_id = $1 AND user_id = $2")
                        .bind(change.room_id)
                        .bind(new_owner)
                        .execute(&mut *tx)
                        .await?;
                }
                let message = append_in_tx(&mut tx, &change.message).await?;
                if change.add_as.is_some() {
                    // A new member has read nothing yet and has nothing
                    // unread: their read position starts at their join.
                    sqlx::query(
                        "UPDATE room_members SET read_seq = $3, read_count = $4 WHERE room_id = $1 AND user_id = $2",
                    )
                    .bind(change.room_id)
                    .bind(change.user_id)
                    .bind(message.seq)
                    .bind(message.content_ordinal)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Some(message))
            }

            async fn rooms_for_user(
                &self,
                user_id: Uuid,
                after: Option<(i64, Uuid)>,
                limit: u32,
            ) -> Result<Vec<RoomListEntry>, StoreError> {
                // Without a cursor, start above every possible position.
                let (cursor_ms, cursor_id) = after.unwrap_or((i64::MAX, Uuid::max()));
                let rows: Vec<RoomListRow> = sqlx::query_as(
                    "SELECT r.id, r.kind, r.title, r.direct_key, r.created_at_ms, r.last_seq, r.content_count, \
                            r.last_content_seq, r.last_activity_ms, m.role, m.read_seq, m.read_count, \
                            (SELECT pm.user_id FROM room_members pm WHERE r.kind = 'direct' AND pm.room_id = r.id AND pm.user_id <> $1 LIMIT 1) AS peer_id, \
                            (SELECT u.username FROM room_members pm JOIN users u ON u.id = pm.user_id \
                               WHERE r.kind = 'direct' AND pm.room_id = r.id AND pm.user_id <> $1 LIMIT 1) AS peer_name, \
                            lm.id AS lm_id, lm.seq AS lm_seq, lm.author_id AS lm_author_id, lm.device_id AS lm_device_id, \
                            lm.client_msg_id AS lm_client_msg_id, lm.kind AS lm_kind, lm.content AS lm_content, \
                            lm.created_at_ms AS lm_created_at_ms, lm.content_ordinal AS lm_content_ordinal \
                     FROM room_members m \
                     JOIN chat_rooms r ON r.id = m.room_id \
                     LEFT JOIN messages lm ON lm.room_id = r.id AND lm.seq = r.last_content_seq \
                     WHERE m.user_id = $1 AND (r.last_activity_ms < $2 OR (r.last_activity_ms = $2 AND r.id < $3)) \
                     ORDER BY r.last_activity_ms DESC, r.id DESC LIMIT $4",
                )
                .bind(user_id)
                .bind(cursor_ms)
                .bind(cursor_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(RoomListRow::into_entry).collect())
            }

            async fn contacts(
                &self,
                user_id: Uuid,
                max_group_members: u32,
            ) -> Result<Vec<Uuid>, StoreError> {
                // The rooms first (materialised, so the size check runs once
                // per room, not per member row), each group's size counted
                // only up to the limit + 1: a 10,000-member group costs as
                // much to rule out as a group one over the limit.
                let rows: Vec<(Uuid,)> = sqlx::query_as(
                    "WITH small_rooms AS MATERIALIZED ( \
                       SELECT mine.room_id FROM room_members mine \
                       JOIN chat_rooms r ON r.id = mine.room_id \
                       WHERE mine.user_id = $1 AND (r.kind = 'direct' OR ( \
                         SELECT COUNT(*) FROM ( \
                           SELECT 1 FROM room_members c WHERE c.room_id = mine.room_id LIMIT $2 + 1 \
                         ) AS capped) <= $2)) \
                     SELECT DISTINCT other.user_id FROM small_rooms s \
                     JOIN room_members other ON other.room_id = s.room_id \
                     WHERE other.user_id <> $1",
                )
                .bind(user_id)
                .bind(i64::from(max_group_members))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }
        }

        #[async_trait]
        impl MessageStore for $store {
            /// Group commit: the call queues the message for the store's one
            /// writer task, which commits everything queued meanwhile in one
            /// transaction (one fsync), and answers only after the commit.
            async fn queue_append(&self, message: NewMessage, on_commit: Option<OnCommit>) -> Result<PendingAppend, StoreError> {
                let (reply, answer) = oneshot::channel();
                let job = WriterJob::Append(AppendJob { message, on_commit, reply });
                self.appender.send(job).await.map_err(|_| writer_stopped())?;
                Ok(PendingAppend::new(answer))
            }

            fn append_stats(&self) -> AppendStats {
                self.writer_counters.snapshot()
            }

            async fn settle_appends(&self) -> Result<(), StoreError> {
                let (done, settled) = oneshot::channel();
                self.appender.send(WriterJob::Barrier(done)).await.map_err(|_| writer_stopped())?;
                settled.await.map_err(|_| writer_stopped())
            }

            async fn messages_after(
                &self,
                room_id: Uuid,
                after_seq: i64,
                limit: u32,
            ) -> Result<Vec<MessageRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(room_id)
                .bind(after_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn messages_before(
                &self,
                room_id: Uuid,
                before_seq: i64,
                limit: u32,
            ) -> Result<Vec<MessageRecord>, StoreError> {
                let mut rows: Vec<MessageRecord> = sqlx::query_as(concat!(
                    "SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
                ))
                .bind(room_id)
                .bind(before_seq)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.reverse();
                Ok(rows)
            }

            async fn message_at(&self, room_id: Uuid, seq: i64) -> Result<Option<MessageRecord>, StoreError> {
                Ok(sqlx::query_as(concat!("SELECT ", message_columns!(), " FROM messages WHERE room_id = $1 AND seq = $2"))
                    .bind(room_id)
                    .bind(seq)
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }

        async fn insert_member(
            tx: &mut Transaction<'static, $db>,
            room_id: Uuid,
            user_id: Uuid,
            role: &str,
            now_ms: i64,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO room_members (id, room_id, user_id, role, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(Uuid::now_v7())
            .bind(room_id)
            .bind(user_id)
            .bind(role)
            .bind(now_ms)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Appends inside the caller's transaction: allocates the seq (the
        /// room row is the per-room counter, and updating it locks it so
        /// concurrent senders get distinct numbers), inserts, and applies
        /// the read effect.
        async fn append_in_tx(tx: &mut Transaction<'static, $db>, message: &NewMessage) -> Result<MessageRecord, StoreError> {
            // Resolve a read marker's target first: every error below
            // this point is raised before anything is written.
            let target_ordinal = match message.read_effect {
                ReadEffect::UpTo(target) => {
                    let ordinal: Option<(i64,)> =
                        sqlx::query_as("SELECT content_ordinal FROM messages WHERE room_id = $1 AND seq = $2")
                            .bind(message.room_id)
                            .bind(target)
                            .fetch_optional(&mut **tx)
                            .await?;
                    Some((target, ordinal.ok_or(StoreError::NotFound)?.0))
                }
                _ => None,
            };
            let counters: Option<(i64, i64)> = sqlx::query_as(
                "UPDATE chat_rooms SET last_seq = last_seq + 1, \
                   content_count = content_count + $2, \
                   last_content_seq = CASE WHEN $2 = 1 THEN last_seq + 1 ELSE last_content_seq END, \
                   last_activity_ms = COALESCE($3, last_activity_ms) \
                 WHERE id = $1 RETURNING last_seq, content_count",
            )
            .bind(message.room_id)
            .bind(i64::from(message.is_content))
            .bind(message.bumps_activity.then_some(message.created_at_ms))
            .fetch_optional(&mut **tx)
            .await?;
            let Some((seq, content_ordinal)) = counters else {
                return Err(StoreError::NotFound);
            };
            sqlx::query(
                "INSERT INTO messages (id, room_id, seq, author_id, device_id, client_msg_id, kind, content, created_at_ms, content_ordinal) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(message.id)
            .bind(message.room_id)
            .bind(seq)
            .bind(message.author_id)
            .bind(&message.device_id)
            .bind(&message.client_msg_id)
            .bind(&message.kind)
            .bind(&message.content)
            .bind(message.created_at_ms)
            .bind(content_ordinal)
            .execute(&mut **tx)
            .await?;
            let read_to = message.read_position(seq, content_ordinal, target_ordinal);
            if let Some((read_seq, read_count)) = read_to {
                sqlx::query(
                    "UPDATE room_members SET read_seq = $3, read_count = $4 \
                     WHERE room_id = $1 AND user_id = $2 AND read_seq < $3",
                )
                .bind(message.room_id)
                .bind(message.author_id)
                .bind(read_seq)
                .bind(read_count)
                .execute(&mut **tx)
                .await?;
            }
            Ok(message.stored_as(seq, content_ordinal))
        }

        #[async_trait]
        impl Storage for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

mod sqlite_impl {
    use super::*;
    impl_storage!(SqliteStore, Sqlite, SqlitePool, "sqlite");
}

mod postgres_impl {
    use super::*;
    impl_storage!(PgStore, Postgres, PgPool, "postgres");
}

/// The flat row behind [`RoomListEntry`].
#[derive(sqlx::FromRow)]
struct RoomListRow {
    id: Uuid,
    kind: String,
    title: Option<String>,
    direct_key: Option<String>,
    created_at_ms: i64,
    last_seq: i64,
    content_count: i64,
    last_content_seq: i64,
    last_activity_ms: i64,
    role: String,
    read_seq: i64,
    read_count: i64,
    peer_id: Option<Uuid>,
    peer_name: Option<String>,
    lm_id: Option<Uuid>,
    lm_seq: Option<i64>,
    lm_author_id: Option<Uuid>,
    lm_device_id: Option<String>,
    lm_client_msg_id: Option<String>,
    lm_kind: Option<String>,
    lm_content: Option<String>,
    lm_created_at_ms: Option<i64>,
    lm_content_ordinal: Option<i64>,
}

impl RoomListRow {
    fn into_entry(self) -> RoomListEntry {
        let last_message = match (
            self.lm_id,
            self.lm_seq,
            self.lm_author_id,
            self.lm_device_id,
            self.lm_client_msg_id,
            self.lm_kind,
            self.lm_content,
            self.lm_created_at_ms,
            self.lm_content_ordinal,
        ) {
            (
                Some(id),
                Some(seq),
                Some(author_id),
                Some(device_id),
                Some(client_msg_id),
                Some(kind),
                Some(content),
                Some(created_at_ms),
                Some(content_ordinal),
            ) => Some(MessageRecord {
                id,
                room_id: self.id,
                seq,
                author_id,
                device_id,
                client_msg_id,
                kind,
                content,
                created_at_ms,
                content_ordinal,
            }),
            _ => None,
        };
        RoomListEntry {
            room: RoomRecord {
                id: self.id,
                kind: self.kind,
                title: self.title,
                direct_key: self.direct_key,
                created_at_ms: self.created_at_ms,
                last_seq: self.last_seq,
                content_count: self.content_count,
                last_content_seq: self.last_content_seq,
                last_activity_ms: self.last_activity_ms,
            },
            role: self.role,
            read_seq: self.read_seq,
            read_count: self.read_count,
            peer: self.peer_id.zip(self.peer_name),
            last_message,
        }
    }
}
