//! The network at start: pick the NIC (the first supported PCI function, or `nic=`), bring it
//! up through its driver's probe with one queue pair and one MSI-X receive vector per core,
//! program RSS (and exact filters where the NIC has them) for Receive Flow Deliver, hand each
//! core its queue, and run each core's loop (`unisock_kernel::runtime`) with the services of
//! the command line. No driver is named here: `unisock_drivers::probe` knows them.

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use smoltcp::wire::EthernetAddress;
use spin::Mutex;
use unisock_app::admin::{self, AdminContext};
use unisock_app::config::{AddressRange, Configuration};
use unisock_app::control::{ControlBoard, CoreProxy, CoreProxyStart, follow_names};
use unisock_app::metrics;
use unisock_app::proxy::WorkerPlace;
use unisock_app::{Services, StatisticsReport, start_services};
use unisock_drivers::hal::Timer;
use unisock_drivers::hal::identity::{
    IdentityMappedDma, IdentityMmioMapper, IdentityRegion, RawMmio,
};
use unisock_drivers::ixgbe::StatisticsReader;
use unisock_drivers::nic::{
    ExactFilter, HashTypes, MacAddress, Nic, NicQueue, QueueId, RssConfiguration,
};
use unisock_drivers::pci::bar::{BAR_COUNT, Bar};
use unisock_drivers::pci::msix::{MsiMessage, MsixCapability, MsixTable};
use unisock_drivers::pci::{
    Command, PciAddress as DriverPciAddress, PciConfig, PciFunction, register,
};
use unisock_drivers::probe::{
    self, NicOptions, PciCandidate, ProbedNic, ProbedQueue, SteeringPreference,
};
use unisock_kernel::config::{Config, IxgbeSteering};
use unisock_kernel::executor::Handle;
use unisock_kernel::metrics::{MetricSource, NicPortCounters, NicPortStatistics};
use unisock_kernel::net::interface::{InterfaceConfig, SinkFull};
use unisock_kernel::net::ipv4::Ipv4Config;
use unisock_kernel::net::partition::GlobalListenTable;
use unisock_kernel::net::rfd::{
    ActiveSteering, CoreId, ReceiveFlowDeliver, RfdConfig, RfdConfigError,
};
use unisock_kernel::net::rss::IndirectionTable;
use unisock_kernel::net::tcp::TcpConfig;
use unisock_kernel::runtime::{
    CoreRuntime, CoreSetup, Doorbells, NetworkStatistics, NicQueueCounters, Platform, QueuePair,
};
use unisock_kernel::sync::RingMesh;
use unisock_kernel::time::Instant;

use crate::entropy::{self, EntropySource};
use crate::pci::{PciAddress, PciDevice};
use crate::smp::MAX_CORES;
use crate::{clock, console, idle, memory};

/// Where BARs firmware left unassigned go: inside q35's 32-bit PCI hole, above the MMCONFIG
/// window (0xb000_0000-0xc000_0000) and below the I/O APIC, where nothing else lives when
/// firmware assigned nothing.
const UNASSIGNED_BAR_WINDOW: u64 = 0xe000_0000;
/// Frames each inter-core ring holds (software Receive Flow Deliver's slow path).
const RING_CAPACITY: usize = 1024;
/// Descriptors per receive and transmit queue.
const QUEUE_SIZE: u16 = 256;
/// How often core 0 reads the NIC's port-wide counters (the 82599's 32-bit packet counters
/// clear on read and cannot wrap in a second even at line rate).
const NIC_PORT_READ_INTERVAL: Duration = Duration::from_secs(1);

/// Local APIC id of each core, by core index (registered as each core comes up).
static APIC_IDS: [AtomicU32; MAX_CORES] = [const { AtomicU32::new(u32::MAX) }; MAX_CORES];

/// What the boot core leaves for each core: its start, or word that there is none.
enum Handoff {
    /// The boot core has not decided yet.
    Waiting,
    /// No network (or no queue for this core): halt for good.
    Nothing,
    Start(Box<CoreStart>),
    /// Taken by its core.
    Taken,
}

static HANDOFFS: Mutex<Vec<Handoff>> = Mutex::new(Vec::new());

