//! Two ends of this stack stream to each other over one connection while the wire drops everything for a while: both must resume once it returns (issue 29, item 1).
//!
//! Both time out during the blackout and go back N. Before the fix, each then sent its ACKs
//! from the rewound SND.NXT, below what the other had already received, and each dropped the
//! other's ACKs unread (RFC 9293 section 3.10.7.4): neither SND.UNA moved until both gave up,
//! minutes later. The run is on the simulator's virtual clock, so it is the same every time.
//!
//! The simulator delivers a burst at once and every host answers at once, so an exchange
//! driven only by replies has one direction on the wire at a time, and a blackout would catch
//! only that one. The client therefore starts its stream when the server's first bytes
//! arrive, half a round trip out of step with it, and the blackout begins at each of several
//! steps in a row: at some of them both ends have data on the wire that the other will hold
//! but never hear acknowledged, the case that deadlocked.

mod simulator;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use simulator::{Impairments, Network, pattern_byte};
use unisock_kernel::net::tcp::{SocketError, SocketHandle, TcpLayer};
use unisock_kernel::time::Instant;

const PORT: u16 = 80;
/// Bytes each end sends.
const SIZE: u64 = 200 * 1024;
/// The blackout starts once each end has received this much: both directions are then in
/// full flow, with data and ACKs on the wire.
const BLACKOUT_AFTER: u64 = 64 * 1024;
const BLACKOUT: Duration = Duration::from_secs(3);
/// Both directions must have moved within this long of the wire's return.
const RESUME_WITHIN: Duration = Duration::from_secs(5);
/// A run that has not finished by then has failed (the blackout ends near 3.2 s).
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// The blackout begins this many simulator steps after both ends read `BLACKOUT_AFTER`, for
/// each value below: consecutive steps put the other direction's segments on the wire.
const BLACKOUT_OFFSETS: u32 = 4;

/// One end: what it has written and what it has read (and checked) of the other's stream.
struct End {
    host: usize,
    handle: Option<SocketHandle>,
    /// The stream this end writes; the other end reads it.
    stream: u64,
    sent: u64,
    received: u64,
}

impl End {
    /// Writes what the socket takes and reads what it holds, checking every byte.
    fn drive(&mut self, tcp: &mut TcpLayer, seed: u64) -> Result<(), String> {
        let Some(handle) = self.handle else {
            return Ok(());
        };
        let readiness = tcp
            .readiness(handle)
            .map_err(|error| format!("host {} readiness: {error:?}", self.host))?;
        if let Some(error) = readiness.error {
            return Err(format!("host {} failed: {error:?}", self.host));
        }
        if !readiness.connected {
            return Ok(());
        }
        // The client (stream 0) starts once the server's stream reaches it: see the top.
        while self.sent < SIZE && (self.stream == 1 || self.received > 0) {
            let length = (SIZE - self.sent).min(16 * 1024) as usize;
            let chunk: Vec<u8> = (self.sent..self.sent + length as u64)
                .map(|offset| pattern_byte(seed, self.stream, offset))
                .collect();
            match tcp.write(handle, &chunk) {
                Ok(written) => self.sent += written as u64,
                Err(SocketError::WouldBlock) => break,
                Err(error) => return Err(format!("host {} write: {error:?}", self.host)),
            }
        }
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match tcp.read(handle, &mut buffer) {
                Ok(0) => return Err(format!("host {}: end of stream", self.host)),
                Ok(count) => {
                    let peer_stream = 1 - self.stream;
                    for (index, byte) in buffer[..count].iter().enumerate() {
                        let offset = self.received + index as u64;
                        if *byte != pattern_byte(seed, peer_stream, offset) {
                            return Err(format!("host {}: wrong byte at {offset}", self.host));
                        }
                    }
                    self.received += count as u64;
                }
                Err(SocketError::WouldBlock) => return Ok(()),
                Err(error) => return Err(format!("host {} read: {error:?}", self.host)),
            }
        }
    }
}

/// What a run saw: when the wire came back, and how much each end had read by then and
/// `RESUME_WITHIN` later.
struct Blackout {
    returned_at: Instant,
    received_at_return: [u64; 2],
    received_after: [u64; 2],
    finished_at: Instant,
}

