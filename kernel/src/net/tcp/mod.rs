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
//!    correct checksum) without allocating per segment; [`TcpLayer::drain_output_up_to`]
//!    lends only as many as the driver has room for.
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
//! # Where things are
//! - `input.rs`: demultiplexing a segment to a connection, a TIME_WAIT record, a half-open
//!   connection or a listener; passive open and SYN cookies; ICMP errors.
//! - `connection.rs`: the TCB and its state machine (RFC 9293 section 3.10), with the
//!   sending rules (Nagle, SWS avoidance, persist), delayed ACKs, timers and retransmission.
//! - `lifecycle.rs`: what the layer does after each event (re-arm timers, TIME_WAIT, removal).
//! - `listen.rs`, `time_wait.rs`, `slots.rs`, `tuple.rs`: the per-core tables.
//! - `seq.rs`, `segment.rs`, `reassembly.rs`, `rtt.rs`, `congestion.rs`, `scoreboard.rs`, `isn.rs`,
//!   `syn_cookie.rs`, `timer_wheel.rs`, `output.rs`, `reply.rs`: the mechanisms.
//! - `tests/`: segment scripts (inject a crafted segment, assert the exact segments emitted),
//!   two layers back to back over a lossy wire, and property tests.
//!
//! # Known limits
//! - Urgent data (URG) is not supported: the urgent pointer is ignored and the data read
//!   inline (RFC 6093 advises new applications not to use it).
//! - Recovery is New Reno (RFC 6582) with a simplified SACK scoreboard that picks the holes
//!   to resend; the full RFC 6675 pipe algorithm and D-SACK are not implemented.
//! - One listener per port on a core (bound to 0.0.0.0 or to one address).
//! - `close` is graceful or, with `AbortOnClose`, a reset; there is no linger with a timeout,
//!   and no user timeout (RFC 5482): the retry limits bound every wait.
//! - TIME_WAIT lasts `TcpConfig::time_wait` (60 s by default, MSL = 30 s as in Linux).
//!
//! # Rate limits and bounds against hostile peers
//! Each one is counted when it bites ([`TcpCounters`]):
//! - challenge ACKs (RFC 5961 section 7): one per connection per
//!   `TcpConfig::invalid_ack_interval`, and a per-core budget drawn at random every second
//!   around `challenge_ack_limit` (CVE-2016-5696); ACKs to other unacceptable segments without
//!   data (out of window, PAWS, ACK of unsent data) follow the same per-connection limit, and
//!   so do ACKs to FINs retransmitted into TIME_WAIT (`acks_rate_limited`);
//! - RSTs to segments that reach no socket: `stranger_reset_limit` a second (`resets_rate_limited`);
//! - the output queue: `max_queued_segments` (`output_queue_drops`, recovered like a loss);
//! - SYN cookies are checked only within a cookie's lifetime of the listener's last SYN-queue
//!   overflow, so a stray ACK is never a 2^-24 chance of a blind connection;
//! - a receiver that keeps its window shut while answering probes keeps the connection (RFC
//!   1122 section 4.2.2.17) unless it is an orphan, which is reset
//!   `orphan_persist_limit` after its close if it still holds data, whatever the receiver does
//!   (`orphan_persist_limits`), and sooner, oldest first, when the buffer budget runs into its
//!   reserve (`orphans_reaped`);
//! - the buffer budget (`max_buffer_memory`): its last quarter is a reserve for connections
//!   holding under `guaranteed_buffer`, at most `max_buffer_memory / 4 / (2 *
//!   guaranteed_buffer)` of them at once (`reserve_limit_refusals`); in-order data is admitted
//!   by dropping out-of-order data from the top (`out_of_order_bytes_pruned`);
//! - the timer wheel holds about one entry per connection, half-open connection and TIME_WAIT
//!   record ([`TcpLayer::timer_entries`]): re-arming cancels the entry it replaces.
//!
//! # Local ports of active connections
//! `connect` with local port 0 asks the layer's [`PortAllocator`]; the default one walks the
//! ephemeral range. Receive Flow Deliver plugs in an allocator whose ports name the core, and
//! can ask [`TcpLayer::tuple_use`] whether a 4-tuple is taken or in TIME_WAIT.

mod config;
mod congestion;
mod connection;
mod context;
mod error;
mod handle;
mod input;
mod introspection;
mod isn;
mod lifecycle;
mod listen;
mod output;
mod ports;
mod reassembly;
mod reply;
mod rtt;
mod scoreboard;
mod segment;
mod seq;
mod slots;
mod state;
mod syn_cookie;
#[cfg(test)]
mod tests;
mod time_wait;
mod timer_wheel;
mod tuple;

