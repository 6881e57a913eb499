//! Orphans behind a shut window (issue 29, items 5 and 6): how long one is held, the cap whatever the peer does, and reaping under memory pressure.

use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::{ACK, Harness, Inbound, PSH, RST, SYN, plain_config};
use crate::net::tcp::{SocketHandle, TcpConfig};

/// A connection from the peer's `port` that measured a 20 ms round trip (so its RTO is the
/// 200 ms floor, as on a LAN) and then saw the window shut, with `queued` more bytes written
/// and unsent; returns (our ISN, handle).
fn behind_closed_window(harness: &mut Harness, port: u16, queued: usize) -> (u32, SocketHandle) {
    let listener = harness.listen();
    harness.sent.clear();
    harness.inject(Inbound::new(SYN, 1000, 0).ports(port, 80));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).ports(port, 80));
    let connection = harness.layer.accept(listener).unwrap();
    harness.layer.write(connection, b"x").unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    harness.advance(Duration::from_millis(20));
    harness.inject(Inbound::new(ACK, 1001, iss + 2).ports(port, 80).window(0));
    let written = harness.layer.write(connection, &vec![7u8; queued]);
    assert_eq!(written, Ok(queued));
    harness.collect();
    harness.expect_nothing();
    harness.layer.close(listener).unwrap();
    (iss + 1, connection)
}

/// Item 6: an orphan whose receiver answers every probe (window still shut) was reset after
/// `max_retransmissions` doublings of the probe interval, about 141 s from a 200 ms RTO,
/// where Linux holds it until its probe interval reaches the 120 s RTO cap, about 325 s.
/// Without memory pressure it now lives `orphan_persist_limit` (6 minutes) in persist.
#[test]
fn an_orphan_whose_receiver_answers_every_probe_outlives_linux_hold() {
    let mut harness = Harness::new(plain_config());
    let (iss, connection) = behind_closed_window(&mut harness, 40_000, 100);
    harness.layer.close(connection).unwrap();
    harness.collect();
    let closed_at = harness.now;
    let mut reset_at = None;
    while reset_at.is_none() && harness.now.saturating_since(closed_at) < Duration::from_secs(3600)
    {
        harness.advance(Duration::from_millis(100));
        while let Some(segment) = harness.sent.pop_front() {
            if segment.flags & RST != 0 {
                segment.assert(RST | ACK, iss + 1, 1001);
                reset_at = Some(harness.now.saturating_since(closed_at));
            } else {
                segment.assert(ACK, iss, 1001);
                harness.inject(Inbound::new(ACK, 1001, iss + 1).window(0));
            }
        }
    }
    let lived = reset_at.expect("the orphan is given up on in the end");
    assert!(lived >= Duration::from_secs(325), "reset after {lived:?}");
    let limit = plain_config().orphan_persist_limit;
    assert!(
        lived <= limit + Duration::from_millis(100),
        "reset after {lived:?}"
    );
    assert_eq!(harness.layer.counters().orphan_persist_limits, 1);
    assert_eq!(harness.layer.counters().persist_timeouts, 0);
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
    assert_eq!(harness.layer.timer_entries(), 0);
}

/// Item 5: the give-up counted doublings of the probe interval, which any byte in flight
/// resets. A peer that answers 14 probes, opens a one-byte window, acknowledges that byte
/// with the window shut again, and repeats, kept an orphan (and up to its whole send buffer)
/// for as long as it liked. The time in persist is now counted over every stretch.
#[test]
fn an_orphan_fed_a_byte_of_window_now_and_then_is_reset_within_the_cap() {
    let mut harness = Harness::new(plain_config());
    let (iss, connection) = behind_closed_window(&mut harness, 40_000, 4000);
    harness.layer.close(connection).unwrap();
    harness.collect();
    let closed_at = harness.now;
    let mut acknowledged = iss + 1;
    let mut probes_answered = 0;
    let mut bytes_let_through = 0;
    let mut reset_at = None;
    while reset_at.is_none() && harness.now.saturating_since(closed_at) < Duration::from_secs(3600)
    {
        harness.advance(Duration::from_millis(100));
        while let Some(segment) = harness.sent.pop_front() {
            if segment.flags & RST != 0 {
                reset_at = Some(harness.now.saturating_since(closed_at));
            } else if segment.payload.is_empty() {
                // A probe: shut, but every 15th answer opens one byte.
                probes_answered += 1;
                let window = if probes_answered % 15 == 0 { 1 } else { 0 };
                harness.inject(Inbound::new(ACK, 1001, acknowledged).window(window));
            } else {
                assert_eq!(segment.payload.len(), 1);
                bytes_let_through += 1;
                acknowledged = segment.sequence + 1;
                harness.inject(Inbound::new(ACK, 1001, acknowledged).window(0));
            }
        }
    }
    let lived = reset_at.expect("the orphan is reset");
    let limit = plain_config().orphan_persist_limit;
    assert!(
        lived <= limit + Duration::from_secs(1),
        "reset after {lived:?}"
    );
    assert!(
        bytes_let_through >= 2,
        "{bytes_let_through} bytes, {probes_answered} probes, {lived:?}: the pattern did not run"
    );
    assert_eq!(harness.layer.counters().orphan_persist_limits, 1);
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
}

