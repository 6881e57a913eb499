//! Two layers wired back to back: whole conversations, the async socket API, and bulk transfer over a lossy, reordering wire.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use super::*;
use crate::net::tcp::{Shutdown, TcpState};
use crate::socket::{SharedTcpLayer, TcpListener, TcpStream};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// A tiny deterministic generator (SplitMix64) for loss and reordering.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Self {
        Random(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        value ^ (value >> 31)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Two layers and the wire between them, with loss, duplication and reordering.
pub(crate) struct Wire {
    pub(crate) server: SharedTcpLayer,
    pub(crate) client: SharedTcpLayer,
    pub(crate) now: Instant,
    random: Random,
    loss_percent: u64,
    /// Segments held back to be delivered after later ones: (destination is server, bytes).
    delayed: Vec<(bool, Ipv4Addr, Ipv4Addr, Vec<u8>)>,
}

impl Wire {
    pub(crate) fn new(config: TcpConfig, seed: u64, loss_percent: u64) -> Self {
        let mut server = TcpLayer::new(config.clone(), CoreId(0), [1; 16]);
        server.set_source_address(SERVER);
        let mut client = TcpLayer::new(config, CoreId(0), [2; 16]);
        client.set_source_address(CLIENT);
        let now = Instant::from_millis(1_000);
        server.advance_time(now);
        client.advance_time(now);
        Wire {
            server: server.into_shared(),
            client: client.into_shared(),
            now,
            random: Random::new(seed),
            loss_percent,
            delayed: Vec::new(),
        }
    }

    /// Moves every queued segment across (or loses, duplicates, delays it); returns whether
    /// anything was sent.
    pub(crate) fn pump(&mut self) -> bool {
        let mut moved = Vec::new();
        for (to_server, layer) in [(false, &self.server), (true, &self.client)] {
            layer.borrow_mut().drain_output(|segment| {
                moved.push((
                    to_server,
                    segment.source,
                    segment.destination,
                    segment.tcp.to_vec(),
                ));
            });
        }
        let any = !moved.is_empty() || !self.delayed.is_empty();
        let mut deliver = Vec::new();
        for item in moved {
            if self.random.chance(self.loss_percent) {
                continue;
            }
            if self.random.chance(self.loss_percent) {
                self.delayed.push(item);
                continue;
            }
            if self.random.chance(self.loss_percent / 2) {
                deliver.push(item.clone());
            }
            deliver.push(item);
        }
        // Delayed segments arrive after this round's.
        deliver.append(&mut self.delayed);
        for (to_server, source, destination, bytes) in deliver {
            let layer = if to_server {
                &self.server
            } else {
                &self.client
            };
            layer
                .borrow_mut()
                .on_segment(self.now, source, destination, &bytes);
        }
        any
    }

    /// Advances to the earlier of the next timer and `step` later, firing timers.
    pub(crate) fn tick(&mut self, step: Duration) {
        let limit = self.now + step;
        let next = [
            self.server.borrow().next_deadline(),
            self.client.borrow().next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(limit)
        .min(limit);
        self.now = self.now.max(next);
        self.server.borrow_mut().on_timers(self.now);
        self.client.borrow_mut().on_timers(self.now);
    }

    /// Polls `future` while pumping segments and advancing time, until it completes.
    pub(crate) fn run<F: Future>(&mut self, future: F, time_limit: Duration) -> F::Output {
        let mut future = pin!(future);
        let waker = Waker::noop();
        let mut context = Context::from_waker(waker);
        let deadline = self.now + time_limit;
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                self.pump();
                return output;
            }
            if !self.pump() {
                self.tick(Duration::from_millis(50));
            }
            assert!(self.now < deadline, "the conversation stalled");
        }
    }
}

async fn echo_once(stack: SharedTcpLayer) -> Vec<u8> {
    let listener =
        TcpListener::bind(&stack, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 8).unwrap();
    let stream = listener.accept().await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 700];
    loop {
        let count = stream.read(&mut buffer).await.unwrap();
        if count == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..count]);
    }
    stream.write_all(&received).await.unwrap();
    stream.close().unwrap();
    received
}

async fn send_and_collect(stack: SharedTcpLayer, message: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(&stack, SocketAddrV4::new(SERVER, 7))
        .await
        .unwrap();
    stream.write_all(&message).await.unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let mut buffer = [0u8; 1000];
    loop {
        let count = stream.read(&mut buffer).await.unwrap();
        if count == 0 {
            break;
        }
        reply.extend_from_slice(&buffer[..count]);
    }
    reply
}

