//! Local ports of active connections: the allocator interface `connect` asks, and the default that walks the ephemeral range.

use core::net::{Ipv4Addr, SocketAddrV4};

/// Chooses the local port of an active connection (`connect` with local port 0).
/// It is `Send` so that a layer built on the boot core can move to the core that runs it.
pub trait PortAllocator: Send {
    /// A local port for a connection from `local` to `remote`; `is_usable(port)` says
    /// whether the 4-tuple with that port is free now. `None` when every candidate is taken.
    fn choose_port(
        &mut self,
        local: Ipv4Addr,
        remote: SocketAddrV4,
        is_usable: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16>;
}

/// The default [`PortAllocator`]: walks the IANA ephemeral range (49152-65535, RFC 6335)
/// from where it last stopped.
pub struct EphemeralPorts {
    next: u16,
}

impl EphemeralPorts {
    pub const FIRST: u16 = 49_152;
    pub const LAST: u16 = 65_535;

    pub fn new(start: u16) -> Self {
        let span = Self::LAST - Self::FIRST + 1;
        EphemeralPorts {
            next: Self::FIRST + start % span,
        }
    }
}

impl PortAllocator for EphemeralPorts {
    fn choose_port(
        &mut self,
        _local: Ipv4Addr,
        _remote: SocketAddrV4,
        is_usable: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        let span = u32::from(Self::LAST - Self::FIRST) + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if port == Self::LAST {
                Self::FIRST
            } else {
                port + 1
            };
            if is_usable(port) {
                return Some(port);
            }
        }
        None
    }
}
