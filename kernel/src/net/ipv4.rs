//! IPv4 (RFC 791) for a host that does not forward: the address plan, the checks a received header
//! must pass, and the header we write. Fragments are dropped and counted, never reassembled.

use core::net::Ipv4Addr;

use smoltcp::wire::{IPV4_HEADER_LEN, IpProtocol};

use super::checksum;
use super::counters::DropReason;

/// Length of the header we write (we send no options).
pub const HEADER_LEN: usize = IPV4_HEADER_LEN;

/// Time to live of the packets we send: the value IANA recommends (RFC 1700, "IP Parameters").
pub const DEFAULT_TTL: u8 = 64;

/// The interface's place in the network: its address, its subnet and the router beyond it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    pub address: Ipv4Addr,
    /// Length of the subnet prefix, 0 to 32.
    pub prefix_len: u8,
    /// Where packets for addresses outside the subnet go; none means they have no route.
    pub gateway: Option<Ipv4Addr>,
}

impl Ipv4Config {
    #[inline]
    fn netmask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            length => u32::MAX << (32 - u32::from(length.min(32))),
        }
    }

    /// Whether `address` is on our link.
    #[inline]
    pub fn is_on_link(&self, address: Ipv4Addr) -> bool {
        let mask = self.netmask();
        u32::from(address) & mask == u32::from(self.address) & mask
    }

    /// The directed broadcast address of our subnet (none for /31 and /32, RFC 3021).
    #[inline]
    pub fn subnet_broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.address) | !self.netmask()))
    }

    /// The neighbour a packet for `destination` is handed to: the destination itself when it is
    /// on our link, the gateway otherwise, none when there is no route.
    pub fn next_hop(&self, destination: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.is_on_link(destination) {
            Some(destination)
        } else {
            self.gateway
        }
    }

    /// Whether a received packet is addressed to this host. Broadcasts are accepted so that an
    /// echo request to the subnet is seen; TCP drops them itself (RFC 9293 3.10.7.2 knows no
    /// broadcast connection).
    #[inline]
    pub fn accepts_destination(&self, destination: Ipv4Addr) -> bool {
        destination == self.address
            || destination.is_broadcast()
            || Some(destination) == self.subnet_broadcast()
    }

    /// Whether `source` could be a host that talks to us: not a broadcast, multicast, zero or our
    /// own address (RFC 1122 3.2.1.3 and RFC 1812 5.3.7 forbid these as sources).
    #[inline]
    pub fn accepts_source(&self, source: Ipv4Addr) -> bool {
        !(source.is_broadcast()
            || source.is_multicast()
            || source.is_unspecified()
            || source == self.address
            || Some(source) == self.subnet_broadcast())
    }
}

/// A received IPv4 packet that passed every header check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedPacket<'a> {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub protocol: IpProtocol,
    /// The whole packet, header included (ICMP errors quote it).
    pub packet: &'a [u8],
    /// The payload, without the Ethernet padding that may follow the packet.
    pub payload: &'a [u8],
}

