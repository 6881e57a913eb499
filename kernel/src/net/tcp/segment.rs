//! The TCP header on the wire: parsing received segments and writing outgoing ones, options included (RFC 9293 section 3.1, RFC 7323, RFC 2018).

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use super::seq::SeqNum;
use crate::net::checksum;

pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const RST: u8 = 0x04;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_MSS: u8 = 2;
const OPTION_WINDOW_SCALE: u8 = 3;
const OPTION_SACK_PERMITTED: u8 = 4;
const OPTION_SACK: u8 = 5;
const OPTION_TIMESTAMP: u8 = 8;

/// Length of a header without options.
pub(crate) const HEADER_LENGTH: usize = 20;

/// The largest shift RFC 7323 section 2.3 allows.
pub(crate) const MAX_WINDOW_SCALE: u8 = 14;

/// TCP options we understand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentOptions {
    pub(crate) mss: Option<u16>,
    pub(crate) window_scale: Option<u8>,
    pub(crate) sack_permitted: bool,
    /// (TSval, TSecr), RFC 7323 section 3.2.
    pub(crate) timestamp: Option<(u32, u32)>,
    /// SACK blocks (left, right), parsed only (RFC 2018 section 3).
    pub(crate) sack_blocks: [(u32, u32); 4],
    pub(crate) sack_block_count: u8,
}

/// A received segment, borrowed from the interface's buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment<'a> {
    pub(crate) source_port: u16,
    pub(crate) destination_port: u16,
    pub(crate) sequence: SeqNum,
    pub(crate) acknowledgment: SeqNum,
    pub(crate) flags: u8,
    pub(crate) window: u16,
    pub(crate) options: SegmentOptions,
    pub(crate) payload: &'a [u8],
}

impl Segment<'_> {
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// SEG.LEN: payload plus one for SYN and one for FIN (RFC 9293 section 3.4).
    pub(crate) fn sequence_length(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.has(SYN)) + u32::from(self.has(FIN))
    }
}

/// Why a segment could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseError {
    Truncated,
    BadDataOffset,
    BadOption,
    ZeroPort,
}

/// Parses a TCP header and its options; the checksum is the interface's business.
pub(crate) fn parse(bytes: &[u8]) -> Result<Segment<'_>, ParseError> {
    if bytes.len() < HEADER_LENGTH {
        return Err(ParseError::Truncated);
    }
    let word = |at: usize| u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    let long =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let data_offset = usize::from(bytes[12] >> 4) * 4;
    if data_offset < HEADER_LENGTH || data_offset > bytes.len() {
        return Err(ParseError::BadDataOffset);
    }
    let source_port = word(0);
    let destination_port = word(2);
    if source_port == 0 || destination_port == 0 {
        return Err(ParseError::ZeroPort);
    }
    let options = parse_options(&bytes[HEADER_LENGTH..data_offset])?;
    Ok(Segment {
        source_port,
        destination_port,
        sequence: SeqNum(long(4)),
        acknowledgment: SeqNum(long(8)),
        flags: bytes[13] & 0x3f,
        window: word(14),
        options,
        payload: &bytes[data_offset..],
    })
}

