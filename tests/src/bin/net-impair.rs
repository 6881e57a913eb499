//! A user-space network impairment relay, for hosts whose kernel has no `tc netem`: it
//! forwards Ethernet frames between the guest's tap and the peer's tap, and on the way drops,
//! duplicates, delays and reorders them as told.
//!
//!   net-impair GUEST_TAP PEER_NAMESPACE PEER_TAP [loss=P%] [duplicate=P%] [delay=MSms]
//!              [jitter=MSms] [reorder=P%] [corrupt=P%] [seed=N]
//!
//! Run it inside the namespace that holds GUEST_TAP (where QEMU runs): it reads and writes
//! that tap with a packet socket. PEER_TAP is a persistent tap in PEER_NAMESPACE that holds
//! the peer's address; the relay attaches to it as its only queue, so the peer's kernel
//! hands it whole frames with complete checksums (a tap without offloads). Every rule
//! applies to each direction on its own: a frame is dropped with probability `loss`, sent
//! twice with probability `duplicate`, and held for `delay`, except that with probability
//! `reorder` it skips the delay and so overtakes the frames held before it (netem's
//! semantics). `jitter` adds a uniformly random extra delay of up to its value to each frame
//! (frames then also overtake one another); `corrupt` flips one bit past the Ethernet header
//! of a frame with that probability, which the IPv4 or TCP checksum always detects (a
//! one-bit error never leaves the Internet checksum unchanged). On SIGTERM or SIGINT it prints
//! its counters to stderr and exits.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MAX_FRAME: usize = 65_536;
/// From <linux/if_packet.h>: do not hand this socket the frames it sent itself.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// From <linux/if_tun.h>.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// What happens to frames, per direction.
#[derive(Clone, Copy, Debug)]
struct Rules {
    loss: f64,
    duplicate: f64,
    delay: Duration,
    jitter: Duration,
    reorder: f64,
    corrupt: f64,
    seed: u64,
}

#[derive(Default, Debug)]
struct Counters {
    received: u64,
    sent: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    corrupted: u64,
}

/// A frame waiting for its time.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    due: Instant,
    sequence: u64,
    frame: Vec<u8>,
}

/// One direction: where frames come from and go to, the frames held, the counters.
struct Direction {
    name: &'static str,
    held: BinaryHeap<Reverse<Held>>,
    counters: Counters,
}

/// xorshift64*: plenty for coin flips, and reproducible from the seed.
struct Random(u64);

