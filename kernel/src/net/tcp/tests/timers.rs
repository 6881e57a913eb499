//! Timers: retransmission timeout with back-off and retry limit (RFC 6298), zero-window probes (RFC 9293 section 3.8.6.1), keepalive (section 3.8.4).

use super::*;
use crate::net::tcp::{SocketError, SocketOption, TcpState};

#[test]
fn unacknowledged_data_is_retransmitted_with_backoff() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"hello").unwrap();
    harness.collect();
    let first = harness.expect();
    first.assert(ACK | PSH, iss + 1, 1001);
    // No RTT sample yet (the passive handshake is not timed): RTO is 1 s.
    harness.advance(Duration::from_millis(999));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), first);
    harness.advance(Duration::from_millis(1999));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), first);
    assert_eq!(harness.layer.counters().retransmits, 2);
    assert_eq!(harness.layer.counters().timeouts, 2);
    // An ACK ends it; the RTO timer stops.
    harness.inject(Inbound::new(ACK, 1001, iss + 6));
    harness.advance(Duration::from_secs(10));
    harness.expect_nothing();
}

#[test]
fn rtt_sample_sets_the_rto() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"a").unwrap();
    harness.collect();
    harness.expect();
    harness.advance(Duration::from_millis(100));
    harness.inject(Inbound::new(ACK, 1001, iss + 2));
    // SRTT 100 ms, RTTVAR 50 ms: RTO = 300 ms (RFC 6298 section 2.2).
    harness.layer.write(connection, b"b").unwrap();
    harness.collect();
    let second = harness.expect();
    harness.advance(Duration::from_millis(299));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), second);
    let mut sockets = alloc::vec::Vec::new();
    harness.layer.list_sockets(&mut sockets);
    let line = sockets
        .iter()
        .find(|info| info.state == TcpState::Established)
        .unwrap();
    assert_eq!(line.smoothed_rtt, Some(Duration::from_millis(100)));
    assert_eq!(line.retransmissions, 1);
}

#[test]
fn retry_limit_aborts_with_a_reset() {
    let config = TcpConfig {
        max_retransmissions: 3,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"hello").unwrap();
    harness.advance(Duration::from_secs(1 + 2 + 4));
    assert_eq!(
        harness.sent.len(),
        4,
        "the original and three retransmissions"
    );
    harness.sent.clear();
    harness.advance(Duration::from_secs(8));
    harness.expect().assert(RST | ACK, iss + 6, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Closed));
    assert_eq!(
        harness.layer.write(connection, b"x"),
        Err(SocketError::TimedOut)
    );
    assert_eq!(harness.layer.counters().connections_timed_out, 1);
}

#[test]
fn zero_window_is_probed_until_it_opens() {
    let mut harness = Harness::plain();
    let (iss, _connection) = harness.accept_behind_closed_window();
    harness.advance(Duration::from_secs(1));
    harness.expect().assert(ACK, iss, 1001);
    harness.advance(Duration::from_secs(2));
    harness.expect().assert(ACK, iss, 1001);
    assert_eq!(harness.layer.counters().zero_window_probes, 2);
    // The peer's answer opens the window: the data goes.
    harness.inject(Inbound::new(ACK, 1001, iss + 1).window(1000));
    let data = harness.expect();
    data.assert(ACK | PSH, iss + 1, 1001);
    assert_eq!(data.payload, b"waiting");
}

