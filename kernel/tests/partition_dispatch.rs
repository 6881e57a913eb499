//! The dispatcher's decisions, one scripted frame at a time: software RFD, the global listener and its routes, hop limits, ring drops, ICMP errors, the serving set, and UDP datagrams to the core of their socket.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Packet, IpAddress, IpProtocol,
    Ipv4Packet, TcpPacket, UdpPacket,
};
use unisock_kernel::net::arp::{self, ArpMessage};
use unisock_kernel::net::counters::DropReason;
use unisock_kernel::net::ethernet;
use unisock_kernel::net::interface::{Interface, InterfaceConfig};
use unisock_kernel::net::ipv4::{self, Ipv4Config};
use unisock_kernel::net::partition::{
    CoreDispatcher, CoreSet, GlobalListenTable, RingFrame, ServedPort,
};
use unisock_kernel::net::rfd::{CoreId, InboundSegment, ReceiveFlowDeliver, RfdConfig};
use unisock_kernel::net::tcp::{SocketError, TcpConfig, TcpLayer};
use unisock_kernel::net::udp;
use unisock_kernel::socket::{UdpError, UdpSocket};
use unisock_kernel::sync::mesh::RingMesh;
use unisock_kernel::time::Instant;

const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;
const FIN: u8 = 0x01;
const NOW: Instant = Instant::ZERO;

struct Host {
    cores: Vec<CoreDispatcher>,
    rfd: Arc<ReceiveFlowDeliver>,
    table: Arc<GlobalListenTable>,
}

fn host(core_count: usize, ring_capacity: usize) -> Host {
    let rfd = Arc::new(
        ReceiveFlowDeliver::new(RfdConfig {
            backend_ports: vec![8080],
            ..RfdConfig::port_xor(core_count).unwrap()
        })
        .unwrap(),
    );
    let table = GlobalListenTable::new();
    let cores = RingMesh::<RingFrame>::new(core_count, ring_capacity)
        .into_cores()
        .into_iter()
        .enumerate()
        .map(|(index, rings)| {
            let tcp =
                TcpLayer::new(TcpConfig::default(), CoreId(index as u16), [5; 16]).into_shared();
            let config = InterfaceConfig {
                hardware_address: US,
                ipv4: Ipv4Config {
                    address: OUR_IP,
                    prefix_len: 24,
                    gateway: None,
                },
            };
            let interface = Interface::new(config, tcp, NOW);
            CoreDispatcher::new(interface, rfd.clone(), table.clone(), rings, 0).unwrap()
        })
        .collect();
    let mut host = Host { cores, rfd, table };
    // Every core learns the peer's MAC: its ARP request reaches core 0, which copies it.
    let request = ArpMessage::request(PEER, PEER_IP, OUR_IP);
    let mut frame = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    request.write(ethernet::write_header(
        &mut frame,
        PEER,
        EthernetAddress::BROADCAST,
        EthernetProtocol::Arp,
    ));
    host.cores[0].on_frame_from_nic(NOW, &frame);
    host.drain_all();
    for core in &mut host.cores {
        assert_eq!(
            core.interface().arp_cache().lookup(NOW, PEER_IP),
            Some(PEER)
        );
        let mut ignored = Vec::new();
        core.poll(NOW, &mut ignored);
    }
    host
}

impl Host {
    fn drain_all(&mut self) -> usize {
        self.cores
            .iter_mut()
            .map(|core| core.drain_inbound(NOW))
            .sum()
    }

    /// The TCP segments each core sends now: (core, flags, sequence number, acknowledgment).
    fn sent_segments(&mut self) -> Vec<(usize, u8, u32, u32)> {
        let mut segments = Vec::new();
        for (index, core) in self.cores.iter_mut().enumerate() {
            let mut frames: Vec<Vec<u8>> = Vec::new();
            core.poll(NOW, &mut frames);
            for frame in frames {
                let ethernet = EthernetFrame::new_checked(&frame[..]).unwrap();
                if ethernet.ethertype() != EthernetProtocol::Ipv4 {
                    continue;
                }
                let packet = Ipv4Packet::new_checked(ethernet.payload()).unwrap();
                if packet.next_header() != IpProtocol::Tcp {
                    continue;
                }
                let tcp = TcpPacket::new_checked(packet.payload()).unwrap();
                segments.push((
                    index,
                    tcp_flags(&tcp),
                    tcp.seq_number().0 as u32,
                    tcp.ack_number().0 as u32,
                ));
            }
        }
        segments
    }