impl Random {
    /// A number in [0, 1).
    fn fraction(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (value >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.fraction() < probability
    }

    /// A number in [0, bound).
    fn below(&mut self, bound: usize) -> usize {
        ((self.fraction() * bound as f64) as usize).min(bound.saturating_sub(1))
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.len() < 3 {
        eprintln!(
            "usage: net-impair GUEST_TAP PEER_NAMESPACE PEER_TAP [loss=P%] [duplicate=P%] [delay=MSms] [jitter=MSms] [reorder=P%] [corrupt=P%] [seed=N]"
        );
        std::process::exit(2);
    }
    let rules = match parse_rules(&arguments[3..]) {
        Ok(rules) => rules,
        Err(message) => {
            eprintln!("net-impair: {message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&arguments[0], &arguments[1], &arguments[2], rules) {
        eprintln!("net-impair: {error}");
        std::process::exit(1);
    }
}

fn parse_rules(words: &[String]) -> Result<Rules, String> {
    let mut rules = Rules {
        loss: 0.0,
        duplicate: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        reorder: 0.0,
        corrupt: 0.0,
        seed: 1,
    };
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| format!("`{word}` is not key=value"))?;
        let percent = || -> Result<f64, String> {
            let number: f64 = value
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("`{word}`: not a percentage"))?;
            Ok(number / 100.0)
        };
        let milliseconds = || -> Result<Duration, String> {
            let millis: u64 = value
                .trim_end_matches("ms")
                .parse()
                .map_err(|_| format!("`{word}`: not milliseconds"))?;
            Ok(Duration::from_millis(millis))
        };
        match key {
            "loss" => rules.loss = percent()?,
            "duplicate" => rules.duplicate = percent()?,
            "reorder" => rules.reorder = percent()?,
            "corrupt" => rules.corrupt = percent()?,
            "delay" => rules.delay = milliseconds()?,
            "jitter" => rules.jitter = milliseconds()?,
            "seed" => {
                rules.seed = value
                    .parse()
                    .map_err(|_| format!("`{word}`: not a number"))?
            }
            _ => return Err(format!("unknown rule `{key}`")),
        }
    }
    Ok(rules)
}

fn run(guest_tap: &str, peer_namespace: &str, peer_tap: &str, rules: Rules) -> io::Result<()> {
    let guest = packet_socket(guest_tap)?;
    // The peer's tap lives in the peer's namespace: enter it to attach, then come back (the
    // packet socket stays in the namespace it was made in either way).
    let home = File::open("/proc/self/ns/net")?;
    let peer_namespace_file = File::open(format!("/var/run/netns/{peer_namespace}"))?;
    enter_namespace(peer_namespace_file.as_raw_fd())?;
    let peer = attach_tap(peer_tap);
    enter_namespace(home.as_raw_fd())?;
    let peer = peer?;
    set_non_blocking(guest.as_raw_fd())?;
    set_non_blocking(peer.as_raw_fd())?;

    // SAFETY: installing a handler that only stores to an atomic is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            request_stop as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGINT,
            request_stop as *const () as libc::sighandler_t,
        );
    }
    eprintln!(
        "net-impair: {guest_tap} <-> {peer_namespace}/{peer_tap}: loss {:.1}% duplicate {:.1}% delay {} ms jitter {} ms reorder {:.1}% corrupt {:.1}% seed {}",
        rules.loss * 100.0,
        rules.duplicate * 100.0,
        rules.delay.as_millis(),
        rules.jitter.as_millis(),
        rules.reorder * 100.0,
        rules.corrupt * 100.0,
        rules.seed
    );
    let mut random = Random(rules.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut to_guest = Direction {
        name: "peer->guest",
        held: BinaryHeap::new(),
        counters: Counters::default(),
    };
    let mut to_peer = Direction {
        name: "guest->peer",
        held: BinaryHeap::new(),
        counters: Counters::default(),
    };
    let mut sequence = 0u64;
    let mut buffer = vec![0u8; MAX_FRAME];
    while !STOP.load(Ordering::SeqCst) {
        let now = Instant::now();
        for (direction, output) in [
            (&mut to_guest, guest.as_raw_fd()),
            (&mut to_peer, peer.as_raw_fd()),
        ] {
            while direction
                .held
                .peek()
                .is_some_and(|Reverse(held)| held.due <= now)
            {
                let Some(Reverse(held)) = direction.held.pop() else {
                    break;
                };
                // A full queue on the way out is a loss like any other; TCP recovers.
                if write_frame(output, &held.frame) {
                    direction.counters.sent += 1;
                }
            }
        }
        let next_due = [&to_guest, &to_peer]
            .iter()
            .filter_map(|direction| direction.held.peek().map(|Reverse(held)| held.due))
            .min();
        let timeout = next_due.map_or(100, |due| {
            due.saturating_duration_since(Instant::now())
                .as_millis()
                .min(100) as libc::c_int
        });
        let mut descriptors = [
            libc::pollfd {
                fd: guest.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: peer.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `descriptors` is a valid array of two pollfd structures.
        let ready = unsafe { libc::poll(descriptors.as_mut_ptr(), 2, timeout) };
        if ready <= 0 {
            continue;
        }
        for (index, source) in [guest.as_raw_fd(), peer.as_raw_fd()]
            .into_iter()
            .enumerate()
        {
            if descriptors[index].revents & libc::POLLIN == 0 {
                continue;
            }
            let direction = if index == 0 {
                &mut to_peer
            } else {
                &mut to_guest
            };
            // Drain what is there now, without blocking.
            loop {
                // SAFETY: `buffer` is valid for MAX_FRAME bytes; the descriptor is open and
                // non-blocking.
                let length = unsafe { libc::read(source, buffer.as_mut_ptr().cast(), MAX_FRAME) };
                if length <= 0 {
                    break;
                }
                direction.counters.received += 1;
                let frame = &mut buffer[..length as usize];
                if random.chance(rules.loss) {
                    direction.counters.dropped += 1;
                    continue;
                }
                let copies = if random.chance(rules.duplicate) {
                    direction.counters.duplicated += 1;
                    2
                } else {
                    1
                };
                if frame.len() > 14 && random.chance(rules.corrupt) {
                    direction.counters.corrupted += 1;
                    let offset = 14 + random.below(frame.len() - 14);
                    frame[offset] ^= 1 << random.below(8);
                }
                let delay = if rules.delay > Duration::ZERO && random.chance(rules.reorder) {
                    direction.counters.reordered += 1;
                    Duration::ZERO
                } else {
                    rules.delay
                } + rules.jitter.mul_f64(random.fraction());
                for _ in 0..copies {
                    sequence += 1;
                    direction.held.push(Reverse(Held {
                        due: Instant::now() + delay,
                        sequence,
                        frame: frame.to_vec(),
                    }));
                }
            }
        }
    }
    for direction in [&to_guest, &to_peer] {
        let counters = &direction.counters;
        eprintln!(
            "net-impair: {} received={} sent={} dropped={} duplicated={} reordered={} corrupted={} held={}",
            direction.name,
            counters.received,
            counters.sent,
            counters.dropped,
            counters.duplicated,
            counters.reordered,
            counters.corrupted,
            direction.held.len()
        );
    }
    Ok(())
}

fn set_non_blocking(descriptor: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an open descriptor.
    let flags = unsafe { libc::fcntl(descriptor, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(descriptor, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn enter_namespace(descriptor: RawFd) -> io::Result<()> {
    // SAFETY: `descriptor` is an open network namespace file; this thread is the only one.
    if unsafe { libc::setns(descriptor, libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A raw packet socket bound to `interface`, for every protocol, without our own frames.
fn packet_socket(interface: &str) -> io::Result<OwnedFd> {
    let protocol = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket creation; the result is checked.
    let descriptor = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    if descriptor < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `descriptor` was just created and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(descriptor) };
    let name = CString::new(interface).map_err(|_| io::Error::other("bad interface name"))?;
    // SAFETY: `name` is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = protocol;
    address.sll_ifindex = index as i32;
    // SAFETY: `address` is a valid sockaddr_ll of the size given.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if bound != 0 {
        return Err(io::Error::last_os_error());
    }
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int of the size given.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if set != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Attaches to the persistent tap `name` (made with `ip tuntap add mode tap`).
fn attach_tap(name: &str) -> io::Result<OwnedFd> {
    let path = CString::new("/dev/net/tun").expect("no NUL");
    // SAFETY: `path` is a valid C string; the result is checked.
    let descriptor = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if descriptor < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `descriptor` was just opened and is owned by nobody else.
    let tap = unsafe { OwnedFd::from_raw_fd(descriptor) };
    // struct ifreq: a 16-byte name, then the flags (a short) in the union.
    let mut request = [0u8; 40];
    let bytes = name.as_bytes();
    if bytes.len() >= 16 {
        return Err(io::Error::other("tap name too long"));
    }
    request[..bytes.len()].copy_from_slice(bytes);
    request[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: `request` is a buffer the size of struct ifreq, as TUNSETIFF expects.
    if unsafe { libc::ioctl(tap.as_raw_fd(), TUNSETIFF, request.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tap)
}

/// Sends one frame; false if the way out was full or failed.
fn write_frame(descriptor: RawFd, frame: &[u8]) -> bool {
    // SAFETY: `frame` is valid for its length; the descriptor is open. A packet socket bound
    // to an interface and a tap both take one frame per write.
    let written = unsafe { libc::write(descriptor, frame.as_ptr().cast(), frame.len()) };
    written == frame.len() as isize
}
