//! What a metric is: its Prometheus family name, its `/stats` field name, its help text and
//! its kind. Every source of metrics lists its metrics as constants of this type.

/// The Prometheus metric types the appliance uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into fixed buckets, with their sum and count.
    Histogram,
}

impl MetricKind {
    /// The word of the `# TYPE` line.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// Prometheus family name: `unisock_...`, base units (seconds, bytes), `_total` for
    /// counters.
    pub name: &'static str,
    /// The field name on the `/stats` lines (kept stable for the scripts that read them).
    pub stats_name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// The labels a series carries besides `core` (for the documentation).
    pub labels: &'static [&'static str],
}

impl Metric {
    /// A family without labels besides `core`.
    pub const fn new(
        name: &'static str,
        stats_name: &'static str,
        kind: MetricKind,
        help: &'static str,
    ) -> Metric {
        Metric {
            name,
            stats_name,
            help,
            kind,
            labels: &[],
        }
    }

    /// The same family with `labels`.
    pub const fn with_labels(self, labels: &'static [&'static str]) -> Metric {
        Metric { labels, ..self }
    }
}
