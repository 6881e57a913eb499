//! Tests of one core's UDP layer: binding, ephemeral ports, queues and connected sockets.

use super::*;

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 53);
const OTHER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 53);

fn layer() -> UdpLayer {
    let mut layer = UdpLayer::new(UdpConfig::default(), CoreId(0), 7);
    layer.set_source_address(US);
    layer
}

fn any(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
}

fn to_us(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(US, port)
}

#[test]
fn a_port_is_bound_once_per_core_and_free_again_after_close() {
    let mut layer = layer();
    let first = layer.bind(any(5353)).unwrap();
    assert_eq!(layer.bind(any(5353)), Err(UdpError::AddressInUse));
    assert_eq!(layer.bind(to_us(5353)), Err(UdpError::AddressInUse));
    assert_eq!(
        layer.bind(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 5354)),
        Err(UdpError::AddressNotAvailable)
    );
    layer.close(first).unwrap();
    assert_eq!(layer.close(first), Err(UdpError::InvalidHandle));
    let second = layer.bind(to_us(5353)).unwrap();
    // The slot is reused, the stale handle does not reach the new socket.
    assert_eq!(layer.local_address(first), Err(UdpError::InvalidHandle));
    assert_eq!(layer.local_address(second), Ok(to_us(5353)));
    let foreign = UdpHandle {
        core: CoreId(1),
        ..second
    };
    assert_eq!(layer.local_address(foreign), Err(UdpError::InvalidHandle));
}

#[test]
fn port_zero_takes_distinct_unpredictable_ephemeral_ports() {
    let mut layer = layer();
    let ports: Vec<u16> = (0..50)
        .map(|_| {
            let handle = layer.bind(any(0)).unwrap();
            layer.local_address(handle).unwrap().port()
        })
        .collect();
    assert!(
        ports
            .iter()
            .all(|&port| port >= crate::net::tcp::EphemeralPorts::FIRST)
    );
    let mut unique = ports.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "every socket its own port");
    // Not a counter: consecutive choices are not neighbours (RFC 6056 algorithm 1).
    let neighbours = ports
        .windows(2)
        .filter(|pair| pair[1] == pair[0] + 1)
        .count();
    assert!(neighbours < 5, "{ports:?}");
    // A different seed gives different ports.
    let mut other = UdpLayer::new(UdpConfig::default(), CoreId(0), 8);
    let port = other.bind(any(0)).unwrap();
    assert_ne!(other.local_address(port).unwrap().port(), ports[0]);
}

/// A policy that offers the same port every time, to show that the layer never binds a
/// port twice whatever its policy says.
struct AlwaysPort(u16);

impl UdpPortPolicy for AlwaysPort {
    fn choose_port(
        &mut self,
        _local: Ipv4Addr,
        _remote: Option<SocketAddrV4>,
        is_free: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        is_free(self.0).then_some(self.0)
    }
}

#[test]
fn an_exhausted_policy_is_an_error_and_counted() {
    let mut layer = layer();
    layer.set_port_policy(Box::new(AlwaysPort(40000)));
    layer.bind(any(0)).unwrap();
    assert_eq!(layer.bind(any(0)), Err(UdpError::NoFreePort));
    assert_eq!(layer.counters().ports_exhausted, 1);
}

#[test]
fn datagrams_are_queued_in_order_and_the_queue_is_bounded() {
    let mut layer = layer();
    let socket = layer.bind(any(5353)).unwrap();
    let limit = layer.config().receive_queue_datagrams;
    for index in 0..limit + 3 {
        let result = layer.on_datagram(PEER, to_us(5353), &[index as u8]);
        if index < limit {
            assert_eq!(result, Ok(()));
        } else {
            assert_eq!(result, Err(UdpInputError::QueueFull));
        }
    }
    assert_eq!(layer.dropped_count(socket), Ok(3));
    assert!(layer.readiness(socket).unwrap().readable);
    let mut buffer = [0u8; 4];
    assert_eq!(layer.recv_from(socket, &mut buffer), Ok((1, PEER)));
    assert_eq!(buffer[0], 0);
    // Room again for one.
    assert_eq!(layer.on_datagram(PEER, to_us(5353), &[9]), Ok(()));
    assert_eq!(layer.counters().datagrams_received, limit as u64 + 1);
    assert_eq!(
        layer.on_datagram(PEER, to_us(5354), b"x"),
        Err(UdpInputError::NoSocket)
    );
}

