//! The tunables of one core's TCP layer, with defaults that follow the RFCs (and Linux where the RFCs leave room).

use core::time::Duration;

/// Configuration of a [`TcpLayer`](super::TcpLayer); every core of an appliance normally uses the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// The MSS we announce and the largest payload we send (RFC 9293 section 3.7.1): the
    /// interface MTU minus 40 bytes of IPv4 and TCP headers.
    pub mss: u16,
    /// Most connections (all states but LISTEN and TIME_WAIT) this core holds at once; a
    /// SYN or `connect` beyond it is refused and counted.
    pub max_connections: usize,
    /// Most TIME_WAIT records this core holds; beyond it a closing connection skips
    /// TIME_WAIT (counted in `time_wait_overflows`), as Linux does.
    pub max_time_wait: usize,
    /// Most bytes of payload this core buffers in all send, receive and reassembly queues
    /// together; data beyond it is refused (`write` returns `WouldBlock`, arriving data is
    /// dropped and counted) rather than the heap growing without bound.
    pub max_buffer_memory: usize,
    /// Bytes one connection may buffer in each direction even when the shared part of
    /// `max_buffer_memory` is used up (its last quarter is kept for these), so that clients
    /// holding full buffers cannot starve a short request and its response. The reserve
    /// serves at most `max_buffer_memory / 4 / (2 * guaranteed_buffer)` connections at once
    /// (each with its whole guarantee both ways); the next is refused and counted
    /// (`reserve_limit_refusals`) until one of them holds nothing, or the core's memory falls
    /// back within the shared part.
    pub guaranteed_buffer: usize,
    /// Default send buffer of a new connection, in bytes.
    pub send_buffer_size: usize,
    /// Default receive buffer of a new connection, in bytes; it bounds the window we offer.
    pub receive_buffer_size: usize,
    /// Upper bound of the accept-queue length a `listen` may ask for.
    pub max_backlog: usize,
    /// Most half-open (SYN-RECEIVED) connections per listener; when it is full a new SYN is
    /// answered with a SYN cookie (if enabled) or dropped.
    pub syn_queue_size: usize,
    /// Answer SYNs with SYN cookies when a SYN queue is full.
    pub syn_cookies: bool,
    /// Negotiate window scaling (RFC 7323 section 2).
    pub window_scaling: bool,
    /// Negotiate timestamps (RFC 7323 section 3).
    pub timestamps: bool,
    /// Offer SACK-permitted (RFC 2018): out-of-order data is then reported in SACK blocks,
    /// and the peer's SACK blocks steer which holes fast recovery resends.
    pub sack_permitted: bool,
    /// RTO before any RTT sample (RFC 6298 section 2.1: one second).
    pub initial_rto: Duration,
    /// Lower bound of the RTO. RFC 6298 section 2.4 says one second; Linux uses 200 ms, which
    /// suits the data-centre links a proxy lives on.
    pub min_rto: Duration,
    /// Upper bound of the RTO after back-off. 60 s, the least RFC 6298 section 2.5 allows;
    /// Linux's `TCP_RTO_MAX` is 120 s. Kept at 60 s on purpose (issue 29, item 8): after an
    /// outage the next retransmission leaves at most a minute after the path returns, and
    /// with `max_retransmissions` 15 a vanished peer is given up after about 8.7 minutes at
    /// the 200 ms minimum RTO (Linux: about 15.4), freeing its buffers sooner; the cost is at
    /// most one segment a minute more during a long outage.
    pub max_rto: Duration,
    /// Retransmissions of one segment before the connection is aborted (RFC 9293 section
    /// 3.8.3, "R2").
    pub max_retransmissions: u32,
    /// Retransmissions of a SYN or SYN-ACK before giving up (RFC 9293 section 3.8.3 R2 for SYN).
    pub max_syn_retransmissions: u32,
    /// Longest an ACK may be delayed (RFC 9293 section 3.8.6.3: less than 0.5 s).
    pub delayed_ack: Duration,
    /// How long a connection stays in TIME_WAIT: 2*MSL (RFC 9293 section 3.4.2). Linux uses 60 s.
    pub time_wait: Duration,
    /// How long an orphaned connection (closed by the application) waits in FIN-WAIT-2 for
    /// the peer's FIN before it is dropped (Linux `tcp_fin_timeout`).
    pub fin_wait_2_timeout: Duration,
    /// Longest an orphan (closed by its application with data still queued) may hold data
    /// the peer has not taken, counted from the close, in persist or out of it (a peer that
    /// acknowledges a byte of a one-byte window now and then), before it is reset
    /// (`orphan_persist_limits`). RFC 6429 allows giving up on a window that stays shut only
    /// as resource management; Linux holds an orphan whose receiver answers until its probe
    /// interval reaches the 120 s RTO cap, about 325 s from a 200 ms RTO, so the default is
    /// longer than that. Under memory pressure orphans go sooner, oldest first.
    pub orphan_persist_limit: Duration,
    /// Turn keepalive on for every new connection (RFC 9293 section 3.8.4 says off by
    /// default); `SocketOption::KeepAlive` overrides it per socket.
    pub keepalive: bool,
    /// Idle time before the first keepalive probe (RFC 9293 section 3.8.4: no less than two
    /// hours by default).
    pub keepalive_idle: Duration,
    /// Time between unanswered keepalive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the connection is aborted.
    pub keepalive_probes: u32,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window_segments: u32,
    /// Mean number of challenge ACKs (RFC 5961 section 7) this core sends a second; each
    /// second's budget is drawn at random between half and one and a half times it.
    pub challenge_ack_limit: u32,
    /// Shortest time between two ACKs one connection sends to unacceptable segments without
    /// data (out of window, failing PAWS, acknowledging unsent data, RSTs and SYNs that draw
    /// challenge ACKs). Linux `tcp_invalid_ratelimit`: 500 ms.
    pub invalid_ack_interval: Duration,
    /// Most RSTs a second this core sends to segments that reached no socket (closed ports,
    /// stray ACKs); beyond it they are dropped without an answer and counted. FreeBSD limits
    /// these to 200 a second by default.
    pub stranger_reset_limit: u32,
    /// Most segments waiting in the output queue for the interface; beyond it new ones are
    /// dropped and counted (`output_queue_drops`), as a full transmit ring would.
    pub max_queued_segments: usize,
}

