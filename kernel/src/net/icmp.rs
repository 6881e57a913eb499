//! ICMP for IPv4 (RFC 792): echo requests we answer, and the errors about our own TCP packets that
//! TCP must react to (RFC 1122 4.2.3.9, RFC 5927). We never send ICMP errors ourselves.

use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol};

use super::counters::DropReason;

/// Length of the ICMP header: type, code, checksum and four type-specific bytes.
pub const HEADER_LEN: usize = 8;

/// ICMP message types (RFC 792, IANA "ICMP Type Numbers").
mod message_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DESTINATION_UNREACHABLE: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
}

/// What an ICMP error says happened to one of our packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Destination unreachable, code 0: no route to the network (soft error, RFC 1122 4.2.3.9).
    NetworkUnreachable,
    /// Destination unreachable, code 1: the host did not answer (soft error).
    HostUnreachable,
    /// Destination unreachable, code 2: the host does not speak TCP (hard error).
    ProtocolUnreachable,
    /// Destination unreachable, code 3: nothing listens on the port (hard error).
    PortUnreachable,
    /// Destination unreachable, code 4: the packet needed fragmenting and DF was set (RFC 1191);
    /// carries the next-hop MTU, zero from routers older than RFC 1191.
    FragmentationNeeded { next_hop_mtu: u16 },
    /// Destination unreachable, code 5: source route failed (soft error).
    SourceRouteFailed,
    /// Destination unreachable, codes 9, 10 and 13: communication administratively prohibited
    /// (RFC 1812 5.2.7.1); soft per RFC 1122, which predates these codes.
    AdministrativelyProhibited { code: u8 },
    /// Any other destination-unreachable code (soft error).
    OtherUnreachable { code: u8 },
    /// Time exceeded in transit or in reassembly (RFC 792; soft error).
    TimeExceeded,
    /// Parameter problem (RFC 792; soft error).
    ParameterProblem,
}

impl IcmpErrorKind {
    /// Whether RFC 1122 4.2.3.9 says a connection should be aborted on this error, rather than
    /// only remembered. RFC 5927 section 4 advises treating even these as soft in synchronized
    /// states; that choice belongs to TCP.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            IcmpErrorKind::ProtocolUnreachable | IcmpErrorKind::PortUnreachable
        )
    }
}

/// The start of the TCP segment an ICMP error quotes: enough to find the connection and to check
/// that the sequence number is in flight (RFC 5927 section 4.1). RFC 792 guarantees at least the
/// first 8 bytes of the segment, i.e. the ports and the sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedTcpSegment {
    /// Our address: the source of the quoted packet.
    pub local_address: Ipv4Addr,
    /// The peer's address: the destination of the quoted packet.
    pub remote_address: Ipv4Addr,
    pub local_port: u16,
    pub remote_port: u16,
    /// The sequence number of the quoted segment.
    pub sequence_number: u32,
}

/// An ICMP error about a TCP segment that we sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpIcmpError {
    pub kind: IcmpErrorKind,
    pub segment: QuotedTcpSegment,
    /// Who sent the error (a router on the path or the peer itself).
    pub reporter: Ipv4Addr,
}

/// An ICMP error about a UDP datagram that we sent: the quoted datagram's addresses, from our
/// side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpIcmpError {
    pub kind: IcmpErrorKind,
    /// Our address and port: the source of the quoted datagram.
    pub local: SocketAddrV4,
    /// The peer's address and port: its destination.
    pub remote: SocketAddrV4,
}

/// A received ICMP message worth acting on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpMessage<'a> {
    /// An echo request whose reply is to be sent (RFC 1122 3.2.2.6: every host must answer).
    EchoRequest {
        identifier: u16,
        sequence_number: u16,
        data: &'a [u8],
    },
    /// An error to hand to TCP.
    TcpError(TcpIcmpError),
    /// An error to hand to UDP.
    UdpError(UdpIcmpError),
}

