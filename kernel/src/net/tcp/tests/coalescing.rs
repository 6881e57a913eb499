//! Segments one connection makes between two drains of the output queue: a FIN joins the data before it, a queued ACK gives way to the segment after it, duplicate ACKs stay.

use super::*;
use crate::net::tcp::DropReason;

impl Harness {
    /// Hands a segment to the layer without draining what it queues, as the core loop does
    /// when the application runs before the loop transmits.
    fn inject_and_hold(&mut self, segment: Inbound) {
        let bytes = segment.bytes();
        self.layer.on_segment(self.now, REMOTE, LOCAL, &bytes);
    }
}

#[test]
fn a_response_written_and_closed_before_the_drain_goes_out_with_its_fin() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject_and_hold(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"ping"));
    let mut buffer = [0u8; 8];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(4));
    assert_eq!(harness.layer.write(connection, b"pong"), Ok(4));
    harness.layer.close(connection).unwrap();
    harness.collect();
    let response = harness.expect();
    response.assert(ACK | PSH | FIN, iss + 1, 1005);
    assert_eq!(response.payload, b"pong");
    harness.expect_nothing();
    // The FIN takes the sequence number after the data: the peer's ACK of both is
    // acceptable (an ACK of more than was sent would draw an ACK), and its own FIN is then
    // acknowledged from TIME-WAIT.
    harness.inject(Inbound::new(ACK, 1005, iss + 6));
    harness.expect_nothing();
    harness.inject(Inbound::new(ACK | FIN, 1005, iss + 6));
    harness.expect().assert(ACK, iss + 6, 1006);
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().retransmits, 0);
}

#[test]
fn a_lost_response_with_its_fin_is_retransmitted_with_its_fin() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject_and_hold(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"ping"));
    let mut buffer = [0u8; 8];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(4));
    assert_eq!(harness.layer.write(connection, b"pong"), Ok(4));
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH | FIN, iss + 1, 1005);
    harness.advance(Duration::from_millis(1000));
    let again = harness.expect();
    again.assert(ACK | PSH | FIN, iss + 1, 1005);
    assert_eq!(again.payload, b"pong");
}

#[test]
fn data_already_drained_gets_a_fin_of_its_own() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    assert_eq!(harness.layer.write(connection, b"pong"), Ok(4));
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(ACK | FIN, iss + 5, 1001);
}

#[test]
fn the_ack_of_a_syn_ack_gives_way_to_a_request_written_before_the_drain() {
    let mut harness = Harness::plain();
    let handle = harness
        .layer
        .connect(
            SocketAddrV4::new(REMOTE, SERVER_PORT),
            Some(SocketAddrV4::new(LOCAL, 5000)),
        )
        .unwrap();
    harness.collect();
    let iss = harness.expect().sequence;
    harness.inject_and_hold(
        Inbound::new(SYN | ACK, 7000, iss + 1)
            .ports(SERVER_PORT, 5000)
            .mss(1460),
    );
    assert_eq!(harness.layer.write(handle, b"GET /"), Ok(5));
    harness.collect();
    let request = harness.expect();
    request.assert(ACK | PSH, iss + 1, 7001);
    assert_eq!(request.payload, b"GET /");
    harness.expect_nothing();
}

#[test]
fn the_ack_of_a_fin_gives_way_to_the_fin_of_a_close_before_the_drain() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject_and_hold(Inbound::new(ACK | PSH | FIN, 1001, iss + 1).payload(b"bye"));
    let mut buffer = [0u8; 8];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(3));
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(0));
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(ACK | FIN, iss + 1, 1005);
    harness.expect_nothing();
    // LAST-ACK: the peer's ACK of our FIN ends the connection and draws nothing.
    harness.inject(Inbound::new(ACK, 1005, iss + 2));
    harness.expect_nothing();
}

#[test]
fn duplicate_acks_for_out_of_order_data_are_all_sent() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    // Two segments beyond a hole: each draws a duplicate ACK, which the peer counts.
    harness.inject_and_hold(Inbound::new(ACK, 1101, iss + 1).payload(&[1; 100]));
    harness.inject_and_hold(Inbound::new(ACK, 1201, iss + 1).payload(&[2; 100]));
    assert_eq!(harness.layer.write(connection, b"data"), Ok(4));
    harness.collect();
    harness.expect().assert(ACK, iss + 1, 1001);
    harness.expect().assert(ACK, iss + 1, 1001);
    let data = harness.expect();
    data.assert(ACK | PSH, iss + 1, 1001);
    assert_eq!(data.payload, b"data");
    harness.expect_nothing();
}

