//! Benchmark of short-lived connections per second on one core: our stack with both endpoints in this process over an in-memory wire, against the Linux kernel over loopback, in the same run.
//!
//! Each connection: connect, a 100-byte request, a 100-byte response, the server closes, the
//! client closes; then the next, one at a time. Run with `cargo xtask bench stack` (that is
//! `cargo bench -p unisock-kernel --bench stack`). The process re-executes itself under
//! `taskset -c 0` so that both measurements run on one core. The last line of the output is
//! `stack-bench: ours=<conn/s> linux=<conn/s> ratio=<ours/linux>`.
//!
//! `UNISOCK_BENCH_SECONDS` sets the length of each measurement (default 3);
//! `UNISOCK_BENCH_ONLY=ours` or `=linux` runs one side only (for profiling);
//! `UNISOCK_BENCH_CONNECTIONS=N` makes our side run exactly N connections after exactly
//! `WARM_UP_CONNECTIONS`, whatever the time, so that two runs under callgrind differ only in
//! their counts (`kernel/benches/stack-instructions`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown as NetShutdown, SocketAddrV4, TcpListener, TcpStream};
use std::ops::Range;
use std::process::Command;
use std::time::Duration;

use smoltcp::wire::EthernetAddress;
use unisock_kernel::net::interface::{FrameSink, Interface, InterfaceConfig, SinkFull};
use unisock_kernel::net::ipv4::Ipv4Config;
use unisock_kernel::net::tcp::{CoreId, SocketError, SocketHandle, TcpConfig, TcpLayer};
use unisock_kernel::socket::SharedTcpLayer;
use unisock_kernel::time::Instant;

const MESSAGE_LEN: usize = 100;
const SERVER_PORT: u16 = 80;
const PINNED_VARIABLE: &str = "UNISOCK_BENCH_PINNED";
/// The warm-up of a run with `UNISOCK_BENCH_CONNECTIONS`.
const WARM_UP_CONNECTIONS: u64 = 1_000;

/// How long one side's measurement lasts: a time, or (ours only) a number of connections.
#[derive(Clone, Copy)]
enum Length {
    Time(Duration),
    Connections(u64),
}

impl Length {
    fn done(self, start: std::time::Instant, connections: u64) -> bool {
        match self {
            Length::Time(length) => start.elapsed() >= length,
            Length::Connections(count) => connections >= count,
        }
    }
}

fn main() {
    if std::env::var_os(PINNED_VARIABLE).is_none() && pin_to_one_core() {
        return;
    }
    let seconds: f64 = std::env::var("UNISOCK_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    let length = Duration::from_secs_f64(seconds);
    let only = std::env::var("UNISOCK_BENCH_ONLY").unwrap_or_default();
    let counted: Option<u64> = std::env::var("UNISOCK_BENCH_CONNECTIONS")
        .ok()
        .and_then(|value| value.parse().ok());
    let each = match counted {
        Some(count) => format!("{count} connections after {WARM_UP_CONNECTIONS}"),
        None => format!("{seconds} s each"),
    };
    println!(
        "stack bench: sequential short connections ({MESSAGE_LEN}-byte request and response), \
         {each}, cpu affinity {}",
        std::env::var(PINNED_VARIABLE).unwrap_or_else(|_| "not pinned".into())
    );
    let warm_up = Duration::from_millis(300);
    let (ours_warm_up, ours_length) = match counted {
        Some(count) => (
            Length::Connections(WARM_UP_CONNECTIONS),
            Length::Connections(count),
        ),
        None => (Length::Time(warm_up), Length::Time(length)),
    };
    let ours = (only != "linux").then(|| {
        let warm = measure_ours(ours_warm_up, false);
        println!("ours:  warm-up {} connections", warm.connections);
        let ours = measure_ours(ours_length, true);
        println!(
            "ours:  {} connections in {:.3} s = {:.0} conn/s (in-memory wire, both ends in process)",
            ours.connections,
            ours.elapsed.as_secs_f64(),
            ours.rate()
        );
        ours
    });
    let linux = (only != "ours").then(|| {
        measure_linux(warm_up);
        let linux = measure_linux(length);
        println!(
            "linux: {} connections in {:.3} s = {:.0} conn/s (loopback, std::net, blocking)",
            linux.connections,
            linux.elapsed.as_secs_f64(),
            linux.rate()
        );
        linux
    });
    if let (Some(ours), Some(linux)) = (ours, linux) {
        println!(
            "stack-bench: ours={:.0} linux={:.0} ratio={:.2}",
            ours.rate(),
            linux.rate(),
            ours.rate() / linux.rate()
        );
    }
}

/// Re-run this benchmark under `taskset -c 0`; true when that happened (the child printed the
/// results), false when taskset is missing and we carry on unpinned.
fn pin_to_one_core() -> bool {
    let Ok(executable) = std::env::current_exe() else {
        return false;
    };
    let status = Command::new("taskset")
        .arg("-c")
        .arg("0")
        .arg(executable)
        .args(std::env::args_os().skip(1))
        .env(PINNED_VARIABLE, "cpu 0 (taskset -c 0)")
        .status();
    match status {
        Ok(status) if status.success() => true,
        Ok(status) => std::process::exit(status.code().unwrap_or(1)),
        Err(_) => false,
    }
}

struct Measurement {
    connections: u64,
    elapsed: Duration,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.connections as f64 / self.elapsed.as_secs_f64()
    }
}

