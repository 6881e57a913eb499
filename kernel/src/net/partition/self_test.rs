//! The partition scenarios over the real per-core loops: every core runs its own [`CoreRuntime`] (stack, executor, rings, clock) on an in-memory multi-queue NIC that steers by the port-only Toeplitz hash (or at random), with a client host and a backend host simulated on each core.
//!
//! The image runs it on all its cores (`selftest=partition`); host tests run it on threads.
//! Its [`Client`] and [`Server`] are also those of the host partition harness
//! (`kernel/tests/partition/harness.rs`).
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

use alloc::collections::VecDeque;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
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
use crate::net::arp;
use crate::net::interface::{Interface, InterfaceConfig, SinkFull};
use crate::net::ipv4::Ipv4Config;
use crate::net::rfd::{CoreId, ReceiveFlowDeliver, RfdConfig};
use crate::net::rss::{IndirectionTable, RssKey, ToeplitzTable};
use crate::net::tcp::{SocketError, SocketHandle, TcpConfig, TcpLayer};
use crate::runtime::{CoreRuntime, CoreSetup, CoreSnapshot, Doorbells, NetworkStatistics};
use crate::runtime::{Platform, QueuePair};
use crate::socket::SharedTcpLayer;
use crate::sync::{CoreRings, RingMesh};
use crate::time::Instant;

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

/// How the simulated NIC picks the receive queue of a frame sent to the appliance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steering {
    /// RSS: Toeplitz with the port-only key, then the port-XOR indirection table, the same
    /// that Receive Flow Deliver assumes. Non-TCP frames go to queue 0.
    Rss,
    /// Every frame to a random queue: only software RFD keeps connections on their owner.
    Random,
}

/// What a scenario sets out to show; each has its own checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioKind {
    /// RSS steering: every connection completes and no segment crosses cores.
    Rss,
    /// Random steering: every connection completes, software RFD hands segments over.
    Random,
    /// Core 1 never listens: its SYNs go to the global listener, nothing is lost.
    NoWorker,
    /// Core 1's worker stops after a quarter of its share: the rest goes to the global
    /// listener, nothing is lost.
    StoppedWorker,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 4] = [
        ScenarioKind::Rss,
        ScenarioKind::Random,
        ScenarioKind::NoWorker,
        ScenarioKind::StoppedWorker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Rss => "rss",
            ScenarioKind::Random => "random",
            ScenarioKind::NoWorker => "no-worker",
            ScenarioKind::StoppedWorker => "stopped-worker",
        }
    }

    fn steering(self) -> Steering {
        match self {
            ScenarioKind::Random => Steering::Random,
            _ => Steering::Rss,
        }
    }

    /// The scenarios about a core without a worker need a second core to serve.
    fn needs_two_cores(self) -> bool {
        matches!(self, ScenarioKind::NoWorker | ScenarioKind::StoppedWorker)
    }
}

/// The sizes of a run; the same for every scenario.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Connections the client hosts open to the appliance, spread over the cores.
    pub passive: usize,
    /// Connections the appliance opens to the backends, spread over the cores.
    pub active: usize,
    /// Connections in flight at once per client (client host or appliance core).
    pub concurrency: usize,
    pub request_len: usize,
    pub response_len: usize,
    /// Wall-clock time after which a scenario gives up.
    pub time_limit: Duration,
}

impl Default for Sizes {
    /// Small enough for a few seconds per scenario under QEMU's emulation.
    fn default() -> Self {
        Sizes {
            passive: 256,
            active: 128,
            concurrency: 16,
            request_len: 200,
            response_len: 700,
            time_limit: Duration::from_secs(20),
        }
    }
}

/// What one core did in one scenario.
#[derive(Clone, Debug, Default)]
struct CoreReport {
    completed_passive: u64,
    completed_active: u64,
    accepted: u64,
    failures: Vec<String>,
    loop_counters: CoreSnapshot,
}

/// A check of a scenario that did not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The time limit passed before every core was done.
    TimedOut,
    /// Some connection was reset, refused or answered with the wrong bytes.
    ConnectionsFailed,
    /// Fewer connections completed than planned.
    ConnectionsLost,
    /// Some core never reported (it did not come up, or hung).
    CoreMissing,
    /// RSS steering, yet software RFD handed segments to another core.
    RssForwarded,
    /// A SYN went to the global listener although every core serves.
    UnexpectedFallback,
    /// A ring was full under RSS steering, where only ARP copies cross cores.
    RingDrops,
    /// Some core accepted no connection although every core serves.
    IdleCore,
    /// Random steering, yet no segment was handed over.
    NothingForwarded,
    /// The core without a worker accepted connections.
    WorkerlessCoreAccepted,
    /// The SYNs core 1 owns once it has no worker did not go to the global listener, or
    /// SYNs of other cores did.
    MissingFallbacks,
    /// The stopped worker stopped before its accepts were done.
    StoppedEarly,
    /// The serving cores together did not accept every client connection exactly once.
    AcceptedCountDiffers,
}

