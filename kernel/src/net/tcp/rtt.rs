//! The round-trip estimator and retransmission timeout of RFC 6298, with exponential back-off.

use core::time::Duration;

use super::TcpConfig;

/// SRTT, RTTVAR and RTO of one connection (RFC 6298 section 2).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RttEstimator {
    /// SRTT and RTTVAR in nanoseconds: `Duration`'s division and saturating arithmetic cost
    /// several times the plain integer steps, on every acknowledgment that is timed. (They
    /// would saturate at 584 years instead of `Duration::MAX`; an RTT is far shorter.)
    smoothed_nanos: Option<u64>,
    variation_nanos: u64,
    /// RTO before back-off.
    base_rto: Duration,
    /// Number of back-offs since the last new acknowledgment (RFC 6298 section 5.5).
    backoff: u32,
    min_rto: Duration,
    max_rto: Duration,
}

/// Clock granularity G of RFC 6298 section 2, in nanoseconds (our timer wheel ticks in milliseconds).
const GRANULARITY_NANOS: u64 = 1_000_000;

impl RttEstimator {
    pub(crate) fn new(config: &TcpConfig) -> Self {
        RttEstimator {
            smoothed_nanos: None,
            variation_nanos: 0,
            base_rto: config.initial_rto,
            backoff: 0,
            min_rto: config.min_rto,
            max_rto: config.max_rto,
        }
    }

    pub(crate) fn smoothed(&self) -> Option<Duration> {
        self.smoothed_nanos.map(Duration::from_nanos)
    }

    /// The current RTO, with back-off, within [min_rto, max_rto].
    pub(crate) fn rto(&self) -> Duration {
        if self.backoff == 0 {
            // The common case, without the multiplication.
            return self.base_rto.min(self.max_rto);
        }
        let factor = 1u32.checked_shl(self.backoff.min(16)).unwrap_or(u32::MAX);
        self.base_rto.saturating_mul(factor).min(self.max_rto)
    }

    /// Takes one RTT measurement (RFC 6298 sections 2.2 and 2.3).
    pub(crate) fn sample(&mut self, rtt: Duration) {
        let rtt = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        let (smoothed, variation) = match self.smoothed_nanos {
            None => (rtt, rtt / 2),
            Some(smoothed) => {
                let difference = smoothed.abs_diff(rtt);
                // RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT <- 7/8 SRTT + 1/8 R'
                (
                    smoothed.saturating_mul(7).saturating_add(rtt) / 8,
                    self.variation_nanos
                        .saturating_mul(3)
                        .saturating_add(difference)
                        / 4,
                )
            }
        };
        self.smoothed_nanos = Some(smoothed);
        self.variation_nanos = variation;
        let rto = smoothed.saturating_add(variation.saturating_mul(4).max(GRANULARITY_NANOS));
        self.base_rto = Duration::from_nanos(rto).clamp(self.min_rto, self.max_rto);
        // A new sample ends the back-off (RFC 6298 section 5.7 spirit, as Linux does).
        self.backoff = 0;
    }

    /// Doubles the RTO after a timeout (RFC 6298 section 5.5).
    pub(crate) fn back_off(&mut self) {
        if self.rto() < self.max_rto {
            self.backoff += 1;
        }
    }

    /// RFC 6298 section 5.7: a SYN that had to be retransmitted, with no RTT measured,
    /// leaves an RTO of at least 3 seconds for the data.
    pub(crate) fn after_syn_retransmission(&mut self) {
        if self.smoothed_nanos.is_none() {
            self.base_rto = self.base_rto.max(Duration::from_secs(3)).min(self.max_rto);
        }
    }

    /// Forgets the back-off once new data is acknowledged.
    pub(crate) fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_rfc_6298() {
        let config = TcpConfig::default();
        let mut estimator = RttEstimator::new(&config);
        assert_eq!(estimator.rto(), Duration::from_secs(1));
        estimator.sample(Duration::from_millis(100));
        // SRTT = 100, RTTVAR = 50, RTO = 100 + 4 * 50 = 300 ms.
        assert_eq!(estimator.smoothed(), Some(Duration::from_millis(100)));
        assert_eq!(estimator.rto(), Duration::from_millis(300));
        estimator.sample(Duration::from_millis(100));
        // RTTVAR = 3/4 * 50 = 37.5, RTO = 100 + 150 = 250 ms.
        assert_eq!(estimator.rto(), Duration::from_millis(250));
        estimator.back_off();
        assert_eq!(estimator.rto(), Duration::from_millis(500));
        for _ in 0..20 {
            estimator.back_off();
        }
        assert_eq!(estimator.rto(), config.max_rto);
        estimator.reset_backoff();
        assert_eq!(estimator.rto(), Duration::from_millis(250));
        // Tiny RTTs are held at the minimum RTO.
        estimator.sample(Duration::from_micros(10));
        for _ in 0..50 {
            estimator.sample(Duration::from_micros(10));
        }
        assert_eq!(estimator.rto(), config.min_rto);
    }
}
