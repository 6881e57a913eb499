//! The socket API on the layer: handles and generations, readiness, wakers, listener close, introspection.

use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

use super::*;
use crate::net::tcp::{SocketError, TcpState};

/// A waker that counts its wake-ups.
pub(crate) struct CountingWaker(pub(crate) AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (counter.clone(), Waker::from(counter))
}

#[test]
fn stale_handles_never_reach_another_socket() {
    let mut harness = Harness::plain();
    let (iss, first) = harness.passive_open(1000);
    harness.layer.abort(first).unwrap();
    harness.collect();
    harness.expect().assert(RST | ACK, iss + 1, 1001);
    // A new connection takes the same slot, with a new generation.
    harness.inject(Inbound::new(SYN, 7000, 0).ports(40_001, SERVER_PORT));
    let iss2 = harness.expect().sequence;
    harness.inject(
        Inbound::new(ACK | PSH, 7001, iss2 + 1)
            .ports(40_001, SERVER_PORT)
            .payload(b"secret"),
    );
    let mut sockets = Vec::new();
    harness.layer.list_sockets(&mut sockets);
    let listener_handle = sockets
        .iter()
        .find(|info| info.state == TcpState::Listen)
        .unwrap()
        .handle
        .unwrap();
    let second = harness.layer.accept(listener_handle).unwrap();
    assert_eq!(second.slot(), first.slot());
    assert_ne!(second.generation(), first.generation());
    let mut buffer = [0u8; 16];
    assert_eq!(
        harness.layer.read(first, &mut buffer),
        Err(SocketError::InvalidHandle)
    );
    assert_eq!(
        harness.layer.write(first, b"x"),
        Err(SocketError::InvalidHandle)
    );
    assert_eq!(harness.layer.close(first), Err(SocketError::InvalidHandle));
    assert_eq!(harness.layer.read(second, &mut buffer), Ok(6));
    // A handle of another core's layer is refused too.
    let other = TcpLayer::new(plain_config(), CoreId(1), [1; 16]);
    assert_eq!(other.state(second), Err(SocketError::InvalidHandle));
}

#[test]
fn listener_operations_check_the_socket_kind() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    let mut buffer = [0u8; 4];
    assert_eq!(
        harness.layer.read(listener, &mut buffer),
        Err(SocketError::InvalidOperation)
    );
    assert_eq!(harness.layer.state(listener), Ok(TcpState::Listen));
    assert_eq!(
        harness
            .layer
            .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SERVER_PORT), 1),
        Err(SocketError::AddressInUse)
    );
    let (_, connection) = harness.passive_open_on_existing(listener, 1000);
    assert_eq!(
        harness.layer.accept(connection),
        Err(SocketError::InvalidOperation)
    );
}

#[test]
fn wakers_fire_on_accept_data_space_and_reset() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    let (accept_count, accept_waker) = counting_waker();
    let mut context = Context::from_waker(&accept_waker);
    assert!(
        harness
            .layer
            .poll_accept(listener, &mut context)
            .is_pending()
    );
    harness.inject(Inbound::new(SYN, 1000, 0));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    assert_eq!(accept_count.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Ok(connection)) = harness.layer.poll_accept(listener, &mut context) else {
        panic!("a connection was queued");
    };
    let (read_count, read_waker) = counting_waker();
    let mut read_context = Context::from_waker(&read_waker);
    let mut buffer = [0u8; 8];
    assert!(
        harness
            .layer
            .poll_read(connection, &mut read_context, &mut buffer)
            .is_pending()
    );
    assert!(!harness.layer.readiness(connection).unwrap().readable);
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"data"));
    assert_eq!(read_count.0.load(Ordering::SeqCst), 1);
    assert!(harness.layer.readiness(connection).unwrap().readable);
    assert_eq!(
        harness
            .layer
            .poll_read(connection, &mut read_context, &mut buffer),
        Poll::Ready(Ok(4))
    );
    assert!(
        harness
            .layer
            .poll_read(connection, &mut read_context, &mut buffer)
            .is_pending()
    );
    harness.inject(Inbound::new(RST, 1005, 0));
    assert_eq!(read_count.0.load(Ordering::SeqCst), 2);
    assert_eq!(
        harness
            .layer
            .poll_read(connection, &mut read_context, &mut buffer),
        Poll::Ready(Err(SocketError::ConnectionReset))
    );
    assert_eq!(
        harness.layer.readiness(connection).unwrap().error,
        Some(SocketError::ConnectionReset)
    );
}

#[test]
fn closing_a_listener_resets_unaccepted_connections() {
    let mut harness = Harness::plain();
    let listener = harness.listen();
    harness.inject(Inbound::new(SYN, 1000, 0));
    let iss = harness.expect().sequence;
    harness.inject(Inbound::new(ACK, 1001, iss + 1));
    harness.inject(Inbound::new(SYN, 5000, 0).ports(40_001, SERVER_PORT));
    harness.expect();
    assert_eq!(harness.layer.connection_count(), 2);
    harness.layer.close(listener).unwrap();
    harness.collect();
    harness.expect().assert(RST | ACK, iss + 1, 1001);
    assert_eq!(harness.layer.connection_count(), 0);
    // The port is free again: a SYN now gets a RST.
    harness.inject(Inbound::new(SYN, 9000, 0).ports(40_002, SERVER_PORT));
    harness.expect().assert(RST | ACK, 0, 9001);
}

