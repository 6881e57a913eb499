//! A multi-core appliance on the host: one thread per core, each with its own load generator, over a simulated multi-queue NIC that steers by the port-only Toeplitz hash (or at random).
//!
//! Thread `i` runs core `i` of the appliance (a partitioned [`CoreDispatcher`] or a
//! [`SharedCore`] over the one locked table set), that core's application (an HTTP-like server
//! on port 80 and a client of the backends, like the proxy), and two peer machines: client
//! host `i` (10.0.1.i+1), which opens connections to the appliance, and backend host `i`
//! (10.0.2.i+1), which answers the appliance's connections. Each request carries its own
//! pattern and each response is a function of the request, so every byte is checked.
//! Frames cross threads only through the NIC queues (std channels) and the appliance's rings.
//! The clients and servers are those of the image's self-test (`net::partition::self_test`).

#![allow(dead_code)] // the tests and the benchmark each use their own part

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use smoltcp::wire::EthernetAddress;
use unisock_kernel::net::interface::{Interface, InterfaceConfig};
use unisock_kernel::net::ipv4::Ipv4Config;
/// How the simulated NIC picks the receive queue of a frame: the self-test's, so the host
/// harness and the image simulate the same NIC.
pub use unisock_kernel::net::partition::self_test::Steering;
use unisock_kernel::net::partition::self_test::{Client, ClientPlan, FrameSteering, Server};
use unisock_kernel::net::partition::{
    CoreDispatcher, GlobalListenTable, PartitionCounters, RfdPortAllocator, RingFrame, ServedPort,
    SharedCore, SharedTables, StackMode,
};
use unisock_kernel::net::rfd::{CoreId, ReceiveFlowDeliver, RfdConfig};
use unisock_kernel::net::tcp::{SocketHandle, TcpConfig, TcpCounters, TcpLayer};
use unisock_kernel::socket::SharedTcpLayer;
use unisock_kernel::sync::mesh::RingMesh;
use unisock_kernel::time::Instant;

pub const SERVICE_PORT: u16 = 80;
pub const BACKEND_PORT: u16 = 8080;
pub const APPLIANCE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const APPLIANCE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const RING_CAPACITY: usize = 1024;

pub fn client_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 1, index as u8 + 1)
}

pub fn backend_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, index as u8 + 1)
}

fn client_mac(index: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 1, 0, index as u8 + 1])
}

fn backend_mac(index: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 2, 0, index as u8 + 1])
}

/// One core's worker stops serving the service port after accepting `after_accepts`
/// connections (0: it never listens).
#[derive(Clone, Copy, Debug)]
pub struct StoppedWorker {
    pub core: usize,
    pub after_accepts: usize,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub cores: usize,
    pub mode: StackMode,
    pub steering: Steering,
    /// Connections client host `i` opens to the appliance, for each `i`.
    pub passive_per_core: usize,
    /// Connections appliance core `i` opens to the backends, for each `i`.
    pub active_per_core: usize,
    /// Connections in flight at once per client (client host or appliance core).
    pub concurrency: usize,
    pub request_len: usize,
    pub response_len: usize,
    pub stopped_worker: Option<StoppedWorker>,
    /// Wall-clock time after which the run gives up (`None`: run until `duration`).
    pub time_limit: Duration,
    /// For the benchmark: run this long and count, instead of a fixed number of connections.
    pub duration: Option<Duration>,
    /// For the benchmark: connections completed before this are not counted.
    pub warm_up: Duration,
    pub seed: u64,
    /// Load that RSS keeps on its own thread: client host `i` picks its ports so that its
    /// connections hash to queue `i`, and core `i` uses only backend host `i`. Then no frame
    /// crosses threads through the simulated wire (a real NIC spreads flows at no cost to the
    /// cores), and in the partitioned mode nothing is shared at all.
    pub affine_load: bool,
}

