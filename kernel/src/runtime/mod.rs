//! The per-core run loop of DESIGN.md on a real NIC queue pair: receive, steer (Receive Flow
//! Deliver), drain the inbound ring, run timers and tasks, transmit, and halt when idle.
//!
//! Hardware-independent: the boot crate implements [`QueuePair`] over its driver's queue and
//! [`Platform`] over its clock, local APIC and `hlt`; host tests implement both in memory.
//!
//! ```text
//! loop {
//!     rx burst from my queue   -> for each frame: RFD check -> my stack, or my owner's ring
//!     drain my inbound ring    -> frames other cores handed me (net::partition's dispatcher)
//!     run my ready app tasks   -> via the socket API
//!     poll my interface        -> TCP and ARP timers, then every frame ready to send
//!     tx flush to my queue
//!     idle for a while?        -> enable my queue's interrupt, halt until it or my next timer
//! }
//! ```

mod core_loop;
mod doorbells;
mod statistics;

#[cfg(test)]
mod tests;

pub use core_loop::{CoreRuntime, CoreSetup, RECEIVE_BURST, SPIN_BEFORE_HALT};
pub use doorbells::Doorbells;
pub use statistics::{
    CORE_METRICS, CoreSnapshot, CoreStatistics, NetworkStatistics, NicQueueCounters,
};

use crate::net::interface::SinkFull;
use crate::net::rfd::CoreId;
use crate::time::Instant;

/// One core's receive and transmit queue, owned by that core: no method takes a lock.
pub trait QueuePair {
    /// Hands up to `max_frames` received Ethernet frames to `handler`, one at a time; returns
    /// how many were handed.
    fn receive_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize;

    /// Queues one frame of `length` bytes that `fill` writes; the device sees it at the next
    /// [`flush`](Self::flush). `Err(SinkFull)` when no buffer is free even after reclaiming.
    fn transmit(&mut self, length: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), SinkFull>;

    /// Publishes the queued frames to the device and reclaims the buffers it has sent.
    fn flush(&mut self);

    /// Asks for an interrupt when frames arrive. Returns `true` if frames are already
    /// waiting: the caller must poll instead of halting.
    fn enable_interrupts(&mut self) -> bool;

    /// Stops asking for interrupts (busy polling).
    fn disable_interrupts(&mut self);

    /// What the queue's driver has counted so far (read on every turn of the loop: it must be
    /// a copy of plain fields, never a device access).
    fn counters(&self) -> NicQueueCounters {
        NicQueueCounters::default()
    }
}

/// What a core needs from the machine besides its queue.
pub trait Platform {
    /// The monotonic clock every layer reads.
    fn now(&self) -> Instant;

    /// Wakes `core` out of [`halt_until`](Self::halt_until) (an inter-processor interrupt).
    fn wake(&self, core: CoreId);

    /// Halts this core until an interrupt arrives (its queue's, a wake from another core) or
    /// `deadline` passes. Interrupts are enabled only while halted; an interrupt that arrived
    /// since the caller last looked ends the halt at once, so no wake is lost.
    fn halt_until(&self, deadline: Option<Instant>);
}