/// Check a received IPv4 packet (RFC 791 section 3.1, RFC 1122 3.2.1) and return its parts.
///
/// The TTL is not checked: a host must not drop a packet because its TTL is low (RFC 1122
/// 3.2.1.7); only routers decrement it. Options are accepted and skipped.
pub fn parse<'a>(bytes: &'a [u8], config: &Ipv4Config) -> Result<ReceivedPacket<'a>, DropReason> {
    // Read by hand rather than through smoltcp's field accessors: this runs for every packet,
    // and each accessor checks its own bounds again.
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(DropReason::Ipv4BadHeader);
    };
    let header_len = usize::from(header[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if header[0] >> 4 != 4
        || header_len < HEADER_LEN
        || header_len > total_len
        || total_len > bytes.len()
    {
        return Err(DropReason::Ipv4BadHeader);
    }
    if checksum::sum(&bytes[..header_len]) != 0xffff {
        return Err(DropReason::Ipv4BadChecksum);
    }
    // The MF flag and the fragment offset (the DF flag is the one bit left out).
    if u16::from_be_bytes([header[6], header[7]]) & 0x3fff != 0 {
        return Err(DropReason::Ipv4Fragment);
    }
    let destination = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    if !config.accepts_destination(destination) {
        return Err(DropReason::Ipv4NotForUs);
    }
    let source = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    if !config.accepts_source(source) {
        return Err(DropReason::Ipv4BadSource);
    }
    Ok(ReceivedPacket {
        source,
        destination,
        protocol: IpProtocol::from(header[9]),
        packet: &bytes[..total_len],
        payload: &bytes[header_len..total_len],
    })
}

/// Write a 20-byte IPv4 header for a payload of `payload_len` bytes at the start of `buffer`,
/// checksum included, and return the payload part after it.
///
/// Our packets are atomic (DF set, never fragmented), so their identification field carries no
/// meaning and is zero (RFC 6864 section 4.1).
pub fn write_header(
    buffer: &mut [u8],
    source: Ipv4Addr,
    destination: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: usize,
) -> &mut [u8] {
    let (header, payload) = buffer.split_at_mut(HEADER_LEN);
    let total_len = (HEADER_LEN + payload_len) as u16;
    let [total_high, total_low] = total_len.to_be_bytes();
    let [s0, s1, s2, s3] = source.octets();
    let [d0, d1, d2, d3] = destination.octets();
    // Version 4, 5 words of header, no DSCP or ECN; identification 0; DF set, offset 0;
    // the checksum field is 0 while the sum is taken.
    header.copy_from_slice(&[
        0x45,
        0,
        total_high,
        total_low,
        0,
        0,
        0x40,
        0,
        DEFAULT_TTL,
        u8::from(protocol),
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ]);
    let field = !checksum::sum(header);
    header[10..12].copy_from_slice(&field.to_be_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{Ipv4Packet, Ipv4Repr};

    const CONFIG: Ipv4Config = Ipv4Config {
        address: Ipv4Addr::new(10, 0, 0, 1),
        prefix_len: 24,
        gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
    };
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn packet_from(source: Ipv4Addr, payload: &[u8]) -> alloc::vec::Vec<u8> {
        let mut buffer = alloc::vec![0u8; HEADER_LEN + payload.len()];
        write_header(
            &mut buffer,
            source,
            CONFIG.address,
            IpProtocol::Tcp,
            payload.len(),
        )
        .copy_from_slice(payload);
        buffer
    }

    #[test]
    fn next_hop_is_the_neighbour_or_the_gateway() {
        assert_eq!(CONFIG.next_hop(PEER), Some(PEER));
        let far = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(CONFIG.next_hop(far), CONFIG.gateway);
        let isolated = Ipv4Config {
            gateway: None,
            ..CONFIG
        };
        assert_eq!(isolated.next_hop(far), None);
        assert_eq!(
            CONFIG.subnet_broadcast(),
            Some(Ipv4Addr::new(10, 0, 0, 255))
        );
        let everything = Ipv4Config {
            prefix_len: 0,
            ..CONFIG
        };
        assert!(everything.is_on_link(far));
    }

    #[test]
    fn a_written_header_parses_back_and_padding_is_trimmed() {
        let mut bytes = packet_from(PEER, b"hello");
        bytes.extend_from_slice(&[0; 20]); // Ethernet padding
        let received = parse(&bytes, &CONFIG).unwrap();
        assert_eq!(received.source, PEER);
        assert_eq!(received.protocol, IpProtocol::Tcp);
        assert_eq!(received.payload, b"hello");
        assert_eq!(received.packet.len(), HEADER_LEN + 5);
    }

    #[test]
    fn smoltcp_reads_our_header_as_we_meant_it() {
        let bytes = packet_from(PEER, b"hello");
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert!(packet.dont_frag() && !packet.more_frags() && packet.frag_offset() == 0);
        assert_eq!((packet.dscp(), packet.ecn(), packet.ident()), (0, 0, 0));
        let repr = Ipv4Repr::parse(&packet, &ChecksumCapabilities::default()).unwrap();
        assert_eq!(
            repr,
            Ipv4Repr {
                src_addr: PEER,
                dst_addr: CONFIG.address,
                next_header: IpProtocol::Tcp,
                payload_len: 5,
                hop_limit: DEFAULT_TTL,
            }
        );
    }

    #[test]
    fn each_bad_header_is_dropped_for_its_own_reason() {
        let good = packet_from(PEER, b"data");
        assert_eq!(parse(&good[..19], &CONFIG), Err(DropReason::Ipv4BadHeader));

        let mut version_six = good.clone();
        version_six[0] = 0x65;
        assert_eq!(parse(&version_six, &CONFIG), Err(DropReason::Ipv4BadHeader));

        let mut short_ihl = good.clone();
        short_ihl[0] = 0x44;
        assert_eq!(parse(&short_ihl, &CONFIG), Err(DropReason::Ipv4BadHeader));

        let mut corrupted = good.clone();
        corrupted[8] ^= 0x01; // TTL changed, checksum not updated
        assert_eq!(parse(&corrupted, &CONFIG), Err(DropReason::Ipv4BadChecksum));

        let mut fragment = good.clone();
        let mut view = Ipv4Packet::new_unchecked(&mut fragment[..]);
        view.set_more_frags(true);
        view.fill_checksum();
        assert_eq!(parse(&fragment, &CONFIG), Err(DropReason::Ipv4Fragment));

        let mut last_fragment = good.clone();
        let mut view = Ipv4Packet::new_unchecked(&mut last_fragment[..]);
        view.set_frag_offset(64);
        view.fill_checksum();
        assert_eq!(
            parse(&last_fragment, &CONFIG),
            Err(DropReason::Ipv4Fragment)
        );

        let mut elsewhere = good.clone();
        let mut view = Ipv4Packet::new_unchecked(&mut elsewhere[..]);
        view.set_dst_addr(Ipv4Addr::new(10, 0, 0, 9));
        view.fill_checksum();
        assert_eq!(parse(&elsewhere, &CONFIG), Err(DropReason::Ipv4NotForUs));

        for source in [
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(224, 0, 0, 1),
            CONFIG.address,
        ] {
            let spoofed = packet_from(source, b"data");
            assert_eq!(parse(&spoofed, &CONFIG), Err(DropReason::Ipv4BadSource));
        }
    }

    #[test]
    fn a_low_ttl_is_not_a_reason_to_drop() {
        let mut bytes = packet_from(PEER, b"x");
        let mut view = Ipv4Packet::new_unchecked(&mut bytes[..]);
        view.set_hop_limit(0);
        view.fill_checksum();
        assert!(parse(&bytes, &CONFIG).is_ok());
    }
}
