//! Hostile frames for fuzzing a live stack: random bytes, random headers with valid checksums, and mutations of frames seen on the wire.

use std::net::Ipv4Addr;

use smoltcp::wire::{
    ArpOperation, EthernetAddress, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, TcpPacket,
};
use unisock_kernel::net::arp::{self, ArpMessage};
use unisock_kernel::net::ethernet;
use unisock_kernel::net::ipv4;

use super::Rng;

/// How many hostile frames to inject, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct HostileTraffic {
    /// Frames injected into each host at every step.
    pub frames_per_step: u32,
    /// Steps during which frames are injected.
    pub for_steps: u64,
}

/// The addresses a hostile frame is aimed at, and the honest hosts it must not impersonate at
/// the ARP level (that would be ARP spoofing, which ARP by design cannot stop).
pub struct Target {
    pub hardware_address: EthernetAddress,
    pub address: Ipv4Addr,
    pub honest_addresses: Vec<Ipv4Addr>,
}

const ATTACKER_MAC: EthernetAddress = EthernetAddress([0x02, 0xba, 0xd0, 0, 0, 1]);

/// One hostile frame for `target`, drawn from `rng`; `captured` holds real frames to mutate.
pub fn frame(rng: &mut Rng, target: &Target, captured: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(7) {
        0 => random_bytes(rng),
        1 => random_payload(rng, target),
        2 | 3 => tcp_segment(rng, target, captured),
        4 => icmp_message(rng, target, captured),
        5 => arp_message(rng, target),
        _ => mutated(rng, captured).unwrap_or_else(|| random_bytes(rng)),
    }
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let length = match rng.below(4) {
        0 => rng.below(64),
        _ => rng.below(1600),
    } as usize;
    let mut bytes = vec![0u8; length];
    rng.fill(&mut bytes);
    bytes
}

/// A frame to us with a random payload behind an IPv4 or ARP EtherType.
fn random_payload(rng: &mut Rng, target: &Target) -> Vec<u8> {
    let mut bytes = random_bytes(rng);
    bytes.resize(bytes.len().max(ethernet::HEADER_LEN), 0);
    let ethertype = if rng.chance(0.7) {
        EthernetProtocol::Ipv4
    } else {
        EthernetProtocol::Arp
    };
    ethernet::write_header(&mut bytes, ATTACKER_MAC, target.hardware_address, ethertype);
    if ethertype == EthernetProtocol::Ipv4 && bytes.len() > ethernet::HEADER_LEN {
        // Mostly version 4 with a plausible header length, so the deeper checks are reached.
        bytes[ethernet::HEADER_LEN] = 0x40 | (rng.below(16) as u8);
    }
    bytes
}

/// A host on the link that is none of the simulated ones.
fn stranger(rng: &mut Rng) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 100 + rng.below(100) as u8)
}

/// A source address that passes the IPv4 source checks: on the link, one of the honest hosts
/// or a stranger.
fn plausible_source(rng: &mut Rng, target: &Target) -> Ipv4Addr {
    if rng.chance(0.5) && !target.honest_addresses.is_empty() {
        let index = rng.below(target.honest_addresses.len() as u64) as usize;
        let honest = target.honest_addresses[index];
        if honest != target.address {
            return honest;
        }
    }
    Ipv4Addr::new(10, 0, 0, 100 + rng.below(100) as u8)
}

/// A live connection seen in a captured TCP frame to the target, if any: it aims hostile
/// segments at live connections.
#[derive(Clone, Copy)]
struct LiveSegment {
    source: Ipv4Addr,
    source_port: u16,
    destination_port: u16,
    sequence: u32,
}

fn captured_tcp(rng: &mut Rng, target: &Target, captured: &[Vec<u8>]) -> Option<LiveSegment> {
    for _ in 0..8 {
        if captured.is_empty() {
            return None;
        }
        let frame = &captured[rng.below(captured.len() as u64) as usize];
        let Ok(received) = ethernet::parse(frame, target.hardware_address) else {
            continue;
        };
        let Ok(packet) = Ipv4Packet::new_checked(received.payload) else {
            continue;
        };
        if packet.next_header() != IpProtocol::Tcp || packet.dst_addr() != target.address {
            continue;
        }
        let Ok(segment) = TcpPacket::new_checked(packet.payload()) else {
            continue;
        };
        return Some(LiveSegment {
            source: packet.src_addr(),
            source_port: segment.src_port(),
            destination_port: segment.dst_port(),
            sequence: segment.seq_number().0 as u32,
        });
    }
    None
}

