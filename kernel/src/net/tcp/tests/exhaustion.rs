//! Resource exhaustion (issue 10, "prove it"): tens of thousands of spoofed SYNs and of idle connections stay within the per-core limits, are counted, and leave nothing behind.

use alloc::vec::Vec;

use super::*;
use crate::net::tcp::{DropReason, SocketError, TcpState};

/// Completes a handshake from `port` with a client that offers timestamps (so a cookie can
/// carry its options) and returns (our ISN, our TSval).
fn handshake_from(harness: &mut Harness, port: u16, peer_isn: u32) -> (u32, u32) {
    harness.inject(
        Inbound::new(SYN, peer_isn, 0)
            .ports(port, SERVER_PORT)
            .mss(1460)
            .timestamp(1, 0),
    );
    let syn_ack = harness
        .sent
        .drain(..)
        .find(|segment| segment.destination.port() == port)
        .expect("a SYN-ACK");
    let ours = syn_ack.options.timestamp.map_or(0, |(value, _)| value);
    harness.inject(
        Inbound::new(ACK, peer_isn + 1, syn_ack.sequence + 1)
            .ports(port, SERVER_PORT)
            .timestamp(2, ours),
    );
    (syn_ack.sequence, ours)
}

/// A SYN flood of 50 000 spoofed sources that never answer: the SYN queue holds at most
/// `syn_queue_size` half-open records, the rest get stateless cookies, clients that do answer
/// still get through all along, and when the flood stops every half-open record and timer goes.
#[test]
fn a_syn_flood_stays_within_the_syn_queue_and_honest_clients_get_through() {
    let config = TcpConfig {
        timestamps: true,
        ..plain_config()
    };
    let syn_queue = config.syn_queue_size;
    let mut harness = Harness::new(config);
    let listener = harness
        .layer
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 4096)
        .unwrap();
    let mut honest = 0;
    for index in 0..50_000u32 {
        // Spoofed: one SYN per source port, never an ACK.
        let port = 1 + (index % 60_000) as u16;
        harness.inject(Inbound::new(SYN, index * 7, 0).ports(port, SERVER_PORT));
        harness.sent.clear();
        assert!(harness.layer.connection_count() <= syn_queue + honest);
        if index % 1000 == 999 {
            // An honest client in the middle of the flood: its handshake completes through a
            // cookie, its request arrives.
            let port = 60_001 + honest as u16;
            let (iss, ours) = handshake_from(&mut harness, port, 1000);
            harness.inject(
                Inbound::new(ACK | PSH, 1001, iss + 1)
                    .ports(port, SERVER_PORT)
                    .timestamp(3, ours)
                    .payload(b"GET / HTTP/1.1\r\n\r\n"),
            );
            harness.sent.clear();
            let connection = harness.layer.accept(listener).expect("the honest client");
            let mut buffer = [0u8; 64];
            assert_eq!(harness.layer.read(connection, &mut buffer), Ok(18));
            harness.layer.abort(connection).unwrap();
            harness.sent.clear();
            honest += 1;
        }
        if index % 100 == 0 {
            harness.now = harness.now + Duration::from_millis(1);
        }
    }
    let counters = harness.layer.counters().clone();
    assert_eq!(honest, 50);
    assert!(counters.syn_cookies_sent >= 50_000 - syn_queue as u64);
    // The first honest client came before the queue filled (a half-open record); the 49
    // others after it (cookies).
    assert_eq!(counters.syn_cookies_validated, 49);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
    // The flood stops: the half-open records retry their SYN-ACKs and give up.
    harness.advance(Duration::from_secs(200));
    harness.sent.clear();
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.timer_entries(), 0);
    let mut sockets = Vec::new();
    harness.layer.list_sockets(&mut sockets);
    assert_eq!(
        sockets.len(),
        1,
        "only the listener: {:?}",
        &sockets[..2.min(sockets.len())]
    );
}