    /// A client port whose SYN RSS steers to `core`.
    fn client_port_owned_by(&self, core: usize, server_port: u16) -> u16 {
        self.client_port_owned_by_after(core, server_port, 40_000)
    }

    /// The first client port above `after` whose SYN RSS steers to `core`.
    fn client_port_owned_by_after(&self, core: usize, server_port: u16, after: u16) -> u16 {
        (after + 1..)
            .find(|&port| {
                let segment = InboundSegment::new(
                    SocketAddrV4::new(PEER_IP, port),
                    SocketAddrV4::new(OUR_IP, server_port),
                );
                self.rfd.rss_owner(&segment) == CoreId(core as u16)
            })
            .unwrap()
    }

    fn listen(&mut self, core: usize, port: u16) -> ServedPort {
        self.cores[core]
            .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), 16)
            .unwrap()
    }
}

fn tcp_flags(tcp: &TcpPacket<&[u8]>) -> u8 {
    [
        (tcp.syn(), SYN),
        (tcp.ack(), ACK),
        (tcp.rst(), RST),
        (tcp.fin(), FIN),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .fold(0, |flags, (_, bit)| flags | bit)
}

fn tcp_frame(
    source_port: u16,
    destination_port: u16,
    flags: u8,
    sequence: u32,
    acknowledgment: u32,
) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&source_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&destination_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&sequence.to_be_bytes());
    tcp[8..12].copy_from_slice(&acknowledgment.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    TcpPacket::new_unchecked(&mut tcp[..])
        .fill_checksum(&IpAddress::Ipv4(PEER_IP), &IpAddress::Ipv4(OUR_IP));
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp.len()];
    let packet = ethernet::write_header(&mut frame, PEER, US, EthernetProtocol::Ipv4);
    ipv4::write_header(packet, PEER_IP, OUR_IP, IpProtocol::Tcp, tcp.len()).copy_from_slice(&tcp);
    frame
}

#[test]
fn a_segment_on_the_wrong_queue_is_handled_by_its_owner() {
    let mut host = host(2, 64);
    let _served: Vec<ServedPort> = (0..2).map(|core| host.listen(core, 80)).collect();
    let port = host.client_port_owned_by(0, 80);
    host.cores[1].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 1000, 0));
    assert_eq!(host.cores[1].counters().forwarded_by_rfd, 1);
    assert_eq!(
        host.cores[1].take_cores_handed_frames(),
        [CoreId(0)].into_iter().collect::<CoreSet>()
    );
    assert_eq!(
        host.sent_segments(),
        [],
        "nothing happens before the owner drains its ring"
    );
    assert_eq!(host.drain_all(), 1);
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0, sent[0].1, sent[0].3),
        (0, SYN | ACK, 1001),
        "the owner answers"
    );
    assert_eq!(host.cores[0].counters().segments_processed, 1);
    assert_eq!(host.cores[1].counters().segments_processed, 0);
}

#[test]
fn a_core_that_does_not_serve_hands_the_flow_to_the_global_listener_and_its_route_holds() {
    let mut host = host(4, 64);
    let mut served: Vec<Option<ServedPort>> =
        (0..4).map(|core| Some(host.listen(core, 80))).collect();
    served[1] = None; // core 1's worker is gone: its listener closed and left the serving set
    assert_eq!(
        host.table.serving(80),
        [CoreId(0), CoreId(2), CoreId(3)]
            .into_iter()
            .collect::<CoreSet>()
    );
    let port = host.client_port_owned_by(1, 80);
    host.cores[1].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 5000, 0));
    assert_eq!(host.cores[1].counters().global_listener_fallbacks, 1);
    assert_eq!(host.cores[1].fallback_route_count(), 1);
    host.drain_all();
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    let (taker, flags, server_sequence, acknowledged) = sent[0];
    assert_ne!(taker, 1);
    assert_eq!((flags, acknowledged), (SYN | ACK, 5001));

    // The serving set changes mid-handshake: the taker stops serving (its listener stays
    // open for the handshakes under way). The hash would now pick another core; the route
    // keeps the flow on the core that has its half-open record.
    served[taker].as_mut().unwrap().stop_serving();
    let tuple = unisock_kernel::net::rfd::FourTuple {
        local: SocketAddrV4::new(OUR_IP, 80),
        remote: SocketAddrV4::new(PEER_IP, port),
    };
    let rehashed =
        unisock_kernel::net::partition::fallback_core(&tuple, host.table.serving(80), CoreId(1));
    assert_ne!(rehashed, Some(CoreId(taker as u16)));
    host.cores[1].on_frame_from_nic(
        NOW,
        &tcp_frame(port, 80, ACK, 5001, server_sequence.wrapping_add(1)),
    );
    assert_eq!(host.cores[1].counters().global_listener_segments, 1);
    host.drain_all();
    let listener = served[taker].as_ref().unwrap();
    let accepted = listener
        .listener()
        .try_accept()
        .expect("the taker accepts the connection");
    assert_eq!(
        accepted.peer_address().unwrap(),
        SocketAddrV4::new(PEER_IP, port)
    );
    assert_eq!(accepted.handle().core(), CoreId(taker as u16));
    assert!(
        host.sent_segments()
            .iter()
            .all(|&(_, flags, _, _)| flags & RST == 0),
        "no RST anywhere"
    );
}

