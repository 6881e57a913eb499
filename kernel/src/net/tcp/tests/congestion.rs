//! Congestion control through the wire: initial window, slow start, fast retransmit and New Reno recovery (RFC 5681, RFC 6582), timeout collapse.

use super::*;

/// A connection with `count` full segments in flight; returns (our ISN, handle).
fn with_flight(harness: &mut Harness, count: usize) -> (u32, crate::net::tcp::SocketHandle) {
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .write(connection, &alloc::vec![3u8; 1460 * count])
        .unwrap();
    harness.collect();
    (iss, connection)
}

#[test]
fn initial_window_is_ten_segments_and_slow_start_grows_it() {
    let mut harness = Harness::plain();
    let (iss, _connection) = with_flight(&mut harness, 40);
    assert_eq!(harness.sent.len(), 10);
    harness.sent.clear();
    // Each ACK of a full segment grows cwnd by one MSS: ACK of 2 segments lets 4 go.
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 1460));
    assert_eq!(harness.sent.len(), 2);
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 2 * 1460));
    assert_eq!(harness.sent.len(), 4);
}

#[test]
fn three_duplicate_acks_trigger_fast_retransmit_and_recovery() {
    let mut harness = Harness::plain();
    let (iss, _connection) = with_flight(&mut harness, 20);
    let first = harness.sent.front().unwrap().clone();
    harness.sent.clear();
    let duplicate = Inbound::new(ACK, 1001, iss + 1);
    // Limited transmit (RFC 3042 section 2): each of the first two duplicates sends one new
    // segment, cwnd unchanged.
    for index in 10..12 {
        harness.inject(duplicate.clone());
        let new = harness.expect();
        assert_eq!(new.sequence, iss + 1 + index * 1460, "limited transmit");
        harness.expect_nothing();
    }
    harness.inject(duplicate.clone());
    let resent = harness.expect();
    assert_eq!(resent.sequence, first.sequence);
    assert_eq!(resent.payload.len(), 1460);
    assert_eq!(harness.layer.counters().fast_retransmits, 1);
    // cwnd = ssthresh + 3 MSS = 6 + 3 MSS with 12 in flight: nothing new yet.
    harness.expect_nothing();
    // Each further duplicate inflates cwnd by an MSS (RFC 6582 step 4): three more duplicates
    // reach 12 MSS, the flight size, then each sends one new segment.
    for _ in 0..4 {
        harness.inject(duplicate.clone());
    }
    let new = harness.expect();
    assert_eq!(
        new.sequence,
        iss + 1 + 12 * 1460,
        "new data beyond the old flight"
    );
    harness.expect_nothing();
    // A partial ACK (the first hole filled, the third segment missing) retransmits at once.
    harness.sent.clear();
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 2 * 1460));
    let hole = harness.expect();
    assert_eq!(hole.sequence, iss + 1 + 2 * 1460);
    // A full ACK ends recovery.
    harness.sent.clear();
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 13 * 1460));
    assert!(harness.layer.counters().retransmits >= 2);
}

#[test]
fn timeout_goes_back_to_one_segment() {
    let mut harness = Harness::plain();
    let (iss, _connection) = with_flight(&mut harness, 20);
    harness.sent.clear();
    harness.advance(Duration::from_secs(1));
    let resent = harness.expect();
    assert_eq!(resent.sequence, iss + 1);
    harness.expect_nothing();
    // The ACK of that one segment allows two (slow start from cwnd = 1 MSS).
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 1460));
    assert_eq!(harness.sent.len(), 2);
}

#[test]
fn window_restarts_after_idle() {
    // RFC 5681 section 4.1: after an idle period longer than the RTO, cwnd falls back to the
    // initial window.
    let mut harness = Harness::plain();
    let (iss, connection) = with_flight(&mut harness, 10);
    harness.sent.clear();
    // Grow cwnd to 20 segments with ten ACKs.
    for index in 1..=10u32 {
        harness.inject(Inbound::new(ACK, 1001, iss + 1 + index * 1460));
    }
    harness.advance(Duration::from_secs(5));
    harness.sent.clear();
    harness
        .layer
        .write(connection, &alloc::vec![1u8; 1460 * 30])
        .unwrap();
    harness.collect();
    assert_eq!(harness.sent.len(), 10);
}

