//! One core's run loop: the struct that owns everything a core touches on its data path, and
//! the few functions that move frames through it.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::wire::{EthernetAddress, EthernetProtocol};

use super::doorbells::Doorbells;
use super::statistics::{CoreSnapshot, NetworkStatistics};
use super::steering::{FrameClass, classify_frame};
use super::{Platform, QueuePair};
use crate::executor::{Executor, Handle};
use crate::net::arp::{self, ArpMessage};
use crate::net::ethernet;
use crate::net::interface::{FrameSink, Interface, InterfaceConfig, SinkFull};
use crate::net::rfd::{CoreId, Delivery, ReceiveFlowDeliver, RfdCounters};
use crate::net::tcp::{TcpConfig, TcpLayer};
use crate::socket::SharedTcpLayer;
use crate::sync::CoreRings;
use crate::time::Instant;

/// Frames taken from the receive queue per loop iteration (a burst amortises the device
/// notification and keeps one core's turn short).
pub const RECEIVE_BURST: usize = 32;
/// Frames taken from each other core's ring per iteration.
const INBOUND_PER_SOURCE: usize = 64;
/// How many times a full transmit queue is flushed and tried again before a frame is given
/// up (the device drains the queue in parallel; TCP retransmits what is given up).
const FULL_QUEUE_RETRIES: usize = 16;
/// How long a core keeps polling with nothing to do before it halts (NAPI-style: a busy core
/// never takes an interrupt, an idle one does not spin forever).
pub const SPIN_BEFORE_HALT: Duration = Duration::from_micros(200);

/// Everything a core's loop is built from; made on the boot core, moved to its core.
pub struct CoreSetup<Q> {
    pub core: CoreId,
    pub queue: Q,
    /// This core's ends of the inter-core rings (frames Receive Flow Deliver hands over).
    pub rings: CoreRings<Vec<u8>>,
    pub rfd: Arc<ReceiveFlowDeliver>,
    pub doorbells: Arc<Doorbells>,
    pub statistics: Arc<NetworkStatistics>,
    pub interface: InterfaceConfig,
    pub tcp: TcpConfig,
    /// Per-boot secret for initial sequence numbers and SYN cookies.
    pub secret: [u8; 16],
    /// Ports every core listens on: Receive Flow Deliver's view of the listen tables.
    pub listening_ports: Vec<u16>,
}

/// One core's network stack, tasks and queue, driven by [`CoreRuntime::run`].
pub struct CoreRuntime<Q, P> {
    core: CoreId,
    queue: Q,
    platform: P,
    interface: Interface,
    executor: Executor,
    rings: CoreRings<Vec<u8>>,
    rfd: Arc<ReceiveFlowDeliver>,
    doorbells: Arc<Doorbells>,
    statistics: Arc<NetworkStatistics>,
    listening_ports: Vec<u16>,
    /// Frames received here for another core, sent over the rings after the burst.
    outbox: Vec<(CoreId, Vec<u8>)>,
    /// Frames taken from the inbound rings (kept to reuse the allocation).
    inbound: Vec<Vec<u8>>,
    rfd_counters: RfdCounters,
    counters: CoreSnapshot,
}

