//! The appliance's metrics report, in either rendering (`/stats` lines or Prometheus text
//! format 0.0.4), from the sources the image hands it (the kernel's per-core counters, the
//! proxy's, the heap's). Both renderings come from the same metric definitions.

use core::fmt;

use unisock_kernel::metrics::{self, MetricSource};

pub use unisock_kernel::metrics::PROMETHEUS_CONTENT_TYPE;

/// Which rendering a report is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// `GET /stats`: `core=<i> name=value ...` lines and the like.
    Stats,
    /// `GET /metrics`: the Prometheus text exposition format 0.0.4.
    Prometheus,
}

impl ReportFormat {
    /// The `Content-Type` of a response carrying the report.
    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Stats => "text/plain",
            ReportFormat::Prometheus => PROMETHEUS_CONTENT_TYPE,
        }
    }
}

/// Renders `sources`, in order, as `format`.
pub fn write_report(
    format: ReportFormat,
    sources: &[&dyn MetricSource],
    out: &mut impl fmt::Write,
) -> fmt::Result {
    match format {
        ReportFormat::Stats => metrics::write_stats(sources, out),
        ReportFormat::Prometheus => metrics::write_prometheus(sources, out),
    }
}
