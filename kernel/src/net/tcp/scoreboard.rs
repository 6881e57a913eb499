//! The SACK scoreboard (RFC 6675 section 3, simplified): what the peer reported holding above SND.UNA, and which hole to resend next during recovery.

use alloc::vec::Vec;

use super::seq::SeqNum;

/// Most ranges remembered; beyond it the highest are forgotten (they only make recovery slower).
const MAX_RANGES: usize = 16;

/// Disjoint, sorted, non-adjacent ranges [left, right) the peer has SACKed.
#[derive(Default)]
pub(crate) struct Scoreboard {
    ranges: Vec<(SeqNum, SeqNum)>,
    /// Recovery has resent everything below this point already.
    resent_up_to: Option<SeqNum>,
}

impl Scoreboard {
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Records one SACK block, ignoring blocks outside (`unacknowledged`, `highest_sent`]
    /// (RFC 2018 section 4, RFC 6675 section 5: a block must cover data in flight).
    /// Returns whether the block reported bytes not SACKed before, which makes the ACK that
    /// carried it a duplicate ACK in the sense of RFC 6675 section 2.
    pub(crate) fn add(
        &mut self,
        left: SeqNum,
        right: SeqNum,
        unacknowledged: SeqNum,
        highest_sent: SeqNum,
    ) -> bool {
        if !left.before(right) || left.before(unacknowledged) || right.after(highest_sent) {
            return false;
        }
        let already_known = self.ranges.iter().any(|&(range_left, range_right)| {
            range_left.before_or_equal(left) && right.before_or_equal(range_right)
        });
        if already_known {
            return false;
        }
        let mut start = left;
        let mut end = right;
        // Merge every range that overlaps or touches [start, end).
        self.ranges.retain(|&(range_left, range_right)| {
            if range_right.before(start) || range_left.after(end) {
                true
            } else {
                start = start.earliest(range_left);
                end = end.latest(range_right);
                false
            }
        });
        let index = self
            .ranges
            .iter()
            .position(|&(range_left, _)| range_left.after(start))
            .unwrap_or(self.ranges.len());
        self.ranges.insert(index, (start, end));
        self.ranges.truncate(MAX_RANGES);
        true
    }

    /// Forgets what `unacknowledged` (the new SND.UNA) now covers.
    pub(crate) fn acknowledge(&mut self, unacknowledged: SeqNum) {
        self.ranges.retain_mut(|range| {
            if range.1.before_or_equal(unacknowledged) {
                return false;
            }
            range.0 = range.0.latest(unacknowledged);
            true
        });
    }

    /// Forgets everything (after a timeout the peer may have reneged, RFC 2018 section 8).
    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
        self.resent_up_to = None;
    }

    pub(crate) fn end_recovery(&mut self) {
        self.resent_up_to = None;
    }

    /// Notes that recovery resent everything below `sequence`.
    pub(crate) fn resent(&mut self, sequence: SeqNum) {
        self.resent_up_to = Some(
            self.resent_up_to
                .map_or(sequence, |resent| resent.latest(sequence)),
        );
    }

    /// The next hole below the highest SACKed byte that recovery has not resent yet:
    /// (start, length) with length at most `mss`.
    pub(crate) fn next_hole(&self, unacknowledged: SeqNum, mss: u32) -> Option<(SeqNum, u32)> {
        let start = self
            .resent_up_to
            .map_or(unacknowledged, |resent| resent.latest(unacknowledged));
        self.hole_from(start, mss)
    }

    /// The first hole, at `unacknowledged` (SND.UNA), whether recovery resent it already or
    /// not: after a partial ACK it is lost (again).
    pub(crate) fn first_hole(&self, unacknowledged: SeqNum, mss: u32) -> Option<(SeqNum, u32)> {
        self.hole_from(unacknowledged, mss)
    }

    /// The first hole from `start` on below the highest SACKed byte.
    fn hole_from(&self, mut start: SeqNum, mss: u32) -> Option<(SeqNum, u32)> {
        for &(left, right) in &self.ranges {
            if start.before(left) {
                return Some((start, left.distance_from(start).min(mss)));
            }
            start = start.latest(right);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn holes_are_found_in_order_and_once() {
        let mut board = Scoreboard::default();
        let base = SeqNum(u32::MAX - 1000);
        let highest = base + 10_000;
        assert!(board.add(base + 1000, base + 2000, base, highest));
        assert!(board.add(base + 3000, base + 4000, base, highest));
        assert!(board.add(base + 1500, base + 2500, base, highest)); // merges with the first
        assert!(
            !board.add(base + 1200, base + 2500, base, highest),
            "nothing new: not a duplicate ACK"
        );
        assert!(!board.add(base + 9000, base + 11_000, base, highest)); // beyond what was sent
        assert_eq!(board.next_hole(base, 600), Some((base, 600)));
        board.resent(base + 600);
        assert_eq!(board.next_hole(base, 600), Some((base + 600, 400)));
        board.resent(base + 1000);
        assert_eq!(board.next_hole(base, 600), Some((base + 2500, 500)));
        board.resent(base + 3000);
        assert_eq!(
            board.next_hole(base, 600),
            None,
            "nothing SACKed above 4000"
        );
        assert_eq!(
            board.first_hole(base + 700, 600),
            Some((base + 700, 300)),
            "resent already, and still the first"
        );
        board.acknowledge(base + 3500);
        assert_eq!(board.ranges, [(base + 3500, base + 4000)]);
        board.clear();
        assert!(board.is_empty());
    }

    proptest! {
        #[test]
        fn ranges_stay_sorted_and_disjoint(
            base in any::<u32>(),
            blocks in proptest::collection::vec((0u32..5000, 1u32..800), 0..40),
            acknowledged in 0u32..6000,
        ) {
            let base = SeqNum(base);
            let highest = base + 5000;
            let mut board = Scoreboard::default();
            for (offset, length) in blocks {
                board.add(base + offset, base + offset + length, base, highest);
                for pair in board.ranges.windows(2) {
                    prop_assert!(pair[0].1.before(pair[1].0));
                }
                for &(left, right) in &board.ranges {
                    prop_assert!(left.before(right));
                    prop_assert!(left.after_or_equal(base) && right.before_or_equal(highest));
                }
                if let Some((start, length)) = board.next_hole(base, 100) {
                    prop_assert!(length > 0 && length <= 100);
                    prop_assert!(board.ranges.iter().all(|&(left, right)| !(start + length).after(left) || !start.before(right)));
                }
            }
            board.acknowledge(base + acknowledged);
            prop_assert!(board.ranges.iter().all(|&(left, _)| left.after_or_equal(base + acknowledged)));
        }
    }
}