impl Violation {
    pub fn describe(self) -> &'static str {
        match self {
            Violation::TimedOut => "timed out",
            Violation::ConnectionsFailed => "connections failed",
            Violation::ConnectionsLost => "connections lost",
            Violation::CoreMissing => "a core did not report",
            Violation::RssForwarded => "RSS steering forwarded segments",
            Violation::UnexpectedFallback => "the global listener was used with every core serving",
            Violation::RingDrops => "ring drops",
            Violation::IdleCore => "a core accepted nothing",
            Violation::NothingForwarded => "nothing forwarded",
            Violation::WorkerlessCoreAccepted => "core 1 accepted without a worker",
            Violation::MissingFallbacks => "the global listener did not take (only) core 1's SYNs",
            Violation::StoppedEarly => "core 1 stopped early",
            Violation::AcceptedCountDiffers => {
                "accepted count differs from the clients' connections"
            }
        }
    }
}

/// The outcome of one scenario over all cores, with its verdict.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub kind: ScenarioKind,
    pub cores: usize,
    pub planned: u64,
    pub completed: u64,
    /// Connections that failed (reset, refused, wrong bytes), with the first few causes.
    pub failures: u64,
    pub first_failures: Vec<String>,
    /// Segments software RFD handed to their owner over a ring.
    pub forwarded: u64,
    /// SYNs that went to the global listener.
    pub fallbacks: u64,
    pub ring_drops: u64,
    pub accepted_per_core: Vec<u64>,
    pub fallbacks_per_core: Vec<u64>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// The checks that failed; empty if the scenario passed.
    pub violations: Vec<Violation>,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Connections planned that did not complete with the right bytes.
    pub fn lost(&self) -> u64 {
        self.planned.saturating_sub(self.completed)
    }

    fn evaluate(&mut self, sizes: &Sizes, cores: usize) {
        let mut violations = Vec::new();
        let mut check = |holds: bool, violation: Violation| {
            if !holds {
                violations.push(violation);
            }
        };
        check(!self.timed_out, Violation::TimedOut);
        check(self.failures == 0, Violation::ConnectionsFailed);
        check(self.completed == self.planned, Violation::ConnectionsLost);
        let passive = (sizes.passive / cores * cores) as u64;
        match self.kind {
            ScenarioKind::Rss => {
                check(self.forwarded == 0, Violation::RssForwarded);
                check(self.fallbacks == 0, Violation::UnexpectedFallback);
                check(self.ring_drops == 0, Violation::RingDrops);
                check(
                    self.accepted_per_core.iter().all(|&accepted| accepted > 0),
                    Violation::IdleCore,
                );
            }
            ScenarioKind::Random => {
                check(
                    cores == 1 || self.forwarded > 0,
                    Violation::NothingForwarded,
                );
                check(self.fallbacks == 0, Violation::UnexpectedFallback);
            }
            ScenarioKind::NoWorker => {
                check(
                    self.accepted_per_core[1] == 0,
                    Violation::WorkerlessCoreAccepted,
                );
                check(
                    self.fallbacks_per_core[1] > 0 && self.fallbacks == self.fallbacks_per_core[1],
                    Violation::MissingFallbacks,
                );
            }
            ScenarioKind::StoppedWorker => {
                check(
                    self.accepted_per_core[1] >= stop_after(sizes, cores) as u64,
                    Violation::StoppedEarly,
                );
                check(self.fallbacks_per_core[1] > 0, Violation::MissingFallbacks);
            }
        }
        if self.kind.needs_two_cores() {
            check(
                self.accepted_per_core.iter().sum::<u64>() == passive,
                Violation::AcceptedCountDiffers,
            );
        }
        self.violations = violations;
    }
}

/// After how many accepts core 1's worker stops in [`ScenarioKind::StoppedWorker`].
fn stop_after(sizes: &Sizes, cores: usize) -> usize {
    sizes.passive / cores / 4
}