#[test]
fn keepalive_probes_an_idle_peer_then_gives_up() {
    let config = TcpConfig {
        keepalive_interval: Duration::from_secs(10),
        keepalive_probes: 2,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .set_option(
            connection,
            SocketOption::KeepAlive(Some(Duration::from_secs(60))),
        )
        .unwrap();
    harness.advance(Duration::from_secs(59));
    harness.expect_nothing();
    harness.advance(Duration::from_secs(1));
    harness.expect().assert(ACK, iss, 1001);
    // An answer resets the idle clock.
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    harness.advance(Duration::from_secs(59));
    harness.expect_nothing();
    harness.advance(Duration::from_secs(1));
    harness.expect().assert(ACK, iss, 1001);
    harness.advance(Duration::from_secs(10));
    harness.expect().assert(ACK, iss, 1001);
    harness.advance(Duration::from_secs(10));
    harness.expect().assert(RST | ACK, iss + 1, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Closed));
    let mut buffer = [0u8; 1];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::TimedOut)
    );
    assert_eq!(harness.layer.counters().keepalive_probes, 3);
}

#[test]
fn keepalive_can_be_on_by_default() {
    let config = TcpConfig {
        keepalive: true,
        keepalive_idle: Duration::from_secs(10),
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    assert_eq!(
        harness.layer.options(connection).unwrap().keepalive,
        Some(Duration::from_secs(10))
    );
    harness.advance(Duration::from_secs(10));
    harness.expect().assert(ACK, iss, 1001);
}

#[test]
fn lost_syn_leaves_a_three_second_rto() {
    // RFC 6298 section 5.7.
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
    harness.advance(Duration::from_secs(1));
    assert_eq!(harness.expect(), syn);
    harness.inject(to_client(SYN | ACK, 100, syn.sequence + 1).mss(1460));
    harness.expect().assert(ACK, syn.sequence + 1, 101);
    harness.layer.write(handle, b"data").unwrap();
    harness.collect();
    let data = harness.expect();
    harness.advance(Duration::from_millis(2999));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    assert_eq!(harness.expect(), data);
}

/// A connection whose peer keeps a zero window (and may drop or answer probes) set up with
/// `max_retransmissions: 3` so that a wrong give-up shows quickly; returns (harness, our ISN,
/// handle) with "waiting" queued behind the closed window.
fn zero_window_connection() -> (Harness, u32, crate::net::tcp::SocketHandle) {
    let config = TcpConfig {
        max_retransmissions: 3,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.accept_behind_closed_window();
    (harness, iss, connection)
}

/// Issue 10, defect 2 (RFC 9293 section 3.8.6.1, RFC 1122 section 4.2.2.17): while the
/// receiver acknowledges the probes, the connection MUST stay open, however long its window
/// stays closed. Before the fix it closed with `TimedOut` after `max_retransmissions` probes.
#[test]
fn acknowledged_zero_window_probes_keep_the_connection_open() {
    let (mut harness, iss, connection) = zero_window_connection();
    // Twenty minutes, every probe answered at once with the window still closed.
    let mut probes = 0;
    for _ in 0..20 * 60 {
        harness.advance(Duration::from_secs(1));
        while let Some(probe) = harness.sent.pop_front() {
            probe.assert(ACK, iss, 1001);
            probes += 1;
            harness.inject(Inbound::new(ACK, 1001, iss + 1).window(0));
        }
        assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    }
    assert!(probes > 15, "{probes} probes");
    // Probes back off to one a minute (the RTO's upper bound, RFC 6298 section 2.5) and stay
    // there although every one is answered.
    harness.advance(Duration::from_secs(60));
    harness.expect().assert(ACK, iss, 1001);
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().connections_timed_out, 0);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).window(1000));
    let data = harness.expect();
    assert_eq!(data.payload, b"waiting");
}

/// Issue 10, defects 2 and 10: a receiver that stops answering the probes is given up on,
/// with a RST (the peer may still hold the connection).
#[test]
fn unanswered_zero_window_probes_end_with_a_reset() {
    let (mut harness, iss, connection) = zero_window_connection();
    harness.advance(Duration::from_secs(1 + 2 + 4));
    assert_eq!(harness.sent.len(), 3, "three probes");
    harness.sent.clear();
    harness.advance(Duration::from_secs(8));
    harness.expect().assert(RST | ACK, iss + 1, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Closed));
    let mut buffer = [0u8; 1];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::TimedOut)
    );
    assert_eq!(harness.layer.counters().connections_timed_out, 1);
}

