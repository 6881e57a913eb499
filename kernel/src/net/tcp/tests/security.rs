//! Blind-attack defences: RFC 5961 checks on RST, SYN and ACK (challenge ACKs), PAWS (RFC 7323 section 5), and resets for strangers.

use super::*;
use crate::net::tcp::{DropReason, SocketError, TcpState};
use alloc::vec::Vec;

#[test]
fn exact_reset_closes_the_connection() {
    let mut harness = Harness::plain();
    let (_iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(RST, 1001, 0));
    harness.expect_nothing();
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Closed));
    let mut buffer = [0u8; 4];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::ConnectionReset)
    );
    assert_eq!(
        harness.layer.write(connection, b"x"),
        Err(SocketError::ConnectionReset)
    );
    assert_eq!(harness.layer.counters().resets_received, 1);
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn in_window_reset_draws_a_challenge_ack() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(RST, 1500, 0));
    harness.expect().assert(ACK, iss + 1, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    assert_eq!(harness.layer.counters().challenge_acks, 1);
    assert_eq!(
        harness.layer.counters().dropped(DropReason::InvalidReset),
        1
    );
}

#[test]
fn out_of_window_reset_is_silently_dropped() {
    let mut harness = Harness::plain();
    let (_iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(RST, 1001 + 70_000, 0));
    harness.expect_nothing();
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
}

#[test]
fn syn_on_an_established_connection_draws_a_challenge_ack() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(SYN, 1001, 0));
    harness.expect().assert(ACK, iss + 1, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    assert_eq!(
        harness.layer.counters().dropped(DropReason::UnexpectedSyn),
        1
    );
}

/// Issue 10, defect 3: one connection draws at most one challenge ACK per
/// `invalid_ack_interval`, so an off-path attacker's own connection cannot count the core's
/// budget (the side channel of CVE-2016-5696). Before, all 1100 RSTs of one second drew 1000.
#[test]
fn challenge_acks_are_rate_limited_per_connection() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    for _ in 0..1100 {
        harness.inject(Inbound::new(RST, 1500, 0));
    }
    harness.expect().assert(ACK, iss + 1, 1001);
    harness.expect_nothing();
    harness.now = harness.now + Duration::from_millis(499);
    harness.inject(Inbound::new(RST, 1500, 0));
    harness.expect_nothing();
    harness.now = harness.now + Duration::from_millis(1);
    harness.inject(Inbound::new(SYN, 1001, 0));
    harness.expect().assert(ACK, iss + 1, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    assert_eq!(harness.layer.counters().challenge_acks, 2);
    assert_eq!(harness.layer.counters().acks_rate_limited, 1100);
}

/// Issue 10, defect 3: the per-core budget of challenge ACKs is drawn at random every second
/// (between half and one and a half times `challenge_ack_limit`, as Linux does), so that how
/// many got through tells an attacker nothing about the RSTs others sent. Before, it was
/// exactly 1000 every second.
#[test]
fn the_per_core_challenge_ack_budget_is_random_each_second() {
    let config = TcpConfig {
        challenge_ack_limit: 100,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let peers: Vec<u16> = (0..400).map(|index| 20_000 + index).collect();
    for &port in &peers {
        harness.inject(Inbound::new(SYN, 1000, 0).ports(port, SERVER_PORT));
        let iss = harness.expect().sequence;
        harness.inject(Inbound::new(ACK, 1001, iss + 1).ports(port, SERVER_PORT));
        harness.layer.accept(listener).unwrap();
    }
    let mut budgets = Vec::new();
    for _ in 0..8 {
        harness.now = harness.now + Duration::from_secs(1);
        harness.sent.clear();
        for &port in &peers {
            harness.inject(Inbound::new(RST, 1500, 0).ports(port, SERVER_PORT));
        }
        budgets.push(harness.sent.len());
    }
    assert!(
        budgets.iter().all(|&budget| (50..150).contains(&budget)),
        "{budgets:?}"
    );
    assert!(
        budgets.iter().any(|&budget| budget != budgets[0]),
        "the same budget every second: {budgets:?}"
    );
}

#[test]
fn ack_of_unsent_data_is_dropped_with_an_ack() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss + 500).payload(b"data"));
    harness.expect().assert(ACK, iss + 1, 1001);
    let mut buffer = [0u8; 8];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::WouldBlock),
        "data not accepted"
    );
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::UnacceptableAck),
        1
    );
}

