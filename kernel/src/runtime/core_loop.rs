//! One core's run loop: the struct that owns everything a core touches on its data path, and
//! the few functions that move frames through it.

use alloc::sync::Arc;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use smoltcp::wire::{EthernetAddress, EthernetProtocol};

use super::doorbells::Doorbells;
use super::statistics::{CoreSnapshot, NetworkStatistics};
use super::{Platform, QueuePair};
use crate::executor::{Executor, Handle};
use crate::net::arp::{self, ArpMessage};
use crate::net::counters::DropReason;
use crate::net::ethernet;
use crate::net::interface::{FrameSink, Interface, InterfaceConfig, SinkFull};
use crate::net::partition::{
    CoreDispatcher, DispatcherError, GlobalListenTable, RingFrame, ServedPort,
};
use crate::net::rfd::{CoreId, ReceiveFlowDeliver};
use crate::net::tcp::{TcpConfig, TcpLayer};
use crate::socket::{SharedTcpLayer, SocketError};
use crate::sync::CoreRings;
use crate::time::Instant;

/// Frames taken from the receive queue per loop iteration (a burst amortises the device
/// notification and keeps one core's turn short).
pub const RECEIVE_BURST: usize = 32;
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
    /// This core's ends of the inter-core rings (frames software Receive Flow Deliver hands
    /// over, ARP copies, global-listener deliveries).
    pub rings: CoreRings<RingFrame>,
    pub rfd: Arc<ReceiveFlowDeliver>,
    /// The global listen table, shared by every core.
    pub listen: Arc<GlobalListenTable>,
    pub doorbells: Arc<Doorbells>,
    pub statistics: Arc<NetworkStatistics>,
    pub interface: InterfaceConfig,
    pub tcp: TcpConfig,
    /// Per-boot secret for initial sequence numbers and SYN cookies.
    pub secret: [u8; 16],
    /// Where this core's active-port allocator starts (random at boot).
    pub port_start: u16,
}

/// One core's network stack, tasks and queue, driven by [`CoreRuntime::run`].
pub struct CoreRuntime<Q, P> {
    core: CoreId,
    queue: Q,
    platform: P,
    /// Receive Flow Deliver, the rings and the global listener in front of the core's
    /// interface and TCP layer (`net::partition`).
    dispatcher: CoreDispatcher,
    executor: Executor,
    doorbells: Arc<Doorbells>,
    statistics: Arc<NetworkStatistics>,
    counters: CoreSnapshot,
}