impl TcpConfig {
    /// `max_buffer_memory` for each of `cores` cores sharing a heap of `heap_bytes`: a
    /// quarter of the heap, split evenly. Buffers are ring buffers whose capacity can be
    /// twice what they hold, and the rest of the heap keeps the connection records, the
    /// tables and the applications' own buffers; a budget beyond the heap would let clients
    /// that never read exhaust it, and an allocation that fails stops the image.
    pub fn buffer_memory_for_heap(heap_bytes: usize, cores: usize) -> usize {
        heap_bytes / 4 / cores.max(1)
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            max_connections: 65_536,
            max_time_wait: 65_536,
            max_buffer_memory: 256 * 1024 * 1024,
            guaranteed_buffer: 4 * 1024,
            send_buffer_size: 64 * 1024,
            receive_buffer_size: 64 * 1024,
            max_backlog: 4096,
            syn_queue_size: 1024,
            syn_cookies: true,
            window_scaling: true,
            timestamps: true,
            sack_permitted: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            max_retransmissions: 15,
            max_syn_retransmissions: 6,
            delayed_ack: Duration::from_millis(40),
            time_wait: Duration::from_secs(60),
            fin_wait_2_timeout: Duration::from_secs(60),
            orphan_persist_limit: Duration::from_secs(6 * 60),
            keepalive: false,
            keepalive_idle: Duration::from_secs(2 * 60 * 60),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            initial_window_segments: 10,
            challenge_ack_limit: 1000,
            invalid_ack_interval: Duration::from_millis(500),
            stranger_reset_limit: 1000,
            max_queued_segments: 16_384,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TcpConfig;

    #[test]
    fn the_buffer_budget_is_a_quarter_of_the_heap_shared_by_the_cores() {
        let heap = 126 * 1024 * 1024;
        assert_eq!(TcpConfig::buffer_memory_for_heap(heap, 2), heap / 8);
        assert_eq!(TcpConfig::buffer_memory_for_heap(heap, 1), heap / 4);
        // Every core's budget together stays within a quarter, whatever the core count.
        for cores in 1..=64 {
            assert!(TcpConfig::buffer_memory_for_heap(heap, cores) * cores <= heap / 4);
        }
        assert_eq!(TcpConfig::buffer_memory_for_heap(heap, 0), heap / 4);
    }
}
