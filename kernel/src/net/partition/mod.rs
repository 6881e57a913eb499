//! The per-core partition of the TCP stack (Fastsocket): which core handles each frame, the global listen table behind the local ones, and the shared-table baseline it is measured against.
//!
//! # The partition
//! Every core runs a [`CoreDispatcher`] in front of its own [`Interface`](super::interface::Interface)
//! and [`TcpLayer`](super::tcp::TcpLayer). The layer's listen table is the core's **local listen
//! table**; its established, half-open and TIME_WAIT tables are the core's **local established
//! table**. Every TCB lives in exactly one layer, that of the core that owns the connection, and
//! only that core's thread ever touches the layer (it is not even reachable from another core:
//! the layer sits in an `Rc<RefCell<..>>`).
//!
//! A frame from the NIC queue of core `c` is looked at once ([`FrameSummary`]):
//! - TCP: Receive Flow Deliver ([`ReceiveFlowDeliver::deliver`](super::rfd::ReceiveFlowDeliver::deliver))
//!   names its owner. A reply on a connection we opened is owned by the core its local port
//!   names (the port was picked by [`RfdPortAllocator`]); a packet of a connection a client
//!   opened is owned by the core RSS steers it to. Not `c`: the frame goes to the owner over the
//!   lock-free single-producer ring from `c` to the owner (software RFD); a full ring drops the
//!   frame and counts it, and TCP retransmits.
//! - ARP: answered on `c`, and a copy goes to every other core, which only learns from it
//!   (`Interface::observe_arp`), so that each core's ARP cache knows the neighbour: a reply to
//!   a request sent by core `d` may arrive on any queue.
//! - ICMP errors that quote one of our TCP segments go to the owner of the quoted connection;
//!   echo requests are answered by whichever core receives them.
//! - UDP: a datagram belongs to a core that has a socket on its port ([`udp_owner`]). Each
//!   bind and close is published in the global table (its UDP half, with its own version),
//!   and each core reads its own copy ([`UdpBoundView`]). A reply to an ephemeral port goes
//!   to the core Receive Flow Deliver names for it, which is the core that bound it: its port
//!   was chosen by [`RfdUdpPorts`] the way TCP's `connect` chooses one. A port bound on the
//!   receiving core (a server bound on every core) is handled where it lands; a port bound on
//!   other cores only (a DHCP client's 68) goes to one of them. A datagram handed over is
//!   handled by the core it reaches, never passed on again; a closed port is answered (port
//!   unreachable) by the core that received the datagram.
//!
//! # The global listen table and the fallback
//! `listen(port)` from the application on core `c` ([`CoreDispatcher::listen`]) installs a
//! listener in `c`'s layer (the local table) and marks `c` as *serving* `port` in the
//! [`GlobalListenTable`]. A SYN owned by `c` goes to `c`'s local listener, and the handshake,
//! the accept queue and `accept` all stay on `c`.
//!
//! When `c` does not serve the port (no worker there, its worker stopped, or the application
//! listens on a subset of cores) but some other core does, a SYN owned by `c` that matches no
//! connection of `c` falls back to the global listener: `c` picks one serving core `d` by
//! rendezvous hashing of the 4-tuple over the serving cores ([`fallback_core`]) and forwards
//! the SYN to `d` over the ring, marked as a global-listener delivery. `d` owns the new
//! connection from then on and its worker accepts it from `d`'s own accept queue.
//!
//! The later segments of the flow still arrive at `c` (RSS is per flow). `c` remembers where
//! it sent the flow ([`FallbackRoutes`]: 4-tuple -> core and a time, no TCB) and forwards them
//! to `d`. Rendezvous hashing alone would need no such state, but it moves a flow as soon as
//! the set of serving cores changes, even mid-handshake: with staggered worker start-up the
//! tests saw the third segment of a handshake reach a core that did not know it and get a
//! RST. A route lives while it is used and is swept after [`ROUTE_IDLE_LIMIT`] of silence
//! (longer than TIME_WAIT); when the per-core table is full ([`ROUTE_CAPACITY`]) routes quiet
//! for [`ROUTE_PRESSURE_IDLE_LIMIT`] go first, and flows that still do not fit are routed by
//! the hash alone and counted. A frame marked as a global-listener delivery that reaches a
//! core which stopped serving meanwhile is passed on at most once more, never bounced for ever.