/// Items 5 and 6: when the buffer budget runs into its reserve, orphans holding unsent data
/// are reset, the one closed longest ago first, and only as many as it takes (Linux resets
/// orphans in `tcp_out_of_resources` when memory is short).
#[test]
fn memory_pressure_reaps_the_oldest_orphan_first() {
    // A 64 KiB budget: the shared part ends at 48 KiB.
    let config = TcpConfig {
        max_buffer_memory: 64 * 1024,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let mut orphans = Vec::new();
    for port in [40_001, 40_002, 40_003] {
        let (_, connection) = behind_closed_window(&mut harness, port, 12 * 1024);
        harness.advance(Duration::from_secs(1));
        harness.layer.close(connection).unwrap();
        orphans.push(port);
    }
    harness.sent.clear();
    // Nothing reaped while the shared part lasts.
    harness.advance(Duration::from_secs(30));
    assert_eq!(harness.layer.connection_count(), 3);
    harness.sent.clear();
    // A client that never reads takes the rest of the shared part.
    let (_, reader) = behind_closed_window(&mut harness, 40_004, 12 * 1024);
    assert!(harness.layer.buffer_memory_used() >= 48 * 1024);
    harness.advance(Duration::from_secs(30));
    let resets: Vec<u16> = harness
        .sent
        .iter()
        .filter(|segment| segment.flags & RST != 0)
        .map(|segment| segment.destination.port())
        .collect();
    assert_eq!(resets, [orphans[0]], "the oldest orphan, and only it");
    assert_eq!(harness.layer.counters().orphans_reaped, 1);
    assert_eq!(harness.layer.connection_count(), 3);
    assert!(harness.layer.buffer_memory_used() < 48 * 1024);
    assert!(harness.layer.state(reader).is_ok());
}

/// A connection from `port` whose peer offered a one-byte window from its SYN on (so the
/// sender's silly-window avoidance never holds data back and the connection never enters
/// persist), with `queued` bytes written after the first; returns (our ISN + 1, handle).
fn behind_one_byte_window(harness: &mut Harness, port: u16, queued: usize) -> (u32, SocketHandle) {
    let listener = harness.listen();
    harness.sent.clear();
    harness.inject(Inbound::new(SYN, 1000, 0).ports(port, 80).window(1));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1).ports(port, 80).window(1));
    let connection = harness.layer.accept(listener).unwrap();
    harness.layer.write(connection, b"x").unwrap();
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 1001);
    harness.advance(Duration::from_millis(20));
    harness.inject(Inbound::new(ACK, 1001, iss + 2).ports(port, 80).window(1));
    assert_eq!(
        harness.layer.write(connection, &vec![7u8; queued]),
        Ok(queued)
    );
    harness.layer.close(listener).unwrap();
    (iss + 1, connection)
}

/// Plays the peer of `behind_one_byte_window` for `duration`: each byte is acknowledged
/// (window one byte again) only after its fifth retransmission, so the orphan is never in
/// persist and never reaches `max_retransmissions`. Returns when the orphan was reset
/// (since the start) and the bytes acknowledged.
fn feed_a_byte_after_five_retransmissions(
    harness: &mut Harness,
    port: u16,
    duration: Duration,
) -> (Option<Duration>, u32) {
    let start = harness.now;
    let mut copies = 0;
    let mut acknowledged = 0;
    while harness.now.saturating_since(start) < duration {
        harness.advance(Duration::from_millis(100));
        let sent: Vec<_> = harness.sent.drain(..).collect();
        for segment in sent {
            if segment.destination.port() != port {
                continue;
            }
            if segment.flags & RST != 0 {
                return (Some(harness.now.saturating_since(start)), acknowledged);
            }
            if segment.payload.len() == 1 {
                copies += 1;
                if copies == 6 {
                    copies = 0;
                    acknowledged += 1;
                    harness.inject(
                        Inbound::new(ACK, 1001, segment.sequence + 1)
                            .ports(port, 80)
                            .window(1),
                    );
                }
            }
        }
    }
    (None, acknowledged)
}

/// Review of issue 29's fixes, should-fix 5: a peer that keeps a one-byte window open and
/// acknowledges each byte just before the sender gives up keeps the orphan out of persist,
/// so neither the cap on its time in persist nor the reaping (which took only orphans in
/// persist) applied: about 6 s a byte here, up to 64 KiB. The cap now counts the time since
/// the orphan was made, while it holds data.
#[test]
fn an_orphan_kept_out_of_persist_is_reset_at_the_cap() {
    let mut harness = Harness::new(plain_config());
    let (_, connection) = behind_one_byte_window(&mut harness, 40_000, 4000);
    harness.layer.close(connection).unwrap();
    let (reset_at, acknowledged) =
        feed_a_byte_after_five_retransmissions(&mut harness, 40_000, Duration::from_secs(3600));
    let lived = reset_at.expect("the orphan is reset");
    assert!(acknowledged >= 2, "the pattern did not run");
    let config = plain_config();
    assert!(
        lived <= config.orphan_persist_limit + config.max_rto,
        "reset after {lived:?}"
    );
    assert_eq!(harness.layer.counters().orphan_persist_limits, 1);
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
}

/// The same orphan under memory pressure is reaped, by its retransmission timer (Linux calls
/// `tcp_out_of_resources` from it too), without waiting for the cap.
#[test]
fn an_orphan_kept_out_of_persist_is_reaped_under_memory_pressure() {
    let config = TcpConfig {
        max_buffer_memory: 64 * 1024,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (_, reader) = behind_closed_window(&mut harness, 40_004, 100);
    let (_, connection) = behind_one_byte_window(&mut harness, 40_001, 4000);
    harness.layer.close(connection).unwrap();
    // The client that never reads takes the rest of the shared part.
    while harness.layer.write(reader, &[7; 4096]).is_ok() {}
    assert!(harness.layer.buffer_memory_used() >= 48 * 1024);
    let (reset_at, _) =
        feed_a_byte_after_five_retransmissions(&mut harness, 40_001, Duration::from_secs(60));
    assert!(reset_at.is_some(), "the orphan is reaped");
    assert_eq!(harness.layer.counters().orphans_reaped, 1);
    assert!(harness.layer.state(reader).is_ok());
}