/// A probe (SEQ = SND.UNA - 1) is a duplicate to the peer, which answers it without
/// reading its acknowledgment: the ACK of data queued before it must still go.
#[test]
fn an_ack_queued_before_a_zero_window_probe_is_still_sent() {
    let mut harness = Harness::plain();
    let (iss, _connection) = harness.accept_behind_closed_window();
    // Two segments (an ACK at once), then the persist timer fires before the drain.
    harness.now = harness.now + Duration::from_secs(1);
    harness.inject_and_hold(
        Inbound::new(ACK, 1001, iss + 1)
            .window(0)
            .payload(&[1; 100]),
    );
    harness.inject_and_hold(
        Inbound::new(ACK, 1101, iss + 1)
            .window(0)
            .payload(&[2; 100]),
    );
    harness.layer.on_timers(harness.now);
    harness.collect();
    harness.expect().assert(ACK, iss + 1, 1201);
    harness.expect().assert(ACK, iss, 1201);
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().zero_window_probes, 1);
}

/// Out-of-order data dropped for want of memory leaves the reassembly queue empty; each
/// segment still draws its own duplicate ACK.
#[test]
fn duplicate_acks_for_dropped_out_of_order_data_are_all_sent() {
    let config = TcpConfig {
        max_buffer_memory: 40,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    for sequence in [1101, 1201, 1301] {
        harness.inject_and_hold(Inbound::new(ACK, sequence, iss + 1).payload(&[1; 100]));
    }
    assert_eq!(harness.layer.counters().dropped(DropReason::MemoryLimit), 3);
    assert_eq!(harness.layer.write(connection, b"data"), Ok(4));
    harness.collect();
    for _ in 0..3 {
        harness.expect().assert(ACK, iss + 1, 1001);
    }
    let data = harness.expect();
    data.assert(ACK | PSH, iss + 1, 1001);
    assert_eq!(data.payload, b"data");
    harness.expect_nothing();
}

/// The first ACK of a burst moves the acknowledgment forward; the duplicate ACKs after it
/// (for segments dropped for want of memory) must not replace it, or the peer counts one
/// fewer and waits for its retransmission timeout instead of retransmitting at once.
#[test]
fn duplicate_acks_after_an_ack_that_moved_forward_are_all_sent() {
    let config = TcpConfig {
        max_buffer_memory: 150,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, _connection) = harness.passive_open(1000);
    // In order and accepted: its ACK is delayed.
    harness.inject_and_hold(Inbound::new(ACK, 1001, iss + 1).payload(&[1; 100]));
    for sequence in [1201, 1301, 1401] {
        harness.inject_and_hold(Inbound::new(ACK, sequence, iss + 1).payload(&[1; 100]));
    }
    assert_eq!(harness.layer.counters().dropped(DropReason::MemoryLimit), 3);
    harness.collect();
    for _ in 0..3 {
        harness.expect().assert(ACK, iss + 1, 1101);
    }
    harness.expect_nothing();
}

/// A probe queued before an ACK of new data: the probe is not an ACK that the later one
/// stands for (it asks the peer for an answer), so both go.
#[test]
fn a_zero_window_probe_is_not_withdrawn_for_the_ack_after_it() {
    let mut harness = Harness::plain();
    let (iss, _connection) = harness.accept_behind_closed_window();
    // Data whose ACK is delayed, then the probe, which acknowledges it (so it is no
    // duplicate), then two segments more, whose ACK follows the probe.
    harness.now = harness.now + Duration::from_secs(1);
    let data = |sequence: u32| {
        Inbound::new(ACK, sequence, iss + 1)
            .window(0)
            .payload(&[1; 100])
    };
    harness.inject_and_hold(data(1001));
    harness.layer.on_timers(harness.now);
    harness.inject_and_hold(data(1101));
    harness.inject_and_hold(data(1201));
    harness.collect();
    harness.expect().assert(ACK, iss, 1101);
    harness.expect().assert(ACK, iss + 1, 1301);
    harness.expect_nothing();
    assert_eq!(harness.layer.counters().zero_window_probes, 1);
}

#[test]
fn segments_of_two_connections_are_not_folded_together() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    let (first_iss, first) = harness.passive_open_on_existing(listener, 1000);
    harness.inject(
        Inbound::new(SYN, 5000, 0)
            .ports(REMOTE_PORT + 1, SERVER_PORT)
            .mss(1460),
    );
    let second_iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 5001, second_iss + 1).ports(REMOTE_PORT + 1, SERVER_PORT));
    let second = harness.layer.accept(listener).unwrap();
    assert_eq!(harness.layer.write(first, b"one"), Ok(3));
    harness.layer.close(second).unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, first_iss + 1, 1001);
    harness.expect().assert(ACK | FIN, second_iss + 1, 5001);
    harness.expect_nothing();
}
