//! Active open: SYN-SENT (RFC 9293 section 3.10.7.3), SYN retransmission and its limit, refusal, simultaneous open.

use super::*;
use crate::net::tcp::{SocketError, TcpState, TupleUse};

#[test]
fn connect_sends_syn_with_options_and_completes() {
    let mut harness = Harness::new(TcpConfig::default());
    let handle = harness
        .layer
        .connect(SocketAddrV4::new(REMOTE, SERVER_PORT), None)
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    syn.assert(SYN, syn.sequence, 0);
    assert_eq!(syn.source.ip(), &LOCAL);
    assert!(syn.source.port() >= 49_152, "ephemeral port");
    assert_eq!(syn.options.mss, Some(1460));
    assert!(syn.options.window_scale.is_some());
    assert!(syn.options.sack_permitted);
    assert!(syn.options.timestamp.is_some());
    assert_eq!(harness.layer.state(handle), Ok(TcpState::SynSent));
    let port = syn.source.port();
    assert_eq!(
        harness
            .layer
            .tuple_use(syn.source, SocketAddrV4::new(REMOTE, SERVER_PORT)),
        TupleUse::Connected
    );
    harness.inject(
        Inbound::new(SYN | ACK, 9000, syn.sequence + 1)
            .ports(SERVER_PORT, port)
            .mss(1000),
    );
    harness.expect().assert(ACK, syn.sequence + 1, 9001);
    assert_eq!(harness.layer.state(handle), Ok(TcpState::Established));
    // The peer offered no options: plain segments, MSS 1000.
    harness
        .layer
        .set_option(handle, crate::net::tcp::SocketOption::NoDelay(true))
        .unwrap();
    harness.layer.write(handle, &[1u8; 1500]).unwrap();
    harness.collect();
    let first = harness.expect();
    assert_eq!(first.payload.len(), 1000);
    assert_eq!(first.options.timestamp, None);
}

#[test]
fn syn_is_retransmitted_with_backoff_then_times_out() {
    let config = TcpConfig {
        max_syn_retransmissions: 2,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let handle = harness
        .layer
        .connect(SocketAddrV4::new(REMOTE, SERVER_PORT), None)
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    harness.advance(Duration::from_millis(1000));
    assert_eq!(harness.expect(), syn);
    harness.advance(Duration::from_millis(1999));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), syn);
    harness.advance(Duration::from_millis(4000));
    harness.expect_nothing();
    assert_eq!(harness.layer.state(handle), Ok(TcpState::Closed));
    let mut buffer = [0u8; 4];
    assert_eq!(
        harness.layer.read(handle, &mut buffer),
        Err(SocketError::TimedOut)
    );
    assert_eq!(harness.layer.counters().connections_timed_out, 1);
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn reset_to_syn_refuses_the_connection() {
    let mut harness = Harness::plain();
    let handle = harness
        .layer
        .connect(
            SocketAddrV4::new(REMOTE, SERVER_PORT),
            Some(SocketAddrV4::new(LOCAL, 5000)),
        )
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    // A RST whose ACK does not acknowledge our SYN is ignored (RFC 9293 section 3.10.7.3).
    harness.inject(to_client(RST | ACK, 0, syn.sequence + 7));
    harness.expect_nothing();
    assert_eq!(harness.layer.state(handle), Ok(TcpState::SynSent));
    harness.inject(to_client(RST | ACK, 0, syn.sequence + 1));
    assert_eq!(harness.layer.state(handle), Ok(TcpState::Closed));
    assert_eq!(
        harness.layer.write(handle, b"x"),
        Err(SocketError::ConnectionRefused)
    );
}

#[test]
fn bad_ack_in_syn_sent_gets_reset() {
    let mut harness = Harness::plain();
    harness
        .layer
        .connect(
            SocketAddrV4::new(REMOTE, SERVER_PORT),
            Some(SocketAddrV4::new(LOCAL, 5000)),
        )
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    harness.inject(to_client(SYN | ACK, 500, syn.sequence + 9));
    harness.expect().assert(RST, syn.sequence + 9, 0);
}

#[test]
fn simultaneous_open() {
    // RFC 9293 figure 8: both sides send SYN; each answers SYN,ACK; each ACK completes.
    let mut harness = Harness::plain();
    let handle = harness
        .layer
        .connect(
            SocketAddrV4::new(REMOTE, SERVER_PORT),
            Some(SocketAddrV4::new(LOCAL, 5000)),
        )
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    harness.inject(to_client(SYN, 300, 0));
    harness.expect().assert(SYN | ACK, syn.sequence, 301);
    assert_eq!(harness.layer.state(handle), Ok(TcpState::SynReceived));
    // The peer's own SYN,ACK: its SYN is old news, so we answer with an ACK.
    harness.inject(to_client(SYN | ACK, 300, syn.sequence + 1));
    harness.expect().assert(ACK, syn.sequence + 1, 301);
    harness.inject(to_client(ACK, 301, syn.sequence + 1));
    assert_eq!(harness.layer.state(handle), Ok(TcpState::Established));
}

