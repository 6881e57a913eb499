//! A deterministic network simulator: stack instances over an in-memory Ethernet wire with seeded loss, duplication, reordering, corruption and delay.
//!
//! Time is simulated: the simulator jumps from one event (a frame arriving, a host's deadline)
//! to the next, so a minute of TIME_WAIT costs nothing. Everything random comes from one
//! seeded generator, so a seed replays a run exactly.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::wire::EthernetAddress;
use unisock_kernel::executor::Executor;
use unisock_kernel::net::interface::{Interface, InterfaceConfig};
use unisock_kernel::net::ipv4::Ipv4Config;
use unisock_kernel::net::tcp::{CoreId, SocketInfo, TcpConfig, TcpLayer};
use unisock_kernel::net::udp::RandomEphemeralPorts;
use unisock_kernel::socket::{SharedTcpLayer, SharedUdpLayer};
use unisock_kernel::time::Instant;

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): tiny, fast, and good enough to drive impairments and payloads.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// True with probability `probability`.
    pub fn chance(&mut self, probability: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / ((1u64 << 53) as f64);
        probability > 0.0 && unit < probability
    }

    pub fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The SplitMix64 finaliser: a bijective scramble of 64 bits.
pub fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The byte at `offset` of stream `stream` in a run seeded with `seed`: a pattern with no short
/// period, so a duplicated, lost or misplaced segment never looks right.
pub fn pattern_byte(seed: u64, stream: u64, offset: u64) -> u8 {
    let word = mix(seed ^ stream.wrapping_mul(0x1000_0000_01b3) ^ (offset / 8));
    (word >> ((offset % 8) * 8)) as u8
}

/// What the wire does to frames. Probabilities are per frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairments {
    pub loss: f64,
    pub duplication: f64,
    /// Probability that a frame is held back by up to `reorder_delay` more.
    pub reordering: f64,
    pub reorder_delay: Duration,
    /// Probability that one random bit of the frame is flipped.
    pub corruption: f64,
    /// One-way delay of every frame.
    pub delay: Duration,
    /// Extra random delay in `0..jitter` (jitter alone does not reorder: see `reordering`).
    pub jitter: Duration,
}

impl Impairments {
    /// A perfect wire with 50 µs of delay.
    pub fn clean() -> Impairments {
        Impairments {
            loss: 0.0,
            duplication: 0.0,
            reordering: 0.0,
            reorder_delay: Duration::ZERO,
            corruption: 0.0,
            delay: Duration::from_micros(50),
            jitter: Duration::ZERO,
        }
    }

    /// Impairments drawn from `rng`: up to 10 % loss, 5 % duplication, 10 % reordering and 2 %
    /// corruption, with 0.1 to 20 ms of delay.
    pub fn random(rng: &mut Rng) -> Impairments {
        let percent = |rng: &mut Rng, max: u64| rng.below(max + 1) as f64 / 100.0;
        Impairments {
            loss: percent(rng, 10),
            duplication: percent(rng, 5),
            reordering: percent(rng, 10),
            reorder_delay: Duration::from_micros(100 + rng.below(5_000)),
            corruption: percent(rng, 2),
            delay: Duration::from_micros(100 + rng.below(20_000)),
            jitter: Duration::from_micros(rng.below(200)),
        }
    }
}

/// One simulated machine: an interface with its TCP and UDP layers, and the executor its tasks
/// (written against the socket API, like the appliance's applications) run on.
pub struct Host {
    pub interface: Interface,
    pub tcp: SharedTcpLayer,
    pub udp: SharedUdpLayer,
    pub executor: Executor,
    pub address: Ipv4Addr,
    pub hardware_address: EthernetAddress,
}

