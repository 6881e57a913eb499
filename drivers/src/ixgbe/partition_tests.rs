//! The partitioned stack over two model 82599s (tests only): the appliance's cores, each a
//! kernel `CoreRuntime` on its own queue of one model, serve passive connections and open
//! active ones to a backend behind the second model; every byte is checked, and Receive Flow
//! Deliver must hand over no frame in software when Flow Director steers the replies.
//!
//! One thread, one simulated clock: each tick runs every core's loop once, moves the frames
//! each model put on the wire into the other, and runs the peer. The peer is one stack on the
//! second model (one queue): the clients of the appliance's port 80 and the backend on 8080.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::format;
use std::rc::Rc;
use std::string::String;
use std::sync::Arc;
use std::vec;
use std::vec::Vec;

use smoltcp::wire::EthernetAddress;
use unisock_kernel::net::interface::{FrameSink, Interface, InterfaceConfig, SinkFull};
use unisock_kernel::net::ipv4::Ipv4Config;
use unisock_kernel::net::partition::self_test::{Client, ClientPlan, Server};
use unisock_kernel::net::partition::{GlobalListenTable, ServedPort};
use unisock_kernel::net::rfd::{ActiveSteering, CoreId, ReceiveFlowDeliver, RfdConfig};
use unisock_kernel::net::rss::IndirectionTable;
use unisock_kernel::net::tcp::{TcpConfig, TcpLayer};
use unisock_kernel::runtime::{
    CoreRuntime, CoreSetup, Doorbells, NetworkStatistics, Platform, QueuePair,
};
use unisock_kernel::socket::SharedTcpLayer;
use unisock_kernel::sync::RingMesh;
use unisock_kernel::time::Instant;

use super::device::{Ixgbe, IxgbeOptions, SteeringMode};
use super::model::{Model82599, ModelSettings};
use super::queue::IxgbeQueue;
use crate::hal::fake::{
    FakeClock, FakeDma, FakeMemory, FakeMmio, FakeMmioMapper, FakeRegion, FakeTimer,
};
use crate::hal::{MmioMapper, PhysAddr};
use crate::nic::{ExactFilter, HashTypes, Nic, NicQueue, QueueId, RssConfiguration};

const BAR0: u64 = 0xFE00_0000;
const APPLIANCE_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x01];
const PEER_MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x02];
const APPLIANCE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVICE_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;
/// Simulated time per tick: a frame crosses the wire in one.
const TICK_NANOSECONDS: u64 = 20_000;

type Queue = IxgbeQueue<FakeMmio, FakeRegion>;

/// One model 82599 with its own DMA memory, on the shared clock.
struct ModelNic {
    model: Rc<Model82599>,
    driver: Ixgbe<FakeMmio, FakeRegion, FakeTimer>,
}

impl ModelNic {
    fn bring_up(clock: &FakeClock, mac: [u8; 6], options: IxgbeOptions) -> ModelNic {
        let memory = FakeMemory::new();
        let model = Model82599::new(
            ModelSettings {
                mac,
                transmit_on_tail_write: true,
                packet_buffer_frames: 512,
                ..ModelSettings::default()
            },
            clock,
            &memory,
        );
        let mapper = FakeMmioMapper::default();
        mapper.add_window(BAR0, 0x80000, model.clone());
        let registers = mapper.map(PhysAddr(BAR0), 0x20000).unwrap();
        let driver = Ixgbe::bring_up(
            registers,
            &FakeDma::new(&memory),
            FakeTimer::new(clock),
            options,
            || {},
        )
        .expect("the model comes up");
        ModelNic { model, driver }
    }

    fn queues(&mut self) -> Vec<Queue> {
        (0..self.driver.queue_count() as u16)
            .map(|queue| self.driver.take_queue(QueueId(queue)).unwrap())
            .collect()
    }
}

/// A core's queue pair as the run loop sees it (what boot/ does over the real driver).
struct CoreQueue(Queue);

impl QueuePair for CoreQueue {
    fn receive_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        self.0.rx_burst(max_frames, handler)
    }

    fn transmit(&mut self, length: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), SinkFull> {
        self.0.tx_enqueue(length, None, fill).map_err(|_| SinkFull)
    }

    fn flush(&mut self) {
        self.0.tx_flush();
    }

    fn enable_interrupts(&mut self) -> bool {
        self.0.enable_interrupts()
    }

    fn disable_interrupts(&mut self) {
        self.0.disable_interrupts();
    }
}

/// The shared simulated clock; the loop never halts here (the test calls `poll_once`).
#[derive(Clone)]
struct SimulatedPlatform(FakeClock);