#[test]
fn explicit_port_in_use_is_refused() {
    let mut harness = Harness::plain();
    harness.active_open(100);
    let again = harness.layer.connect(
        SocketAddrV4::new(REMOTE, SERVER_PORT),
        Some(SocketAddrV4::new(LOCAL, 5000)),
    );
    assert_eq!(again, Err(SocketError::AddressInUse));
}

#[test]
fn hard_icmp_error_refuses_a_connection_in_syn_sent() {
    let mut harness = Harness::plain();
    let handle = harness
        .layer
        .connect(
            SocketAddrV4::new(REMOTE, SERVER_PORT),
            Some(SocketAddrV4::new(LOCAL, 5000)),
        )
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    let error = |sequence: u32, code: u8| crate::net::tcp::IcmpError {
        kind: crate::net::tcp::IcmpErrorKind::DestinationUnreachable { code },
        local: SocketAddrV4::new(LOCAL, 5000),
        remote: SocketAddrV4::new(REMOTE, SERVER_PORT),
        sequence,
    };
    // Network unreachable is soft; a quoted sequence outside the flight is ignored.
    harness
        .layer
        .on_icmp_error(harness.now, error(syn.sequence, 0));
    harness
        .layer
        .on_icmp_error(harness.now, error(syn.sequence + 100, 3));
    assert_eq!(harness.layer.state(handle), Ok(TcpState::SynSent));
    harness
        .layer
        .on_icmp_error(harness.now, error(syn.sequence, 3));
    assert_eq!(harness.layer.state(handle), Ok(TcpState::Closed));
    let mut buffer = [0u8; 1];
    assert_eq!(
        harness.layer.read(handle, &mut buffer),
        Err(SocketError::ConnectionRefused)
    );
}

#[test]
fn fragmentation_needed_lowers_the_mss() {
    let mut harness = Harness::plain();
    let (iss, handle) = harness.active_open(100);
    harness
        .layer
        .set_option(handle, crate::net::tcp::SocketOption::NoDelay(true))
        .unwrap();
    harness.layer.write(handle, &[5u8; 1460]).unwrap();
    harness.collect();
    assert_eq!(harness.expect().payload.len(), 1460);
    harness.layer.on_icmp_error(
        harness.now,
        crate::net::tcp::IcmpError {
            kind: crate::net::tcp::IcmpErrorKind::FragmentationNeeded { next_hop_mtu: 1000 },
            local: SocketAddrV4::new(LOCAL, 5000),
            remote: SocketAddrV4::new(REMOTE, SERVER_PORT),
            sequence: iss + 1,
        },
    );
    harness.collect();
    let resent = harness.expect();
    resent.assert(ACK, iss + 1, 101);
    assert_eq!(resent.payload.len(), 960);
}

#[test]
fn soft_icmp_errors_are_reported_when_the_attempt_times_out() {
    let config = TcpConfig {
        max_syn_retransmissions: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let handle = harness
        .layer
        .connect(
            SocketAddrV4::new(REMOTE, SERVER_PORT),
            Some(SocketAddrV4::new(LOCAL, 5000)),
        )
        .unwrap();
    harness.collect();
    let syn = harness.expect();
    harness.layer.on_icmp_error(
        harness.now,
        crate::net::tcp::IcmpError {
            kind: crate::net::tcp::IcmpErrorKind::TimeExceeded,
            local: SocketAddrV4::new(LOCAL, 5000),
            remote: SocketAddrV4::new(REMOTE, SERVER_PORT),
            sequence: syn.sequence,
        },
    );
    assert_eq!(
        harness.layer.state(handle),
        Ok(TcpState::SynSent),
        "soft: keep trying"
    );
    harness.advance(Duration::from_secs(3));
    let mut buffer = [0u8; 1];
    assert_eq!(
        harness.layer.read(handle, &mut buffer),
        Err(SocketError::Unreachable)
    );
}

/// Issue 10, defect 10 (RFC 1122 section 4.2.3.9): a soft ICMP error is reported only if the
/// connection gives up while it is still the latest news; progress (a new ACK) clears it.
/// Before, an error from long ago replaced `TimedOut` for ever.
#[test]
fn progress_clears_a_soft_icmp_error() {
    let config = TcpConfig {
        max_retransmissions: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, handle) = harness.active_open(7000);
    harness.layer.write(handle, b"one").unwrap();
    harness.collect();
    harness.expect();
    harness.layer.on_icmp_error(
        harness.now,
        crate::net::tcp::IcmpError {
            kind: crate::net::tcp::IcmpErrorKind::TimeExceeded,
            local: SocketAddrV4::new(LOCAL, 5000),
            remote: SocketAddrV4::new(REMOTE, SERVER_PORT),
            sequence: iss + 1,
        },
    );
    harness.inject(to_client(ACK, 7001, iss + 4));
    harness.layer.write(handle, b"two").unwrap();
    harness.advance(Duration::from_secs(10));
    let mut buffer = [0u8; 1];
    assert_eq!(
        harness.layer.read(handle, &mut buffer),
        Err(SocketError::TimedOut)
    );
}
