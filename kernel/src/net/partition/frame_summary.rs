//! A first look at a received frame, just deep enough to route it to a core: the ethertype, for TCP the ports and flags, for UDP the ports; it validates nothing the owner's stack checks again.

use core::net::SocketAddrV4;

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

use crate::net::rfd::{FourTuple, InboundSegment};

/// ICMP types that quote the packet that caused them (RFC 792): destination unreachable,
/// time exceeded, parameter problem.
const ICMP_QUOTING_TYPES: [u8; 3] = [3, 11, 12];

/// The addresses and flags of a received TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSummary {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub syn: bool,
    pub ack: bool,
}

impl TcpSummary {
    /// The connection from our side: local is the destination.
    pub fn tuple(&self) -> FourTuple {
        FourTuple {
            local: self.destination,
            remote: self.source,
        }
    }

    pub fn inbound(&self) -> InboundSegment {
        InboundSegment::new(self.source, self.destination)
    }

    /// A SYN without ACK: the first segment of a connection a peer opens.
    pub fn opens_connection(&self) -> bool {
        self.syn && !self.ack
    }
}

/// What a frame is, as far as routing it to a core goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSummary {
    Tcp(TcpSummary),
    /// A UDP datagram: its addresses as they appear in the packet (source is the peer).
    Udp {
        source: SocketAddrV4,
        destination: SocketAddrV4,
    },
    Arp,
    /// An ICMP error quoting a TCP segment we sent: the connection it is about, as a segment
    /// from the peer would name it.
    IcmpErrorAboutTcp(InboundSegment),
    /// An ICMP error quoting a UDP datagram we sent, as a datagram from the peer would name
    /// it: `source` is the peer, `destination` our socket's address.
    IcmpErrorAboutUdp {
        source: SocketAddrV4,
        destination: SocketAddrV4,
    },
    /// Anything else (ICMP echo, malformed frames, other protocols): handled where it arrived.
    Other,
}

impl FrameSummary {
    pub fn of(frame: &[u8]) -> FrameSummary {
        let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
            return FrameSummary::Other;
        };
        match ethernet.ethertype() {
            EthernetProtocol::Arp => FrameSummary::Arp,
            EthernetProtocol::Ipv4 => summarize_ipv4(ethernet.payload()),
            _ => FrameSummary::Other,
        }
    }
}

/// The TCP header and payload of an unfragmented IPv4 TCP frame.
pub fn tcp_segment_of(frame: &[u8]) -> Option<&[u8]> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let bytes = ethernet.payload();
    let packet = Ipv4Packet::new_checked(bytes).ok()?;
    if packet.more_frags() || packet.frag_offset() != 0 || packet.next_header() != IpProtocol::Tcp {
        return None;
    }
    let header = usize::from(packet.header_len());
    let total = usize::from(packet.total_len()).min(bytes.len());
    bytes.get(header..total)
}

fn summarize_ipv4(bytes: &[u8]) -> FrameSummary {
    let Ok(packet) = Ipv4Packet::new_checked(bytes) else {
        return FrameSummary::Other;
    };
    if packet.more_frags() || packet.frag_offset() != 0 {
        return FrameSummary::Other;
    }
    match packet.next_header() {
        IpProtocol::Tcp => {
            let Ok(segment) = TcpPacket::new_checked(packet.payload()) else {
                return FrameSummary::Other;
            };
            FrameSummary::Tcp(TcpSummary {
                source: SocketAddrV4::new(packet.src_addr(), segment.src_port()),
                destination: SocketAddrV4::new(packet.dst_addr(), segment.dst_port()),
                syn: segment.syn(),
                ack: segment.ack(),
            })
        }
        IpProtocol::Udp => {
            let Ok(datagram) = UdpPacket::new_checked(packet.payload()) else {
                return FrameSummary::Other;
            };
            FrameSummary::Udp {
                source: SocketAddrV4::new(packet.src_addr(), datagram.src_port()),
                destination: SocketAddrV4::new(packet.dst_addr(), datagram.dst_port()),
            }
        }
        IpProtocol::Icmp => summarize_icmp_error(packet.payload()).unwrap_or(FrameSummary::Other),
        _ => FrameSummary::Other,
    }
}

/// The quoted header of an ICMP error about TCP or UDP: IPv4 header plus the first 8 bytes of
/// the segment or datagram, whose first 4 are the ports (RFC 792).
fn summarize_icmp_error(bytes: &[u8]) -> Option<FrameSummary> {
    let message = Icmpv4Packet::new_checked(bytes).ok()?;
    if !ICMP_QUOTING_TYPES.contains(&u8::from(message.msg_type())) {
        return None;
    }
    let quoted = message.data();
    let quoted_header = Ipv4Packet::new_unchecked(quoted);
    let header_len = usize::from(*quoted.first()? & 0x0f) * 4;
    // The quote's length is checked before any field of it is read: the quoted header is
    // whatever the ICMP message's sender put there.
    if header_len < 20 || quoted.len() < header_len + 4 {
        return None;
    }
    let protocol = quoted_header.next_header();
    if !matches!(protocol, IpProtocol::Tcp | IpProtocol::Udp) {
        return None;
    }
    let ports = &quoted[header_len..header_len + 4];
    let our_port = u16::from_be_bytes([ports[0], ports[1]]);
    let peer_port = u16::from_be_bytes([ports[2], ports[3]]);
    if protocol == IpProtocol::Udp {
        return Some(FrameSummary::IcmpErrorAboutUdp {
            source: SocketAddrV4::new(quoted_header.dst_addr(), peer_port),
            destination: SocketAddrV4::new(quoted_header.src_addr(), our_port),
        });
    }
    Some(FrameSummary::IcmpErrorAboutTcp(InboundSegment::new(
        SocketAddrV4::new(quoted_header.dst_addr(), peer_port),
        SocketAddrV4::new(quoted_header.src_addr(), our_port),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP error (destination unreachable, fragmentation needed) whose quote is `quote`.
    fn icmp_error_quoting(quote: &[u8]) -> Vec<u8> {
        let mut bytes = alloc::vec![3, 4, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(quote);
        bytes
    }

    #[test]
    fn an_icmp_error_quoting_less_than_a_header_is_other_and_never_read_past_its_end() {
        // The malformed-frames script's `icmp_error_truncated_inner`: two bytes of a quote.
        for quote in [&[][..], &[0x45][..], &[0x45, 0x00][..], &[0x45; 23][..]] {
            assert_eq!(summarize_icmp_error(&icmp_error_quoting(quote)), None);
        }
    }

    #[test]
    fn an_icmp_error_quoting_a_udp_datagram_names_its_ports() {
        let mut quote = alloc::vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        quote.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        quote.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        assert_eq!(
            summarize_icmp_error(&icmp_error_quoting(&quote)),
            Some(FrameSummary::IcmpErrorAboutUdp {
                source: SocketAddrV4::new(core::net::Ipv4Addr::new(10, 0, 0, 1), 53),
                destination: SocketAddrV4::new(core::net::Ipv4Addr::new(10, 0, 0, 2), 12345),
            })
        );
    }
}
