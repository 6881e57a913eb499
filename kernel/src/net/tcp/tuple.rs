//! The 4-tuple that names a connection, the keyed hash of it that the per-core tables use (so a peer cannot choose colliding tuples), and those tables.
//!
//! # Why a folded multiply and not SipHash here
//! The tables need a hash that a peer cannot steer into one bucket (hash flooding), not a
//! pseudo-random function: their hash values never leave the core (no packet, counter or
//! log carries one), so an attacker can only guess at collisions, or learn about the key
//! from the time lookups take. The hash is a folded multiply (foldhash's and ahash's core:
//! the 128-bit product of two 64-bit words, its halves XORed) of the tuple XORed with 256
//! bits of per-layer key, then a second folded multiply with key material to mix every input
//! bit into the low bits (the bucket index) and the top 7 (hashbrown's tag). Without the
//! key, which tuples share a bucket is unpredictable; the only structural weakness of a
//! folded multiply (an operand of zero) needs the key's bits to be guessed. This is the
//! threat model of Rust's hashbrown with foldhash and of Linux's established table
//! (`inet_ehashfn`: jhash, non-cryptographic, seeded with a boot-time secret).
//! The key is derived from the layer's secret with SipHash under its own domain
//! constant, so even a recovered table key reveals nothing of the SipHash key behind what
//! the peer does see and must not predict: ISNs (RFC 6528), SYN cookies and timestamp
//! offsets, which stay on SipHash.

use core::net::SocketAddrV4;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::isn::SipKey;

/// (local address and port, remote address and port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FourTuple {
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
}

/// The keyed table hash of a layer (see the module comment for why it may be cheap).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TupleHasher {
    keys: [u64; 4],
}

/// Domain separation of the table key from the secret's other uses ("tuple-tb").
const TABLE_KEY_DOMAIN: u64 = 0x7475_706c_652d_7462;

impl TupleHasher {
    /// Each key word is SipHash of three words ending in `TABLE_KEY_DOMAIN`: the only other
    /// three-word input is the timestamp offset's, which ends in its own tag, and SipHash
    /// tells messages of other lengths apart (ISNs two words, SYN cookies four, the port
    /// start one), so no other use of the secret ever computes one of these words.
    pub(crate) fn new(secret: &SipKey) -> Self {
        TupleHasher {
            keys: core::array::from_fn(|index| {
                secret.hash(&[TABLE_KEY_DOMAIN, index as u64, TABLE_KEY_DOMAIN])
            }),
        }
    }

    /// The tuple with its hash, computed once and reused by every table lookup of a segment.
    #[inline]
    pub(crate) fn hashed(&self, tuple: FourTuple) -> HashedTuple {
        HashedTuple {
            tuple,
            hash: self.hash(&tuple),
        }
    }

    #[inline]
    fn hash(&self, tuple: &FourTuple) -> u64 {
        let [addresses, ports] = SipKey::tuple_words(tuple.local, tuple.remote);
        let mixed = folded_multiply(addresses ^ self.keys[0], ports ^ self.keys[1]);
        folded_multiply(mixed ^ self.keys[2], self.keys[3])
    }
}

/// The 128-bit product of `a` and `b`, its high half XORed into its low half.
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A 4-tuple and its table hash. Only [`TupleHasher::hashed`] makes one, and all the tables
/// of a layer share its hasher, so the hash is right for each of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HashedTuple {
    pub(crate) tuple: FourTuple,
    hash: u64,
}

/// A table keyed by 4-tuple (established connections, half-open ones, TIME_WAIT records):
/// lookups take a [`HashedTuple`], so a segment's tuple is hashed once for all of them.
pub(crate) struct TupleTable<V> {
    hasher: TupleHasher,
    entries: HashTable<(FourTuple, V)>,
}