impl Platform for SimulatedPlatform {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.0.now_nanoseconds())
    }

    fn wake(&self, _core: CoreId) {}

    fn halt_until(&self, _deadline: Option<Instant>) {}
}

/// The peer stack's frames go out through its queue; a full ring is flushed (the model sends
/// at once on the tail write) and tried again, as the kernel's own sink does.
struct QueueSink<'a>(&'a mut Queue);

impl FrameSink for QueueSink<'_> {
    fn transmit(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SinkFull> {
        let mut fill = Some(fill);
        let mut write = |bytes: &mut [u8]| {
            if let Some(fill) = fill.take() {
                fill(bytes);
            }
        };
        if self.0.tx_enqueue(len, None, &mut write).is_ok() {
            return Ok(());
        }
        self.0.tx_flush();
        self.0
            .tx_enqueue(len, None, &mut write)
            .map_err(|_| SinkFull)
    }
}

/// How the appliance's NIC and Receive Flow Deliver are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Flow Director on with a reply filter per core, RFD choosing local ports by their low
    /// bits: the boot's set-up for `ixgbe.steering=fdir`.
    FlowDirector,
    /// `ixgbe.steering=rss` with RFD still choosing ports for filters that are not there:
    /// replies follow RSS, and software RFD must hand them over (the control).
    RssWithLowBitPorts,
    /// `ixgbe.steering=rss` as boot sets it up: RFD picks local ports by the port XOR, which
    /// the port-only RSS key honours.
    RssWithPortXor,
}

struct Scenario {
    cores: usize,
    setup: Setup,
    /// Connections the peer opens to the appliance's port 80.
    passive: u64,
    /// Connections each appliance core opens to the backend.
    active_per_core: u64,
    request_len: usize,
    response_len: usize,
}

#[derive(Debug)]
struct Outcome {
    completed_passive: u64,
    completed_active: u64,
    failures: Vec<String>,
    /// Per core: frames the NIC delivered there, frames software RFD forwarded from there,
    /// connections its server accepted.
    rx_frames: Vec<u64>,
    forwarded: Vec<u64>,
    accepted: Vec<u64>,
    /// Segments sent again, by the appliance's cores and the peer: a frame lost on the way.
    retransmits: u64,
    flow_director_matches: u64,
    ticks: u64,
    violations: Vec<String>,
}

impl Outcome {
    fn forwarded(&self) -> u64 {
        self.forwarded.iter().sum()
    }
}

fn interface_config(mac: [u8; 6], address: Ipv4Addr) -> InterfaceConfig {
    InterfaceConfig {
        hardware_address: EthernetAddress(mac),
        ipv4: Ipv4Config {
            address,
            prefix_len: 24,
            gateway: None,
        },
    }
}

