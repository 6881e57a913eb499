//! Passive open: LISTEN, SYN-RECEIVED, ESTABLISHED (RFC 9293 sections 3.5 and 3.10.7.2), option negotiation (RFC 7323, RFC 2018) and SYN cookies.

use super::*;
use crate::net::tcp::{DropReason, SocketError, TcpState};

#[test]
fn three_way_handshake_then_accept() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    assert_eq!(
        harness.layer.accept(listener),
        Err(crate::net::tcp::SocketError::WouldBlock)
    );
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1400));
    let syn_ack = harness.expect();
    syn_ack.assert(SYN | ACK, syn_ack.sequence, 1001);
    assert_eq!(syn_ack.options.mss, Some(1460));
    assert_eq!(
        syn_ack.options.window_scale, None,
        "not offered by the peer"
    );
    assert_eq!(syn_ack.window, 65_535);
    assert_eq!(harness.layer.connection_count(), 1, "half-open counts");
    harness.inject(Inbound::new(ACK, 1001, syn_ack.sequence + 1));
    harness.expect_nothing();
    let connection = harness.layer.accept(listener).unwrap();
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    assert_eq!(
        harness.layer.peer_address(connection),
        Ok(SocketAddrV4::new(REMOTE, REMOTE_PORT))
    );
    assert_eq!(harness.layer.counters().passive_opens, 1);
}

#[test]
fn window_scale_timestamps_and_sack_are_negotiated() {
    let config = TcpConfig {
        receive_buffer_size: 200 * 1024,
        ..TcpConfig::default()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(
        Inbound::new(SYN, 1000, 0)
            .mss(1460)
            .window_scale(7)
            .sack_permitted()
            .timestamp(5000, 0),
    );
    let syn_ack = harness.expect();
    assert_eq!(
        syn_ack.options.window_scale,
        Some(2),
        "200 KiB needs a shift of 2"
    );
    assert!(syn_ack.options.sack_permitted);
    let (our_value, echo) = syn_ack.options.timestamp.unwrap();
    assert_eq!(echo, 5000, "TSecr echoes the SYN's TSval");
    assert_eq!(syn_ack.window, 65_535, "a SYN's window is never scaled");
    harness.inject(
        Inbound::new(ACK, 1001, syn_ack.sequence + 1)
            .window(100)
            .timestamp(5001, our_value),
    );
    let connection = harness.layer.accept(listener).unwrap();
    // The peer's window of 100 is scaled by 2^7: a 20 000-byte write goes out in full
    // segments of 1460 - 12 (timestamp option) bytes.
    harness
        .layer
        .set_option(connection, crate::net::tcp::SocketOption::NoDelay(true))
        .unwrap();
    let data = alloc::vec![7u8; 20_000];
    assert_eq!(harness.layer.write(connection, &data), Ok(20_000));
    harness.collect();
    let first = harness.expect();
    assert_eq!(first.payload.len(), 1448);
    assert_eq!(first.options.timestamp.map(|(_, echo)| echo), Some(5001));
    // The peer's window is 100 << 7 = 12 800 bytes: 8 full segments; the short rest waits
    // (sender silly window avoidance), though the initial window would allow 10 (RFC 6928).
    assert_eq!(harness.sent.len(), 7);
    let last = harness.sent.back().unwrap();
    assert_eq!(
        last.window,
        (200 * 1024 / 4) as u16,
        "our windows are scaled by 2^2"
    );
}

#[test]
fn bare_ack_to_listener_gets_reset() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(ACK, 1, 7777));
    harness.expect().assert(RST, 7777, 0);
}

/// RFC 9293 section 3.10.7.2: a listener drops a RST, and a segment with neither SYN nor
/// ACK, without an answer; each is counted, so that such probes show in /stats.
#[test]
fn a_reset_or_a_flagless_segment_to_a_listener_is_dropped_and_counted() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(RST, 1, 0));
    harness.inject(Inbound::new(0, 1, 0).payload(b"data"));
    harness.inject(Inbound::new(FIN | PSH, 1, 0));
    harness.expect_nothing();
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::IgnoredByListener),
        3
    );
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn retransmitted_syn_gets_the_same_syn_ack() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let first = harness.expect();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let second = harness.expect();
    assert_eq!(first, second);
}

#[test]
fn syn_ack_is_retransmitted_then_given_up() {
    let config = TcpConfig {
        max_syn_retransmissions: 2,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let syn_ack = harness.expect();
    harness.advance(Duration::from_millis(999));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), syn_ack, "after the initial RTO of 1 s");
    harness.advance(Duration::from_millis(1999));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), syn_ack, "backed off to 2 s");
    harness.advance(Duration::from_secs(4));
    harness.expect_nothing();
    assert_eq!(
        harness.layer.connection_count(),
        0,
        "half-open connection dropped after the retry limit"
    );
}