#[test]
fn a_stopping_worker_gets_no_new_syns_but_finishes_its_handshakes() {
    let mut host = host(2, 64);
    let mut stopping = host.listen(0, 80);
    let _other = host.listen(1, 80);
    let early = host.client_port_owned_by(0, 80);
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(early, 80, SYN, 7000, 0));
    let (_, _, server_sequence, _) = host.sent_segments()[0];
    stopping.stop_serving();
    assert!(!stopping.is_drained(), "a handshake is under way");
    // A new SYN owned by core 0 now goes to core 1 ...
    let late = host.client_port_owned_by_after(0, 80, early);
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(late, 80, SYN, 9000, 0));
    assert_eq!(host.cores[0].counters().global_listener_fallbacks, 1);
    // ... while the early handshake completes on core 0 and waits for its worker.
    host.cores[0].on_frame_from_nic(
        NOW,
        &tcp_frame(early, 80, ACK, 7001, server_sequence.wrapping_add(1)),
    );
    assert!(
        !stopping.is_drained(),
        "a connection waits in the accept queue"
    );
    let accepted = stopping.listener().try_accept().unwrap();
    assert_eq!(accepted.peer_address().unwrap().port(), early);
    assert!(stopping.is_drained());
    assert!(matches!(
        stopping.listener().try_accept(),
        Err(SocketError::WouldBlock)
    ));
}

#[test]
fn a_global_listener_delivery_is_passed_on_at_most_once_more() {
    let mut host = host(3, 64);
    // Core 2 serves; cores 0 and 1 do not. A SYN owned by core 0 goes to core 2.
    let served = host.listen(2, 80);
    let port = host.client_port_owned_by(0, 80);
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 1, 0));
    assert_eq!(host.cores[0].counters().global_listener_fallbacks, 1);
    // Core 2 stops before the SYN arrives, and nobody else serves: core 2 handles it (RST).
    drop(served);
    host.drain_all();
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 2);
    assert_eq!(sent[0].1 & RST, RST, "no listener anywhere: a RST");

    // With core 1 serving, the same situation passes the SYN on to core 1, once.
    let _one = host.listen(1, 80);
    let served = host.listen(2, 80);
    let port = (port + 1..)
        .find(|&candidate| {
            let segment = InboundSegment::new(
                SocketAddrV4::new(PEER_IP, candidate),
                SocketAddrV4::new(OUR_IP, 80),
            );
            host.rfd.rss_owner(&segment) == CoreId(0)
                && unisock_kernel::net::partition::fallback_core(
                    &unisock_kernel::net::rfd::FourTuple {
                        local: SocketAddrV4::new(OUR_IP, 80),
                        remote: SocketAddrV4::new(PEER_IP, candidate),
                    },
                    host.table.serving(80),
                    CoreId(0),
                ) == Some(CoreId(2))
        })
        .unwrap();
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 1, 0));
    drop(served);
    host.drain_all();
    assert_eq!(
        host.cores[2].counters().global_listener_segments,
        1,
        "passed on by core 2"
    );
    host.drain_all();
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0, sent[0].1), (1, SYN | ACK));
}

#[test]
fn a_full_ring_drops_and_counts() {
    let mut host = host(2, 2);
    let _served: Vec<ServedPort> = (0..2).map(|core| host.listen(core, 80)).collect();
    let port = host.client_port_owned_by(0, 80);
    for sequence in 0..5 {
        host.cores[1].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, sequence, 0));
    }
    assert_eq!(host.cores[1].counters().forwarded_by_rfd, 5);
    assert_eq!(host.cores[1].counters().ring_drops, 3);
    assert_eq!(host.drain_all(), 2);
}

