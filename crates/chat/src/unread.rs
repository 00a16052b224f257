//! The unread rule, in one place.

/// A member's unread count in a room: the room's content messages after
/// the member's read position. Both counters are kept with every message,
/// so this never scans; never negative.
pub(crate) fn unread(content_count: i64, read_count: i64) -> i64 {
    (content_count - read_count).max(0)
}
