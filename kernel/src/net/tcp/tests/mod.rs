//! Segment scripts in the spirit of packetdrill: inject crafted segments into a layer and assert the exact segments it emits.

mod active_open;
mod close;
mod coalescing;
mod congestion;
mod data;
mod exhaustion;
mod loopback;
mod orphans;
mod passive_open;
mod robustness;
mod security;
mod sockets;
mod timers;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use super::segment::{self, SegmentHeader, SegmentOptions};
use super::seq::SeqNum;
use super::{CoreId, SocketHandle, TcpConfig, TcpLayer};
use crate::time::Instant;

pub(crate) use super::segment::{ACK, FIN, PSH, RST, SYN};

pub(crate) const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub(crate) const REMOTE_PORT: u16 = 40_000;
pub(crate) const SERVER_PORT: u16 = 80;

/// A segment for the layer to receive, built field by field.
#[derive(Clone, Debug)]
pub(crate) struct Inbound {
    pub(crate) source_port: u16,
    pub(crate) destination_port: u16,
    pub(crate) sequence: u32,
    pub(crate) acknowledgment: u32,
    pub(crate) flags: u8,
    pub(crate) window: u16,
    pub(crate) options: SegmentOptions,
    pub(crate) payload: Vec<u8>,
}

impl Inbound {
    /// From the remote peer's port to the server port, window 65535, no options.
    pub(crate) fn new(flags: u8, sequence: u32, acknowledgment: u32) -> Self {
        Inbound {
            source_port: REMOTE_PORT,
            destination_port: SERVER_PORT,
            sequence,
            acknowledgment,
            flags,
            window: 65_535,
            options: SegmentOptions::default(),
            payload: Vec::new(),
        }
    }

    pub(crate) fn ports(mut self, source: u16, destination: u16) -> Self {
        self.source_port = source;
        self.destination_port = destination;
        self
    }

    pub(crate) fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }

    pub(crate) fn mss(mut self, mss: u16) -> Self {
        self.options.mss = Some(mss);
        self
    }

    pub(crate) fn window_scale(mut self, shift: u8) -> Self {
        self.options.window_scale = Some(shift);
        self
    }

    pub(crate) fn timestamp(mut self, value: u32, echo: u32) -> Self {
        self.options.timestamp = Some((value, echo));
        self
    }

    pub(crate) fn sack_permitted(mut self) -> Self {
        self.options.sack_permitted = true;
        self
    }

    pub(crate) fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        let header = SegmentHeader {
            source: REMOTE,
            destination: LOCAL,
            source_port: self.source_port,
            destination_port: self.destination_port,
            sequence: SeqNum(self.sequence),
            acknowledgment: SeqNum(self.acknowledgment),
            flags: self.flags,
            window: self.window,
            options: self.options,
        };
        let mut out = Vec::new();
        segment::write(&mut out, &header, (&self.payload, &[]));
        out
    }
}

/// A segment the layer emitted, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub(crate) source: SocketAddrV4,
    pub(crate) destination: SocketAddrV4,
    pub(crate) sequence: u32,
    pub(crate) acknowledgment: u32,
    pub(crate) flags: u8,
    pub(crate) window: u16,
    pub(crate) options: SegmentOptions,
    pub(crate) payload: Vec<u8>,
}

impl Outbound {
    /// Asserts flags, sequence and acknowledgment numbers at once (0 ack when no ACK flag).
    #[track_caller]
    pub(crate) fn assert(&self, flags: u8, sequence: u32, acknowledgment: u32) -> &Self {
        assert_eq!(
            (flag_names(self.flags), self.sequence, self.acknowledgment),
            (flag_names(flags), sequence, acknowledgment),
            "segment {self:?}"
        );
        self
    }
}

pub(crate) fn flag_names(flags: u8) -> alloc::string::String {
    let mut names = alloc::string::String::new();
    for (bit, name) in [(SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, ".")] {
        if flags & bit != 0 {
            names.push_str(name);
        }
    }
    names
}

/// A layer, a clock and the segments it sent, oldest first.
pub(crate) struct Harness {
    pub(crate) layer: TcpLayer,
    pub(crate) now: Instant,
    pub(crate) sent: VecDeque<Outbound>,
}

/// A configuration without options, so segments are easy to write by hand; tests that need
/// options turn them on.
pub(crate) fn plain_config() -> TcpConfig {
    TcpConfig {
        window_scaling: false,
        timestamps: false,
        sack_permitted: false,
        receive_buffer_size: 65_535,
        ..TcpConfig::default()
    }
}

impl Harness {
    pub(crate) fn new(config: TcpConfig) -> Self {
        let mut layer = TcpLayer::new(config, CoreId(0), [42; 16]);
        let now = Instant::from_millis(1_000);
        layer.advance_time(now);
        layer.set_source_address(LOCAL);
        Harness {
            layer,
            now,
            sent: VecDeque::new(),
        }
    }

