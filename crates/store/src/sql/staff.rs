//! Staff roles, the moderation audit log and the report queue ([`StaffStore`]).

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! impl_staff {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl StaffStore for $store {
            async fn change_role(&self, c: &RoleChange) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                let exists: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
                    .bind(c.user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                let action = match &c.role {
                    Some(role) => {
                        sqlx::query(
                            "INSERT INTO staff_roles (user_id, role, granted_by, granted_at_ms) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (user_id) DO UPDATE SET role = excluded.role, \
                               granted_by = excluded.granted_by, granted_at_ms = excluded.granted_at_ms",
                        )
                        .bind(c.user_id)
                        .bind(role)
                        .bind(c.actor_id)
                        .bind(c.now_ms)
                        .execute(&mut *tx)
                        .await?;
                        "grant_role"
                    }
                    None => {
                        sqlx::query("DELETE FROM staff_roles WHERE user_id = $1")
                            .bind(c.user_id)
                            .execute(&mut *tx)
                            .await?;
                        "revoke_role"
                    }
                };
                sqlx::query(
                    "INSERT INTO moderation_audit (id, actor_id, action, target_type, target_id, note, at_ms) \
                     VALUES ($1, $2, $3, 'user', $4, $5, $6)",
                )
                .bind(c.audit_id)
                .bind(c.actor_id)
                .bind(action)
                .bind(c.user_id.to_string())
                .bind(&c.role)
                .bind(c.now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn staff_role(&self, user_id: Uuid) -> Result<Option<String>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as("SELECT role FROM staff_roles WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(role,)| role))
            }

            async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, actor_id, action, target_type, target_id, note, at_ms FROM moderation_audit \
                     ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn open_report_groups(&self, limit: u32) -> Result<Vec<ReportGroup>, StoreError> {
                let groups: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT target_type, target_id, CAST(COUNT(*) AS BIGINT), MIN(created_at_ms), MAX(updated_at_ms) \
                     FROM reports WHERE status = $1 GROUP BY target_type, target_id \
                     ORDER BY MIN(created_at_ms), target_type, target_id LIMIT $2",
                )
                .bind(REPORT_OPEN)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                // The reasons of the listed targets (at most one row per reason each).
                let mut reasons: HashMap<(String, String), Vec<(String, i64)>> = HashMap::new();
                for chunk in groups.chunks(200) {
                    let mut query = sqlx::QueryBuilder::<$db>::new(
                        "SELECT target_type, target_id, reason, CAST(COUNT(*) AS BIGINT) FROM reports WHERE status = ",
                    );
                    query.push_bind(REPORT_OPEN);
                    query.push(" AND target_id IN (");
                    let mut list = query.separated(", ");
                    for group in chunk {
                        list.push_bind(group.1.clone());
                    }
                    query.push(") GROUP BY target_type, target_id, reason");
                    let rows: Vec<(String, String, String, i64)> = query.build_query_as().fetch_all(&self.pool).await?;
                    for (target_type, target_id, reason, count) in rows {
                        reasons.entry((target_type, target_id)).or_default().push((reason, count));
                    }
                }
                Ok(groups
                    .into_iter()
                    .map(|(target_type, target_id, count, first, last)| {
                        let mut why = reasons.remove(&(target_type.clone(), target_id.clone())).unwrap_or_default();
                        why.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        ReportGroup {
                            target_type,
                            target_id,
                            reports: count,
                            reasons: why,
                            first_reported_ms: first,
                            last_reported_ms: last,
                        }
                    })
                    .collect())
            }
        }
    };
}

for_both_backends!(impl_staff);