/// Everything one core needs to run its loop.
struct CoreStart {
    setup: CoreSetup<BootQueue>,
    services: Services,
    /// The application's control plane (proxy listeners, admin), if configured.
    control: Option<Arc<ControlBoard>>,
    /// The admin listener's port, and the appliance's network (its default allow-list).
    admin: Option<(u16, AddressRange)>,
    /// How many cores run workers.
    workers: usize,
    statistics: Arc<NetworkStatistics>,
    /// Core 0 asks for the gateway's MAC at start.
    gateway: Option<Ipv4Addr>,
    /// The NIC's port-wide counters, if it has them (every core reports them)...
    nic_port: Option<Arc<NicPortStatistics>>,
    /// ... and their reader, which core 0 runs once a second.
    nic_port_reader: Option<StatisticsReader<RawMmio>>,
}

/// What the ready line and the log report.
pub struct NetworkSummary {
    pub address: Ipv4Addr,
    pub queues: usize,
}

/// Records the calling core's APIC id (before the boot core hands out queues).
pub fn register_core(index: u32, apic_id: u32) {
    if let Some(slot) = APIC_IDS.get(index as usize) {
        slot.store(apic_id, Ordering::Release);
    }
}

/// Finds and starts the network on the boot core, after every core is online. `None` (and
/// every other core released to halt) when there is no virtio-net function or no `ip=`.
pub fn start(
    config: &Config,
    application: Configuration,
    cpus: u32,
    devices: &[PciDevice],
) -> Option<NetworkSummary> {
    let timer_ticks = idle::init();
    debug!("idle: apic timer {timer_ticks} ticks/ms (divide by 16)");
    *HANDOFFS.lock() = (0..cpus).map(|_| Handoff::Waiting).collect();
    let summary = bring_up(config, application, cpus, devices);
    let mut handoffs = HANDOFFS.lock();
    for handoff in handoffs.iter_mut() {
        if matches!(handoff, Handoff::Waiting) {
            *handoff = Handoff::Nothing;
        }
    }
    drop(handoffs);
    for apic_id in APIC_IDS.iter().take(cpus as usize).skip(1) {
        let apic_id = apic_id.load(Ordering::Acquire);
        if apic_id != u32::MAX {
            idle::send_wake(apic_id);
        }
    }
    summary
}