/// A TCP segment with a valid checksum and random flags, numbers, options and payload; a third
/// of them aimed at a live connection (its addresses and ports), with sequence numbers half the
/// space away from the live ones so that they can never be acceptable (RFC 9293 3.10.7.4).
/// Random ones never come from an honest host: a blind in-window hit on an honest connection
/// is accepted by any TCP, and would only test the generator's luck.
fn tcp_segment(rng: &mut Rng, target: &Target, captured: &[Vec<u8>]) -> Vec<u8> {
    let mut source = stranger(rng);
    let header_len = 20 + 4 * rng.below(11) as usize;
    let payload_len = match rng.below(3) {
        0 => 0,
        1 => rng.below(64) as usize,
        _ => rng.below(1400) as usize,
    };
    let mut tcp = vec![0u8; header_len + payload_len];
    rng.fill(&mut tcp);
    let live = if rng.chance(0.33) {
        captured_tcp(rng, target, captured)
    } else {
        None
    };
    match live {
        Some(live) => {
            source = live.source;
            tcp[0..2].copy_from_slice(&live.source_port.to_be_bytes());
            tcp[2..4].copy_from_slice(&live.destination_port.to_be_bytes());
            let far = live
                .sequence
                .wrapping_add(0x8000_0000 ^ (rng.below(1 << 20) as u32));
            // Always with ACK: a SYN without ACK in SYN-SENT is a simultaneous open, which any
            // TCP accepts whatever its sequence number (RFC 9293 3.10.7.3), so a blind attacker
            // who knows the ports can always disturb an opening connection that way.
            tcp[13] |= 0x10;
            tcp[4..8].copy_from_slice(&far.to_be_bytes());
        }
        None => {
            if rng.chance(0.5) {
                tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
            }
        }
    }
    // Data offset: mostly right, sometimes a lie.
    let offset = if rng.chance(0.9) {
        (header_len / 4) as u8
    } else {
        rng.below(16) as u8
    };
    tcp[12] = (offset << 4) | (tcp[12] & 0x0f);
    if rng.chance(0.5) {
        // Well-formed options more often than not, so the option parser goes deep.
        let mut position = 20;
        while position + 4 <= header_len {
            let kind = [2u8, 3, 4, 8, 1, 0][rng.below(6) as usize];
            tcp[position] = kind;
            tcp[position + 1] = [4u8, 3, 2, 10, 0, 40][rng.below(6) as usize];
            position += 4;
        }
    }
    ipv4_frame(rng, target, source, IpProtocol::Tcp, tcp)
}

/// Frame `payload` as IPv4 from `source` to the target, valid IPv4 header, and (for TCP) a
/// valid TCP checksum.
fn ipv4_frame(
    rng: &mut Rng,
    target: &Target,
    source: Ipv4Addr,
    protocol: IpProtocol,
    mut payload: Vec<u8>,
) -> Vec<u8> {
    if protocol == IpProtocol::Tcp && payload.len() >= 20 {
        let mut segment = TcpPacket::new_unchecked(&mut payload[..]);
        segment.fill_checksum(&IpAddress::Ipv4(source), &IpAddress::Ipv4(target.address));
    }
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + payload.len()];
    let packet = ethernet::write_header(
        &mut frame,
        ATTACKER_MAC,
        target.hardware_address,
        EthernetProtocol::Ipv4,
    );
    ipv4::write_header(packet, source, target.address, protocol, payload.len())
        .copy_from_slice(&payload);
    if rng.chance(0.05) {
        // Now and then a fragment, which must be counted and dropped.
        let mut view = Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
        view.set_more_frags(true);
        view.fill_checksum();
    }
    frame
}