/// Issue 10, defect 2, second path: the window closes while data is in flight. The
/// retransmission timer must hand over to the persist timer instead of backing off beside it
/// and resetting the connection after `max_retransmissions` timeouts.
#[test]
fn a_window_that_closes_with_data_in_flight_is_probed_not_timed_out() {
    let config = TcpConfig {
        max_retransmissions: 3,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, &[7u8; 3000]).unwrap();
    harness.collect();
    assert_eq!(
        harness.sent.len(),
        2,
        "two full segments; Nagle holds the tail"
    );
    harness.sent.clear();
    // The peer takes the first segment and closes its window on the rest.
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 1460).window(0));
    for _ in 0..20 * 60 {
        harness.advance(Duration::from_secs(1));
        while let Some(segment) = harness.sent.pop_front() {
            assert_eq!(segment.flags & RST, 0, "no reset: {segment:?}");
            harness.inject(Inbound::new(ACK, 1001, iss + 1 + 1460).window(0));
        }
        assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    }
    // The window opens: the rest is sent from SND.UNA.
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 1460).window(65_535));
    let resent = harness.expect();
    resent.assert(ACK, iss + 1 + 1460, 1001);
    assert_eq!(resent.payload.len(), 1460);
    assert_eq!(harness.layer.counters().connections_timed_out, 0);
}

/// Issue 10, defect 6: request/response cycles on a keep-alive connection re-arm its timers
/// (delayed ACK, retransmission, keepalive) thousands of times an hour; the wheel must hold
/// one entry per connection, not one stale entry per cycle. Before, each cycle left one.
#[test]
fn keep_alive_cycles_leave_no_stale_timer_entries() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .set_option(
            connection,
            SocketOption::KeepAlive(Some(Duration::from_secs(2 * 60 * 60))),
        )
        .unwrap();
    let mut peer = 1001u32;
    let mut ours = iss + 1;
    let mut buffer = [0u8; 64];
    for _ in 0..1000 {
        harness.inject(Inbound::new(ACK | PSH, peer, ours).payload(b"GET / HTTP/1.1\r\n\r\n"));
        peer += 18;
        assert_eq!(harness.layer.read(connection, &mut buffer), Ok(18));
        harness.advance(Duration::from_millis(40));
        harness
            .layer
            .write(connection, b"HTTP/1.1 204 X\r\n\r\n")
            .unwrap();
        harness.collect();
        ours += 18;
        harness.advance(Duration::from_millis(10));
        harness.inject(Inbound::new(ACK, peer, ours));
        harness.sent.clear();
        harness.advance(Duration::from_millis(950));
    }
    assert!(
        harness.layer.timer_entries() <= 2,
        "{} timer entries for one connection",
        harness.layer.timer_entries()
    );
    // Closing takes its entries with it.
    harness.layer.abort(connection).unwrap();
    assert_eq!(harness.layer.timer_entries(), 0);
}

/// The other side of defect 2's fix: an orphan (the application closed it with a response
/// still queued) whose client keeps its window shut and answers every probe is given up on
/// after `orphan_persist_limit` (issue 29, items 5 and 6; `max_retransmissions` probes
/// before), with a RST, and leaves nothing behind: otherwise a client that never reads would
/// pin the connection and its buffers for ever.
#[test]
fn an_orphan_behind_a_window_that_never_opens_is_reset() {
    let (mut harness, iss, connection) = zero_window_connection();
    harness.layer.close(connection).unwrap();
    harness.collect();
    let mut reset = None;
    for _ in 0..20 * 60 {
        harness.advance(Duration::from_secs(1));
        while let Some(segment) = harness.sent.pop_front() {
            if segment.flags & RST != 0 {
                reset = Some(segment);
            } else {
                harness.inject(Inbound::new(ACK, 1001, iss + 1).window(0));
            }
        }
        if reset.is_some() {
            break;
        }
    }
    reset
        .expect("the orphan gives up")
        .assert(RST | ACK, iss + 1, 1001);
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
    assert_eq!(harness.layer.timer_entries(), 0);
    assert_eq!(harness.layer.counters().orphan_persist_limits, 1);
}