#[test]
fn out_of_window_data_is_answered_with_an_ack() {
    let mut harness = Harness::plain();
    let (iss, _connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 900_000, iss + 1).payload(b"blind"));
    harness.expect().assert(ACK, iss + 1, 1001);
    assert_eq!(harness.layer.counters().dropped(DropReason::OutOfWindow), 1);
}

#[test]
fn paws_drops_old_timestamps() {
    let config = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).timestamp(1000, 0));
    let syn_ack = harness.expect();
    let iss = syn_ack.sequence;
    let ours = syn_ack.options.timestamp.unwrap().0;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(1001, ours));
    let connection = harness.layer.accept(listener).unwrap();
    harness.inject(
        Inbound::new(ACK, 1001, iss + 1)
            .timestamp(900, ours)
            .payload(b"old"),
    );
    let ack = harness.expect();
    ack.assert(ACK, iss + 1, 1001);
    assert_eq!(ack.options.timestamp.map(|(_, echo)| echo), Some(1001));
    let mut buffer = [0u8; 8];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::WouldBlock)
    );
}

/// Issue 29, item 4 (RFC 7323 section 4.3; Linux updates TS.Recent only under
/// `FLAG_UPDATE_TS_RECENT`, once the ACK is validated): a blind segment inside the window
/// whose TSval is TS.Recent + 2^31 - 1 must not become TS.Recent when it fails a later check
/// (no ACK bit, a RST that is not exact, a SYN, an ACK of unsent data) or acknowledges less
/// than SND.UNA (within MAX.SND.WND, so not challenged; Linux's `tcp_ack` leaves TS.Recent
/// alone for such an old ACK). Before, TS.Recent was updated before those checks, and every
/// later legitimate segment failed PAWS for 24 days.
#[test]
fn a_blind_segment_that_fails_its_checks_does_not_move_ts_recent() {
    let config = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let blind_value = 1001u32.wrapping_add((1 << 31) - 1);
    // (flags, SEQ, SEG.ACK - ISS, payload). Overlapping RCV.NXT from just below it, so that
    // SEG.SEQ <= Last.ACK.sent and a RST is not exact; the ACK number guessed.
    let blind_segments: [(u8, u32, i32, &[u8]); 5] = [
        (0, 1000, 1, b"blind"),
        (RST, 1000, 1, b"blind"),
        (SYN, 1000, 1, b"blind"),
        (ACK, 1000, 5000, b"blind"),
        (ACK, 1001, -99, b""),
    ];
    for (flags, sequence, acknowledgment_offset, payload) in blind_segments {
        let mut harness = Harness::new(config.clone());
        let listener = harness.listen();
        harness.inject(Inbound::new(SYN, 1000, 0).timestamp(1000, 0));
        let syn_ack = harness.expect();
        let iss = syn_ack.sequence;
        let ours = syn_ack.options.timestamp.unwrap().0;
        harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(1001, ours));
        let connection = harness.layer.accept(listener).unwrap();
        harness.inject(
            Inbound::new(
                flags,
                sequence,
                iss.wrapping_add_signed(acknowledgment_offset),
            )
            .timestamp(blind_value, ours)
            .payload(payload),
        );
        harness.sent.clear();
        // The peer's next segment, with the TSval that follows its last one.
        harness.inject(
            Inbound::new(ACK | PSH, 1001, iss + 1)
                .timestamp(1002, ours)
                .payload(b"legitimate"),
        );
        harness.advance(Duration::from_millis(100));
        let ack = harness.expect();
        ack.assert(ACK, iss + 1, 1011);
        let what = alloc::format!("flags {}, ACK {acknowledgment_offset}", flag_names(flags));
        assert_eq!(
            ack.options.timestamp.map(|(_, echo)| echo),
            Some(1002),
            "{what}"
        );
        let mut buffer = [0u8; 16];
        assert_eq!(
            harness.layer.read(connection, &mut buffer),
            Ok(10),
            "{what}"
        );
        assert_eq!(&buffer[..10], b"legitimate", "{what}");
    }
}