    pub(crate) fn plain() -> Self {
        Self::new(plain_config())
    }

    pub(crate) fn listen(&mut self) -> SocketHandle {
        self.layer
            .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 16)
            .unwrap()
    }

    /// Collects what the layer queued, checking every checksum.
    pub(crate) fn collect(&mut self) {
        let sent = &mut self.sent;
        self.layer.drain_output(|out| {
            assert_eq!(
                crate::net::checksum::tcp(out.source, out.destination, out.tcp),
                0,
                "bad checksum"
            );
            let parsed = segment::parse(out.tcp).expect("the layer emitted a malformed segment");
            sent.push_back(Outbound {
                source: SocketAddrV4::new(out.source, parsed.source_port),
                destination: SocketAddrV4::new(out.destination, parsed.destination_port),
                sequence: parsed.sequence.0,
                acknowledgment: parsed.acknowledgment.0,
                flags: parsed.flags,
                window: parsed.window,
                options: parsed.options,
                payload: parsed.payload.to_vec(),
            });
        });
    }

    pub(crate) fn inject(&mut self, segment: Inbound) {
        let bytes = segment.bytes();
        self.layer.on_segment(self.now, REMOTE, LOCAL, &bytes);
        self.collect();
    }

    /// Moves the clock forward and fires due timers, in 1 ms steps so that every timer
    /// fires at its own time.
    pub(crate) fn advance(&mut self, duration: Duration) {
        let end = self.now + duration;
        while let Some(deadline) = self
            .layer
            .next_deadline()
            .filter(|&deadline| deadline <= end)
        {
            self.now = self.now.max(deadline);
            self.layer.on_timers(self.now);
            self.collect();
            assert!(
                self.layer
                    .next_deadline()
                    .is_none_or(|next| next > self.now),
                "timers made no progress"
            );
        }
        self.now = end;
        self.layer.on_timers(self.now);
        self.collect();
    }

    #[track_caller]
    pub(crate) fn expect(&mut self) -> Outbound {
        self.sent
            .pop_front()
            .expect("expected a segment, the layer sent none")
    }

    #[track_caller]
    pub(crate) fn expect_nothing(&mut self) {
        assert!(
            self.sent.is_empty(),
            "expected no segment, got {:?}",
            self.sent
        );
    }

    /// A passive open (the remote's ISN 1000) whose handshake ACK closes the peer's window,
    /// with "waiting" written and held behind it; returns (our ISN, accepted handle).
    pub(crate) fn accept_behind_closed_window(&mut self) -> (u32, SocketHandle) {
        let listener = self.listen();
        self.inject(Inbound::new(SYN, 1000, 0));
        let iss = self.expect().sequence;
        self.inject(Inbound::new(ACK, 1001, iss + 1).window(0));
        let connection = self.layer.accept(listener).unwrap();
        self.layer.write(connection, b"waiting").unwrap();
        self.collect();
        self.expect_nothing();
        (iss, connection)
    }

    /// Runs a passive handshake with the remote's ISN `peer_isn`; returns (our ISN, accepted handle).
    pub(crate) fn passive_open(&mut self, peer_isn: u32) -> (u32, SocketHandle) {
        let listener = self.listen();
        self.passive_open_on_existing(listener, peer_isn)
    }

    /// Completes a passive handshake on an existing listener.
    pub(crate) fn passive_open_on_existing(
        &mut self,
        listener: SocketHandle,
        peer_isn: u32,
    ) -> (u32, SocketHandle) {
        self.inject(Inbound::new(SYN, peer_isn, 0).mss(1460));
        let iss = self.expect().sequence;
        self.inject(Inbound::new(ACK, peer_isn + 1, iss + 1));
        self.expect_nothing();
        (iss, self.layer.accept(listener).unwrap())
    }

    /// Runs an active handshake to REMOTE:80 from local port 5000 with the peer's ISN
    /// `peer_isn`; returns (our ISN, handle).
    pub(crate) fn active_open(&mut self, peer_isn: u32) -> (u32, SocketHandle) {
        let handle = self
            .layer
            .connect(
                SocketAddrV4::new(REMOTE, SERVER_PORT),
                Some(SocketAddrV4::new(LOCAL, 5000)),
            )
            .unwrap();
        self.collect();
        let syn = self.expect();
        syn.assert(SYN, syn.sequence, 0);
        let iss = syn.sequence;
        self.inject(
            Inbound::new(SYN | ACK, peer_isn, iss + 1)
                .ports(SERVER_PORT, 5000)
                .mss(1460),
        );
        self.expect().assert(ACK, iss + 1, peer_isn + 1);
        (iss, handle)
    }
}

/// An inbound segment on the active connection of `Harness::active_open`.
pub(crate) fn to_client(flags: u8, sequence: u32, acknowledgment: u32) -> Inbound {
    Inbound::new(flags, sequence, acknowledgment).ports(SERVER_PORT, 5000)
}
