//! One "I am halted" flag per core: a core that hands another core work rings its doorbell
//! (wakes it) only if that core said it was going to sleep.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering, fence};

use crate::net::rfd::CoreId;
use crate::sync::CachePadded;

/// Shared by every core (behind an `Arc`); each flag on its own cache lines.
pub struct Doorbells {
    halted: Vec<CachePadded<AtomicBool>>,
}

impl Doorbells {
    pub fn new(core_count: usize) -> Doorbells {
        Doorbells {
            halted: (0..core_count)
                .map(|_| CachePadded::new(AtomicBool::new(false)))
                .collect(),
        }
    }

    /// Called by `core` before it looks for work one last time and halts. The full fence
    /// orders the flag before that last look: a producer that pushed before the look is seen
    /// by it, and one that pushes after it sees the flag (Dekker's handshake).
    pub fn announce_halt(&self, core: CoreId) {
        if let Some(flag) = self.halted.get(usize::from(core.0)) {
            flag.store(true, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    /// Called by `core` when it is up again (or decided not to halt).
    pub fn clear(&self, core: CoreId) {
        if let Some(flag) = self.halted.get(usize::from(core.0)) {
            flag.store(false, Ordering::SeqCst);
        }
    }

    /// Called by a producer after it pushed work for `core`: true if `core` announced a halt
    /// and must be woken (the flag is taken, so it is woken once).
    pub fn take_halted(&self, core: CoreId) -> bool {
        fence(Ordering::SeqCst);
        self.halted
            .get(usize::from(core.0))
            .is_some_and(|flag| flag.swap(false, Ordering::SeqCst))
    }
}