#[test]
fn replies_on_connections_we_open_return_to_the_core_that_opened_them() {
    let host = host(4, 64);
    let backend = SocketAddrV4::new(PEER_IP, 8080);
    for core in 0..4 {
        let socket = host.cores[core]
            .tcp()
            .borrow_mut()
            .connect(backend, None)
            .unwrap();
        let local = host.cores[core]
            .tcp()
            .borrow()
            .local_address(socket)
            .unwrap();
        let reply = InboundSegment::new(backend, local);
        for arrival in 0..4u16 {
            let owner = host.rfd.owner_core(&reply, &|port: u16| port == 80);
            assert_eq!(
                owner,
                CoreId(core as u16),
                "arrival {arrival}: the port names the opener"
            );
        }
        // And the NIC's RSS, with the port-only key, agrees: no software hand-over needed.
        assert_eq!(host.rfd.rss_owner(&reply), CoreId(core as u16));
    }
}

fn icmp_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + message.len()];
    let packet = ethernet::write_header(&mut frame, PEER, US, EthernetProtocol::Ipv4);
    ipv4::write_header(packet, PEER_IP, OUR_IP, IpProtocol::Icmp, message.len())
        .copy_from_slice(message);
    frame
}

#[test]
fn echo_is_answered_where_it_arrives_and_errors_go_to_the_connection_s_owner() {
    let mut host = host(4, 64);
    let mut echo = vec![8, 0, 0, 0, 0, 7, 0, 1, b'p', b'i', b'n', b'g'];
    Icmpv4Packet::new_unchecked(&mut echo[..]).fill_checksum();
    host.cores[3].on_frame_from_nic(NOW, &icmp_frame(&echo));
    let mut frames: Vec<Vec<u8>> = Vec::new();
    host.cores[3].poll(NOW, &mut frames);
    assert_eq!(frames.len(), 1);
    assert_eq!(host.cores[3].interface().counters().echo_replies_sent, 1);

    // Core 2 opens a connection; a port unreachable about it arrives on core 0.
    let backend = SocketAddrV4::new(PEER_IP, 8080);
    let socket = host.cores[2]
        .tcp()
        .borrow_mut()
        .connect(backend, None)
        .unwrap();
    let local = host.cores[2].tcp().borrow().local_address(socket).unwrap();
    let mut quoted = vec![0u8; 28];
    quoted[0] = 0x45;
    quoted[9] = 6;
    quoted[12..16].copy_from_slice(&OUR_IP.octets());
    quoted[16..20].copy_from_slice(&PEER_IP.octets());
    quoted[20..22].copy_from_slice(&local.port().to_be_bytes());
    quoted[22..24].copy_from_slice(&8080u16.to_be_bytes());
    let mut error = vec![3, 3, 0, 0, 0, 0, 0, 0];
    error.extend_from_slice(&quoted);
    Icmpv4Packet::new_unchecked(&mut error[..]).fill_checksum();
    host.cores[0].on_frame_from_nic(NOW, &icmp_frame(&error));
    assert_eq!(host.cores[0].counters().forwarded_by_rfd, 1);
    host.drain_all();
    let delivered: Vec<u64> = host
        .cores
        .iter()
        .map(|core| core.interface().counters().icmp_errors_delivered)
        .collect();
    assert_eq!(delivered, [0, 0, 1, 0]);
}

/// Fastsocket's users saw connections hang with nginx's `accept_mutex`: a SYN landed in the
/// local listener of a core whose worker was not polling it. Here only a worker that serves
/// the port (holds a `ServedPort`) gets new SYNs; a listener opened on a core without serving
/// is never fed while another core serves.
#[test]
fn a_local_listener_that_nobody_serves_gets_no_new_connections() {
    let mut host = host(2, 64);
    let unserved = host.cores[0]
        .tcp()
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16)
        .unwrap();
    let served = host.listen(1, 80);
    let port = host.client_port_owned_by(0, 80);
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 3000, 0));
    assert_eq!(host.cores[0].counters().global_listener_fallbacks, 1);
    host.drain_all();
    let (taker, flags, server_sequence, _) = host.sent_segments()[0];
    assert_eq!((taker, flags), (1, SYN | ACK));
    host.cores[0].on_frame_from_nic(
        NOW,
        &tcp_frame(port, 80, ACK, 3001, server_sequence.wrapping_add(1)),
    );
    host.drain_all();
    assert!(served.listener().try_accept().is_ok());
    assert_eq!(
        host.cores[0].tcp().borrow_mut().accept(unserved),
        Err(SocketError::WouldBlock)
    );
}

