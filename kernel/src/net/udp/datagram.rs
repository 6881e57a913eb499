//! The UDP wire format (RFC 768) through `smoltcp::wire`: checking a received datagram and writing one to send.

use core::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, UdpPacket, UdpRepr};

/// Bytes of the UDP header.
pub const HEADER_LEN: usize = 8;

/// Why a received datagram is not delivered, before any socket is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramError {
    /// Shorter than its header, or its length field claims more bytes than the IP packet holds.
    Truncated,
    /// The checksum over the pseudo-header does not verify.
    BadChecksum,
}

/// A received datagram that passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedDatagram<'a> {
    pub source_port: u16,
    pub destination_port: u16,
    /// The payload, without the bytes after the UDP length (IP padding is not data).
    pub payload: &'a [u8],
}

/// Checks the datagram `bytes` (the IPv4 payload) from `source` to `destination`.
///
/// The length field may be shorter than the IP payload (the rest is padding, RFC 768 leaves
/// it to IP), never longer. A zero checksum field means the sender computed none, which IPv4
/// allows (RFC 768, RFC 1122 4.1.3.4); any other value must verify.
pub fn parse(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    bytes: &[u8],
) -> Result<ReceivedDatagram<'_>, DatagramError> {
    let packet = UdpPacket::new_checked(bytes).map_err(|_| DatagramError::Truncated)?;
    if !packet.verify_checksum(&IpAddress::Ipv4(source), &IpAddress::Ipv4(destination)) {
        return Err(DatagramError::BadChecksum);
    }
    let length = usize::from(packet.len());
    Ok(ReceivedDatagram {
        source_port: packet.src_port(),
        destination_port: packet.dst_port(),
        payload: &bytes[HEADER_LEN..length],
    })
}

/// Writes a datagram with `payload` from `source` to `destination` into `buffer`, which must be
/// exactly `HEADER_LEN + payload.len()` long; the checksum is always computed (a computed zero
/// goes out as 0xffff, RFC 768).
pub fn write(
    buffer: &mut [u8],
    source: (Ipv4Addr, u16),
    destination: (Ipv4Addr, u16),
    payload: &[u8],
) {
    let repr = UdpRepr {
        src_port: source.1,
        dst_port: destination.1,
    };
    let mut packet = UdpPacket::new_unchecked(buffer);
    repr.emit(
        &mut packet,
        &IpAddress::Ipv4(source.0),
        &IpAddress::Ipv4(destination.0),
        payload.len(),
        |room| room.copy_from_slice(payload),
        &ChecksumCapabilities::default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn datagram(payload: &[u8]) -> alloc::vec::Vec<u8> {
        let mut buffer = alloc::vec![0u8; HEADER_LEN + payload.len()];
        write(&mut buffer, (A, 4000), (B, 53), payload);
        buffer
    }

    #[test]
    fn a_written_datagram_parses_back_and_its_checksum_verifies() {
        let bytes = datagram(b"query");
        assert_ne!(&bytes[6..8], &[0, 0], "the checksum is computed on send");
        let parsed = parse(A, B, &bytes).unwrap();
        assert_eq!(
            (parsed.source_port, parsed.destination_port, parsed.payload),
            (4000, 53, &b"query"[..])
        );
        // The pseudo-header counts: the same bytes from another address do not verify.
        assert_eq!(
            parse(Ipv4Addr::new(10, 0, 0, 3), B, &bytes),
            Err(DatagramError::BadChecksum)
        );
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum_and_a_zero_checksum_is_accepted() {
        let mut bytes = datagram(b"query");
        bytes[9] ^= 0x01;
        assert_eq!(parse(A, B, &bytes), Err(DatagramError::BadChecksum));
        bytes[6..8].copy_from_slice(&[0, 0]);
        assert_eq!(parse(A, B, &bytes).unwrap().payload, b"qtery");
    }

    #[test]
    fn short_or_overlong_datagrams_are_truncated_and_padding_is_not_data() {
        assert_eq!(parse(A, B, &[0u8; 7]), Err(DatagramError::Truncated));
        let mut bytes = datagram(b"query");
        // A length field claiming more than the packet holds.
        bytes[4..6].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(parse(A, B, &bytes), Err(DatagramError::Truncated));
        // A length field below the header's own size.
        bytes[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(parse(A, B, &bytes), Err(DatagramError::Truncated));
        let mut padded = datagram(b"query");
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(parse(A, B, &padded).unwrap().payload, b"query");
    }
}