impl Scenario {
    pub fn new(cores: usize, mode: StackMode, steering: Steering) -> Scenario {
        Scenario {
            cores,
            mode,
            steering,
            passive_per_core: 400,
            active_per_core: 200,
            concurrency: 64,
            request_len: 200,
            response_len: 700,
            stopped_worker: None,
            time_limit: Duration::from_secs(60),
            duration: None,
            warm_up: Duration::ZERO,
            seed: 1,
            affine_load: false,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub completed_passive: u64,
    pub completed_active: u64,
    /// Every connection that failed, with why.
    pub failures: Vec<String>,
    pub per_core: Vec<PartitionCounters>,
    pub appliance_tcp: Vec<TcpCounters>,
    pub accepted_per_core: Vec<u64>,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// CPU time all the threads spent in the measuring window (timed runs on Linux only).
    pub cpu_time: Option<Duration>,
}

impl Outcome {
    pub fn total(&self) -> PartitionCounters {
        let mut total = PartitionCounters::default();
        for counters in &self.per_core {
            total += *counters;
        }
        total
    }
}

/// The appliance's core, in either mode.
enum ApplianceCore {
    Partitioned(CoreDispatcher),
    Shared(SharedCore),
}

impl ApplianceCore {
    fn with_layer<R>(&self, action: impl FnOnce(&mut TcpLayer) -> R) -> R {
        match self {
            ApplianceCore::Partitioned(dispatcher) => action(&mut dispatcher.tcp().borrow_mut()),
            ApplianceCore::Shared(core) => action(&mut core.tables().lock()),
        }
    }

    fn on_frame_from_nic(&mut self, now: Instant, frame: &[u8]) {
        match self {
            ApplianceCore::Partitioned(dispatcher) => dispatcher.on_frame_from_nic(now, frame),
            ApplianceCore::Shared(core) => core.on_frame_from_nic(now, frame),
        }
    }

    fn drain_inbound(&mut self, now: Instant) -> usize {
        match self {
            ApplianceCore::Partitioned(dispatcher) => dispatcher.drain_inbound(now),
            ApplianceCore::Shared(core) => core.drain_inbound(now),
        }
    }

    fn poll(&mut self, now: Instant, sink: &mut Vec<Vec<u8>>) {
        match self {
            ApplianceCore::Partitioned(dispatcher) => dispatcher.poll(now, sink),
            ApplianceCore::Shared(core) => core.poll(now, sink),
        }
    }

    fn counters(&self) -> PartitionCounters {
        match self {
            ApplianceCore::Partitioned(dispatcher) => *dispatcher.counters(),
            ApplianceCore::Shared(core) => *core.counters(),
        }
    }
}

/// The simulated NIC and the wire behind it.
struct Wire {
    steering: FrameSteering,
    queues: Vec<Sender<Vec<u8>>>,
    clients: Vec<Sender<Vec<u8>>>,
    backends: Vec<Sender<Vec<u8>>>,
}

impl Wire {
    /// Puts a frame on the wire; `random` draws the queue under random steering.
    fn send(&self, frame: Vec<u8>, from_appliance: bool, random: &mut u64) {
        let destination = &frame[..6];
        if destination == APPLIANCE_MAC.0 || (destination == [0xff; 6] && !from_appliance) {
            let queue = self.steering.queue_for(&frame, random, self.queues.len());
            let _ = self.queues[queue].send(frame);
        } else if destination == [0xff; 6] {
            for peer in self.clients.iter().chain(&self.backends) {
                let _ = peer.send(frame.clone());
            }
        } else if destination[..3] == [0x02, 0, 0] && destination[4] == 0 {
            let index = usize::from(destination[5]) - 1;
            let peers = match destination[3] {
                1 => &self.clients,
                _ => &self.backends,
            };
            if let Some(peer) = peers.get(index) {
                let _ = peer.send(frame);
            }
        }
    }
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux); `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanoseconds))
}

fn tcp_config() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(2),
        ..TcpConfig::default()
    }
}

fn interface(
    address: Ipv4Addr,
    hardware_address: EthernetAddress,
    tcp: SharedTcpLayer,
    now: Instant,
) -> Interface {
    let config = InterfaceConfig {
        hardware_address,
        ipv4: Ipv4Config {
            address,
            prefix_len: 16,
            gateway: None,
        },
    };
    Interface::new(config, tcp, now)
}

/// A peer machine: its interface, its layer, and its inbox on the wire.
struct Peer {
    interface: Interface,
    tcp: SharedTcpLayer,
    inbox: Receiver<Vec<u8>>,
}

impl Peer {
    fn new(
        address: Ipv4Addr,
        mac: EthernetAddress,
        secret: u8,
        inbox: Receiver<Vec<u8>>,
        now: Instant,
    ) -> Peer {
        let tcp = TcpLayer::new(tcp_config(), CoreId(0), [secret; 16]).into_shared();
        Peer {
            interface: interface(address, mac, tcp.clone(), now),
            tcp,
            inbox,
        }
    }

    /// Receives what arrived and transmits what is ready; true if anything moved.
    fn turn(
        &mut self,
        now: Instant,
        wire: &Wire,
        random: &mut u64,
        sink: &mut Vec<Vec<u8>>,
    ) -> bool {
        let mut moved = false;
        while let Ok(frame) = self.inbox.try_recv() {
            self.interface.receive(now, &frame);
            moved = true;
        }
        self.interface.poll(now, sink);
        for frame in sink.drain(..) {
            wire.send(frame, false, random);
            moved = true;
        }
        moved
    }
}

/// The appliance's listener on one core, as the mode and the scenario have it.
enum ServiceListener {
    Served(ServedPort),
    Shared(SocketHandle),
    Stopping(ServedPort),
    None,
}

impl ServiceListener {
    fn handle(&self) -> Option<SocketHandle> {
        match self {
            ServiceListener::Served(port) | ServiceListener::Stopping(port) => Some(port.handle()),
            ServiceListener::Shared(handle) => Some(*handle),
            ServiceListener::None => None,
        }
    }
}

/// Runs `scenario` to its end (all connections done, or `duration` elapsed, or the time limit).
pub fn run(scenario: &Scenario) -> Outcome {
    let cores = scenario.cores;
    let start = std::time::Instant::now();
    let now = move || Instant::from_nanos(start.elapsed().as_nanos() as u64);
    let (queue_senders, queue_receivers): (Vec<_>, Vec<_>) = (0..cores).map(|_| channel()).unzip();
    let (client_senders, client_receivers): (Vec<_>, Vec<_>) =
        (0..cores).map(|_| channel()).unzip();
    let (backend_senders, backend_receivers): (Vec<_>, Vec<_>) =
        (0..cores).map(|_| channel()).unzip();
    let rfd_config = RfdConfig {
        backend_ports: vec![BACKEND_PORT],
        ..RfdConfig::port_xor(cores).expect("rfd config")
    };
    let wire = Arc::new(Wire {
        steering: FrameSteering::new(scenario.steering, rfd_config.indirection_table.clone()),
        queues: queue_senders,
        clients: client_senders,
        backends: backend_senders,
    });
    let rfd = Arc::new(ReceiveFlowDeliver::new(rfd_config).expect("rfd"));
    let listen_table = GlobalListenTable::new();
    let shared_tables = (scenario.mode == StackMode::SharedTables).then(|| {
        let mut layer = TcpLayer::new(tcp_config(), CoreId(0), [7; 16]);
        let listener = layer
            .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVICE_PORT), 4096)
            .expect("listen");
        (SharedTables::new(layer, APPLIANCE_ADDRESS), listener)
    });
    let finished = Arc::new(AtomicUsize::new(0));
    let give_up = Arc::new(AtomicBool::new(false));
    let rings = RingMesh::<RingFrame>::new(cores, RING_CAPACITY).into_cores();
    let mut threads = Vec::new();
    for (((index, rings), queue), (client_inbox, backend_inbox)) in rings
        .into_iter()
        .enumerate()
        .zip(queue_receivers)
        .zip(client_receivers.into_iter().zip(backend_receivers))
    {
        let scenario = scenario.clone();
        let wire = wire.clone();
        let rfd = rfd.clone();
        let rfd_for_clients = rfd.clone();
        let listen_table = listen_table.clone();
        let shared_tables = shared_tables.clone();
        let finished = finished.clone();
        let give_up = give_up.clone();
        threads.push(std::thread::spawn(move || {
            let tcp = TcpLayer::new(tcp_config(), CoreId(index as u16), [7; 16]).into_shared();
            let appliance_interface = interface(APPLIANCE_ADDRESS, APPLIANCE_MAC, tcp, now());
            let mut appliance = match &shared_tables {
                None => ApplianceCore::Partitioned(
                    CoreDispatcher::new(
                        appliance_interface,
                        rfd,
                        listen_table,
                        rings,
                        index as u16 * 7919,
                    )
                    .expect("dispatcher"),
                ),
                Some((tables, _)) => ApplianceCore::Shared(SharedCore::new(
                    appliance_interface,
                    tables.clone(),
                    rings,
                )),
            };
            let never_listens = scenario
                .stopped_worker
                .is_some_and(|stopped| stopped.core == index && stopped.after_accepts == 0);
            let mut listener = match (&mut appliance, &shared_tables) {
                (_, Some((_, handle))) => ServiceListener::Shared(*handle),
                (_, None) if never_listens => ServiceListener::None,
                (ApplianceCore::Partitioned(dispatcher), None) => ServiceListener::Served(
                    dispatcher
                        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVICE_PORT), 4096)
                        .expect("listen"),
                ),
                (ApplianceCore::Shared(_), None) => ServiceListener::None,
            };
            let mut server = Server::new(scenario.request_len, scenario.response_len);
            // A fixed count, or without end in a timed run; zero means none in either.
            let total =
                |count: usize| (count == 0 || scenario.duration.is_none()).then_some(count as u64);
            let mut proxy_client = Client::new(ClientPlan {
                remotes: (0..scenario.cores)
                    .take(if scenario.affine_load {
                        1
                    } else {
                        scenario.cores
                    })
                    .map(|backend| {
                        SocketAddrV4::new(
                            backend_address((index + backend) % scenario.cores),
                            BACKEND_PORT,
                        )
                    })
                    .collect(),
                id_base: (1 << 48) | (index as u64) << 32,
                total: total(scenario.active_per_core),
                concurrency: scenario.concurrency,
                request_len: scenario.request_len,
                response_len: scenario.response_len,
            });
            let mut client_host = Peer::new(
                client_address(index),
                client_mac(index),
                11 + index as u8,
                client_inbox,
                now(),
            );
            if scenario.affine_load {
                let allocator = RfdPortAllocator::new(
                    &rfd_for_clients,
                    CoreId(index as u16),
                    1,
                    GlobalListenTable::new(),
                )
                .expect("client port allocator");
                client_host
                    .tcp
                    .borrow_mut()
                    .set_port_allocator(Box::new(allocator));
            }
            let mut backend_host = Peer::new(
                backend_address(index),
                backend_mac(index),
                111 + index as u8,
                backend_inbox,
                now(),
            );
            let backend_listener = backend_host
                .tcp
                .borrow_mut()
                .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT), 4096)
                .expect("backend listen");
            let mut backend_server = Server::new(scenario.request_len, scenario.response_len);
            let mut client = Client::new(ClientPlan {
                remotes: vec![SocketAddrV4::new(APPLIANCE_ADDRESS, SERVICE_PORT)],
                id_base: (index as u64) << 32,
                total: total(scenario.passive_per_core),
                concurrency: scenario.concurrency,
                request_len: scenario.request_len,
                response_len: scenario.response_len,
            });
            let mut random = scenario.seed ^ (index as u64) << 20;
            let mut sink = Vec::new();
            let mut reported_finished = false;
            // Completions counted when the measuring window opened and closed (benchmark runs).
            let mut completed_at_warm_up = None;
            let mut completed_in_window = None;
            let mut cpu_at_warm_up = None;
            let mut cpu_in_window = None;
            // The proxy side starts once the clients are under way, so ARP has settled.
            let active_start = Duration::from_millis(20);
            loop {
                let now = now();
                let mut moved = false;
                let elapsed = start.elapsed();
                let measuring = scenario.duration.is_none_or(|duration| elapsed < duration);
                while let Ok(frame) = queue.try_recv() {
                    appliance.on_frame_from_nic(now, &frame);
                    moved = true;
                }
                moved |= appliance.drain_inbound(now) > 0;
                moved |= appliance.with_layer(|layer| {
                    let mut moved = server.step(layer, listener.handle());
                    moved |= proxy_client.step(layer, measuring && elapsed >= active_start);
                    moved
                });
                if let Some(stopped) = scenario
                    .stopped_worker
                    .filter(|stopped| stopped.core == index)
                {
                    listener = match listener {
                        ServiceListener::Served(mut port)
                            if server.accepted >= stopped.after_accepts as u64 =>
                        {
                            port.stop_serving();
                            ServiceListener::Stopping(port)
                        }
                        ServiceListener::Stopping(port) if port.is_drained() => {
                            ServiceListener::None
                        }
                        other => other,
                    };
                }
                appliance.poll(now, &mut sink);
                for frame in sink.drain(..) {
                    wire.send(frame, true, &mut random);
                    moved = true;
                }
                moved |= client_host.turn(now, &wire, &mut random, &mut sink);
                moved |= client.step(&mut client_host.tcp.borrow_mut(), measuring);
                moved |= backend_host.turn(now, &wire, &mut random, &mut sink);
                moved |=
                    backend_server.step(&mut backend_host.tcp.borrow_mut(), Some(backend_listener));
                if elapsed >= scenario.warm_up && completed_at_warm_up.is_none() {
                    completed_at_warm_up = Some((client.completed, proxy_client.completed));
                    cpu_at_warm_up = thread_cpu_time();
                }
                if !measuring && completed_in_window.is_none() {
                    completed_in_window = Some((client.completed, proxy_client.completed));
                    cpu_in_window = thread_cpu_time()
                        .zip(cpu_at_warm_up)
                        .map(|(end, start)| end.saturating_sub(start));
                }
                let my_work_done = match scenario.duration {
                    Some(duration) => elapsed >= duration,
                    None => client.done() && proxy_client.done(),
                };
                if my_work_done && !reported_finished {
                    reported_finished = true;
                    finished.fetch_add(1, Ordering::AcqRel);
                }
                if finished.load(Ordering::Acquire) == scenario.cores {
                    break;
                }
                if elapsed > scenario.time_limit {
                    give_up.store(true, Ordering::Release);
                }
                if give_up.load(Ordering::Acquire) {
                    break;
                }
                if !moved {
                    std::thread::yield_now();
                }
            }
            let mut failures = client.failures;
            failures.extend(proxy_client.failures);
            failures.extend(server.failures);
            failures.extend(backend_server.failures);
            let tcp_counters = appliance.with_layer(|layer| layer.counters().clone());
            let (passive, active) =
                completed_in_window.unwrap_or((client.completed, proxy_client.completed));
            let (passive_before, active_before) = completed_at_warm_up.unwrap_or_default();
            (
                passive - passive_before,
                active - active_before,
                cpu_in_window,
                failures,
                appliance.counters(),
                tcp_counters,
                server.accepted,
            )
        }));
    }
    let mut outcome = Outcome {
        cpu_time: scenario.duration.map(|_| Duration::ZERO),
        ..Outcome::default()
    };
    for thread in threads {
        let (passive, active, cpu_time, failures, counters, tcp_counters, accepted) =
            thread.join().expect("core thread");
        outcome.cpu_time = outcome.cpu_time.zip(cpu_time).map(|(sum, time)| sum + time);
        outcome.completed_passive += passive;
        outcome.completed_active += active;
        outcome.failures.extend(failures);
        outcome.per_core.push(counters);
        outcome.appliance_tcp.push(tcp_counters);
        outcome.accepted_per_core.push(accepted);
    }
    outcome.elapsed = match scenario.duration {
        Some(duration) => duration.saturating_sub(scenario.warm_up),
        None => start.elapsed(),
    };
    outcome.timed_out = give_up.load(Ordering::Acquire);
    outcome
}