/// Parse the ICMP payload of a packet from `reporter` to `our_address`.
pub fn parse(
    payload: &[u8],
    reporter: Ipv4Addr,
    our_address: Ipv4Addr,
) -> Result<IcmpMessage<'_>, DropReason> {
    let packet = Icmpv4Packet::new_checked(payload).map_err(|_| DropReason::IcmpMalformed)?;
    if !packet.verify_checksum() {
        return Err(DropReason::IcmpBadChecksum);
    }
    let message_type = payload[0];
    let code = payload[1];
    let rest_of_header = [payload[4], payload[5], payload[6], payload[7]];
    let body = &payload[HEADER_LEN..];
    let kind = match message_type {
        message_type::ECHO_REQUEST if code == 0 => {
            return Ok(IcmpMessage::EchoRequest {
                identifier: u16::from_be_bytes([rest_of_header[0], rest_of_header[1]]),
                sequence_number: u16::from_be_bytes([rest_of_header[2], rest_of_header[3]]),
                data: body,
            });
        }
        message_type::DESTINATION_UNREACHABLE => match code {
            0 => IcmpErrorKind::NetworkUnreachable,
            1 => IcmpErrorKind::HostUnreachable,
            2 => IcmpErrorKind::ProtocolUnreachable,
            3 => IcmpErrorKind::PortUnreachable,
            4 => IcmpErrorKind::FragmentationNeeded {
                // RFC 1191 section 4: the next-hop MTU sits in the low 16 bits of the unused word.
                next_hop_mtu: u16::from_be_bytes([rest_of_header[2], rest_of_header[3]]),
            },
            5 => IcmpErrorKind::SourceRouteFailed,
            code @ (9 | 10 | 13) => IcmpErrorKind::AdministrativelyProhibited { code },
            code => IcmpErrorKind::OtherUnreachable { code },
        },
        message_type::TIME_EXCEEDED => IcmpErrorKind::TimeExceeded,
        message_type::PARAMETER_PROBLEM => IcmpErrorKind::ParameterProblem,
        // Source quench is deprecated and must be ignored (RFC 6633); echo replies answer pings
        // we never send; redirects, timestamps and the rest are not ours to act on.
        message_type::SOURCE_QUENCH | message_type::ECHO_REPLY => {
            return Err(DropReason::IcmpUnsupported);
        }
        _ => return Err(DropReason::IcmpUnsupported),
    };
    if let Some((local, remote)) = parse_quoted_udp(body, our_address)? {
        return Ok(IcmpMessage::UdpError(UdpIcmpError {
            kind,
            local,
            remote,
        }));
    }
    let segment = parse_quoted_tcp(body, our_address)?;
    Ok(IcmpMessage::TcpError(TcpIcmpError {
        kind,
        segment,
        reporter,
    }))
}

/// The addresses of a quoted UDP datagram (from our side), `None` if the quote is not UDP.
fn parse_quoted_udp(
    quote: &[u8],
    our_address: Ipv4Addr,
) -> Result<Option<(SocketAddrV4, SocketAddrV4)>, DropReason> {
    let Some(&version_and_length) = quote.first() else {
        return Err(DropReason::IcmpMalformed);
    };
    if quote.len() < 20 || IpProtocol::from(quote[9]) != IpProtocol::Udp {
        return Ok(None);
    }
    let header_len = usize::from(version_and_length & 0x0f) * 4;
    if version_and_length >> 4 != 4 || header_len < 20 || quote.len() < header_len + 4 {
        return Err(DropReason::IcmpMalformed);
    }
    let source = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
    let destination = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
    if source != our_address {
        return Err(DropReason::IcmpErrorNotOurs);
    }
    let ports = &quote[header_len..header_len + 4];
    Ok(Some((
        SocketAddrV4::new(source, u16::from_be_bytes([ports[0], ports[1]])),
        SocketAddrV4::new(destination, u16::from_be_bytes([ports[2], ports[3]])),
    )))
}

