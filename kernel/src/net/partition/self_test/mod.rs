//! The partition scenarios over the real per-core loops: every core runs its own [`CoreRuntime`] (stack, executor, rings, clock) on an in-memory multi-queue NIC that steers by the port-only Toeplitz hash (or at random), with a client host and a backend host simulated on each core.
//!
//! The image runs it on all its cores (`selftest=partition`); host tests run it on threads.
//! Core 0 drives [`SelfTest::run`], every other core [`SelfTest::serve`]; the scenarios run one
//! after the other, each on fresh rings, tables and stacks, and each ends in a
//! [`ScenarioResult`] whose checks decide pass or fail.
//!
//! The appliance side of a core is its [`CoreRuntime`]: frames come from its queue of the
//! simulated NIC through Receive Flow Deliver and the rings, and its application (a server on
//! port 80 and a client of the backends, like the proxy) is a task of its executor. The peers
//! of a core (client host `i`, 10.0.1.i+1, and backend host `i`, 10.0.2.i+1) are plain
//! interfaces that the same core turns between two iterations of the loop. Every request
//! carries its own pattern and every response is a function of the request, so a mixed-up
//! or corrupted connection shows.
//!
//! Files: `scenario` (what each scenario checks), `wire` (the NIC, each core's queue pair on
//! it, the peers), `traffic` (the clients and servers, which the host partition harness,
//! `kernel/tests/partition/harness.rs`, uses too).

mod scenario;
mod traffic;
mod wire;

use alloc::format;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;

use smoltcp::wire::EthernetAddress;

use super::{GlobalListenTable, RingFrame, ServedPort};
use crate::net::interface::InterfaceConfig;
use crate::net::ipv4::Ipv4Config;
use crate::net::rfd::{CoreId, ReceiveFlowDeliver, RfdConfig};
use crate::net::tcp::{SocketHandle, TcpConfig};
use crate::runtime::Platform;
use crate::runtime::{CoreRuntime, CoreSetup, Doorbells, NetworkStatistics};
use crate::socket::SharedTcpLayer;
use crate::sync::{CoreRings, RingMesh};
use crate::time::Instant;

use scenario::{CoreReport, stop_after};
pub use scenario::{ScenarioKind, ScenarioResult, Sizes, Steering, Violation};
pub use traffic::{Client, ClientPlan, Server};
pub use wire::FrameSteering;
use wire::{Peer, Wire, WireQueue, mix};

pub const SERVICE_PORT: u16 = 80;
pub const BACKEND_PORT: u16 = 8080;
pub const APPLIANCE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const APPLIANCE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const RING_CAPACITY: usize = 1024;
const BACKLOG: usize = 1024;
/// The application side of the appliance starts its backend connections this long after
/// the clients started, so that ARP has settled.
const ACTIVE_START: Duration = Duration::from_millis(20);
/// How long core 0 waits for the reports of the other cores after the time limit.
const REPORT_GRACE: Duration = Duration::from_secs(5);

fn tcp_config() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(2),
        ..TcpConfig::default()
    }
}

fn interface_config(address: Ipv4Addr, hardware_address: EthernetAddress) -> InterfaceConfig {
    InterfaceConfig {
        hardware_address,
        ipv4: Ipv4Config {
            address,
            prefix_len: 16,
            gateway: None,
        },
    }
}

/// The appliance's listener on one core.
enum ServiceListener {
    Served(ServedPort),
    Stopping(ServedPort),
    None,
}

impl ServiceListener {
    fn handle(&self) -> Option<SocketHandle> {
        match self {
            ServiceListener::Served(port) | ServiceListener::Stopping(port) => Some(port.handle()),
            ServiceListener::None => None,
        }
    }
}

/// The appliance's application on one core: the server and the backend client, run as a
/// task of the core's executor.
struct Application {
    server: Server,
    proxy_client: Client,
    listener: ServiceListener,
    /// Accepts after which the worker stops serving (`StoppedWorker` on core 1).
    stop_after: Option<usize>,
}

