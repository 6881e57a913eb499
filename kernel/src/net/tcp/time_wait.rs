//! TIME_WAIT (RFC 9293 section 3.10.7.4): a small record per closed connection, kept 2*MSL, and the rules for reusing its 4-tuple early (RFC 6191).

use super::seq::SeqNum;
use crate::time::Instant;

/// What remains of a connection in TIME_WAIT: enough to acknowledge a retransmitted FIN and to
/// judge a new SYN for the same 4-tuple. No buffers, no TCB.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeWaitRecord {
    pub(crate) send_next: SeqNum,
    pub(crate) receive_next: SeqNum,
    /// (offset of our TSval, TS.Recent) when timestamps were in use.
    pub(crate) timestamps: Option<(u32, u32)>,
    pub(crate) entered: Instant,
    pub(crate) expires: Instant,
    /// When the record last acknowledged a retransmitted FIN: at most one such ACK per
    /// `TcpConfig::invalid_ack_interval`.
    pub(crate) last_ack: Option<Instant>,
}

impl TimeWaitRecord {
    /// Whether a new SYN for this 4-tuple may open a new connection now (RFC 6191 section 2):
    /// with timestamps, the SYN's TSval must be newer than TS.Recent; without, its sequence
    /// number must be beyond RCV.NXT (RFC 1122 section 4.2.2.13).
    pub(crate) fn accepts_new_syn(&self, sequence: SeqNum, timestamp: Option<u32>) -> bool {
        match (self.timestamps, timestamp) {
            (Some((_, recent)), Some(value)) => SeqNum(value).after(SeqNum(recent)),
            _ => sequence.after(self.receive_next),
        }
    }

    /// Whether this host may reuse the 4-tuple for a new active connection (what Linux calls
    /// `tcp_tw_reuse`): only when timestamps were on, so that the peer's PAWS tells the
    /// incarnations apart, and at least a second after entering TIME_WAIT.
    pub(crate) fn reusable_for_connect(&self, now: Instant) -> bool {
        self.timestamps.is_some() && now.saturating_since(self.entered).as_secs() >= 1
    }

    /// An ISN for a new incarnation that lies beyond anything the old one sent (RFC 9293
    /// section 3.10.7.4 and Linux's `snd_nxt + 65535 + 2`).
    pub(crate) fn next_initial_sequence(&self) -> SeqNum {
        self.send_next + 65_537
    }
}