impl<Q: QueuePair, P: Platform> CoreRuntime<Q, P> {
    /// Builds the core's TCP layer and interface. Call it on the core that will run it.
    pub fn new(setup: CoreSetup<Q>, platform: P) -> Self {
        let now = platform.now();
        let tcp = TcpLayer::new(setup.tcp, setup.core, setup.secret).into_shared();
        tcp.borrow_mut().advance_time(now);
        CoreRuntime {
            core: setup.core,
            queue: setup.queue,
            interface: Interface::new(setup.interface, tcp, now),
            platform,
            executor: Executor::new(),
            rings: setup.rings,
            rfd: setup.rfd,
            doorbells: setup.doorbells,
            statistics: setup.statistics,
            listening_ports: setup.listening_ports,
            outbox: Vec::new(),
            inbound: Vec::new(),
            rfd_counters: RfdCounters::default(),
            counters: CoreSnapshot::default(),
        }
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    /// The core's TCP layer, for the socket API of its tasks.
    pub fn tcp(&self) -> SharedTcpLayer {
        self.interface.tcp().clone()
    }

    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    /// The executor's handle: tasks use it to spawn, sleep and time out.
    pub fn handle(&self) -> Handle {
        self.executor.handle()
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + 'static) {
        self.executor.spawn(task);
    }

    /// The counters as of the last iteration.
    pub fn counters(&self) -> &CoreSnapshot {
        &self.counters
    }

    pub fn rfd_counters(&self) -> &RfdCounters {
        &self.rfd_counters
    }

    /// Broadcasts an ARP request for `target` from this core's queue (at start, for the
    /// gateway: its reply reaches every core, see [`FrameClass::ArpReply`]).
    pub fn request_address(&mut self, target: Ipv4Addr) {
        let config = *self.interface.config();
        let message = ArpMessage::request(config.hardware_address, config.ipv4.address, target);
        let mut write = |frame: &mut [u8]| {
            let payload = ethernet::write_header(
                frame,
                config.hardware_address,
                EthernetAddress::BROADCAST,
                EthernetProtocol::Arp,
            );
            message.write(payload);
        };
        match self
            .queue
            .transmit(ethernet::HEADER_LEN + arp::PACKET_LEN, &mut write)
        {
            Ok(()) => {
                self.counters.tx_frames += 1;
                self.queue.flush();
            }
            Err(SinkFull) => self.counters.tx_full += 1,
        }
    }

    /// Runs the loop forever, halting whenever it has been idle for [`SPIN_BEFORE_HALT`].
    pub fn run(mut self) -> ! {
        let mut idle_since: Option<Instant> = None;
        loop {
            if self.poll_once() {
                idle_since = None;
                continue;
            }
            let now = self.platform.now();
            let since = *idle_since.get_or_insert(now);
            if now.saturating_since(since) >= SPIN_BEFORE_HALT {
                self.idle();
                idle_since = None;
            }
        }
    }

    /// One turn of the loop; true if it did any work.
    pub fn poll_once(&mut self) -> bool {
        let now = self.platform.now();
        let received = self.receive(now);
        self.hand_over();
        let handed_to_us = self.drain_inbound(now);
        let timers = self.executor.fire_timers(now);
        let polls = self.executor.run_ready(now);
        let sent = self.transmit(now);
        self.publish();
        received + handed_to_us + timers + polls + sent > 0
    }

    /// Receive burst: each frame goes to this core's interface or, by Receive Flow Deliver,
    /// into the outbox for its owner.
    fn receive(&mut self, now: Instant) -> usize {
        let CoreRuntime {
            core,
            queue,
            interface,
            rings,
            rfd,
            listening_ports,
            outbox,
            rfd_counters,
            counters,
            ..
        } = self;
        let core = *core;
        let core_count = rings.core_count();
        let listening = |port: u16| listening_ports.contains(&port);
        queue.receive_burst(RECEIVE_BURST, &mut |frame| {
            counters.rx_frames += 1;
            match classify_frame(frame) {
                FrameClass::Tcp(segment) => {
                    match rfd.deliver(core, &segment, &listening, rfd_counters) {
                        Delivery::Local => {
                            counters.rfd_local += 1;
                            interface.receive(now, frame);
                        }
                        Delivery::Forward(owner) => {
                            counters.rfd_forwarded += 1;
                            outbox.push((owner, frame.to_vec()));
                        }
                    }
                }
                FrameClass::ArpReply => {
                    interface.receive(now, frame);
                    for other in (0..core_count as u16).map(CoreId) {
                        if other != core {
                            counters.arp_replies_shared += 1;
                            outbox.push((other, frame.to_vec()));
                        }
                    }
                }
                FrameClass::Local => interface.receive(now, frame),
            }
        })
    }

    /// Sends the outbox over the rings and wakes the owners that were halted.
    fn hand_over(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        // Receive Flow Deliver supports at most 128 cores.
        let mut destinations: u128 = 0;
        for (owner, frame) in self.outbox.drain(..) {
            match self.rings.try_send(owner, frame) {
                Ok(()) => destinations |= 1 << owner.0,
                Err(_) => self.counters.ring_full_drops += 1,
            }
        }
        for owner in (0..128u16).filter(|core| destinations & (1 << core) != 0) {
            let owner = CoreId(owner);
            if self.doorbells.take_halted(owner) {
                self.platform.wake(owner);
            }
        }
    }

    /// Frames other cores handed to this one: they already chose this core, so they go
    /// straight to the interface.
    fn drain_inbound(&mut self, now: Instant) -> usize {
        let count = self
            .rings
            .drain_inbound(&mut self.inbound, INBOUND_PER_SOURCE);
        for frame in self.inbound.drain(..) {
            self.interface.receive(now, &frame);
        }
        self.counters.rfd_received += count as u64;
        count
    }

    /// Runs the interface's timers (TCP, ARP) and sends every frame it has, then publishes
    /// them to the device with one notification.
    fn transmit(&mut self, now: Instant) -> usize {
        let mut sink = QueueSink {
            queue: &mut self.queue,
            sent: 0,
            full: 0,
        };
        self.interface.poll(now, &mut sink);
        let (sent, full) = (sink.sent, sink.full);
        self.counters.tx_frames += sent as u64;
        self.counters.tx_full += full;
        if sent > 0 {
            self.queue.flush();
        }
        sent
    }

    /// Copies the interface's and TCP's counters into this core's published block.
    fn publish(&mut self) {
        let counters = &mut self.counters;
        counters.loops += 1;
        let interface = self.interface.counters();
        counters.frames_accepted = interface.frames_accepted;
        counters.frames_dropped = interface.frames_dropped;
        {
            let tcp = self.interface.tcp().borrow();
            let tcp_counters = tcp.counters();
            counters.tcp_segments_in = tcp_counters.segments_in;
            counters.tcp_segments_out = tcp_counters.segments_out;
            counters.tcp_retransmits = tcp_counters.retransmits;
            counters.tcp_fast_retransmits = tcp_counters.fast_retransmits;
            counters.tcp_timeouts = tcp_counters.timeouts;
            counters.tcp_passive_opens = tcp_counters.passive_opens;
            counters.tcp_active_opens = tcp_counters.active_opens;
            counters.tcp_resets_sent = tcp_counters.resets_sent;
            counters.tcp_connections = tcp.connection_count() as u64;
            counters.tcp_time_wait = tcp.time_wait_count() as u64;
        }
        if let Some(published) = self.statistics.core(usize::from(self.core.0)) {
            published.publish(counters);
        }
    }

    /// The earliest moment this core has something to do without any input.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (
            self.interface.next_deadline(),
            self.executor.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Halts until the queue's interrupt, another core's wake or the next deadline, unless
    /// work turned up while getting ready to. The order matters: first ask for interrupts,
    /// then announce the halt, then look for work one last time.
    pub fn idle(&mut self) {
        if self.queue.enable_interrupts() {
            self.queue.disable_interrupts();
            return;
        }
        self.doorbells.announce_halt(self.core);
        let deadline = self.next_deadline();
        let now = self.platform.now();
        let may_halt = self.executor.prepare_to_halt()
            && !self.inbound_waiting()
            && deadline.is_none_or(|deadline| deadline > now);
        if may_halt {
            self.counters.halts += 1;
            self.platform.halt_until(deadline);
        }
        self.executor.resumed();
        self.doorbells.clear(self.core);
        self.queue.disable_interrupts();
    }

    fn inbound_waiting(&mut self) -> bool {
        let core_count = self.rings.core_count() as u16;
        (0..core_count).map(CoreId).any(|source| {
            self.rings
                .from_core(source)
                .is_some_and(|consumer| !consumer.is_empty())
        })
    }
}

/// The interface's frame sink over a queue pair: a full queue is flushed (which reclaims
/// the frames the device has sent) and tried again a few times before the frame is given up.
struct QueueSink<'a, Q> {
    queue: &'a mut Q,
    sent: usize,
    full: u64,
}

impl<Q: QueuePair> FrameSink for QueueSink<'_, Q> {
    fn transmit(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SinkFull> {
        let mut fill = Some(fill);
        let mut write = |buffer: &mut [u8]| {
            if let Some(fill) = fill.take() {
                fill(buffer);
            }
        };
        let mut result = self.queue.transmit(len, &mut write);
        for _ in 0..FULL_QUEUE_RETRIES {
            if result.is_ok() {
                break;
            }
            self.queue.flush();
            result = self.queue.transmit(len, &mut write);
        }
        match result {
            Ok(()) => self.sent += 1,
            Err(SinkFull) => self.full += 1,
        }
        result
    }
}