/// Slowloris: 25 000 clients each open a connection, send ten bytes of a request and go
/// quiet. The per-core connection limit holds (20 000 here), the refused SYNs are counted by
/// cause, the buffered bytes are exactly what arrived, and once the application closes the
/// idle ones (its request timeout) new clients are served and nothing is left behind.
#[test]
fn idle_connections_stay_within_the_connection_limit_and_are_counted() {
    let config = TcpConfig {
        max_connections: 20_000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness
        .layer
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 4096)
        .unwrap();
    let mut accepted = Vec::new();
    for index in 0..25_000u32 {
        let port = 20_000 + index as u16;
        harness.inject(Inbound::new(SYN, 1000, 0).ports(port, SERVER_PORT));
        let Some(syn_ack) = harness.sent.pop_front() else {
            continue; // refused by the limit
        };
        harness.inject(Inbound::new(ACK, 1001, syn_ack.sequence + 1).ports(port, SERVER_PORT));
        harness.inject(
            Inbound::new(ACK | PSH, 1001, syn_ack.sequence + 1)
                .ports(port, SERVER_PORT)
                .payload(b"GET / HTTP"),
        );
        harness.sent.clear();
        accepted.push(harness.layer.accept(listener).unwrap());
    }
    assert_eq!(accepted.len(), 20_000);
    assert_eq!(harness.layer.connection_count(), 20_000);
    assert_eq!(
        harness
            .layer
            .counters()
            .dropped(DropReason::ConnectionLimit),
        5_000
    );
    assert_eq!(harness.layer.buffer_memory_used(), 20_000 * 10);
    assert!(
        harness.layer.timer_entries() <= 20_000,
        "{} timer entries",
        harness.layer.timer_entries()
    );
    // The application's request timeout closes them (unread data: a RST each).
    for connection in accepted.drain(..) {
        harness.layer.close(connection).unwrap();
    }
    harness.collect();
    harness.sent.clear();
    assert_eq!(harness.layer.connection_count(), 0);
    assert_eq!(harness.layer.buffer_memory_used(), 0);
    // A new client is served.
    let (iss, _) = handshake_from(&mut harness, 50_000, 5000);
    let connection = harness.layer.accept(listener).unwrap();
    assert_eq!(harness.layer.state(connection), Ok(TcpState::Established));
    assert_eq!(
        harness.layer.write(connection, b"HTTP/1.1 200 OK\r\n\r\n"),
        Ok(19)
    );
    harness.collect();
    harness.expect().assert(ACK | PSH, iss + 1, 5001);
    harness.advance(Duration::from_secs(1));
    assert!(harness.layer.timer_entries() <= 1);
}

