//! TCP (RFC 9293): one `TcpLayer` per core owns that core's listeners, connections, TIME_WAIT records and timers; it never touches a global.
//!
//! # How the interface drives it
//! The per-core `Interface` (in `net`) owns the core's `TcpLayer` (shared with the
//! core's tasks as an `Rc<RefCell<TcpLayer>>`, see [`crate::socket`]) and, every turn of the
//! core's loop:
//! 1. hands it each received TCP segment, already checksummed and addressed to this host:
//!    [`TcpLayer::on_segment`] (raw TCP header plus payload, and the IPv4 addresses);
//! 2. hands it ICMP errors that quote one of our TCP segments: [`TcpLayer::on_icmp_error`];
//! 3. fires due timers: [`TcpLayer::on_timers`], and sleeps no longer than
//!    [`TcpLayer::next_deadline`];
//! 4. after the application tasks ran, sends what the layer queued:
//!    [`TcpLayer::drain_output`] lends each [`OutSegment`] (addresses plus TCP bytes with a
//!    correct checksum) without allocating per segment.
//!
//! Addresses are `core::net::Ipv4Addr` / `SocketAddrV4` (the same type as
//! `smoltcp::wire::Ipv4Address`). Time is [`Instant`]; the layer remembers the latest time it
//! was given and socket calls use it.
//!
//! # How the application uses it
//! Socket calls take a [`SocketHandle`] and return `Result<_, SocketError>`; they never block.
//! They queue segments that the interface drains later. The `poll_*` forms store a `Waker`
//! that is woken when the socket becomes ready; [`crate::socket`] builds futures on them.
//!
//! # Local ports of active connections
//! `connect` with local port 0 asks the layer's [`PortAllocator`]; the default one walks the
//! ephemeral range. Receive Flow Deliver plugs in an allocator whose ports name the core, and
//! can ask [`TcpLayer::tuple_use`] whether a 4-tuple is taken or in TIME_WAIT.

mod config;
mod congestion;
mod error;
mod handle;
mod introspection;
mod isn;
mod output;
mod reassembly;
mod rtt;
mod segment;
mod seq;
mod state;
mod syn_cookie;
mod timer_wheel;

pub use config::TcpConfig;
pub use error::SocketError;
pub use handle::{CoreId, SocketHandle};
pub use introspection::{DropReason, SocketInfo, TcpCounters};
pub use output::OutSegment;
pub use seq::SeqNum;
pub use state::TcpState;

use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::{Context, Poll};
use core::time::Duration;

use crate::time::Instant;
use output::OutputQueue;

/// An ICMP error that quotes a TCP segment we sent (RFC 5927), parsed by the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub kind: IcmpErrorKind,
    /// Source of the quoted segment: our address and port.
    pub local: SocketAddrV4,
    /// Destination of the quoted segment: the peer.
    pub remote: SocketAddrV4,
    /// Sequence number of the quoted segment (checked against SND.UNA..SND.NXT, RFC 5927 section 4.1).
    pub sequence: u32,
}

/// The ICMP errors TCP reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Destination unreachable (type 3) with its code. Codes 2-4 (protocol, port,
    /// fragmentation) are hard errors for a connection still in SYN-SENT (RFC 1122 section
    /// 4.2.3.9); everything else is soft.
    DestinationUnreachable { code: u8 },
    /// Fragmentation needed and DF set (type 3 code 4) with the next-hop MTU (RFC 1191):
    /// lowers the connection's MSS.
    FragmentationNeeded { next_hop_mtu: u16 },
}

/// Which directions `shutdown` closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Discard data that arrives from now on.
    Read,
    /// Send a FIN after the queued data (half-close, RFC 9293 section 3.6).
    Write,
    Both,
}

/// A per-socket option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketOption {
    /// Disable Nagle's algorithm (RFC 9293 section 3.7.4): send small segments at once.
    NoDelay(bool),
    /// Send buffer size in bytes.
    SendBufferSize(usize),
    /// Receive buffer size in bytes; it bounds the window offered (changes to the window
    /// scale take effect only before the SYN is sent).
    ReceiveBufferSize(usize),
    /// Keepalive probes after this idle time (`None` turns keepalive off).
    KeepAlive(Option<Duration>),
    /// `close` sends a RST and drops queued data instead of a graceful FIN (SO_LINGER with
    /// a zero timeout).
    AbortOnClose(bool),
}

