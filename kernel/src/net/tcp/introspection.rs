//! What the layer tells an operator: a listing of every socket (like `ss`) and counters named after their causes.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use super::connection::Owner;
use super::slots::SocketEntry;
use super::tuple::TupleTable;
use super::{CoreId, SocketHandle, TcpLayer, TcpState};

/// One line of the socket listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// The handle, if the socket is held by an application (none for half-open connections,
    /// orphans being closed, and TIME_WAIT records).
    pub handle: Option<SocketHandle>,
    pub state: TcpState,
    pub local: SocketAddrV4,
    /// `0.0.0.0:0` for a listener.
    pub remote: SocketAddrV4,
    /// Bytes written by the application and not yet acknowledged by the peer.
    pub send_queue_bytes: usize,
    /// Bytes received and not yet read by the application (or, for a listener, connections
    /// waiting in the accept queue).
    pub receive_queue_bytes: usize,
    /// Smoothed round-trip time (RFC 6298 SRTT), if measured.
    pub smoothed_rtt: Option<Duration>,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Retransmissions over the connection's life.
    pub retransmissions: u64,
    /// Congestion window in bytes.
    pub congestion_window: u32,
    pub core: CoreId,
}

/// Why an incoming segment (or a request) was dropped; indexes [`TcpCounters::drops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Too short, bad data offset, bad options, or impossible flag combination.
    Malformed = 0,
    /// Outside the receive window (answered with an ACK per RFC 9293 section 3.10.7.4).
    OutOfWindow,
    /// An ACK for data we never sent (answered with an ACK).
    UnacceptableAck,
    /// A RST that failed the RFC 5961 section 3 checks (possibly answered with a challenge ACK).
    InvalidReset,
    /// A SYN in a synchronized state (RFC 5961 section 4: answered with a challenge ACK).
    UnexpectedSyn,
    /// The listener's SYN queue was full and SYN cookies are off.
    SynQueueFull,
    /// The listener's accept queue was full when the handshake completed.
    AcceptQueueFull,
    /// The per-core connection limit refused a new connection.
    ConnectionLimit,
    /// The per-core buffer-memory limit refused arriving data.
    MemoryLimit,
    /// An ACK carried a SYN cookie that did not validate.
    InvalidSynCookie,
    /// The reassembly queue had no room for an out-of-order segment.
    ReassemblyFull,
    /// A segment for no socket (answered with a RST unless it was a RST).
    NoSocket,
    /// A segment for a listener that was neither a SYN nor an ACK: a RST, or no flag at all
    /// (RFC 9293 section 3.10.7.2: dropped without an answer).
    IgnoredByListener,
}

impl DropReason {
    /// Number of reasons (length of [`TcpCounters::drops`]).
    pub const COUNT: usize = 13;

    /// Every reason, in counter order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::OutOfWindow,
        DropReason::UnacceptableAck,
        DropReason::InvalidReset,
        DropReason::UnexpectedSyn,
        DropReason::SynQueueFull,
        DropReason::AcceptQueueFull,
        DropReason::ConnectionLimit,
        DropReason::MemoryLimit,
        DropReason::InvalidSynCookie,
        DropReason::ReassemblyFull,
        DropReason::NoSocket,
        DropReason::IgnoredByListener,
    ];

    /// A short snake_case name for metrics output.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::OutOfWindow => "out_of_window",
            DropReason::UnacceptableAck => "unacceptable_ack",
            DropReason::InvalidReset => "invalid_reset",
            DropReason::UnexpectedSyn => "unexpected_syn",
            DropReason::SynQueueFull => "syn_queue_full",
            DropReason::AcceptQueueFull => "accept_queue_full",
            DropReason::ConnectionLimit => "connection_limit",
            DropReason::MemoryLimit => "memory_limit",
            DropReason::InvalidSynCookie => "invalid_syn_cookie",
            DropReason::ReassemblyFull => "reassembly_full",
            DropReason::NoSocket => "no_socket",
            DropReason::IgnoredByListener => "ignored_by_listener",
        }
    }
}