fn bring_up(
    config: &Config,
    application: Configuration,
    cpus: u32,
    devices: &[PciDevice],
) -> Option<NetworkSummary> {
    let candidates: Vec<PciCandidate> = devices
        .iter()
        .filter(|device| device.class == 0x02)
        .map(|device| PciCandidate {
            address: DriverPciAddress::new(
                device.address.bus,
                device.address.device,
                device.address.function,
            ),
            vendor_id: device.vendor_id,
            device_id: device.device_id,
        })
        .collect();
    let wanted = config
        .nic
        .location
        .map(|location| DriverPciAddress::new(location.bus, location.device, location.function));
    let device = match probe::select(&candidates, wanted) {
        Ok((device, _)) => device,
        Err(error) => {
            info!("net: no NIC to use ({error:?}): network off");
            return None;
        }
    };
    let Some((address, prefix_len)) = config.ipv4 else {
        warn!(
            "net: NIC at {} but no ip=<address>/<prefix> on the command line: network off",
            boot_address(device.address)
        );
        return None;
    };
    let pci = BootPciConfig;
    let function = PciFunction::new(
        &pci,
        DriverPciAddress::new(
            device.address.bus,
            device.address.device,
            device.address.function,
        ),
    );
    let device_address = boot_address(device.address);
    // SAFETY: the image identity-maps the first 64 GiB, which holds every BAR QEMU and
    // firmware assign, and nothing else refers to a device's registers.
    let mapper = unsafe { IdentityMmioMapper::new() };
    // SAFETY: the heap is identity-mapped RAM (virtual == physical), coherent with DMA on x86.
    let dma = unsafe { IdentityMappedDma::new() };
    assign_memory_bars(&function);
    // Memory decoding for the MSI-X table; the driver enables bus mastering itself, after
    // it has reset the device.
    function.set_command(function.command() | Command::MEMORY_SPACE);
    let msix = route_interrupts(&function, &mapper, cpus);
    let options = NicOptions {
        queue_count: cpus as u16,
        ring_size: QUEUE_SIZE,
        steering: match config.nic.ixgbe_steering {
            IxgbeSteering::Rss => SteeringPreference::RssOnly,
            IxgbeSteering::FlowDirector => SteeringPreference::RssAndExactFilters,
        },
        mac: config.nic.mac.map(MacAddress),
        receive_interrupts: msix,
        ..NicOptions::default()
    };
    let mut nic: ProbedNic<RawMmio, IdentityRegion, BootTimer> =
        match probe::probe(&function, &mapper, &dma, BootTimer, &options) {
            Ok(nic) => nic,
            Err(error) => {
                warn!("net: NIC at {device_address}: {error}: network off");
                return None;
            }
        };
    let queues = nic.queue_count();
    // The NIC gets exactly this table (`program_rss` reads it back from `rfd`), so the owner
    // Receive Flow Deliver computes is the queue the NIC picks.
    // With exact filters, replies on connections we open steer by the low bits of our local
    // port (the paper's rule, in hardware); with RSS only, by the port XOR.
    let exact_filters = nic.steering().exact_filters > 0;
    let rfd = match RfdConfig::port_xor(queues).and_then(|mut config| {
        config.indirection_table = IndirectionTable::port_xor_spreading_even_ports(queues)
            .map_err(|_| RfdConfigError::CoreCountOutOfRange)?;
        if exact_filters {
            config.active_steering = ActiveSteering::LocalPortLowBits;
        }
        ReceiveFlowDeliver::new(config)
    }) {
        Ok(rfd) => Arc::new(rfd),
        Err(error) => {
            warn!("net: receive flow deliver: {error:?}: network off");
            return None;
        }
    };
    let rss = program_rss(&mut nic, &rfd);
    // The proxy's backends' ports are known from its settings: their replies get an exact
    // filter per core (Flow Director on the 82599; nothing on a NIC without filters).
    let mut backend_ports: Vec<u16> = application
        .pools
        .iter()
        .flat_map(|pool| {
            pool.settings
                .backends
                .iter()
                .map(|backend| backend.address.port())
        })
        .collect();
    backend_ports.sort_unstable();
    backend_ports.dedup();
    install_reply_filters(&mut nic, &rfd, &backend_ports);
    let mac = nic.mac_address();
    let description = nic.describe();
    info!(
        "net: {} {device_address} mac={mac} ip={address}/{prefix_len} gw={} queues={queues} of {cpus} cpus rss={rss} steering={} msix={}",
        description.driver.name(),
        config
            .gateway
            .map_or_else(|| String::from("none"), |gateway| format!("{gateway}")),
        if rss || exact_filters {
            description.steering_mode()
        } else {
            "none"
        },
        if msix { "on" } else { "off" },
    );
    if config.nic.ixgbe_self_test {
        run_nic_self_check(&mut nic, &rfd, address);
    }

    let services = Services {
        responder: config.responder_port,
        responder_body: config.responder_body,
        sink: config.sink_port,
        source: config.source_port,
    };
    let interface = InterfaceConfig {
        hardware_address: EthernetAddress(mac.0),
        ipv4: Ipv4Config {
            address,
            prefix_len,
            gateway: config.gateway,
        },
    };
    let admin = application.admin.as_ref().map(|settings| {
        (
            settings.port,
            AddressRange::new(address, prefix_len).unwrap_or(
                AddressRange::new(address, 32)
                    .unwrap_or_else(|| unreachable!("32 is a valid prefix")),
            ),
        )
    });
    let control = (!application.listeners.is_empty() || admin.is_some())
        .then(|| ControlBoard::new(application, queues, services.ports().collect()));
    let listen = GlobalListenTable::new();
    let doorbells = Arc::new(Doorbells::new(queues));
    let statistics = Arc::new(NetworkStatistics::new(queues));
    let (secret, entropy) = entropy::boot_secret(mac.0);
    if entropy == EntropySource::TimestampOnly {
        warn!(
            "net: no RDSEED or RDRAND: the TCP secret comes from the TSC and MAC only (guessable)"
        );
    } else {
        info!("net: TCP secret from {}", entropy.name());
    }
    let (nic_port, mut nic_port_reader) = match &mut nic {
        ProbedNic::Ixgbe(device) => (
            Some(Arc::new(NicPortStatistics::new("ixgbe"))),
            Some(device.take_statistics_reader()),
        ),
        ProbedNic::VirtioNet(_) => (None, None),
    };
    let mut rings = RingMesh::new(queues, RING_CAPACITY)
        .into_cores()
        .into_iter();
    let mut handoffs = HANDOFFS.lock();
    for index in 0..queues {
        let (Some(queue), Some(core_rings)) = (nic.take_queue(QueueId(index as u16)), rings.next())
        else {
            warn!("net: queue {index} missing");
            continue;
        };
        let setup = CoreSetup {
            core: CoreId(index as u16),
            queue: BootQueue(queue),
            rings: core_rings,
            rfd: rfd.clone(),
            listen: listen.clone(),
            doorbells: doorbells.clone(),
            statistics: statistics.clone(),
            interface,
            tcp: TcpConfig {
                max_buffer_memory: TcpConfig::buffer_memory_for_heap(
                    crate::memory::heap_usage().capacity_bytes as usize,
                    queues,
                ),
                max_connections: config
                    .tcp_max_connections
                    .unwrap_or(TcpConfig::default().max_connections),
                ..TcpConfig::default()
            },
            secret,
            port_start: (clock::read_tsc() as u16) ^ (index as u16).wrapping_mul(7919),
        };
        handoffs[index] = Handoff::Start(Box::new(CoreStart {
            setup,
            services,
            control: control.clone(),
            admin,
            workers: queues,
            statistics: statistics.clone(),
            gateway: if index == 0 { config.gateway } else { None },
            nic_port: nic_port.clone(),
            nic_port_reader: nic_port_reader.take(),
        }));
    }
    drop(handoffs);
    // The control plane stays alive for ever: the queues' registers live in its BAR mapping.
    core::mem::forget(nic);
    Some(NetworkSummary { address, queues })
}