/// Read the IPv4 header and the first 8 TCP bytes quoted by an ICMP error (RFC 792).
///
/// The quote is usually cut short, so its total-length field is not checked against what we
/// have, and its checksum may be stale after NAT: neither is verified (RFC 5927 section 4.1).
fn parse_quoted_tcp(quote: &[u8], our_address: Ipv4Addr) -> Result<QuotedTcpSegment, DropReason> {
    let Some(&version_and_length) = quote.first() else {
        return Err(DropReason::IcmpMalformed);
    };
    let header_len = usize::from(version_and_length & 0x0f) * 4;
    if version_and_length >> 4 != 4 || header_len < 20 || quote.len() < header_len + 8 {
        return Err(DropReason::IcmpMalformed);
    }
    if IpProtocol::from(quote[9]) != IpProtocol::Tcp {
        return Err(DropReason::IcmpUnsupported);
    }
    let source = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
    let destination = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
    if source != our_address {
        return Err(DropReason::IcmpErrorNotOurs);
    }
    let tcp = &quote[header_len..header_len + 8];
    Ok(QuotedTcpSegment {
        local_address: source,
        remote_address: destination,
        local_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        remote_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        sequence_number: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
    })
}

/// Length of the echo reply to a request carrying `data`.
pub fn echo_reply_len(data: &[u8]) -> usize {
    HEADER_LEN + data.len()
}

/// Write the echo reply (RFC 792: same identifier, sequence number and data) into `buffer`,
/// which is [`echo_reply_len`] bytes long.
pub fn write_echo_reply(buffer: &mut [u8], identifier: u16, sequence_number: u16, data: &[u8]) {
    let repr = Icmpv4Repr::EchoReply {
        ident: identifier,
        seq_no: sequence_number,
        data,
    };
    let mut packet = Icmpv4Packet::new_unchecked(buffer);
    repr.emit(&mut packet, &ChecksumCapabilities::default());
}

/// Most bytes of the offending packet an error quotes: RFC 1812 4.3.2.3 asks for as much as
/// fits in a 576-byte error (what Linux's `icmp_send` quotes), 576 less our IPv4 and ICMP headers.
pub const MAX_QUOTE_LEN: usize = 576 - 20 - HEADER_LEN;

/// Length of a destination unreachable message quoting `packet` (cut to [`MAX_QUOTE_LEN`]).
pub fn port_unreachable_len(packet: &[u8]) -> usize {
    HEADER_LEN + packet.len().min(MAX_QUOTE_LEN)
}