/// Current option values of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOptions {
    pub no_delay: bool,
    pub send_buffer_size: usize,
    pub receive_buffer_size: usize,
    pub keepalive: Option<Duration>,
    pub abort_on_close: bool,
}

/// What a socket is ready for, as a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// `read` would not block: data, end of stream, or an error is pending; for a listener,
    /// `accept` would not block.
    pub readable: bool,
    /// `write` would not block (room in the send buffer, or an error).
    pub writable: bool,
    /// The connection is established (or was, and the handshake is over).
    pub connected: bool,
    /// The peer sent FIN and all data before it was read.
    pub read_closed: bool,
    /// A pending error (reset, timeout, refusal) that the next call returns.
    pub error: Option<SocketError>,
}

/// Whether a 4-tuple is free for a new active connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TupleUse {
    Free,
    /// A live connection uses it.
    Connected,
    /// A TIME_WAIT record holds it; a new connection may reuse it only if timestamps let
    /// old duplicates be told apart (RFC 6191).
    TimeWait,
}

/// Chooses the local port of an active connection (`connect` with local port 0).
pub trait PortAllocator {
    /// A local port for a connection from `local` to `remote`; `is_usable(port)` says
    /// whether the 4-tuple with that port is free now. `None` when every candidate is taken.
    fn choose_port(
        &mut self,
        local: Ipv4Addr,
        remote: SocketAddrV4,
        is_usable: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16>;
}

/// One core's TCP: listen table, established table, TIME_WAIT records, timer wheel,
/// counters and the output queue. All state is in here and passed explicitly.
pub struct TcpLayer {
    config: TcpConfig,
    core: CoreId,
    now: Instant,
    counters: TcpCounters,
    output: OutputQueue,
}

impl TcpLayer {
    /// A layer for `core`. `secret` keys the ISN generator (RFC 6528) and SYN cookies: draw it
    /// from a good random source at boot; cores may share it.
    pub fn new(config: TcpConfig, core: CoreId, secret: [u8; 16]) -> Self {
        let _ = secret;
        TcpLayer {
            config,
            core,
            now: Instant::ZERO,
            counters: TcpCounters::default(),
            output: OutputQueue::default(),
        }
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// The latest time the layer was given.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the layer's clock forward (never back) without firing timers.
    pub fn advance_time(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The address `connect` uses when its local address is unspecified.
    pub fn set_source_address(&mut self, address: Ipv4Addr) {
        let _ = address;
        todo!()
    }

    /// Replaces the local-port chooser of `connect`.
    pub fn set_port_allocator(&mut self, allocator: alloc::boxed::Box<dyn PortAllocator>) {
        let _ = allocator;
        todo!()
    }

    // ----- interface side -----

    /// Processes one received segment: `segment` is the TCP header and payload, with a
    /// checksum already verified; `source` and `destination` are its IPv4 addresses.
    /// Malformed input is dropped and counted; this never panics.
    pub fn on_segment(
        &mut self,
        now: Instant,
        source: Ipv4Addr,
        destination: Ipv4Addr,
        segment: &[u8],
    ) {
        let _ = (now, source, destination, segment);
        todo!()
    }

    /// Reacts to an ICMP error quoting one of our segments.
    pub fn on_icmp_error(&mut self, now: Instant, error: IcmpError) {
        let _ = (now, error);
        todo!()
    }

    /// Fires every timer due at `now` (retransmission, delayed ACK, persist, keepalive,
    /// SYN-ACK retry, FIN-WAIT-2 and TIME_WAIT expiry).
    pub fn on_timers(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// When `on_timers` should next be called; `None` when no timer is armed. It may be
    /// early (the layer then just re-arms), never late.
    pub fn next_deadline(&self) -> Option<Instant> {
        todo!()
    }

    /// Segments are waiting to be drained.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Lends every queued outgoing segment to `emit`, in order, then forgets them.
    pub fn drain_output(&mut self, emit: impl FnMut(OutSegment<'_>)) {
        self.counters.segments_out += self.output.len() as u64;
        self.output.drain(emit);
    }

    // ----- socket side -----

    /// Listens on `local` (address 0.0.0.0 for every address) with an accept queue of at
    /// most `backlog` connections (capped by `TcpConfig::max_backlog`).
    pub fn listen(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
    ) -> Result<SocketHandle, SocketError> {
        let _ = (local, backlog);
        todo!()
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: SocketHandle) -> Result<SocketHandle, SocketError> {
        let _ = listener;
        todo!()
    }

    /// Like `accept`; when the queue is empty, stores the waker and returns `Pending`.
    pub fn poll_accept(
        &mut self,
        listener: SocketHandle,
        context: &mut Context<'_>,
    ) -> Poll<Result<SocketHandle, SocketError>> {
        let _ = (listener, context);
        todo!()
    }

    /// Opens a connection to `remote` (sends the SYN). A `local` of `None`, or with
    /// address 0.0.0.0 or port 0, is completed from the source address and the port allocator.
    pub fn connect(
        &mut self,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
    ) -> Result<SocketHandle, SocketError> {
        let _ = (remote, local);
        todo!()
    }

    /// `Ready(Ok)` once the handshake completed, `Ready(Err)` if it failed, else stores the waker.
    pub fn poll_connect(
        &mut self,
        socket: SocketHandle,
        context: &mut Context<'_>,
    ) -> Poll<Result<(), SocketError>> {
        let _ = (socket, context);
        todo!()
    }

    /// Copies received bytes into `buffer`; `Ok(0)` means the peer closed (end of stream)
    /// or `buffer` is empty.
    pub fn read(&mut self, socket: SocketHandle, buffer: &mut [u8]) -> Result<usize, SocketError> {
        let _ = (socket, buffer);
        todo!()
    }

    /// Like `read`; when no data is pending, stores the waker and returns `Pending`.
    pub fn poll_read(
        &mut self,
        socket: SocketHandle,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<Result<usize, SocketError>> {
        let _ = (socket, context, buffer);
        todo!()
    }

    /// Queues bytes for sending; returns how many fit in the send buffer (at least one, or
    /// `WouldBlock`).
    pub fn write(&mut self, socket: SocketHandle, data: &[u8]) -> Result<usize, SocketError> {
        let _ = (socket, data);
        todo!()
    }

    /// Like `write`; when the send buffer is full, stores the waker and returns `Pending`.
    pub fn poll_write(
        &mut self,
        socket: SocketHandle,
        context: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<Result<usize, SocketError>> {
        let _ = (socket, context, data);
        todo!()
    }

    /// Half-closes (or fully shuts) a connection; the handle stays valid.
    pub fn shutdown(&mut self, socket: SocketHandle, how: Shutdown) -> Result<(), SocketError> {
        let _ = (socket, how);
        todo!()
    }

    /// Releases the handle. A connection is closed gracefully (FIN after queued data) and
    /// finishes on its own; with unread received data, or `AbortOnClose`, it is reset
    /// instead (RFC 9293 section 3.10.4 and RFC 2525 section 2.17). A listener stops
    /// listening and resets the connections still in its queues.
    pub fn close(&mut self, socket: SocketHandle) -> Result<(), SocketError> {
        let _ = socket;
        todo!()
    }

    /// Resets the connection (RST to the peer, queued data dropped) and releases the handle.
    pub fn abort(&mut self, socket: SocketHandle) -> Result<(), SocketError> {
        let _ = socket;
        todo!()
    }

    pub fn set_option(
        &mut self,
        socket: SocketHandle,
        option: SocketOption,
    ) -> Result<(), SocketError> {
        let _ = (socket, option);
        todo!()
    }

    pub fn options(&self, socket: SocketHandle) -> Result<SocketOptions, SocketError> {
        let _ = socket;
        todo!()
    }

    pub fn local_address(&self, socket: SocketHandle) -> Result<SocketAddrV4, SocketError> {
        let _ = socket;
        todo!()
    }

    pub fn peer_address(&self, socket: SocketHandle) -> Result<SocketAddrV4, SocketError> {
        let _ = socket;
        todo!()
    }

    pub fn state(&self, socket: SocketHandle) -> Result<TcpState, SocketError> {
        let _ = socket;
        todo!()
    }

    pub fn readiness(&self, socket: SocketHandle) -> Result<Readiness, SocketError> {
        let _ = socket;
        todo!()
    }

    // ----- introspection -----

    /// Whether the 4-tuple is taken; for port allocators.
    pub fn tuple_use(&self, local: SocketAddrV4, remote: SocketAddrV4) -> TupleUse {
        let _ = (local, remote);
        todo!()
    }

    /// Appends one line per socket (listeners, connections, half-open connections, orphans,
    /// TIME_WAIT records) to `out`.
    pub fn list_sockets(&self, out: &mut Vec<SocketInfo>) {
        let _ = out;
        todo!()
    }

    pub fn counters(&self) -> &TcpCounters {
        &self.counters
    }
}