impl<Q: QueuePair, P: Platform> CoreRuntime<Q, P> {
    /// Builds the core's TCP layer, interface and dispatcher. Call it on the core that will
    /// run it (the layer is not `Send`). Fails if the setup's core, rings and Receive Flow
    /// Deliver disagree.
    pub fn new(setup: CoreSetup<Q>, platform: P) -> Result<Self, DispatcherError> {
        let now = platform.now();
        let tcp = TcpLayer::new(setup.tcp, setup.core, setup.secret).into_shared();
        tcp.borrow_mut().advance_time(now);
        let interface = Interface::new(setup.interface, tcp, now);
        let dispatcher = CoreDispatcher::new(
            interface,
            setup.rfd,
            setup.listen,
            setup.rings,
            setup.port_start,
        )?;
        Ok(CoreRuntime {
            core: setup.core,
            queue: setup.queue,
            platform,
            dispatcher,
            executor: Executor::new(),
            doorbells: setup.doorbells,
            statistics: setup.statistics,
            counters: CoreSnapshot::default(),
        })
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    /// The core's TCP layer, for the socket API of its tasks.
    pub fn tcp(&self) -> SharedTcpLayer {
        self.dispatcher.tcp().clone()
    }

    pub fn interface(&self) -> &Interface {
        self.dispatcher.interface()
    }

    /// Listens on `local` on this core and serves the port in the global listen table (see
    /// `CoreDispatcher::listen`); accept from the returned port's listener.
    pub fn listen(
        &mut self,
        local: SocketAddrV4,
        backlog: usize,
    ) -> Result<ServedPort, SocketError> {
        self.dispatcher.listen(local, backlog)
    }

    /// Opens more served ports on this core after start-up (reconfiguration).
    pub fn port_opener(&self) -> crate::net::partition::PortOpener {
        self.dispatcher.port_opener()
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

    /// Broadcasts an ARP request for `target` from this core's queue (at start, for the
    /// gateway: the dispatcher copies ARP frames to every core, so each learns the reply).
    pub fn request_address(&mut self, target: Ipv4Addr) {
        let config = *self.dispatcher.interface().config();
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
        let handed_to_us = self.dispatcher.drain_inbound(now);
        let timers = self.executor.fire_timers(now);
        let polls = self.executor.run_ready(now);
        let sent = self.transmit(now);
        self.wake_cores_handed_frames();
        self.publish();
        received + handed_to_us + timers + polls + sent > 0
    }

    /// Receive burst: the dispatcher hands each frame to this core's stack or, by Receive
    /// Flow Deliver, to its owner's ring.
    fn receive(&mut self, now: Instant) -> usize {
        let dispatcher = &mut self.dispatcher;
        self.queue.receive_burst(RECEIVE_BURST, &mut |frame| {
            dispatcher.on_frame_from_nic(now, frame)
        })
    }

    /// Wakes the cores this one handed frames to, if they announced a halt.
    fn wake_cores_handed_frames(&mut self) {
        for core in self.dispatcher.take_cores_handed_frames().iter() {
            if self.doorbells.take_halted(core) {
                self.platform.wake(core);
            }
        }
    }

    /// Runs the interface's timers (TCP, ARP) and sends every frame it has, then publishes
    /// them to the device with one notification.
    fn transmit(&mut self, now: Instant) -> usize {
        let mut sink = QueueSink {
            queue: &mut self.queue,
            sent: 0,
            full: 0,
        };
        self.dispatcher.poll(now, &mut sink);
        let (sent, full) = (sink.sent, sink.full);
        self.counters.tx_frames += sent as u64;
        self.counters.tx_full += full;
        if sent > 0 {
            self.queue.flush();
        }
        sent
    }

    /// Copies the dispatcher's, interface's and TCP's counters into this core's published
    /// block.
    fn publish(&mut self) {
        let counters = &mut self.counters;
        counters.loops += 1;
        let partition = self.dispatcher.counters();
        counters.rx_frames = partition.frames_from_nic;
        counters.rfd_local = partition.arrived_on_owner;
        counters.rfd_forwarded = partition.forwarded_by_rfd;
        counters.rfd_received = partition.received_from_rings;
        counters.global_listener_fallbacks = partition.global_listener_fallbacks;
        counters.arp_copies_sent = partition.arp_copies_sent;
        counters.ring_full_drops = partition.ring_drops;
        counters.icmp_errors_routed = partition.icmp_errors_routed;
        counters.udp_forwarded = partition.udp_forwarded;
        let interface = self.dispatcher.interface().counters();
        counters.frames_accepted = interface.frames_accepted;
        counters.frames_dropped = interface.frames_dropped;
        counters.icmp_port_unreachables_sent = interface.port_unreachables_sent;
        for (published, reason) in counters.interface_drops.iter_mut().zip(DropReason::ALL) {
            *published = interface.drops(reason);
        }
        {
            let udp = self.dispatcher.interface().udp().borrow();
            let udp_counters = udp.counters();
            counters.udp_datagrams_received = udp_counters.datagrams_received;
            counters.udp_datagrams_sent = udp_counters.datagrams_sent;
            counters.udp_send_queue_full = udp_counters.send_queue_full;
            counters.udp_broadcast_refused = udp_counters.broadcast_refused;
            counters.udp_ports_exhausted = udp_counters.ports_exhausted;
            counters.udp_icmp_errors = udp_counters.icmp_errors;
        }
        {
            let tcp = self.dispatcher.tcp().borrow();
            let tcp_counters = tcp.counters();
            counters.tcp_segments_in = tcp_counters.segments_in;
            counters.tcp_segments_out = tcp_counters.segments_out;
            counters.tcp_retransmits = tcp_counters.retransmits;
            counters.tcp_fast_retransmits = tcp_counters.fast_retransmits;
            counters.tcp_spurious_fast_retransmits = tcp_counters.spurious_fast_retransmits;
            counters.tcp_timeouts = tcp_counters.timeouts;
            counters.tcp_passive_opens = tcp_counters.passive_opens;
            counters.tcp_active_opens = tcp_counters.active_opens;
            counters.tcp_resets_sent = tcp_counters.resets_sent;
            counters.tcp_acks_rate_limited = tcp_counters.acks_rate_limited;
            counters.tcp_resets_rate_limited = tcp_counters.resets_rate_limited;
            counters.tcp_output_queue_drops = tcp_counters.output_queue_drops;
            counters.tcp_persist_timeouts = tcp_counters.persist_timeouts;
            counters.tcp_orphan_persist_limits = tcp_counters.orphan_persist_limits;
            counters.tcp_orphans_reaped = tcp_counters.orphans_reaped;
            counters.tcp_connections = tcp.connection_count() as u64;
            counters.tcp_time_wait = tcp.time_wait_count() as u64;
            counters.tcp_timer_entries = tcp.timer_entries() as u64;
            counters.tcp_buffer_bytes = tcp.buffer_memory_used() as u64;
            counters.tcp_buffer_budget_bytes = tcp.config().max_buffer_memory as u64;
            counters.tcp_resets_received = tcp_counters.resets_received;
            counters.tcp_challenge_acks = tcp_counters.challenge_acks;
            counters.tcp_syn_cookies_sent = tcp_counters.syn_cookies_sent;
            counters.tcp_syn_cookies_validated = tcp_counters.syn_cookies_validated;
            counters.tcp_time_wait_reuses = tcp_counters.time_wait_reuses;
            counters.tcp_time_wait_overflows = tcp_counters.time_wait_overflows;
            counters.tcp_connections_timed_out = tcp_counters.connections_timed_out;
            counters.tcp_keepalive_probes = tcp_counters.keepalive_probes;
            counters.tcp_zero_window_probes = tcp_counters.zero_window_probes;
            counters.tcp_icmp_errors = tcp_counters.icmp_errors;
            counters.tcp_write_memory_refusals = tcp_counters.write_memory_refusals;
            counters.tcp_out_of_order_bytes_pruned = tcp_counters.out_of_order_bytes_pruned;
            counters.tcp_reserve_limit_refusals = tcp_counters.reserve_limit_refusals;
            counters.tcp_connection_limit_refusals = tcp_counters.connection_limit_refusals;
            counters.tcp_drops = tcp_counters.drops;
        }
        counters.set_nic(&self.queue.counters());
        if let Some(published) = self.statistics.core(usize::from(self.core.0)) {
            published.publish(counters);
        }
    }

    /// The earliest moment this core has something to do without any input.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (
            self.dispatcher.next_deadline(),
            self.executor.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Halts until the queue's interrupt, another core's wake or the next deadline, unless
    /// work turned up while getting ready to. The order matters: first ask for interrupts,
    /// then announce the halt, then look for work one last time (a frame another core pushed
    /// before it saw the announcement is drained here instead of waiting for the next wake).
    pub fn idle(&mut self) {
        if self.queue.enable_interrupts() {
            self.queue.disable_interrupts();
            return;
        }
        self.doorbells.announce_halt(self.core);
        let now = self.platform.now();
        let handed_to_us = self.dispatcher.drain_inbound(now);
        let deadline = self.next_deadline();
        let may_halt = handed_to_us == 0
            && self.executor.prepare_to_halt()
            && deadline.is_none_or(|deadline| deadline > now);
        if may_halt {
            self.counters.halts += 1;
            self.platform.halt_until(deadline);
        }
        self.executor.resumed();
        self.doorbells.clear(self.core);
        self.queue.disable_interrupts();
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
