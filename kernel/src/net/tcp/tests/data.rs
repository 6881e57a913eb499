//! Data transfer: delayed ACK (RFC 9293 section 3.8.6.3), Nagle (section 3.7.4), silly window avoidance (section 3.8.6.2), reassembly, windows.

use super::*;
use alloc::vec::Vec;

use crate::net::tcp::{DropReason, SocketError, SocketOption};

#[test]
fn one_segment_is_acknowledged_after_the_delay() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"hello"));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(39));
    harness.expect_nothing();
    harness.advance(Duration::from_millis(1));
    let ack = harness.expect();
    ack.assert(ACK, iss + 1, 1006);
    assert_eq!(ack.window, 65_535 - 5);
    let mut buffer = [0u8; 16];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(5));
    assert_eq!(&buffer[..5], b"hello");
}

#[test]
fn every_second_segment_is_acknowledged_at_once() {
    let mut harness = Harness::plain();
    let (iss, _connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(&[1; 100]));
    harness.expect_nothing();
    harness.inject(Inbound::new(ACK, 1101, iss + 1).payload(&[2; 100]));
    harness.expect().assert(ACK, iss + 1, 1201);
}

#[test]
fn reply_data_carries_the_ack() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"ping"));
    harness.layer.write(connection, b"pong").unwrap();
    harness.collect();
    let reply = harness.expect();
    reply.assert(ACK | PSH, iss + 1, 1005);
    assert_eq!(reply.payload, b"pong");
    harness.advance(Duration::from_millis(100));
    harness.expect_nothing();
}

#[test]
fn out_of_order_data_is_held_and_acknowledged_at_once() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1006, iss + 1).payload(b"world"));
    harness.expect().assert(ACK, iss + 1, 1001);
    harness.inject(Inbound::new(ACK | FIN, 1011, iss + 1).payload(b"!"));
    harness.expect().assert(ACK, iss + 1, 1001);
    let mut buffer = [0u8; 32];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Err(SocketError::WouldBlock)
    );
    // Filling the hole delivers everything, FIN included, and is acknowledged at once.
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"hello"));
    harness.expect().assert(ACK, iss + 1, 1013);
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(11));
    assert_eq!(&buffer[..11], b"helloworld!");
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(0));
}

#[test]
fn duplicate_data_is_acknowledged_not_delivered_twice() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"abc"));
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"abcdef"));
    harness.expect().assert(ACK, iss + 1, 1007);
    let mut buffer = [0u8; 32];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(6));
    assert_eq!(&buffer[..6], b"abcdef");
}

#[test]
fn data_beyond_the_window_is_trimmed() {
    let config = TcpConfig {
        receive_buffer_size: 10,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"0123456789ABCDEF"));
    let ack = harness.expect();
    ack.assert(ACK, iss + 1, 1011);
    assert_eq!(ack.window, 0);
    // A segment in a closed window is not acceptable: ACK, drop.
    harness.inject(Inbound::new(ACK, 1011, iss + 1).payload(b"X"));
    harness.expect().assert(ACK, iss + 1, 1011);
    let mut buffer = [0u8; 4];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(4));
    harness.collect();
    // Receiver SWS avoidance: 4 free bytes of 10 is less than half the buffer: no update.
    harness.expect_nothing();
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(4));
    harness.collect();
    // 8 free bytes: the window opens with an update.
    harness.expect().assert(ACK, iss + 1, 1011);
}

#[test]
fn nagle_holds_small_segments_while_data_is_unacknowledged() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"a").unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    harness.layer.write(connection, b"b").unwrap();
    harness.layer.write(connection, b"c").unwrap();
    harness.collect();
    harness.expect_nothing();
    harness.inject(Inbound::new(ACK, 1001, iss + 2));
    let coalesced = harness.expect();
    coalesced.assert(ACK | PSH, iss + 2, 1001);
    assert_eq!(coalesced.payload, b"bc");
}

