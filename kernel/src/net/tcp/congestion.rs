//! Congestion control: slow start and congestion avoidance (RFC 5681), fast retransmit and New Reno recovery (RFC 6582).

/// What the sender must do after an acknowledgment was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckAction {
    Nothing,
    /// Third duplicate ACK: retransmit the first unacknowledged segment (RFC 5681 section 3.2 step 2).
    FastRetransmit,
    /// Partial ACK during recovery: retransmit the first unacknowledged segment (RFC 6582 section 3.2 step 5).
    RetransmitFirstUnacknowledged,
}

/// New Reno state of one connection; all quantities in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewReno {
    pub(crate) window: u32,
    pub(crate) slow_start_threshold: u32,
    mss: u32,
    duplicate_acks: u32,
    /// `Some(recover)` while in fast recovery (RFC 6582 section 3.2).
    recover: Option<u32>,
    /// Bytes acknowledged in congestion avoidance since the window last grew (RFC 5681 section 3.1, byte counting).
    acknowledged_in_avoidance: u32,
    /// max(FlightSize, ssthresh) when fast retransmit began: the ssthresh to restore if that
    /// retransmission proves spurious (RFC 4015 section 3.2, `pipe_prev`).
    before_recovery: Option<u32>,
    /// RFC 6582's `recover` after a retransmission timeout: the highest sequence number
    /// sent before it. Until the cumulative ACK reaches it, duplicate ACKs come from the
    /// go-back-N retransmissions or the late originals, not from a new loss, and must not
    /// start fast retransmit (RFC 6582 section 3.2 step 2), unless the ACK heuristic says
    /// otherwise (see `last_advance`). Cleared once an ACK reaches it.
    timeout_recover: Option<u32>,
    /// Bytes the latest new ACK advanced SND.UNA by (RFC 6582 section 4.1,
    /// highest_ack - prev_highest_ack).
    last_advance: u32,
}

impl NewReno {
    /// Initial window of `initial_segments` segments (RFC 6928) and an arbitrarily high
    /// threshold (RFC 5681 section 3.1).
    pub(crate) fn new(mss: u32, initial_segments: u32) -> Self {
        let mss = mss.max(1);
        NewReno {
            window: mss.saturating_mul(initial_segments.max(1)),
            slow_start_threshold: u32::MAX,
            mss,
            duplicate_acks: 0,
            recover: None,
            acknowledged_in_avoidance: 0,
            before_recovery: None,
            timeout_recover: None,
            last_advance: 0,
        }
    }