/// Runs an echo conversation of `size` bytes and returns (what the server got, the reply).
pub(crate) fn conversation(
    config: TcpConfig,
    seed: u64,
    loss_percent: u64,
    size: usize,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut wire = Wire::new(config, seed, loss_percent);
    let message: Vec<u8> = (0..size).map(|index| (index * 31 % 251) as u8).collect();
    let server = echo_once(wire.server.clone());
    let client = send_and_collect(wire.client.clone(), message.clone());
    let both = async {
        let mut server = pin!(server);
        let mut client = pin!(client);
        let mut server_result = None;
        let mut client_result = None;
        core::future::poll_fn(|context| {
            if server_result.is_none()
                && let Poll::Ready(value) = server.as_mut().poll(context)
            {
                server_result = Some(value);
            }
            if client_result.is_none()
                && let Poll::Ready(value) = client.as_mut().poll(context)
            {
                client_result = Some(value);
            }
            if server_result.is_some() && client_result.is_some() {
                Poll::Ready((server_result.take().unwrap(), client_result.take().unwrap()))
            } else {
                Poll::Pending
            }
        })
        .await
    };
    let (received, reply) = wire.run(both, Duration::from_secs(600));
    // Let the closing handshake finish, however many retransmissions the losses take (the
    // retry limit bounds it: about 15 minutes of backed-off RTOs at worst).
    let give_up = wire.now + Duration::from_secs(1200);
    while wire.now < give_up
        && (wire.server.borrow().connection_count() > 0
            || wire.client.borrow().connection_count() > 0)
    {
        if !wire.pump() {
            wire.tick(Duration::from_millis(200));
        }
    }
    let client_layer = wire.client.borrow();
    let server_layer = wire.server.borrow();
    assert_eq!(
        server_layer.connection_count(),
        0,
        "server connection finished"
    );
    assert_eq!(
        client_layer.connection_count(),
        0,
        "client connection finished"
    );
    assert_eq!(
        server_layer.buffer_memory_used() + client_layer.buffer_memory_used(),
        0,
        "no buffer leaked"
    );
    (message, received, reply)
}

#[test]
fn async_echo_over_a_clean_wire() {
    let (message, received, reply) = conversation(TcpConfig::default(), 1, 0, 100_000);
    assert_eq!(received, message);
    assert_eq!(reply, message);
}

#[test]
fn async_echo_over_a_lossy_reordering_wire() {
    for seed in 1..6 {
        let (message, received, reply) = conversation(TcpConfig::default(), seed, 10, 60_000);
        assert_eq!(received, message, "seed {seed}");
        assert_eq!(reply, message, "seed {seed}");
    }
}

#[test]
fn async_echo_without_options_and_with_small_buffers() {
    let config = TcpConfig {
        send_buffer_size: 3000,
        receive_buffer_size: 2000,
        ..plain_config()
    };
    let (message, received, reply) = conversation(config, 9, 5, 30_000);
    assert_eq!(received, message);
    assert_eq!(reply, message);
}

#[test]
fn client_ends_in_time_wait_and_server_closes() {
    let mut wire = Wire::new(TcpConfig::default(), 3, 0);
    let listener = wire
        .server
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 8)
        .unwrap();
    let client = wire
        .client
        .borrow_mut()
        .connect(SocketAddrV4::new(SERVER, 7), None)
        .unwrap();
    for _ in 0..5 {
        wire.pump();
    }
    let accepted = wire.server.borrow_mut().accept(listener).unwrap();
    assert_eq!(
        wire.client.borrow().state(client),
        Ok(TcpState::Established)
    );
    wire.client.borrow_mut().close(client).unwrap();
    for _ in 0..5 {
        wire.pump();
    }
    assert_eq!(
        wire.server.borrow().state(accepted),
        Ok(TcpState::CloseWait)
    );
    wire.server.borrow_mut().close(accepted).unwrap();
    for _ in 0..5 {
        wire.pump();
    }
    assert_eq!(wire.client.borrow().time_wait_count(), 1);
    assert_eq!(wire.server.borrow().connection_count(), 0);
}

#[test]
fn connect_future_reports_refusal() {
    let mut wire = Wire::new(TcpConfig::default(), 4, 0);
    let client = wire.client.clone();
    let result = wire.run(
        async move {
            TcpStream::connect(&client, SocketAddrV4::new(SERVER, 9))
                .await
                .map(|_| ())
        },
        Duration::from_secs(5),
    );
    assert_eq!(result, Err(crate::net::tcp::SocketError::ConnectionRefused));
    assert_eq!(wire.client.borrow().connection_count(), 0);
    let mut sockets = Vec::new();
    wire.client.borrow().list_sockets(&mut sockets);
    assert!(
        sockets.is_empty(),
        "the failed attempt released its slot: {sockets:?}"
    );
}

