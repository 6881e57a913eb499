//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` once per
//! family, then its samples, label values escaped; histograms as cumulative `_bucket{le=...}`
//! series with `_sum` (seconds) and `_count`. Also the trait every source of metrics
//! implements so that `/metrics` and `/stats` are rendered from the same definitions.

use core::fmt::{self, Display, Write};

use super::definition::Metric;
use super::histogram::HistogramSnapshot;

/// A series' labels: name and value (escaped when written).
pub type Labels<'a> = &'a [(&'static str, &'a dyn Display)];

/// Something that owns metrics and renders them both ways from their definitions.
pub trait MetricSource {
    /// Every family of the source, each with `# HELP`/`# TYPE` once and all its series.
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result;
    /// The source's `/stats` lines.
    fn write_stats(&self, out: &mut dyn Write) -> fmt::Result;
}

/// Renders every source in order as one Prometheus text exposition (`GET /metrics`). No two
/// sources may define the same family.
pub fn write_prometheus(sources: &[&dyn MetricSource], out: &mut impl Write) -> fmt::Result {
    let mut exposition = Exposition::new(out);
    for source in sources {
        source.write_prometheus(&mut exposition)?;
    }
    Ok(())
}

/// Renders every source's `/stats` lines in order.
pub fn write_stats(sources: &[&dyn MetricSource], out: &mut impl Write) -> fmt::Result {
    for source in sources {
        source.write_stats(out)?;
    }
    Ok(())
}

/// A text exposition being written.
pub struct Exposition<'a> {
    out: &'a mut dyn Write,
}

impl<'a> Exposition<'a> {
    pub fn new(out: &'a mut dyn Write) -> Exposition<'a> {
        Exposition { out }
    }

    /// The `# HELP` and `# TYPE` lines of `metric`; its samples must follow before any other
    /// family's.
    pub fn family(&mut self, metric: &Metric) -> fmt::Result {
        write!(self.out, "# HELP {} ", metric.name)?;
        write_escaped(self.out, metric.help, false)?;
        writeln!(
            self.out,
            "\n# TYPE {} {}",
            metric.name,
            metric.kind.prometheus_type()
        )
    }

    /// One sample of a counter or gauge.
    pub fn sample(&mut self, metric: &Metric, labels: Labels<'_>, value: u64) -> fmt::Result {
        self.out.write_str(metric.name)?;
        self.write_labels(labels, None)?;
        writeln!(self.out, " {value}")
    }

    /// One histogram series: its cumulative buckets, sum (in seconds) and count.
    pub fn histogram(
        &mut self,
        metric: &Metric,
        labels: Labels<'_>,
        snapshot: &HistogramSnapshot,
    ) -> fmt::Result {
        for (le, count) in snapshot.cumulative() {
            write!(self.out, "{}_bucket", metric.name)?;
            self.write_labels(labels, Some(le))?;
            writeln!(self.out, " {count}")?;
        }
        write!(self.out, "{}_sum", metric.name)?;
        self.write_labels(labels, None)?;
        let nanoseconds = snapshot.sum_nanoseconds;
        writeln!(
            self.out,
            " {}.{:09}",
            nanoseconds / 1_000_000_000,
            nanoseconds % 1_000_000_000
        )?;
        write!(self.out, "{}_count", metric.name)?;
        self.write_labels(labels, None)?;
        writeln!(self.out, " {}", snapshot.count)
    }

    fn write_labels(&mut self, labels: Labels<'_>, le: Option<&str>) -> fmt::Result {
        if labels.is_empty() && le.is_none() {
            return Ok(());
        }
        self.out.write_char('{')?;
        let mut separator = "";
        for (name, value) in labels {
            write!(self.out, "{separator}{name}=\"")?;
            write!(
                Escaping {
                    out: &mut *self.out
                },
                "{value}"
            )?;
            self.out.write_char('"')?;
            separator = ",";
        }
        if let Some(le) = le {
            write!(self.out, "{separator}le=\"{le}\"")?;
        }
        self.out.write_char('}')
    }
}

/// Escapes what the format reserves: backslash and newline everywhere, double quote in label
/// values.
fn write_escaped(out: &mut dyn Write, text: &str, quotes: bool) -> fmt::Result {
    for character in text.chars() {
        match character {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '"' if quotes => out.write_str("\\\"")?,
            other => out.write_char(other)?,
        }
    }
    Ok(())
}

/// A writer that escapes a label value as it is formatted.
struct Escaping<'a> {
    out: &'a mut dyn Write,
}

impl Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.out, text, true)
    }
}