/// A worker that disappears without stopping (its `ServedPort` dropped): the core leaves the
/// serving set at once, the connections still waiting in its accept queue are reset by its
/// layer (a TCB never moves to another core), and the next SYNs go to the cores that serve.
#[test]
fn a_crashed_worker_resets_only_what_it_had_queued() {
    let mut host = host(2, 64);
    let crashed = host.listen(0, 80);
    let _other = host.listen(1, 80);
    let queued = host.client_port_owned_by(0, 80);
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(queued, 80, SYN, 100, 0));
    let (_, _, server_sequence, _) = host.sent_segments()[0];
    host.cores[0].on_frame_from_nic(
        NOW,
        &tcp_frame(queued, 80, ACK, 101, server_sequence.wrapping_add(1)),
    );
    drop(crashed);
    assert_eq!(
        host.table.serving(80),
        [CoreId(1)].into_iter().collect::<CoreSet>()
    );
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].0, sent[0].1 & RST),
        (0, RST),
        "the queued connection is reset"
    );

    let next = host.client_port_owned_by_after(0, 80, queued);
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(next, 80, SYN, 200, 0));
    host.drain_all();
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0, sent[0].1), (1, SYN | ACK));
}

/// An ICMP error quoting our segment `local -> remote` (destination unreachable, code 4,
/// "fragmentation needed", with `next_hop_mtu`), as a router on the path sends it.
fn fragmentation_needed(
    local: SocketAddrV4,
    remote: SocketAddrV4,
    sequence: u32,
    mtu: u16,
) -> Vec<u8> {
    let mut quoted = vec![0u8; 28];
    quoted[0] = 0x45;
    quoted[9] = 6;
    quoted[12..16].copy_from_slice(&local.ip().octets());
    quoted[16..20].copy_from_slice(&remote.ip().octets());
    quoted[20..22].copy_from_slice(&local.port().to_be_bytes());
    quoted[22..24].copy_from_slice(&remote.port().to_be_bytes());
    quoted[24..28].copy_from_slice(&sequence.to_be_bytes());
    let mut error = vec![3, 4, 0, 0, 0, 0];
    error.extend_from_slice(&mtu.to_be_bytes());
    error.extend_from_slice(&quoted);
    Icmpv4Packet::new_unchecked(&mut error[..]).fill_checksum();
    icmp_frame(&error)
}

/// Issue 10, defect 7: an ICMP error about a connection that the global listener placed on
/// another core follows the flow's fallback route to the core that holds the connection.
/// Before, it went to the RSS owner, which knows no such connection, and "fragmentation
/// needed" was lost (a path-MTU black hole for those flows).
#[test]
fn icmp_errors_follow_the_fallback_route_of_their_flow() {
    let mut host = host(4, 64);
    let mut served: Vec<Option<ServedPort>> =
        (0..4).map(|core| Some(host.listen(core, 80))).collect();
    served[1] = None;
    let port = host.client_port_owned_by(1, 80);
    host.cores[1].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 5000, 0));
    host.drain_all();
    let (taker, _, server_sequence, _) = host.sent_segments()[0];
    assert_ne!(taker, 1);
    host.cores[1].on_frame_from_nic(
        NOW,
        &tcp_frame(port, 80, ACK, 5001, server_sequence.wrapping_add(1)),
    );
    host.drain_all();
    let accepted = served[taker]
        .as_ref()
        .unwrap()
        .listener()
        .try_accept()
        .expect("the taker accepts the connection");
    accepted.try_write(&[1u8; 100]).unwrap();
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1);
    let data_sequence = sent[0].2;

    // A router with a 1280-byte MTU answers; the error reaches the flow's RSS owner, core 1.
    let error = fragmentation_needed(
        SocketAddrV4::new(OUR_IP, 80),
        SocketAddrV4::new(PEER_IP, port),
        data_sequence,
        1280,
    );
    host.cores[1].on_frame_from_nic(NOW, &error);
    host.drain_all();
    let delivered: Vec<u64> = host
        .cores
        .iter()
        .map(|core| core.interface().counters().icmp_errors_delivered)
        .collect();
    let mut expected = [0u64; 4];
    expected[taker] = 1;
    assert_eq!(
        delivered, expected,
        "the error reaches the core with the connection"
    );
    assert_eq!(host.cores[1].counters().icmp_errors_routed, 1);
    assert_eq!(
        host.cores[taker].tcp().borrow().counters().icmp_errors,
        1,
        "the taker's layer saw it"
    );
}

