//! A hashed timer wheel (Varghese and Lauck, scheme 6): O(1) insertion, expiry in time proportional to the entries due.
//!
//! Time is cut into 1 ms ticks; a deadline is rounded *up* to its tick, so nothing fires early.
//! Entries further away than one turn of the wheel stay in their slot and are skipped until
//! their turn comes. An owner may cancel an entry it armed ([`TimerWheel::cancel`]), and
//! still checks, when one fires, that the deadline stands (an entry it did not cancel).

use alloc::vec::Vec;

use crate::time::Instant;

const SLOT_COUNT: usize = 4096;
const NANOS_PER_TICK: u64 = 1_000_000;

struct Entry<K> {
    tick: u64,
    key: K,
}

/// Timers keyed by `K`, ordered by deadline.
pub(crate) struct TimerWheel<K> {
    slots: Vec<Vec<Entry<K>>>,
    /// One bit per non-empty slot, to find the next deadline quickly.
    occupied: [u64; SLOT_COUNT / 64],
    /// Every tick up to and including this one has been processed.
    current_tick: u64,
    length: usize,
    /// Earliest tick of any entry (possibly stale: may be earlier than the true minimum).
    earliest_tick: Option<u64>,
}

fn tick_of(deadline: Instant) -> u64 {
    deadline.as_nanos().div_ceil(NANOS_PER_TICK)
}

impl<K: Copy + PartialEq> TimerWheel<K> {
    pub(crate) fn new(now: Instant) -> Self {
        TimerWheel {
            slots: (0..SLOT_COUNT).map(|_| Vec::new()).collect(),
            occupied: [0; SLOT_COUNT / 64],
            current_tick: now.as_nanos() / NANOS_PER_TICK,
            length: 0,
            earliest_tick: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.length
    }

    /// Arms a timer for `key` at `deadline` (a deadline in the past fires at the next advance).
    pub(crate) fn insert(&mut self, deadline: Instant, key: K) {
        let tick = tick_of(deadline).max(self.current_tick + 1);
        let slot = (tick % SLOT_COUNT as u64) as usize;
        self.slots[slot].push(Entry { tick, key });
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.length += 1;
        self.earliest_tick = Some(
            self.earliest_tick
                .map_or(tick, |earliest| earliest.min(tick)),
        );
    }

    /// Removes the entry armed for `key` at `deadline` (the same deadline given to `insert`),
    /// if it is still there; returns whether it was. Costs the length of one slot. Owners
    /// that re-arm often cancel the entry they replace, so that the wheel holds one entry per
    /// owner instead of one per re-arm (issue 10, defect 6).
    pub(crate) fn cancel(&mut self, deadline: Instant, key: K) -> bool {
        let tick = tick_of(deadline);
        // An entry armed in the past was moved to the next tick then; look at both.
        let candidates = [tick, tick.max(self.current_tick + 1)];
        for tick in candidates {
            let slot = (tick % SLOT_COUNT as u64) as usize;
            let entries = &mut self.slots[slot];
            if let Some(index) = entries
                .iter()
                .position(|entry| entry.key == key && (entry.tick == tick))
            {
                entries.swap_remove(index);
                self.length -= 1;
                if entries.is_empty() {
                    self.occupied[slot / 64] &= !(1 << (slot % 64));
                }
                if self.length == 0 {
                    self.earliest_tick = None;
                }
                return true;
            }
        }
        false
    }

    /// When the earliest entry is due (as the start of its tick); `None` if the wheel is empty.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.earliest_tick
            .map(|tick| Instant::from_nanos(tick.saturating_mul(NANOS_PER_TICK)))
    }

    /// Removes every entry due at `now` and appends its key to `due` (in no particular order
    /// within a tick); the caller handles them and re-arms as needed.
    pub(crate) fn expire(&mut self, now: Instant, due: &mut Vec<K>) {
        let now_tick = now.as_nanos() / NANOS_PER_TICK;
        if now_tick <= self.current_tick {
            return;
        }
        let steps = (now_tick - self.current_tick).min(SLOT_COUNT as u64);
        for step in 1..=steps {
            let slot = ((self.current_tick + step) % SLOT_COUNT as u64) as usize;
            if self.occupied[slot / 64] & (1 << (slot % 64)) == 0 {
                continue;
            }
            let entries = &mut self.slots[slot];
            let before = entries.len();
            entries.retain(|entry| {
                if entry.tick <= now_tick {
                    due.push(entry.key);
                    false
                } else {
                    true
                }
            });
            self.length -= before - entries.len();
            if entries.is_empty() {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
            }
        }
        self.current_tick = now_tick;
        self.earliest_tick = self.find_earliest();
    }

