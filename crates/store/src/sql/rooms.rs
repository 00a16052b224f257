//! Rooms and members ([`RoomStore`]).

use async_trait::async_trait;
use sqlx::Transaction;
use uuid::Uuid;

use crate::*;

macro_rules! impl_rooms {
    ($store:ty, $db:ty, $backend:ident) => {
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
                .bind(room.kind)
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
                    insert_member(&mut tx, room.id, *user_id, *role, room.created_at_ms).await?;
                }
                crate::sql::messages::$backend::append_in_tx(&mut tx, &room.first_message).await?;
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
                let rows: Vec<(Uuid, Uuid, Uuid, MemberRole, i64, i64, i64, Option<i64>, String)> = sqlx::query_as(
                    "SELECT m.id, m.room_id, m.user_id, m.role, m.created_at_ms, m.read_seq, m.read_count, m.muted_until_ms, u.username \
                     FROM room_members m JOIN users u ON u.id = m.user_id \
                     WHERE m.room_id = $1 ORDER BY m.created_at_ms, m.user_id",
                )
                .bind(room_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(id, room_id, user_id, role, created_at_ms, read_seq, read_count, muted_until_ms, username)| NamedMember {
                        member: MemberRecord { id, room_id, user_id, role, created_at_ms, read_seq, read_count, muted_until_ms },
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
                        match insert_member(&mut tx, change.room_id, change.user_id, *role, change.message.created_at_ms).await {
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
                let message = crate::sql::messages::$backend::append_in_tx(&mut tx, &change.message).await?;
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

            async fn set_room_mute(&self, room_id: Uuid, user_id: Uuid, until_ms: Option<i64>) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE room_members SET muted_until_ms = $3 WHERE room_id = $1 AND user_id = $2")
                    .bind(room_id)
                    .bind(user_id)
                    .bind(until_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn total_unread(&self, user_id: Uuid) -> Result<i64, StoreError> {
                // From the counters: one row per room of the user, never a scan of messages.
                let (total,): (Option<i64>,) = sqlx::query_as(
                    "SELECT CAST(SUM(CASE WHEN r.content_count > m.read_count THEN r.content_count - m.read_count ELSE 0 END) AS BIGINT) \
                     FROM room_members m JOIN chat_rooms r ON r.id = m.room_id WHERE m.user_id = $1",
                )
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(total.unwrap_or(0))
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
        async fn insert_member(
            tx: &mut Transaction<'static, $db>,
            room_id: Uuid,
            user_id: Uuid,
            role: MemberRole,
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
    };
}

for_both_backends!(impl_rooms);

/// The flat row behind [`RoomListEntry`].
#[derive(sqlx::FromRow)]
struct RoomListRow {
    id: Uuid,
    kind: RoomKind,
    title: Option<String>,
    direct_key: Option<String>,
    created_at_ms: i64,
    last_seq: i64,
    content_count: i64,
    last_content_seq: i64,
    last_activity_ms: i64,
    role: MemberRole,
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
