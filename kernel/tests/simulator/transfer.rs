//! The transfer scenario: clients send a patterned byte stream, a server checks every byte and answers with the count, both close.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use unisock_kernel::net::tcp::{Shutdown, SocketError, SocketHandle, TcpLayer, TcpState};
use unisock_kernel::time::Instant;

use unisock_kernel::net::counters::Counters;
use unisock_kernel::net::tcp::TcpCounters;

use super::hostile::{self, HostileTraffic, Target};
use super::{Impairments, Network, WireStatistics, pattern_byte};

/// The port the server listens on.
pub const SERVER_PORT: u16 = 80;

/// One run: `connections` concurrent connections from each client host to the server (host 1;
/// the clients are host 0 and, with more than one client host, hosts 2, 3, ...), each sending
/// `size` bytes, over a wire with `impairments`, all drawn from `seed`.
#[derive(Clone, Copy, Debug)]
pub struct TransferPlan {
    pub seed: u64,
    pub size: u64,
    pub connections: usize,
    /// Hosts that open connections (at least one).
    pub client_hosts: usize,
    pub impairments: Impairments,
    /// Hostile frames injected into both hosts during the run, if any.
    pub hostile: Option<HostileTraffic>,
    /// HTTP/1.0 style: the server answers and closes as soon as it has all the bytes, before
    /// the client closes. Otherwise the client half-closes first (shutdown after its data) and
    /// the server answers the end of stream.
    pub server_closes_first: bool,
}

/// What a successful run looked like.
#[derive(Clone, Debug)]
pub struct TransferReport {
    pub simulated_time: Duration,
    pub steps: u64,
    pub wire: WireStatistics,
    /// Each host's interface counters at the end.
    pub counters: Vec<Counters>,
    /// Each host's TCP counters at the end.
    pub tcp_counters: Vec<TcpCounters>,
    /// [`Network::trace`] at the end: the same for every run of one plan.
    pub trace: u64,
    /// The longest simulated time, before every client was done, in which no byte was
    /// delivered (none read by the server, no answer read by a client, no connection
    /// finished).
    pub longest_stall: Duration,
}

/// Simulated time after which a run that has not finished fails.
const TIME_LIMIT: Duration = Duration::from_secs(3600);
/// Steps after which a run fails: catches a livelock that does not advance time.
const STEP_LIMIT: u64 = 5_000_000;
/// Steps at the same instant before the run is declared live-locked.
const SAME_INSTANT_LIMIT: u32 = 10_000;

struct Client {
    host: usize,
    handle: SocketHandle,
    stream: u64,
    sent: u64,
    shut_down: bool,
    reply: Vec<u8>,
    done: bool,
}

struct ServerConnection {
    stream: u64,
    received: u64,
}

/// Run `plan` to the end: every byte delivered once and in order, every socket closed, every
/// table empty. `Err` says what went wrong, at which simulated time.
pub fn run(plan: &TransferPlan) -> Result<TransferReport, String> {
    run_watched(plan, None)
}

/// [`run`], failing as soon as no byte has been delivered for longer than `stall_limit` (if given)
/// while a client is not done: a transfer under loss must make progress every few RTOs,
/// however long it takes in all.
pub fn run_watched(
    plan: &TransferPlan,
    stall_limit: Option<Duration>,
) -> Result<TransferReport, String> {
    run_watched_with(plan, stall_limit, |_| {})
}

