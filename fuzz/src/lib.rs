//! The fuzz targets: the frame path (Ethernet, ARP, IPv4, ICMP and TCP parsing and one core's
//! TCP layer behind them) and the HTTP head parsers and chunked decoder. Each takes any bytes
//! and must neither panic nor break an invariant; `fuzz/run` drives them under AFL++, and
//! `tests/replay.rs` replays every kept input as an ordinary test.

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
#[cfg(test)]
use std::path::Path;

use smoltcp::wire::EthernetAddress;
use unisock_app::http::{self, chunked::ChunkedDecoder, request, response};
use unisock_kernel::net::interface::{Interface, InterfaceConfig};
use unisock_kernel::net::ipv4::Ipv4Config;
use unisock_kernel::net::tcp::{CoreId, SocketHandle, TcpConfig, TcpLayer};
use unisock_kernel::time::Instant;

/// The interface's own addresses, and the peer the inputs usually come from.
pub const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The port the target's listener serves.
pub const LISTEN_PORT: u16 = 80;

/// What a record's flags byte asks the harness to do to its frame before it goes in, so that
/// the fuzzer need not guess checksums or the stack's sequence numbers to get deep.
pub mod record {
    /// Recompute the IPv4 header checksum and the TCP or ICMP checksum.
    pub const FIX_CHECKSUMS: u8 = 1;
    /// Set the TCP acknowledgment number to what the stack sent last, plus its length (the
    /// ACK a peer would send).
    pub const ACK_WHAT_WAS_SENT: u8 = 2;
    /// Set the TCP sequence number to the acknowledgment the stack sent last (the next byte
    /// it expects).
    pub const SEQUENCE_EXPECTED: u8 = 4;
}

/// The frame-path target. `data` is a series of records, each `flags: u8, delay: u8,
/// length: u16 (big-endian), frame: [u8; length]` (a short last record takes what is left).
/// Every frame goes into one core's interface, whose TCP layer listens on port 80; the delay
/// (in units of 50 ms) moves the clock and runs the timers, so that retransmissions, TIME_WAIT
/// and SYN-queue expiry run too. Accepted connections are read from, answered and closed.
pub fn frames(data: &[u8]) {
    let mut harness = FrameHarness::new();
    let mut rest = data;
    while rest.len() >= 4 {
        let flags = rest[0];
        let delay = rest[1];
        let length = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let end = (4 + length).min(rest.len());
        let mut frame = rest[4..end].to_vec();
        rest = &rest[end..];
        harness.step(flags, delay, &mut frame);
    }
    harness.finish();
}

struct FrameHarness {
    interface: Interface,
    tcp: unisock_kernel::socket::SharedTcpLayer,
    listener: SocketHandle,
    accepted: Vec<SocketHandle>,
    now: Instant,
    /// The stack's last TCP segment out: sequence number plus length (SYN and FIN count one),
    /// and the acknowledgment it carried.
    last_sent_end: u32,
    last_sent_ack: u32,
}