impl Application {
    fn step(&mut self, tcp: &SharedTcpLayer, open_more: bool) {
        {
            let mut layer = tcp.borrow_mut();
            self.server.step(&mut layer, self.listener.handle());
            self.proxy_client.step(&mut layer, open_more);
        }
        // The served port borrows the layer itself.
        let Some(stop_after) = self.stop_after else {
            return;
        };
        self.listener = match core::mem::replace(&mut self.listener, ServiceListener::None) {
            ServiceListener::Served(mut port) if self.server.accepted >= stop_after as u64 => {
                port.stop_serving();
                ServiceListener::Stopping(port)
            }
            ServiceListener::Stopping(port) if port.is_drained() => ServiceListener::None,
            other => other,
        };
    }
}

/// Gives the other tasks and the loop a turn: ready again at the executor's next run.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        context.waker().wake_by_ref();
        Poll::Pending
    }
}

/// One scenario's shared state: the wire, the tables, the rings not yet taken by their core,
/// and the reports.
struct Run {
    kind: ScenarioKind,
    wire: Arc<Wire>,
    rfd: Arc<ReceiveFlowDeliver>,
    listen: Arc<GlobalListenTable>,
    doorbells: Arc<Doorbells>,
    statistics: Arc<NetworkStatistics>,
    rings: spin::Mutex<Vec<Option<CoreRings<RingFrame>>>>,
    start: Instant,
    finished: AtomicUsize,
    give_up: AtomicBool,
    reports: spin::Mutex<Vec<Option<CoreReport>>>,
    reported: AtomicUsize,
}

/// The scenarios for a number of cores, and their order: core 0 publishes each scenario,
/// every core runs its part, core 0 judges.
pub struct SelfTest {
    cores: usize,
    sizes: Sizes,
    kinds: Vec<ScenarioKind>,
    runs: spin::Mutex<Vec<Arc<Run>>>,
    published: AtomicUsize,
}