/// Clients that ask for a large response and never read (their window stays closed): their
/// send buffers fill the shared three quarters of the per-core budget and no more, and a new
/// client's request still arrives and its response still goes out from the reserved quarter.
/// Before the reserve, the budget's last byte went to whichever connection wrote first and a
/// new client's request was dropped (`MemoryLimit`) and its response refused.
#[test]
fn clients_that_never_read_cannot_take_the_budget_a_new_client_needs() {
    let config = TcpConfig {
        timestamps: true,
        max_buffer_memory: 400_000,
        send_buffer_size: 64 * 1024,
        ..plain_config()
    };
    let shared = 300_000;
    let mut harness = Harness::new(config);
    let listener = harness
        .layer
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 4096)
        .unwrap();
    let mut hoarders = Vec::new();
    for index in 0..10u16 {
        // A client that never reads: its window is closed by the time the response comes
        // (here from the handshake's last ACK on).
        let port = 20_000 + index;
        harness.inject(
            Inbound::new(SYN, 1000, 0)
                .ports(port, SERVER_PORT)
                .mss(1460)
                .timestamp(1, 0),
        );
        let syn_ack = harness.sent.pop_back().expect("a SYN-ACK");
        let ours = syn_ack.options.timestamp.map_or(0, |(value, _)| value);
        harness.inject(
            Inbound::new(ACK, 1001, syn_ack.sequence + 1)
                .ports(port, SERVER_PORT)
                .timestamp(2, ours)
                .window(0),
        );
        let connection = harness.layer.accept(listener).unwrap();
        // The application writes as much as the stack takes (a streaming response).
        let mut taken = 0;
        while let Ok(count) = harness.layer.write(connection, &[7; 16 * 1024]) {
            taken += count;
        }
        assert!(taken > 0 || index > 4, "hoarder {index} got nothing");
        hoarders.push(connection);
    }
    harness.collect();
    harness.sent.clear();
    assert_eq!(harness.layer.buffer_memory_used(), shared);
    assert!(harness.layer.counters().write_memory_refusals > 0);

    // A new client: its 200-byte request is buffered, its 1 000-byte response accepted.
    let (iss, ours) = handshake_from(&mut harness, 30_000, 5000);
    let connection = harness.layer.accept(listener).unwrap();
    harness.inject(
        Inbound::new(ACK | PSH, 5001, iss + 1)
            .ports(30_000, SERVER_PORT)
            .timestamp(3, ours)
            .payload(&[b'r'; 200]),
    );
    assert_eq!(harness.layer.counters().dropped(DropReason::MemoryLimit), 0);
    let mut request = [0u8; 512];
    assert_eq!(harness.layer.read(connection, &mut request), Ok(200));
    assert_eq!(harness.layer.write(connection, &[b'a'; 1000]), Ok(1000));
    harness.collect();
    let response = harness
        .sent
        .iter()
        .find(|segment| segment.destination.port() == 30_000 && !segment.payload.is_empty())
        .expect("the response");
    assert_eq!(response.payload.len(), 1000);
    // A hoarder gains nothing from the reserve: it already holds more than the guarantee.
    assert_eq!(
        harness.layer.write(hoarders[0], &[7; 1024]),
        Err(SocketError::WouldBlock)
    );
    // The reserve itself is bounded: the budget is never exceeded.
    assert!(harness.layer.buffer_memory_used() <= 400_000);
}

/// A passive open from `port` without options, on `listener`; returns (our ISN, handle).
fn open_plain(
    harness: &mut Harness,
    listener: SocketHandle,
    port: u16,
    peer_isn: u32,
) -> (u32, SocketHandle) {
    harness.inject(
        Inbound::new(SYN, peer_isn, 0)
            .ports(port, SERVER_PORT)
            .mss(1460),
    );
    let syn_ack = harness
        .sent
        .drain(..)
        .find(|segment| segment.destination.port() == port)
        .expect("a SYN-ACK");
    harness.inject(Inbound::new(ACK, peer_isn + 1, syn_ack.sequence + 1).ports(port, SERVER_PORT));
    (syn_ack.sequence, harness.layer.accept(listener).unwrap())
}

/// A client of `fill_budget_with_writers`: its port, our ISN and the handle.
struct Writer {
    port: u16,
    iss: u32,
    connection: SocketHandle,
}

/// Opens clients from `ports` (their ISN 7000) whose applications write until the stack
/// refuses, as many streaming responses do.
fn fill_budget_with_writers(
    harness: &mut Harness,
    listener: SocketHandle,
    ports: core::ops::Range<u16>,
) -> Vec<Writer> {
    let mut writers = Vec::new();
    for port in ports {
        let (iss, connection) = open_plain(harness, listener, port, 7000);
        while harness.layer.write(connection, &[7; 16 * 1024]).is_ok() {}
        writers.push(Writer {
            port,
            iss,
            connection,
        });
    }
    harness.sent.clear();
    writers
}

