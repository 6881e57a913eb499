//! What the run loop needs to know about a received frame before it decides which core
//! handles it: the TCP/IPv4 ports for Receive Flow Deliver, or that an ARP reply must be
//! seen by every core. A light look at fixed offsets; the interface does the full checks.

use core::net::{Ipv4Addr, SocketAddrV4};

use crate::net::rfd::InboundSegment;

const ETHERNET_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const IP_PROTOCOL_TCP: u8 = 6;
/// ARP operation field (RFC 826): 2 is a reply.
const ARP_OPERATION_OFFSET: usize = 6;
const ARP_OPERATION_REPLY: u16 = 2;

/// Where a received frame should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameClass {
    /// A whole (unfragmented) TCP/IPv4 segment: its owner is Receive Flow Deliver's choice.
    Tcp(InboundSegment),
    /// An ARP reply. Every core keeps its own ARP cache and sends its own requests, but the
    /// NIC delivers every reply to one queue (ARP has no ports to hash), so the core that
    /// receives it also hands a copy to every other core.
    ArpReply,
    /// Anything else (ARP requests, ICMP, malformed frames): the core that received it
    /// handles it (ARP and ICMP echo are answered by any core).
    Local,
}

/// Classifies an Ethernet frame by a few fixed-offset fields.
pub fn classify_frame(frame: &[u8]) -> FrameClass {
    let Some(ethertype) = read_u16(frame, 12) else {
        return FrameClass::Local;
    };
    let payload = &frame[ETHERNET_HEADER_LEN.min(frame.len())..];
    match ethertype {
        ETHERTYPE_ARP if read_u16(payload, ARP_OPERATION_OFFSET) == Some(ARP_OPERATION_REPLY) => {
            FrameClass::ArpReply
        }
        ETHERTYPE_IPV4 => classify_ipv4(payload),
        _ => FrameClass::Local,
    }
}

fn classify_ipv4(packet: &[u8]) -> FrameClass {
    let Some(&version_and_length) = packet.first() else {
        return FrameClass::Local;
    };
    let header_len = usize::from(version_and_length & 0x0f) * 4;
    if version_and_length >> 4 != 4 || header_len < 20 || packet.len() < header_len + 4 {
        return FrameClass::Local;
    }
    // Flags and fragment offset (RFC 791): more-fragments bit or a non-zero offset means no
    // ports here, or not in every fragment; the interface drops fragments anyway.
    let fragment = read_u16(packet, 6).unwrap_or(0);
    if packet[9] != IP_PROTOCOL_TCP || fragment & 0x3fff != 0 {
        return FrameClass::Local;
    }
    let address = |offset: usize| {
        Ipv4Addr::new(
            packet[offset],
            packet[offset + 1],
            packet[offset + 2],
            packet[offset + 3],
        )
    };
    let (Some(source_port), Some(destination_port)) = (
        read_u16(packet, header_len),
        read_u16(packet, header_len + 2),
    ) else {
        return FrameClass::Local;
    };
    FrameClass::Tcp(InboundSegment::new(
        SocketAddrV4::new(address(12), source_port),
        SocketAddrV4::new(address(16), destination_port),
    ))
}

fn read_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    let pair = bytes.get(offset..offset + 2)?;
    Some(u16::from_be_bytes([pair[0], pair[1]]))
}