#[test]
fn the_receive_queue_is_bounded_in_bytes_too() {
    let mut layer = UdpLayer::new(
        UdpConfig {
            receive_queue_bytes: 1000,
            ..UdpConfig::default()
        },
        CoreId(0),
        1,
    );
    let socket = layer.bind(any(9)).unwrap();
    let payload = [0u8; 400];
    assert_eq!(layer.on_datagram(PEER, to_us(9), &payload), Ok(()));
    assert_eq!(layer.on_datagram(PEER, to_us(9), &payload), Ok(()));
    assert_eq!(
        layer.on_datagram(PEER, to_us(9), &payload),
        Err(UdpInputError::QueueFull)
    );
    assert_eq!(layer.on_datagram(PEER, to_us(9), &[0u8; 200]), Ok(()));
    assert_eq!(layer.dropped_count(socket), Ok(1));
}

#[test]
fn a_short_buffer_gets_the_start_of_the_datagram_and_the_rest_is_discarded() {
    let mut layer = layer();
    let socket = layer.bind(any(9)).unwrap();
    layer.on_datagram(PEER, to_us(9), b"hello").unwrap();
    layer.on_datagram(PEER, to_us(9), b"next").unwrap();
    let mut buffer = [0u8; 2];
    assert_eq!(layer.recv_from(socket, &mut buffer), Ok((2, PEER)));
    assert_eq!(&buffer, b"he");
    let mut buffer = [0u8; 8];
    assert_eq!(layer.recv_from(socket, &mut buffer), Ok((4, PEER)));
    assert_eq!(&buffer[..4], b"next");
    assert_eq!(
        layer.recv_from(socket, &mut buffer),
        Err(UdpError::WouldBlock)
    );
}

#[test]
fn a_connected_socket_hears_only_its_peer_and_sends_to_it() {
    let mut layer = layer();
    let socket = layer.connect_new(PEER).unwrap();
    let local = layer.local_address(socket).unwrap();
    assert_eq!(layer.peer_address(socket), Ok(PEER));
    assert_eq!(
        layer.on_datagram(OTHER, to_us(local.port()), b"spoof"),
        Err(UdpInputError::NoSocket)
    );
    layer
        .on_datagram(PEER, to_us(local.port()), b"answer")
        .unwrap();
    let mut buffer = [0u8; 16];
    assert_eq!(layer.recv(socket, &mut buffer), Ok(6));
    assert_eq!(layer.send(socket, b"query"), Ok(5));
    let mut sent = Vec::new();
    layer.drain_output_up_to(usize::MAX, |datagram| {
        sent.push((
            datagram.source,
            datagram.destination,
            datagram.payload.to_vec(),
        ))
    });
    assert_eq!(sent, [(to_us(local.port()), PEER, b"query".to_vec())]);

    let unconnected = layer.bind(any(0)).unwrap();
    assert_eq!(layer.send(unconnected, b"x"), Err(UdpError::NotConnected));
    assert_eq!(
        layer.recv(unconnected, &mut buffer),
        Err(UdpError::NotConnected)
    );
}

