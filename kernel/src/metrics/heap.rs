//! How much of the heap is in use: the allocator's own counters, read when a report is asked
//! for (the boot crate owns the allocator and fills this in).

use core::fmt::{self, Write};

use super::definition::{Metric, MetricKind};
use super::exposition::{Exposition, MetricSource};

pub const HEAP_USED: Metric = Metric::new(
    "unisock_heap_used_bytes",
    "heap_used_bytes",
    MetricKind::Gauge,
    "Bytes of the heap held by live allocations (their requested sizes).",
);
pub const HEAP_CAPACITY: Metric = Metric::new(
    "unisock_heap_capacity_bytes",
    "heap_capacity_bytes",
    MetricKind::Gauge,
    "Bytes the heap was given at boot (the allocator's arena).",
);
/// The heap's metrics (for the documentation).
pub const HEAP_METRICS: [Metric; 2] = [HEAP_USED, HEAP_CAPACITY];

/// The heap of the whole image (shared by every core, so it has no `core` label).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapUsage {
    pub used_bytes: u64,
    pub capacity_bytes: u64,
}

impl MetricSource for HeapUsage {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        out.family(&HEAP_USED)?;
        out.sample(&HEAP_USED, &[], self.used_bytes)?;
        out.family(&HEAP_CAPACITY)?;
        out.sample(&HEAP_CAPACITY, &[], self.capacity_bytes)
    }

    /// One line: `memory heap_used_bytes=<n> heap_capacity_bytes=<n>`.
    fn write_stats(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(
            out,
            "memory {}={} {}={}",
            HEAP_USED.stats_name, self.used_bytes, HEAP_CAPACITY.stats_name, self.capacity_bytes
        )
    }
}
