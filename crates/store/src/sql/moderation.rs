//! Reports and the analysis event log ([`ModerationStore`]).

use async_trait::async_trait;
use uuid::Uuid;

use crate::*;

macro_rules! report_columns {
    () => {
        "id, reporter_id, target_type, target_id, room_id, reason, details, evidence, status, \
         created_at_ms, updated_at_ms"
    };
}

macro_rules! impl_moderation {
    ($store:ty, $db:ty, $backend:ident) => {
        #[async_trait]
        impl ModerationStore for $store {
            async fn file_report(&self, r: &NewReport, event_id: Uuid) -> Result<FiledReport, StoreError> {
                let mut tx = self.begin_write().await?;
                let earlier: Option<ReportRecord> = sqlx::query_as(concat!(
                    "SELECT ", report_columns!(),
                    " FROM reports WHERE reporter_id = $1 AND target_type = $2 AND target_id = $3"
                ))
                .bind(r.reporter_id)
                .bind(&r.target_type)
                .bind(&r.target_id)
                .fetch_optional(&mut *tx)
                .await?;
                let created = earlier.is_none();
                // A report again replaces what it says and its evidence
                // (the target as it is now), and opens it again.
                let report: ReportRecord = sqlx::query_as(concat!(
                    "INSERT INTO reports (id, reporter_id, target_type, target_id, room_id, reason, details, \
                     evidence, status, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                     ON CONFLICT (reporter_id, target_type, target_id) DO UPDATE SET \
                       reason = excluded.reason, details = excluded.details, evidence = excluded.evidence, \
                       status = excluded.status, updated_at_ms = excluded.updated_at_ms \
                     RETURNING ", report_columns!()
                ))
                .bind(r.id)
                .bind(r.reporter_id)
                .bind(&r.target_type)
                .bind(&r.target_id)
                .bind(r.room_id)
                .bind(&r.reason)
                .bind(&r.details)
                .bind(&r.evidence)
                .bind(REPORT_OPEN)
                .bind(r.now_ms)
                .fetch_one(&mut *tx)
                .await?;
                let payload = serde_json::json!({
                    "report_id": report.id,
                    "target_type": report.target_type,
                    "reason": report.reason,
                    "created": created,
                });
                sqlx::query("INSERT INTO analysis_events (id, kind, at_ms, payload) VALUES ($1, $2, $3, $4)")
                    .bind(event_id)
                    .bind(EVENT_REPORT_FILED)
                    .bind(r.now_ms)
                    .bind(payload.to_string())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(FiledReport { report, created })
            }

            async fn reports_by(&self, reporter_id: Uuid, limit: u32) -> Result<Vec<ReportRecord>, StoreError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT ", report_columns!(),
                    " FROM reports WHERE reporter_id = $1 ORDER BY updated_at_ms DESC, id DESC LIMIT $2"
                ))
                .bind(reporter_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn reports_filed_since(&self, reporter_id: Uuid, since_ms: i64) -> Result<i64, StoreError> {
                let (count,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COUNT(*) AS BIGINT) FROM reports WHERE reporter_id = $1 AND updated_at_ms >= $2",
                )
                .bind(reporter_id)
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?;
                Ok(count)
            }

            async fn analysis_events(
                &self,
                since_ms: i64,
                until_ms: i64,
                after: Option<Uuid>,
                limit: u32,
            ) -> Result<Vec<AnalysisEvent>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT id, kind, at_ms, payload FROM analysis_events \
                     WHERE at_ms >= $1 AND at_ms < $2 AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4",
                )
                .bind(since_ms)
                .bind(until_ms)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}

for_both_backends!(impl_moderation);
