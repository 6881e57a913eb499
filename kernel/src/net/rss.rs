//! Receive-side scaling: the Toeplitz hash a NIC computes over a packet's addresses and ports, and the indirection table that turns the hash into a receive queue.
//!
//! The hash is defined by Microsoft's "RSS hashing functions" page (NDIS `NdisHashFunctionToeplitz`)
//! and implemented identically by the Intel 82599 (datasheet 7.1.2.8), e1000e and virtio-net RSS
//! (VIRTIO 1.2, "Hash calculation for incoming packets"). The input is the packet's fields in wire order: source address,
//! destination address, and for TCP the source and destination ports; for every input bit that is
//! set, most significant bit of the first byte first, the 32-bit window of the key that starts at
//! that bit position is XORed into the result.
//!
//! Receive Flow Deliver wants the queue to be a function of the ports only; [`RssKey::PORT_ONLY`]
//! achieves that (see [`port_only_hash_index`]).

use alloc::boxed::Box;
use alloc::vec;
use core::net::{Ipv4Addr, Ipv6Addr};

/// Length of an RSS key in bytes: 40 on the 82599 (RSSRK, ten 32-bit registers), the NDIS default,
/// and what virtio-net devices report as `rss_max_key_size` in practice.
pub const RSS_KEY_LENGTH: usize = 40;

/// Entries in the indirection table: the 82599 RETA has 128 entries indexed by hash bits [6:0]
/// (82599 datasheet 7.1.2.8, "Receive-Side Scaling"), and the port-only key controls exactly those seven bits.
pub const INDIRECTION_TABLE_LENGTH: usize = 128;

/// Hash bits that index the indirection table.
pub const INDIRECTION_INDEX_MASK: u32 = (INDIRECTION_TABLE_LENGTH as u32) - 1;

/// A NIC receive queue (for virtio-net, a queue pair index).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u16);

impl QueueId {
    pub const fn new(index: u16) -> Self {
        QueueId(index)
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }

    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

/// A 40-byte Toeplitz key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RssKey([u8; RSS_KEY_LENGTH]);

impl RssKey {
    /// The key of Microsoft's "Verifying the RSS Hash Calculation" suite, repeated as the example
    /// key of the 82599 datasheet (7.1.2.8.3, RSS verification suite). Drivers use it as a default.
    pub const MICROSOFT_VERIFICATION: RssKey = RssKey([
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]);

    /// Zero except bytes 13 and 15 = 0x80, i.e. key bits 104 and 120 set.
    ///
    /// For the TCP/IPv4 input (addresses at bits 0..64, source port at 64..80, destination port
    /// at 80..96), hash bit b (b = 0 is the least significant) collects input bit i whenever key
    /// bit i + 31 - b is set. For b in 0..7 that means input bits 73 + b (source port bit 6 - b)
    /// and 89 + b (destination port bit 6 - b); no address bit is ever that close to key bit 104
    /// or 120. Hence `hash[6:0] = bitrev7((source_port ^ destination_port) & 0x7f)` for every
    /// pair of addresses, which is what [`port_only_hash_index`] computes.
    pub const PORT_ONLY: RssKey = {
        let mut bytes = [0u8; RSS_KEY_LENGTH];
        bytes[13] = 0x80;
        bytes[15] = 0x80;
        RssKey(bytes)
    };