//! # Accept policy
//! There is no global accept queue: a connection is queued on exactly one core, the core that
//! owns its TCB, and only that core's worker accepts it, first in first out. The paper's
//! worker checks the global queue and then its local one, and the public Fastsocket code
//! alternates between them; both leave connections in a queue that a stopped or busy worker
//! may never look at. Here the fallback happens *before* the handshake, when the SYN is
//! routed, and only to a core whose worker has said it serves the port. So:
//! - a SYN never lands in the accept queue of a core whose worker does not serve the port (the
//!   nginx `accept_mutex` hang of Fastsocket's users cannot happen);
//! - each serving worker takes its own queue in FIFO order, and the ring drain visits the
//!   source cores round robin, so no connection waits behind an unbounded stream of others.
//!
//! A worker that stops calls [`ServedPort::stop_serving`]: the core leaves the serving set at
//! once (new SYNs owned by it fall back), its listener stays open while connections still
//! finishing their handshake on it complete, and [`ServedPort::is_drained`] says when the
//! accept queue and SYN queue are empty so the worker can close it. A worker that disappears
//! without stopping (its [`ServedPort`] dropped) leaves the serving set too; its listener is
//! closed, and the connections still in its accept queue are reset by the layer (counted
//! there), since a TCB never moves between cores.
//!
//! Known limit: a route forgotten while its connection still lives (idle for longer than
//! [`ROUTE_IDLE_LIMIT`] without keepalive, or not stored because the table was full) falls
//! back to the hash, which is right as long as the serving set did not change meanwhile.
//!
//! # The shared-table baseline
//! [`StackMode::SharedTables`] keeps one [`TcpLayer`](super::tcp::TcpLayer) for all cores
//! behind one spin lock ([`SharedTables`]), the single listen and established table set of
//! the Linux design (coarser than Linux 3.x's per-bucket locks, close to 2.6.32's listen-socket
//! lock that the paper measured). Each core still parses its frames on its own; every segment,
//! timer tick and socket call takes the lock. The benchmark runs both modes on the same code.
//!
//! # Locks
//! The partitioned fast path takes none: per frame it reads one atomic (the global listen
//! table's version) and uses the core's own copy of the table. (A frame handed over by software
//! RFD goes through the lock-free ring of `sync::ring`: one release store per push or pop, no
//! atomic read-modify-write, never a wait.) The global listen table's
//! `spin::RwLock` is taken when a worker starts or stops serving a port (write) and when a
//! core refreshes its copy after such a change (read). In the shared-table mode, the table
//! lock is taken for every segment and socket call, by design.

mod counters;
mod dispatcher;
mod fallback;
mod fallback_routes;
mod frame_summary;
mod global_listen;
mod port_allocator;
pub mod self_test;
mod served_port;
mod shared_tables;
mod udp_ports;

pub use counters::PartitionCounters;
pub use dispatcher::{CoreDispatcher, DispatcherError, ForwardReason, RING_DRAIN_BATCH, RingFrame};
pub use fallback::fallback_core;
pub use fallback_routes::{
    FallbackRoutes, ROUTE_CAPACITY, ROUTE_IDLE_LIMIT, ROUTE_PRESSURE_IDLE_LIMIT,
};
pub use frame_summary::{FrameSummary, TcpSummary};
pub use global_listen::{CoreSet, GlobalListenTable, GlobalListenView, UdpBoundView};
pub use port_allocator::RfdPortAllocator;
pub use served_port::{PortOpener, ServedPort};
pub use shared_tables::{SharedCore, SharedTables};
pub use udp_ports::{RfdUdpPorts, udp_owner};

/// Where the TCP tables live; chosen at start-up, the same for every core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackMode {
    /// Fastsocket: local tables per core, a global listen table for the fallback.
    Partitioned,
    /// The baseline: one table set for all cores behind one lock.
    SharedTables,
}
