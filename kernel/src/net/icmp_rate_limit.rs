//! The per-core token bucket that bounds how many ICMP errors a core sends (Linux's `icmp_msgs_per_sec` and `icmp_msgs_burst`), so a flood to closed ports cannot turn the host into a reflector.

use core::time::Duration;

use crate::time::Instant;

/// Tokens added per second: Linux's default `net.ipv4.icmp_msgs_per_sec` (1000). Each core
/// has its own bucket (no shared state between cores), so the host as a whole sends at most
/// this many times its core count.
pub const ERRORS_PER_SECOND: u32 = 1000;

/// Most tokens the bucket holds: Linux's default `net.ipv4.icmp_msgs_burst` (50).
pub const BURST: u32 = 50;

/// A token bucket in whole tokens: RFC 1812 4.3.2.8 and RFC 4443 2.4(f) ask for ICMP error
/// rate limiting, and Linux applies this bucket to destination unreachable messages.
#[derive(Clone, Debug)]
pub struct IcmpRateLimiter {
    tokens: u32,
    burst: u32,
    /// Time that earns one token.
    interval: Duration,
    /// When the last token was credited (tokens are credited in whole intervals, so a caller
    /// that asks often does not lose the fractions).
    credited_until: Instant,
}

impl IcmpRateLimiter {
    /// A full bucket of `burst` tokens refilled at `per_second` (at least 1).
    pub fn new(per_second: u32, burst: u32, now: Instant) -> IcmpRateLimiter {
        IcmpRateLimiter {
            tokens: burst,
            burst,
            interval: Duration::from_secs(1) / per_second.max(1),
            credited_until: now,
        }
    }

    /// Takes one token if there is one; false means the error must not be sent.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.credited_until {
            return;
        }
        let elapsed = now.saturating_since(self.credited_until);
        let earned = elapsed.as_nanos() / self.interval.as_nanos().max(1);
        if earned == 0 {
            return;
        }
        if self.tokens as u128 + earned >= self.burst as u128 {
            self.tokens = self.burst;
            self.credited_until = now;
        } else {
            self.tokens += earned as u32;
            self.credited_until = self.credited_until + self.interval * earned as u32;
        }
    }
}

impl Default for IcmpRateLimiter {
    fn default() -> IcmpRateLimiter {
        IcmpRateLimiter::new(ERRORS_PER_SECOND, BURST, Instant::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let mut limiter = IcmpRateLimiter::new(1000, 50, Instant::ZERO);
        let allowed = (0..80).filter(|_| limiter.allow(Instant::ZERO)).count();
        assert_eq!(allowed, 50);
        // Half a millisecond earns nothing; one millisecond earns one token.
        assert!(!limiter.allow(Instant::from_micros(500)));
        assert!(limiter.allow(Instant::from_millis(1)));
        assert!(!limiter.allow(Instant::from_millis(1)));
        // Fractions are not lost to frequent asking: at 1.5 ms and 2 ms, one more.
        assert!(!limiter.allow(Instant::from_micros(1500)));
        assert!(limiter.allow(Instant::from_millis(2)));
        // A long quiet spell refills to the burst, no further.
        let later = Instant::from_millis(10_000);
        assert_eq!((0..80).filter(|_| limiter.allow(later)).count(), 50);
    }
}
