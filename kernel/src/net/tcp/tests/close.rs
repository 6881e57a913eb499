//! Closing: FIN-WAIT-1/2, CLOSING, TIME-WAIT, CLOSE-WAIT, LAST-ACK (RFC 9293 sections 3.6 and 3.10.4), half-close, and TIME_WAIT reuse (RFC 6191).

use super::*;
use crate::net::tcp::{DropReason, Shutdown, SocketError, TcpState, TupleUse};

#[test]
fn passive_close_through_close_wait_and_last_ack() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(FIN | ACK, 1001, iss + 1));
    harness.expect().assert(ACK, iss + 1, 1002);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::CloseWait));
    let mut buffer = [0u8; 8];
    assert_eq!(
        harness.layer.read(connection, &mut buffer),
        Ok(0),
        "end of stream"
    );
    // Half-closed by the peer, we can still send.
    assert_eq!(harness.layer.write(connection, b"bye"), Ok(3));
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1002);
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(FIN | ACK, iss + 4, 1002);
    assert_eq!(
        harness.layer.state(connection),
        Err(SocketError::InvalidHandle),
        "the handle is released"
    );
    harness.inject(Inbound::new(ACK, 1002, iss + 5));
    harness.expect_nothing();
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(
        harness.layer.time_wait_count(),
        0,
        "the passive closer skips TIME_WAIT"
    );
}

#[test]
fn active_close_through_fin_wait_and_time_wait() {
    let config = TcpConfig {
        time_wait: Duration::from_secs(60),
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.shutdown(connection, Shutdown::Write).unwrap();
    harness.collect();
    harness.expect().assert(FIN | ACK, iss + 1, 1001);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::FinWait1));
    assert_eq!(
        harness.layer.write(connection, b"late"),
        Err(SocketError::Closed)
    );
    harness.inject(Inbound::new(ACK, 1001, iss + 2));
    assert_eq!(harness.layer.state(connection), Ok(TcpState::FinWait2));
    // Half-close: the peer may still send data.
    harness.inject(Inbound::new(ACK | PSH, 1001, iss + 2).payload(b"more"));
    let mut buffer = [0u8; 8];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(4));
    harness.advance(Duration::from_millis(40));
    harness.expect().assert(ACK, iss + 2, 1005);
    harness.inject(Inbound::new(FIN | ACK, 1005, iss + 2));
    harness.expect().assert(ACK, iss + 2, 1006);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::TimeWait));
    assert_eq!(harness.layer.time_wait_count(), 1);
    let tuple = (
        SocketAddrV4::new(LOCAL, SERVER_PORT),
        SocketAddrV4::new(REMOTE, REMOTE_PORT),
    );
    assert_eq!(
        harness.layer.tuple_use(tuple.0, tuple.1),
        TupleUse::TimeWait
    );
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(0));
    harness.layer.close(connection).unwrap();
    assert_eq!(
        harness.layer.connection_count(),
        0,
        "a TIME_WAIT record is not a connection"
    );
    // A retransmitted FIN is acknowledged again and restarts the 2*MSL timer.
    harness.advance(Duration::from_secs(30));
    harness.inject(Inbound::new(FIN | ACK, 1005, iss + 2));
    harness.expect().assert(ACK, iss + 2, 1006);
    harness.advance(Duration::from_secs(59));
    assert_eq!(harness.layer.time_wait_count(), 1);
    harness.advance(Duration::from_secs(1));
    assert_eq!(harness.layer.time_wait_count(), 0);
    assert_eq!(harness.layer.tuple_use(tuple.0, tuple.1), TupleUse::Free);
}

#[test]
fn fin_and_ack_together_go_straight_to_time_wait() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.shutdown(connection, Shutdown::Write).unwrap();
    harness.collect();
    harness.expect();
    harness.inject(Inbound::new(FIN | ACK, 1001, iss + 2));
    harness.expect().assert(ACK, iss + 2, 1002);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::TimeWait));
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.shutdown(connection, Shutdown::Write).unwrap();
    harness.collect();
    harness.expect().assert(FIN | ACK, iss + 1, 1001);
    // The peer's FIN crosses ours: it does not acknowledge our FIN.
    harness.inject(Inbound::new(FIN | ACK, 1001, iss + 1));
    harness.expect().assert(ACK, iss + 2, 1002);
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Closing));
    harness.inject(Inbound::new(ACK, 1002, iss + 2));
    assert_eq!(harness.layer.state(connection), Ok(TcpState::TimeWait));
}