fn parse_options(mut bytes: &[u8]) -> Result<SegmentOptions, ParseError> {
    // After the handshake nearly every segment carries no option or only the timestamp, in
    // the layout we, Linux and most stacks send: read those straight away. The loop below
    // gives the same result for them, more slowly.
    match bytes {
        [] => return Ok(SegmentOptions::default()),
        [
            OPTION_NOP,
            OPTION_NOP,
            OPTION_TIMESTAMP,
            10,
            v0,
            v1,
            v2,
            v3,
            e0,
            e1,
            e2,
            e3,
        ] => {
            return Ok(SegmentOptions {
                timestamp: Some((
                    u32::from_be_bytes([*v0, *v1, *v2, *v3]),
                    u32::from_be_bytes([*e0, *e1, *e2, *e3]),
                )),
                ..SegmentOptions::default()
            });
        }
        _ => {}
    }
    let mut options = SegmentOptions::default();
    while let Some(&kind) = bytes.first() {
        match kind {
            OPTION_END => break,
            OPTION_NOP => {
                bytes = &bytes[1..];
                continue;
            }
            _ => {}
        }
        let length = usize::from(*bytes.get(1).ok_or(ParseError::BadOption)?);
        if length < 2 || length > bytes.len() {
            return Err(ParseError::BadOption);
        }
        let body = &bytes[2..length];
        match (kind, body.len()) {
            (OPTION_MSS, 2) => options.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            // RFC 7323 section 2.3: a shift above 14 is used as 14.
            (OPTION_WINDOW_SCALE, 1) => options.window_scale = Some(body[0].min(MAX_WINDOW_SCALE)),
            (OPTION_SACK_PERMITTED, 0) => options.sack_permitted = true,
            (OPTION_TIMESTAMP, 8) => {
                let value = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let echo = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                options.timestamp = Some((value, echo));
            }
            (OPTION_SACK, n) if n % 8 == 0 => {
                for block in body.chunks_exact(8).take(options.sack_blocks.len()) {
                    let left = u32::from_be_bytes([block[0], block[1], block[2], block[3]]);
                    let right = u32::from_be_bytes([block[4], block[5], block[6], block[7]]);
                    options.sack_blocks[usize::from(options.sack_block_count)] = (left, right);
                    options.sack_block_count += 1;
                }
            }
            (
                OPTION_MSS
                | OPTION_WINDOW_SCALE
                | OPTION_SACK_PERMITTED
                | OPTION_TIMESTAMP
                | OPTION_SACK,
                _,
            ) => {
                return Err(ParseError::BadOption);
            }
            // Unknown options are skipped (RFC 9293 section 3.1, MUST-6).
            _ => {}
        }
        bytes = &bytes[length..];
    }
    Ok(options)
}

/// The header fields of an outgoing segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentHeader {
    pub(crate) source: Ipv4Addr,
    pub(crate) destination: Ipv4Addr,
    pub(crate) source_port: u16,
    pub(crate) destination_port: u16,
    pub(crate) sequence: SeqNum,
    pub(crate) acknowledgment: SeqNum,
    pub(crate) flags: u8,
    pub(crate) window: u16,
    pub(crate) options: SegmentOptions,
}

/// Room for the fixed header and the largest options a segment can carry (40 bytes).
const MAX_HEADER_LENGTH: usize = HEADER_LENGTH + 40;

/// Appends the header, options and payload (given as up to two slices, as a ring buffer
/// holds it) to `out`, with the checksum over the IPv4 pseudo-header (RFC 9293 section 3.1).
///
/// The header is built in a fixed array and appended whole, then cut to its length: one
/// fixed-size copy instead of a capacity check and a copy per field.
pub(crate) fn write(out: &mut Vec<u8>, header: &SegmentHeader, payload: (&[u8], &[u8])) {
    let start = out.len();
    let mut bytes = [0u8; MAX_HEADER_LENGTH];
    bytes[0..2].copy_from_slice(&header.source_port.to_be_bytes());
    bytes[2..4].copy_from_slice(&header.destination_port.to_be_bytes());
    bytes[4..8].copy_from_slice(&header.sequence.0.to_be_bytes());
    bytes[8..12].copy_from_slice(&header.acknowledgment.0.to_be_bytes());
    bytes[13] = header.flags;
    bytes[14..16].copy_from_slice(&header.window.to_be_bytes());
    // The checksum and the urgent pointer stay zero for now.
    let options_length = write_options(&mut bytes[HEADER_LENGTH..], &header.options);
    let header_length = HEADER_LENGTH + options_length;
    bytes[12] = ((header_length / 4) as u8) << 4;
    out.reserve(MAX_HEADER_LENGTH + payload.0.len() + payload.1.len());
    out.extend_from_slice(&bytes);
    out.truncate(start + header_length);
    out.extend_from_slice(payload.0);
    if !payload.1.is_empty() {
        out.extend_from_slice(payload.1);
    }
    let checksum = checksum::tcp(header.source, header.destination, &out[start..]);
    out[start + 16..start + 18].copy_from_slice(&checksum.to_be_bytes());
}

