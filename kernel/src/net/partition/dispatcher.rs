//! One core's dispatcher: every frame from the core's NIC queue or from another core's ring goes to the core that owns it, then into that core's own interface and TCP layer.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddrV4;

use super::counters::PartitionCounters;
use super::fallback::fallback_core;
use super::fallback_routes::FallbackRoutes;
use super::frame_summary::{FrameSummary, TcpSummary};
use super::global_listen::{CoreSet, GlobalListenTable, GlobalListenView, UdpBoundView};
use super::port_allocator::RfdPortAllocator;
use super::served_port::ServedPort;
use super::udp_ports::{RfdUdpPorts, udp_owner};
use crate::net::interface::{FrameSink, Interface};
use crate::net::rfd::{
    CoreId, Delivery, FlowDirection, FourTuple, InboundSegment, ReceiveFlowDeliver, RfdConfigError,
    RfdCounters,
};
use crate::net::tcp::{SocketError, TupleUse};
use crate::socket::{SharedTcpLayer, SharedUdpLayer, TcpListener};
use crate::sync::mesh::{CoreRings, SendError};
use crate::time::Instant;

/// Most frames taken from each source core's ring per [`CoreDispatcher::drain_inbound`].
pub const RING_DRAIN_BATCH: usize = 64;

/// How many times a global-listener delivery may be passed on when its target stopped serving
/// before it arrived; after that the receiving core handles it (normally with a RST).
const GLOBAL_LISTENER_MAX_HOPS: u8 = 2;

/// Why a frame was handed to another core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardReason {
    /// Software RFD: the receiving core owns the connection.
    ReceiveFlowDeliver,
    /// The global listener: the receiving core serves the port that its owner does not.
    /// `hops` counts the cores it went through, so it is never passed around for ever.
    GlobalListener { hops: u8 },
    /// A copy of an ARP frame, so that every core's ARP cache learns the neighbour (and sends
    /// what it parked for it); only the core that received the frame answers it.
    ArpCopy,
}

/// A frame on an inter-core ring.
#[derive(Debug)]
pub struct RingFrame {
    pub reason: ForwardReason,
    pub bytes: Vec<u8>,
}

/// Why a dispatcher could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispatcherError {
    /// The interface's TCP layer, the rings and Receive Flow Deliver disagree on the core.
    CoreMismatch {
        rings: CoreId,
        layer: CoreId,
    },
    Rfd(RfdConfigError),
}

/// One core's front door. The core's loop calls, every turn:
/// [`on_frame_from_nic`](Self::on_frame_from_nic) for each frame of its receive burst,
/// [`drain_inbound`](Self::drain_inbound) for frames other cores handed it, then runs its
/// tasks, then [`poll`](Self::poll) to fire timers and transmit.
pub struct CoreDispatcher {
    core: CoreId,
    interface: Interface,
    tcp: SharedTcpLayer,
    rfd: Arc<ReceiveFlowDeliver>,
    listen: GlobalListenView,
    /// Which cores have a UDP socket on each port (this core's copy).
    udp_bound: UdpBoundView,
    rings: CoreRings<RingFrame>,
    counters: PartitionCounters,
    rfd_counters: RfdCounters,
    /// Flows this core owns and handed to the global listener.
    routes: FallbackRoutes,
    /// Scratch list for ring drains, kept to avoid allocating every turn.
    inbound: Vec<RingFrame>,
    /// Cores handed a frame since the last [`take_cores_handed_frames`](Self::take_cores_handed_frames).
    handed_to: CoreSet,
}