/// Opens a connection from `port` to core `core`'s listener on 80, has the server close it
/// first and the client answer, so that the server's side rests in TIME_WAIT on `core`.
/// Returns the client's next sequence number.
fn connection_into_time_wait(host: &mut Host, served: &ServedPort, core: usize, port: u16) -> u32 {
    host.cores[core].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 1000, 0));
    let (_, _, server_sequence, _) = host.sent_segments()[0];
    host.cores[core].on_frame_from_nic(
        NOW,
        &tcp_frame(port, 80, ACK, 1001, server_sequence.wrapping_add(1)),
    );
    let stream = served.listener().try_accept().expect("accepted");
    stream.close().unwrap();
    let fin = host.sent_segments();
    assert!(
        fin.iter().any(|&(_, flags, _, _)| flags & FIN == FIN),
        "{fin:?}"
    );
    let server_fin_next = server_sequence.wrapping_add(2);
    host.cores[core].on_frame_from_nic(NOW, &tcp_frame(port, 80, ACK | FIN, 1001, server_fin_next));
    let _ = host.sent_segments();
    assert_eq!(
        host.cores[core].tcp().borrow().time_wait_count(),
        1,
        "the server side is in TIME_WAIT"
    );
    1002
}

#[test]
fn a_drained_core_hands_a_new_syn_on_a_time_wait_tuple_to_the_global_listener() {
    let mut host = host(2, 64);
    let mut drained = host.listen(0, 80);
    let _other = host.listen(1, 80);
    let port = host.client_port_owned_by(0, 80);
    let next = connection_into_time_wait(&mut host, &drained, 0, port);
    drained.stop_serving();
    // The client reuses its port with a later sequence number: a new incarnation.
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, next + 100_000, 0));
    assert_eq!(host.cores[0].counters().global_listener_fallbacks, 1);
    assert_eq!(host.cores[0].tcp().borrow().time_wait_count(), 0);
    host.drain_all();
    let sent = host.sent_segments();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0, sent[0].1), (1, SYN | ACK), "core 1 answers");
}

#[test]
fn a_serving_core_reuses_its_own_time_wait_tuple_and_keeps_an_old_duplicate_there() {
    let mut host = host(2, 64);
    let served = host.listen(0, 80);
    let _other = host.listen(1, 80);
    let port = host.client_port_owned_by(0, 80);
    let next = connection_into_time_wait(&mut host, &served, 0, port);
    // Serving: the new incarnation stays on core 0 (RFC 6191 reuse there).
    host.cores[0].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, next + 100_000, 0));
    assert_eq!(host.cores[0].counters().global_listener_fallbacks, 0);
    let sent = host.sent_segments();
    assert_eq!((sent[0].0, sent[0].1), (0, SYN | ACK), "{sent:?}");

    // Drained, an old duplicate SYN (sequence before the old connection's end) is answered
    // by the TIME_WAIT record where it is, not handed on.
    let mut host2 = self::host(2, 64);
    let mut drained = host2.listen(0, 80);
    let _other2 = host2.listen(1, 80);
    let port = host2.client_port_owned_by(0, 80);
    connection_into_time_wait(&mut host2, &drained, 0, port);
    drained.stop_serving();
    host2.cores[0].on_frame_from_nic(NOW, &tcp_frame(port, 80, SYN, 500, 0));
    assert_eq!(host2.cores[0].counters().global_listener_fallbacks, 0);
    assert_eq!(host2.cores[0].tcp().borrow().time_wait_count(), 1);
}

// ----- UDP -----

/// A datagram from the peer's `source_port` to our `destination_port`.
fn udp_frame(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = udp::datagram::HEADER_LEN + payload.len();
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp_len];
    let packet = ethernet::write_header(&mut frame, PEER, US, EthernetProtocol::Ipv4);
    let datagram = ipv4::write_header(packet, PEER_IP, OUR_IP, IpProtocol::Udp, udp_len);
    udp::datagram::write(
        datagram,
        (PEER_IP, source_port),
        (OUR_IP, destination_port),
        payload,
    );
    frame
}