/// Gives the function's unassigned memory BARs an address (qboot, the fast firmware for
/// `-kernel`, assigns none; SeaBIOS, OVMF and real firmware assign them all, and then this
/// does nothing). They go to [`UNASSIGNED_BAR_WINDOW`], naturally aligned.
fn assign_memory_bars<C: PciConfig>(function: &PciFunction<'_, C>) {
    let mut next = UNASSIGNED_BAR_WINDOW;
    let mut index = 0;
    while index < BAR_COUNT {
        let Ok(Bar::Memory {
            address,
            size,
            is_64_bit,
            ..
        }) = function.bar(index)
        else {
            index += 1;
            continue;
        };
        if address.as_u64() == 0 && size > 0 {
            let base = next.next_multiple_of(size);
            let offset = register::BAR0 + 4 * index;
            function.write_u32(offset, base as u32);
            if is_64_bit {
                function.write_u32(offset + 4, (base >> 32) as u32);
            }
            debug!("net: BAR{index} at 0x{base:x} ({size} bytes), assigned here");
            next = base + size;
        }
        index += if is_64_bit { 2 } else { 1 };
    }
}

/// Points receive queue `i`'s MSI-X vector (`1 + i`) at core `i` and the configuration vector
/// at core 0, then enables MSI-X. False (the cores then poll with a timer) without MSI-X.
fn route_interrupts<C: PciConfig>(
    function: &PciFunction<'_, C>,
    mapper: &IdentityMmioMapper,
    cpus: u32,
) -> bool {
    let Some(capability) = MsixCapability::read(function) else {
        warn!("net: no MSI-X capability: idle cores wake on their timers only");
        return false;
    };
    let table = match MsixTable::map(function, &capability, mapper) {
        Ok(table) => table,
        Err(error) => {
            warn!("net: MSI-X table: {error:?}");
            return false;
        }
    };
    let apic_of = |index: usize| APIC_IDS[index].load(Ordering::Acquire) as u8;
    let mut routes = Vec::new();
    routes.push((0u16, MsiMessage::x86(apic_of(0), idle::CONFIG_VECTOR)));
    for core in 0..cpus as usize {
        routes.push((
            1 + core as u16,
            MsiMessage::x86(apic_of(core), idle::QUEUE_VECTOR),
        ));
    }
    for (vector, message) in routes {
        if let Err(error) = table.program(vector, message) {
            warn!("net: MSI-X vector {vector}: {error:?}");
            return false;
        }
    }
    capability.enable(function);
    true
}

