//! The appliance's metrics, defined once (name, help, kind) and rendered two ways from that one
//! definition: the Prometheus text exposition format 0.0.4 (`GET /metrics`) and the
//! `name=value` lines of `GET /stats`.
//!
//! Every family that is counted per core has a series per core (`core="0"`, `core="1"`, ...)
//! and one more, `core="total"`, the sum of the cores (the same totals `/stats` prints on its
//! `core=total` lines). Aggregate over cores with `{core!="total"}`, or read the total series;
//! never sum over every series of a family.

mod definition;
mod exposition;
#[cfg(any(test, feature = "test-support"))]
pub mod exposition_check;
mod heap;
mod histogram;
mod nic_port;
mod single_writer;
#[cfg(test)]
mod tests;

pub use definition::{Metric, MetricKind};
pub use exposition::{Exposition, Labels, MetricSource, write_prometheus, write_stats};
pub use heap::{HEAP_METRICS, HeapUsage};
pub use histogram::{Histogram, HistogramSnapshot, LATENCY_BUCKETS, LatencyBucket};
pub use nic_port::{NIC_PORT_METRICS, NicPortCounters, NicPortStatistics};
pub use single_writer::Counter;

/// `CONTENT_TYPE` of a `/metrics` response (text format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