impl CoreDispatcher {
    /// A dispatcher for the core of `rings`. It installs an [`RfdPortAllocator`] in the
    /// interface's TCP layer so that `connect` picks local ports this core owns; `port_start`
    /// (random at boot) is where that allocator starts.
    pub fn new(
        interface: Interface,
        rfd: Arc<ReceiveFlowDeliver>,
        listen: Arc<GlobalListenTable>,
        rings: CoreRings<RingFrame>,
        port_start: u16,
    ) -> Result<CoreDispatcher, DispatcherError> {
        let core = rings.core();
        let tcp = interface.tcp().clone();
        let layer_core = tcp.borrow().core();
        if layer_core != core {
            return Err(DispatcherError::CoreMismatch {
                rings: core,
                layer: layer_core,
            });
        }
        let allocator = RfdPortAllocator::new(&rfd, core, port_start, listen.clone())
            .map_err(DispatcherError::Rfd)?;
        tcp.borrow_mut().set_port_allocator(Box::new(allocator));
        // Unpredictable UDP ports (DNS relies on them, RFC 5452 section 9.2): seeded from the
        // boot secret, not from `port_start`'s 16 bits.
        let udp_seed = tcp
            .borrow()
            .derived_secret(crate::net::udp::PORT_SEED_DOMAIN);
        let udp_ports =
            RfdUdpPorts::new(&rfd, core, udp_seed, listen.clone()).map_err(DispatcherError::Rfd)?;
        interface
            .udp()
            .borrow_mut()
            .set_port_policy(Box::new(udp_ports));
        Ok(CoreDispatcher {
            core,
            interface,
            tcp,
            rfd,
            udp_bound: UdpBoundView::new(listen.clone()),
            listen: GlobalListenView::new(listen),
            rings,
            counters: PartitionCounters::default(),
            rfd_counters: RfdCounters::default(),
            routes: FallbackRoutes::default(),
            inbound: Vec::new(),
            handed_to: CoreSet::EMPTY,
        })
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// This core's TCP layer, for its tasks.
    pub fn tcp(&self) -> &SharedTcpLayer {
        &self.tcp
    }

    /// This core's UDP layer, for its tasks' [`UdpSocket`](crate::socket::UdpSocket)s.
    pub fn udp(&self) -> &SharedUdpLayer {
        self.interface.udp()
    }

    pub fn counters(&self) -> &PartitionCounters {
        &self.counters
    }

    pub fn rfd_counters(&self) -> &RfdCounters {
        &self.rfd_counters
    }

    /// The cores this one handed frames to since the last call, so that a run loop can wake
    /// those that are halted; the set is emptied.
    pub fn take_cores_handed_frames(&mut self) -> CoreSet {
        core::mem::take(&mut self.handed_to)
    }

    /// Flows this core handed to the global listener and still routes.
    pub fn fallback_route_count(&self) -> usize {
        self.routes.len()
    }

    /// Flows handed to the global listener without a route because the table was full (their
    /// later segments follow the hash alone).
    pub fn fallback_route_overflows(&self) -> u64 {
        self.routes.overflows
    }

    /// Listens on `local` on this core (local listen table) and serves it in the global
    /// listen table until the returned [`ServedPort`] stops serving or is dropped.
    /// A handle that opens more served ports on this core later (see [`PortOpener`]).
    pub fn port_opener(&self) -> super::PortOpener {
        super::PortOpener::new(self.tcp.clone(), self.core, self.listen.table().clone())
    }

    pub fn listen(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
    ) -> Result<ServedPort, SocketError> {
        let listener = TcpListener::bind(&self.tcp, local, backlog)?;
        let served = ServedPort::new(
            listener,
            self.tcp.clone(),
            self.core,
            self.listen.table().clone(),
        );
        self.listen.refresh();
        Ok(served)
    }

    // ----- receive -----

    /// One frame from this core's NIC queue.
    pub fn on_frame_from_nic(&mut self, now: Instant, frame: &[u8]) {
        self.counters.frames_from_nic += 1;
        self.listen.refresh();
        match FrameSummary::of(frame) {
            FrameSummary::Tcp(segment) => {
                let listen = &self.listen;
                let delivery = self.rfd.deliver(
                    self.core,
                    &segment.inbound(),
                    &|port| listen.is_listened(port),
                    &mut self.rfd_counters,
                );
                match delivery {
                    Delivery::Local => {
                        self.counters.arrived_on_owner += 1;
                        self.on_owned_segment(now, frame, segment);
                    }
                    Delivery::Forward(owner) => {
                        self.counters.forwarded_by_rfd += 1;
                        self.forward(owner, ForwardReason::ReceiveFlowDeliver, frame);
                    }
                }
            }
            FrameSummary::IcmpErrorAboutTcp(quoted) => {
                let listen = &self.listen;
                let owner = self
                    .rfd
                    .owner_core(&quoted, &|port| listen.is_listened(port));
                if owner == self.core {
                    self.on_owned_icmp_error(now, frame, &quoted);
                } else {
                    self.counters.forwarded_by_rfd += 1;
                    self.forward(owner, ForwardReason::ReceiveFlowDeliver, frame);
                }
            }
            // An ICMP error about a datagram we sent goes where a reply to it would.
            FrameSummary::Udp {
                source,
                destination,
            }
            | FrameSummary::IcmpErrorAboutUdp {
                source,
                destination,
            } => {
                self.udp_bound.refresh();
                let bound = self.udp_bound.bound(destination.port());
                let owner = udp_owner(&self.rfd, self.core, source, destination, bound);
                if owner == self.core {
                    self.interface.receive(now, frame);
                } else {
                    self.counters.udp_forwarded += 1;
                    self.forward(owner, ForwardReason::ReceiveFlowDeliver, frame);
                }
            }
            FrameSummary::Arp => {
                self.interface.receive(now, frame);
                for other in (0..self.rings.core_count() as u16).map(CoreId) {
                    if other != self.core {
                        self.counters.arp_copies_sent += 1;
                        self.forward(other, ForwardReason::ArpCopy, frame);
                    }
                }
            }
            FrameSummary::Other => self.interface.receive(now, frame),
        }
    }

    /// Handles the frames other cores handed this one (at most [`RING_DRAIN_BATCH`] from each);
    /// returns how many.
    pub fn drain_inbound(&mut self, now: Instant) -> usize {
        self.listen.refresh();
        let mut batch = core::mem::take(&mut self.inbound);
        let moved = self.rings.drain_inbound(&mut batch, RING_DRAIN_BATCH);
        self.counters.received_from_rings += moved as u64;
        for frame in batch.drain(..) {
            self.on_ring_frame(now, frame);
        }
        self.inbound = batch;
        moved
    }

    fn on_ring_frame(&mut self, now: Instant, frame: RingFrame) {
        match (frame.reason, FrameSummary::of(&frame.bytes)) {
            (ForwardReason::ReceiveFlowDeliver, FrameSummary::Tcp(segment)) => {
                self.on_owned_segment(now, &frame.bytes, segment);
            }
            (ForwardReason::ReceiveFlowDeliver, FrameSummary::IcmpErrorAboutTcp(quoted)) => {
                self.on_owned_icmp_error(now, &frame.bytes, &quoted);
            }
            (ForwardReason::GlobalListener { hops }, FrameSummary::Tcp(segment)) => {
                let tuple = segment.tuple();
                let serving = self.listen.serving(tuple.local.port());
                let pass_on = hops < GLOBAL_LISTENER_MAX_HOPS
                    && !serving.contains(self.core)
                    && !self.knows(&segment);
                match pass_on
                    .then(|| fallback_core(&tuple, serving, self.core))
                    .flatten()
                {
                    Some(target) => {
                        self.counters.global_listener_segments += 1;
                        self.forward(
                            target,
                            ForwardReason::GlobalListener { hops: hops + 1 },
                            &frame.bytes,
                        );
                    }
                    None => self.process_tcp(now, &frame.bytes),
                }
            }
            // The core that took it from the NIC answered it; this one only learns from it.
            (ForwardReason::ArpCopy, _) => self.interface.observe_arp(now, &frame.bytes),
            _ => self.interface.receive(now, &frame.bytes),
        }
    }

    /// A segment this core owns by Receive Flow Deliver. A passive one that matches no
    /// connection here goes where this core sent its flow before, or, if this core does not
    /// serve the port, to the global listener: a serving core chosen by [`fallback_core`],
    /// remembered for the flow's later segments.
    fn on_owned_segment(&mut self, now: Instant, frame: &[u8], segment: TcpSummary) {
        let listen = &self.listen;
        let direction =
            self.rfd
                .classify(segment.source.port(), segment.destination.port(), &|port| {
                    listen.is_listened(port)
                });
        let serving = self.listen.serving(segment.destination.port());
        // The common case, a core that serves the port and never handed a flow away, needs no
        // lookup here: its layer finds the connection or the listener itself.
        let may_go_elsewhere = !serving.contains(self.core) || !self.routes.is_empty();
        // A core that stopped serving the port (drained) hands a new incarnation of a
        // 4-tuple it holds in TIME_WAIT to the global listener too, or clients that reuse
        // ports would keep landing on it.
        if direction == FlowDirection::Passive
            && segment.opens_connection()
            && !serving.contains(self.core)
            && !serving.is_empty()
        {
            let tuple = segment.tuple();
            let mut layer = self.tcp.borrow_mut();
            if layer.tuple_use(tuple.local, tuple.remote) == TupleUse::TimeWait
                && let Some(tcp) = super::frame_summary::tcp_segment_of(frame)
            {
                layer.release_time_wait_for_syn(tuple.local, tuple.remote, tcp);
            }
        }
        if direction == FlowDirection::Passive && may_go_elsewhere && !self.knows(&segment) {
            let tuple = segment.tuple();
            if let Some(target) = self.routes.lookup(&tuple, now) {
                self.counters.global_listener_segments += 1;
                self.forward(target, ForwardReason::GlobalListener { hops: 1 }, frame);
                return;
            }
            if !serving.contains(self.core) {
                match fallback_core(&tuple, serving, self.core) {
                    Some(target) => {
                        if segment.opens_connection() {
                            self.counters.global_listener_fallbacks += 1;
                            self.routes.insert(tuple, target, now);
                        } else {
                            self.counters.global_listener_segments += 1;
                        }
                        self.forward(target, ForwardReason::GlobalListener { hops: 1 }, frame);
                        return;
                    }
                    None => self.counters.no_serving_core += 1,
                }
            }
        }
        self.process_tcp(now, frame);
    }

    /// An ICMP error about a connection this core owns by Receive Flow Deliver. If the global
    /// listener placed that connection on another core, the error follows the flow's route
    /// there (or, without a route, the same rendezvous hash as its SYN): the core with the
    /// connection must see "fragmentation needed", or the flow's path MTU is a black hole
    /// (issue 10, defect 7). It is delivered where it lands after that, never passed on.
    fn on_owned_icmp_error(&mut self, now: Instant, frame: &[u8], quoted: &InboundSegment) {
        let tuple = FourTuple {
            local: quoted.destination,
            remote: quoted.source,
        };
        let listen = &self.listen;
        let direction =
            self.rfd
                .classify(quoted.source.port(), quoted.destination.port(), &|port| {
                    listen.is_listened(port)
                });
        let serving = self.listen.serving(tuple.local.port());
        if direction == FlowDirection::Passive && !self.knows_tuple(&tuple) {
            let target = self.routes.lookup(&tuple, now).or_else(|| {
                (!serving.contains(self.core))
                    .then(|| fallback_core(&tuple, serving, self.core))
                    .flatten()
            });
            if let Some(target) = target {
                self.counters.icmp_errors_routed += 1;
                self.forward(
                    target,
                    ForwardReason::GlobalListener {
                        hops: GLOBAL_LISTENER_MAX_HOPS,
                    },
                    frame,
                );
                return;
            }
        }
        self.interface.receive(now, frame);
    }

    /// Whether this core's layer has the segment's connection (any state, TIME_WAIT included).
    fn knows(&self, segment: &TcpSummary) -> bool {
        self.knows_tuple(&segment.tuple())
    }

    fn knows_tuple(&self, tuple: &FourTuple) -> bool {
        self.tcp.borrow().tuple_use(tuple.local, tuple.remote) != TupleUse::Free
    }

    fn process_tcp(&mut self, now: Instant, frame: &[u8]) {
        self.counters.segments_processed += 1;
        self.interface.receive(now, frame);
    }

    fn forward(&mut self, target: CoreId, reason: ForwardReason, frame: &[u8]) {
        let item = RingFrame {
            reason,
            bytes: frame.to_vec(),
        };
        match self.rings.try_send(target, item) {
            Ok(()) => self.handed_to.insert(target),
            Err(SendError::Full(_) | SendError::NoSuchRing(_)) => self.counters.ring_drops += 1,
        }
    }

    // ----- transmit -----

    /// Fires due timers and hands every frame ready to go to `sink` (this core's transmit queue).
    pub fn poll(&mut self, now: Instant, sink: &mut impl FrameSink) {
        self.routes.sweep(now);
        self.interface.poll(now, sink);
    }

    /// When [`poll`](Self::poll) next has work if no frame arrives.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.interface.next_deadline()
    }
}