impl SelfTest {
    /// Every scenario that `cores` can run (one core runs only those without a second core).
    pub fn new(cores: usize, sizes: Sizes) -> SelfTest {
        SelfTest {
            cores,
            sizes,
            kinds: ScenarioKind::ALL
                .into_iter()
                .filter(|kind| cores >= 2 || !kind.needs_two_cores())
                .collect(),
            runs: spin::Mutex::new(Vec::new()),
            published: AtomicUsize::new(0),
        }
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    pub fn sizes(&self) -> &Sizes {
        &self.sizes
    }

    /// Core 0's part: runs every scenario with the other cores and hands each result to
    /// `report` as soon as it is judged; true if all passed.
    pub fn run<P: Platform + Clone>(
        &self,
        platform: P,
        mut report: impl FnMut(&ScenarioResult),
    ) -> bool {
        let mut all_passed = true;
        for (index, &kind) in self.kinds.iter().enumerate() {
            let run = self.prepare(kind, platform.now());
            self.runs.lock().push(run.clone());
            self.published.store(index + 1, Ordering::Release);
            let mine = run_core(&run, &self.sizes, self.cores, 0, platform.clone());
            run.reports.lock()[0] = Some(mine);
            run.reported.fetch_add(1, Ordering::AcqRel);
            let deadline = run.start + self.sizes.time_limit + REPORT_GRACE;
            while run.reported.load(Ordering::Acquire) < self.cores && platform.now() < deadline {
                core::hint::spin_loop();
            }
            let result = self.judge(&run, platform.now());
            all_passed &= result.passed();
            report(&result);
        }
        all_passed
    }

    /// The part of core `core` (not 0): runs its share of every scenario core 0 publishes.
    pub fn serve<P: Platform + Clone>(&self, core: usize, platform: P) {
        for index in 0..self.kinds.len() {
            while self.published.load(Ordering::Acquire) <= index {
                core::hint::spin_loop();
            }
            let run = self.runs.lock()[index].clone();
            let mine = run_core(&run, &self.sizes, self.cores, core, platform.clone());
            if let Some(slot) = run.reports.lock().get_mut(core) {
                *slot = Some(mine);
            }
            run.reported.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn prepare(&self, kind: ScenarioKind, now: Instant) -> Arc<Run> {
        let cores = self.cores;
        let rfd_config = RfdConfig {
            backend_ports: vec![BACKEND_PORT],
            ..RfdConfig::port_xor(cores).expect("self-test core count")
        };
        let wire = Wire::new(kind.steering(), rfd_config.indirection_table.clone(), cores);
        Arc::new(Run {
            kind,
            wire: Arc::new(wire),
            rfd: Arc::new(ReceiveFlowDeliver::new(rfd_config).expect("self-test rfd")),
            listen: GlobalListenTable::new(),
            doorbells: Arc::new(Doorbells::new(cores)),
            statistics: Arc::new(NetworkStatistics::new(cores)),
            rings: spin::Mutex::new(
                RingMesh::<RingFrame>::new(cores, RING_CAPACITY)
                    .into_cores()
                    .into_iter()
                    .map(Some)
                    .collect(),
            ),
            start: now,
            finished: AtomicUsize::new(0),
            give_up: AtomicBool::new(false),
            reports: spin::Mutex::new(vec![None; cores]),
            reported: AtomicUsize::new(0),
        })
    }

    /// Sums the cores' reports and checks them; a core that never reported counts as a
    /// failure of the whole scenario.
    fn judge(&self, run: &Run, now: Instant) -> ScenarioResult {
        let cores = self.cores;
        let per_core = self.sizes.passive / cores + self.sizes.active / cores;
        let mut result = ScenarioResult {
            kind: run.kind,
            cores,
            planned: (per_core * cores) as u64,
            completed: 0,
            failures: 0,
            first_failures: Vec::new(),
            forwarded: 0,
            fallbacks: 0,
            ring_drops: 0,
            accepted_per_core: vec![0; cores],
            fallbacks_per_core: vec![0; cores],
            timed_out: run.give_up.load(Ordering::Acquire),
            elapsed: now.saturating_since(run.start),
            violations: Vec::new(),
        };
        let reports = run.reports.lock();
        let mut missing = 0;
        for (core, report) in reports.iter().enumerate() {
            let Some(report) = report else {
                missing += 1;
                continue;
            };
            result.completed += report.completed_passive + report.completed_active;
            result.failures += report.failures.len() as u64;
            for failure in report.failures.iter().take(3) {
                if result.first_failures.len() < 3 {
                    result
                        .first_failures
                        .push(format!("core {core}: {failure}"));
                }
            }
            result.forwarded += report.loop_counters.rfd_forwarded;
            result.fallbacks += report.loop_counters.global_listener_fallbacks;
            result.ring_drops += report.loop_counters.ring_full_drops;
            result.accepted_per_core[core] = report.accepted;
            result.fallbacks_per_core[core] = report.loop_counters.global_listener_fallbacks;
        }
        drop(reports);
        result.evaluate(&self.sizes, cores);
        if missing > 0 {
            result.violations.push(Violation::CoreMissing);
        }
        result
    }
}

/// One core's share of one scenario: its runtime, its application task and its two peers,
/// until every core is done or the time limit passes.
fn run_core<P: Platform + Clone>(
    run: &Run,
    sizes: &Sizes,
    cores: usize,
    core: usize,
    platform: P,
) -> CoreReport {
    let Some(rings) = run.rings.lock().get_mut(core).and_then(Option::take) else {
        return CoreReport::default();
    };
    let setup = CoreSetup {
        core: CoreId(core as u16),
        queue: WireQueue {
            wire: run.wire.clone(),
            core,
            random: mix(core as u64 + 1),
            to_send: Vec::new(),
        },
        rings,
        rfd: run.rfd.clone(),
        listen: run.listen.clone(),
        doorbells: run.doorbells.clone(),
        statistics: run.statistics.clone(),
        interface: interface_config(APPLIANCE_ADDRESS, APPLIANCE_MAC),
        tcp: tcp_config(),
        secret: [7; 16],
        port_start: core as u16 * 7919,
    };
    let mut runtime = match CoreRuntime::new(setup, platform.clone()) {
        Ok(runtime) => runtime,
        Err(error) => {
            run.finished.fetch_add(1, Ordering::AcqRel);
            return CoreReport {
                failures: vec![format!("runtime: {error:?}")],
                ..CoreReport::default()
            };
        }
    };
    let is_core_one = core == 1;
    let listener = if is_core_one && run.kind == ScenarioKind::NoWorker {
        ServiceListener::None
    } else {
        match runtime.listen(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVICE_PORT),
            BACKLOG,
        ) {
            Ok(port) => ServiceListener::Served(port),
            Err(_) => ServiceListener::None,
        }
    };
    let backends = (0..cores)
        .map(|offset| SocketAddrV4::new(backend_address((core + offset) % cores), BACKEND_PORT))
        .collect();
    let application = Rc::new(RefCell::new(Application {
        server: Server::new(sizes.request_len, sizes.response_len),
        proxy_client: Client::new(ClientPlan {
            remotes: backends,
            id_base: (1 << 48) | (core as u64) << 32,
            total: Some((sizes.active / cores) as u64),
            concurrency: sizes.concurrency,
            request_len: sizes.request_len,
            response_len: sizes.response_len,
        }),
        listener,
        stop_after: (is_core_one && run.kind == ScenarioKind::StoppedWorker)
            .then(|| stop_after(sizes, cores)),
    }));
    let stop = Rc::new(Cell::new(false));
    {
        let application = application.clone();
        let stop = stop.clone();
        let tcp = runtime.tcp();
        let handle = runtime.handle();
        let start = run.start;
        runtime.spawn(async move {
            while !stop.get() {
                let open_more = handle.now().saturating_since(start) >= ACTIVE_START;
                application.borrow_mut().step(&tcp, open_more);
                YieldNow(false).await;
            }
        });
    }
    let now = platform.now();
    let mut client_host = Peer::new(
        client_address(core),
        client_mac(core),
        11 + core as u8,
        core,
        true,
        now,
    );
    let mut backend_host = Peer::new(
        backend_address(core),
        backend_mac(core),
        111 + core as u8,
        core,
        false,
        now,
    );
    let backend_listener = backend_host
        .tcp
        .borrow_mut()
        .listen(
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT),
            BACKLOG,
        )
        .ok();
    let mut backend_server = Server::new(sizes.request_len, sizes.response_len);
    let mut client = Client::new(ClientPlan {
        remotes: vec![SocketAddrV4::new(APPLIANCE_ADDRESS, SERVICE_PORT)],
        id_base: (core as u64) << 32,
        total: Some((sizes.passive / cores) as u64),
        concurrency: sizes.concurrency,
        request_len: sizes.request_len,
        response_len: sizes.response_len,
    });
    let mut random = mix(0x5e1f ^ (core as u64) << 20);
    let mut reported_finished = false;
    loop {
        runtime.poll_once();
        let now = platform.now();
        client_host.turn(now, &run.wire, &mut random);
        client.step(&mut client_host.tcp.borrow_mut(), true);
        backend_host.turn(now, &run.wire, &mut random);
        backend_server.step(&mut backend_host.tcp.borrow_mut(), backend_listener);
        if !reported_finished && client.done() && application.borrow().proxy_client.done() {
            reported_finished = true;
            run.finished.fetch_add(1, Ordering::AcqRel);
        }
        if run.finished.load(Ordering::Acquire) >= cores {
            break;
        }
        if now.saturating_since(run.start) > sizes.time_limit {
            run.give_up.store(true, Ordering::Release);
        }
        if run.give_up.load(Ordering::Acquire) {
            break;
        }
    }
    stop.set(true);
    let loop_counters = *runtime.counters();
    drop(runtime);
    let application = application.borrow();
    let mut failures = client.failures;
    failures.extend(application.proxy_client.failures.iter().cloned());
    failures.extend(application.server.failures.iter().cloned());
    failures.extend(backend_server.failures);
    CoreReport {
        completed_passive: client.completed,
        completed_active: application.proxy_client.completed,
        accepted: application.server.accepted,
        failures,
        loop_counters,
    }
}

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
