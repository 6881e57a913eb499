//! Property tests of the lower layers: parsers never panic on any bytes, what we write parses back, the ARP cache keeps its bounds and its order, and an interface takes any frame.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use smoltcp::wire::{ArpOperation, EthernetAddress, EthernetProtocol, IpProtocol};
use unisock_kernel::net::arp::{self, ArpCache, ArpMessage};
use unisock_kernel::net::counters::DropReason;
use unisock_kernel::net::ethernet;
use unisock_kernel::net::icmp;
use unisock_kernel::net::interface::{Interface, InterfaceConfig};
use unisock_kernel::net::ipv4::{self, Ipv4Config};
use unisock_kernel::net::tcp::{CoreId, TcpConfig, TcpLayer};
use unisock_kernel::time::Instant;

const CONFIG: Ipv4Config = Ipv4Config {
    address: Ipv4Addr::new(10, 0, 0, 1),
    prefix_len: 24,
    gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
};
const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);

fn address() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_parser_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = ethernet::parse(&bytes, US);
        let _ = ArpMessage::parse(&bytes);
        let _ = ipv4::parse(&bytes, &CONFIG);
        let _ = icmp::parse(&bytes, Ipv4Addr::new(10, 0, 0, 2), CONFIG.address);
    }

    #[test]
    fn an_icmp_message_with_a_good_checksum_never_panics_either(
        mut bytes in proptest::collection::vec(any::<u8>(), 8..200),
    ) {
        // Let random bytes past the checksum check, so the inner parsing is exercised.
        bytes[2] = 0;
        bytes[3] = 0;
        let sum = internet_checksum(&bytes);
        bytes[2..4].copy_from_slice(&sum.to_be_bytes());
        prop_assert_ne!(
            icmp::parse(&bytes, Ipv4Addr::new(10, 0, 0, 2), CONFIG.address),
            Err(DropReason::IcmpBadChecksum)
        );
    }

    #[test]
    fn a_written_ipv4_packet_parses_back(
        source in address(),
        payload in proptest::collection::vec(any::<u8>(), 0..1480),
        padding in 0usize..64,
    ) {
        let mut bytes = vec![0u8; ipv4::HEADER_LEN + payload.len() + padding];
        ipv4::write_header(&mut bytes, source, CONFIG.address, IpProtocol::Tcp, payload.len())
            [..payload.len()]
            .copy_from_slice(&payload);
        match ipv4::parse(&bytes, &CONFIG) {
            Ok(packet) => {
                prop_assert!(CONFIG.accepts_source(source));
                prop_assert_eq!(packet.source, source);
                prop_assert_eq!(packet.payload, &payload[..]);
            }
            Err(reason) => {
                prop_assert_eq!(reason, DropReason::Ipv4BadSource);
                prop_assert!(!CONFIG.accepts_source(source));
            }
        }
    }

    #[test]
    fn any_single_bit_flip_in_an_ipv4_header_is_caught(
        source in (1u32..0xdfff_ffff).prop_map(Ipv4Addr::from),
        bit in 0usize..160,
    ) {
        prop_assume!(CONFIG.accepts_source(source));
        let mut bytes = vec![0u8; ipv4::HEADER_LEN + 4];
        ipv4::write_header(&mut bytes, source, CONFIG.address, IpProtocol::Tcp, 4);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(ipv4::parse(&bytes, &CONFIG).is_err());
    }

    #[test]
    fn arp_messages_round_trip(
        request in any::<bool>(),
        sender_hardware in mac(),
        sender_protocol in address(),
        target_hardware in mac(),
        target_protocol in address(),
    ) {
        let message = ArpMessage {
            operation: if request { ArpOperation::Request } else { ArpOperation::Reply },
            sender_hardware,
            sender_protocol,
            target_hardware,
            target_protocol,
        };
        let mut frame = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
        let payload = ethernet::write_header(
            &mut frame,
            sender_hardware,
            EthernetAddress::BROADCAST,
            EthernetProtocol::Arp,
        );
        message.write(payload);
        let received = ethernet::parse(&frame, US);
        if sender_hardware.is_multicast() {
            prop_assert_eq!(received, Err(DropReason::EthernetBadSource));
        } else {
            let received = received.unwrap();
            prop_assert_eq!(received.ethertype, EthernetProtocol::Arp);
            prop_assert_eq!(ArpMessage::parse(received.payload), Ok(message));
        }
    }

    /// The cache against a model: bounded, and `learn` releases exactly the packets queued for
    /// that address, in the order they were queued.
    #[test]
    fn the_arp_cache_keeps_its_bounds_and_its_order(
        operations in proptest::collection::vec((0u8..3, 0u8..8, 0u16..3000), 1..300),
    ) {
        let mut cache = ArpCache::new();
        let mut model: Vec<(Ipv4Addr, u16)> = Vec::new();
        let mut now = Instant::ZERO;
        for (kind, host, value) in operations {
            let address = Ipv4Addr::new(10, 0, 0, 10 + host);
            match kind {
                0 => {
                    let queued = cache.enqueue(now, address, value.to_be_bytes().to_vec());
                    if model.len() >= arp::WAITING_CAPACITY {
                        prop_assert_eq!(queued, Err(DropReason::ArpQueueFull));
                    } else {
                        prop_assert!(queued.is_ok());
                        model.push((address, value));
                    }
                }
                1 => {
                    let released: Vec<u16> = cache
                        .learn(now, address, EthernetAddress([2, 0, 0, 0, 0, host]))
                        .into_iter()
                        .map(|waiting| u16::from_be_bytes([waiting.packet[0], waiting.packet[1]]))
                        .collect();
                    let expected: Vec<u16> = model
                        .iter()
                        .filter(|(waiting_for, _)| *waiting_for == address)
                        .map(|(_, value)| *value)
                        .collect();
                    model.retain(|(waiting_for, _)| *waiting_for != address);
                    prop_assert_eq!(released, expected);
                    prop_assert!(cache.lookup(now, address).is_some());
                }
                _ => {
                    now = now + std::time::Duration::from_millis(u64::from(value));
                    let mut dropped = Vec::new();
                    cache.on_timers(now, |_| {}, |waiting| dropped.push(waiting.next_hop));
                    for address in dropped {
                        let position = model.iter().position(|(waiting_for, _)| *waiting_for == address);
                        prop_assert!(position.is_some());
                        model.remove(position.unwrap());
                    }
                }
            }
            prop_assert_eq!(cache.waiting_count(), model.len());
            prop_assert!(cache.entry_count() <= arp::CACHE_CAPACITY);
            if let Some(deadline) = cache.next_deadline() {
                prop_assert!(deadline > now || cache.resolution_count() > 0);
            }
        }
    }
}