impl<V> TupleTable<V> {
    pub(crate) fn new(hasher: TupleHasher) -> Self {
        TupleTable {
            hasher,
            entries: HashTable::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn get(&self, key: &HashedTuple) -> Option<&V> {
        self.entries
            .find(key.hash, |(tuple, _)| *tuple == key.tuple)
            .map(|(_, value)| value)
    }

    pub(crate) fn get_mut(&mut self, key: &HashedTuple) -> Option<&mut V> {
        self.entries
            .find_mut(key.hash, |(tuple, _)| *tuple == key.tuple)
            .map(|(_, value)| value)
    }

    pub(crate) fn contains(&self, key: &HashedTuple) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces the value of `key`.
    pub(crate) fn insert(&mut self, key: &HashedTuple, value: V) {
        let hasher = &self.hasher;
        match self.entries.entry(
            key.hash,
            |(tuple, _)| *tuple == key.tuple,
            |(tuple, _)| hasher.hash(tuple),
        ) {
            Entry::Occupied(mut occupied) => occupied.get_mut().1 = value,
            Entry::Vacant(vacant) => {
                vacant.insert((key.tuple, value));
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &HashedTuple) -> Option<V> {
        self.remove_if(key, |_| true)
    }

    /// Removes the value of `key` if `should_remove` says so, in one probe.
    pub(crate) fn remove_if(
        &mut self,
        key: &HashedTuple,
        should_remove: impl FnOnce(&V) -> bool,
    ) -> Option<V> {
        let entry = self
            .entries
            .find_entry(key.hash, |(tuple, _)| *tuple == key.tuple)
            .ok()?;
        if !should_remove(&entry.get().1) {
            return None;
        }
        Some(entry.remove().0.1)
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&FourTuple, &V) -> bool) {
        self.entries.retain(|(tuple, value)| keep(tuple, value));
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&FourTuple, &V)> {
        self.entries.iter().map(|(tuple, value)| (tuple, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn tuple(remote_port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            remote: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), remote_port),
        }
    }

    #[test]
    fn the_hash_depends_on_the_key() {
        let one = TupleHasher::new(&SipKey::new([1; 16]));
        let two = TupleHasher::new(&SipKey::new([2; 16]));
        let differing = (0..1000u16)
            .filter(|&port| one.hash(&tuple(port)) != two.hash(&tuple(port)))
            .count();
        assert_eq!(differing, 1000);
        // Which tuples share a bucket changes with the key too: the bucket (low 10 bits) of
        // neighbouring ports agrees between the keys about as often as chance (1 in 1024).
        let same_bucket = (0..4096u16)
            .filter(|&port| (one.hash(&tuple(port)) ^ two.hash(&tuple(port))) & 1023 == 0)
            .count();
        assert!(same_bucket < 20, "{same_bucket} of 4096 in the same bucket");
    }

    #[test]
    fn sequential_ports_spread_over_buckets_and_tags() {
        // A client walking its ephemeral ports (or an attacker walking source ports) must
        // not pile up in a few of hashbrown's buckets (low bits) or tags (top 7 bits).
        for secret in [[0u8; 16], [1; 16], [0xa5; 16]] {
            let hasher = TupleHasher::new(&SipKey::new(secret));
            let mut buckets = [0u32; 1024];
            let mut tags = [0u32; 128];
            for port in 0..=u16::MAX {
                let hash = hasher.hash(&tuple(port));
                buckets[(hash & 1023) as usize] += 1;
                tags[(hash >> 57) as usize] += 1;
            }
            // 64 per bucket and 512 per tag on average; a uniform hash stays well inside these.
            let fullest_bucket = *buckets.iter().max().unwrap();
            let emptiest_bucket = *buckets.iter().min().unwrap();
            assert!(
                (30..=110).contains(&emptiest_bucket) && fullest_bucket <= 110,
                "buckets from {emptiest_bucket} to {fullest_bucket}"
            );
            let fullest_tag = *tags.iter().max().unwrap();
            let emptiest_tag = *tags.iter().min().unwrap();
            assert!(
                emptiest_tag >= 400 && fullest_tag <= 630,
                "tags from {emptiest_tag} to {fullest_tag}"
            );
        }
    }

    #[test]
    fn every_input_bit_reaches_the_bucket() {
        // Flipping any one bit of the tuple changes the low 16 bits of the hash.
        let hasher = TupleHasher::new(&SipKey::new([3; 16]));
        let base = tuple(40_000);
        let base_hash = hasher.hash(&base);
        for bit in 0..32 {
            let mut remote = base;
            remote
                .remote
                .set_ip(Ipv4Addr::from_bits(base.remote.ip().to_bits() ^ (1 << bit)));
            assert_ne!(
                hasher.hash(&remote) & 0xffff,
                base_hash & 0xffff,
                "address bit {bit}"
            );
        }
        for bit in 0..16 {
            let mut remote = base;
            remote.remote.set_port(base.remote.port() ^ (1 << bit));
            assert_ne!(
                hasher.hash(&remote) & 0xffff,
                base_hash & 0xffff,
                "port bit {bit}"
            );
        }
    }

    #[test]
    fn the_table_finds_replaces_and_removes() {
        let hasher = TupleHasher::new(&SipKey::new([4; 16]));
        let mut table = TupleTable::new(hasher);
        for port in 0..2000 {
            table.insert(&hasher.hashed(tuple(port)), u32::from(port));
        }
        assert_eq!(table.len(), 2000);
        let key = hasher.hashed(tuple(7));
        assert_eq!(table.get(&key), Some(&7));
        table.insert(&key, 70);
        assert_eq!(table.len(), 2000);
        assert_eq!(table.remove_if(&key, |&value| value == 7), None);
        assert_eq!(table.remove_if(&key, |&value| value == 70), Some(70));
        assert!(!table.contains(&key));
        table.retain(|tuple, _| tuple.remote.port() % 2 == 0);
        assert_eq!(table.len(), 1000);
        assert_eq!(table.iter().count(), 1000);
    }
}
