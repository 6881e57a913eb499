//! Ethernet II framing: which frames are ours to read, and the 14-byte header we write in front of ours.

use smoltcp::wire::{ETHERNET_HEADER_LEN, EthernetAddress, EthernetProtocol};

use super::counters::DropReason;

/// Length of the Ethernet II header (destination, source, EtherType).
pub const HEADER_LEN: usize = ETHERNET_HEADER_LEN;

/// Largest payload we send or accept in one frame: the classic Ethernet MTU.
pub const MTU: usize = 1500;

/// The fields of a received frame that the layers above need, and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedFrame<'a> {
    pub source: EthernetAddress,
    pub destination: EthernetAddress,
    pub ethertype: EthernetProtocol,
    pub payload: &'a [u8],
}

/// Read the header of `frame` and decide whether it is addressed to `our_address`.
///
/// Accepts unicast to us and broadcast (ARP requests); everything else is somebody else's.
/// The payload may still carry the padding that brings short frames to 60 bytes: the layer
/// above trims it with its own length field.
pub fn parse(frame: &[u8], our_address: EthernetAddress) -> Result<ReceivedFrame<'_>, DropReason> {
    // Read by hand: smoltcp's accessors check the bounds again for every field.
    let Some((header, payload)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(DropReason::EthernetTooShort);
    };
    let destination = EthernetAddress([
        header[0], header[1], header[2], header[3], header[4], header[5],
    ]);
    let source = EthernetAddress([
        header[6], header[7], header[8], header[9], header[10], header[11],
    ]);
    if destination != our_address && !destination.is_broadcast() {
        return Err(DropReason::EthernetNotForUs);
    }
    // The group bit is never set in a source address (IEEE 802.3 clause 3.2.3).
    if source.is_multicast() {
        return Err(DropReason::EthernetBadSource);
    }
    Ok(ReceivedFrame {
        source,
        destination,
        ethertype: EthernetProtocol::from(u16::from_be_bytes([header[12], header[13]])),
        payload,
    })
}

/// Write the Ethernet II header at the start of `buffer` and return the payload part after it.
///
/// `buffer` must be at least [`HEADER_LEN`] long; the callers size it themselves.
pub fn write_header(
    buffer: &mut [u8],
    source: EthernetAddress,
    destination: EthernetAddress,
    ethertype: EthernetProtocol,
) -> &mut [u8] {
    let (header, payload) = buffer.split_at_mut(HEADER_LEN);
    header[0..6].copy_from_slice(&destination.0);
    header[6..12].copy_from_slice(&source.0);
    header[12..14].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);

    fn frame(destination: EthernetAddress, source: EthernetAddress) -> [u8; 20] {
        let mut buffer = [0u8; 20];
        write_header(&mut buffer, source, destination, EthernetProtocol::Ipv4)
            .copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        buffer
    }

    #[test]
    fn accepts_unicast_to_us_and_broadcast() {
        let to_us = frame(US, PEER);
        let parsed = parse(&to_us, US).unwrap();
        assert_eq!(parsed.source, PEER);
        assert_eq!(parsed.ethertype, EthernetProtocol::Ipv4);
        assert_eq!(parsed.payload, &[1, 2, 3, 4, 5, 6]);
        assert!(parse(&frame(EthernetAddress::BROADCAST, PEER), US).is_ok());
    }

    #[test]
    fn smoltcp_reads_our_header_as_we_meant_it() {
        let bytes = frame(US, PEER);
        let view = smoltcp::wire::EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(view.dst_addr(), US);
        assert_eq!(view.src_addr(), PEER);
        assert_eq!(view.ethertype(), EthernetProtocol::Ipv4);
        assert_eq!(view.payload(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_short_foreign_and_group_source_frames() {
        assert_eq!(parse(&[0u8; 13], US), Err(DropReason::EthernetTooShort));
        assert_eq!(
            parse(&frame(PEER, US), US),
            Err(DropReason::EthernetNotForUs)
        );
        let group_source = EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]);
        assert_eq!(
            parse(&frame(US, group_source), US),
            Err(DropReason::EthernetBadSource)
        );
    }
}
