//! [`ReportService`]: who may report what, the evidence kept, and the
//! per-user rate.

use std::sync::Arc;

use iyagi_protocol::moderation::{
    NewReportRequest, REPORT_DETAILS_MAX_CHARS, ReportReason, ReportTarget, ReportView,
};
use iyagi_protocol::now_ms;
use iyagi_store::{MessageRecord, NewReport, ReportRecord, Storage, StoreError};
use serde_json::{Value, json};
use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum ModerationError {
    /// Not a member of the room the target is in (rooms are not told apart
    /// from rooms that do not exist).
    #[error("you are not a member of this room")]
    NotAMember,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    RateLimited(String),
    /// Not staff, or not staff enough.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy)]
pub struct ReportLimits {
    /// Reports one user may file or update per hour.
    pub per_hour: i64,
    /// Messages kept on each side of a reported message.
    pub context: u32,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            per_hour: 30,
            context: 3,
        }
    }
}

pub struct ReportService {
    store: Arc<dyn Storage>,
    limits: ReportLimits,
}

impl ReportService {
    pub fn new(store: Arc<dyn Storage>, limits: ReportLimits) -> ReportService {
        ReportService { store, limits }
    }

    /// Files `request` for `reporter`, or updates their earlier report of
    /// the same target; the evidence is what the target is now.
    pub async fn report(
        &self,
        reporter: Uuid,
        request: &NewReportRequest,
    ) -> Result<(ReportView, bool), ModerationError> {
        let details = match request.details.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) if text.chars().count() > REPORT_DETAILS_MAX_CHARS => {
                return Err(ModerationError::Validation(format!(
                    "details must be at most {REPORT_DETAILS_MAX_CHARS} characters"
                )));
            }
            Some(text) => Some(text.to_owned()),
        };
        let now = now_ms();
        let recent = self
            .store
            .reports_filed_since(reporter, now - 3_600_000)
            .await?;
        if recent >= self.limits.per_hour {
            return Err(ModerationError::RateLimited(format!(
                "at most {} reports an hour",
                self.limits.per_hour
            )));
        }
        let (target_type, target_id, room_id, evidence) =
            self.evidence(reporter, &request.target).await?;
        let filed = self
            .store
            .file_report(
                &NewReport {
                    id: Uuid::now_v7(),
                    reporter_id: reporter,
                    target_type: target_type.to_owned(),
                    target_id,
                    room_id,
                    reason: request.reason.as_str().to_owned(),
                    details,
                    evidence: evidence.to_string(),
                    now_ms: now,
                },
                Uuid::now_v7(),
            )
            .await?;
        tracing::info!(report_id = %filed.report.id, target_type, created = filed.created, "report filed");
        Ok((view(&filed.report), filed.created))
    }

    /// The reporter's reports, newest first.
    pub async fn mine(&self, reporter: Uuid) -> Result<Vec<ReportView>, ModerationError> {
        Ok(self
            .store
            .reports_by(reporter, 200)
            .await?
            .iter()
            .map(view)
            .collect())
    }

    /// The target's identity and its evidence: the reporter must be able
    /// to see what they report.
    async fn evidence(
        &self,
        reporter: Uuid,
        target: &ReportTarget,
    ) -> Result<(&'static str, String, Option<Uuid>, Value), ModerationError> {
        match *target {
            ReportTarget::Message { room_id, seq } => {
                self.require_member(room_id, reporter).await?;
                let message = self
                    .store
                    .message_at(room_id, seq)
                    .await?
                    .filter(|m| {
                        iyagi_protocol::chat::MessageKind::parse(&m.kind)
                            .is_some_and(|k| k.is_content())
                    })
                    .ok_or(ModerationError::NotFound("no such message in this room"))?;
                let context = self.limits.context;
                let before = self.store.messages_before(room_id, seq, context).await?;
                let after = self.store.messages_after(room_id, seq, context).await?;
                let evidence = json!({
                    "message": message_json(&message),
                    "before": before.iter().map(message_json).collect::<Vec<_>>(),
                    "after": after.iter().map(message_json).collect::<Vec<_>>(),
                });
                Ok(("message", message.id.to_string(), Some(room_id), evidence))
            }
            ReportTarget::User { user_id } => {
                if user_id == reporter {
                    return Err(ModerationError::Validation(
                        "you cannot report yourself".to_owned(),
                    ));
                }
                let user = self
                    .store
                    .user_by_id(user_id)
                    .await?
                    .ok_or(ModerationError::NotFound("no such user"))?;
                let evidence = json!({"user": {
                    "id": user.id, "username": user.username, "created_at": user.created_at_ms,
                }});
                Ok(("user", user.id.to_string(), None, evidence))
            }
            ReportTarget::Room { room_id } => {
                self.require_member(room_id, reporter).await?;
                let room = self
                    .store
                    .room(room_id)
                    .await?
                    .ok_or(ModerationError::NotAMember)?;
                let members = self.store.members(room_id).await?;
                let evidence = json!({"room": {
                    "id": room.id, "kind": room.kind.as_str(), "title": room.title,
                    "members": members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
                    "last_seq": room.last_seq,
                }});
                Ok(("room", room.id.to_string(), Some(room_id), evidence))
            }
        }
    }

    async fn require_member(&self, room: Uuid, user: Uuid) -> Result<(), ModerationError> {
        match self.store.member(room, user).await? {
            Some(_) => Ok(()),
            None => Err(ModerationError::NotAMember),
        }
    }
}

fn message_json(m: &MessageRecord) -> Value {
    json!({
        "id": m.id, "seq": m.seq, "author_id": m.author_id, "kind": m.kind,
        "content": serde_json::from_str::<Value>(&m.content).unwrap_or(Value::Null),
        "created_at": m.created_at_ms,
    })
}

fn view(r: &ReportRecord) -> ReportView {
    ReportView {
        id: r.id,
        target_type: r.target_type.clone(),
        target_id: r.target_id.clone(),
        reason: ReportReason::parse(&r.reason).unwrap_or(ReportReason::Other),
        details: r.details.clone(),
        status: r.status.clone(),
        created_at: r.created_at_ms,
        updated_at: r.updated_at_ms,
    }
}