impl Host {
    /// Sockets of every kind the layer still holds (connections, listeners, TIME_WAIT).
    pub fn sockets(&self) -> Vec<SocketInfo> {
        let mut sockets = Vec::new();
        self.tcp.borrow().list_sockets(&mut sockets);
        sockets
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    deliver_at: Instant,
    /// Ties broken by send order, so equal times stay deterministic.
    order: u64,
    to: usize,
    frame: Vec<u8>,
}

/// Counts of what the wire did, for the report of a failing run.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireStatistics {
    pub frames_sent: u64,
    pub frames_lost: u64,
    pub frames_duplicated: u64,
    pub frames_reordered: u64,
    pub frames_corrupted: u64,
}

/// Hosts on one Ethernet segment, 10.0.0.0/24, host `i` at 10.0.0.(i+1).
pub struct Network {
    pub hosts: Vec<Host>,
    pub now: Instant,
    pub impairments: Impairments,
    pub statistics: WireStatistics,
    rng: Rng,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    outbox: Vec<Vec<u8>>,
    /// The latest frames put on the wire, for mutation by the fuzzer.
    pub captured: Vec<Vec<u8>>,
    /// A fingerprint of every frame put on the wire, in order, with its sender and time: two
    /// runs of one seed must end with the same value (see [`Network::trace`]).
    trace: u64,
}

/// Rounds of ready tasks one step runs per host before it polls the interfaces.
const TASK_ROUNDS_PER_STEP: usize = 64;

/// Frames kept in [`Network::captured`].
const CAPTURE_CAPACITY: usize = 128;

pub fn host_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, index as u8 + 1)
}

impl Network {
    pub fn new(seed: u64, impairments: Impairments, host_count: usize) -> Network {
        Network::with_config(seed, impairments, host_count, TcpConfig::default())
    }

    pub fn with_config(
        seed: u64,
        impairments: Impairments,
        host_count: usize,
        tcp_config: TcpConfig,
    ) -> Network {
        let mut rng = Rng::new(seed);
        let now = Instant::ZERO;
        let hosts = (0..host_count)
            .map(|index| {
                let mut secret = [0u8; 16];
                rng.fill(&mut secret);
                let tcp = TcpLayer::new(tcp_config.clone(), CoreId(0), secret).into_shared();
                let address = host_address(index);
                let hardware_address = EthernetAddress([0x02, 0, 0, 0, 0, index as u8 + 1]);
                let config = InterfaceConfig {
                    hardware_address,
                    ipv4: Ipv4Config {
                        address,
                        prefix_len: 24,
                        gateway: None,
                    },
                };
                let interface = Interface::new(config, tcp.clone(), now);
                let udp = interface.udp().clone();
                // Ephemeral UDP ports drawn from the run's seed, so a seed replays them.
                udp.borrow_mut()
                    .set_port_policy(Box::new(RandomEphemeralPorts::new(rng.next_u64())));
                Host {
                    interface,
                    tcp,
                    udp,
                    executor: Executor::new(),
                    address,
                    hardware_address,
                }
            })
            .collect();
        Network {
            hosts,
            now,
            impairments,
            statistics: WireStatistics::default(),
            rng,
            in_flight: BinaryHeap::new(),
            order: 0,
            outbox: Vec::new(),
            captured: Vec::new(),
            trace: 0,
        }
    }

    /// Runs every host's due timers and ready tasks, until none is ready (bounded: a task
    /// that wakes itself for ever is the caller's live-lock, caught by its step limits).
    pub fn run_tasks(&mut self) {
        let now = self.now;
        for host in &mut self.hosts {
            host.executor.fire_timers(now);
            for _ in 0..TASK_ROUNDS_PER_STEP {
                if host.executor.run_ready(now) == 0 {
                    break;
                }
            }
        }
    }

    /// Poll every host and put what it sends on the wire.
    pub fn poll_hosts(&mut self) {
        self.run_tasks();
        for from in 0..self.hosts.len() {
            let mut frames = std::mem::take(&mut self.outbox);
            self.hosts[from].interface.poll(self.now, &mut frames);
            for frame in frames.drain(..) {
                self.send(from, frame);
            }
            self.outbox = frames;
        }
    }