    pub const fn new(bytes: [u8; RSS_KEY_LENGTH]) -> Self {
        RssKey(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; RSS_KEY_LENGTH] {
        &self.0
    }

    /// The 32 key bits starting at bit `position` (bit 0 = most significant bit of byte 0);
    /// bits past the end of the key read as zero.
    fn window_at(&self, position: usize) -> u32 {
        let byte = position / 8;
        let shift = position % 8;
        let mut wide: u64 = 0;
        for offset in 0..5 {
            let value = self.0.get(byte + offset).copied().unwrap_or(0);
            wide = (wide << 8) | u64::from(value);
        }
        // `wide` holds 40 bits starting at bit 8 * byte; drop the leading `shift` bits.
        ((wide << shift) >> 8) as u32
    }

    /// True if this key makes hash bits [6:0] of a TCP/IPv4 packet equal
    /// `bitrev7((source_port ^ destination_port) & 0x7f)` whatever the addresses.
    ///
    /// The hash is linear over GF(2) in its input, so checking each of the 96 input bits on its
    /// own proves the identity for every input.
    pub fn steers_by_port_xor(&self) -> bool {
        (0..96).all(|bit| {
            let mut input = [0u8; 12];
            input[bit / 8] = 0x80 >> (bit % 8);
            let expected = if bit >= 64 {
                let port_bit = 15 - ((bit - 64) % 16);
                let port = 1u16 << port_bit;
                port_only_hash_index(port, 0)
            } else {
                0
            };
            toeplitz_hash(self, &input) & INDIRECTION_INDEX_MASK == expected as u32
        })
    }
}

/// The Toeplitz hash of `input` under `key`, computed bit by bit as the definition reads.
///
/// Key bits past the 40th byte read as zero, so an input longer than 36 bytes hashes as if it
/// were followed by a zero key; no RSS input type is longer than 36 bytes (TCP/IPv6).
pub fn toeplitz_hash(key: &RssKey, input: &[u8]) -> u32 {
    let key = key.as_bytes();
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let mut result = 0;
    for (index, &byte) in input.iter().enumerate() {
        let refill = key.get(index + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window;
            }
            window = (window << 1) | u32::from((refill >> (7 - bit)) & 1);
        }
    }
    result
}

/// The RSS input of an IPv4 packet hashed on its addresses only (NDIS "IPv4", 82599 MRQC bit 17).
pub fn ipv4_input(source: Ipv4Addr, destination: Ipv4Addr) -> [u8; 8] {
    let mut input = [0u8; 8];
    input[..4].copy_from_slice(&source.octets());
    input[4..].copy_from_slice(&destination.octets());
    input
}

/// The RSS input of a TCP/IPv4 segment (NDIS "TCP/IPv4", 82599 MRQC bit 16), fields in wire order.
pub fn ipv4_tcp_input(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    source_port: u16,
    destination_port: u16,
) -> [u8; 12] {
    let mut input = [0u8; 12];
    input[..8].copy_from_slice(&ipv4_input(source, destination));
    input[8..10].copy_from_slice(&source_port.to_be_bytes());
    input[10..].copy_from_slice(&destination_port.to_be_bytes());
    input
}

/// The RSS input of an IPv6 packet hashed on its addresses only.
pub fn ipv6_input(source: Ipv6Addr, destination: Ipv6Addr) -> [u8; 32] {
    let mut input = [0u8; 32];
    input[..16].copy_from_slice(&source.octets());
    input[16..].copy_from_slice(&destination.octets());
    input
}

/// The RSS input of a TCP/IPv6 segment.
pub fn ipv6_tcp_input(
    source: Ipv6Addr,
    destination: Ipv6Addr,
    source_port: u16,
    destination_port: u16,
) -> [u8; 36] {
    let mut input = [0u8; 36];
    input[..32].copy_from_slice(&ipv6_input(source, destination));
    input[32..34].copy_from_slice(&source_port.to_be_bytes());
    input[34..].copy_from_slice(&destination_port.to_be_bytes());
    input
}

/// Reverses the order of the low seven bits of `value` (bit 0 <-> bit 6); bit 7 is ignored.
pub const fn bit_reverse7(value: u8) -> u8 {
    (value & 0x7f).reverse_bits() >> 1
}

/// The indirection table index (hash bits [6:0]) that the [`RssKey::PORT_ONLY`] key yields for a
/// TCP/IPv4 segment with these ports, whatever its addresses.
pub const fn port_only_hash_index(source_port: u16, destination_port: u16) -> usize {
    bit_reverse7(((source_port ^ destination_port) & 0x7f) as u8) as usize
}

/// Bytes of input a [`ToeplitzTable`] covers: every byte whose bits meet a nonzero key window.
const TABLE_INPUT_BYTES: usize = RSS_KEY_LENGTH;

/// The Toeplitz hash with its key expanded into one 256-entry table per input byte, so a TCP/IPv4
/// hash costs twelve loads instead of 96 conditional XORs (the hash is linear, so the
/// contributions of each byte XOR together). 40 KiB per key; build it once at initialisation.
pub struct ToeplitzTable {
    key: RssKey,
    per_byte: Box<[[u32; 256]]>,
}

impl ToeplitzTable {
    pub fn new(key: RssKey) -> Self {
        let mut per_byte = vec![[0u32; 256]; TABLE_INPUT_BYTES].into_boxed_slice();
        for (position, table) in per_byte.iter_mut().enumerate() {
            let windows: [u32; 8] = core::array::from_fn(|bit| key.window_at(position * 8 + bit));
            for (value, entry) in table.iter_mut().enumerate() {
                *entry = windows
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| value & (0x80 >> bit) != 0)
                    .fold(0, |hash, (_, window)| hash ^ window);
            }
        }
        ToeplitzTable { key, per_byte }
    }