/// Counters of one core's TCP layer; they only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    pub segments_in: u64,
    pub segments_out: u64,
    /// Segments sent again (timeout, fast retransmit, SYN/SYN-ACK retries).
    pub retransmits: u64,
    pub fast_retransmits: u64,
    /// Fast retransmissions that the timestamps proved spurious (the original had only been
    /// reordered), and whose window reduction was undone (RFC 3522, RFC 4015).
    pub spurious_fast_retransmits: u64,
    pub timeouts: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    pub challenge_acks: u64,
    /// ACKs not sent because a rate limit bit: one connection's `invalid_ack_interval`, or
    /// the core's challenge-ACK budget for the second.
    pub acks_rate_limited: u64,
    /// RSTs to strangers not sent because `stranger_reset_limit` was reached this second.
    pub resets_rate_limited: u64,
    /// Segments dropped because the output queue held `max_queued_segments`.
    pub output_queue_drops: u64,
    pub drops: [u64; DropReason::COUNT],
    pub syn_cookies_sent: u64,
    pub syn_cookies_validated: u64,
    pub time_wait_reuses: u64,
    /// Connections that skipped TIME_WAIT because `max_time_wait` records already existed.
    pub time_wait_overflows: u64,
    pub active_opens: u64,
    pub passive_opens: u64,
    /// Connections aborted after the retransmission or keepalive limit.
    pub connections_timed_out: u64,
    pub keepalive_probes: u64,
    pub zero_window_probes: u64,
    /// Connections aborted because the receiver stopped answering zero-window probes
    /// (also counted in `connections_timed_out`).
    pub persist_timeouts: u64,
    /// Orphans (closed by their application with data unacknowledged) reset
    /// `TcpConfig::orphan_persist_limit` after they were closed, however the peer answered
    /// (also counted in `connections_timed_out`).
    pub orphan_persist_limits: u64,
    /// Orphans holding unsent data reset, oldest first, because the core's buffer budget ran
    /// into its reserve (Linux `tcp_out_of_resources`).
    pub orphans_reaped: u64,
    pub icmp_errors: u64,
    /// `write` calls refused because the per-core buffer-memory limit was reached.
    pub write_memory_refusals: u64,
    /// Bytes held out of order that were dropped, highest sequence first, to make room in
    /// the buffer budget for in-order data (Linux's `OfoPruned`).
    pub out_of_order_bytes_pruned: u64,
    /// Writes refused and segments dropped because the buffer budget's reserve already
    /// served its most connections at once (`TcpConfig::guaranteed_buffer`); also counted as
    /// `write_memory_refusals` or `MemoryLimit` drops.
    pub reserve_limit_refusals: u64,
    /// `connect` calls refused by the per-core connection limit (refused SYNs count as drops).
    pub connection_limit_refusals: u64,
}

impl TcpCounters {
    /// Drops counted for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    pub(crate) fn drop_segment(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
}

impl TcpLayer {
    /// Appends one line per socket (listeners, connections, half-open connections, orphans,
    /// TIME_WAIT records) to `out`.
    pub fn list_sockets(&self, out: &mut Vec<SocketInfo>) {
        let core = self.context.core;
        let unspecified = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        for (slot, generation, entry) in self.slots.iter() {
            let handle = SocketHandle {
                core,
                slot,
                generation,
            };
            match entry {
                SocketEntry::Listener(listener) => out.push(SocketInfo {
                    handle: Some(handle),
                    state: TcpState::Listen,
                    local: listener.local,
                    remote: unspecified,
                    send_queue_bytes: 0,
                    receive_queue_bytes: listener.accept_queue.len(),
                    smoothed_rtt: None,
                    rto: Duration::ZERO,
                    retransmissions: 0,
                    congestion_window: 0,
                    core,
                }),
                SocketEntry::Connection(connection) => out.push(SocketInfo {
                    handle: (connection.owner == Owner::Application).then_some(handle),
                    state: connection.state,
                    local: connection.tuple.local,
                    remote: connection.tuple.remote,
                    send_queue_bytes: connection.send_queue_bytes(),
                    receive_queue_bytes: connection.receive_queue_bytes(),
                    smoothed_rtt: connection.smoothed_rtt(),
                    rto: connection.rto(),
                    retransmissions: connection.retransmissions,
                    congestion_window: connection.congestion_window(),
                    core,
                }),
            }
        }
        for (tuple, half_open) in self.half_open.iter() {
            out.push(SocketInfo {
                handle: None,
                state: TcpState::SynReceived,
                local: tuple.local,
                remote: tuple.remote,
                send_queue_bytes: 0,
                receive_queue_bytes: 0,
                smoothed_rtt: None,
                rto: self.context.config.initial_rto,
                retransmissions: u64::from(half_open.retries),
                congestion_window: 0,
                core,
            });
        }
        // A TIME_WAIT connection still held by the application was listed from its slot.
        let mut held_in_time_wait = TupleTable::new(self.tuples);
        for (_, _, entry) in self.slots.iter() {
            if let SocketEntry::Connection(connection) = entry
                && connection.state == TcpState::TimeWait
            {
                held_in_time_wait.insert(&self.tuples.hashed(connection.tuple), ());
            }
        }
        for (tuple, _) in self.time_wait.iter() {
            if held_in_time_wait.contains(&self.tuples.hashed(*tuple)) {
                continue;
            }
            out.push(SocketInfo {
                handle: None,
                state: TcpState::TimeWait,
                local: tuple.local,
                remote: tuple.remote,
                send_queue_bytes: 0,
                receive_queue_bytes: 0,
                smoothed_rtt: None,
                rto: Duration::ZERO,
                retransmissions: 0,
                congestion_window: 0,
                core,
            });
        }
    }
}