impl FrameHarness {
    fn new() -> FrameHarness {
        let config = TcpConfig {
            // Small enough that the fuzzer reaches the limits and the overflow paths.
            max_connections: 8,
            max_time_wait: 4,
            max_buffer_memory: 64 * 1024,
            syn_queue_size: 2,
            max_backlog: 2,
            max_queued_segments: 64,
            ..TcpConfig::default()
        };
        let tcp = TcpLayer::new(config, CoreId(0), [7; 16]).into_shared();
        let listener = tcp
            .borrow_mut()
            .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LISTEN_PORT), 2)
            .expect("a fresh layer listens");
        let interface = Interface::new(
            InterfaceConfig {
                hardware_address: EthernetAddress(OUR_MAC),
                ipv4: Ipv4Config {
                    address: OUR_IP,
                    prefix_len: 24,
                    gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
                },
            },
            tcp.clone(),
            Instant::ZERO,
        );
        let mut harness = FrameHarness {
            interface,
            tcp,
            listener,
            accepted: Vec::new(),
            now: Instant::ZERO,
            last_sent_end: 0,
            last_sent_ack: 0,
        };
        // The peer asks for our address first, so its MAC is known and answers to it leave
        // at once instead of waiting for ARP (which the input could never complete).
        harness
            .interface
            .receive(Instant::ZERO, &peer_asks_for_us());
        harness.poll();
        harness
    }

    fn step(&mut self, flags: u8, delay: u8, frame: &mut [u8]) {
        if flags & record::ACK_WHAT_WAS_SENT != 0 {
            set_tcp_field(frame, 8, self.last_sent_end);
        }
        if flags & record::SEQUENCE_EXPECTED != 0 {
            set_tcp_field(frame, 4, self.last_sent_ack);
        }
        if flags & record::FIX_CHECKSUMS != 0 {
            fix_checksums(frame);
        }
        self.now = Instant::from_nanos(self.now.as_nanos() + u64::from(delay) * 50 * 1_000_000);
        self.interface.receive(self.now, frame);
        self.run_applications();
        self.tcp.borrow_mut().on_timers(self.now);
        self.poll();
    }

    /// What an application would do: accept, read everything, answer once, close.
    fn run_applications(&mut self) {
        let mut tcp = self.tcp.borrow_mut();
        while let Ok(connection) = tcp.accept(self.listener) {
            self.accepted.push(connection);
        }
        let mut buffer = [0u8; 2048];
        self.accepted
            .retain(|&connection| match tcp.read(connection, &mut buffer) {
                Ok(0) => {
                    let _ = tcp.close(connection);
                    false
                }
                Ok(_) => {
                    let _ = tcp.write(
                        connection,
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    );
                    true
                }
                Err(_) => true,
            });
    }

    fn poll(&mut self) {
        let mut out: Vec<Vec<u8>> = Vec::new();
        self.interface.poll(self.now, &mut out);
        for frame in &out {
            if let Some((sequence, acknowledgment, length)) = tcp_numbers(frame) {
                self.last_sent_end = sequence.wrapping_add(length);
                self.last_sent_ack = acknowledgment;
            }
        }
    }

    /// Lets every timer run out, then checks what must hold after any input.
    fn finish(mut self) {
        for _ in 0..4 {
            self.now = Instant::from_nanos(
                self.now.as_nanos() + Duration::from_secs(600).as_nanos() as u64,
            );
            self.tcp.borrow_mut().on_timers(self.now);
            self.poll();
        }
        let tcp = self.tcp.borrow();
        assert!(tcp.connection_count() <= tcp.config().max_connections);
        assert!(tcp.time_wait_count() <= tcp.config().max_time_wait);
        assert!(tcp.buffer_memory_used() <= tcp.config().max_buffer_memory);
    }
}

/// An ARP request from the peer for our address (RFC 826).
fn peer_asks_for_us() -> Vec<u8> {
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xFF; 6]);
    frame.extend_from_slice(&PEER_MAC);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    frame.extend_from_slice(&PEER_MAC);
    frame.extend_from_slice(&PEER_IP.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&OUR_IP.octets());
    frame
}

/// Offset of the TCP header in an Ethernet frame carrying IPv4 protocol 6, if it has one.
fn tcp_offset(frame: &[u8]) -> Option<usize> {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 6 {
        return None;
    }
    let offset = 14 + usize::from(frame[14] & 0x0F) * 4;
    (frame.len() >= offset + 20).then_some(offset)
}

fn set_tcp_field(frame: &mut [u8], field: usize, value: u32) {
    if let Some(offset) = tcp_offset(frame) {
        frame[offset + field..offset + field + 4].copy_from_slice(&value.to_be_bytes());
    }
}

/// Sequence number, acknowledgment and sequence space (payload, plus one each for SYN and
/// FIN) of a TCP segment in an Ethernet frame.
fn tcp_numbers(frame: &[u8]) -> Option<(u32, u32, u32)> {
    let offset = tcp_offset(frame)?;
    let tcp = &frame[offset..];
    let sequence = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let acknowledgment = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let header = usize::from(tcp[12] >> 4) * 4;
    let payload = total.saturating_sub(offset - 14 + header) as u32;
    let flags = tcp[13];
    let control = u32::from(flags & 0x02 != 0) + u32::from(flags & 0x01 != 0);
    Some((sequence, acknowledgment, payload + control))
}