    pub fn key(&self) -> &RssKey {
        &self.key
    }

    /// Same result as [`toeplitz_hash`] with this table's key.
    pub fn hash(&self, input: &[u8]) -> u32 {
        // Input bytes past the table meet only zero key bits and contribute nothing.
        input
            .iter()
            .zip(self.per_byte.iter())
            .fold(0, |hash, (&byte, table)| hash ^ table[usize::from(byte)])
    }

    pub fn hash_ipv4_tcp(
        &self,
        source: Ipv4Addr,
        destination: Ipv4Addr,
        source_port: u16,
        destination_port: u16,
    ) -> u32 {
        self.hash(&ipv4_tcp_input(
            source,
            destination,
            source_port,
            destination_port,
        ))
    }
}

/// Why an indirection table cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndirectionTableError {
    /// At least one queue is needed.
    NoQueues,
    /// The table has 128 entries, so it cannot spread over more than 128 queues.
    TooManyQueues { requested: usize },
}

/// The 128-entry table from hash bits [6:0] to receive queue (82599 RETA, virtio-net
/// `indirection_table` with mask 127).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndirectionTable {
    entries: [QueueId; INDIRECTION_TABLE_LENGTH],
}

impl IndirectionTable {
    pub const fn from_entries(entries: [QueueId; INDIRECTION_TABLE_LENGTH]) -> Self {
        IndirectionTable { entries }
    }

    /// Entry i names queue i mod n: Linux's default (`ethtool_rxfh_indir_default`); with a
    /// general key it spreads flows evenly.
    pub fn round_robin(queue_count: usize) -> Result<Self, IndirectionTableError> {
        Self::check_queue_count(queue_count)?;
        Ok(IndirectionTable {
            entries: core::array::from_fn(|index| QueueId((index % queue_count) as u16)),
        })
    }

    /// With [`RssKey::PORT_ONLY`], the queue becomes `((source_port ^ destination_port) & 0x7f) mod n`;
    /// for a power-of-two n, simply the low bits of the port XOR. Entry `bitrev7(x)` names queue
    /// `x mod n` for each 7-bit port XOR `x`.
    pub fn port_xor(queue_count: usize) -> Result<Self, IndirectionTableError> {
        Self::check_queue_count(queue_count)?;
        let mut entries = [QueueId(0); INDIRECTION_TABLE_LENGTH];
        for port_xor in 0..INDIRECTION_TABLE_LENGTH as u8 {
            entries[usize::from(bit_reverse7(port_xor))] =
                QueueId((usize::from(port_xor) % queue_count) as u16);
        }
        Ok(IndirectionTable { entries })
    }

    /// Like [`IndirectionTable::port_xor`], but keyed on bits 1-6 of the port XOR first and
    /// bit 0 last: port XOR `x` goes to queue `((x >> 1) | (x & 1) << 6) mod n`. Linux's
    /// `connect()` prefers even local ports (since 4.6, `__inet_hash_connect`), so between a
    /// Linux client and an even service port bit 0 of the XOR is almost always 0; keyed on it
    /// first, the odd queues would stay idle and, on two queues, every passive connection would
    /// land on queue 0. The table is still a permutation of port XORs onto queues, so active
    /// steering (picking a local port whose XOR maps to the own queue) works as before.
    pub fn port_xor_spreading_even_ports(
        queue_count: usize,
    ) -> Result<Self, IndirectionTableError> {
        Self::check_queue_count(queue_count)?;
        let mut entries = [QueueId(0); INDIRECTION_TABLE_LENGTH];
        for port_xor in 0..INDIRECTION_TABLE_LENGTH as u8 {
            let spread = usize::from(port_xor >> 1) | usize::from(port_xor & 1) << 6;
            entries[usize::from(bit_reverse7(port_xor))] = QueueId((spread % queue_count) as u16);
        }
        Ok(IndirectionTable { entries })
    }