#[test]
fn sack_blocks_let_recovery_repair_several_holes_per_round_trip() {
    let config = TcpConfig {
        sack_permitted: true,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1460).sack_permitted());
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    let connection = harness.layer.accept(listener).unwrap();
    harness
        .layer
        .write(connection, &alloc::vec![3u8; 1460 * 10])
        .unwrap();
    harness.collect();
    assert_eq!(harness.sent.len(), 10);
    harness.sent.clear();
    let segment = |index: u32| iss + 1 + index * 1460;
    // Segments 0 and 3 are lost; the peer SACKs what follows each hole.
    let duplicate = |right: u32| {
        let mut ack = Inbound::new(ACK, 1001, segment(0));
        ack.options.sack_block_count = 2;
        ack.options.sack_blocks[0] = (segment(4), segment(right));
        ack.options.sack_blocks[1] = (segment(1), segment(3));
        ack
    };
    harness.inject(duplicate(5));
    harness.inject(duplicate(6));
    harness.expect_nothing();
    harness.inject(duplicate(7));
    let first = harness.expect();
    assert_eq!(
        first.sequence,
        segment(0),
        "fast retransmit of the first hole"
    );
    harness.expect_nothing();
    // The next duplicate resends the second hole at once, without waiting for a partial ACK.
    harness.inject(duplicate(8));
    let second = harness.expect();
    assert_eq!(second.sequence, segment(3));
    assert_eq!(second.payload.len(), 1460);
    // Further duplicates find no hole left below the SACKed data.
    harness.inject(duplicate(9));
    assert!(
        harness
            .sent
            .iter()
            .all(|sent| sent.sequence != segment(0) && sent.sequence != segment(3))
    );
}

/// A connection with timestamps and ten full segments in flight, sent at TSval `sent`; the
/// peer answers with three duplicate ACKs 10 ms later, which resend the first segment.
/// Returns (harness, SND.MAX, TSval of the original segments, TSval of the retransmission).
fn fast_retransmit_with_timestamps() -> (Harness, u32, u32, u32) {
    let mut harness = Harness::new(TcpConfig {
        timestamps: true,
        ..plain_config()
    });
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1460).timestamp(100, 0));
    let syn_ack = harness.expect();
    let iss = syn_ack.sequence;
    let our = syn_ack.options.timestamp.unwrap().0;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(101, our));
    let connection = harness.layer.accept(listener).unwrap();
    harness
        .layer
        .write(connection, &alloc::vec![3u8; 1460 * 10])
        .unwrap();
    harness.collect();
    let sent = harness.sent.front().unwrap().options.timestamp.unwrap().0;
    let last = harness.sent.back().unwrap();
    // The timestamp option takes 12 bytes of each segment: 1448 of data.
    let send_max = last.sequence + last.payload.len() as u32;
    harness.sent.clear();
    harness.advance(Duration::from_millis(10));
    for _ in 0..3 {
        harness.inject(Inbound::new(ACK, 1001, iss + 1).timestamp(102, sent));
    }
    let resent = harness.expect();
    assert_eq!(resent.sequence, iss + 1);
    let resent_timestamp = resent.options.timestamp.unwrap().0;
    assert!(resent_timestamp > sent);
    (harness, send_max, sent, resent_timestamp)
}

#[test]
fn an_ack_echoing_the_original_undoes_a_spurious_fast_retransmit() {
    // Eifel detection (RFC 3522): the ACK beyond the resent segment echoes the original's
    // TSval, so the original arrived (it was reordered, not lost) and the window reduction is
    // undone (RFC 4015).
    let (mut harness, send_max, sent, _) = fast_retransmit_with_timestamps();
    harness.inject(Inbound::new(ACK, 1001, send_max).timestamp(103, sent));
    assert_eq!(harness.layer.counters().spurious_fast_retransmits, 1);
}

#[test]
fn an_ack_echoing_the_retransmission_keeps_the_reduction() {
    let (mut harness, send_max, _, resent) = fast_retransmit_with_timestamps();
    harness.inject(Inbound::new(ACK, 1001, send_max).timestamp(103, resent));
    assert_eq!(harness.layer.counters().spurious_fast_retransmits, 0);
}

/// Issue 10, defect 9 (RFC 6582 section 3.2 step 2, the `recover` guard): after a timeout,
/// duplicate ACKs that the go-back-N retransmissions (or the late originals) draw must not
/// start a false fast retransmit while the cumulative ACK has not passed what was sent before
/// the timeout. Before, three of them did, halving ssthresh a second time.
#[test]
fn duplicate_acks_after_a_timeout_do_not_start_a_false_fast_retransmit() {
    let mut harness = Harness::plain();
    let (iss, _connection) = with_flight(&mut harness, 20);
    harness.sent.clear();
    harness.advance(Duration::from_secs(1));
    harness.expect().assert(ACK, iss + 1, 1001);
    assert_eq!(harness.layer.counters().timeouts, 1);
    // The retransmission fills the hole before five segments the receiver had: the ACK jumps
    // six segments, and go-back-N resends the next two, which the receiver also has.
    let after_hole = iss + 1 + 6 * 1460;
    harness.inject(Inbound::new(ACK, 1001, after_hole));
    assert_eq!(harness.sent.len(), 2);
    harness.sent.clear();
    for _ in 0..5 {
        harness.inject(Inbound::new(ACK, 1001, after_hole));
    }
    assert_eq!(harness.layer.counters().fast_retransmits, 0);
    // Once everything sent before the timeout is acknowledged, a loss in new data draws its
    // fast retransmit as usual.
    let recover = iss + 1 + 10 * 1460;
    harness.inject(Inbound::new(ACK, 1001, recover));
    assert!(!harness.sent.is_empty(), "new data goes");
    harness.sent.clear();
    for _ in 0..3 {
        harness.inject(Inbound::new(ACK, 1001, recover));
    }
    assert_eq!(harness.layer.counters().fast_retransmits, 1);
}