#[test]
fn no_delay_sends_small_segments_at_once() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .set_option(connection, SocketOption::NoDelay(true))
        .unwrap();
    harness.layer.write(connection, b"a").unwrap();
    harness.layer.write(connection, b"b").unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    harness.expect().assert(ACK | PSH, iss + 2, 1001);
}

#[test]
fn sender_respects_the_peer_window() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1460));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).window(3000));
    let connection = harness.layer.accept(listener).unwrap();
    harness.layer.write(connection, &[9u8; 5000]).unwrap();
    harness.collect();
    assert_eq!(harness.expect().payload.len(), 1460);
    assert_eq!(harness.expect().payload.len(), 1460);
    // 80 bytes of window left: less than an MSS and less than half the largest window.
    harness.expect_nothing();
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 2920).window(3000));
    // 2080 bytes left: one full segment; Nagle holds the 620-byte tail until it is acknowledged.
    assert_eq!(harness.expect().payload.len(), 1460);
    harness.expect_nothing();
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 4380).window(3000));
    assert_eq!(harness.expect().payload.len(), 620);
}

#[test]
fn send_buffer_fills_and_write_would_block() {
    let config = TcpConfig {
        send_buffer_size: 4000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (_iss, connection) = harness.passive_open(1000);
    assert_eq!(harness.layer.write(connection, &[0u8; 10_000]), Ok(4000));
    assert_eq!(
        harness.layer.write(connection, b"x"),
        Err(SocketError::WouldBlock)
    );
    assert!(!harness.layer.readiness(connection).unwrap().writable);
}

#[test]
fn per_core_memory_limit_refuses_cleanly() {
    let config = TcpConfig {
        max_buffer_memory: 3000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    assert_eq!(harness.layer.write(connection, &[0u8; 5000]), Ok(3000));
    assert_eq!(
        harness.layer.write(connection, b"x"),
        Err(SocketError::WouldBlock)
    );
    assert_eq!(harness.layer.counters().write_memory_refusals, 1);
    harness.collect();
    harness.sent.clear();
    // Arriving data has no room either: dropped and counted, not buffered.
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(&[1; 100]));
    assert_eq!(harness.layer.counters().dropped(DropReason::MemoryLimit), 1);
    assert_eq!(harness.layer.buffer_memory_used(), 3000);
    // Acknowledged data frees the budget.
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 2920));
    assert_eq!(harness.layer.buffer_memory_used(), 80);
}

#[test]
fn small_window_does_not_stall_the_sender() {
    // The peer offers 65535 in its SYN, then only 100 bytes: sender SWS avoidance holds the
    // data, nothing is in flight, so the override timeout must send it (RFC 9293 section
    // 3.8.6.2.1, case d).
    let mut harness = Harness::plain();
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1460));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).window(100));
    let connection = harness.layer.accept(listener).unwrap();
    harness.layer.write(connection, &[4u8; 1000]).unwrap();
    harness.collect();
    harness.expect_nothing();
    harness.advance(Duration::from_secs(1));
    let forced = harness.expect();
    forced.assert(ACK, iss + 1, 1001);
    assert_eq!(forced.payload.len(), 100);
    assert_eq!(harness.layer.counters().zero_window_probes, 0);
}

#[test]
fn output_can_be_drained_in_parts() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, &[1u8; 1460 * 4]).unwrap();
    let mut sequences = Vec::new();
    assert_eq!(
        harness.layer.drain_output_up_to(3, |segment| sequences
            .push(segment::parse(segment.tcp).unwrap().sequence.0)),
        3
    );
    assert!(harness.layer.has_output());
    harness.collect();
    assert_eq!(harness.sent.len(), 1);
    assert_eq!(harness.expect().sequence, iss + 1 + 3 * 1460);
    assert_eq!(sequences, [iss + 1, iss + 1 + 1460, iss + 1 + 2 * 1460]);
}