/// The simulated NIC and the wire behind it: a queue per appliance core and an inbox per
/// peer, shared by all cores.
struct Wire {
    steering: Steering,
    table: IndirectionTable,
    hasher: ToeplitzTable,
    queues: Vec<spin::Mutex<VecDeque<Vec<u8>>>>,
    clients: Vec<spin::Mutex<VecDeque<Vec<u8>>>>,
    backends: Vec<spin::Mutex<VecDeque<Vec<u8>>>>,
}

impl Wire {
    fn new(steering: Steering, table: IndirectionTable, cores: usize) -> Wire {
        let inboxes = || {
            (0..cores)
                .map(|_| spin::Mutex::new(VecDeque::new()))
                .collect()
        };
        Wire {
            steering,
            table,
            hasher: ToeplitzTable::new(RssKey::PORT_ONLY),
            queues: inboxes(),
            clients: inboxes(),
            backends: inboxes(),
        }
    }

    /// Puts a frame on the wire; `random` draws the queue under random steering.
    fn send(&self, frame: Vec<u8>, from_appliance: bool, random: &mut u64) {
        let destination = &frame[..6];
        if destination == APPLIANCE_MAC.0 || (destination == [0xff; 6] && !from_appliance) {
            let queue = self.queue_for(&frame, random);
            self.queues[queue].lock().push_back(frame);
        } else if destination == [0xff; 6] {
            for peer in self.clients.iter().chain(&self.backends) {
                peer.lock().push_back(frame.clone());
            }
        } else if destination[..3] == [0x02, 0, 0] && destination[4] == 0 {
            let index = usize::from(destination[5]).wrapping_sub(1);
            let peers = match destination[3] {
                1 => &self.clients,
                _ => &self.backends,
            };
            if let Some(peer) = peers.get(index) {
                peer.lock().push_back(frame);
            }
        }
    }

    fn queue_for(&self, frame: &[u8], random: &mut u64) -> usize {
        if self.steering == Steering::Random {
            *random = mix(random.wrapping_add(0x9e37_79b9_7f4a_7c15));
            return (*random % self.queues.len() as u64) as usize;
        }
        // Ethernet 14 + IPv4 20 (no options are sent) + TCP ports.
        let is_tcp = frame.len() >= 38 && frame[12..14] == [0x08, 0x00] && frame[23] == 6;
        if !is_tcp {
            return 0;
        }
        let source = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        let destination = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
        let source_port = u16::from_be_bytes([frame[34], frame[35]]);
        let destination_port = u16::from_be_bytes([frame[36], frame[37]]);
        let hash = self
            .hasher
            .hash_ipv4_tcp(source, destination, source_port, destination_port);
        self.table.queue_for_hash(hash).index()
    }
}

/// One appliance core's queue pair on the simulated NIC.
struct WireQueue {
    wire: Arc<Wire>,
    core: usize,
    random: u64,
    to_send: Vec<Vec<u8>>,
}

impl QueuePair for WireQueue {
    fn receive_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        let mut handed = 0;
        while handed < max_frames {
            // The lock is released before the handler runs.
            let Some(frame) = self.wire.queues[self.core].lock().pop_front() else {
                break;
            };
            handler(&frame);
            handed += 1;
        }
        handed
    }

    fn transmit(&mut self, length: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), SinkFull> {
        let mut frame = vec![0; length];
        fill(&mut frame);
        self.to_send.push(frame);
        Ok(())
    }

    fn flush(&mut self) {
        for frame in self.to_send.drain(..) {
            self.wire.send(frame, true, &mut self.random);
        }
    }

    fn enable_interrupts(&mut self) -> bool {
        !self.wire.queues[self.core].lock().is_empty()
    }

    fn disable_interrupts(&mut self) {}
}

/// SplitMix64's finaliser.
fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The request of connection `id`: its id, then a pattern.
fn request_bytes(id: u64, length: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..length as u64)
        .map(|offset| (mix(id ^ (offset / 8)) >> (offset % 8 * 8)) as u8)
        .collect();
    let header = id.to_le_bytes();
    let header_len = header.len().min(length);
    bytes[..header_len].copy_from_slice(&header[..header_len]);
    bytes
}

/// The response to `request`: every byte depends on the request.
fn response_bytes(request: &[u8], length: usize) -> Vec<u8> {
    (0..length)
        .map(|offset| request[offset % request.len()].rotate_left(3) ^ (offset as u8))
        .collect()
}

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

/// A connection a client opened, from SYN to end of stream.
struct ClientConnection {
    handle: SocketHandle,
    request: Vec<u8>,
    written: usize,
    response: Vec<u8>,
}