// ----- Linux over loopback -----

fn measure_linux(length: Duration) -> Measurement {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let address = listener.local_addr().expect("local address");
    let server = std::thread::spawn(move || {
        let mut request = [0u8; MESSAGE_LEN];
        let response = [b'r'; MESSAGE_LEN];
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if stream.read_exact(&mut request).is_err() {
                // The client's last, empty connection: the run is over.
                break;
            }
            let _ = stream.set_nodelay(true);
            let _ = stream.write_all(&response);
        }
    });
    let request = [b'q'; MESSAGE_LEN];
    let mut response = [0u8; MESSAGE_LEN];
    let start = std::time::Instant::now();
    let mut connections = 0;
    while start.elapsed() < length {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.write_all(&request).expect("request");
        stream.read_exact(&mut response).expect("response");
        let mut rest = [0u8; 1];
        assert_eq!(stream.read(&mut rest).expect("end of stream"), 0);
        drop(stream);
        connections += 1;
    }
    let elapsed = start.elapsed();
    let stop = TcpStream::connect(address).expect("connect");
    let _ = stop.shutdown(NetShutdown::Both);
    drop(stop);
    server.join().expect("server thread");
    Measurement {
        connections,
        elapsed,
    }
}

// ----- our stack over an in-memory wire -----

/// A transmit queue like a driver's: frames written straight into one reusable buffer.
#[derive(Default)]
struct FrameQueue {
    bytes: Vec<u8>,
    frames: Vec<Range<usize>>,
}

impl FrameSink for FrameQueue {
    fn transmit(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SinkFull> {
        let start = self.bytes.len();
        self.bytes.resize(start + len, 0);
        fill(&mut self.bytes[start..]);
        self.frames.push(start..start + len);
        Ok(())
    }
}

impl FrameQueue {
    fn deliver_to(&mut self, interface: &mut Interface, now: Instant) {
        for frame in &self.frames {
            interface.receive(now, &self.bytes[frame.clone()]);
        }
        self.frames.clear();
        self.bytes.clear();
    }
}

/// Two hosts wired back to back, with a clock that follows real time but jumps over idle waits.
struct Pair {
    client: Interface,
    server: Interface,
    client_tcp: SharedTcpLayer,
    server_tcp: SharedTcpLayer,
    client_queue: FrameQueue,
    server_queue: FrameQueue,
    started: std::time::Instant,
    skipped: Duration,
}

impl Pair {
    fn new() -> Pair {
        let host = |index: u8| {
            let tcp = TcpLayer::new(TcpConfig::default(), CoreId(0), [index; 16]).into_shared();
            let config = InterfaceConfig {
                hardware_address: EthernetAddress([0x02, 0, 0, 0, 0, index]),
                ipv4: Ipv4Config {
                    address: Ipv4Addr::new(10, 0, 0, index),
                    prefix_len: 24,
                    gateway: None,
                },
            };
            (Interface::new(config, tcp.clone(), Instant::ZERO), tcp)
        };
        let (client, client_tcp) = host(1);
        let (server, server_tcp) = host(2);
        Pair {
            client,
            server,
            client_tcp,
            server_tcp,
            client_queue: FrameQueue::default(),
            server_queue: FrameQueue::default(),
            started: std::time::Instant::now(),
            skipped: Duration::ZERO,
        }
    }

    fn now(&self) -> Instant {
        Instant::ZERO + self.started.elapsed() + self.skipped
    }

    /// Move frames between the hosts until neither has anything to send.
    fn pump(&mut self) {
        loop {
            let now = self.now();
            self.client.poll(now, &mut self.client_queue);
            self.server.poll(now, &mut self.server_queue);
            if self.client_queue.frames.is_empty() && self.server_queue.frames.is_empty() {
                return;
            }
            self.client_queue.deliver_to(&mut self.server, now);
            self.server_queue.deliver_to(&mut self.client, now);
        }
    }

    /// The receiving step of a turn of each host's core loop (`runtime/core_loop.rs`): the
    /// frames on the wire reach their host. The loop reads its clock once per turn: `now`.
    fn receive(&mut self, now: Instant) {
        self.client_queue.deliver_to(&mut self.server, now);
        self.server_queue.deliver_to(&mut self.client, now);
    }