#[test]
fn orphan_in_fin_wait_2_times_out() {
    let config = TcpConfig {
        fin_wait_2_timeout: Duration::from_secs(10),
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(FIN | ACK, iss + 1, 1001);
    harness.inject(Inbound::new(ACK, 1001, iss + 2));
    assert_eq!(harness.layer.connection_count(), 1);
    harness.advance(Duration::from_secs(10));
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn close_with_unread_data_resets() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK | PSH, 1001, iss + 1).payload(b"unread"));
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(RST | ACK, iss + 1, 1007);
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
}

#[test]
fn abort_on_close_option_resets() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .set_option(
            connection,
            crate::net::tcp::SocketOption::AbortOnClose(true),
        )
        .unwrap();
    harness.layer.write(connection, b"queued").unwrap();
    harness.collect();
    harness.expect();
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(RST | ACK, iss + 7, 1001);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
}

/// Closes a passive connection actively so that its tuple sits in TIME_WAIT; returns our ISN.
fn into_time_wait(harness: &mut Harness, peer_isn: u32) -> u32 {
    let (iss, connection) = harness.passive_open(peer_isn);
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect();
    harness.inject(Inbound::new(FIN | ACK, peer_isn + 1, iss + 2));
    harness.expect().assert(ACK, iss + 2, peer_isn + 2);
    assert_eq!(harness.layer.time_wait_count(), 1);
    iss
}

#[test]
fn new_syn_with_higher_sequence_reuses_time_wait() {
    let mut harness = Harness::plain();
    let old_iss = into_time_wait(&mut harness, 1000);
    // An old duplicate SYN (sequence not beyond RCV.NXT) is answered with an ACK.
    harness.inject(Inbound::new(SYN, 900, 0));
    harness.expect().assert(ACK, old_iss + 2, 1002);
    assert_eq!(harness.layer.time_wait_count(), 1);
    // A new incarnation's SYN opens a connection at once.
    harness.inject(Inbound::new(SYN, 50_000, 0));
    let syn_ack = harness.expect();
    syn_ack.assert(SYN | ACK, old_iss + 2 + 65_537, 50_001);
    assert_eq!(harness.layer.time_wait_count(), 0);
    assert_eq!(harness.layer.counters().time_wait_reuses, 1);
}

#[test]
fn time_wait_with_timestamps_reuses_on_newer_tsval() {
    let config = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).timestamp(100, 0));
    let syn_ack = harness.expect();
    let iss = syn_ack.sequence;
    let our = syn_ack.options.timestamp.unwrap().0;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(101, our));
    let connection = harness.layer.accept(listener).unwrap();
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect();
    harness.inject(Inbound::new(FIN | ACK, 1001, iss + 2).timestamp(102, our));
    harness.expect();
    // Same sequence number, older timestamp: not a new connection.
    harness.inject(Inbound::new(SYN, 1000, 0).timestamp(50, 0));
    harness.expect().assert(ACK, iss + 2, 1002);
    // Same (even lower) sequence, newer timestamp: RFC 6191 lets it in.
    harness.inject(Inbound::new(SYN, 10, 0).timestamp(200, 0));
    harness.expect().assert(SYN | ACK, iss + 2 + 65_537, 11);
}

#[test]
fn reset_does_not_end_time_wait() {
    let mut harness = Harness::plain();
    let iss = into_time_wait(&mut harness, 1000);
    harness.inject(Inbound::new(RST, 1002, 0));
    harness.expect_nothing();
    assert_eq!(harness.layer.time_wait_count(), 1, "RFC 1337");
    let _ = iss;
}

#[test]
fn connect_reuses_time_wait_only_with_timestamps() {
    // Our own active connection ends in TIME_WAIT; connecting again to the same tuple.
    let mut harness = Harness::plain();
    let (iss, connection) = harness.active_open(100);
    harness.layer.close(connection).unwrap();
    harness.collect();
    harness.expect().assert(FIN | ACK, iss + 1, 101);
    harness.inject(to_client(FIN | ACK, 101, iss + 2));
    harness.expect();
    assert_eq!(harness.layer.time_wait_count(), 1);
    harness.advance(Duration::from_secs(2));
    let again = harness.layer.connect(
        SocketAddrV4::new(REMOTE, SERVER_PORT),
        Some(SocketAddrV4::new(LOCAL, 5000)),
    );
    assert_eq!(
        again,
        Err(SocketError::AddressInUse),
        "no timestamps: no safe reuse"
    );
}