    pub(crate) fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
    }

    pub(crate) fn in_recovery(&self) -> bool {
        self.recover.is_some()
    }

    /// The window the sender may fill: cwnd, plus one segment for each of the first two
    /// duplicate ACKs before recovery (limited transmit, RFC 3042 section 2), so that a small
    /// window still draws the three duplicates fast retransmit needs instead of waiting for the
    /// retransmission timer. cwnd itself does not change.
    pub(crate) fn sending_window(&self) -> u32 {
        if self.recover.is_none() && self.duplicate_acks < 3 {
            self.window
                .saturating_add(self.duplicate_acks.saturating_mul(self.mss))
        } else {
            self.window
        }
    }

    /// An ACK that advanced SND.UNA by `acknowledged` bytes; `ack` is its value (as u32)
    /// and `flight` the bytes still outstanding after it.
    pub(crate) fn on_new_ack(&mut self, acknowledged: u32, ack: u32, flight: u32) -> AckAction {
        self.duplicate_acks = 0;
        self.last_advance = acknowledged;
        if self
            .timeout_recover
            .is_some_and(|recover| (ack.wrapping_sub(recover) as i32) >= 0)
        {
            self.timeout_recover = None;
        }
        if let Some(recover) = self.recover {
            if (ack.wrapping_sub(recover) as i32) >= 0 {
                // Full acknowledgment (RFC 6582 section 3.2 step 6).
                self.window = self
                    .slow_start_threshold
                    .min(flight.max(self.mss) + self.mss);
                self.recover = None;
                self.before_recovery = None;
                return AckAction::Nothing;
            }
            // Partial acknowledgment: deflate by the amount acknowledged, add back one MSS.
            self.window = self
                .window
                .saturating_sub(acknowledged)
                .saturating_add(self.mss)
                .max(self.mss);
            return AckAction::RetransmitFirstUnacknowledged;
        }
        if self.window < self.slow_start_threshold {
            // Slow start: grow by the bytes acknowledged, at most one MSS per ACK (RFC 5681 section 3.1).
            self.window = self.window.saturating_add(acknowledged.min(self.mss));
        } else {
            // Congestion avoidance: about one MSS per window of data acknowledged.
            self.acknowledged_in_avoidance =
                self.acknowledged_in_avoidance.saturating_add(acknowledged);
            if self.acknowledged_in_avoidance >= self.window {
                self.acknowledged_in_avoidance -= self.window;
                self.window = self.window.saturating_add(self.mss);
            }
        }
        AckAction::Nothing
    }

    /// A duplicate ACK (RFC 5681 section 2 definition); `flight` is the bytes outstanding and
    /// `highest_sent` SND.MAX as u32.
    /// `newly_sacked` says whether it SACKed bytes not SACKed before.
    pub(crate) fn on_duplicate_ack(
        &mut self,
        flight: u32,
        highest_sent: u32,
        newly_sacked: bool,
    ) -> AckAction {
        if self.recover.is_some() {
            // Fast recovery: each further duplicate inflates the window (RFC 6582 section 3.2 step 4).
            self.window = self.window.saturating_add(self.mss);
            return AckAction::Nothing;
        }
        // RFC 6582 section 3.2 step 2: the cumulative ACK has not passed `recover`, so these
        // duplicates may come from go-back-N retransmissions of data the receiver had. The
        // ACK heuristic (section 4.1) tells the cases apart: a hole filled by such a
        // retransmission moves the cumulative ACK far (over the data behind the hole), a
        // real new loss follows an ACK that advanced by at most four segments. A duplicate
        // that SACKs new bytes reports data that arrived beyond a hole, not a duplicate of
        // what the receiver had (whose SACK blocks would not change): it counts.
        if self.timeout_recover.is_some()
            && !newly_sacked
            && !(self.window > self.mss && self.last_advance <= 4 * self.mss)
        {
            return AckAction::Nothing;
        }
        self.duplicate_acks += 1;
        if self.duplicate_acks == 3 {
            self.before_recovery = Some(flight.max(self.slow_start_threshold));
            // RFC 5681 section 3.2 steps 2 and 3 (equation 4).
            self.slow_start_threshold = (flight / 2).max(2 * self.mss);
            self.window = self.slow_start_threshold + 3 * self.mss;
            self.recover = Some(highest_sent);
            return AckAction::FastRetransmit;
        }
        AckAction::Nothing
    }

    /// The fast retransmission that began this recovery was spurious: the original segment
    /// had only been reordered. Ends recovery and undoes the reduction (the Eifel response,
    /// RFC 4015 section 4): ssthresh back to what it was, cwnd to what is in flight plus what
    /// this ACK acknowledged (at most an initial window), so that slow start regains the rest
    /// without a burst. `acknowledged` is what the ACK that proved it acknowledged, `flight`
    /// what is still outstanding after it. A partial ACK (RFC 6582) ends recovery too: under
    /// heavy reordering the segments behind a reordered one are often late as well, and a real
    /// loss among them draws its own duplicate ACKs. Returns whether it undid (once per
    /// recovery).
    pub(crate) fn undo_spurious_recovery(
        &mut self,
        acknowledged: u32,
        flight: u32,
        initial_window: u32,
    ) -> bool {
        let Some(before) = self.before_recovery.take() else {
            return false;
        };
        self.recover = None;
        self.duplicate_acks = 0;
        self.slow_start_threshold = before;
        self.window = flight
            .saturating_add(acknowledged.min(initial_window))
            .max(self.mss);
        true
    }

    /// A retransmission timeout (RFC 5681 section 3.1 equation 4, and cwnd = 1 MSS);
    /// `highest_sent` is SND.MAX as u32, which becomes `recover` (RFC 6582 section 3.2 step 1).
    pub(crate) fn on_timeout(&mut self, flight: u32, highest_sent: u32) {
        self.timeout_recover = Some(highest_sent);
        self.slow_start_threshold = (flight / 2).max(2 * self.mss);
        self.window = self.mss;
        self.duplicate_acks = 0;
        self.recover = None;
        self.acknowledged_in_avoidance = 0;
        self.before_recovery = None;
    }

    /// After an idle period longer than an RTO, restart from the initial window (RFC 5681 section 4.1).
    pub(crate) fn restart_after_idle(&mut self, initial_window: u32) {
        self.window = self.window.min(initial_window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance() {
        let mut reno = NewReno::new(1000, 2);
        assert_eq!(reno.window, 2000);
        reno.on_new_ack(1000, 1000, 1000);
        reno.on_new_ack(1000, 2000, 0);
        assert_eq!(reno.window, 4000);
        reno.slow_start_threshold = 4000;
        for step in 1..=4 {
            reno.on_new_ack(1000, 2000 + step * 1000, 0);
        }
        assert_eq!(reno.window, 5000);
    }

    #[test]
    fn fast_retransmit_and_new_reno_recovery() {
        let mut reno = NewReno::new(1000, 10);
        assert_eq!(
            reno.on_duplicate_ack(10_000, 10_000, false),
            AckAction::Nothing
        );
        assert_eq!(
            reno.on_duplicate_ack(10_000, 10_000, false),
            AckAction::Nothing
        );
        assert_eq!(
            reno.on_duplicate_ack(10_000, 10_000, false),
            AckAction::FastRetransmit
        );
        assert!(reno.in_recovery());
        assert_eq!(reno.slow_start_threshold, 5000);
        assert_eq!(reno.window, 8000);
        reno.on_duplicate_ack(10_000, 10_000, false);
        assert_eq!(reno.window, 9000);
        // Partial ACK of 2000 bytes: deflate by 2000, add 1000, retransmit.
        assert_eq!(
            reno.on_new_ack(2000, 2000, 8000),
            AckAction::RetransmitFirstUnacknowledged
        );
        assert_eq!(reno.window, 8000);
        assert!(reno.in_recovery());
        // Full ACK ends recovery with cwnd = min(ssthresh, flight + mss).
        assert_eq!(reno.on_new_ack(8000, 10_000, 0), AckAction::Nothing);
        assert!(!reno.in_recovery());
        assert_eq!(reno.window, 2000);
    }

    #[test]
    fn limited_transmit_lends_a_segment_per_early_duplicate() {
        let mut reno = NewReno::new(1000, 2);
        assert_eq!(reno.sending_window(), 2000);
        reno.on_duplicate_ack(2000, 2000, false);
        assert_eq!(reno.sending_window(), 3000);
        reno.on_duplicate_ack(3000, 3000, false);
        assert_eq!(reno.sending_window(), 4000);
        assert_eq!(reno.window, 2000, "cwnd itself is unchanged (RFC 3042)");
        assert_eq!(
            reno.on_duplicate_ack(4000, 4000, false),
            AckAction::FastRetransmit
        );
        assert_eq!(reno.sending_window(), reno.window);
        reno.on_new_ack(4000, 4000, 0);
        assert_eq!(reno.sending_window(), reno.window);
    }

    #[test]
    fn a_spurious_fast_retransmit_is_undone() {
        let mut reno = NewReno::new(1000, 10);
        reno.slow_start_threshold = 8000;
        for _ in 0..3 {
            reno.on_duplicate_ack(10_000, 10_000, false);
        }
        assert!(reno.in_recovery());
        assert_eq!(reno.slow_start_threshold, 5000);
        assert!(reno.undo_spurious_recovery(3000, 7000, 10_000));
        assert!(!reno.in_recovery());
        assert_eq!(reno.slow_start_threshold, 10_000);
        assert_eq!(reno.window, 10_000);
        // Only once per recovery.
        reno.window = 4000;
        assert!(!reno.undo_spurious_recovery(3000, 7000, 10_000));
        assert_eq!(reno.window, 4000);
    }

    #[test]
    fn timeout_collapses_the_window() {
        let mut reno = NewReno::new(1000, 10);
        reno.on_timeout(8000, 8000);
        assert_eq!(reno.window, 1000);
        assert_eq!(reno.slow_start_threshold, 4000);
    }

    #[test]
    fn duplicates_before_recover_is_acknowledged_do_not_start_fast_retransmit() {
        let mut reno = NewReno::new(1000, 10);
        reno.on_timeout(10_000, 10_000);
        // The retransmission filled a hole in front of five segments the receiver had.
        reno.on_new_ack(6000, 6000, 4000);
        for _ in 0..5 {
            assert_eq!(
                reno.on_duplicate_ack(4000, 10_000, false),
                AckAction::Nothing
            );
        }
        assert!(!reno.in_recovery());
        reno.on_new_ack(4000, 10_000, 3000);
        for _ in 0..2 {
            reno.on_duplicate_ack(3000, 13_000, false);
        }
        assert_eq!(
            reno.on_duplicate_ack(3000, 13_000, false),
            AckAction::FastRetransmit
        );
    }
}
