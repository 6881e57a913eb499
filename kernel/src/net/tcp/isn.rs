//! Initial sequence numbers (RFC 6528: a keyed hash of the 4-tuple plus a 4-microsecond clock), the TSval offset keyed by the same hash, and the SipHash-2-4 they rest on.

use core::net::SocketAddrV4;

use super::seq::SeqNum;
use crate::time::Instant;

/// SipHash-2-4 (Aumasson and Bernstein), the keyed function F of RFC 6528 section 3.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SipKey {
    k0: u64,
    k1: u64,
}

impl SipKey {
    pub(crate) fn new(secret: [u8; 16]) -> SipKey {
        let mut low = [0u8; 8];
        let mut high = [0u8; 8];
        low.copy_from_slice(&secret[..8]);
        high.copy_from_slice(&secret[8..]);
        SipKey {
            k0: u64::from_le_bytes(low),
            k1: u64::from_le_bytes(high),
        }
    }

    /// SipHash-2-4 of `words` (each word taken as 8 little-endian bytes of the message).
    pub(crate) fn hash(&self, words: &[u64]) -> u64 {
        let mut v = [
            self.k0 ^ 0x736f_6d65_7073_6575,
            self.k1 ^ 0x646f_7261_6e64_6f6d,
            self.k0 ^ 0x6c79_6765_6e65_7261,
            self.k1 ^ 0x7465_6462_7974_6573,
        ];
        for &word in words {
            v[3] ^= word;
            sip_round(&mut v);
            sip_round(&mut v);
            v[0] ^= word;
        }
        // Final block: no trailing bytes, only the message length in the top byte.
        let last = ((words.len() as u64 * 8) & 0xff) << 56;
        v[3] ^= last;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= last;
        v[2] ^= 0xff;
        for _ in 0..4 {
            sip_round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }

    /// The 4-tuple as two words, for hashing.
    pub(crate) fn tuple_words(local: SocketAddrV4, remote: SocketAddrV4) -> [u64; 2] {
        let addresses = (u64::from(local.ip().to_bits()) << 32) | u64::from(remote.ip().to_bits());
        let ports = (u64::from(local.port()) << 16) | u64::from(remote.port());
        [addresses, ports]
    }
}

fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// What the secret key makes of a 4-tuple: the F of its ISN (RFC 6528 section 3) and its
/// TSval offset (RFC 7323 section 5.4: one per tuple keeps TSval monotonic across a tuple's
/// incarnations, as RFC 6191 needs). They are the two halves of one SipHash of the tuple:
/// a connection needs both, and one hash costs half of two.
/// No `Debug`: nothing should print them.
#[derive(Clone, Copy)]
pub(crate) struct TupleSecrets {
    sequence_offset: u32,
    pub(crate) timestamp_offset: u32,
}

impl TupleSecrets {
    pub(crate) fn new(key: &SipKey, local: SocketAddrV4, remote: SocketAddrV4) -> TupleSecrets {
        let hashed = key.hash(&SipKey::tuple_words(local, remote));
        TupleSecrets {
            sequence_offset: hashed as u32,
            timestamp_offset: (hashed >> 32) as u32,
        }
    }

    /// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), RFC 6528 section 3,
    /// where M ticks every 4 microseconds.
    pub(crate) fn initial_sequence_number(&self, now: Instant) -> SeqNum {
        let clock = (now.as_nanos() / 4_000) as u32;
        SeqNum(clock.wrapping_add(self.sequence_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn siphash_matches_the_reference_vector() {
        // Reference: key 00..0f, message 00..0f (16 bytes) -> 0x3f2acc7f57c29bdb
        // (the SipHash paper's test vectors, entry 16).
        let secret: [u8; 16] = core::array::from_fn(|index| index as u8);
        let key = SipKey::new(secret);
        let first = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let second = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(key.hash(&[first, second]), 0x3f2a_cc7f_57c2_9bdb);
        assert_eq!(key.hash(&[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn isn_depends_on_tuple_key_and_clock() {
        let key = SipKey::new([1; 16]);
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5001);
        let isn = |key: &SipKey, now, remote| {
            TupleSecrets::new(key, local, remote).initial_sequence_number(now)
        };
        let at_zero = isn(&key, Instant::ZERO, remote);
        assert_ne!(at_zero, isn(&key, Instant::ZERO, other));
        assert_ne!(at_zero, isn(&SipKey::new([2; 16]), Instant::ZERO, remote));
        // One millisecond later the clock has advanced by 250 ticks of 4 us.
        assert_eq!(isn(&key, Instant::from_millis(1), remote), at_zero + 250);
    }

    #[test]
    fn the_timestamp_offset_is_the_other_half_of_the_isn_hash() {
        let key = SipKey::new([1; 16]);
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let remote = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5001);
        let secrets = TupleSecrets::new(&key, local, remote);
        let hashed = key.hash(&SipKey::tuple_words(local, remote));
        assert_eq!(
            secrets.initial_sequence_number(Instant::ZERO),
            SeqNum(hashed as u32)
        );
        assert_eq!(secrets.timestamp_offset, (hashed >> 32) as u32);
        assert_ne!(
            secrets.timestamp_offset,
            TupleSecrets::new(&key, local, other).timestamp_offset
        );
    }
}