    /// Put one frame from host `from` on the wire, through the impairments.
    pub fn send(&mut self, from: usize, frame: Vec<u8>) {
        self.statistics.frames_sent += 1;
        self.trace = mix(self.trace ^ from as u64 ^ self.now.as_nanos().rotate_left(8));
        for chunk in frame.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.trace = mix(self.trace ^ u64::from_le_bytes(word));
        }
        if self.captured.len() < CAPTURE_CAPACITY {
            self.captured.push(frame.clone());
        } else {
            let slot = (self.statistics.frames_sent % CAPTURE_CAPACITY as u64) as usize;
            self.captured[slot] = frame.clone();
        }
        let recipients: Vec<usize> = if frame.len() >= 6 && frame[..6] == [0xff; 6] {
            (0..self.hosts.len()).filter(|to| *to != from).collect()
        } else {
            (0..self.hosts.len())
                .filter(|to| frame.len() >= 6 && frame[..6] == self.hosts[*to].hardware_address.0)
                .collect()
        };
        for to in recipients {
            if self.rng.chance(self.impairments.loss) {
                self.statistics.frames_lost += 1;
                continue;
            }
            let copies = if self.rng.chance(self.impairments.duplication) {
                self.statistics.frames_duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let mut copy = frame.clone();
                if !copy.is_empty() && self.rng.chance(self.impairments.corruption) {
                    self.statistics.frames_corrupted += 1;
                    let bit = self.rng.below(copy.len() as u64 * 8);
                    copy[(bit / 8) as usize] ^= 1 << (bit % 8);
                }
                let mut delay = self.impairments.delay;
                if !self.impairments.jitter.is_zero() {
                    delay += Duration::from_nanos(
                        self.rng.below(self.impairments.jitter.as_nanos() as u64),
                    );
                }
                if self.rng.chance(self.impairments.reordering) {
                    self.statistics.frames_reordered += 1;
                    delay += Duration::from_nanos(
                        self.rng
                            .below(self.impairments.reorder_delay.as_nanos() as u64 + 1),
                    );
                }
                self.order += 1;
                self.in_flight.push(Reverse(InFlight {
                    deliver_at: self.now + delay,
                    order: self.order,
                    to,
                    frame: copy,
                }));
            }
        }
    }

    /// The time of the next event: a frame arriving or a host's deadline.
    pub fn next_event(&self) -> Option<Instant> {
        let arrival = self.in_flight.peek().map(|Reverse(frame)| frame.deliver_at);
        let deadlines = self
            .hosts
            .iter()
            .flat_map(|host| {
                [
                    host.interface.next_deadline(),
                    host.executor.next_deadline(),
                ]
            })
            .flatten();
        arrival.into_iter().chain(deadlines).min()
    }

    /// Advance to the next event (never backwards), deliver the frames due, poll every host.
    /// False when nothing at all is left to happen.
    pub fn step(&mut self) -> bool {
        self.poll_hosts();
        let Some(next) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(Reverse(frame)) = self.in_flight.peek() {
            if frame.deliver_at > self.now {
                break;
            }
            let Some(Reverse(frame)) = self.in_flight.pop() else {
                break;
            };
            self.hosts[frame.to]
                .interface
                .receive(self.now, &frame.frame);
        }
        self.poll_hosts();
        true
    }

    /// Hand `frame` to host `to` now, as if it came off the wire (for injected traffic).
    pub fn inject(&mut self, to: usize, frame: &[u8]) {
        self.hosts[to].interface.receive(self.now, frame);
    }

    /// The generator's own stream of randomness, for callers that draw with the run's seed.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// The fingerprint of everything put on the wire so far: a run is replayable from its seed
    /// only if this is the same in every run of the seed.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    /// Frames on the wire.
    pub fn frames_in_flight(&self) -> usize {
        self.in_flight.len()
    }
}
