//! Sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 section 3.4).

use core::ops::{Add, Sub};

/// A TCP sequence number. Ordering is circular, so it is not `Ord`: compare with
/// [`SeqNum::before`] and friends, which are correct whenever the two numbers are less
/// than 2^31 apart (RFC 9293 section 3.4, RFC 1982).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self < other` in sequence space.
    pub fn before(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) < 0
    }

    /// `self <= other` in sequence space.
    pub fn before_or_equal(self, other: SeqNum) -> bool {
        (self.0.wrapping_sub(other.0) as i32) <= 0
    }

    /// `self > other` in sequence space.
    pub fn after(self, other: SeqNum) -> bool {
        other.before(self)
    }

    /// `self >= other` in sequence space.
    pub fn after_or_equal(self, other: SeqNum) -> bool {
        other.before_or_equal(self)
    }

    /// `start <= self < start + length`.
    pub fn in_window(self, start: SeqNum, length: u32) -> bool {
        self.0.wrapping_sub(start.0) < length
    }

    /// The later of two sequence numbers.
    pub fn latest(self, other: SeqNum) -> SeqNum {
        if self.before(other) { other } else { self }
    }

    /// The earlier of two sequence numbers.
    pub fn earliest(self, other: SeqNum) -> SeqNum {
        if self.before(other) { self } else { other }
    }

    /// How far `self` is past `earlier`, as an unsigned distance (0 if `self` is before it).
    pub fn distance_from(self, earlier: SeqNum) -> u32 {
        if self.before(earlier) {
            0
        } else {
            self.0.wrapping_sub(earlier.0)
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl core::fmt::Display for SeqNum {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparison_wraps_around_zero() {
        let high = SeqNum(u32::MAX - 10);
        let low = SeqNum(5);
        assert!(high.before(low));
        assert!(low.after(high));
        assert_eq!(low.distance_from(high), 16);
        assert_eq!(high.distance_from(low), 0);
        assert!(SeqNum(3).in_window(high, 20));
        assert!(!SeqNum(10).in_window(high, 20));
        assert_eq!(high + 16, low);
        assert_eq!(low - 16, high);
    }

    proptest! {
        #[test]
        fn ordering_is_consistent(base in any::<u32>(), delta in 1u32..(1 << 31)) {
            let a = SeqNum(base);
            let b = a + delta;
            prop_assert!(a.before(b));
            prop_assert!(a.before_or_equal(b));
            prop_assert!(b.after(a));
            prop_assert!(!b.before(a));
            prop_assert!(!a.after_or_equal(b));
            prop_assert_eq!(b.distance_from(a), delta);
            prop_assert_eq!(a.latest(b), b);
            prop_assert_eq!(b.earliest(a), a);
            prop_assert!(a.before_or_equal(a) && a.after_or_equal(a) && !a.before(a));
        }

        #[test]
        fn window_membership_matches_distance(start in any::<u32>(), offset in any::<u32>(), length in any::<u32>()) {
            let start = SeqNum(start);
            prop_assert_eq!((start + offset).in_window(start, length), offset < length);
        }
    }
}