#[test]
fn listing_shows_every_kind_of_socket() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness.layer.write(connection, b"12345").unwrap();
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"abc"));
    harness.inject(Inbound::new(SYN, 5000, 0).ports(40_001, SERVER_PORT));
    let mut sockets = Vec::new();
    harness.layer.list_sockets(&mut sockets);
    assert_eq!(sockets.len(), 3);
    let established = sockets
        .iter()
        .find(|info| info.state == TcpState::Established)
        .unwrap();
    assert_eq!(established.handle, Some(connection));
    assert_eq!(established.send_queue_bytes, 5);
    assert_eq!(established.receive_queue_bytes, 3);
    assert_eq!(established.remote, SocketAddrV4::new(REMOTE, REMOTE_PORT));
    assert_eq!(established.core, CoreId(0));
    assert!(
        sockets
            .iter()
            .any(|info| info.state == TcpState::Listen && info.local.port() == SERVER_PORT)
    );
    assert!(
        sockets
            .iter()
            .any(|info| info.state == TcpState::SynReceived && info.handle.is_none())
    );
}

#[test]
fn connect_without_a_source_address_fails_cleanly() {
    let mut layer = TcpLayer::new(plain_config(), CoreId(0), [0; 16]);
    assert_eq!(
        layer.connect(SocketAddrV4::new(REMOTE, SERVER_PORT), None),
        Err(SocketError::AddressNotAvailable)
    );
    assert_eq!(
        layer.connect(
            SocketAddrV4::new(REMOTE, 0),
            Some(SocketAddrV4::new(LOCAL, 1))
        ),
        Err(SocketError::InvalidArgument)
    );
}

#[test]
fn connection_limit_refuses_connect() {
    let config = TcpConfig {
        max_connections: 1,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    harness
        .layer
        .connect(SocketAddrV4::new(REMOTE, SERVER_PORT), None)
        .unwrap();
    assert_eq!(
        harness
            .layer
            .connect(SocketAddrV4::new(REMOTE, SERVER_PORT), None),
        Err(SocketError::LimitReached)
    );
    assert_eq!(harness.layer.counters().connection_limit_refusals, 1);
}

#[test]
fn port_allocator_is_pluggable_and_skips_taken_tuples() {
    struct Fixed(Vec<u16>);
    impl crate::net::tcp::PortAllocator for Fixed {
        fn choose_port(
            &mut self,
            _local: Ipv4Addr,
            _remote: SocketAddrV4,
            is_usable: &mut dyn FnMut(u16) -> bool,
        ) -> Option<u16> {
            self.0.iter().copied().find(|&port| is_usable(port))
        }
    }
    let mut harness = Harness::plain();
    harness
        .layer
        .set_port_allocator(alloc::boxed::Box::new(Fixed(alloc::vec![7000, 7001])));
    let remote = SocketAddrV4::new(REMOTE, SERVER_PORT);
    let first = harness.layer.connect(remote, None).unwrap();
    let second = harness.layer.connect(remote, None).unwrap();
    assert_eq!(harness.layer.local_address(first).unwrap().port(), 7000);
    assert_eq!(harness.layer.local_address(second).unwrap().port(), 7001);
    assert_eq!(
        harness.layer.connect(remote, None),
        Err(SocketError::AddressNotAvailable)
    );
}

#[test]
fn a_layer_can_move_to_the_core_that_runs_it() {
    fn assert_send<T: Send>() {}
    assert_send::<TcpLayer>();
}

#[test]
fn writer_waits_for_room_and_is_woken_by_acks() {
    let config = TcpConfig {
        send_buffer_size: 2000,
        ..plain_config()
    };
    let mut harness = Harness::new(config);
    let (iss, connection) = harness.passive_open(1000);
    let (count, waker) = counting_waker();
    let mut context = Context::from_waker(&waker);
    let data = [6u8; 3000];
    assert_eq!(
        harness.layer.poll_write(connection, &mut context, &data),
        Poll::Ready(Ok(2000))
    );
    assert!(
        harness
            .layer
            .poll_write(connection, &mut context, &data[2000..])
            .is_pending()
    );
    harness.collect();
    harness.sent.clear();
    harness.inject(Inbound::new(ACK, 1001, iss + 1 + 1460));
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        harness
            .layer
            .poll_write(connection, &mut context, &data[2000..]),
        Poll::Ready(Ok(1000))
    );
}

#[test]
fn shutdown_read_discards_incoming_data() {
    let mut harness = Harness::plain();
    let (iss, connection) = harness.passive_open(1000);
    harness
        .layer
        .shutdown(connection, crate::net::tcp::Shutdown::Read)
        .unwrap();
    let mut buffer = [0u8; 8];
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(0));
    harness.inject(Inbound::new(ACK, 1001, iss + 1).payload(b"ignored"));
    harness.expect().assert(ACK, iss + 1, 1008);
    assert_eq!(harness.layer.read(connection, &mut buffer), Ok(0));
    assert_eq!(harness.layer.buffer_memory_used(), 0);
    // Writing still works: only the receiving side is shut.
    assert_eq!(harness.layer.write(connection, b"reply"), Ok(5));
}
