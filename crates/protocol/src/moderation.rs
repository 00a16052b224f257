//! Reports (`/v1/reports`): what users report, why, and what they see of
//! their reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Why something is reported: a fixed, documented list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Spam,
    Harassment,
    Hate,
    SexualContent,
    Violence,
    SelfHarm,
    Illegal,
    Impersonation,
    Other,
}

impl ReportReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportReason::Spam => "spam",
            ReportReason::Harassment => "harassment",
            ReportReason::Hate => "hate",
            ReportReason::SexualContent => "sexual_content",
            ReportReason::Violence => "violence",
            ReportReason::SelfHarm => "self_harm",
            ReportReason::Illegal => "illegal",
            ReportReason::Impersonation => "impersonation",
            ReportReason::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<ReportReason> {
        [
            ReportReason::Spam,
            ReportReason::Harassment,
            ReportReason::Hate,
            ReportReason::SexualContent,
            ReportReason::Violence,
            ReportReason::SelfHarm,
            ReportReason::Illegal,
            ReportReason::Impersonation,
            ReportReason::Other,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// What is reported. The set grows (the feed will add `post`, `comment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReportTarget {
    /// A message of a room you are a member of, by its seq.
    Message {
        room_id: Uuid,
        #[serde(deserialize_with = "crate::whole::required")]
        seq: i64,
    },
    User {
        user_id: Uuid,
    },
    /// A room you are a member of.
    Room {
        room_id: Uuid,
    },
}

/// Free text of a report, at most this many characters.
pub const REPORT_DETAILS_MAX_CHARS: usize = 1000;

/// `POST /v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReportRequest {
    pub target: ReportTarget,
    pub reason: ReportReason,
    /// Optional, at most 1000 characters.
    #[serde(default)]
    pub details: Option<String>,
}

/// A report as its reporter sees it (the evidence is for moderators).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportView {
    pub id: Uuid,
    /// `message`, `user` or `room`.
    pub target_type: String,
    pub target_id: String,
    pub reason: ReportReason,
    pub details: Option<String>,
    /// `open` until a moderator decides.
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportList {
    pub reports: Vec<ReportView>,
}

/// A staff role. Admins can do everything moderators can, and grant roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    Moderator,
    Admin,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Moderator => "moderator",
            StaffRole::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<StaffRole> {
        match text {
            "moderator" => Some(StaffRole::Moderator),
            "admin" => Some(StaffRole::Admin),
            _ => None,
        }
    }
}

/// `PUT /v1/admin/staff/{user_id}`: `null` takes the role away.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStaffRole {
    pub role: Option<StaffRole>,
}

/// How many open reports give one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReasonCount {
    pub reason: ReportReason,
    pub count: i64,
}

/// One target of the moderation queue: its open reports together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QueueItem {
    pub target_type: String,
    pub target_id: String,
    pub reports: i64,
    /// Most frequent first.
    pub reasons: Vec<ReasonCount>,
    pub first_reported_at: i64,
    pub last_reported_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModerationQueue {
    /// The longest-waiting first.
    pub items: Vec<QueueItem>,
}

/// One entry of the audit log of staff actions (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub id: Uuid,
    /// Absent for the command line (`iyagi admin grant`).
    pub actor_id: Option<Uuid>,
    /// `grant_role`, `revoke_role` (more with moderation decisions).
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub note: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditEntryView>,
}