/// [`run_watched`], calling `before_step` before every step of the network (to inject
/// frames at a chosen time, whatever the seed draws).
pub fn run_watched_with(
    plan: &TransferPlan,
    stall_limit: Option<Duration>,
    mut before_step: impl FnMut(&mut Network),
) -> Result<TransferReport, String> {
    let client_hosts = plan.client_hosts.max(1);
    let mut network = Network::new(plan.seed, plan.impairments, client_hosts + 1);
    let client_host_indices: Vec<usize> = std::iter::once(0).chain(2..client_hosts + 1).collect();
    let total_connections = plan.connections * client_hosts;
    let server_address = network.hosts[1].address;
    let listener = network.hosts[1]
        .tcp
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 1024)
        .map_err(|error| format!("listen: {error:?}"))?;
    let mut clients = Vec::new();
    for (host, _) in client_host_indices
        .iter()
        .flat_map(|host| std::iter::repeat_n(*host, plan.connections))
        .zip(0..)
    {
        let handle = network.hosts[host]
            .tcp
            .borrow_mut()
            .connect(SocketAddrV4::new(server_address, SERVER_PORT), None)
            .map_err(|error| format!("connect: {error:?}"))?;
        let local = network.hosts[host]
            .tcp
            .borrow()
            .local_address(handle)
            .map_err(|error| format!("local_address: {error:?}"))?;
        clients.push(Client {
            host,
            handle,
            stream: stream_id(local),
            sent: 0,
            shut_down: false,
            reply: Vec::new(),
            done: false,
        });
    }
    // In accept order, so that the server reads its connections in the same order in every run
    // (a HashMap's order changes from process to process, and with it the frames on the wire).
    let mut server: Vec<(SocketHandle, ServerConnection)> = Vec::new();
    let mut served = 0usize;
    let mut listener_open = true;
    let mut steps = 0u64;
    let mut last_instant = Instant::ZERO;
    let mut same_instant = 0u32;
    let mut last_progress = (0u64, Instant::ZERO);
    let mut longest_stall = Duration::ZERO;
    loop {
        let failure = |network: &Network, what: String| {
            format!(
                "at {:?}: {what}",
                network.now.saturating_since(Instant::ZERO)
            )
        };
        drive_clients(&mut network, plan, &mut clients).map_err(|e| failure(&network, e))?;
        served += drive_server(
            &mut network,
            plan,
            listener_open.then_some(listener),
            &mut server,
        )
        .map_err(|e| failure(&network, e))?;
        if listener_open && served == total_connections && clients.iter().all(|c| c.done) {
            network.hosts[1]
                .tcp
                .borrow_mut()
                .close(listener)
                .map_err(|e| failure(&network, format!("close listener: {e:?}")))?;
            listener_open = false;
        }
        if !clients.iter().all(|c| c.done) {
            let progress = progress_mark(&clients, &server, served);
            if progress != last_progress.0 {
                last_progress = (progress, network.now);
            }
            let stalled = network.now.saturating_since(last_progress.1);
            longest_stall = longest_stall.max(stalled);
            if stall_limit.is_some_and(|limit| stalled > limit) {
                return Err(failure(
                    &network,
                    format!(
                        "stalled for {stalled:?}: clients (stream, sent, reply) {:?}, server \
                         (stream, received) {:?}, sockets {:?} / {:?}\ninterfaces {:?} / \
                         {:?}\ntcp {:?} / {:?}",
                        clients
                            .iter()
                            .map(|c| (c.stream, c.sent, c.reply.len()))
                            .collect::<Vec<_>>(),
                        server
                            .iter()
                            .map(|(_, c)| (c.stream, c.received))
                            .collect::<Vec<_>>(),
                        network.hosts[client_host_indices[0]].sockets(),
                        network.hosts[1].sockets(),
                        network.hosts[0].interface.counters(),
                        network.hosts[1].interface.counters(),
                        network.hosts[0].tcp.borrow().counters(),
                        network.hosts[1].tcp.borrow().counters(),
                    ),
                ));
            }
        }
        if let Some(hostile) = plan.hostile.filter(|hostile| steps < hostile.for_steps) {
            inject_hostile_frames(&mut network, hostile);
        }
        before_step(&mut network);
        if !network.step() {
            break;
        }
        steps += 1;
        if network.now == last_instant {
            same_instant += 1;
            if same_instant > SAME_INSTANT_LIMIT {
                return Err(failure(&network, "live-lock: no progress in time".into()));
            }
        } else {
            same_instant = 0;
            last_instant = network.now;
        }
        if steps > STEP_LIMIT || network.now.saturating_since(Instant::ZERO) > TIME_LIMIT {
            let pending: Vec<_> = clients
                .iter()
                .filter(|c| !c.done)
                .map(|c| (c.stream, c.sent, c.reply.len()))
                .collect();
            return Err(failure(
                &network,
                format!(
                    "did not finish: clients not done {pending:?}, server served {served}, \
                     sockets {:?} / {:?}",
                    network.hosts[client_host_indices[0]].sockets(),
                    network.hosts[1].sockets()
                ),
            ));
        }
    }
    let now = network.now.saturating_since(Instant::ZERO);
    if let Some(client) = clients.iter().find(|client| !client.done) {
        return Err(format!(
            "at {now:?}: the network went quiet but stream {} is not done (sent {}, reply {:?})",
            client.stream, client.sent, client.reply
        ));
    }
    if served != total_connections {
        return Err(format!(
            "at {now:?}: the server served {served} of {total_connections} connections"
        ));
    }
    check_empty(&network).map_err(|e| format!("at {now:?}: {e}"))?;
    Ok(TransferReport {
        simulated_time: now,
        steps,
        wire: network.statistics,
        counters: network
            .hosts
            .iter()
            .map(|host| host.interface.counters().clone())
            .collect(),
        tcp_counters: network
            .hosts
            .iter()
            .map(|host| host.tcp.borrow().counters().clone())
            .collect(),
        trace: network.trace(),
        longest_stall,
    })
}