    /// The transmitting step of a turn, after the applications acted: each host's timers
    /// and output; true if a frame is now on the wire.
    fn transmit(&mut self, now: Instant) -> bool {
        self.client.poll(now, &mut self.client_queue);
        self.server.poll(now, &mut self.server_queue);
        !(self.client_queue.frames.is_empty() && self.server_queue.frames.is_empty())
    }

    /// Nothing moves: jump the clock to the next timer of either host.
    fn skip_to_next_deadline(&mut self) {
        let now = self.now();
        let next = [self.client.next_deadline(), self.server.next_deadline()]
            .into_iter()
            .flatten()
            .min();
        if let Some(deadline) = next {
            self.skipped += deadline.saturating_since(now);
        }
    }
}

fn measure_ours(length: Length, report: bool) -> Measurement {
    let mut pair = Pair::new();
    let server_address = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), SERVER_PORT);
    let listener = pair
        .server_tcp
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 128)
        .expect("listen");
    // Resolve ARP once, outside the measurement, like a warm neighbour cache.
    pair.pump();
    let start = std::time::Instant::now();
    let mut connections = 0;
    while !length.done(start, connections) {
        one_connection(&mut pair, listener, server_address);
        connections += 1;
    }
    let elapsed = start.elapsed();
    let frames =
        pair.client.counters().frames_transmitted + pair.server.counters().frames_transmitted;
    let client = pair.client_tcp.borrow().counters().clone();
    let server = pair.server_tcp.borrow().counters().clone();
    if report {
        println!(
            "ours:  {:.1} frames per connection; retransmits {}; TIME_WAIT reused {} overflowed {}; \
         drops client {} server {}",
            frames as f64 / connections.max(1) as f64,
            client.retransmits + server.retransmits,
            server.time_wait_reuses,
            server.time_wait_overflows,
            pair.client.counters().total_drops() + client.drops.iter().sum::<u64>(),
            pair.server.counters().total_drops() + server.drops.iter().sum::<u64>(),
        );
    }
    Measurement {
        connections,
        elapsed,
    }
}

/// One request and response; panics if the stack fails (the figure would be meaningless).
fn one_connection(pair: &mut Pair, listener: SocketHandle, server_address: SocketAddrV4) {
    let request = [b'q'; MESSAGE_LEN];
    let response = [b'r'; MESSAGE_LEN];
    let mut buffer = [0u8; 2 * MESSAGE_LEN];
    let client = pair
        .client_tcp
        .borrow_mut()
        .connect(server_address, None)
        .expect("connect");
    let mut request_sent = false;
    let mut response_received = 0;
    let mut client_done = false;
    let mut server: Option<(SocketHandle, usize)> = None;
    let mut server_done = false;
    let mut idle_rounds = 0;
    while !(client_done && server_done) {
        // One turn of both hosts' core loops, in the image's order: receive, then the
        // applications, then transmit. What an application does in answer to a frame
        // leaves in the same turn as the stack's own answer (the ACK of a SYN-ACK with the
        // request, a FIN with the response).
        let now = pair.now();
        pair.receive(now);
        let mut progress = false;
        {
            let mut tcp = pair.client_tcp.borrow_mut();
            if !request_sent && tcp.readiness(client).expect("readiness").connected {
                assert_eq!(tcp.write(client, &request), Ok(MESSAGE_LEN));
                request_sent = true;
                progress = true;
            }
            while request_sent && !client_done {
                match tcp.read(client, &mut buffer) {
                    Ok(0) => {
                        assert_eq!(response_received, MESSAGE_LEN);
                        tcp.close(client).expect("client close");
                        client_done = true;
                        progress = true;
                    }
                    Ok(count) => {
                        response_received += count;
                        progress = true;
                    }
                    Err(SocketError::WouldBlock) => break,
                    Err(error) => panic!("client read: {error:?}"),
                }
            }
        }
        {
            let mut tcp = pair.server_tcp.borrow_mut();
            if server.is_none() && !server_done {
                match tcp.accept(listener) {
                    Ok(handle) => {
                        server = Some((handle, 0));
                        progress = true;
                    }
                    Err(SocketError::WouldBlock) => {}
                    Err(error) => panic!("accept: {error:?}"),
                }
            }
            if let Some((handle, received)) = server.as_mut() {
                match tcp.read(*handle, &mut buffer) {
                    Ok(count) if count > 0 => {
                        *received += count;
                        progress = true;
                        if *received == MESSAGE_LEN {
                            assert_eq!(tcp.write(*handle, &response), Ok(MESSAGE_LEN));
                            tcp.close(*handle).expect("server close");
                            server = None;
                            server_done = true;
                        }
                    }
                    Ok(_) | Err(SocketError::WouldBlock) => {}
                    Err(error) => panic!("server read: {error:?}"),
                }
            }
        }
        let on_the_wire = pair.transmit(now);
        if progress || on_the_wire {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            assert!(idle_rounds < 1000, "the connection stalled");
            pair.skip_to_next_deadline();
        }
    }
    // Let the last ACK of the close reach the client.
    pair.pump();
}