    fn check_queue_count(queue_count: usize) -> Result<(), IndirectionTableError> {
        match queue_count {
            0 => Err(IndirectionTableError::NoQueues),
            1..=INDIRECTION_TABLE_LENGTH => Ok(()),
            requested => Err(IndirectionTableError::TooManyQueues { requested }),
        }
    }

    pub fn entries(&self) -> &[QueueId; INDIRECTION_TABLE_LENGTH] {
        &self.entries
    }

    /// The queue a NIC delivers a packet with this hash to.
    pub fn queue_for_hash(&self, hash: u32) -> QueueId {
        self.entries[(hash & INDIRECTION_INDEX_MASK) as usize]
    }

    /// The queue at a table index (only the low seven bits are used).
    pub fn queue_at(&self, index: usize) -> QueueId {
        self.entries[index & INDIRECTION_INDEX_MASK as usize]
    }

    /// The queue the NIC picks for a TCP/IPv4 segment with these ports when the key is
    /// [`RssKey::PORT_ONLY`].
    pub fn queue_for_ports(&self, source_port: u16, destination_port: u16) -> QueueId {
        self.entries[port_only_hash_index(source_port, destination_port)]
    }

    /// The highest queue the table names.
    pub fn highest_queue(&self) -> QueueId {
        self.entries.iter().copied().max().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One row of the RSS verification suite: Microsoft "Verifying the RSS Hash Calculation",
    /// also the 82599 datasheet 7.1.2.8.3 and DPDK `app/test/test_thash.c`.
    struct Vector4 {
        source: [u8; 4],
        source_port: u16,
        destination: [u8; 4],
        destination_port: u16,
        ipv4: u32,
        ipv4_tcp: u32,
    }

    const IPV4_VECTORS: [Vector4; 5] = [
        Vector4 {
            source: [66, 9, 149, 187],
            source_port: 2794,
            destination: [161, 142, 100, 80],
            destination_port: 1766,
            ipv4: 0x323e_8fc2,
            ipv4_tcp: 0x51cc_c178,
        },
        Vector4 {
            source: [199, 92, 111, 2],
            source_port: 14230,
            destination: [65, 69, 140, 83],
            destination_port: 4739,
            ipv4: 0xd718_262a,
            ipv4_tcp: 0xc626_b0ea,
        },
        Vector4 {
            source: [24, 19, 198, 95],
            source_port: 12898,
            destination: [12, 22, 207, 184],
            destination_port: 38024,
            ipv4: 0xd2d0_a5de,
            ipv4_tcp: 0x5c2b_394a,
        },
        Vector4 {
            source: [38, 27, 205, 30],
            source_port: 48228,
            destination: [209, 142, 163, 6],
            destination_port: 2217,
            ipv4: 0x8298_9176,
            ipv4_tcp: 0xafc7_327f,
        },
        Vector4 {
            source: [153, 39, 163, 191],
            source_port: 44251,
            destination: [202, 188, 127, 2],
            destination_port: 1303,
            ipv4: 0x5d18_09c5,
            ipv4_tcp: 0x10e8_28a2,
        },
    ];

    struct Vector6 {
        source: &'static str,
        source_port: u16,
        destination: &'static str,
        destination_port: u16,
        ipv6: u32,
        ipv6_tcp: u32,
    }

    const IPV6_VECTORS: [Vector6; 3] = [
        Vector6 {
            source: "3ffe:2501:200:1fff::7",
            source_port: 2794,
            destination: "3ffe:2501:200:3::1",
            destination_port: 1766,
            ipv6: 0x2cc1_8cd5,
            ipv6_tcp: 0x4020_7d3d,
        },
        Vector6 {
            source: "3ffe:501:8::260:97ff:fe40:efab",
            source_port: 14230,
            destination: "ff02::1",
            destination_port: 4739,
            ipv6: 0x0f0c_461c,
            ipv6_tcp: 0xdde5_1bbf,
        },
        Vector6 {
            source: "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            source_port: 44251,
            destination: "fe80::200:f8ff:fe21:67cf",
            destination_port: 38024,
            ipv6: 0x4b61_e985,
            ipv6_tcp: 0x02d1_feef,
        },
    ];

    #[test]
    fn microsoft_ipv4_vectors() {
        let key = RssKey::MICROSOFT_VERIFICATION;
        let table = ToeplitzTable::new(key);
        for vector in &IPV4_VECTORS {
            let source = Ipv4Addr::from(vector.source);
            let destination = Ipv4Addr::from(vector.destination);
            let tcp = ipv4_tcp_input(
                source,
                destination,
                vector.source_port,
                vector.destination_port,
            );
            assert_eq!(
                toeplitz_hash(&key, &ipv4_input(source, destination)),
                vector.ipv4
            );
            assert_eq!(toeplitz_hash(&key, &tcp), vector.ipv4_tcp);
            assert_eq!(table.hash(&ipv4_input(source, destination)), vector.ipv4);
            assert_eq!(
                table.hash_ipv4_tcp(
                    source,
                    destination,
                    vector.source_port,
                    vector.destination_port
                ),
                vector.ipv4_tcp
            );
        }
    }

    #[test]
    fn microsoft_ipv6_vectors() {
        let key = RssKey::MICROSOFT_VERIFICATION;
        let table = ToeplitzTable::new(key);
        for vector in &IPV6_VECTORS {
            let source: Ipv6Addr = vector.source.parse().unwrap();
            let destination: Ipv6Addr = vector.destination.parse().unwrap();
            let addresses = ipv6_input(source, destination);
            let tcp = ipv6_tcp_input(
                source,
                destination,
                vector.source_port,
                vector.destination_port,
            );
            assert_eq!(toeplitz_hash(&key, &addresses), vector.ipv6);
            assert_eq!(toeplitz_hash(&key, &tcp), vector.ipv6_tcp);
            assert_eq!(table.hash(&addresses), vector.ipv6);
            assert_eq!(table.hash(&tcp), vector.ipv6_tcp);
        }
    }

    #[test]
    fn swapped_fields_change_the_hash() {
        // Guards against a hash that ignores order: the vectors are not symmetric.
        let key = RssKey::MICROSOFT_VERIFICATION;
        let vector = &IPV4_VECTORS[0];
        let swapped = ipv4_tcp_input(
            Ipv4Addr::from(vector.destination),
            Ipv4Addr::from(vector.source),
            vector.destination_port,
            vector.source_port,
        );
        assert_ne!(toeplitz_hash(&key, &swapped), vector.ipv4_tcp);
    }

    #[test]
    fn bit_reverse7_reverses_seven_bits() {
        assert_eq!(bit_reverse7(0b000_0001), 0b100_0000);
        assert_eq!(bit_reverse7(0b100_0000), 0b000_0001);
        assert_eq!(bit_reverse7(0b101_1000), 0b000_1101);
        assert_eq!(bit_reverse7(0xff), 0x7f);
        for value in 0..128u8 {
            assert_eq!(bit_reverse7(bit_reverse7(value)), value);
        }
    }

    #[test]
    fn port_only_key_proven_by_linearity_and_others_rejected() {
        assert!(RssKey::PORT_ONLY.steers_by_port_xor());
        assert!(!RssKey::MICROSOFT_VERIFICATION.steers_by_port_xor());
        let mut shifted = [0u8; RSS_KEY_LENGTH];
        shifted[12] = 0x80;
        shifted[14] = 0x80;
        assert!(!RssKey::new(shifted).steers_by_port_xor());
    }

    #[test]
    fn port_xor_table_maps_every_port_xor_to_its_residue() {
        for queue_count in 1..=16 {
            let table = IndirectionTable::port_xor(queue_count).unwrap();
            for port_xor in 0..128u16 {
                let queue = table.queue_for_ports(port_xor, 0);
                assert_eq!(queue.index(), usize::from(port_xor) % queue_count);
            }
            assert_eq!(table.highest_queue().index(), queue_count - 1);
        }
    }

    /// The queues passive connections from even client ports (Linux's `connect()`) land on.
    fn queues_of_even_client_ports(table: &IndirectionTable, server_port: u16) -> Vec<usize> {
        let mut connections = vec![0; INDIRECTION_TABLE_LENGTH];
        for client_port in (32768..61000u16).step_by(2) {
            connections[table.queue_for_ports(client_port, server_port).index()] += 1;
        }
        connections
    }

    #[test]
    fn even_client_ports_spread_over_every_queue() {
        for queue_count in 1..=16 {
            let table = IndirectionTable::port_xor_spreading_even_ports(queue_count).unwrap();
            assert_eq!(table.highest_queue().index(), queue_count - 1);
            for server_port in [80, 443, 8080] {
                let connections = queues_of_even_client_ports(&table, server_port);
                let busiest = *connections[..queue_count].iter().max().unwrap();
                let idlest = *connections[..queue_count].iter().min().unwrap();
                // 64 XOR values with bit 0 fixed spread as evenly as 64 mod n allows.
                assert!(
                    idlest > 0 && busiest <= idlest * 2,
                    "{queue_count} queues, port {server_port}: {connections:?}"
                );
            }
        }
        // The plain low-bit table leaves the odd queues idle: the problem this table solves.
        let plain = queues_of_even_client_ports(&IndirectionTable::port_xor(2).unwrap(), 80);
        assert_eq!(plain[1], 0);
    }

    #[test]
    fn even_port_table_is_a_permutation_of_port_xors() {
        for queue_count in 1..=16 {
            let table = IndirectionTable::port_xor_spreading_even_ports(queue_count).unwrap();
            let mut per_queue = vec![0; queue_count];
            for port_xor in 0..128u16 {
                per_queue[table.queue_for_ports(port_xor, 0).index()] += 1;
            }
            let (least, most) = (per_queue.iter().min(), per_queue.iter().max());
            assert!(most.unwrap() - least.unwrap() <= 1, "{per_queue:?}");
        }
        assert_eq!(
            IndirectionTable::port_xor_spreading_even_ports(0),
            Err(IndirectionTableError::NoQueues)
        );
    }

    #[test]
    fn table_builders_reject_impossible_queue_counts() {
        assert_eq!(
            IndirectionTable::round_robin(0),
            Err(IndirectionTableError::NoQueues)
        );
        assert_eq!(
            IndirectionTable::port_xor(129),
            Err(IndirectionTableError::TooManyQueues { requested: 129 })
        );
        let table = IndirectionTable::round_robin(3).unwrap();
        assert_eq!(table.queue_for_hash(0x0000_0085).index(), 5 % 3);
        // 130 wraps to index 2 of the 128 entries.
        assert_eq!(table.queue_at(130).index(), 2);
    }

    fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// FACTS: the port-only key gives hash[6:0] = bitrev7((sport ^ dport) & 0x7f) whatever
        /// the addresses; checked here against the bitwise definition on random tuples.
        #[test]
        fn port_only_key_ignores_addresses(
            source in ipv4(),
            destination in ipv4(),
            source_port: u16,
            destination_port: u16,
        ) {
            let hash = toeplitz_hash(
                &RssKey::PORT_ONLY,
                &ipv4_tcp_input(source, destination, source_port, destination_port),
            );
            prop_assert_eq!(
                (hash & INDIRECTION_INDEX_MASK) as usize,
                port_only_hash_index(source_port, destination_port)
            );
            let table = IndirectionTable::port_xor(6).unwrap();
            prop_assert_eq!(
                table.queue_for_hash(hash).index(),
                usize::from((source_port ^ destination_port) & 0x7f) % 6
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn table_hash_equals_bitwise_hash(
            key_bytes in proptest::array::uniform32(any::<u8>()),
            key_tail in proptest::array::uniform8(any::<u8>()),
            input in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut bytes = [0u8; RSS_KEY_LENGTH];
            bytes[..32].copy_from_slice(&key_bytes);
            bytes[32..].copy_from_slice(&key_tail);
            let key = RssKey::new(bytes);
            let table = ToeplitzTable::new(key);
            prop_assert_eq!(table.hash(&input), toeplitz_hash(&key, &input));
        }
    }
}