#[test]
fn segments_to_closed_ports_get_resets() {
    let mut harness = Harness::plain();
    harness.inject(Inbound::new(SYN, 1000, 0).payload(b"abc"));
    harness.expect().assert(RST | ACK, 0, 1004);
    harness.inject(Inbound::new(ACK | FIN, 1000, 4242));
    harness.expect().assert(RST, 4242, 0);
    harness.inject(Inbound::new(RST, 1000, 0));
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().dropped(DropReason::NoSocket), 3);
    assert_eq!(harness.layer.counters().resets_sent, 2);
}

#[test]
fn malformed_segments_are_counted() {
    let mut harness = Harness::plain();
    harness.listen();
    harness
        .layer
        .on_segment(harness.now, REMOTE, LOCAL, &[1, 2, 3]);
    let mut bytes = Inbound::new(SYN | RST, 1, 0).bytes();
    harness.layer.on_segment(harness.now, REMOTE, LOCAL, &bytes);
    bytes[12] = 0xf0; // data offset past the end
    harness.layer.on_segment(harness.now, REMOTE, LOCAL, &bytes);
    harness.collect();
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().dropped(DropReason::Malformed), 3);
}

#[test]
fn ack_too_old_draws_a_challenge_ack() {
    // RFC 5961 section 5.2: SEG.ACK below SND.UNA - MAX.SND.WND is a blind injection.
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss.wrapping_sub(200_000)).payload(b"x"));
    harness.expect().assert(ACK, iss + 1, 1001);
    let mut buffer = [0u8; 4];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::WouldBlock)
    );
    assert_eq!(harness.layer.counters().challenge_acks, 1);
}

/// Issue 10, defect 10: the ACKs that answer unacceptable segments without data (out of
/// window, ACKing unsent data, failing PAWS, out-of-window SYNs) are rate-limited per
/// connection, so two desynchronised stacks cannot ping-pong ACKs at line rate (Linux
/// `tcp_invalid_ratelimit`). Segments with data are still answered every time: they are not
/// part of an ACK loop, and the ACK may be what the sender lacks.
#[test]
fn acks_to_unacceptable_segments_are_rate_limited() {
    let config = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).timestamp(1000, 0));
    let syn_ack = harness.expect();
    let iss = syn_ack.sequence;
    let ours = syn_ack.options.timestamp.unwrap().0;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(1001, ours));
    harness.layer.accept(listener).unwrap();
    for _ in 0..100 {
        harness.inject(Inbound::new(ACK, 900_000, iss + 1).timestamp(1002, ours));
        harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(900, ours));
        harness.inject(Inbound::new(ACK, 1001, iss + 5000).timestamp(1002, ours));
    }
    harness.expect().assert(ACK, iss + 1, 1001);
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().acks_rate_limited, 299);
    // Data is answered whatever the limit.
    for _ in 0..3 {
        harness.inject(
            Inbound::new(ACK, 900_000, iss + 1)
                .timestamp(1002, ours)
                .payload(b"x"),
        );
        harness.expect().assert(ACK, iss + 1, 1001);
    }
    harness.now = harness.now + Duration::from_millis(500);
    harness.inject(Inbound::new(ACK, 900_000, iss + 1).timestamp(1003, ours));
    harness.expect().assert(ACK, iss + 1, 1001);
}

/// Issue 10, defect 10 (RFC 5961 section 3.2): an in-window RST that is not exactly at
/// RCV.NXT draws a challenge ACK from a half-open connection too, so that a peer that really
/// restarted can answer it with the exact RST. Before, it was dropped silently.
#[test]
fn a_half_open_connection_challenges_an_inexact_reset() {
    let mut harness = Harness::plain();
    harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(RST, 1500, 0));
    harness.expect().assert(ACK, iss + 1, 1001);
    assert_eq!(harness.layer.connection_count(), 1, "still half-open");
    // Out of the window: silently dropped.
    harness.inject(Inbound::new(RST, 1001 + 200_000, 0));
    harness.expect_nothing();
    harness.inject(Inbound::new(RST, 1001, 0));
    assert_eq!(harness.layer.connection_count(), 0);
}