/// Write a destination unreachable, port unreachable message (type 3 code 3, RFC 792; RFC 1122
/// 3.2.2.1 says a host should send it for a datagram to a port nobody listens on) quoting the
/// start of `packet`, the IPv4 packet that caused it, into `buffer` ([`port_unreachable_len`]
/// bytes long).
pub fn write_port_unreachable(buffer: &mut [u8], packet: &[u8]) {
    let quote = &packet[..packet.len().min(MAX_QUOTE_LEN)];
    buffer[..HEADER_LEN].copy_from_slice(&[
        message_type::DESTINATION_UNREACHABLE,
        3,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    buffer[HEADER_LEN..].copy_from_slice(quote);
    Icmpv4Packet::new_unchecked(buffer).fill_checksum();
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);

    fn with_checksum(mut message: Vec<u8>) -> Vec<u8> {
        Icmpv4Packet::new_unchecked(&mut message[..]).fill_checksum();
        message
    }

    fn error_message(message_type: u8, code: u8, quoted_source: Ipv4Addr, protocol: u8) -> Vec<u8> {
        let mut message = alloc::vec![message_type, code, 0, 0, 0, 0, 0x05, 0xdc];
        let mut header = [0u8; 20];
        header[0] = 0x45;
        header[9] = protocol;
        header[12..16].copy_from_slice(&quoted_source.octets());
        header[16..20].copy_from_slice(&PEER.octets());
        message.extend_from_slice(&header);
        message.extend_from_slice(&[0xc0, 0x00, 0x00, 0x50, 0, 0, 0x10, 0x00]);
        with_checksum(message)
    }

    #[test]
    fn echo_requests_are_answered_with_the_same_data() {
        let request = with_checksum(alloc::vec![8, 0, 0, 0, 0x12, 0x34, 0, 7, b'p', b'i', b'n']);
        let Ok(IcmpMessage::EchoRequest {
            identifier,
            sequence_number,
            data,
        }) = parse(&request, PEER, US)
        else {
            panic!("not an echo request");
        };
        assert_eq!(
            (identifier, sequence_number, data),
            (0x1234, 7, &b"pin"[..])
        );
        let mut reply = alloc::vec![0u8; echo_reply_len(data)];
        write_echo_reply(&mut reply, identifier, sequence_number, data);
        let packet = Icmpv4Packet::new_checked(&reply[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(reply[0], message_type::ECHO_REPLY);
        assert_eq!(&reply[4..], &request[4..]);
    }

    #[test]
    fn errors_about_our_tcp_segments_reach_tcp() {
        let Ok(IcmpMessage::TcpError(error)) = parse(&error_message(3, 4, US, 6), ROUTER, US)
        else {
            panic!("not a TCP error");
        };
        assert_eq!(
            error.kind,
            IcmpErrorKind::FragmentationNeeded { next_hop_mtu: 1500 }
        );
        assert_eq!(error.reporter, ROUTER);
        assert_eq!(
            error.segment,
            QuotedTcpSegment {
                local_address: US,
                remote_address: PEER,
                local_port: 0xc000,
                remote_port: 80,
                sequence_number: 0x1000,
            }
        );
        let Ok(IcmpMessage::TcpError(port)) = parse(&error_message(3, 3, US, 6), PEER, US) else {
            panic!("not a TCP error");
        };
        assert!(port.kind.is_hard());
        let Ok(IcmpMessage::TcpError(expired)) = parse(&error_message(11, 0, US, 6), ROUTER, US)
        else {
            panic!("not a TCP error");
        };
        assert!(!expired.kind.is_hard());
    }

    #[test]
    fn other_messages_are_dropped_for_their_reason() {
        assert_eq!(parse(&[8, 0, 0], PEER, US), Err(DropReason::IcmpMalformed));
        let mut corrupted = error_message(3, 3, US, 6);
        corrupted[10] ^= 1;
        assert_eq!(
            parse(&corrupted, PEER, US),
            Err(DropReason::IcmpBadChecksum)
        );
        assert_eq!(
            parse(&error_message(3, 3, PEER, 6), PEER, US),
            Err(DropReason::IcmpErrorNotOurs)
        );
        // An error quoting neither TCP nor UDP (here ICMP) is not ours to act on.
        assert_eq!(
            parse(&error_message(3, 3, US, 1), PEER, US),
            Err(DropReason::IcmpUnsupported)
        );
        // One quoting UDP goes to UDP, with the datagram's addresses from our side.
        match parse(&error_message(3, 3, US, 17), PEER, US) {
            Ok(IcmpMessage::UdpError(error)) => {
                assert_eq!(error.kind, IcmpErrorKind::PortUnreachable);
                assert_eq!(*error.local.ip(), US);
                assert_eq!(*error.remote.ip(), PEER);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(&error_message(3, 3, PEER, 17), PEER, US),
            Err(DropReason::IcmpErrorNotOurs)
        );
        assert_eq!(
            parse(&error_message(4, 0, US, 6), PEER, US),
            Err(DropReason::IcmpUnsupported)
        );
        let mut cut = error_message(3, 3, US, 6);
        cut.truncate(HEADER_LEN + 20 + 4);
        let cut = with_checksum(cut);
        assert_eq!(parse(&cut, PEER, US), Err(DropReason::IcmpMalformed));
        let reply = with_checksum(alloc::vec![0, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(parse(&reply, PEER, US), Err(DropReason::IcmpUnsupported));
    }
}