#[test]
fn dropping_a_stream_closes_it_gracefully() {
    let mut wire = Wire::new(TcpConfig::default(), 5, 0);
    let server = wire.server.clone();
    let client = wire.client.clone();
    let listener =
        TcpListener::bind(&server, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 8).unwrap();
    let stream = wire
        .run(
            TcpStream::connect(&client, SocketAddrV4::new(SERVER, 7)),
            Duration::from_secs(5),
        )
        .unwrap();
    let accepted = wire.run(listener.accept(), Duration::from_secs(5)).unwrap();
    drop(stream);
    for _ in 0..5 {
        wire.pump();
    }
    let mut buffer = [0u8; 4];
    assert_eq!(
        accepted.try_read(&mut buffer),
        Ok(0),
        "the peer saw our FIN"
    );
    assert!(accepted.readiness().unwrap().read_closed);
}

#[test]
fn simultaneous_close_over_the_wire() {
    let mut wire = Wire::new(TcpConfig::default(), 6, 0);
    let listener = wire
        .server
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 8)
        .unwrap();
    let client = wire
        .client
        .borrow_mut()
        .connect(SocketAddrV4::new(SERVER, 7), None)
        .unwrap();
    for _ in 0..5 {
        wire.pump();
    }
    let accepted = wire.server.borrow_mut().accept(listener).unwrap();
    // Both FINs leave before either arrives.
    wire.client
        .borrow_mut()
        .shutdown(client, Shutdown::Write)
        .unwrap();
    wire.server
        .borrow_mut()
        .shutdown(accepted, Shutdown::Write)
        .unwrap();
    wire.pump();
    assert_eq!(wire.client.borrow().state(client), Ok(TcpState::Closing));
    assert_eq!(wire.server.borrow().state(accepted), Ok(TcpState::Closing));
    wire.pump();
    assert_eq!(wire.client.borrow().state(client), Ok(TcpState::TimeWait));
    assert_eq!(wire.server.borrow().state(accepted), Ok(TcpState::TimeWait));
    // Both hold TIME_WAIT records; after 2*MSL both are gone.
    wire.client.borrow_mut().close(client).unwrap();
    wire.server.borrow_mut().close(accepted).unwrap();
    for _ in 0..20 {
        wire.tick(Duration::from_secs(10));
    }
    assert_eq!(wire.client.borrow().time_wait_count(), 0);
    assert_eq!(wire.server.borrow().time_wait_count(), 0);
}

#[test]
fn hundreds_of_concurrent_connections_over_a_lossy_wire() {
    let mut wire = Wire::new(TcpConfig::default(), 11, 5);
    let listener = wire
        .server
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 1024)
        .unwrap();
    let count = 300;
    let clients: Vec<_> = (0..count)
        .map(|_| {
            wire.client
                .borrow_mut()
                .connect(SocketAddrV4::new(SERVER, 7), None)
                .unwrap()
        })
        .collect();
    let mut accepted = Vec::new();
    let mut replies: Vec<Vec<u8>> = alloc::vec![Vec::new(); count];
    let mut requests_sent = alloc::vec![false; count];
    let mut buffer = [0u8; 2048];
    let deadline = wire.now + Duration::from_secs(300);
    while replies.iter().any(|reply| reply.len() < 1000) {
        assert!(wire.now < deadline, "stalled");
        while let Ok(handle) = wire.server.borrow_mut().accept(listener) {
            accepted.push((handle, Vec::new()));
        }
        for (index, &client) in clients.iter().enumerate() {
            let mut layer = wire.client.borrow_mut();
            if !requests_sent[index] && layer.readiness(client).unwrap().connected {
                assert_eq!(layer.write(client, &[index as u8; 1000]), Ok(1000));
                requests_sent[index] = true;
            }
            while let Ok(count) = layer.read(client, &mut buffer) {
                if count == 0 {
                    break;
                }
                replies[index].extend_from_slice(&buffer[..count]);
            }
        }
        for (handle, received) in &mut accepted {
            let mut layer = wire.server.borrow_mut();
            while let Ok(count) = layer.read(*handle, &mut buffer) {
                if count == 0 {
                    break;
                }
                received.extend_from_slice(&buffer[..count]);
                // Echo at once.
                assert_eq!(layer.write(*handle, &buffer[..count]), Ok(count));
            }
        }
        if !wire.pump() {
            wire.tick(Duration::from_millis(20));
        }
    }
    for (index, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &alloc::vec![index as u8; 1000]);
    }
    assert_eq!(accepted.len(), count);
    let mut sockets = Vec::new();
    wire.server.borrow().list_sockets(&mut sockets);
    assert_eq!(
        sockets
            .iter()
            .filter(|info| info.state == TcpState::Established)
            .count(),
        count
    );
}