/// Programs the port-only RSS key and Receive Flow Deliver's indirection table, so the queue
/// of a TCP segment (and of a UDP datagram, when the device hashes UDP) depends only on its
/// ports. Returns whether the device took it; without RSS the host picks queues and software
/// Receive Flow Deliver hands segments over.
fn program_rss(nic: &mut BootNic, rfd: &ReceiveFlowDeliver) -> bool {
    let Some(capabilities) = nic.steering().rss else {
        return false;
    };
    // UDP hashed by its ports like TCP puts a reply to one of our ephemeral ports on the core
    // that chose the port. Asked for only when offered: a device refuses a configuration
    // with a hash type it lacks, and then every datagram goes to the unclassified queue and
    // is handed over in software, which is still correct.
    let hash_types = if capabilities.hash_types.contains(HashTypes::UDP_IPV4) {
        HashTypes::TCP_IPV4 | HashTypes::UDP_IPV4
    } else {
        HashTypes::TCP_IPV4
    };
    let configuration = RssConfiguration {
        hash_types,
        key: rfd.rss_key().as_bytes().to_vec(),
        indirection_table: rfd
            .indirection_table()
            .entries()
            .iter()
            .map(|queue| QueueId(queue.as_u16()))
            .collect(),
        unclassified_queue: QueueId(0),
    };
    match nic.configure_rss(&configuration) {
        Ok(()) => true,
        Err(error) => {
            warn!("net: RSS: {error:?}: the host picks queues");
            false
        }
    }
}

/// Adds the exact filters Receive Flow Deliver needs for replies from `backend_ports` (one
/// per port and core: the port exact, our local port's low bits naming the core), on NICs
/// that have them. A refusal is logged; software Receive Flow Deliver still delivers.
fn install_reply_filters(nic: &mut BootNic, rfd: &ReceiveFlowDeliver, backend_ports: &[u16]) {
    if nic.steering().exact_filters == 0 {
        return;
    }
    for &port in backend_ports {
        for core in 0..rfd.core_count() as u16 {
            let filter = ExactFilter::reply_to_core(port, core, rfd.low_bits_mask());
            if let Err(error) = nic.add_exact_filter(&filter) {
                warn!("net: exact filter for port {port}, core {core}: {error:?}");
                return;
            }
        }
    }
}

