//! How a UDP socket bound to port 0 gets its port: the policy interface, and the default that picks a random point of the ephemeral range and walks from there (RFC 6056 algorithm 1).

use core::net::{Ipv4Addr, SocketAddrV4};

use crate::net::tcp::EphemeralPorts;

/// Chooses the local port of a socket bound to port 0, and hears which ports the layer binds
/// and releases (a partitioned core publishes them so that other cores know where a datagram
/// to that port belongs). `Send` so that a layer built on the boot core can move to its core.
pub trait UdpPortPolicy: Send {
    /// A port for a socket on `local` that will talk to `remote` if that is known (a connected
    /// socket); `is_free(port)` says whether this core has the port free. `None` when every
    /// candidate is taken.
    fn choose_port(
        &mut self,
        local: Ipv4Addr,
        remote: Option<SocketAddrV4>,
        is_free: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16>;

    /// The layer bound `port` (a chosen one or one the application named).
    fn on_bound(&mut self, _port: u16) {}

    /// The layer released `port` (its socket closed).
    fn on_released(&mut self, _port: u16) {}
}

/// A step of xorshift64*: cheap and well spread; the seed is what must be secret.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The default [`UdpPortPolicy`]: the IANA ephemeral range (49152-65535, RFC 6335), from a
/// new random point at each choice so that a resolver's source port cannot be guessed from
/// the previous one (RFC 6056 section 3.3.1; RFC 5452 asks DNS clients for exactly this).
pub struct RandomEphemeralPorts {
    state: u64,
}

impl RandomEphemeralPorts {
    pub fn new(seed: u64) -> RandomEphemeralPorts {
        RandomEphemeralPorts {
            // xorshift never leaves zero.
            state: seed | 1,
        }
    }
}

impl UdpPortPolicy for RandomEphemeralPorts {
    fn choose_port(
        &mut self,
        _local: Ipv4Addr,
        _remote: Option<SocketAddrV4>,
        is_free: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        let span = u32::from(EphemeralPorts::LAST - EphemeralPorts::FIRST) + 1;
        let start = (next_random(&mut self.state) % u64::from(span)) as u32;
        (0..span)
            .map(|step| EphemeralPorts::FIRST + ((start + step) % span) as u16)
            .find(|&port| is_free(port))
    }
}