pub use config::TcpConfig;
pub use error::SocketError;
pub use handle::{CoreId, SocketHandle};
pub use introspection::{DropReason, SocketInfo, TcpCounters};
pub use output::OutSegment;
pub use ports::{EphemeralPorts, PortAllocator};
pub use seq::SeqNum;
pub use state::TcpState;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::{Context as TaskContext, Poll};
use core::time::Duration;

use crate::time::Instant;
use connection::{Connection, Outcome, Owner};
use context::{Context, TimerKey};
use isn::SipKey;
use listen::{HalfOpen, Listener};
use slots::{Slots, SocketEntry};
use time_wait::TimeWaitRecord;
use tuple::{FourTuple, TupleHasher, TupleTable};

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
    /// Time exceeded (type 11): a soft error.
    TimeExceeded,
    /// Parameter problem (type 12): a soft error.
    ParameterProblem,
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

/// One core's TCP: listen table, established table, SYN table, TIME_WAIT records, timer
/// wheel, counters and the output queue. All state is in here and passed explicitly.
pub struct TcpLayer {
    context: Context,
    slots: Slots,
    /// Listen table: local port -> listener slot.
    listeners: hashbrown::HashMap<u16, u32>,
    /// Established table: 4-tuple -> connection slot, for every connection from SYN-SENT
    /// to LAST-ACK (O(1) whatever the number of connections).
    established: TupleTable<u32>,
    /// Half-open passive connections (SYN-RECEIVED), by 4-tuple.
    half_open: TupleTable<HalfOpen>,
    time_wait: TupleTable<TimeWaitRecord>,
    /// The keyed hash of all three tables; a segment's tuple is hashed once for all of them.
    tuples: TupleHasher,
    source_address: Option<Ipv4Addr>,
    port_allocator: Option<Box<dyn PortAllocator>>,
    /// Scratch list of fired timers, kept to avoid allocating on every tick.
    due_timers: Vec<TimerKey>,
}

impl TcpLayer {
    /// A layer for `core`. `secret` keys the ISN generator (RFC 6528), SYN cookies and the
    /// table hashes: draw it from a good random source at boot; cores may share it.
    pub fn new(config: TcpConfig, core: CoreId, secret: [u8; 16]) -> Self {
        let key = SipKey::new(secret);
        let port_start = key.hash(&[u64::from(core.0)]) as u16;
        let tuples = TupleHasher::new(&key);
        TcpLayer {
            context: Context::new(config, core, key),
            slots: Slots::default(),
            listeners: hashbrown::HashMap::new(),
            established: TupleTable::new(tuples),
            half_open: TupleTable::new(tuples),
            time_wait: TupleTable::new(tuples),
            tuples,
            source_address: None,
            port_allocator: Some(Box::new(EphemeralPorts::new(port_start))),
            due_timers: Vec::new(),
        }
    }

    pub fn core(&self) -> CoreId {
        self.context.core
    }

    /// A 64-bit value keyed by the layer's boot secret, for another part of the core's stack
    /// that needs unpredictable numbers (the UDP layer seeds its port choice with it, RFC
    /// 6056). SipHash is a PRF: the value reveals nothing of the secret, and `domain` and the
    /// core keep the values of different users and cores unrelated. The input is four words
    /// ending in its own tag, a shape no other use of the key has.
    pub fn derived_secret(&self, domain: u64) -> u64 {
        const DERIVED: u64 = 0x6465_7269_7665_6421;
        self.context
            .key
            .hash(&[DERIVED, domain, u64::from(self.context.core.0), DERIVED])
    }

    pub fn config(&self) -> &TcpConfig {
        &self.context.config
    }

    /// The latest time the layer was given.
    pub fn now(&self) -> Instant {
        self.context.now
    }

    /// Moves the layer's clock forward (never back) without firing timers.
    pub fn advance_time(&mut self, now: Instant) {
        self.context.now = self.context.now.max(now);
    }

    /// The address `connect` uses when its local address is unspecified.
    pub fn set_source_address(&mut self, address: Ipv4Addr) {
        self.source_address = Some(address);
    }

    /// Replaces the local-port chooser of `connect`.
    pub fn set_port_allocator(&mut self, allocator: Box<dyn PortAllocator>) {
        self.port_allocator = Some(allocator);
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
        self.advance_time(now);
        self.context.counters.segments_in += 1;
        self.dispatch_segment(source, destination, segment);
    }