    /// Scans from the current tick for the first slot holding an entry due within one turn;
    /// failing that, the minimum over all entries.
    fn find_earliest(&self) -> Option<u64> {
        if self.length == 0 {
            return None;
        }
        let horizon = self.current_tick + SLOT_COUNT as u64;
        let mut earliest: Option<u64> = None;
        let mut step = 1u64;
        while step <= SLOT_COUNT as u64 {
            let slot = ((self.current_tick + step) % SLOT_COUNT as u64) as usize;
            // Skip empty slots a word of the bitmap at a time.
            let pending = self.occupied[slot / 64] >> (slot % 64);
            if pending == 0 {
                step += (64 - slot % 64) as u64;
                continue;
            }
            let empty_before = u64::from(pending.trailing_zeros());
            if empty_before > 0 {
                step += empty_before;
                continue;
            }
            for entry in &self.slots[slot] {
                earliest = Some(earliest.map_or(entry.tick, |tick: u64| tick.min(entry.tick)));
            }
            if let Some(tick) = earliest
                && tick <= self.current_tick + step
                && tick < horizon
            {
                return Some(tick);
            }
            step += 1;
        }
        earliest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_fire_at_their_tick_not_before() {
        let mut wheel = TimerWheel::new(Instant::ZERO);
        wheel.insert(Instant::from_micros(1_500), 'a');
        wheel.insert(Instant::from_millis(10_000), 'b');
        assert_eq!(wheel.next_deadline(), Some(Instant::from_millis(2)));
        let mut due = Vec::new();
        wheel.expire(Instant::from_micros(1_999), &mut due);
        assert!(due.is_empty());
        wheel.expire(Instant::from_millis(2), &mut due);
        assert_eq!(due, ['a']);
        assert_eq!(wheel.next_deadline(), Some(Instant::from_millis(10_000)));
        due.clear();
        // Several turns of the wheel later, the far entry fires exactly once.
        wheel.expire(Instant::from_millis(9_999), &mut due);
        assert!(due.is_empty());
        wheel.expire(Instant::from_millis(20_000), &mut due);
        assert_eq!(due, ['b']);
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn cancelled_entries_are_gone() {
        let mut wheel = TimerWheel::new(Instant::ZERO);
        wheel.insert(Instant::from_millis(5), 'a');
        wheel.insert(Instant::from_millis(5), 'b');
        wheel.insert(Instant::from_millis(9_000), 'a');
        assert!(wheel.cancel(Instant::from_millis(5), 'a'));
        assert!(!wheel.cancel(Instant::from_millis(5), 'a'), "only once");
        assert!(
            !wheel.cancel(Instant::from_millis(6), 'b'),
            "wrong deadline"
        );
        assert_eq!(wheel.len(), 2);
        let mut due = Vec::new();
        wheel.expire(Instant::from_millis(10_000), &mut due);
        due.sort();
        assert_eq!(due, ['a', 'b']);
        // An entry armed in the past sits in the next tick; it is found there.
        wheel.insert(Instant::from_millis(1), 'c');
        assert!(wheel.cancel(Instant::from_millis(1), 'c'));
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.next_deadline(), None);
    }

    proptest! {
        #[test]
        fn every_entry_fires_once_and_never_early(
            deadlines in proptest::collection::vec(0u64..20_000_000_000, 1..60),
            steps in proptest::collection::vec(1u64..3_000_000_000, 1..40),
        ) {
            let mut wheel = TimerWheel::new(Instant::ZERO);
            for (index, &deadline) in deadlines.iter().enumerate() {
                wheel.insert(Instant::from_nanos(deadline), index);
            }
            let mut fired = vec![false; deadlines.len()];
            let mut now = 0u64;
            let mut due = Vec::new();
            for step in steps.iter().chain(core::iter::once(&30_000_000_000)) {
                if let Some(next) = wheel.next_deadline() {
                    // The reported deadline is never later than the true earliest one's tick.
                    let true_min = deadlines.iter().enumerate().filter(|(index, _)| !fired[*index]).map(|(_, &deadline)| deadline.div_ceil(NANOS_PER_TICK).max(1) * NANOS_PER_TICK).min().unwrap();
                    prop_assert!(next.as_nanos() <= true_min);
                }
                now += step;
                due.clear();
                wheel.expire(Instant::from_nanos(now), &mut due);
                for &index in &due {
                    prop_assert!(!fired[index]);
                    prop_assert!(deadlines[index] <= now);
                    fired[index] = true;
                }
            }
            prop_assert!(fired.iter().all(|&done| done));
        }
    }
}