fn run(scenario: &Scenario) -> Outcome {
    let cores = scenario.cores;
    let clock = FakeClock::new();
    let steering = match scenario.setup {
        Setup::FlowDirector => SteeringMode::RssAndFlowDirector,
        Setup::RssWithLowBitPorts | Setup::RssWithPortXor => SteeringMode::Rss,
    };
    let options = |queues: u16, steering| IxgbeOptions {
        ring_size: 128,
        link_wait_milliseconds: 1000,
        ..IxgbeOptions::new(queues, steering)
    };
    let mut appliance_nic =
        ModelNic::bring_up(&clock, APPLIANCE_MAC, options(cores as u16, steering));
    let mut peer_nic = ModelNic::bring_up(&clock, PEER_MAC, options(1, SteeringMode::Rss));

    // Receive Flow Deliver as boot/src/network.rs sets it up for this steering.
    let mut config = RfdConfig::port_xor(cores).unwrap();
    config.indirection_table = IndirectionTable::port_xor_spreading_even_ports(cores).unwrap();
    config.backend_ports = vec![BACKEND_PORT];
    if scenario.setup != Setup::RssWithPortXor {
        config.active_steering = ActiveSteering::LocalPortLowBits;
    }
    let rfd = Arc::new(ReceiveFlowDeliver::new(config).unwrap());
    appliance_nic
        .driver
        .configure_rss(&RssConfiguration {
            hash_types: HashTypes::TCP_IPV4,
            key: rfd.rss_key().as_bytes().to_vec(),
            indirection_table: rfd
                .indirection_table()
                .entries()
                .iter()
                .map(|queue| QueueId(queue.as_u16()))
                .collect(),
            unclassified_queue: QueueId(0),
        })
        .unwrap();
    if scenario.setup == Setup::FlowDirector {
        for core in 0..cores as u16 {
            appliance_nic
                .driver
                .add_exact_filter(&ExactFilter::reply_to_core(
                    BACKEND_PORT,
                    core,
                    rfd.low_bits_mask(),
                ))
                .unwrap();
        }
    }

    // The appliance: a run loop per core on its own queue, a server on port 80 and a client
    // of the backend per core (the proxy's two legs, without the proxy).
    let platform = SimulatedPlatform(clock.clone());
    let listen = GlobalListenTable::new();
    let doorbells = Arc::new(Doorbells::new(cores));
    let statistics = Arc::new(NetworkStatistics::new(cores));
    let mut runtimes = Vec::new();
    let mut served: Vec<ServedPort> = Vec::new();
    let mut servers = Vec::new();
    let mut backend_clients = Vec::new();
    let queues = appliance_nic.queues();
    let rings = RingMesh::new(cores, 256).into_cores();
    for (index, (queue, rings)) in queues.into_iter().zip(rings).enumerate() {
        let setup = CoreSetup {
            core: CoreId(index as u16),
            queue: CoreQueue(queue),
            rings,
            rfd: rfd.clone(),
            listen: listen.clone(),
            doorbells: doorbells.clone(),
            statistics: statistics.clone(),
            interface: interface_config(APPLIANCE_MAC, APPLIANCE),
            tcp: TcpConfig::default(),
            secret: [index as u8 + 1; 16],
            port_start: 1009 * (index as u16 + 1),
        };
        let mut runtime = CoreRuntime::new(setup, platform.clone()).unwrap();
        served.push(
            runtime
                .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVICE_PORT), 256)
                .unwrap(),
        );
        servers.push(Server::new(scenario.request_len, scenario.response_len));
        backend_clients.push(Client::new(ClientPlan {
            remotes: vec![SocketAddrV4::new(PEER, BACKEND_PORT)],
            id_base: (1 << 48) | (index as u64) << 32,
            total: Some(scenario.active_per_core),
            concurrency: 8,
            request_len: scenario.request_len,
            response_len: scenario.response_len,
        }));
        runtimes.push(runtime);
    }

    // The peer: one stack on the second model, the appliance's clients and its backend.
    let now = || Instant::from_nanos(clock.now_nanoseconds());
    let peer_tcp: SharedTcpLayer =
        TcpLayer::new(TcpConfig::default(), CoreId(0), [0x5a; 16]).into_shared();
    let mut peer = Interface::new(interface_config(PEER_MAC, PEER), peer_tcp.clone(), now());
    let mut peer_queue = peer_nic.queues().pop().unwrap();
    let backend_listener = peer_tcp
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT), 1024)
        .unwrap();
    let mut backend = Server::new(scenario.request_len, scenario.response_len);
    let mut clients = Client::new(ClientPlan {
        remotes: vec![SocketAddrV4::new(APPLIANCE, SERVICE_PORT)],
        id_base: 0,
        total: Some(scenario.passive),
        concurrency: 4 * cores,
        request_len: scenario.request_len,
        response_len: scenario.response_len,
    });

    let mut ticks = 0;
    // Enough simulated time for every connection many times over; a stall fails the test
    // with its counts instead of hanging.
    let tick_limit = 200_000;
    loop {
        ticks += 1;
        for (index, runtime) in runtimes.iter_mut().enumerate() {
            let tcp = runtime.tcp();
            {
                let mut layer = tcp.borrow_mut();
                servers[index].step(&mut layer, Some(served[index].handle()));
                // The backend leg starts once the peer knows us (its first connection), as
                // a proxy's would: behind a client's request.
                backend_clients[index].step(&mut layer, clients.completed > 0);
            }
            runtime.poll_once();
        }
        // Sixteen cores send more in one tick than the peer's one ring holds: the peer takes
        // them a burst at a time, as a host that keeps up would.
        let now = now();
        for burst in appliance_nic.model.take_transmitted().chunks(32) {
            for frame in burst {
                peer_nic.model.receive(frame);
            }
            while peer_queue.rx_burst(32, &mut |frame| peer.receive(now, frame)) > 0 {}
        }
        {
            let mut layer = peer_tcp.borrow_mut();
            backend.step(&mut layer, Some(backend_listener));
            clients.step(&mut layer, true);
        }
        peer.poll(now, &mut QueueSink(&mut peer_queue));
        peer_queue.tx_flush();
        for frame in peer_nic.model.take_transmitted() {
            appliance_nic.model.receive(&frame);
        }
        let done = clients.done() && backend_clients.iter().all(Client::done);
        if done || ticks >= tick_limit {
            break;
        }
        clock.advance_nanoseconds(TICK_NANOSECONDS);
    }

    let mut failures = clients.failures;
    failures.extend(backend.failures);
    for (client, server) in backend_clients.iter().zip(&servers) {
        failures.extend(client.failures.iter().cloned());
        failures.extend(server.failures.iter().cloned());
    }
    if ticks >= tick_limit {
        failures.push(format!("stalled after {ticks} ticks"));
    }
    let counters: Vec<_> = runtimes.iter().map(|runtime| *runtime.counters()).collect();
    let mut violations = appliance_nic.model.violations();
    violations.extend(peer_nic.model.violations());
    Outcome {
        completed_passive: clients.completed,
        completed_active: backend_clients.iter().map(|client| client.completed).sum(),
        failures,
        rx_frames: counters.iter().map(|core| core.rx_frames).collect(),
        forwarded: counters.iter().map(|core| core.rfd_forwarded).collect(),
        accepted: servers.iter().map(|server| server.accepted).collect(),
        retransmits: counters
            .iter()
            .map(|core| core.tcp_retransmits)
            .sum::<u64>()
            + peer_tcp.borrow().counters().retransmits,
        flow_director_matches: appliance_nic.driver.statistics().flow_director_matches,
        ticks,
        violations,
    }
}

