//! The Internet checksum (RFC 1071) of the IPv4 header and of TCP segments with their pseudo-header, summed eight bytes at a time.

use core::net::Ipv4Addr;

/// IPv4 protocol number of TCP, as the pseudo-header carries it.
const PROTOCOL_TCP: u64 = 6;

/// The one's complement sum of `bytes` taken as big-endian 16-bit words (an odd last byte
/// padded with zero), folded to 16 bits but not complemented: 0xffff for a header or segment
/// whose checksum field is right.
///
/// The words are added as little-endian 64-bit words with the carry added back: one's
/// complement addition does not depend on the byte order (RFC 1071 section 2, B), so the
/// byte-swapped sum is swapped back once at the end, and adding 64-bit words folds to the same
/// 16-bit sum as adding the 16-bit words, in a quarter of the steps. `bytes` must start at an
/// even offset of what is summed (every caller sums from the start of a header).
pub fn sum(bytes: &[u8]) -> u16 {
    let mut total: u64 = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let (added, carry) = total.overflowing_add(u64::from_le_bytes(word));
        total = added + u64::from(carry);
    }
    // Less than eight bytes left: a 4-byte, a 2-byte and a 1-byte piece, each still at an
    // even offset (a lone last byte is the high byte of its big-endian word, which is the
    // low byte in the swapped order).
    let mut rest = chunks.remainder();
    let mut tail: u64 = 0;
    if let [a, b, c, d, more @ ..] = rest {
        tail += u64::from(u32::from_le_bytes([*a, *b, *c, *d]));
        rest = more;
    }
    if let [a, b, more @ ..] = rest {
        tail += u64::from(u16::from_le_bytes([*a, *b]));
        rest = more;
    }
    if let [a] = rest {
        tail += u64::from(*a);
    }
    let (added, carry) = total.overflowing_add(tail);
    total = added + u64::from(carry);
    fold(total).swap_bytes()
}

/// Folds a 64-bit one's complement sum to 16 bits: each half added to the other with the
/// carry added back, twice (no loop: this runs for every header and segment).
fn fold(sum: u64) -> u16 {
    // A carry out of an addition leaves the low part at most 2^n - 2, so adding it back
    // cannot carry again.
    let (low, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let sum = low + u32::from(carry);
    let (low, carry) = (sum as u16).overflowing_add((sum >> 16) as u16);
    low + u16::from(carry)
}

/// The checksum field of a TCP segment (RFC 9293 section 3.1): the complement of the sum of
/// the IPv4 pseudo-header (both addresses, the protocol, the TCP length) and `tcp`, header
/// and payload. Over a segment whose checksum field is already filled in, it is 0 when the
/// field is right.
pub fn tcp(source: Ipv4Addr, destination: Ipv4Addr, tcp: &[u8]) -> u16 {
    tcp_from_sums(source, destination, tcp.len(), &[sum(tcp)])
}

/// The TCP checksum field of a segment of `length` bytes whose pieces' sums (see [`sum`],
/// each already in the alignment it has in the segment) are `sums`.
pub fn tcp_from_sums(source: Ipv4Addr, destination: Ipv4Addr, length: usize, sums: &[u16]) -> u16 {
    // The pseudo-header's 32-bit fields fold to the sum of their 16-bit halves; the total
    // stays far below 2^64.
    let mut total = u64::from(source.to_bits())
        + u64::from(destination.to_bits())
        + PROTOCOL_TCP
        + length as u64;
    for &piece in sums {
        total += u64::from(piece);
    }
    !fold(total)
}

/// The checksum field after one 16-bit word it covers changes from `old` to `new`, without
/// summing the rest again (RFC 1624 equation 3: HC' = ~(~HC + ~m + m')).
pub fn updated(field: u16, old: u16, new: u16) -> u16 {
    let total = u64::from(!field) + u64::from(!old) + u64::from(new);
    !fold(total)
}

/// Whether a received TCP segment's checksum is right.
pub fn tcp_is_valid(source: Ipv4Addr, destination: Ipv4Addr, tcp: &[u8]) -> bool {
    self::tcp(source, destination, tcp) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// RFC 1071's definition: 16-bit big-endian words, an odd last byte padded with zero.
    fn sum_by_16_bit_words(initial: u64, bytes: &[u8]) -> u16 {
        let mut sum = initial;
        for pair in bytes.chunks(2) {
            sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn tcp_by_16_bit_words(source: Ipv4Addr, destination: Ipv4Addr, bytes: &[u8]) -> u16 {
        let mut pseudo_header: u64 = 0;
        for address in [source, destination] {
            let octets = address.octets();
            pseudo_header += u64::from(u16::from_be_bytes([octets[0], octets[1]]));
            pseudo_header += u64::from(u16::from_be_bytes([octets[2], octets[3]]));
        }
        pseudo_header += 6 + bytes.len() as u64;
        !sum_by_16_bit_words(pseudo_header, bytes)
    }

    #[test]
    fn sums_by_64_bit_words_match_the_16_bit_definition() {
        // Every length from 0 to 1600 bytes, with bytes that make carries likely (runs of
        // 0xff) and bytes that do not.
        let high = [
            Ipv4Addr::new(255, 255, 255, 254),
            Ipv4Addr::new(255, 255, 255, 255),
        ];
        let low = [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mixed: Vec<u8> = (0..1600)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let ones = [0xffu8; 1600];
        for length in 0..=1600 {
            for bytes in [&mixed[..length], &ones[..length]] {
                assert_eq!(sum(bytes), sum_by_16_bit_words(0, bytes), "length {length}");
                for [source, destination] in [high, low] {
                    assert_eq!(
                        tcp(source, destination, bytes),
                        tcp_by_16_bit_words(source, destination, bytes),
                        "length {length}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_updated_field_equals_the_sum_taken_again() {
        let source = Ipv4Addr::new(10, 0, 0, 1);
        let destination = Ipv4Addr::new(10, 0, 0, 2);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = 20 + (state % 60) as usize;
            let mut segment: Vec<u8> = (0..length)
                .map(|index| (state >> (index % 56)) as u8)
                .collect();
            if round % 3 == 0 {
                segment.fill(0xff);
            }
            segment[16..18].fill(0);
            let field = tcp(source, destination, &segment);
            segment[16..18].copy_from_slice(&field.to_be_bytes());
            let old = u16::from_be_bytes([segment[12], segment[13]]);
            segment[13] ^= (state >> 60) as u8 | 1;
            let new = u16::from_be_bytes([segment[12], segment[13]]);
            segment[16..18].copy_from_slice(&updated(field, old, new).to_be_bytes());
            assert!(tcp_is_valid(source, destination, &segment), "round {round}");
        }
    }

    #[test]
    fn a_filled_in_checksum_verifies_and_a_flipped_bit_does_not() {
        let source = Ipv4Addr::new(10, 0, 0, 1);
        let destination = Ipv4Addr::new(10, 0, 0, 2);
        let mut segment = [0x5au8; 41];
        segment[16] = 0;
        segment[17] = 0;
        let field = tcp(source, destination, &segment);
        segment[16..18].copy_from_slice(&field.to_be_bytes());
        assert!(tcp_is_valid(source, destination, &segment));
        segment[40] ^= 0x01;
        assert!(!tcp_is_valid(source, destination, &segment));
    }
}