/// One run: the blackout begins `offset` steps after both ends have read `BLACKOUT_AFTER`.
fn run(seed: u64, offset: u32) -> Result<Blackout, String> {
    let wire = Impairments {
        delay: Duration::from_millis(10),
        ..Impairments::clean()
    };
    let mut network = Network::new(seed, wire, 2);
    let server_address = network.hosts[1].address;
    let listener = network.hosts[1]
        .tcp
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT), 16)
        .map_err(|error| format!("listen: {error:?}"))?;
    let client = network.hosts[0]
        .tcp
        .borrow_mut()
        .connect(SocketAddrV4::new(server_address, PORT), None)
        .map_err(|error| format!("connect: {error:?}"))?;
    let mut ends = [
        End {
            host: 0,
            handle: Some(client),
            stream: 0,
            sent: 0,
            received: 0,
        },
        End {
            host: 1,
            handle: None,
            stream: 1,
            sent: 0,
            received: 0,
        },
    ];
    let mut blackout_started: Option<Instant> = None;
    let mut steps_past_threshold: Option<u32> = None;
    let mut returned: Option<(Instant, [u64; 2])> = None;
    let mut received_after: Option<[u64; 2]> = None;
    loop {
        if ends[1].handle.is_none() {
            match network.hosts[1].tcp.borrow_mut().accept(listener) {
                Ok(handle) => ends[1].handle = Some(handle),
                Err(SocketError::WouldBlock) => {}
                Err(error) => return Err(format!("accept: {error:?}")),
            }
        }
        for end in &mut ends {
            let mut tcp = network.hosts[end.host].tcp.borrow_mut();
            end.drive(&mut tcp, seed)
                .map_err(|error| format!("at {:?}: {error}", network.now))?;
        }
        let received = [ends[0].received, ends[1].received];
        let now = network.now;
        match (blackout_started, returned) {
            (None, _) if received.iter().all(|&bytes| bytes >= BLACKOUT_AFTER) => {
                let steps = steps_past_threshold.get_or_insert(0);
                if *steps == offset {
                    network.impairments.loss = 1.0;
                    blackout_started = Some(now);
                }
                *steps += 1;
            }
            (Some(start), None) if now.saturating_since(start) >= BLACKOUT => {
                network.impairments.loss = 0.0;
                returned = Some((now, received));
            }
            (_, Some((at, _)))
                if received_after.is_none() && now.saturating_since(at) >= RESUME_WITHIN =>
            {
                received_after = Some(received);
            }
            _ => {}
        }
        if received.iter().all(|&bytes| bytes == SIZE) {
            let (returned_at, received_at_return) =
                returned.ok_or("the exchange ended before the blackout")?;
            return Ok(Blackout {
                returned_at,
                received_at_return,
                received_after: received_after.unwrap_or(received),
                finished_at: now,
            });
        }
        if !network.step() {
            return Err(format!("at {:?}: the network went quiet", network.now));
        }
        if network.now.saturating_since(Instant::ZERO) > TIME_LIMIT {
            return Err(format!(
                "did not finish in {TIME_LIMIT:?}: received {received:?} of {SIZE} each"
            ));
        }
    }
}

#[test]
fn both_directions_resume_after_a_blackout() {
    for seed in 1..=2 {
        for offset in 0..BLACKOUT_OFFSETS {
            let run = run(seed, offset)
                .unwrap_or_else(|error| panic!("seed {seed}, blackout offset {offset}: {error}"));
            for end in 0..2 {
                let done_before = run.received_at_return[end] == SIZE;
                assert!(
                    done_before || run.received_after[end] > run.received_at_return[end],
                    "seed {seed}, blackout offset {offset}: host {end} read nothing new within \
                     {RESUME_WITHIN:?} of the wire's return (stuck at {} of {SIZE} bytes; \
                     finished {:?} after the return)",
                    run.received_at_return[end],
                    run.finished_at.saturating_since(run.returned_at),
                );
            }
        }
    }
}