/// A frame that reaches past the Ethernet check: to us, IPv4 or ARP, then anything; or,
/// with a valid IPv4 header, a payload for ICMP or TCP (with a valid TCP checksum).
fn frame_for_us() -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..200);
    let behind_header = (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(arp, body)| {
            let mut frame = vec![0u8; ethernet::HEADER_LEN];
            let ethertype = if arp {
                EthernetProtocol::Arp
            } else {
                EthernetProtocol::Ipv4
            };
            ethernet::write_header(
                &mut frame,
                EthernetAddress([2, 0, 0, 0, 0, 9]),
                US,
                ethertype,
            );
            frame.extend_from_slice(&body);
            frame
        });
    let ip_payload = (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(tcp, mut payload)| {
            let source = Ipv4Addr::new(10, 0, 0, 9);
            let protocol = if tcp {
                IpProtocol::Tcp
            } else {
                IpProtocol::Icmp
            };
            if tcp && payload.len() >= 20 {
                payload[12] = (5 + payload[12] % 11) << 4;
                let mut segment = smoltcp::wire::TcpPacket::new_unchecked(&mut payload[..]);
                segment.fill_checksum(
                    &smoltcp::wire::IpAddress::Ipv4(source),
                    &smoltcp::wire::IpAddress::Ipv4(CONFIG.address),
                );
            }
            let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + payload.len()];
            let packet = ethernet::write_header(
                &mut frame,
                EthernetAddress([2, 0, 0, 0, 0, 9]),
                US,
                EthernetProtocol::Ipv4,
            );
            ipv4::write_header(packet, source, CONFIG.address, protocol, payload.len())
                .copy_from_slice(&payload);
            frame
        });
    prop_oneof![raw, behind_header, ip_payload]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any sequence of frames: no panic, every frame either used or dropped under one reason,
    /// and what the interface sends back is well-formed Ethernet from us.
    #[test]
    fn an_interface_takes_any_frame(frames in proptest::collection::vec(frame_for_us(), 1..40)) {
        let tcp = TcpLayer::new(TcpConfig::default(), CoreId(0), [3; 16]).into_shared();
        let config = InterfaceConfig { hardware_address: US, ipv4: CONFIG };
        let mut interface = Interface::new(config, tcp.clone(), Instant::ZERO);
        tcp.borrow_mut()
            .listen(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 8)
            .unwrap();
        let mut now = Instant::ZERO;
        for frame in &frames {
            now = now + std::time::Duration::from_millis(7);
            interface.receive(now, frame);
            let mut sent: Vec<Vec<u8>> = Vec::new();
            interface.poll(now, &mut sent);
            for reply in sent {
                let parsed = smoltcp::wire::EthernetFrame::new_checked(&reply[..]).unwrap();
                prop_assert_eq!(parsed.src_addr(), US);
            }
        }
        let counters = interface.counters();
        prop_assert_eq!(counters.frames_received, frames.len() as u64);
        prop_assert_eq!(
            counters.frames_received,
            counters.frames_accepted + counters.frames_dropped
        );
        prop_assert_eq!(
            counters.frames_dropped,
            counters.drops_by_reason().map(|(_, count)| count).sum::<u64>()
                - counters.drops(DropReason::TransmitQueueFull)
                - counters.drops(DropReason::ArpQueueFull)
                - counters.drops(DropReason::ArpResolutionFailed)
                - counters.drops(DropReason::TransmitNoRoute)
                - counters.drops(DropReason::TransmitTooLarge)
                - counters.drops(DropReason::TransmitBadSource)
        );
    }
}

/// RFC 1071 internet checksum, written independently of the stack's, to build test input.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