/// What a [`Client`] does.
pub struct ClientPlan {
    /// The servers it connects to, in turn.
    pub remotes: Vec<SocketAddrV4>,
    /// The id of its first connection (ids name the request patterns).
    pub id_base: u64,
    /// Connections in all (`None`: without end, for timed runs).
    pub total: Option<u64>,
    /// Connections in flight at once.
    pub concurrency: usize,
    pub request_len: usize,
    pub response_len: usize,
}

/// Opens up to `concurrency` connections at once, `total` in all, each sending its request
/// and checking the response.
pub struct Client {
    remotes: Vec<SocketAddrV4>,
    next_remote: usize,
    id_base: u64,
    opened: u64,
    total: Option<u64>,
    concurrency: usize,
    request_len: usize,
    response_len: usize,
    connections: Vec<ClientConnection>,
    /// Connections that ended with the right response.
    pub completed: u64,
    /// Every connection that failed, with why.
    pub failures: Vec<String>,
}

impl Client {
    pub fn new(plan: ClientPlan) -> Client {
        Client {
            remotes: plan.remotes,
            next_remote: 0,
            id_base: plan.id_base,
            opened: 0,
            total: plan.total,
            concurrency: plan.concurrency,
            request_len: plan.request_len,
            response_len: plan.response_len,
            connections: Vec::new(),
            completed: 0,
            failures: Vec::new(),
        }
    }

    /// Every planned connection opened and ended (never, without a total).
    pub fn done(&self) -> bool {
        self.total.is_some_and(|total| self.opened >= total) && self.connections.is_empty()
    }

    /// One turn; true if anything moved.
    pub fn step(&mut self, layer: &mut TcpLayer, open_more: bool) -> bool {
        let mut progress = false;
        // Until a first connection completed (ARP resolved on both sides), stay within what
        // the interfaces park while they resolve, so that no SYN waits a retransmission.
        let concurrency = if self.completed == 0 {
            self.concurrency.min(arp::WAITING_CAPACITY / 2)
        } else {
            self.concurrency
        };
        while open_more
            && self.connections.len() < concurrency
            && self.total.is_none_or(|total| self.opened < total)
        {
            let remote = self.remotes[self.next_remote % self.remotes.len()];
            self.next_remote += 1;
            let id = self.id_base + self.opened;
            self.opened += 1;
            match layer.connect(remote, None) {
                Ok(handle) => {
                    self.connections.push(ClientConnection {
                        handle,
                        request: request_bytes(id, self.request_len),
                        written: 0,
                        response: Vec::with_capacity(self.response_len),
                    });
                    progress = true;
                }
                Err(error) => self
                    .failures
                    .push(format!("connect {id} to {remote}: {error:?}")),
            }
        }
        let mut index = 0;
        let mut buffer = [0u8; 4096];
        while index < self.connections.len() {
            let connection = &mut self.connections[index];
            match drive_client(layer, connection, &mut buffer, self.response_len) {
                Ok(false) => index += 1,
                Ok(true) => {
                    let connection = self.connections.swap_remove(index);
                    if connection.response == response_bytes(&connection.request, self.response_len)
                    {
                        self.completed += 1;
                    } else {
                        self.failures.push(format!(
                            "connection {:?}: wrong response",
                            connection.handle
                        ));
                    }
                    let _ = layer.close(connection.handle);
                    progress = true;
                }
                Err(error) => {
                    let connection = self.connections.swap_remove(index);
                    self.failures
                        .push(format!("connection {:?}: {error:?}", connection.handle));
                    let _ = layer.abort(connection.handle);
                    progress = true;
                }
            }
        }
        progress
    }
}

/// Ok(true) at end of stream.
fn drive_client(
    layer: &mut TcpLayer,
    connection: &mut ClientConnection,
    buffer: &mut [u8],
    response_len: usize,
) -> Result<bool, SocketError> {
    let readiness = layer.readiness(connection.handle)?;
    if let Some(error) = readiness.error {
        return Err(error);
    }
    if !readiness.connected {
        return Ok(false);
    }
    while connection.written < connection.request.len() {
        match layer.write(connection.handle, &connection.request[connection.written..]) {
            Ok(count) => connection.written += count,
            Err(SocketError::WouldBlock) => return Ok(false),
            Err(error) => return Err(error),
        }
    }
    loop {
        match layer.read(connection.handle, buffer) {
            Ok(0) => return Ok(true),
            Ok(count) => {
                connection.response.extend_from_slice(&buffer[..count]);
                if connection.response.len() > response_len {
                    return Err(SocketError::InvalidArgument);
                }
            }
            Err(SocketError::WouldBlock) => return Ok(false),
            Err(error) => return Err(error),
        }
    }
}