#[test]
fn reset_ends_a_half_open_connection_only_when_exact() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    harness.expect();
    harness.inject(Inbound::new(RST, 1005, 0));
    assert_eq!(harness.layer.connection_count(), 1);
    assert_eq!(
        harness.layer.counters().dropped(DropReason::InvalidReset),
        1
    );
    harness.inject(Inbound::new(RST, 1001, 0));
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn wrong_ack_in_syn_received_gets_reset() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let syn_ack = harness.expect();
    harness.inject(Inbound::new(ACK, 1001, syn_ack.sequence + 5));
    harness.expect().assert(RST, syn_ack.sequence + 5, 0);
    assert_eq!(
        harness.layer.connection_count(),
        1,
        "the half-open connection survives"
    );
}

#[test]
fn data_and_fin_on_the_handshake_ack_are_kept() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK | PSH | FIN, 1001, iss + 1).payload(b"GET /"));
    harness.expect().assert(ACK, iss + 1, 1007);
    let connection = harness.layer.accept(listener).unwrap();
    let mut buffer = [0u8; 16];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(5));
    assert_eq!(&buffer[..5], b"GET /");
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(0));
    assert_eq!(harness.layer.state(connection), Ok(TcpState::CloseWait));
}

#[test]
fn full_syn_queue_answers_with_cookies_that_validate() {
    let config = TcpConfig {
        syn_queue_size: 0,
        timestamps: true,
        window_scaling: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(
        Inbound::new(SYN, 1000, 0)
            .mss(1400)
            .window_scale(5)
            .timestamp(99, 0),
    );
    let syn_ack = harness.expect();
    assert_eq!(
        harness.layer.connection_count(),
        0,
        "a cookie keeps no state"
    );
    assert_eq!(harness.layer.counters().syn_cookies_sent, 1);
    assert_eq!(syn_ack.options.mss, Some(1460));
    let (value, _) = syn_ack.options.timestamp.unwrap();
    // A forged ACK (wrong cookie) is refused.
    harness.inject(Inbound::new(ACK, 1001, syn_ack.sequence + 2).timestamp(100, value));
    harness.expect().assert(RST, syn_ack.sequence + 2, 0);
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::InvalidSynCookie),
        1
    );
    // The right one establishes, with the window scale remembered through the timestamp.
    harness.inject(
        Inbound::new(ACK, 1001, syn_ack.sequence + 1)
            .window(10)
            .timestamp(100, value),
    );
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().syn_cookies_validated, 1);
    let connection = harness.layer.accept(listener).unwrap();
    harness
        .layer
        .set_option(connection, crate::net::tcp::SocketOption::NoDelay(true))
        .unwrap();
    harness.layer.write(connection, &[1u8; 300]).unwrap();
    harness.collect();
    // 10 << 5 = 320 bytes of window: the 300 bytes fit, and the MSS came from the cookie
    // table (1360 <= 1400) minus the 12-byte timestamp option.
    let data = harness.expect();
    assert_eq!(data.payload.len(), 300);
}

#[test]
fn connection_limit_drops_syns_and_counts() {
    let config = TcpConfig {
        max_connections: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    harness.expect();
    harness.inject(Inbound::new(SYN, 5000, 0).ports(40_001, SERVER_PORT));
    harness.expect_nothing();
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::ConnectionLimit),
        1
    );
}

#[test]
fn full_accept_queue_drops_syns() {
    let mut harness = Harness::plain();
    harness
        .layer
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 1)
        .unwrap();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    harness.inject(Inbound::new(SYN, 1000, 0).ports(40_001, SERVER_PORT));
    harness.expect_nothing();
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::AcceptQueueFull),
        1
    );
}

#[test]
fn cookies_without_timestamps_drop_window_scaling() {
    let config = TcpConfig {
        syn_queue_size: 0,
        window_scaling: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(536).window_scale(4));
    let syn_ack = harness.expect();
    assert_eq!(syn_ack.options.window_scale, None, "nowhere to remember it");
    harness.inject(Inbound::new(ACK, 1001, syn_ack.sequence + 1).window(2000));
    let connection = harness.layer.accept(listener).unwrap();
    harness
        .layer
        .set_option(connection, crate::net::tcp::SocketOption::NoDelay(true))
        .unwrap();
    harness.layer.write(connection, &[1u8; 3000]).unwrap();
    harness.collect();
    // MSS 536 from the cookie; the window of 2000 is unscaled.
    assert_eq!(harness.expect().payload.len(), 536);
    assert_eq!(harness.expect().payload.len(), 536);
    assert_eq!(harness.expect().payload.len(), 536);
    // The 392-byte rest of the window is held (sender SWS avoidance: less than an MSS and
    // less than half the largest window).
    harness.expect_nothing();
    // The peer acknowledges everything but offers only 392 bytes: nothing is in flight, so
    // only the override timeout can release data.
    harness.inject(Inbound::new(ACK, 1001, syn_ack.sequence + 1 + 3 * 536).window(392));
    harness.expect_nothing();
    harness.advance(Duration::from_secs(1));
    assert_eq!(harness.expect().payload.len(), 392);
}