/// Issue 10, defect 10: RSTs to segments that reach no socket are limited per core and
/// second (`TcpConfig::stranger_reset_limit`), so a flood to closed ports is not reflected at
/// line rate (FreeBSD limits these too). Before, every one was answered.
#[test]
fn resets_for_strangers_are_rate_limited() {
    let config = TcpConfig {
        stranger_reset_limit: 100,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    for port in 0..300u16 {
        harness.inject(Inbound::new(SYN, 1000, 0).ports(20_000 + port, 81));
    }
    assert_eq!(harness.sent.len(), 100);
    assert_eq!(harness.layer.counters().resets_rate_limited, 200);
    assert_eq!(harness.layer.counters().dropped(DropReason::NoSocket), 300);
    harness.sent.clear();
    harness.now = harness.now + Duration::from_secs(1);
    harness.inject(Inbound::new(SYN, 1000, 0).ports(20_000, 81));
    harness.expect().assert(RST | ACK, 0, 1001);
}

/// Issue 10, defect 10: the output queue is bounded (`TcpConfig::max_queued_segments`):
/// when the interface drains more slowly than segments are made, the excess is dropped and
/// counted like a loss on the wire (TCP retransmits data; control segments are answered
/// again) instead of the queue growing without bound.
#[test]
fn the_output_queue_is_bounded() {
    let config = TcpConfig {
        max_queued_segments: 50,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    for port in 0..80u16 {
        let bytes = Inbound::new(SYN, 1000, 0).ports(20_000 + port, 81).bytes();
        harness.layer.on_segment(harness.now, REMOTE, LOCAL, &bytes);
    }
    assert_eq!(harness.layer.counters().output_queue_drops, 30);
    harness.collect();
    assert_eq!(harness.sent.len(), 50);
}

/// Blind attacks (RFC 5961) against a live connection: thousands of in-window RSTs that
/// are not exact, SYNs, and data with guessed sequence numbers in the window but an
/// acknowledgment no honest peer could send. Nothing resets or corrupts the connection, the
/// honest bytes arrive as sent, and the challenge ACKs stay within one per connection per
/// `invalid_ack_interval`.
#[test]
fn blind_injection_neither_resets_nor_corrupts_a_live_connection() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"hello "));
    let next = 1007u32;
    let mut answers = 0;
    for round in 0..10_000u32 {
        let in_window = next + 1 + (round * 7919) % 60_000;
        let attack = match round % 4 {
            0 => Inbound::new(RST, in_window, 0),
            1 => Inbound::new(RST | ACK, in_window, iss + 1),
            2 => Inbound::new(SYN, in_window, 0),
            // Data at RCV.NXT itself, with an acknowledgment from far outside
            // [SND.UNA - MAX.SND.WND, SND.NXT] (RFC 5961 section 5.2).
            _ => Inbound::new(
                ACK | PSH,
                next,
                iss.wrapping_add(1).wrapping_sub(0x4000_0000 + round),
            )
            .payload(b"EVIL"),
        };
        harness.inject(attack);
        answers += harness.sent.len();
        harness.sent.clear();
        if round % 100 == 99 {
            harness.now = harness.now + Duration::from_millis(50);
        }
    }
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    // 10 000 rounds over 5 s: at most one challenge ACK per 500 ms, plus the first.
    assert!(answers <= 11, "{answers} answers to the attacker");
    assert!(harness.layer.counters().acks_rate_limited > 9_000);
    harness.inject(Inbound::new(ACK | PSH, next, iss + 1).payload(b"world"));
    let mut buffer = [0u8; 64];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(11));
    assert_eq!(&buffer[..11], b"hello world");
    assert_eq!(harness.layer.counters().resets_received, 0);
}

/// Review of issue 29's fixes, nit: the right edge of the window is accepted for a segment
/// without data (an ACK sent at SND.MAX by a peer that filled the window), but a RST there
/// drew a challenge ACK. RFC 5961 section 3.2: a RST outside the window is dropped silently.
#[test]
fn a_reset_at_the_right_edge_of_the_window_is_silently_dropped() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1460));
    let syn_ack = harness.expect();
    let (iss, window) = (syn_ack.sequence, u32::from(syn_ack.window));
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    let connection = harness.layer.accept(listener).unwrap();
    harness.inject(Inbound::new(RST, 1001 + window, 0));
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().challenge_acks, 0);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    // One byte inside, it draws a challenge ACK.
    harness.inject(Inbound::new(RST, 1001 + window - 1, 0));
    harness.expect().assert(ACK, iss + 1, 1001);
}