/// A number that changes whenever a byte is delivered or a connection finishes: the sum of
/// what the clients and the server read, and the connections done on each side (only
/// compared, never ordered: a finished server connection leaves `server`). Bytes written are
/// left out: a write only fills the send buffer, and a sender whose buffer still had room
/// while nothing reached the receiver looked as if it made progress.
fn progress_mark(
    clients: &[Client],
    server: &[(SocketHandle, ServerConnection)],
    served: usize,
) -> u64 {
    let clients_part: u64 = clients
        .iter()
        .map(|c| c.reply.len() as u64 + u64::from(c.done))
        .sum();
    let server_part: u64 = server.iter().map(|(_, c)| c.received).sum();
    clients_part + server_part + served as u64
}

fn inject_hostile_frames(network: &mut Network, hostile: HostileTraffic) {
    let honest_addresses: Vec<Ipv4Addr> = network.hosts.iter().map(|host| host.address).collect();
    for to in 0..network.hosts.len() {
        let target = Target {
            hardware_address: network.hosts[to].hardware_address,
            address: network.hosts[to].address,
            honest_addresses: honest_addresses.clone(),
        };
        for _ in 0..hostile.frames_per_step {
            let captured = std::mem::take(&mut network.captured);
            let frame = hostile::frame(network.rng(), &target, &captured);
            network.captured = captured;
            network.inject(to, &frame);
        }
    }
}

/// A stream is named by its client's address and port, which both ends know.
fn stream_id(client: SocketAddrV4) -> u64 {
    (u64::from(u32::from(*client.ip())) << 16) | u64::from(client.port())
}

fn expected_chunk(seed: u64, stream: u64, start: u64, length: usize) -> Vec<u8> {
    (start..start + length as u64)
        .map(|offset| pattern_byte(seed, stream, offset))
        .collect()
}

fn drive_clients(
    network: &mut Network,
    plan: &TransferPlan,
    clients: &mut [Client],
) -> Result<(), String> {
    for client in clients.iter_mut().filter(|client| !client.done) {
        let mut tcp = network.hosts[client.host].tcp.borrow_mut();
        let readiness = tcp
            .readiness(client.handle)
            .map_err(|e| format!("client {} readiness: {e:?}", client.stream))?;
        if let Some(error) = readiness.error {
            return Err(format!("client {} failed: {error:?}", client.stream));
        }
        if !readiness.connected {
            continue;
        }
        while client.sent < plan.size {
            let length = (plan.size - client.sent).min(64 * 1024) as usize;
            let chunk = expected_chunk(plan.seed, client.stream, client.sent, length);
            match tcp.write(client.handle, &chunk) {
                Ok(written) => client.sent += written as u64,
                Err(SocketError::WouldBlock) => break,
                Err(error) => return Err(format!("client {} write: {error:?}", client.stream)),
            }
        }
        if client.sent == plan.size && !client.shut_down && !plan.server_closes_first {
            tcp.shutdown(client.handle, Shutdown::Write)
                .map_err(|e| format!("client {} shutdown: {e:?}", client.stream))?;
            client.shut_down = true;
        }
        let mut buffer = [0u8; 64];
        loop {
            match tcp.read(client.handle, &mut buffer) {
                Ok(0) => {
                    let expected = plan.size.to_be_bytes();
                    if client.reply != expected {
                        return Err(format!(
                            "client {} got reply {:?}, expected {:?}",
                            client.stream, client.reply, expected
                        ));
                    }
                    tcp.close(client.handle)
                        .map_err(|e| format!("client {} close: {e:?}", client.stream))?;
                    client.done = true;
                    break;
                }
                Ok(count) => client.reply.extend_from_slice(&buffer[..count]),
                Err(SocketError::WouldBlock) => break,
                Err(error) => return Err(format!("client {} read: {error:?}", client.stream)),
            }
        }
    }
    Ok(())
}

