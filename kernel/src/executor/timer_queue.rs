//! The executor's pending timers, ordered by deadline and then by registration.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::task::Waker;

use crate::time::Instant;

/// Identifies a registered timer; ordered as the timers fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TimerKey {
    deadline: Instant,
    sequence: u64,
}

/// An ordered map rather than a heap so that a cancelled timer (a `timeout` whose future won)
/// leaves nothing behind: request timeouts are created and cancelled at the request rate.
#[derive(Default)]
pub(super) struct TimerQueue {
    timers: BTreeMap<TimerKey, Waker>,
    next_sequence: u64,
}

impl TimerQueue {
    pub(super) fn register(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = TimerKey {
            deadline,
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        self.timers.insert(key, waker);
        key
    }

    /// Replaces the waker of a pending timer; false if it already fired or was cancelled.
    pub(super) fn update(&mut self, key: TimerKey, waker: &Waker) -> bool {
        match self.timers.get_mut(&key) {
            Some(registered) => {
                if !registered.will_wake(waker) {
                    registered.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    pub(super) fn cancel(&mut self, key: TimerKey) {
        self.timers.remove(&key);
    }

    /// Removes every timer due at `now` and returns their wakers, earliest first. The caller
    /// wakes them after releasing the queue, since a waker may run arbitrary code.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<Waker> {
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().deadline > now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|key| key.deadline)
    }

    pub(super) fn len(&self) -> usize {
        self.timers.len()
    }
}