/// The Internet checksum (RFC 1071) of `data` added to `initial`.
fn checksum(initial: u32, data: &[u8]) -> u16 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the IPv4 header checksum and, for TCP and ICMP, the transport checksum over
/// what the IPv4 total length covers (cut to the frame).
fn fix_checksums(frame: &mut [u8]) {
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let header = usize::from(frame[14] & 0x0F) * 4;
    if header < 20 || frame.len() < 14 + header {
        return;
    }
    frame[24..26].fill(0);
    let sum = checksum(0, &frame[14..14 + header]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    let end = (14 + total).min(frame.len());
    if end < 14 + header {
        return;
    }
    let start = 14 + header;
    match frame[23] {
        6 if end - start >= 20 => {
            frame[start + 16..start + 18].fill(0);
            let mut pseudo = 0u32;
            for pair in frame[26..34].chunks_exact(2) {
                pseudo += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
            }
            pseudo += 6 + (end - start) as u32;
            let sum = checksum(pseudo, &frame[start..end]);
            frame[start + 16..start + 18].copy_from_slice(&sum.to_be_bytes());
        }
        1 if end - start >= 4 => {
            frame[start + 2..start + 4].fill(0);
            let sum = checksum(0, &frame[start..end]);
            frame[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {}
    }
}

/// The limits the proxy reads request heads under (its defaults).
const REQUEST_LIMITS: request::HeadLimits = request::HeadLimits {
    request_line: 8 * 1024,
    header_bytes: 64 * 1024,
    header_count: 100,
};
const RESPONSE_LIMIT: usize = 64 * 1024;

/// The HTTP target. The first byte chooses the parser (request head, response head, response
/// head to a HEAD request, chunked body, the responder's head scan), the second how the rest
/// is cut into pieces for the incremental ones.
pub fn http(data: &[u8]) {
    let [selector, cut, input @ ..] = data else {
        return;
    };
    match selector % 5 {
        0 => check_request(input),
        1 => check_response(input, false),
        2 => check_response(input, true),
        3 => check_chunked(input, usize::from(*cut).max(1)),
        _ => {
            if let Some(end) = http::head_length(input) {
                assert!(end <= input.len());
                let _ = http::request_line(&input[..end]);
            }
        }
    }
}

fn check_request(input: &[u8]) {
    let whole = request::parse(input, &REQUEST_LIMITS);
    if let Ok(Some((_, length))) = &whole {
        assert!(*length <= input.len(), "the head is longer than the input");
        // The head alone must parse as it did with whatever followed it.
        let again = request::parse(&input[..*length], &REQUEST_LIMITS);
        assert_eq!(
            again, whole,
            "the head parses differently without what follows it"
        );
    }
}

fn check_response(input: &[u8], request_was_head: bool) {
    if let Ok(Some((_, length))) = response::parse(input, RESPONSE_LIMIT, request_was_head) {
        assert!(length <= input.len(), "the head is longer than the input");
    }
}

/// Decodes `input` at once and in pieces of `piece` bytes: both must give the same data and
/// the same verdict.
fn check_chunked(input: &[u8], piece: usize) {
    let whole = decode_chunked(input, input.len().max(1));
    let pieces = decode_chunked(input, piece);
    assert_eq!(
        whole, pieces,
        "chunked decoding depends on how the input is cut"
    );
}

fn decode_chunked(input: &[u8], piece: usize) -> (Vec<u8>, Option<bool>) {
    let mut decoder = ChunkedDecoder::new();
    let mut data = Vec::new();
    for part in input.chunks(piece) {
        let mut rest = part;
        while !rest.is_empty() && !decoder.is_done() {
            match decoder.decode(rest) {
                Ok((consumed, body)) => {
                    assert!(consumed <= rest.len(), "consumed more than given");
                    data.extend_from_slice(body);
                    if consumed == 0 {
                        break;
                    }
                    rest = &rest[consumed..];
                }
                Err(_) => return (data, Some(false)),
            }
        }
        if decoder.is_done() {
            return (data, Some(true));
        }
    }
    (data, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness's sequence-number help must let an input complete a handshake, or the
    /// fuzzer would never get past SYN-RECEIVED.
    #[test]
    fn the_handshake_seed_opens_a_connection_and_gets_an_answer() {
        let seed = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/frames/handshake-request-close"),
        )
        .unwrap();
        let mut harness = FrameHarness::new();
        let mut rest = &seed[..];
        while rest.len() >= 4 {
            let length = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            let mut frame = rest[4..4 + length].to_vec();
            harness.step(rest[0], rest[1], &mut frame);
            rest = &rest[4 + length..];
        }
        let tcp = harness.tcp.borrow();
        assert_eq!(tcp.counters().passive_opens, 1);
        assert!(tcp.counters().segments_out >= 3, "SYN-ACK, answer and FIN");
        assert_eq!(harness.interface.counters().frames_dropped, 0);
    }

    #[test]
    fn fixed_checksums_verify() {
        let seed =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/frames/echo-request"))
                .unwrap();
        let mut frame = seed[4..].to_vec();
        fix_checksums(&mut frame);
        assert_eq!(checksum(0, &frame[14..34]), 0);
        assert_eq!(checksum(0, &frame[34..]), 0);
    }
}