/// An accepted connection: read the whole request, answer, close.
struct ServerConnection {
    handle: SocketHandle,
    request: Vec<u8>,
    response: Option<(Vec<u8>, usize)>,
}

/// Accepts connections, reads each request of `request_len` bytes whole, answers it with its
/// response of `response_len` bytes and closes.
pub struct Server {
    request_len: usize,
    response_len: usize,
    connections: Vec<ServerConnection>,
    /// Connections accepted.
    pub accepted: u64,
    /// Every connection that failed, with why.
    pub failures: Vec<String>,
}

impl Server {
    pub fn new(request_len: usize, response_len: usize) -> Server {
        Server {
            request_len,
            response_len,
            connections: Vec::new(),
            accepted: 0,
            failures: Vec::new(),
        }
    }

    /// Accepts from `listener` (if any) and serves; true if anything moved.
    pub fn step(&mut self, layer: &mut TcpLayer, listener: Option<SocketHandle>) -> bool {
        let mut progress = false;
        if let Some(listener) = listener {
            while let Ok(handle) = layer.accept(listener) {
                self.accepted += 1;
                self.connections.push(ServerConnection {
                    handle,
                    request: Vec::with_capacity(self.request_len),
                    response: None,
                });
                progress = true;
            }
        }
        let mut index = 0;
        let mut buffer = [0u8; 4096];
        while index < self.connections.len() {
            match self.drive(layer, index, &mut buffer) {
                Ok(false) => index += 1,
                Ok(true) => {
                    let connection = self.connections.swap_remove(index);
                    let _ = layer.close(connection.handle);
                    progress = true;
                }
                Err(error) => {
                    let connection = self.connections.swap_remove(index);
                    self.failures.push(format!(
                        "server connection {:?}: {error:?}",
                        connection.handle
                    ));
                    let _ = layer.abort(connection.handle);
                    progress = true;
                }
            }
        }
        progress
    }

    /// Ok(true) once the whole response is queued.
    fn drive(
        &mut self,
        layer: &mut TcpLayer,
        index: usize,
        buffer: &mut [u8],
    ) -> Result<bool, SocketError> {
        let connection = &mut self.connections[index];
        while connection.response.is_none() {
            let wanted = self.request_len - connection.request.len();
            let limit = wanted.min(buffer.len());
            match layer.read(connection.handle, &mut buffer[..limit]) {
                Ok(0) => return Err(SocketError::NotConnected),
                Ok(count) => {
                    connection.request.extend_from_slice(&buffer[..count]);
                    if connection.request.len() == self.request_len {
                        connection.response =
                            Some((response_bytes(&connection.request, self.response_len), 0));
                    }
                }
                Err(SocketError::WouldBlock) => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        let Some((response, sent)) = connection.response.as_mut() else {
            return Ok(false);
        };
        while *sent < response.len() {
            match layer.write(connection.handle, &response[*sent..]) {
                Ok(count) => *sent += count,
                Err(SocketError::WouldBlock) => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}

/// A peer machine on the wire: its interface and its layer.
struct Peer {
    interface: Interface,
    tcp: SharedTcpLayer,
    index: usize,
    is_client: bool,
}

impl Peer {
    fn new(
        address: Ipv4Addr,
        mac: EthernetAddress,
        secret: u8,
        index: usize,
        is_client: bool,
        now: Instant,
    ) -> Peer {
        let tcp = TcpLayer::new(tcp_config(), CoreId(0), [secret; 16]).into_shared();
        Peer {
            interface: Interface::new(interface_config(address, mac), tcp.clone(), now),
            tcp,
            index,
            is_client,
        }
    }

    /// Receives what arrived and transmits what is ready; true if anything moved.
    fn turn(&mut self, now: Instant, wire: &Wire, random: &mut u64) -> bool {
        let inboxes = if self.is_client {
            &wire.clients
        } else {
            &wire.backends
        };
        let arrived = core::mem::take(&mut *inboxes[self.index].lock());
        let mut moved = !arrived.is_empty();
        for frame in arrived {
            self.interface.receive(now, &frame);
        }
        let mut sink = Vec::new();
        self.interface.poll(now, &mut sink);
        for frame in sink {
            wire.send(frame, false, random);
            moved = true;
        }
        moved
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
