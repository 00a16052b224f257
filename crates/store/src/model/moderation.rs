//! Reports, the analysis event log, staff roles and the audit log: rows.

use uuid::Uuid;

/// A report of a target (message, user, room...) by one user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReportRecord {
    pub id: Uuid,
    pub reporter_id: Uuid,
    pub target_type: String,
    pub target_id: String,
    pub room_id: Option<Uuid>,
    pub reason: String,
    pub details: Option<String>,
    /// JSON: the target as it was when reported.
    pub evidence: String,
    pub status: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A report to file (or to update, when the reporter reported the target before).
#[derive(Debug, Clone)]
pub struct NewReport {
    pub id: Uuid,
    pub reporter_id: Uuid,
    pub target_type: String,
    pub target_id: String,
    pub room_id: Option<Uuid>,
    pub reason: String,
    pub details: Option<String>,
    pub evidence: String,
    pub now_ms: i64,
}

/// The answer to [`NewReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiledReport {
    pub report: ReportRecord,
    /// False when an earlier report by the same reporter was updated.
    pub created: bool,
}

/// An analysis event, appended with the change it records.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnalysisEvent {
    pub id: Uuid,
    pub kind: String,
    pub at_ms: i64,
    /// JSON, with a documented schema per kind.
    pub payload: String,
}

pub const REPORT_OPEN: &str = "open";
/// The analysis event a filed (or updated) report appends.
pub const EVENT_REPORT_FILED: &str = "report_filed";

/// A role change, with the audit entry it appends.
#[derive(Debug, Clone)]
pub struct RoleChange {
    pub user_id: Uuid,
    /// `moderator`, `admin`, or `None` to take the role away.
    pub role: Option<String>,
    /// Who did it (`None`: the command line).
    pub actor_id: Option<Uuid>,
    pub audit_id: Uuid,
    pub now_ms: i64,
}

/// One entry of the moderation audit log (never updated).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub note: Option<String>,
    pub at_ms: i64,
}

/// Open reports of one target, for the moderation queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportGroup {
    pub target_type: String,
    pub target_id: String,
    pub reports: i64,
    /// (reason, how many), most frequent first.
    pub reasons: Vec<(String, i64)>,
    pub first_reported_ms: i64,
    pub last_reported_ms: i64,
}