/// Options in the layout Linux uses, so every option stays 4-byte aligned; returns their
/// length. Options that would not fit in `buffer` (40 bytes, all a header can hold) are left
/// out; the layer never asks for that many.
fn write_options(buffer: &mut [u8], options: &SegmentOptions) -> usize {
    let mut length = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(place) = buffer.get_mut(length..length + bytes.len()) {
            place.copy_from_slice(bytes);
            length += bytes.len();
        }
    };
    if let Some(mss) = options.mss {
        let [high, low] = mss.to_be_bytes();
        put(&[OPTION_MSS, 4, high, low]);
    }
    match (options.sack_permitted, options.timestamp) {
        (true, Some(_)) => put(&[OPTION_SACK_PERMITTED, 2]),
        (true, None) => put(&[OPTION_NOP, OPTION_NOP, OPTION_SACK_PERMITTED, 2]),
        (false, Some(_)) => put(&[OPTION_NOP, OPTION_NOP]),
        (false, None) => {}
    }
    if let Some((value, echo)) = options.timestamp {
        let [v0, v1, v2, v3] = value.to_be_bytes();
        let [e0, e1, e2, e3] = echo.to_be_bytes();
        put(&[OPTION_TIMESTAMP, 10, v0, v1, v2, v3, e0, e1, e2, e3]);
    }
    if let Some(shift) = options.window_scale {
        put(&[OPTION_NOP, OPTION_WINDOW_SCALE, 3, shift]);
    }
    let blocks = &options.sack_blocks
        [..usize::from(options.sack_block_count).min(options.sack_blocks.len())];
    if !blocks.is_empty() {
        put(&[
            OPTION_NOP,
            OPTION_NOP,
            OPTION_SACK,
            2 + 8 * blocks.len() as u8,
        ]);
        for (left, right) in blocks {
            let [l0, l1, l2, l3] = left.to_be_bytes();
            let [r0, r1, r2, r3] = right.to_be_bytes();
            put(&[l0, l1, l2, l3, r0, r1, r2, r3]);
        }
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpAddress, TcpPacket, TcpRepr};

    fn sample_header(options: SegmentOptions, flags: u8) -> SegmentHeader {
        SegmentHeader {
            source: Ipv4Addr::new(10, 0, 0, 1),
            destination: Ipv4Addr::new(10, 0, 0, 2),
            source_port: 80,
            destination_port: 40000,
            sequence: SeqNum(0xdead_beef),
            acknowledgment: SeqNum(7),
            flags,
            window: 1234,
            options,
        }
    }

    #[test]
    fn written_segment_parses_back_and_smoltcp_agrees() {
        let options = SegmentOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((100, 200)),
            ..SegmentOptions::default()
        };
        let header = sample_header(options, SYN | ACK);
        let mut out = Vec::new();
        write(&mut out, &header, (b"hel", b"lo!"));
        let parsed = parse(&out).unwrap();
        assert_eq!(parsed.options, options);
        assert_eq!(parsed.payload, b"hello!");
        assert_eq!(parsed.flags, SYN | ACK);
        assert_eq!(parsed.sequence, SeqNum(0xdead_beef));
        assert_eq!(parsed.window, 1234);
        assert_eq!(parsed.sequence_length(), 7);

        // An independent implementation checks our checksum and option layout.
        let packet = TcpPacket::new_checked(&out[..]).unwrap();
        let source = IpAddress::Ipv4(header.source);
        let destination = IpAddress::Ipv4(header.destination);
        assert!(packet.verify_checksum(&source, &destination));
        let repr = TcpRepr::parse(
            &packet,
            &source,
            &destination,
            &ChecksumCapabilities::default(),
        )
        .unwrap();
        assert_eq!(repr.max_seg_size, Some(1460));
        assert_eq!(repr.window_scale, Some(7));
        assert!(repr.sack_permitted);
    }

    #[test]
    fn sack_blocks_round_trip() {
        let mut options = SegmentOptions {
            timestamp: Some((1, 2)),
            sack_block_count: 3,
            ..SegmentOptions::default()
        };
        options.sack_blocks[..3].copy_from_slice(&[(10, 20), (30, 40), (u32::MAX - 5, 3)]);
        let header = sample_header(options, ACK);
        let mut out = Vec::new();
        write(&mut out, &header, (&[], &[]));
        assert_eq!(
            out.len(),
            HEADER_LENGTH + 40,
            "three blocks and a timestamp fill the options"
        );
        assert_eq!(parse(&out).unwrap().options, options);
        let packet = TcpPacket::new_checked(&out[..]).unwrap();
        let source = IpAddress::Ipv4(header.source);
        let destination = IpAddress::Ipv4(header.destination);
        let repr = TcpRepr::parse(
            &packet,
            &source,
            &destination,
            &ChecksumCapabilities::default(),
        )
        .unwrap();
        assert_eq!(repr.sack_ranges[0], Some((10, 20)));
        assert_eq!(repr.sack_ranges[2], Some((u32::MAX - 5, 3)));
    }

    #[test]
    fn odd_length_checksum_verifies() {
        let header = sample_header(SegmentOptions::default(), ACK | PSH);
        let mut out = Vec::new();
        write(&mut out, &header, (b"abc", b""));
        let packet = TcpPacket::new_checked(&out[..]).unwrap();
        assert!(packet.verify_checksum(
            &IpAddress::Ipv4(header.source),
            &IpAddress::Ipv4(header.destination)
        ));
    }

    #[test]
    fn the_timestamp_only_layout_parses_as_the_general_loop_does() {
        let mut options = SegmentOptions {
            timestamp: Some((0x0102_0304, 0xfffe_fdfc)),
            ..SegmentOptions::default()
        };
        let mut out = Vec::new();
        write(&mut out, &sample_header(options, ACK), (b"x", &[]));
        assert_eq!(
            &out[20..24],
            &[OPTION_NOP, OPTION_NOP, OPTION_TIMESTAMP, 10]
        );
        assert_eq!(parse(&out).unwrap().options, options);
        // The same option with its two NOPs after it takes the general path.
        let mut moved = out[..20].to_vec();
        moved.extend_from_slice(&out[22..32]);
        moved.extend_from_slice(&[OPTION_NOP, OPTION_NOP]);
        assert_eq!(parse(&moved).unwrap().options, options);
        // A wrong length in the fast layout is still an error.
        out[23] = 9;
        assert_eq!(parse(&out).unwrap_err(), ParseError::BadOption);
        options.timestamp = None;
        let mut bare = Vec::new();
        write(&mut bare, &sample_header(options, ACK), (&[], &[]));
        assert_eq!(parse(&bare).unwrap().options, SegmentOptions::default());
    }

    #[test]
    fn malformed_headers_are_rejected() {
        assert_eq!(parse(&[0; 10]).unwrap_err(), ParseError::Truncated);
        let mut bytes = [0u8; 24];
        bytes[1] = 1;
        bytes[3] = 1;
        bytes[12] = 0x70; // 28 bytes of header in a 24-byte segment
        assert_eq!(parse(&bytes).unwrap_err(), ParseError::BadDataOffset);
        bytes[12] = 0x60;
        bytes[20] = OPTION_MSS;
        bytes[21] = 9; // runs past the header
        assert_eq!(parse(&bytes).unwrap_err(), ParseError::BadOption);
        bytes[21] = 3; // wrong length for MSS
        assert_eq!(parse(&bytes).unwrap_err(), ParseError::BadOption);
        bytes[20] = 99; // unknown option of length 2 is skipped
        bytes[21] = 2;
        assert!(parse(&bytes).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = parse(&bytes);
        }
    }
}