#[test]
fn out_of_order_data_is_reported_in_sack_blocks() {
    let config = TcpConfig {
        sack_permitted: true,
        timestamps: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).sack_permitted().timestamp(1, 0));
    let syn_ack = harness.expect();
    assert!(syn_ack.options.sack_permitted);
    let iss = syn_ack.sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(2, 0));
    harness.layer.accept(listener).unwrap();
    harness.inject(
        Inbound::new(ACK, 1011, iss + 1)
            .timestamp(3, 0)
            .payload(&[1; 10]),
    );
    let first = harness.expect();
    first.assert(ACK, iss + 1, 1001);
    assert_eq!(first.options.sack_block_count, 1);
    assert_eq!(first.options.sack_blocks[0], (1011, 1021));
    harness.inject(
        Inbound::new(ACK, 1031, iss + 1)
            .timestamp(4, 0)
            .payload(&[1; 10]),
    );
    let second = harness.expect();
    // The block of the latest segment comes first (RFC 2018 section 4).
    assert_eq!(second.options.sack_block_count, 2);
    assert_eq!(
        &second.options.sack_blocks[..2],
        &[(1031, 1041), (1011, 1021)]
    );
    harness.inject(
        Inbound::new(ACK, 1001, iss + 1)
            .timestamp(5, 0)
            .payload(&[1; 10]),
    );
    let third = harness.expect();
    third.assert(ACK, iss + 1, 1021);
    assert_eq!(third.options.sack_blocks[..1], [(1031, 1041)]);
}

#[test]
fn fin_is_taken_even_when_the_window_is_closed() {
    let config = TcpConfig {
        receive_buffer_size: 10,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(&[7; 10]));
    harness.advance(Duration::from_millis(40));
    assert_eq!(harness.expect().window, 0);
    harness.inject(Inbound::new(FIN | ACK, 1011, iss + 1));
    harness.expect().assert(ACK, iss + 1, 1012);
    assert_eq!(
        harness.layer.state(connection),
        Ok(crate::net::tcp::TcpState::CloseWait)
    );
}

/// Issue 10, defect 1: a queued out-of-order block that in-order data then covers (a peer
/// sending [N+1, N+1460) then [N, N+1460), or an honest retransmission after a lost short
/// segment) must give its bytes back to the per-core budget. Before the fix each round leaked
/// 1459 bytes, until every write on the core was refused and all arriving data dropped.
#[test]
fn covered_out_of_order_data_returns_its_memory() {
    let config = TcpConfig {
        max_buffer_memory: 64 * 1024,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    let mut next = 1001u32;
    let mut buffer = [0u8; 2048];
    for round in 0..200 {
        harness.inject(Inbound::new(ACK, next + 1, iss + 1).payload(&[round as u8; 1459]));
        harness.inject(Inbound::new(ACK, next, iss + 1).payload(&[round as u8; 1460]));
        assert_eq!(harness.layer.read(connection, &mut buffer), Ok(1460));
        assert_eq!(
            harness.layer.buffer_memory_used(),
            0,
            "round {round}: nothing is held any more"
        );
        next += 1460;
        harness.sent.clear();
    }
    assert_eq!(harness.layer.counters().dropped(DropReason::MemoryLimit), 0);
    assert_eq!(harness.layer.write(connection, &[5u8; 100]), Ok(100));
}

/// The same accounting when the covering data only partly overlaps the queued block, and
/// when the application closes with data still queued out of order.
#[test]
fn partly_covered_out_of_order_data_is_counted_once() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1101, iss + 1).payload(&[2; 200]));
    harness.inject(Inbound::new(ACK, 1501, iss + 1).payload(&[3; 100]));
    assert_eq!(harness.layer.buffer_memory_used(), 300);
    // [1001, 1201) covers half of the first block: 300 bytes arrive in order in all.
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(&[1; 200]));
    assert_eq!(harness.layer.buffer_memory_used(), 300 + 100);
    let mut buffer = [0u8; 1024];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(300));
    assert_eq!(harness.layer.buffer_memory_used(), 100);
    harness.layer.close(connection).unwrap();
    assert_eq!(harness.layer.buffer_memory_used(), 0);
}