/// Accept, read and check, answer and close; returns how many connections finished now.
fn drive_server(
    network: &mut Network,
    plan: &TransferPlan,
    listener: Option<SocketHandle>,
    connections: &mut Vec<(SocketHandle, ServerConnection)>,
) -> Result<usize, String> {
    let mut tcp = network.hosts[1].tcp.borrow_mut();
    if let Some(listener) = listener {
        loop {
            match tcp.accept(listener) {
                Ok(handle) => {
                    let peer = tcp
                        .peer_address(handle)
                        .map_err(|e| format!("server peer_address: {e:?}"))?;
                    connections.push((
                        handle,
                        ServerConnection {
                            stream: stream_id(peer),
                            received: 0,
                        },
                    ));
                }
                Err(SocketError::WouldBlock) => break,
                Err(error) => return Err(format!("accept: {error:?}")),
            }
        }
    }
    let mut finished = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    for (handle, connection) in connections.iter_mut() {
        loop {
            match tcp.read(*handle, &mut buffer) {
                Ok(0) => {
                    if connection.received != plan.size || plan.server_closes_first {
                        return Err(format!(
                            "server stream {}: end of stream after {} of {} bytes",
                            connection.stream, connection.received, plan.size
                        ));
                    }
                    answer_and_close(&mut tcp, *handle, connection.received)?;
                    finished.push(*handle);
                    break;
                }
                Ok(count) => {
                    let expected =
                        expected_chunk(plan.seed, connection.stream, connection.received, count);
                    if buffer[..count] != expected[..] {
                        let position = buffer[..count]
                            .iter()
                            .zip(&expected)
                            .position(|(got, want)| got != want)
                            .unwrap_or(0);
                        return Err(format!(
                            "server stream {}: wrong byte at offset {}",
                            connection.stream,
                            connection.received + position as u64
                        ));
                    }
                    connection.received += count as u64;
                    if connection.received > plan.size {
                        return Err(format!(
                            "server stream {}: more bytes than sent",
                            connection.stream
                        ));
                    }
                    if plan.server_closes_first && connection.received == plan.size {
                        answer_and_close(&mut tcp, *handle, connection.received)?;
                        finished.push(*handle);
                        break;
                    }
                }
                Err(SocketError::WouldBlock) => break,
                Err(error) => {
                    return Err(format!(
                        "server stream {} read: {error:?}",
                        connection.stream
                    ));
                }
            }
        }
    }
    connections.retain(|(handle, _)| !finished.contains(handle));
    Ok(finished.len())
}

/// Send the 8-byte count of bytes received, then close.
fn answer_and_close(tcp: &mut TcpLayer, handle: SocketHandle, received: u64) -> Result<(), String> {
    let reply = received.to_be_bytes();
    let written = tcp
        .write(handle, &reply)
        .map_err(|e| format!("server reply: {e:?}"))?;
    if written != reply.len() {
        return Err(format!("server reply cut to {written} bytes"));
    }
    tcp.close(handle)
        .map_err(|e| format!("server close: {e:?}"))
}

/// Every table of every host is empty: no socket of any kind, no queued segment, no buffered
/// byte counted, no timer, no ARP state.
pub fn check_empty(network: &Network) -> Result<(), String> {
    for (index, host) in network.hosts.iter().enumerate() {
        let sockets = host.sockets();
        if !sockets.is_empty() {
            let states: Vec<TcpState> = sockets.iter().map(|socket| socket.state).collect();
            return Err(format!("host {index} still holds sockets {states:?}"));
        }
        if host.tcp.borrow().has_output() {
            return Err(format!("host {index} has TCP output left"));
        }
        // With every socket gone, the per-core budget must be whole again (issue 10, defect
        // 1: overlapping out-of-order data leaked it) and no timer may be left armed.
        let memory = host.tcp.borrow().buffer_memory_used();
        if memory != 0 {
            return Err(format!("host {index} still counts {memory} buffered bytes"));
        }
        let timers = host.tcp.borrow().timer_entries();
        if timers != 0 {
            return Err(format!("host {index} has {timers} timer entries left"));
        }
        if host.interface.queued_frames() != 0 {
            return Err(format!(
                "host {index} has {} frames queued",
                host.interface.queued_frames()
            ));
        }
        let arp = host.interface.arp_cache();
        if arp.entry_count() + arp.waiting_count() + arp.resolution_count() != 0 {
            return Err(format!("host {index} has ARP state left"));
        }
    }
    if network.frames_in_flight() != 0 {
        return Err("frames still on the wire".into());
    }
    Ok(())
}
