//! [`StaffService`]: staff roles (granted by an admin, or by the command
//! line for the first one), the queue of open reports, and the audit log.

use std::sync::Arc;

use iyagi_protocol::moderation::{AuditEntryView, QueueItem, ReasonCount, ReportReason, StaffRole};
use iyagi_protocol::now_ms;
use iyagi_store::{RoleChange, Storage, StoreError};
use uuid::Uuid;

use crate::ModerationError;

pub struct StaffService {
    store: Arc<dyn Storage>,
}

impl StaffService {
    pub fn new(store: Arc<dyn Storage>) -> StaffService {
        StaffService { store }
    }

    pub async fn role(&self, user: Uuid) -> Result<Option<StaffRole>, ModerationError> {
        Ok(self
            .store
            .staff_role(user)
            .await?
            .as_deref()
            .and_then(StaffRole::parse))
    }

    /// The caller's role if it is at least `needed` (admins pass every check).
    pub async fn require(
        &self,
        user: Uuid,
        needed: StaffRole,
    ) -> Result<StaffRole, ModerationError> {
        match self.role(user).await? {
            Some(role) if role >= needed => Ok(role),
            _ => Err(ModerationError::Forbidden(match needed {
                StaffRole::Moderator => "this needs a moderator or an admin",
                StaffRole::Admin => "this needs an admin",
            })),
        }
    }

    /// Sets (or, with `None`, removes) `user`'s role; audited with `actor`
    /// (`None`: the command line).
    pub async fn set_role(
        &self,
        actor: Option<Uuid>,
        user: Uuid,
        role: Option<StaffRole>,
    ) -> Result<(), ModerationError> {
        let change = RoleChange {
            user_id: user,
            role: role.map(|r| r.as_str().to_owned()),
            actor_id: actor,
            audit_id: Uuid::now_v7(),
            now_ms: now_ms(),
        };
        match self.store.change_role(&change).await {
            Err(StoreError::NotFound) => Err(ModerationError::NotFound("no such user")),
            other => Ok(other?),
        }
    }

    /// For `iyagi admin grant USERNAME ROLE`: the first admin has no one to ask.
    pub async fn grant_by_username(
        &self,
        username: &str,
        role: StaffRole,
    ) -> Result<Uuid, ModerationError> {
        let user = self
            .store
            .user_by_username(&username.to_ascii_lowercase())
            .await?
            .ok_or(ModerationError::NotFound("no such user"))?;
        self.set_role(None, user.id, Some(role)).await?;
        Ok(user.id)
    }

    /// Open reports grouped by target, the longest-waiting first.
    pub async fn queue(&self, limit: u32) -> Result<Vec<QueueItem>, ModerationError> {
        Ok(self
            .store
            .open_report_groups(limit)
            .await?
            .into_iter()
            .map(|g| QueueItem {
                target_type: g.target_type,
                target_id: g.target_id,
                reports: g.reports,
                reasons: g
                    .reasons
                    .into_iter()
                    .map(|(reason, count)| ReasonCount {
                        reason: ReportReason::parse(&reason).unwrap_or(ReportReason::Other),
                        count,
                    })
                    .collect(),
                first_reported_at: g.first_reported_ms,
                last_reported_at: g.last_reported_ms,
            })
            .collect())
    }

    pub async fn audit(&self, limit: u32) -> Result<Vec<AuditEntryView>, ModerationError> {
        Ok(self
            .store
            .audit_log(limit)
            .await?
            .into_iter()
            .map(|e| AuditEntryView {
                id: e.id,
                actor_id: e.actor_id,
                action: e.action,
                target_type: e.target_type,
                target_id: e.target_id,
                note: e.note,
                at: e.at_ms,
            })
            .collect())
    }
}