impl Host {
    /// The UDP datagrams each core sends now: (core, source port, destination port, payload).
    fn sent_datagrams(&mut self) -> Vec<(usize, u16, u16, Vec<u8>)> {
        let mut datagrams = Vec::new();
        for (index, core) in self.cores.iter_mut().enumerate() {
            let mut frames: Vec<Vec<u8>> = Vec::new();
            core.poll(NOW, &mut frames);
            for frame in frames {
                let ethernet = EthernetFrame::new_checked(&frame[..]).unwrap();
                let Ok(packet) = Ipv4Packet::new_checked(ethernet.payload()) else {
                    continue;
                };
                if packet.next_header() != IpProtocol::Udp {
                    continue;
                }
                let datagram = UdpPacket::new_checked(packet.payload()).unwrap();
                assert!(
                    datagram.verify_checksum(&IpAddress::Ipv4(OUR_IP), &IpAddress::Ipv4(PEER_IP))
                );
                datagrams.push((
                    index,
                    datagram.src_port(),
                    datagram.dst_port(),
                    datagram.payload().to_vec(),
                ));
            }
        }
        datagrams
    }

    fn udp_forwarded(&self) -> Vec<u64> {
        self.cores
            .iter()
            .map(|core| core.counters().udp_forwarded)
            .collect()
    }
}

#[test]
fn a_reply_to_an_ephemeral_port_query_reaches_the_socket_of_the_core_that_sent_it() {
    let mut host = host(4, 64);
    let resolver = SocketAddrV4::new(PEER_IP, 53);
    for core in 0..4 {
        let socket = UdpSocket::connect(host.cores[core].udp(), resolver).unwrap();
        let port = socket.local_address().unwrap().port();
        // The port was chosen so that the NIC's port-only RSS steers the reply here.
        assert_eq!(host.rfd.active_owner(port, 53), CoreId(core as u16));
        assert_eq!(socket.try_send(b"query"), Ok(5));
        assert_eq!(host.sent_datagrams(), [(core, port, 53, b"query".to_vec())]);
        // The reply lands on every queue in turn: the owner takes it directly, the others
        // hand it over their ring, and the socket on `core` gets all four.
        for arrival in 0..4 {
            let before = host.udp_forwarded();
            host.cores[arrival].on_frame_from_nic(NOW, &udp_frame(53, port, &[arrival as u8]));
            let forwarded: u64 =
                host.udp_forwarded().iter().sum::<u64>() - before.iter().sum::<u64>();
            assert_eq!(forwarded, u64::from(arrival != core), "arrival {arrival}");
            host.drain_all();
            let mut buffer = [0u8; 8];
            assert_eq!(socket.try_recv(&mut buffer), Ok(1), "arrival {arrival}");
            assert_eq!(buffer[0], arrival as u8);
        }
        for other in (0..4).filter(|&other| other != core) {
            let counters = host.cores[other].interface().counters();
            assert_eq!(counters.drops(DropReason::UdpNoSocket), 0);
        }
    }
}

#[test]
fn an_unconnected_ephemeral_socket_gets_replies_from_any_peer_port() {
    let mut host = host(4, 64);
    let socket = UdpSocket::bind(
        host.cores[2].udp(),
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    )
    .unwrap();
    let port = socket.local_address().unwrap().port();
    assert_eq!(
        host.table.udp_bound(port),
        [CoreId(2)].into_iter().collect()
    );
    // Peer ports for which port-XOR steering names each of the four cores: whichever core
    // the NIC picks, the datagram reaches core 2.
    for peer_port in [53u16, 5353, 123, 9999, 40000, 41001, 41002, 41003] {
        let arrival = host.rfd.active_owner(port, peer_port);
        host.cores[usize::from(arrival.0)]
            .on_frame_from_nic(NOW, &udp_frame(peer_port, port, b"r"));
        host.drain_all();
        let mut buffer = [0u8; 8];
        assert_eq!(
            socket.try_recv_from(&mut buffer),
            Ok((1, SocketAddrV4::new(PEER_IP, peer_port))),
            "peer port {peer_port} landed on {arrival:?}"
        );
    }
    // Closing it unpublishes the port: a late reply is a closed port where it lands.
    socket.close().unwrap();
    assert_eq!(host.table.udp_bound(port), CoreSet::EMPTY);
    host.cores[0].on_frame_from_nic(NOW, &udp_frame(53, port, b"late"));
    host.drain_all();
    assert_eq!(
        host.cores[0]
            .interface()
            .counters()
            .drops(DropReason::UdpNoSocket),
        1
    );
}