#[test]
fn orphan_already_in_fin_wait_2_still_times_out() {
    let config = TcpConfig {
        fin_wait_2_timeout: Duration::from_secs(5),
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.shutdown(connection, Shutdown::Write).unwrap();
    harness.collect();
    harness.expect();
    harness.inject(Inbound::new(ACK, 1001, iss + 2));
    assert_eq!(harness.layer.state(connection), Ok(TcpState::FinWait2));
    harness.layer.close(connection).unwrap();
    harness.advance(Duration::from_secs(5));
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn time_wait_table_is_bounded() {
    let config = TcpConfig {
        max_time_wait: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    for (index, port) in [40_000u16, 40_001].into_iter().enumerate() {
        let peer_isn = 1000 + index as u32 * 10_000;
        harness.inject(Inbound::new(SYN, peer_isn, 0).ports(port, SERVER_PORT));
        let iss = harness.expect().sequence;
        harness.inject(Inbound::new(ACK, peer_isn + 1, iss + 1).ports(port, SERVER_PORT));
        let connection = harness.layer.accept(listener).unwrap();
        harness.layer.close(connection).unwrap();
        harness.collect();
        harness.expect();
        harness.inject(Inbound::new(FIN | ACK, peer_isn + 1, iss + 2).ports(port, SERVER_PORT));
        harness.expect();
    }
    assert_eq!(harness.layer.time_wait_count(), 1);
    assert_eq!(harness.layer.counters().time_wait_overflows, 1);
    assert_eq!(harness.layer.connection_count(), 0);
}

#[test]
fn connect_reuses_time_wait_with_timestamps() {
    let config = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let local = SocketAddrV4::new(LOCAL, 5000);
    let remote = SocketAddrV4::new(REMOTE, SERVER_PORT);
    let handle = harness.layer.connect(remote, Some(local)).unwrap();
    harness.collect();
    let syn = harness.expect();
    let iss = syn.sequence;
    let ours = syn.options.timestamp.unwrap().0;
    harness.inject(to_client(SYN | ACK, 100, iss + 1).timestamp(7, ours));
    harness.expect();
    harness.layer.close(handle).unwrap();
    harness.collect();
    harness.expect().assert(FIN | ACK, iss + 1, 101);
    harness.inject(to_client(FIN | ACK, 101, iss + 2).timestamp(8, ours));
    harness.expect();
    assert_eq!(harness.layer.tuple_use(local, remote), TupleUse::TimeWait);
    assert_eq!(
        harness.layer.connect(remote, Some(local)),
        Err(SocketError::AddressInUse),
        "not within a second"
    );
    harness.advance(Duration::from_secs(1));
    harness.layer.connect(remote, Some(local)).unwrap();
    harness.collect();
    let new_syn = harness.expect();
    assert!(
        new_syn.options.timestamp.unwrap().0 > ours,
        "TSval keeps growing across incarnations"
    );
    assert_eq!(harness.layer.counters().time_wait_reuses, 1);
    assert_eq!(harness.layer.tuple_use(local, remote), TupleUse::Connected);
}

#[test]
fn forged_fins_do_not_extend_time_wait() {
    let mut harness = Harness::plain();
    let iss = into_time_wait(&mut harness, 1000);
    harness.advance(Duration::from_secs(50));
    // A FIN with the wrong sequence number: ACKed, but the timer is not restarted.
    harness.inject(Inbound::new(FIN | ACK, 5555, iss + 2));
    harness.expect().assert(ACK, iss + 2, 1002);
    harness.advance(Duration::from_secs(10));
    assert_eq!(harness.layer.time_wait_count(), 0);
}

/// Issue 10, defect 8: a SYN that may reuse a TIME_WAIT tuple must not end TIME_WAIT unless
/// it opens the new connection. Dropped by a limit, the old connection keeps its record (a
/// retransmitted FIN is still acknowledged). Before, the record was gone first.
#[test]
fn a_dropped_syn_leaves_time_wait_in_place() {
    let config = TcpConfig {
        max_connections: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let iss = into_time_wait(&mut harness, 1000);
    // Another client takes the only connection this core may hold.
    harness.inject(Inbound::new(SYN, 7000, 0).ports(40_001, SERVER_PORT));
    assert_eq!(harness.expect().flags, SYN | ACK);
    harness.inject(Inbound::new(SYN, 50_000, 0));
    harness.expect_nothing();
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::ConnectionLimit),
        1
    );
    assert_eq!(
        harness.layer.time_wait_count(),
        1,
        "TIME_WAIT still protects"
    );
    assert_eq!(harness.layer.counters().time_wait_reuses, 0);
    harness.inject(Inbound::new(FIN | ACK, 1001, iss + 2));
    harness.expect().assert(ACK, iss + 2, 1002);
}

/// Issue 10, defect 8: with the SYN queue full, a SYN that reuses a TIME_WAIT tuple gets a
/// real half-open connection with an ISN beyond the old incarnation (as Linux does), never a
/// cookie ISN that could fall inside the old sequence space.
#[test]
fn a_time_wait_reuse_is_never_answered_with_a_cookie() {
    let config = TcpConfig {
        syn_queue_size: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let old_iss = into_time_wait(&mut harness, 1000);
    harness.inject(Inbound::new(SYN, 7000, 0).ports(40_001, SERVER_PORT));
    harness.expect();
    harness.inject(Inbound::new(SYN, 50_000, 0));
    let syn_ack = harness.expect();
    syn_ack.assert(SYN | ACK, old_iss + 2 + 65_537, 50_001);
    assert_eq!(harness.layer.counters().syn_cookies_sent, 0);
    assert_eq!(harness.layer.time_wait_count(), 0);
    harness.inject(Inbound::new(ACK, 50_001, old_iss + 2 + 65_538));
    assert_eq!(harness.layer.connection_count(), 2);
    assert_eq!(harness.layer.counters().time_wait_reuses, 1);
}

/// Issue 10, defect 6: a FIN retransmitted into TIME_WAIT restarts the 2*MSL timer without
/// adding a timer-wheel entry, and is answered at most once per `invalid_ack_interval`.
/// Before, each one added an entry and drew an ACK, so a peer (or a forger with the right
/// sequence numbers) could grow the wheel and the output without bound.
#[test]
fn fins_retransmitted_into_time_wait_neither_grow_the_wheel_nor_storm_acks() {
    let mut harness = Harness::plain();
    let iss = into_time_wait(&mut harness, 1000);
    let entries = harness.layer.timer_entries();
    for _ in 0..1000 {
        harness.inject(Inbound::new(FIN | ACK, 1001, iss + 2));
    }
    harness.expect().assert(ACK, iss + 2, 1002);
    harness.expect_nothing();
    assert!(
        harness.layer.timer_entries() <= entries,
        "{} entries, {entries} before",
        harness.layer.timer_entries()
    );
    // The restarted 2*MSL still ends it.
    harness.advance(Duration::from_secs(30));
    harness.inject(Inbound::new(FIN | ACK, 1001, iss + 2));
    harness.expect().assert(ACK, iss + 2, 1002);
    harness.advance(Duration::from_secs(59));
    assert_eq!(harness.layer.time_wait_count(), 1, "restarted 30 s in");
    harness.advance(Duration::from_secs(1));
    assert_eq!(harness.layer.time_wait_count(), 0);
    assert_eq!(harness.layer.timer_entries(), 0);
}

/// A drained core frees a TIME_WAIT record for a new incarnation's SYN before any other
/// check sees the frame: the SYN's checksum must hold first, or one corrupted (or forged with
/// any checksum) SYN removes the old connection's protection (issue 11's review).
#[test]
fn a_drained_core_frees_time_wait_only_for_a_syn_whose_checksum_holds() {
    let mut harness = Harness::plain();
    into_time_wait(&mut harness, 1000);
    let local = SocketAddrV4::new(LOCAL, SERVER_PORT);
    let remote = SocketAddrV4::new(REMOTE, REMOTE_PORT);
    let syn = Inbound::new(SYN, 50_000, 0).bytes();
    assert!(
        crate::net::checksum::tcp_is_valid(REMOTE, LOCAL, &syn),
        "the harness writes correct checksums"
    );
    let mut corrupted = syn.clone();
    corrupted[4] ^= 0x01;
    assert!(
        !harness
            .layer
            .release_time_wait_for_syn(local, remote, &corrupted)
    );
    assert_eq!(harness.layer.time_wait_count(), 1);
    assert!(harness.layer.release_time_wait_for_syn(local, remote, &syn));
    assert_eq!(harness.layer.time_wait_count(), 0);
}

/// Review of issue 29's fixes, should-fix 2: a FIN goes out whatever the peer's window, so
/// SND.MAX can lie one beyond the window's right edge. A control segment sent at SND.MAX
/// then sits outside a receiver window of 0 (RFC 9293 section 3.10.7.4: only SEG.SEQ =
/// RCV.NXT is acceptable) and is dropped, ACK and window update with it. Linux's
/// `tcp_acceptable_seq` sends min(SND.NXT, SND.UNA + SND.WND).
#[test]
fn an_ack_after_a_fin_beyond_a_closed_window_is_sent_at_the_window_edge() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).window(100));
    assert_eq!(harness.layer.write(connection, &[5; 100]), Ok(100));
    harness.layer.shutdown(connection, Shutdown::Write).unwrap();
    harness.collect();
    harness.sent.clear();
    // The peer takes the 100 bytes, closes its window and sends a request.
    harness.inject(
        Inbound::new(ACK | PSH, 1001, iss + 101)
            .window(0)
            .payload(b"request"),
    );
    harness.advance(Duration::from_millis(40));
    harness.expect().assert(ACK, iss + 101, 1008);
}