/// `ixgbe.selftest=1`: the NIC's loopback self-check (a frame per exact filter and per RSS
/// bucket must come back on the queue Receive Flow Deliver expects), one line per check, and
/// the verdict as the exit status. Uses the queues up, so it ends the run.
fn run_nic_self_check(nic: &mut BootNic, rfd: &ReceiveFlowDeliver, local: Ipv4Addr) -> ! {
    use core::net::SocketAddrV4;
    use unisock_drivers::ixgbe::self_check::{CheckKind, standard_frames};
    use unisock_kernel::net::rfd::InboundSegment;

    use crate::exit::{ExitCode, exit};
    const BACKEND_PORT: u16 = 8080;
    let filters = nic.steering().exact_filters > 0;
    if filters {
        install_reply_filters(nic, rfd, &[BACKEND_PORT]);
    }
    let frames = standard_frames(
        if filters { rfd.core_count() as u16 } else { 0 },
        SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 2), BACKEND_PORT),
        local,
        40000 & !rfd.low_bits_mask(),
        SocketAddrV4::new(local, 443),
        |client, listener| QueueId(rfd.rss_owner(&InboundSegment::new(client, listener)).0),
    );
    let Some(results) = nic.loopback_self_check(&BootTimer, &frames) else {
        println!(
            "selftest: nic: {} has no loopback self-check: FAIL",
            nic.driver().name()
        );
        exit(ExitCode::Failure)
    };
    let mut failed = 0;
    for result in &results {
        let what = match result.frame.kind {
            CheckKind::FlowDirectorFilter => String::from("flow-director"),
            CheckKind::RssBucket { index } => format!("rss-bucket {index}"),
        };
        let arrived = result.arrived_on.map_or_else(
            || String::from("nothing"),
            |queue| format!("queue {}", queue.0),
        );
        let verdict = if result.passed() { "pass" } else { "FAIL" };
        failed += usize::from(!result.passed());
        println!(
            "selftest: nic {what} {} -> {}: expected queue {}, got {arrived}: {verdict}",
            result.frame.source, result.frame.destination, result.frame.expected_queue.0
        );
    }
    println!(
        "selftest: nic {} of {} checks passed: {}",
        results.len() - failed,
        results.len(),
        if failed == 0 { "pass" } else { "FAIL" }
    );
    exit(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// The NIC as the boot code holds it, whichever driver probed it.
type BootNic = ProbedNic<RawMmio, IdentityRegion, BootTimer>;

/// Bounded busy-waits for drivers' handshakes, on the calibrated TSC.
struct BootTimer;

impl Timer for BootTimer {
    fn delay_microseconds(&self, microseconds: u64) {
        clock::spin_micros(microseconds);
    }
}

/// Runs core `index`'s loop if the boot core gave it a queue; halts for good otherwise.
/// Application processors call it as soon as they are online, and wait here for the hand-off.
pub fn run_core(index: u32) -> ! {
    idle::init_core();
    let start = loop {
        let mut handoffs = HANDOFFS.lock();
        let slot = handoffs.get_mut(index as usize);
        match slot {
            Some(slot @ Handoff::Start(_)) => {
                let Handoff::Start(start) = core::mem::replace(slot, Handoff::Taken) else {
                    unreachable!("matched just above")
                };
                break start;
            }
            Some(Handoff::Nothing | Handoff::Taken) => {
                drop(handoffs);
                crate::exit::halt_forever()
            }
            // Not decided yet (or the table not even built): wait for the boot core's wake.
            Some(Handoff::Waiting) | None => {
                drop(handoffs);
                idle::wait_for_wake();
            }
        }
    };
    let CoreStart {
        setup,
        services,
        control,
        admin,
        workers,
        statistics,
        gateway,
        nic_port,
        nic_port_reader,
    } = *start;
    let mut runtime = match CoreRuntime::new(setup, BootPlatform) {
        Ok(runtime) => runtime,
        Err(error) => {
            warn!("net: cpu {index}: {error:?}: this core stays off the network");
            crate::exit::halt_forever()
        }
    };
    let proxy_board = control.clone();
    let nic_port_metrics = nic_port.clone();
    let report: StatisticsReport = Rc::new(move |format, out: &mut String| {
        let heap = memory::heap_usage();
        let applied = proxy_board.as_ref().map(|board| board.current());
        let proxy_metrics = applied.as_ref().map(|applied| applied.metrics());
        let mut sources: Vec<&dyn MetricSource> = Vec::from([&*statistics as &dyn MetricSource]);
        if let Some(proxy) = &proxy_metrics {
            sources.push(proxy);
        }
        if let Some(board) = &proxy_board {
            sources.push(&**board);
        }
        if let Some(port) = &nic_port_metrics {
            sources.push(&**port);
        }
        sources.push(&heap);
        let _ = metrics::write_report(format, &sources, out);
    });
    let handle = runtime.handle();
    if let (Some(reader), Some(published)) = (nic_port_reader, nic_port.clone()) {
        runtime.spawn(publish_nic_port_counters(reader, published, handle.clone()));
    }
    let mut listen = |local, backlog| runtime.listen(local, backlog);
    if let Err(error) = start_services(&mut listen, &handle, &services, Some(report.clone())) {
        warn!("net: cpu {index}: services: {error:?}");
    }
    if let Some(board) = control {
        let start = CoreProxyStart {
            board,
            place: WorkerPlace {
                index: index as usize,
                count: workers,
            },
            tcp: runtime.tcp(),
            opener: runtime.port_opener(),
            handle: handle.clone(),
            // Through the core's ring and `write_without_waiting`: never `println!`, whose
            // lock and byte-by-byte wait on the UART would hold up every core's traffic.
            access_log: Some(Rc::new(console::write_without_waiting)),
            udp: Some(runtime.interface().udp().clone()),
        };
        let (core, opened) = CoreProxy::start(start);
        if let Err(error) = opened {
            warn!("net: cpu {index}: a proxy listener: {error:?} (tried again every second)");
        }
        // Backends given by name: this core resolves its share of them.
        follow_names(
            core.clone(),
            runtime.interface().udp().clone(),
            runtime.tcp(),
            Some(Rc::new(|line: &str| warn!("{line}"))),
        );
        if let Some((port, own_network)) = admin {
            let context = AdminContext {
                core,
                own_network,
                report,
            };
            if let Err(error) = admin::start(context, port) {
                warn!("net: cpu {index}: admin listener: {error:?}");
            }
        }
    }
    if let Some(gateway) = gateway {
        runtime.request_address(gateway);
    }
    debug!("net: cpu {index} runs queue {index}");
    runtime.run()
}

/// Reads the NIC's port-wide counters once a second and publishes them for the reports: a
/// task on core 0, a few dozen register reads between two turns of its loop (statistics
/// registers only, which no queue touches).
async fn publish_nic_port_counters(
    mut reader: StatisticsReader<RawMmio>,
    published: Arc<NicPortStatistics>,
    handle: Handle,
) {
    loop {
        let totals = reader.read();
        published.publish(NicPortCounters {
            rx_packets: totals.rx_packets,
            rx_bytes: totals.rx_bytes,
            tx_packets: totals.tx_packets,
            tx_bytes: totals.tx_bytes,
            rx_missed: totals.rx_missed,
            rx_no_buffer: totals.rx_no_buffer,
            rx_queue_drops: totals.rx_queue_drops,
            crc_errors: totals.crc_errors,
            flow_director_matches: totals.flow_director_matches,
            flow_director_misses: totals.flow_director_misses,
        });
        handle.sleep(NIC_PORT_READ_INTERVAL).await;
    }
}

/// Configuration space through the boot crate's locked port access.
struct BootPciConfig;

impl PciConfig for BootPciConfig {
    fn read_u32(&self, address: DriverPciAddress, offset: u8) -> u32 {
        boot_address(address).read_u32(offset)
    }

    fn write_u32(&self, address: DriverPciAddress, offset: u8, value: u32) {
        boot_address(address).write_u32(offset, value)
    }
}

fn boot_address(address: DriverPciAddress) -> PciAddress {
    PciAddress {
        bus: address.bus,
        device: address.device,
        function: address.function,
    }
}

/// A core's queue pair as the run loop sees it.
struct BootQueue(ProbedQueue<RawMmio, IdentityRegion>);

impl QueuePair for BootQueue {
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

    fn counters(&self) -> NicQueueCounters {
        let statistics = self.0.statistics();
        NicQueueCounters {
            rx_frames: statistics.rx_frames,
            rx_bytes: statistics.rx_bytes,
            tx_frames: statistics.tx_frames,
            tx_bytes: statistics.tx_bytes,
            notifications: statistics.notifications,
            tx_full: statistics.tx_full,
            rx_bad_length: statistics.rx_bad_length,
            device_errors: statistics.device_bad_id + statistics.device_index_jump,
        }
    }
}

/// The clock, wake-ups and halting of this machine.
struct BootPlatform;

impl Platform for BootPlatform {
    fn now(&self) -> Instant {
        clock::now()
    }

    fn wake(&self, core: CoreId) {
        let apic_id = APIC_IDS
            .get(usize::from(core.0))
            .map_or(u32::MAX, |id| id.load(Ordering::Acquire));
        if apic_id != u32::MAX {
            idle::send_wake(apic_id);
        }
    }

    fn halt_until(&self, deadline: Option<Instant>) {
        idle::halt_until(deadline);
    }
}