#[test]
fn a_port_bound_on_every_core_is_served_where_it_lands_and_one_bound_once_is_handed_over() {
    let mut host = host(3, 64);
    let servers: Vec<UdpSocket> = (0..3)
        .map(|core| {
            UdpSocket::bind(
                host.cores[core].udp(),
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 514),
            )
            .unwrap()
        })
        .collect();
    for arrival in 0..3 {
        host.cores[arrival].on_frame_from_nic(NOW, &udp_frame(40000 + arrival as u16, 514, b"log"));
    }
    host.drain_all();
    assert_eq!(host.udp_forwarded(), [0, 0, 0]);
    for server in &servers {
        let mut buffer = [0u8; 8];
        assert_eq!(
            server.try_recv_from(&mut buffer).map(|(count, _)| count),
            Ok(3)
        );
    }

    // A DHCP client's port, bound on core 1 only: what lands on 0 or 2 is handed to 1.
    let client = UdpSocket::bind(
        host.cores[1].udp(),
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    )
    .unwrap();
    host.cores[0].on_frame_from_nic(NOW, &udp_frame(67, 68, b"offer"));
    host.cores[2].on_frame_from_nic(NOW, &udp_frame(67, 68, b"ack"));
    host.drain_all();
    assert_eq!(host.udp_forwarded(), [1, 0, 1]);
    let mut buffer = [0u8; 8];
    assert_eq!(client.try_recv(&mut buffer), Err(UdpError::NotConnected));
    // The ring drain visits the source cores round robin: either may come first.
    let mut lengths: Vec<usize> = (0..2)
        .map(|_| client.try_recv_from(&mut buffer).unwrap().0)
        .collect();
    lengths.sort_unstable();
    assert_eq!(lengths, [3, 5]);
}

#[test]
fn a_closed_port_is_answered_by_the_core_that_received_the_datagram() {
    let mut host = host(2, 64);
    host.cores[1].on_frame_from_nic(NOW, &udp_frame(40000, 7777, b"?"));
    host.drain_all();
    assert_eq!(host.udp_forwarded(), [0, 0]);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    host.cores[1].poll(NOW, &mut frames);
    assert_eq!(frames.len(), 1);
    let packet = Ipv4Packet::new_checked(&frames[0][ethernet::HEADER_LEN..]).unwrap();
    assert_eq!(packet.next_header(), IpProtocol::Icmp);
    assert_eq!(&packet.payload()[..2], &[3, 3]);
    assert_eq!(
        host.cores[1].interface().counters().port_unreachables_sent,
        1
    );
}

#[test]
fn an_icmp_error_about_a_datagram_goes_to_the_core_of_its_socket() {
    let mut host = host(4, 64);
    let resolver = SocketAddrV4::new(PEER_IP, 53);
    let socket = UdpSocket::connect(host.cores[3].udp(), resolver).unwrap();
    let local = socket.local_address().unwrap();
    socket.try_send(b"query").unwrap();
    let sent = host.sent_datagrams();
    assert_eq!(sent.len(), 1);
    // The resolver's port is closed: its port unreachable quotes our datagram's header.
    let mut quoted = vec![0u8; 28];
    quoted[0] = 0x45;
    quoted[9] = 17;
    quoted[12..16].copy_from_slice(&OUR_IP.octets());
    quoted[16..20].copy_from_slice(&PEER_IP.octets());
    quoted[20..22].copy_from_slice(&local.port().to_be_bytes());
    quoted[22..24].copy_from_slice(&53u16.to_be_bytes());
    let mut error = vec![3, 3, 0, 0, 0, 0, 0, 0];
    error.extend_from_slice(&quoted);
    Icmpv4Packet::new_unchecked(&mut error[..]).fill_checksum();
    host.cores[0].on_frame_from_nic(NOW, &icmp_frame(&error));
    assert_eq!(host.udp_forwarded(), [1, 0, 0, 0]);
    host.drain_all();
    let mut buffer = [0u8; 8];
    assert_eq!(
        socket.try_recv(&mut buffer),
        Err(UdpError::ConnectionRefused)
    );
}
