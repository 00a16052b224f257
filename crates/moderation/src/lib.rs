//! Moderation: reports of messages, users and rooms, each with a snapshot
//! of its evidence taken when filed, and the analysis event log every
//! change appends to in its own transaction.
//!
//! Started with issue 14's reports; blocking, deletion, complaints, staff
//! decisions and the console build on this crate.

mod reports;
mod staff;

pub use reports::{ModerationError, ReportLimits, ReportService};
pub use staff::StaffService;