#[test]
fn a_restarted_peer_replaces_its_half_open_connection() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let iss = harness.expect().sequence;
    // The peer restarts and sends a new SYN from the same port: a challenge ACK.
    harness.inject(Inbound::new(SYN, 90_000, 0));
    harness.expect().assert(ACK, iss + 1, 1001);
    // The peer answers with the RST that RFC 5961 asks for; then its SYN gets through.
    harness.inject(Inbound::new(RST, 1001, 0));
    assert_eq!(harness.layer.connection_count(), 0);
    harness.inject(Inbound::new(SYN, 90_000, 0));
    let syn_ack = harness.expect();
    syn_ack.assert(SYN | ACK, syn_ack.sequence, 90_001);
}

/// Issue 10, defect 4: a bare ACK is checked as a SYN cookie only shortly after the
/// listener's SYN queue overflowed. Before, every bare ACK was, and with 24 bits of MAC a
/// blind forgery got through once in 2^24 tries, with no flood at all; here the forgery is
/// built with the layer's own key, so the old code accepted it every time.
#[test]
fn cookies_are_not_checked_unless_the_syn_queue_overflowed_recently() {
    let config = TcpConfig {
        syn_queue_size: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let key = crate::net::tcp::isn::SipKey::new([42; 16]);
    let local = SocketAddrV4::new(LOCAL, SERVER_PORT);
    let forge = |harness: &mut Harness, port: u16| {
        let remote = SocketAddrV4::new(REMOTE, port);
        let (cookie, _) = crate::net::tcp::syn_cookie::make_cookie(
            &key,
            harness.now,
            local,
            remote,
            SeqNum(7000),
            1460,
        );
        harness.inject(
            Inbound::new(ACK, 7001, cookie.0.wrapping_add(1))
                .ports(port, SERVER_PORT)
                .payload(b"GET /admin"),
        );
    };
    forge(&mut harness, 41_000);
    assert_eq!(harness.expect().flags, RST, "a RST, as for any stray ACK");
    assert_eq!(
        harness.layer.connection_count(),
        0,
        "no connection from a guess"
    );
    assert_eq!(harness.layer.accept(listener), Err(SocketError::WouldBlock));
    assert_eq!(harness.layer.counters().syn_cookies_validated, 0);

    // The SYN queue overflows: cookies are answered, and accepted for their lifetime.
    harness.inject(Inbound::new(SYN, 1000, 0).ports(42_000, SERVER_PORT));
    harness.inject(Inbound::new(SYN, 2000, 0).ports(42_001, SERVER_PORT));
    assert_eq!(harness.layer.counters().syn_cookies_sent, 1);
    harness.sent.clear();
    harness.now = harness.now + Duration::from_secs(60);
    forge(&mut harness, 41_001);
    assert_eq!(harness.layer.counters().syn_cookies_validated, 1);
    assert!(harness.layer.accept(listener).is_ok());
    harness.sent.clear();
    // Long after the last overflow, a bare ACK is no cookie any more.
    harness.now = harness.now + Duration::from_secs(130);
    forge(&mut harness, 41_002);
    assert_eq!(harness.layer.counters().syn_cookies_validated, 1);
    assert_eq!(harness.layer.accept(listener), Err(SocketError::WouldBlock));
}

/// Issue 10, defect 5 (RFC 7323 section 5.4: TSval monotonic): the low bits of a cookie
/// SYN-ACK's TSval carry the peer's options; the value must stay at or below the clock, or
/// the segments that follow carry a smaller TSval and fail the peer's PAWS check. Before,
/// it ran up to 31 ms ahead.
#[test]
fn a_cookie_syn_ack_timestamp_never_runs_ahead_of_the_clock() {
    let config = TcpConfig {
        syn_queue_size: 0,
        timestamps: true,
        sack_permitted: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    for port in 43_000..43_016 {
        // SACK without window scaling: cookie bits 0x1f, the largest.
        harness.inject(
            Inbound::new(SYN, 1000, 0)
                .ports(port, SERVER_PORT)
                .sack_permitted()
                .timestamp(5, 0),
        );
        let syn_ack = harness.expect();
        let (cookie_value, _) = syn_ack.options.timestamp.unwrap();
        harness.inject(
            Inbound::new(ACK, 1001, syn_ack.sequence + 1)
                .ports(port, SERVER_PORT)
                .timestamp(6, cookie_value),
        );
        let connection = harness.layer.accept(listener).unwrap();
        harness.layer.write(connection, b"x").unwrap();
        harness.collect();
        let (data_value, _) = harness.expect().options.timestamp.unwrap();
        assert!(
            SeqNum(data_value).after_or_equal(SeqNum(cookie_value)),
            "port {port}: TSval went back from {cookie_value} to {data_value}"
        );
    }
}