    /// Reacts to an ICMP error quoting one of our segments (RFC 5927 checks, RFC 1122
    /// section 4.2.3.9 hard and soft errors, RFC 1191 path MTU).
    pub fn on_icmp_error(&mut self, now: Instant, error: IcmpError) {
        self.advance_time(now);
        self.handle_icmp_error(error);
    }

    /// Fires every timer due at `now` (retransmission, delayed ACK, persist, keepalive,
    /// SYN-ACK retry, FIN-WAIT-2 and TIME_WAIT expiry).
    pub fn on_timers(&mut self, now: Instant) {
        self.advance_time(now);
        let mut due = core::mem::take(&mut self.due_timers);
        self.context.wheel.expire(self.context.now, &mut due);
        for key in due.drain(..) {
            self.fire_timer(key);
        }
        self.due_timers = due;
    }

    /// When `on_timers` should next be called; `None` when no timer is armed. It may be
    /// early (the layer then just re-arms), never late.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.context.wheel.next_deadline()
    }

    /// Segments are waiting to be drained.
    pub fn has_output(&self) -> bool {
        !self.context.output.is_empty()
    }

    /// Lends every queued outgoing segment to `emit`, in order, then forgets them.
    pub fn drain_output(&mut self, emit: impl FnMut(OutSegment<'_>)) {
        self.drain_output_up_to(usize::MAX, emit);
    }

    /// Like `drain_output`, but lends at most `limit` segments (as many as the driver has
    /// room for) and keeps the rest, in order, for the next call. Returns how many were lent.
    pub fn drain_output_up_to(&mut self, limit: usize, emit: impl FnMut(OutSegment<'_>)) -> usize {
        let count = self.context.output.drain_up_to(limit, emit);
        self.context.counters.segments_out += count as u64;
        count
    }

    // ----- socket side -----

    /// Listens on `local` (address 0.0.0.0 for every address) with an accept queue of at
    /// most `backlog` connections (capped by `TcpConfig::max_backlog`).
    pub fn listen(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
    ) -> Result<SocketHandle, SocketError> {
        if local.port() == 0 {
            return Err(SocketError::InvalidArgument);
        }
        if self.listeners.contains_key(&local.port()) {
            return Err(SocketError::AddressInUse);
        }
        let backlog = backlog.clamp(1, self.context.config.max_backlog.max(1));
        let (slot, generation) = self
            .slots
            .insert(SocketEntry::Listener(Listener::new(local, backlog)));
        self.listeners.insert(local.port(), slot);
        Ok(self.handle(slot, generation))
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: SocketHandle) -> Result<SocketHandle, SocketError> {
        let slot = self.slots.resolve(self.context.core, listener)?;
        let queue_front = match self.slots.get_mut(slot) {
            Some(SocketEntry::Listener(listener)) => listener.accept_queue.pop_front(),
            _ => return Err(SocketError::InvalidOperation),
        };
        let Some(accepted) = queue_front else {
            return Err(SocketError::WouldBlock);
        };
        if let Some(connection) = self.slots.connection_mut(accepted) {
            connection.owner = Owner::Application;
        }
        Ok(self.handle(accepted, self.slots.generation(accepted)))
    }

    /// Like `accept`; when the queue is empty, stores the waker and returns `Pending`.
    pub fn poll_accept(
        &mut self,
        listener: SocketHandle,
        context: &mut TaskContext<'_>,
    ) -> Poll<Result<SocketHandle, SocketError>> {
        match self.accept(listener) {
            Err(SocketError::WouldBlock) => {
                if let Ok(slot) = self.slots.resolve(self.context.core, listener)
                    && let Some(listener) = self.slots.listener_mut(slot)
                {
                    listener.accept_waker = Some(context.waker().clone());
                }
                Poll::Pending
            }
            result => Poll::Ready(result),
        }
    }

    /// Opens a connection to `remote` (sends the SYN). A `local` of `None`, or with
    /// address 0.0.0.0 or port 0, is completed from the source address and the port allocator.
    pub fn connect(
        &mut self,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
    ) -> Result<SocketHandle, SocketError> {
        if remote.port() == 0 || remote.ip().is_unspecified() || remote.ip().is_broadcast() {
            return Err(SocketError::InvalidArgument);
        }
        let requested = local.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let address = if requested.ip().is_unspecified() {
            self.source_address
                .ok_or(SocketError::AddressNotAvailable)?
        } else {
            *requested.ip()
        };
        if self.connection_total() >= self.context.config.max_connections {
            self.context.counters.connection_limit_refusals += 1;
            return Err(SocketError::LimitReached);
        }
        let port = if requested.port() != 0 {
            let local = SocketAddrV4::new(address, requested.port());
            if !self.claim_tuple(local, remote) {
                return Err(SocketError::AddressInUse);
            }
            requested.port()
        } else {
            let mut allocator = self
                .port_allocator
                .take()
                .ok_or(SocketError::AddressNotAvailable)?;
            // The last port the allocator was told is usable: nothing changes the tables
            // between that answer and the claim, so that port needs no second check.
            let mut checked = None;
            let chosen = allocator.choose_port(address, remote, &mut |port| {
                let usable =
                    self.tuple_usable_for_connect(SocketAddrV4::new(address, port), remote);
                if usable {
                    checked = Some(port);
                }
                usable
            });
            self.port_allocator = Some(allocator);
            let port = chosen.ok_or(SocketError::AddressNotAvailable)?;
            let local = SocketAddrV4::new(address, port);
            if checked == Some(port) {
                self.take_checked_tuple(local, remote);
            } else if !self.claim_tuple(local, remote) {
                return Err(SocketError::AddressNotAvailable);
            }
            port
        };
        let tuple = FourTuple {
            local: SocketAddrV4::new(address, port),
            remote,
        };
        let secrets = self.context.tuple_secrets(&tuple);
        let connection = Connection::connect(&mut self.context, tuple, secrets);
        let (slot, generation) = self.slots.insert(SocketEntry::Connection(connection));
        self.established.insert(&self.tuples.hashed(tuple), slot);
        self.settle(slot, Outcome::Continue);
        Ok(self.handle(slot, generation))
    }

    /// `Ready(Ok)` once the handshake completed, `Ready(Err)` if it failed, else stores the waker.
    pub fn poll_connect(
        &mut self,
        socket: SocketHandle,
        context: &mut TaskContext<'_>,
    ) -> Poll<Result<(), SocketError>> {
        let slot = match self.connection_slot(socket) {
            Ok(slot) => slot,
            Err(error) => return Poll::Ready(Err(error)),
        };
        let Some(connection) = self.slots.connection_mut(slot) else {
            return Poll::Ready(Err(SocketError::InvalidHandle));
        };
        if let Some(error) = connection.error {
            return Poll::Ready(Err(error));
        }
        match connection.state {
            TcpState::SynSent | TcpState::SynReceived => {
                connection.register_write_waker(context.waker());
                Poll::Pending
            }
            TcpState::Closed => Poll::Ready(Err(SocketError::NotConnected)),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Copies received bytes into `buffer`; `Ok(0)` means the peer closed (end of stream)
    /// or `buffer` is empty.
    pub fn read(&mut self, socket: SocketHandle, buffer: &mut [u8]) -> Result<usize, SocketError> {
        let connection = self
            .slots
            .application_connection_mut(self.context.core, socket)?;
        let result = connection.read(&mut self.context, buffer);
        // `settle` without looking the connection up again.
        if !connection.timers.entry_stands() {
            self.settle_changed(socket.slot, Outcome::Continue);
        }
        result
    }

    /// Like `read`; when no data is pending, stores the waker and returns `Pending`.
    pub fn poll_read(
        &mut self,
        socket: SocketHandle,
        context: &mut TaskContext<'_>,
        buffer: &mut [u8],
    ) -> Poll<Result<usize, SocketError>> {
        match self.read(socket, buffer) {
            Err(SocketError::WouldBlock) => {
                if let Ok(slot) = self.connection_slot(socket)
                    && let Some(connection) = self.slots.connection_mut(slot)
                {
                    connection.register_read_waker(context.waker());
                }
                Poll::Pending
            }
            result => Poll::Ready(result),
        }
    }

    /// Queues bytes for sending; returns how many fit in the send buffer (at least one, or
    /// `WouldBlock`).
    pub fn write(&mut self, socket: SocketHandle, data: &[u8]) -> Result<usize, SocketError> {
        let connection = self
            .slots
            .application_connection_mut(self.context.core, socket)?;
        let result = connection.write(&mut self.context, data);
        // `settle` without looking the connection up again.
        if !connection.timers.entry_stands() {
            self.settle_changed(socket.slot, Outcome::Continue);
        }
        result
    }

    /// Like `write`; when the send buffer is full, stores the waker and returns `Pending`.
    pub fn poll_write(
        &mut self,
        socket: SocketHandle,
        context: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<Result<usize, SocketError>> {
        match self.write(socket, data) {
            Err(SocketError::WouldBlock) => {
                if let Ok(slot) = self.connection_slot(socket)
                    && let Some(connection) = self.slots.connection_mut(slot)
                {
                    connection.register_write_waker(context.waker());
                    connection.wait_for_memory(&mut self.context, context.waker());
                }
                Poll::Pending
            }
            result => Poll::Ready(result),
        }
    }

    /// Half-closes (or fully shuts) a connection; the handle stays valid.
    pub fn shutdown(&mut self, socket: SocketHandle, how: Shutdown) -> Result<(), SocketError> {
        let slot = self.connection_slot(socket)?;
        let Some(connection) = self.slots.connection_mut(slot) else {
            return Err(SocketError::InvalidHandle);
        };
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            connection.shutdown_read(&mut self.context);
        }
        let outcome = if matches!(how, Shutdown::Write | Shutdown::Both) {
            connection.shutdown_write(&mut self.context)
        } else {
            Outcome::Continue
        };
        self.settle(slot, outcome);
        Ok(())
    }

    /// Releases the handle. A connection is closed gracefully (FIN after queued data) and
    /// finishes on its own; with unread received data, or `AbortOnClose`, it is reset
    /// instead (RFC 9293 section 3.10.4 and RFC 2525 section 2.17). A listener stops
    /// listening and resets the connections still in its queues.
    pub fn close(&mut self, socket: SocketHandle) -> Result<(), SocketError> {
        let slot = self.slots.resolve(self.context.core, socket)?;
        match self.slots.get_mut(slot) {
            Some(SocketEntry::Listener(_)) => {
                self.close_listener(slot);
                Ok(())
            }
            Some(SocketEntry::Connection(connection)) => {
                if matches!(connection.state, TcpState::Closed | TcpState::TimeWait) {
                    self.free_connection(slot);
                    return Ok(());
                }
                if connection.options.abort_on_close || connection.has_unread_data() {
                    let outcome = connection.abort(&mut self.context);
                    connection.owner = Owner::Orphan;
                    self.settle(slot, outcome);
                    return Ok(());
                }
                let outcome = connection.shutdown_write(&mut self.context);
                connection.orphan(&mut self.context);
                self.settle(slot, outcome);
                Ok(())
            }
            None => Err(SocketError::InvalidHandle),
        }
    }

    /// Resets the connection (RST to the peer, queued data dropped) and releases the handle.
    pub fn abort(&mut self, socket: SocketHandle) -> Result<(), SocketError> {
        let slot = self.slots.resolve(self.context.core, socket)?;
        match self.slots.get_mut(slot) {
            Some(SocketEntry::Listener(_)) => self.close_listener(slot),
            Some(SocketEntry::Connection(connection)) => {
                let outcome = connection.abort(&mut self.context);
                connection.owner = Owner::Orphan;
                self.settle(slot, outcome);
            }
            None => return Err(SocketError::InvalidHandle),
        }
        Ok(())
    }

    pub fn set_option(
        &mut self,
        socket: SocketHandle,
        option: SocketOption,
    ) -> Result<(), SocketError> {
        let slot = self.connection_slot(socket)?;
        let Some(connection) = self.slots.connection_mut(slot) else {
            return Err(SocketError::InvalidHandle);
        };
        match option {
            SocketOption::NoDelay(no_delay) => {
                connection.options.no_delay = no_delay;
                connection.output(&mut self.context);
            }
            SocketOption::SendBufferSize(size) => {
                connection.set_send_capacity(size.max(1));
            }
            SocketOption::ReceiveBufferSize(size) => {
                connection.set_receive_capacity(size.max(1));
            }
            SocketOption::KeepAlive(idle) => connection.set_keepalive(&self.context, idle),
            SocketOption::AbortOnClose(abort) => connection.options.abort_on_close = abort,
        }
        self.settle(slot, Outcome::Continue);
        Ok(())
    }

    pub fn options(&self, socket: SocketHandle) -> Result<SocketOptions, SocketError> {
        let slot = self.connection_slot(socket)?;
        self.slots
            .connection(slot)
            .map(|connection| connection.options)
            .ok_or(SocketError::InvalidHandle)
    }

    pub fn local_address(&self, socket: SocketHandle) -> Result<SocketAddrV4, SocketError> {
        let slot = self.slots.resolve(self.context.core, socket)?;
        match self.slots.get(slot) {
            Some(SocketEntry::Listener(listener)) => Ok(listener.local),
            Some(SocketEntry::Connection(connection)) => Ok(connection.tuple.local),
            None => Err(SocketError::InvalidHandle),
        }
    }

    pub fn peer_address(&self, socket: SocketHandle) -> Result<SocketAddrV4, SocketError> {
        let slot = self.slots.resolve(self.context.core, socket)?;
        match self.slots.get(slot) {
            Some(SocketEntry::Listener(_)) => Err(SocketError::NotConnected),
            Some(SocketEntry::Connection(connection)) => Ok(connection.tuple.remote),
            None => Err(SocketError::InvalidHandle),
        }
    }

    pub fn state(&self, socket: SocketHandle) -> Result<TcpState, SocketError> {
        let slot = self.slots.resolve(self.context.core, socket)?;
        match self.slots.get(slot) {
            Some(SocketEntry::Listener(_)) => Ok(TcpState::Listen),
            Some(SocketEntry::Connection(connection)) => Ok(connection.state),
            None => Err(SocketError::InvalidHandle),
        }
    }

    pub fn readiness(&self, socket: SocketHandle) -> Result<Readiness, SocketError> {
        let slot = self.slots.resolve(self.context.core, socket)?;
        match self.slots.get(slot) {
            Some(SocketEntry::Listener(listener)) => Ok(Readiness {
                readable: !listener.accept_queue.is_empty(),
                ..Readiness::default()
            }),
            Some(SocketEntry::Connection(connection)) => Ok(Readiness {
                readable: connection.readable(),
                writable: connection.writable(),
                connected: connection.state.is_synchronized(),
                read_closed: connection.read_closed(),
                error: connection.error,
            }),
            None => Err(SocketError::InvalidHandle),
        }
    }

    // ----- introspection -----

    /// Whether the 4-tuple is taken; for port allocators.
    pub fn tuple_use(&self, local: SocketAddrV4, remote: SocketAddrV4) -> TupleUse {
        let key = self.tuples.hashed(FourTuple { local, remote });
        if self.established.contains(&key) || self.half_open.contains(&key) {
            TupleUse::Connected
        } else if self.time_wait.contains(&key) {
            TupleUse::TimeWait
        } else {
            TupleUse::Free
        }
    }

    /// A SYN (`tcp`: its TCP header and payload) for a 4-tuple in TIME_WAIT here, on a core
    /// that no longer serves the port (drained): when the SYN may start a new incarnation by
    /// RFC 6191's rule (newer timestamp, or a sequence number past the old one's), the record
    /// goes, so that the SYN can follow the global listener to a serving core instead of being
    /// accepted here. `false` leaves the record, which then answers an old duplicate as usual
    /// (and a SYN whose checksum fails is no SYN at all).
    pub fn release_time_wait_for_syn(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        tcp: &[u8],
    ) -> bool {
        // The frame has not been through the interface's checks yet: a SYN that fails its
        // checksum must not free the record.
        if !crate::net::checksum::tcp_is_valid(*remote.ip(), *local.ip(), tcp) {
            return false;
        }
        let Ok(segment) = segment::parse(tcp) else {
            return false;
        };
        let tuple = FourTuple { local, remote };
        let key = self.tuples.hashed(tuple);
        let Some(record) = self.time_wait.get(&key) else {
            return false;
        };
        let timestamp = segment.options.timestamp.map(|(value, _)| value);
        if !record.accepts_new_syn(segment.sequence, timestamp) {
            return false;
        }
        if let Some(record) = self.time_wait.remove(&key) {
            self.context
                .wheel
                .cancel(record.expires, TimerKey::TimeWait(tuple));
        }
        self.context.counters.time_wait_reuses += 1;
        true
    }

    pub fn counters(&self) -> &TcpCounters {
        &self.context.counters
    }

    /// Number of connections counted against `max_connections` (half-open included, TIME_WAIT not).
    pub fn connection_count(&self) -> usize {
        self.connection_total()
    }

    /// Number of TIME_WAIT records.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len()
    }

    /// Entries in the timer wheel (live and not yet expired stale ones): at most about one
    /// per connection, half-open connection and TIME_WAIT record; a soak test watches it.
    pub fn timer_entries(&self) -> usize {
        self.context.wheel.len()
    }

    /// Payload bytes buffered on this core, against `max_buffer_memory`.
    pub fn buffer_memory_used(&self) -> usize {
        self.context.memory_used
    }
}
