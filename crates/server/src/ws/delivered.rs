//! Which of a room's seqs a connection's client already has: what was
//! delivered on this connection, and everything up to a `sync` position.
//!
//! Kept as disjoint ranges. In the common case (messages in seq order)
//! there is one range and each message extends it in place. Several
//! ranges appear when messages arrive out of order (several nodes) or when
//! live delivery in a room started before that room was caught up.

/// Ranges kept at most; beyond that the lowest gap is given up on (treated
/// as delivered), so a gap that never fills costs bounded memory.
const RANGES_MAX: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Delivered {
    /// Inclusive, ascending, neither overlapping nor adjacent.
    ranges: Vec<(i64, i64)>,
}

impl Delivered {
    /// Records `seq`; true when the client did not have it yet.
    pub(super) fn insert(&mut self, seq: i64) -> bool {
        if let Some(last) = self.ranges.last_mut() {
            if last.1.checked_add(1) == Some(seq) {
                // In order: no search, no allocation.
                last.1 = seq;
                return true;
            }
            if last.0 <= seq && seq <= last.1 {
                return false;
            }
        }
        if self.contains(seq) {
            return false;
        }
        self.insert_range(seq, seq);
        true
    }

    /// The client has every seq up to `seq` (its sync position, or the
    /// latest seq after a `reload`).
    pub(super) fn insert_up_to(&mut self, seq: i64) {
        self.insert_range(i64::MIN, seq);
    }

    fn contains(&self, seq: i64) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < seq);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= seq)
    }

    fn insert_range(&mut self, lo: i64, hi: i64) {
        // Ranges that overlap [lo, hi] or touch it.
        let start = self
            .ranges
            .partition_point(|&(_, end)| end < lo.saturating_sub(1));
        let end = self
            .ranges
            .partition_point(|&(begin, _)| begin <= hi.saturating_add(1));
        let merged = match self.ranges.get(start..end) {
            Some([first, .., last]) => (lo.min(first.0), hi.max(last.1)),
            Some([only]) => (lo.min(only.0), hi.max(only.1)),
            _ => (lo, hi),
        };
        self.ranges.splice(start..end, [merged]);
        if self.ranges.len() > RANGES_MAX {
            let (lowest, _) = self.ranges.remove(0);
            self.ranges[0].0 = lowest;
        }
    }

    #[cfg(test)]
    fn ranges(&self) -> &[(i64, i64)] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::Delivered;

    #[test]
    fn each_seq_is_admitted_once_even_out_of_order() {
        let mut d = Delivered::default();
        d.insert_up_to(10);
        assert!(!d.insert(10), "the client has it already");
        assert!(d.insert(12));
        assert!(d.insert(11), "a late lower seq is still new");
        assert!(!d.insert(12) && !d.insert(11), "duplicates are dropped");
        assert_eq!(d.ranges(), &[(i64::MIN, 12)]);
        for seq in 13..313 {
            assert!(d.insert(seq));
        }
        assert_eq!(d.ranges().len(), 1, "in order: one range");
    }

    #[test]
    fn live_delivery_before_catch_up_leaves_the_gap_open() {
        let mut d = Delivered::default();
        // Live from 57 in a room not caught up yet.
        assert!(d.insert(57));
        assert!(d.insert(58));
        // Then a sync from 50: 51..56 are new, 57 and 58 are not.
        d.insert_up_to(50);
        for seq in 51..57 {
            assert!(d.insert(seq), "{seq}");
        }
        assert!(!d.insert(57) && !d.insert(58));
        assert_eq!(d.ranges(), &[(i64::MIN, 58)]);
    }

    #[test]
    fn a_re_sync_below_what_was_delivered_replays_nothing_twice() {
        let mut d = Delivered::default();
        d.insert_up_to(1);
        for seq in 2..=4 {
            assert!(d.insert(seq));
        }
        d.insert_up_to(2);
        assert!(!d.insert(3) && !d.insert(4));
        assert!(d.insert(5));
    }

    #[test]
    fn a_gap_that_never_fills_costs_bounded_memory() {
        let mut d = Delivered::default();
        d.insert_up_to(0);
        for seq in (2..2000).step_by(2) {
            assert!(d.insert(seq));
        }
        assert!(d.ranges().len() <= super::RANGES_MAX);
        assert!(!d.insert(1), "the lowest gaps were given up");
        assert!(d.insert(1999), "recent gaps still fill");
    }
}
