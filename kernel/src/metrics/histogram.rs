//! A latency histogram with fixed buckets and one writer (the core that owns it): an
//! observation is a bucket increment, a sum and a count, each a plain load and store.

use core::time::Duration;

use super::single_writer::Counter;

/// One bucket's upper bound, as a duration and as Prometheus's `le` label (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyBucket {
    pub upper_bound: Duration,
    pub le: &'static str,
}

const fn bucket(micros: u64, le: &'static str) -> LatencyBucket {
    LatencyBucket {
        upper_bound: Duration::from_micros(micros),
        le,
    }
}

/// The bounds of every latency histogram: 0.5 ms to 10 s, roughly 1-2.5-5 per decade (the
/// `+Inf` bucket is implied).
pub const LATENCY_BUCKETS: [LatencyBucket; 15] = [
    bucket(500, "0.0005"),
    bucket(1_000, "0.001"),
    bucket(2_500, "0.0025"),
    bucket(5_000, "0.005"),
    bucket(10_000, "0.01"),
    bucket(25_000, "0.025"),
    bucket(50_000, "0.05"),
    bucket(100_000, "0.1"),
    bucket(250_000, "0.25"),
    bucket(500_000, "0.5"),
    bucket(1_000_000, "1"),
    bucket(2_500_000, "2.5"),
    bucket(5_000_000, "5"),
    bucket(10_000_000, "10"),
    bucket(30_000_000, "30"),
];

/// Buckets including the last, unbounded one.
const SLOTS: usize = LATENCY_BUCKETS.len() + 1;

/// Observations counted per bucket (not cumulative: the rendering adds them up), their sum
/// in nanoseconds and their count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; SLOTS],
    sum_nanoseconds: Counter,
    count: Counter,
}

impl Histogram {
    /// Counts one observation. Only the owning core may call it.
    pub fn observe(&self, latency: Duration) {
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bucket| latency <= bucket.upper_bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].increment();
        self.sum_nanoseconds
            .add(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        self.count.increment();
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: core::array::from_fn(|slot| self.buckets[slot].get()),
            sum_nanoseconds: self.sum_nanoseconds.get(),
            count: self.count.get(),
        }
    }
}

/// A plain copy of a [`Histogram`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket, not cumulative; the last is above every bound.
    pub buckets: [u64; SLOTS],
    pub sum_nanoseconds: u64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// Adds `other` bucket by bucket (for the total series).
    pub fn add(&mut self, other: &HistogramSnapshot) {
        for (sum, value) in self.buckets.iter_mut().zip(other.buckets) {
            *sum = sum.wrapping_add(value);
        }
        self.sum_nanoseconds = self.sum_nanoseconds.wrapping_add(other.sum_nanoseconds);
        self.count = self.count.wrapping_add(other.count);
    }

    /// Observations at or below each bound, in bucket order (what `_bucket{le=...}` says).
    pub fn cumulative(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let mut running = 0u64;
        LATENCY_BUCKETS
            .iter()
            .map(|bucket| bucket.le)
            .chain(core::iter::once("+Inf"))
            .zip(self.buckets)
            .map(move |(le, count)| {
                running = running.wrapping_add(count);
                (le, running)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_holds_it() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_micros(501));
        histogram.observe(Duration::from_secs(60));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets[0], 1);
        assert_eq!(snapshot.buckets[1], 1);
        assert_eq!(snapshot.buckets[SLOTS - 1], 1);
        assert_eq!(snapshot.count, 3);
        assert_eq!(snapshot.sum_nanoseconds, 60_001_001_000);
        let cumulative: Vec<_> = snapshot.cumulative().collect();
        assert_eq!(cumulative[0], ("0.0005", 1));
        assert_eq!(cumulative[1], ("0.001", 2));
        assert_eq!(cumulative[SLOTS - 2], ("30", 2));
        assert_eq!(cumulative[SLOTS - 1], ("+Inf", 3));
    }

    #[test]
    fn the_le_labels_say_the_bounds_in_seconds() {
        for bucket in LATENCY_BUCKETS {
            let seconds: f64 = bucket.le.parse().unwrap();
            assert_eq!(seconds, bucket.upper_bound.as_secs_f64(), "{}", bucket.le);
        }
        assert!(
            LATENCY_BUCKETS
                .windows(2)
                .all(|pair| pair[0].upper_bound < pair[1].upper_bound)
        );
    }
}