/// Issue 29, item 2: a lost segment followed by two that arrive is held out of order, then
/// another connection uses up the shared part of the budget. The room for in-order data counted the out-of-order
/// bytes already held, so every retransmission of the lost segment was dropped
/// (`MemoryLimit`) and the application could read nothing until the peer gave up. Data at
/// RCV.NXT is admitted by dropping out-of-order data from the top (Linux's
/// `tcp_prune_ofo_queue`), and the peer resends what was dropped.
#[test]
fn the_segment_that_fills_a_hole_is_admitted_when_the_budget_is_used_up() {
    let limit = 40_000;
    let config = TcpConfig {
        max_buffer_memory: limit,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let port = 20_000;
    let (iss, lossy) = open_plain(&mut harness, listener, port, 1000);
    let stream: Vec<u8> = (0..3 * 1460u32).map(|index| (index % 251) as u8).collect();
    harness.inject(
        Inbound::new(ACK, 1001 + 1460, iss + 1)
            .ports(port, SERVER_PORT)
            .payload(&stream[1460..]),
    );
    assert_eq!(harness.layer.buffer_memory_used(), 2 * 1460);
    // A streaming response to a client that does not read takes the shared part.
    let writers = fill_budget_with_writers(&mut harness, listener, 20_001..20_002);
    assert_eq!(harness.layer.buffer_memory_used(), limit - limit / 4);
    assert_eq!(
        harness.layer.write(writers[0].connection, b"x"),
        Err(SocketError::WouldBlock)
    );
    let dropped_before = harness.layer.counters().dropped(DropReason::MemoryLimit);

    // The lost segment is resent: admitted, the application reads it and what follows.
    harness.inject(
        Inbound::new(ACK, 1001, iss + 1)
            .ports(port, SERVER_PORT)
            .payload(&stream[..1460]),
    );
    assert_eq!(
        harness.layer.counters().dropped(DropReason::MemoryLimit),
        dropped_before
    );
    assert!(harness.layer.counters().out_of_order_bytes_pruned > 0);
    assert!(harness.layer.buffer_memory_used() <= limit);
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let count = harness.layer.read(lossy, &mut buffer).unwrap();
    assert!(count >= 1460, "only {count} bytes readable");
    received.extend_from_slice(&buffer[..count]);
    let acknowledged = harness
        .sent
        .iter()
        .rev()
        .find(|segment| segment.destination.port() == port)
        .expect("an ACK")
        .acknowledgment;
    assert_eq!(acknowledged, 1001 + count as u32);
    // The peer resends what was dropped; it is admitted too.
    harness.inject(
        Inbound::new(ACK, acknowledged, iss + 1)
            .ports(port, SERVER_PORT)
            .payload(&stream[count..]),
    );
    while let Ok(count) = harness.layer.read(lossy, &mut buffer) {
        received.extend_from_slice(&buffer[..count]);
    }
    assert_eq!(received.len(), stream.len());
    assert_eq!(received, stream);
}

/// Issue 29, item 3: a client that closed its window (it was busy) gets its response
/// refused by the budget: the shared part is used, and the reserve gives a connection only
/// what the peer's window takes. Its window update acknowledges nothing new, and only newly
/// acknowledged data woke a writer, so the application waited until its idle timeout.
#[test]
fn a_window_update_wakes_a_writer_the_budget_refused() {
    let config = TcpConfig {
        max_buffer_memory: 40_000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    fill_budget_with_writers(&mut harness, listener, 20_001..20_002);
    let port = 20_000;
    let (iss, client) = open_plain(&mut harness, listener, port, 1000);
    harness.inject(
        Inbound::new(ACK, 1001, iss + 1)
            .ports(port, SERVER_PORT)
            .window(0),
    );
    let refusals = harness.layer.counters().write_memory_refusals;
    let (wakes, waker) = super::sockets::counting_waker();
    let mut context = core::task::Context::from_waker(&waker);
    assert_eq!(
        harness.layer.poll_write(client, &mut context, b"response"),
        core::task::Poll::Pending
    );
    assert_eq!(harness.layer.counters().write_memory_refusals, refusals + 1);
    // The client opens its window: nothing new acknowledged.
    harness.inject(
        Inbound::new(ACK, 1001, iss + 1)
            .ports(port, SERVER_PORT)
            .window(8192),
    );
    assert_eq!(wakes.0.load(core::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(harness.layer.write(client, b"response"), Ok(8));
}

/// Issue 29, item 3: a new client's response is refused because the budget is used up
/// (the shared part by a streaming response, the reserve by other clients); when another
/// connection's data is acknowledged and its memory given back, the refused writer, which
/// has nothing queued and so no ACK of its own to wait for, must be woken.
#[test]
fn memory_given_back_by_another_connection_wakes_a_writer_the_budget_refused() {
    let config = TcpConfig {
        max_buffer_memory: 40_000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let writers = fill_budget_with_writers(&mut harness, listener, 20_001..20_006);
    let port = 20_000;
    let (_, client) = open_plain(&mut harness, listener, port, 1000);
    let (wakes, waker) = super::sockets::counting_waker();
    let mut context = core::task::Context::from_waker(&waker);
    assert_eq!(
        harness.layer.poll_write(client, &mut context, b"response"),
        core::task::Poll::Pending
    );
    // The streaming response's client acknowledges 5 000 bytes.
    let streamer = &writers[0];
    harness
        .inject(Inbound::new(ACK, 7001, streamer.iss + 1 + 5000).ports(streamer.port, SERVER_PORT));
    assert_eq!(wakes.0.load(core::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(harness.layer.write(client, b"response"), Ok(8));
}

/// Issue 29, item 3: the reserve serves at most `reserve / (2 * guaranteed_buffer)`
/// connections at once, each with its whole guarantee; the next is refused and counted
/// until one of them holds nothing again, and is then woken. Before, every client got
/// whatever was left, a quarter of the budget over 4 KiB clients exhausted it, and the
/// ones after got a fraction of a response.
#[test]
fn the_reserve_serves_a_bounded_number_of_connections() {
    let config = TcpConfig {
        max_buffer_memory: 80_000,
        ..plain_config()
    };
    let guarantee = config.guaranteed_buffer;
    let users = 80_000 / 4 / (2 * guarantee);
    assert_eq!(users, 2);
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    // A streaming response takes the shared three quarters.
    let streamer = fill_budget_with_writers(&mut harness, listener, 20_001..20_002).remove(0);
    assert_eq!(harness.layer.buffer_memory_used(), 60_000);
    let mut clients = Vec::new();
    for port in 21_000..21_000 + users as u16 + 1 {
        let (iss, connection) = open_plain(&mut harness, listener, port, 1000);
        clients.push((port, iss, connection));
    }
    // The first two get their whole guarantee...
    for &(_, _, connection) in &clients[..users] {
        assert_eq!(harness.layer.write(connection, &[1; 8192]), Ok(guarantee));
    }
    // ... the third nothing, though 20 000 - 2 * 4 096 bytes are left.
    let (third_port, third_iss, third) = clients[users];
    let (wakes, waker) = super::sockets::counting_waker();
    let mut context = core::task::Context::from_waker(&waker);
    assert_eq!(
        harness.layer.poll_write(third, &mut context, &[1; 1000]),
        core::task::Poll::Pending
    );
    assert_eq!(harness.layer.counters().reserve_limit_refusals, 1);
    assert!(harness.layer.buffer_memory_used() < 80_000 - guarantee);
    // Its request is not taken from the reserve either.
    harness.inject(
        Inbound::new(ACK | PSH, 1001, third_iss + 1)
            .ports(third_port, SERVER_PORT)
            .payload(&[2; 100]),
    );
    assert_eq!(harness.layer.counters().reserve_limit_refusals, 2);
    // The first client acknowledges everything (what Nagle held back goes out after the
    // first ACK): it leaves the reserve, the third may join.
    let (first_port, first_iss, _) = clients[0];
    harness
        .inject(Inbound::new(ACK, 1001, first_iss + 1 + 2 * 1460).ports(first_port, SERVER_PORT));
    harness.inject(
        Inbound::new(ACK, 1001, first_iss + 1 + guarantee as u32).ports(first_port, SERVER_PORT),
    );
    assert_eq!(wakes.0.load(core::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(harness.layer.write(third, &[1; 1000]), Ok(1000));
    assert!(harness.layer.buffer_memory_used() <= 80_000);

    // The streaming response's client reads a little: the core's memory falls back within
    // the shared part, so what the reserve gave is shared memory again and its places are
    // free, though the second and third clients still hold their bytes.
    harness.inject(
        Inbound::new(ACK, 7001, streamer.iss + 1 + 4 * 1460).ports(streamer.port, SERVER_PORT),
    );
    assert!(harness.layer.buffer_memory_used() <= 60_000);
    while harness.layer.write(streamer.connection, &[7; 1024]).is_ok() {}
    assert_eq!(harness.layer.buffer_memory_used(), 60_000);
    let mut later = Vec::new();
    for port in 22_000..22_000 + users as u16 + 1 {
        later.push(open_plain(&mut harness, listener, port, 1000).1);
    }
    for &connection in &later[..users] {
        assert_eq!(harness.layer.write(connection, &[1; 8192]), Ok(guarantee));
    }
    assert_eq!(
        harness.layer.write(later[users], &[1; 1000]),
        Err(SocketError::WouldBlock)
    );
    assert!(harness.layer.buffer_memory_used() <= 80_000);
}

/// The same when the reserve's places are taken too: the bytes dropped from the top pay for
/// the segment that fills the hole, so it is admitted whatever the rest of the core holds.
#[test]
fn the_segment_that_fills_a_hole_is_admitted_when_the_reserve_is_taken_too() {
    let limit = 40_000;
    let config = TcpConfig {
        max_buffer_memory: limit,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let port = 20_000;
    let (iss, lossy) = open_plain(&mut harness, listener, port, 1000);
    let stream: Vec<u8> = (0..3 * 1460u32).map(|index| (index % 251) as u8).collect();
    harness.inject(
        Inbound::new(ACK, 1001 + 1460, iss + 1)
            .ports(port, SERVER_PORT)
            .payload(&stream[1460..]),
    );
    fill_budget_with_writers(&mut harness, listener, 20_001..20_010);
    let (_, newcomer) = open_plain(&mut harness, listener, 20_100, 1000);
    assert_eq!(
        harness.layer.write(newcomer, b"x"),
        Err(SocketError::WouldBlock)
    );
    let used = harness.layer.buffer_memory_used();

    harness.inject(
        Inbound::new(ACK, 1001, iss + 1)
            .ports(port, SERVER_PORT)
            .payload(&stream[..1460]),
    );
    assert_eq!(harness.layer.counters().dropped(DropReason::MemoryLimit), 0);
    assert_eq!(harness.layer.buffer_memory_used(), used);
    let mut buffer = [0u8; 8192];
    let count = harness.layer.read(lossy, &mut buffer).unwrap();
    assert_eq!(&buffer[..count], &stream[..count]);
    assert!(count >= 1460);
}

/// Review of issue 29's fixes, must-fix 1: a byte held out of order behind a hole the
/// sender never fills is never read, so it must not take one of the reserve's places. Two
/// such bytes, sent while a streaming response holds the shared part, took both places of
/// an 80 000-byte budget, and every new client's response was refused with ~20 KB free.
#[test]
fn bytes_held_out_of_order_take_no_place_in_the_reserve() {
    let config = TcpConfig {
        max_buffer_memory: 80_000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    fill_budget_with_writers(&mut harness, listener, 20_001..20_002);
    assert_eq!(harness.layer.buffer_memory_used(), 60_000);
    for port in 21_000..21_002 {
        let (iss, _) = open_plain(&mut harness, listener, port, 1000);
        harness.inject(
            Inbound::new(ACK, 1001 + 10, iss + 1)
                .ports(port, SERVER_PORT)
                .payload(b"x"),
        );
    }
    let (_, fresh) = open_plain(&mut harness, listener, 22_000, 1000);
    assert_eq!(harness.layer.write(fresh, &[1; 1000]), Ok(1000));
    assert_eq!(harness.layer.counters().reserve_limit_refusals, 0);
}

/// The same for out-of-order bytes taken before the pressure: a connection that joined the
/// reserve for an in-order byte leaves it when the application has read it, whatever it
/// still holds out of order.
#[test]
fn a_connection_holding_only_out_of_order_bytes_leaves_the_reserve() {
    let config = TcpConfig {
        max_buffer_memory: 120_000,
        ..plain_config()
    };
    assert_eq!(120_000 / 4 / (2 * config.guaranteed_buffer), 3);
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let mut attackers = Vec::new();
    for port in 21_000..21_002 {
        let (iss, connection) = open_plain(&mut harness, listener, port, 1000);
        harness.inject(
            Inbound::new(ACK, 1001 + 10, iss + 1)
                .ports(port, SERVER_PORT)
                .payload(b"x"),
        );
        attackers.push((port, iss, connection));
    }
    fill_budget_with_writers(&mut harness, listener, 20_001..20_003);
    // A client whose response is being sent takes the reserve's first place and keeps the
    // core's memory beyond the shared part.
    let (_, holder) = open_plain(&mut harness, listener, 23_000, 1000);
    assert_eq!(harness.layer.write(holder, &[1; 1000]), Ok(1000));
    assert!(harness.layer.buffer_memory_used() > 90_000);
    for &(port, iss, connection) in &attackers {
        harness.inject(
            Inbound::new(ACK, 1001, iss + 1)
                .ports(port, SERVER_PORT)
                .payload(b"y"),
        );
        let mut buffer = [0u8; 16];
        assert_eq!(harness.layer.read(connection, &mut buffer), Ok(1));
    }
    let (_, fresh) = open_plain(&mut harness, listener, 22_000, 1000);
    assert_eq!(harness.layer.write(fresh, &[1; 1000]), Ok(1000));
    assert_eq!(harness.layer.counters().reserve_limit_refusals, 0);
}

/// Review of issue 29's fixes, should-fix 4: every byte given back anywhere on the core woke
/// every writer waiting for memory, though each was refused again while the shared part
/// stayed used up and the reserve's places taken (a futile poll per waiter per ACK under
/// load). Waiters are woken only when a refusal can change: shared room appears, or a
/// reserve place is freed.
#[test]
fn memory_given_back_wakes_refused_writers_only_when_a_refusal_can_change() {
    let config = TcpConfig {
        max_buffer_memory: 80_000,
        ..plain_config()
    };
    let guarantee = config.guaranteed_buffer;
    let mut harness = Harness::new(config);
    let listener = harness.listen();
    let streamer = fill_budget_with_writers(&mut harness, listener, 20_001..20_002).remove(0);
    let mut clients = Vec::new();
    for port in 21_000..21_003 {
        let (iss, connection) = open_plain(&mut harness, listener, port, 1000);
        clients.push((port, iss, connection));
    }
    for &(_, _, connection) in &clients[..2] {
        assert_eq!(harness.layer.write(connection, &[1; 8192]), Ok(guarantee));
    }
    let (_, _, third) = clients[2];
    let (wakes, waker) = super::sockets::counting_waker();
    let mut context = core::task::Context::from_waker(&waker);
    assert_eq!(
        harness.layer.poll_write(third, &mut context, &[1; 1000]),
        core::task::Poll::Pending
    );
    // The streaming response's client acknowledges a segment: the core stays beyond the
    // shared part and both places stay taken, so the third writer would be refused again.
    harness
        .inject(Inbound::new(ACK, 7001, streamer.iss + 1 + 1460).ports(streamer.port, SERVER_PORT));
    assert!(harness.layer.buffer_memory_used() > 60_000);
    assert_eq!(wakes.0.load(core::sync::atomic::Ordering::SeqCst), 0);
    // The task polls again with another waker (the review's nit: only the first waker of a
    // round was kept, so this one missed its wake-up).
    let (later_wakes, later_waker) = super::sockets::counting_waker();
    let mut later_context = core::task::Context::from_waker(&later_waker);
    assert_eq!(
        harness
            .layer
            .poll_write(third, &mut later_context, &[1; 1000]),
        core::task::Poll::Pending
    );
    // The first client takes everything: its place is freed, and the waiter woken.
    let (first_port, first_iss, _) = clients[0];
    harness
        .inject(Inbound::new(ACK, 1001, first_iss + 1 + 2 * 1460).ports(first_port, SERVER_PORT));
    harness.inject(
        Inbound::new(ACK, 1001, first_iss + 1 + guarantee as u32).ports(first_port, SERVER_PORT),
    );
    assert_eq!(later_wakes.0.load(core::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(harness.layer.write(third, &[1; 1000]), Ok(1000));
}