/// ICMP: echo requests, and errors quoting (sometimes live) TCP segments of ours.
fn icmp_message(rng: &mut Rng, target: &Target, captured: &[Vec<u8>]) -> Vec<u8> {
    let source = plausible_source(rng, target);
    let mut message = vec![0u8; 8];
    rng.fill(&mut message);
    if rng.chance(0.3) {
        message[0] = 8;
        message[1] = 0;
        let mut data = vec![0u8; rng.below(200) as usize];
        rng.fill(&mut data);
        message.extend_from_slice(&data);
    } else {
        message[0] = [3u8, 11, 12, 4, 5][rng.below(5) as usize];
        message[1] = rng.below(16) as u8;
        let mut quoted = [0u8; 28];
        rng.fill(&mut quoted);
        quoted[0] = 0x45;
        quoted[9] = 6;
        quoted[12..16].copy_from_slice(&target.address.octets());
        quoted[16..20].copy_from_slice(&source.octets());
        if let Some(live) = captured_tcp(rng, target, captured) {
            // Quote a segment of ours on a live connection: addresses and ports reversed.
            quoted[16..20].copy_from_slice(&live.source.octets());
            quoted[20..22].copy_from_slice(&live.destination_port.to_be_bytes());
            quoted[22..24].copy_from_slice(&live.source_port.to_be_bytes());
        }
        let kept = 20 + rng.below(9) as usize;
        message.extend_from_slice(&quoted[..kept]);
    }
    message[2] = 0;
    message[3] = 0;
    let checksum = internet_checksum(&message);
    if rng.chance(0.9) {
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    ipv4_frame(rng, target, source, IpProtocol::Icmp, message)
}

/// A structurally valid ARP request or reply from a stranger (never an honest host's address).
fn arp_message(rng: &mut Rng, target: &Target) -> Vec<u8> {
    let mut sender = Ipv4Addr::from(rng.next_u64() as u32);
    if rng.chance(0.7) {
        sender = Ipv4Addr::new(10, 0, 0, 100 + rng.below(150) as u8);
    }
    if target.honest_addresses.contains(&sender) {
        sender = Ipv4Addr::new(10, 0, 0, 200);
    }
    let mut sender_hardware = [0u8; 6];
    rng.fill(&mut sender_hardware);
    let message = ArpMessage {
        operation: if rng.chance(0.5) {
            ArpOperation::Request
        } else {
            ArpOperation::Reply
        },
        sender_hardware: EthernetAddress(sender_hardware),
        sender_protocol: sender,
        target_hardware: EthernetAddress([0; 6]),
        target_protocol: if rng.chance(0.7) {
            target.address
        } else {
            Ipv4Addr::from(rng.next_u64() as u32)
        },
    };
    let destination = if rng.chance(0.5) {
        EthernetAddress::BROADCAST
    } else {
        target.hardware_address
    };
    let mut frame = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    let payload =
        ethernet::write_header(&mut frame, ATTACKER_MAC, destination, EthernetProtocol::Arp);
    message.write(payload);
    frame
}

/// A captured frame with a few bytes flipped, cut or extended; the IPv4 checksum is sometimes
/// fixed so that the damage reaches the layers above.
fn mutated(rng: &mut Rng, captured: &[Vec<u8>]) -> Option<Vec<u8>> {
    if captured.is_empty() {
        return None;
    }
    let original = &captured[rng.below(captured.len() as u64) as usize];
    let mut frame = original.clone();
    for _ in 0..1 + rng.below(4) {
        if frame.is_empty() {
            break;
        }
        match rng.below(4) {
            0 => {
                let cut = rng.below(frame.len() as u64 + 1) as usize;
                frame.truncate(cut);
            }
            1 => {
                let mut extra = vec![0u8; rng.below(64) as usize];
                rng.fill(&mut extra);
                frame.extend_from_slice(&extra);
            }
            _ => {
                let position = rng.below(frame.len() as u64) as usize;
                frame[position] = rng.next_u64() as u8;
            }
        }
    }
    let header_len = frame
        .get(ethernet::HEADER_LEN)
        .map(|byte| usize::from(byte & 0x0f) * 4);
    let whole_header = header_len.is_some_and(|length| {
        length >= ipv4::HEADER_LEN && frame.len() >= ethernet::HEADER_LEN + length
    });
    if rng.chance(0.5) && whole_header {
        let mut view = Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
        view.fill_checksum();
    }
    emulate_frame_check_sequence(original, &mut frame);
    Some(frame)
}

/// Several changed bytes can cancel out in the internet checksum (RFC 1071 is a sum): two
/// bytes of the same parity moved by opposite amounts leave it intact, and TCP then accepts
/// changed data. On a real link the Ethernet frame check sequence (a CRC) catches such damage
/// long before TCP; the simulated wire has no FCS, so a mutant whose TCP bytes changed but
/// whose TCP checksum still holds is given a wrong checksum, as the FCS would have dropped it.
pub fn emulate_frame_check_sequence(original: &[u8], mutant: &mut [u8]) {
    let segment_of = |frame: &[u8]| -> Option<(Ipv4Addr, Ipv4Addr, std::ops::Range<usize>)> {
        let packet = Ipv4Packet::new_checked(frame.get(ethernet::HEADER_LEN..)?).ok()?;
        if packet.next_header() != IpProtocol::Tcp {
            return None;
        }
        let start = ethernet::HEADER_LEN + usize::from(packet.header_len());
        let end = ethernet::HEADER_LEN + usize::from(packet.total_len());
        (start <= end).then_some((packet.src_addr(), packet.dst_addr(), start..end))
    };
    let Some((source, destination, range)) = segment_of(mutant) else {
        return;
    };
    let unchanged = segment_of(original).is_some_and(
        |(original_source, original_destination, original_range)| {
            (original_source, original_destination) == (source, destination)
                && original[original_range] == mutant[range.clone()]
        },
    );
    let tcp = &mut mutant[range];
    let checksum_holds = TcpPacket::new_unchecked(&*tcp)
        .verify_checksum(&IpAddress::Ipv4(source), &IpAddress::Ipv4(destination));
    if !unchanged && checksum_holds && tcp.len() >= 18 {
        tcp[16] ^= 0xff;
    }
}

/// RFC 1071 internet checksum, for building test input.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