/// A connection with SACK (no timestamps) and `count` full segments written; returns where
/// each segment starts, by index.
fn with_sack_flight(harness: &mut Harness, count: usize) -> impl Fn(u32) -> u32 + use<> {
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0).mss(1460).sack_permitted());
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    let connection = harness.layer.accept(listener).unwrap();
    harness
        .layer
        .write(connection, &alloc::vec![3u8; 1460 * count])
        .unwrap();
    harness.collect();
    move |index: u32| iss + 1 + index * 1460
}

/// A duplicate ACK of `acknowledged` reporting `blocks` (at most four).
fn sack(acknowledged: u32, blocks: &[(u32, u32)]) -> Inbound {
    let mut ack = Inbound::new(ACK, 1001, acknowledged);
    ack.options.sack_block_count = blocks.len() as u8;
    ack.options.sack_blocks[..blocks.len()].copy_from_slice(blocks);
    ack
}

/// Issue 29, item 8: in SACK recovery a hole is resent once, and the next hole is searched
/// above everything resent so far. When that retransmission is lost as well, the partial ACK
/// that stops just below it is the sign (RFC 6582 section 3.2 step 5: the first unacknowledged
/// segment is lost; RFC 6675's lost-retransmission handling, Linux's RACK). Before, the hole
/// lay below `resent_up_to` and waited for the retransmission timeout.
#[test]
fn a_partial_ack_in_sack_recovery_resends_a_hole_whose_retransmission_was_lost() {
    let mut harness = Harness::new(TcpConfig {
        sack_permitted: true,
        ..plain_config()
    });
    let segment = with_sack_flight(&mut harness, 10);
    assert_eq!(harness.sent.len(), 10);
    harness.sent.clear();
    // Segments 0 and 3 are lost; the fast retransmission resends 0, the next duplicate 3.
    for right in 5..=8 {
        harness.inject(sack(
            segment(0),
            &[(segment(4), segment(right)), (segment(1), segment(3))],
        ));
    }
    let resent: Vec<u32> = harness.sent.drain(..).map(|sent| sent.sequence).collect();
    assert_eq!(resent, [segment(0), segment(3)]);
    // The resent segment 0 arrives, the resent segment 3 is lost: the partial ACK stops at 3.
    harness.inject(sack(segment(3), &[(segment(4), segment(9))]));
    let resent = harness.expect();
    assert_eq!(resent.sequence, segment(3), "the hole at SND.UNA, again");
    assert_eq!(resent.payload.len(), 1460);
    assert_eq!(harness.layer.counters().timeouts, 0);
}

/// Issue 29, item 8 (Karn's rule, RFC 6298 section 3): without timestamps the RTT is timed on
/// one segment; when recovery resends that segment as a SACK hole, the ACK that covers it
/// may answer either copy and must not be taken as a sample. `retransmit_first` forgot the
/// timing; `retransmit_next_hole` did not, and the ACK below gave a 100 ms sample.
#[test]
fn a_timed_segment_resent_as_a_sack_hole_gives_no_rtt_sample() {
    let mut harness = Harness::new(TcpConfig {
        sack_permitted: true,
        ..plain_config()
    });
    let segment = with_sack_flight(&mut harness, 14);
    harness.sent.clear();
    // Segment 0 is lost: limited transmit sends 10 and 11, the third duplicate resends 0 (which
    // forgets the timing of 0), and the window that inflates with the duplicates sends 12
    // (timed: the first new segment since) and 13.
    for right in 2..=9 {
        harness.inject(sack(segment(0), &[(segment(1), segment(right))]));
    }
    let sent: Vec<u32> = harness.sent.drain(..).map(|sent| sent.sequence).collect();
    assert_eq!(
        sent,
        [
            segment(10),
            segment(11),
            segment(0),
            segment(12),
            segment(13)
        ]
    );
    // Segment 12 is lost too: recovery resends it as the next hole.
    harness.inject(sack(
        segment(0),
        &[(segment(13), segment(14)), (segment(1), segment(12))],
    ));
    harness.expect().assert(ACK, segment(12), 1001);
    harness.advance(Duration::from_millis(100));
    harness.inject(Inbound::new(ACK, 1001, segment(14)));
    let mut sockets = Vec::new();
    harness.layer.list_sockets(&mut sockets);
    let line = sockets
        .iter()
        .find(|info| info.state == crate::net::tcp::TcpState::Established)
        .unwrap();
    assert_eq!(line.smoothed_rtt, None, "every timed segment was resent");
}
