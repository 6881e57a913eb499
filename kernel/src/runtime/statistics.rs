//! Per-core counters of the run loop, published by each core for anyone to read (the
//! appliance serves them over HTTP): traffic on every core, and how much work software
//! Receive Flow Deliver had to do.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::sync::CachePadded;

/// Generates the atomic block, its plain snapshot and the names printed in the report, from
/// one list so the three never disagree.
macro_rules! counters {
    ($( $(#[$meta:meta])* $field:ident ),* $(,)?) => {
        /// One core's published counters; only that core writes them.
        #[derive(Default)]
        pub struct CoreStatistics {
            $( $(#[$meta])* pub $field: AtomicU64, )*
        }

        /// A plain copy of one core's counters.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct CoreSnapshot {
            $( $(#[$meta])* pub $field: u64, )*
        }

        impl CoreStatistics {
            /// Publishes `snapshot` (relaxed stores: readers want recent numbers, not a
            /// consistent cut across counters).
            pub fn publish(&self, snapshot: &CoreSnapshot) {
                $( self.$field.store(snapshot.$field, Ordering::Relaxed); )*
            }

            pub fn snapshot(&self) -> CoreSnapshot {
                CoreSnapshot { $( $field: self.$field.load(Ordering::Relaxed), )* }
            }
        }

        impl CoreSnapshot {
            /// `name=value` pairs separated by spaces.
            pub fn write_fields(&self, out: &mut impl Write) -> fmt::Result {
                let mut separator = "";
                $(
                    write!(out, "{separator}{}={}", stringify!($field), self.$field)?;
                    separator = " ";
                )*
                let _ = separator;
                Ok(())
            }

            /// Adds `other` field by field (for the total line).
            pub fn add(&mut self, other: &CoreSnapshot) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

counters! {
    /// Frames taken from this core's receive queue.
    rx_frames,
    /// Frames handed to this core's transmit queue.
    tx_frames,
    /// Frames the transmit queue refused (full even after a flush).
    tx_full,
    /// TCP segments that arrived on this core's queue and belong to it.
    rfd_local,
    /// TCP segments that arrived here but belong to another core, handed over its ring.
    rfd_forwarded,
    /// Frames other cores handed to this core over its inbound rings.
    rfd_received,
    /// SYNs for a port this core does not serve, sent to a core that does (global listener).
    global_listener_fallbacks,
    /// Copies of ARP frames sent to the other cores (each core keeps its own ARP cache).
    arp_copies_sent,
    /// Frames dropped because the ring to their owner was full.
    ring_full_drops,
    /// Frames the interface accepted and dropped (all causes).
    frames_accepted,
    frames_dropped,
    /// TCP segments in and out, retransmissions (timeouts and fast, and the fast ones that
    /// timestamps later proved spurious and undid), connections.
    tcp_segments_in,
    tcp_segments_out,
    tcp_retransmits,
    tcp_fast_retransmits,
    tcp_spurious_fast_retransmits,
    tcp_timeouts,
    tcp_passive_opens,
    tcp_active_opens,
    tcp_resets_sent,
    /// Answers the TCP layer held back: challenge and duplicate ACKs over their rate limits,
    /// RSTs to unknown peers over theirs, segments dropped from a full output queue.
    tcp_acks_rate_limited,
    tcp_resets_rate_limited,
    tcp_output_queue_drops,
    /// Connections reset after their zero-window probes went unanswered.
    tcp_persist_timeouts,
    /// ICMP errors sent along the fallback route of the flow they quote.
    icmp_errors_routed,
    tcp_connections,
    tcp_time_wait,
    /// Times this core halted waiting for an interrupt or its next timer.
    halts,
    /// Iterations of the run loop.
    loops,
}

/// Every core's counters, shared by all cores.
pub struct NetworkStatistics {
    cores: Vec<CachePadded<CoreStatistics>>,
}

impl NetworkStatistics {
    pub fn new(core_count: usize) -> NetworkStatistics {
        NetworkStatistics {
            cores: (0..core_count)
                .map(|_| CachePadded::new(CoreStatistics::default()))
                .collect(),
        }
    }

    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    pub fn core(&self, index: usize) -> Option<&CoreStatistics> {
        self.cores.get(index).map(|padded| &**padded)
    }

    /// One line per core, `core=<i> name=value ...`, then a `total` line.
    pub fn write_report(&self, out: &mut impl Write) -> fmt::Result {
        let mut total = CoreSnapshot::default();
        for (index, core) in self.cores.iter().enumerate() {
            let snapshot = core.snapshot();
            write!(out, "core={index} ")?;
            snapshot.write_fields(out)?;
            writeln!(out)?;
            total.add(&snapshot);
        }
        write!(out, "core=total ")?;
        total.write_fields(out)?;
        writeln!(out)
    }
}