#[test]
fn sends_are_checked_and_the_output_queue_is_bounded() {
    let mut layer = UdpLayer::new(
        UdpConfig {
            output_queue_datagrams: 2,
            ..UdpConfig::default()
        },
        CoreId(0),
        1,
    );
    layer.set_source_address(US);
    let socket = layer.bind(any(4000)).unwrap();
    assert_eq!(
        layer.send_to(
            socket,
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 0),
            b"x"
        ),
        Err(UdpError::InvalidDestination)
    );
    assert_eq!(
        layer.send_to(socket, any(53), b"x"),
        Err(UdpError::InvalidDestination)
    );
    assert_eq!(
        layer.send_to(
            socket,
            SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353),
            b"x"
        ),
        Err(UdpError::InvalidDestination)
    );
    assert_eq!(
        layer.send_to(socket, PEER, &[0u8; MAX_PAYLOAD + 1]),
        Err(UdpError::MessageTooLong)
    );
    assert_eq!(
        layer.send_to(socket, PEER, &[0u8; MAX_PAYLOAD]),
        Ok(MAX_PAYLOAD)
    );
    assert_eq!(layer.send_to(socket, PEER, b"b"), Ok(1));
    assert!(!layer.readiness(socket).unwrap().writable);
    assert_eq!(layer.send_to(socket, PEER, b"c"), Err(UdpError::WouldBlock));
    assert_eq!(layer.counters().send_queue_full, 1);
    let mut count = 0;
    layer.drain_output_up_to(1, |_| count += 1);
    assert_eq!(count, 1);
    assert!(layer.readiness(socket).unwrap().writable);
    assert_eq!(layer.counters().datagrams_sent, 1);
}

#[test]
fn a_hard_icmp_error_fails_the_next_receive_of_a_connected_socket_once() {
    use crate::net::icmp::IcmpErrorKind;
    let mut layer = layer();
    let socket = layer.connect_new(PEER).unwrap();
    let local = to_us(layer.local_address(socket).unwrap().port());
    // A soft error is ignored; an error about another peer finds no socket.
    assert_eq!(
        layer.on_icmp_error(local, PEER, IcmpErrorKind::TimeExceeded),
        Ok(())
    );
    assert_eq!(
        layer.on_icmp_error(local, OTHER, IcmpErrorKind::PortUnreachable),
        Err(UdpInputError::NoSocket)
    );
    assert_eq!(layer.readiness(socket).unwrap().error, None);
    assert_eq!(
        layer.on_icmp_error(local, PEER, IcmpErrorKind::PortUnreachable),
        Ok(())
    );
    assert!(layer.readiness(socket).unwrap().readable);
    let mut buffer = [0u8; 8];
    assert_eq!(
        layer.recv(socket, &mut buffer),
        Err(UdpError::ConnectionRefused)
    );
    assert_eq!(layer.recv(socket, &mut buffer), Err(UdpError::WouldBlock));
    assert_eq!(layer.counters().icmp_errors, 1);
    // An unconnected socket hears no errors (Linux without IP_RECVERR).
    let unconnected = layer.bind(any(0)).unwrap();
    let port = layer.local_address(unconnected).unwrap().port();
    assert_eq!(
        layer.on_icmp_error(to_us(port), PEER, IcmpErrorKind::PortUnreachable),
        Err(UdpInputError::NoSocket)
    );
}

#[test]
fn only_a_wildcard_socket_hears_broadcasts() {
    let mut layer = layer();
    let wildcard = layer.bind(any(67)).unwrap();
    let specific = layer.bind(to_us(68)).unwrap();
    let broadcast = |port| SocketAddrV4::new(Ipv4Addr::BROADCAST, port);
    assert_eq!(layer.on_datagram(PEER, broadcast(67), b"x"), Ok(()));
    assert_eq!(
        layer.on_datagram(PEER, broadcast(68), b"x"),
        Err(UdpInputError::NoSocket)
    );
    assert_eq!(layer.on_datagram(PEER, to_us(68), b"x"), Ok(()));
    assert!(layer.readiness(wildcard).unwrap().readable);
    assert!(layer.readiness(specific).unwrap().readable);
}
