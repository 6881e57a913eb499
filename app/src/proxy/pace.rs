//! How long a client may keep the proxy waiting over one body: each wait bounded by the idle timeout, all the waits together by a budget that the client's bytes refill at a minimum rate (a token bucket). Only waits on the client count, never waits on the backend.
//!
//! Apache's mod_reqtimeout works this way (`RequestReadTimeout body=20,MinRate=500`: 20 s,
//! extended by a second per 500 bytes received); nginx's `client_body_timeout` and
//! `send_timeout` bound only each read or write, which is what let a POST sending a byte
//! every 59 s hold a client and a backend connection for months.

use core::time::Duration;

/// The waiting one client may cause over one body (a request body read, or a response written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The longest single wait (`timeout.client`).
    idle: Duration,
    /// Waiting time left; never more than `allowance`.
    left: Duration,
    /// The budget at the start, and its ceiling: how far the client may fall behind
    /// `bytes_per_second` (`timeout.body`, `timeout.send`).
    allowance: Duration,
    /// Bytes that earn one second of waiting back (`timeout.body-rate`, `timeout.send-rate`);
    /// 0: none, the allowance is a deadline for the whole body.
    bytes_per_second: u64,
}

impl Pace {
    pub fn new(idle: Duration, allowance: Duration, bytes_per_second: u64) -> Pace {
        Pace {
            idle,
            left: allowance,
            allowance,
            bytes_per_second,
        }
    }

    /// Each wait bounded by `idle`, with no budget over them (a backend's side of a copy,
    /// bounded by `timeout.backend` per read and write).
    pub fn per_wait(idle: Duration) -> Pace {
        Pace::new(idle, Duration::MAX, 0)
    }

    /// How long the next read or write may wait for the client; zero when the budget is
    /// spent.
    pub fn next_wait(&self) -> Duration {
        self.idle.min(self.left)
    }

    /// Accounts one wait: `waited` comes off the budget, and `bytes` moved earn
    /// `bytes / bytes_per_second` seconds back, up to the allowance. The ceiling is what stops
    /// a client that read fast for a while from saving up hours of trickling afterwards.
    pub fn record(&mut self, waited: Duration, bytes: usize) {
        self.left = self.left.saturating_sub(waited);
        if let Some(nanoseconds) = (bytes as u64)
            .saturating_mul(1_000_000_000)
            .checked_div(self.bytes_per_second)
        {
            self.left = self
                .left
                .saturating_add(Duration::from_nanos(nanoseconds))
                .min(self.allowance);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_byte_every_59_seconds_spends_the_allowance_in_two_waits() {
        let mut pace = Pace::new(60 * SECOND, 60 * SECOND, 1024);
        assert_eq!(pace.next_wait(), 60 * SECOND);
        pace.record(59 * SECOND, 1);
        assert!(pace.next_wait() < 2 * SECOND, "{:?}", pace.next_wait());
        pace.record(pace.next_wait(), 0);
        assert_eq!(pace.next_wait(), Duration::ZERO);
    }

    #[test]
    fn bytes_at_the_rate_keep_the_budget_full_and_never_above_it() {
        let mut pace = Pace::new(60 * SECOND, 10 * SECOND, 1000);
        for _ in 0..1000 {
            pace.record(SECOND, 1000);
        }
        assert_eq!(pace.next_wait(), 10 * SECOND);
        pace.record(Duration::ZERO, 1_000_000);
        assert_eq!(pace.next_wait(), 10 * SECOND, "capped at the allowance");
    }

    #[test]
    fn without_a_rate_the_allowance_is_a_whole_body_deadline() {
        let mut pace = Pace::new(5 * SECOND, 12 * SECOND, 0);
        pace.record(4 * SECOND, 1_000_000);
        pace.record(4 * SECOND, 1_000_000);
        assert_eq!(pace.next_wait(), 4 * SECOND);
        pace.record(4 * SECOND, 1_000_000);
        assert_eq!(pace.next_wait(), Duration::ZERO);
    }
}
