//! The 4-tuple that names a connection, and a keyed hasher for the tables indexed by it (so a peer cannot choose colliding tuples).

use core::hash::{BuildHasher, Hash, Hasher};
use core::net::SocketAddrV4;

use super::isn::SipKey;

/// (local address and port, remote address and port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FourTuple {
    pub(crate) local: SocketAddrV4,
    pub(crate) remote: SocketAddrV4,
}

impl Hash for FourTuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [addresses, ports] = SipKey::tuple_words(self.local, self.remote);
        state.write_u64(addresses);
        state.write_u64(ports);
    }
}

/// Builds [`TupleHasher`]s with the layer's secret key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedHash {
    key: SipKey,
}

impl KeyedHash {
    pub(crate) fn new(key: SipKey) -> Self {
        KeyedHash { key }
    }
}

impl BuildHasher for KeyedHash {
    type Hasher = TupleHasher;
    fn build_hasher(&self) -> TupleHasher {
        TupleHasher {
            key: self.key,
            words: [0; 3],
            count: 0,
        }
    }
}

/// SipHash over the few words a table key writes.
pub(crate) struct TupleHasher {
    key: SipKey,
    words: [u64; 3],
    count: usize,
}

impl Hasher for TupleHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        if self.count < self.words.len() {
            self.words[self.count] = word;
            self.count += 1;
        } else {
            // More words than a key ever writes: fold them in, still keyed.
            let last = self.words.len() - 1;
            self.words[last] = self.key.hash(&[self.words[last], word]);
        }
    }

    fn write_u16(&mut self, value: u16) {
        self.write_u64(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn finish(&self) -> u64 {
        self.key.hash(&self.words[..self.count])
    }
}

/// A hash map keyed with the layer's secret.
pub(crate) type KeyedMap<K, V> = hashbrown::HashMap<K, V, KeyedHash>;
