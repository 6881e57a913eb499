//! Listeners and their queues: half-open connections (the SYN queue, small records, not full TCBs) and the accept queue of established ones.

use alloc::collections::VecDeque;
use core::net::SocketAddrV4;
use core::task::Waker;

use super::connection::Handshake;
use super::seq::SeqNum;
use super::syn_cookie;
use crate::time::Instant;

/// A listening socket (RFC 9293 state LISTEN).
pub(crate) struct Listener {
    pub(crate) local: SocketAddrV4,
    /// Most connections waiting in `accept_queue`.
    pub(crate) backlog: usize,
    /// Socket slots of established connections not yet accepted, oldest first.
    pub(crate) accept_queue: VecDeque<u32>,
    /// Half-open connections of this listener in the layer's SYN table.
    pub(crate) half_open_count: usize,
    pub(crate) accept_waker: Option<Waker>,
    /// When the SYN queue last overflowed (a SYN answered with a cookie): only for a while
    /// after it is a bare ACK checked as a cookie.
    pub(crate) last_syn_queue_overflow: Option<Instant>,
}

impl Listener {
    pub(crate) fn new(local: SocketAddrV4, backlog: usize) -> Self {
        Listener {
            local,
            backlog,
            accept_queue: VecDeque::new(),
            half_open_count: 0,
            accept_waker: None,
            last_syn_queue_overflow: None,
        }
    }

    /// Whether this listener takes segments sent to `destination`.
    pub(crate) fn accepts_address(&self, destination: SocketAddrV4) -> bool {
        self.local.ip().is_unspecified() || self.local.ip() == destination.ip()
    }

    /// Whether a cookie this listener sent could still be valid at `now`: a bare ACK is
    /// checked as one only then (issue 10, defect 4; Linux `tcp_synq_no_recent_overflow`).
    /// Otherwise every stray ACK would be a 2^-24 chance of a blind connection.
    pub(crate) fn may_hold_cookies(&self, now: Instant) -> bool {
        self.last_syn_queue_overflow
            .is_some_and(|overflow| now.saturating_since(overflow) <= syn_cookie::LIFETIME)
    }

    pub(crate) fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() >= self.backlog
    }

    pub(crate) fn wake_acceptor(&mut self) {
        if let Some(waker) = self.accept_waker.take() {
            waker.wake();
        }
    }
}

/// A connection in SYN-RECEIVED after a passive open: what the SYN-ACK promised, and its
/// retransmission schedule. About 80 bytes instead of a full TCB.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HalfOpen {
    /// Slot of the listener it belongs to.
    pub(crate) listener: u32,
    pub(crate) handshake: Handshake,
    pub(crate) retries: u32,
    pub(crate) deadline: Instant,
}

impl HalfOpen {
    /// The ISN we sent.
    pub(crate) fn initial_send(&self) -> SeqNum {
        self.handshake.initial_send
    }
}