fn scenario(cores: usize, setup: Setup) -> Scenario {
    Scenario {
        cores,
        setup,
        passive: 24 * cores as u64,
        active_per_core: 12,
        request_len: 300,
        // Several segments each way, so that byte order and completeness are tested.
        response_len: 5000,
    }
}

/// Every connection of the scenario completed byte-exact (the clients compare each response
/// with the one its request determines; the servers read each request whole).
fn assert_complete(scenario: &Scenario, outcome: &Outcome) {
    let label = format!("{} cores, {:?}", scenario.cores, scenario.setup);
    assert!(outcome.failures.is_empty(), "{label}: {outcome:#?}");
    assert!(outcome.violations.is_empty(), "{label}: {outcome:#?}");
    assert_eq!(outcome.retransmits, 0, "{label}: {outcome:#?}");
    assert_eq!(outcome.completed_passive, scenario.passive, "{label}");
    assert_eq!(
        outcome.completed_active,
        scenario.active_per_core * scenario.cores as u64,
        "{label}"
    );
    assert_eq!(
        outcome.accepted.iter().sum::<u64>(),
        scenario.passive,
        "{label}"
    );
}

#[test]
fn with_flow_director_proxied_traffic_completes_byte_exact_and_software_rfd_hands_over_nothing() {
    for cores in [2, 3, 4, 8, 16] {
        let scenario = scenario(cores, Setup::FlowDirector);
        let outcome = run(&scenario);
        assert_complete(&scenario, &outcome);
        assert_eq!(outcome.forwarded(), 0, "{cores} cores: {outcome:#?}");
        // The replies were Flow Director's: every backend segment to us matched a filter
        // (at least SYN-ACK, data and FIN of each active connection).
        assert!(
            outcome.flow_director_matches >= 3 * scenario.active_per_core * cores as u64,
            "{cores} cores: {outcome:#?}"
        );
        // Passive connections spread by RSS: every core accepted some and received frames.
        assert!(
            outcome.accepted.iter().all(|&accepted| accepted > 0),
            "{cores} cores: {outcome:#?}"
        );
        assert!(outcome.rx_frames.iter().all(|&frames| frames > 0));
    }
}

#[test]
fn with_rss_only_the_same_ports_need_software_rfd_which_still_delivers_every_byte() {
    // The control: the same RFD port choice without the filters. Replies follow RSS, land on
    // other cores, and software RFD hands them to their owners; without this, the zero above
    // would prove nothing.
    let scenario = scenario(4, Setup::RssWithLowBitPorts);
    let outcome = run(&scenario);
    assert_complete(&scenario, &outcome);
    assert!(outcome.forwarded() > 0, "{outcome:#?}");
    assert_eq!(outcome.flow_director_matches, 0);
}

#[test]
fn with_rss_only_as_boot_sets_it_up_port_xor_ports_need_no_hand_over_either() {
    // `ixgbe.steering=rss`: RFD picks local ports whose XOR with the backend's port RSS maps
    // to the owner, so the port-only key alone lands the replies.
    for cores in [2, 4] {
        let scenario = scenario(cores, Setup::RssWithPortXor);
        let outcome = run(&scenario);
        assert_complete(&scenario, &outcome);
        assert_eq!(outcome.forwarded(), 0, "{cores} cores: {outcome:#?}");
    }
}

#[test]
fn the_run_is_deterministic() {
    let scenario = scenario(2, Setup::RssWithLowBitPorts);
    let first = run(&scenario);
    let second = run(&scenario);
    assert_eq!(first.ticks, second.ticks);
    assert_eq!(first.forwarded, second.forwarded);
    assert_eq!(first.rx_frames, second.rx_frames);
}