/// Issue 29, item 1: go-back-N after a timeout rewinds SND.NXT to SND.UNA, but a bare ACK,
/// a window update or a RST built from the rewound value carries a SEQ below what the peer
/// has already received, and the peer (RFC 9293 section 3.10.7.4, Linux) drops it without
/// reading its ACK or window. Control segments carry SND.MAX, the highest sequence sent, as
/// Linux's do (`tcp_acceptable_seq`: Linux's SND.NXT never rewinds).
#[test]
fn control_segments_after_a_timeout_carry_the_highest_sequence_sent() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .write(connection, &alloc::vec![3u8; 1460 * 20])
        .unwrap();
    harness.collect();
    assert_eq!(harness.sent.len(), 10);
    let send_max = iss + 1 + 10 * 1460;
    harness.sent.clear();
    harness.advance(Duration::from_secs(1));
    harness.expect().assert(ACK, iss + 1, 1001);
    harness.expect_nothing();
    // The peer's data arrives while the retransmission is in flight: our ACK of it (the
    // delayed ACK, with nothing the window lets us send) carries SND.MAX.
    harness.inject(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"hello"));
    harness.advance(Duration::from_millis(100));
    harness.expect().assert(ACK, send_max, 1006);
    harness.expect_nothing();
    // So does the RST of an abort.
    harness.layer.abort(connection).unwrap();
    harness.collect();
    harness.expect().assert(RST | ACK, send_max, 1006);
}

/// Issue 29, item 1, the receiving half: a peer that fills our window and then times out
/// sends its ACKs at SND.MAX, which is then exactly the right edge of the window we offered
/// when its data was lost. RFC 9293's test for a segment without data (RCV.NXT =< SEG.SEQ <
/// RCV.NXT + RCV.WND) drops it unread; Linux (`tcp_sequence`: SEG.SEQ not after RCV.NXT +
/// RCV.WND) and FreeBSD (`tcp_input`: nothing to trim) accept it, and so do we, or two ends
/// of this stack could again discard each other's ACKs.
#[test]
fn a_bare_ack_at_the_right_edge_of_the_window_is_read() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"hello").unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    // We offered 65535 bytes from 1001: the peer's SND.MAX may be 1001 + 65535.
    harness.inject(Inbound::new(ACK, 1001 + 65_535, iss + 6));
    harness.expect_nothing();
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(crate::net::tcp::DropReason::OutOfWindow),
        0
    );
    // The ACK was read: nothing is left to retransmit.
    harness.advance(Duration::from_secs(2));
    harness.expect_nothing();
}

/// Issue 29, item 8: the RTO doubles up to a cap of 60 s, not Linux's 120 s (why: see
/// `TcpConfig::max_rto` and docs/architecture.md), and the 15th retransmission's timeout
/// resets: from a 1 s RTO, 1 + 2 + ... + 32 + 10 * 60 = 663 s after the first send.
#[test]
fn the_retransmission_timeout_backs_off_to_a_sixty_second_cap() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"hello").unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    for retransmission in 1..=16u32 {
        let interval =
            Duration::from_secs(1 << (retransmission - 1).min(6)).min(Duration::from_secs(60));
        harness.advance(interval - Duration::from_millis(1));
        harness.expect_nothing();
        harness.advance(Duration::from_millis(1));
        if retransmission <= 15 {
            harness.expect().assert(ACK | PSH, iss + 1, 1001);
        } else {
            harness.expect().assert(RST | ACK, iss + 6, 1001);
        }
    }
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Closed));
    assert_eq!(harness.layer.counters().timeouts, 15);
}
