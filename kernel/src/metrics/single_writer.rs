//! A counter with one writer (the core that owns it): a plain load and store, no locked
//! instruction on the data path; any core may read it.

use core::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn increment(&self) {
        self.add(1);
    }

    /// Adds `amount`. Only the owning core may call it: two writers would lose updates.
    pub fn add(&self, amount: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(amount), Ordering::Relaxed);
    }

    /// Takes `amount` away (for gauges kept as a counter of the owning core).
    pub fn subtract(&self, amount: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_sub(amount), Ordering::Relaxed);
    }

    /// Replaces the value (for published gauges and snapshots).
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
