//! UDP on a partitioned core: the port chooser that makes replies to an ephemeral port steer to the core that bound it, and the rule that names the core a received datagram belongs to.

use alloc::sync::Arc;
use core::net::{Ipv4Addr, SocketAddrV4};

use super::fallback::fallback_core;
use super::global_listen::{CoreSet, GlobalListenTable, UdpBoundView};
use crate::net::rfd::{CoreId, FourTuple, LocalPortAllocator, ReceiveFlowDeliver, RfdConfigError};
use crate::net::udp::{UdpPortPolicy, next_random};

/// The [`UdpPortPolicy`] of a partitioned core: ephemeral ports from this core's Receive Flow
/// Deliver share (as TCP's `connect` gets them, [`super::RfdPortAllocator`]), never one bound
/// on another core, from a random point each time; and every bind and close published in the
/// global table so that the other cores know where datagrams to the port belong.
pub struct RfdUdpPorts {
    core: CoreId,
    allocator: LocalPortAllocator,
    table: Arc<GlobalListenTable>,
    bound: UdpBoundView,
    random: u64,
}

impl RfdUdpPorts {
    /// `seed` must be unpredictable (the dispatcher draws it from the boot secret): every
    /// port choice starts from a point it decides.
    pub fn new(
        rfd: &ReceiveFlowDeliver,
        core: CoreId,
        seed: u64,
        table: Arc<GlobalListenTable>,
    ) -> Result<RfdUdpPorts, RfdConfigError> {
        Ok(RfdUdpPorts {
            core,
            allocator: LocalPortAllocator::new(rfd, core, seed as u16)?,
            bound: UdpBoundView::new(table.clone()),
            table,
            // xorshift never leaves zero.
            random: seed | 1,
        })
    }
}

impl UdpPortPolicy for RfdUdpPorts {
    /// With a known peer (a connected socket) the port is one whose replies from that peer's
    /// port steer here, under either steering. Without one, under port-XOR steering no port
    /// steers the replies of every peer port to one core: the port is chosen for peer port 0,
    /// and replies that the NIC puts elsewhere are handed here by software (see [`udp_owner`]).
    fn choose_port(
        &mut self,
        local: Ipv4Addr,
        remote: Option<SocketAddrV4>,
        is_free: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        self.bound.refresh();
        self.allocator.seek(next_random(&mut self.random) as u16);
        let remote = remote.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let bound = &self.bound;
        let is_free = core::cell::RefCell::new(is_free);
        let in_use = |tuple: &FourTuple| !(*is_free.borrow_mut())(tuple.local.port());
        self.allocator
            .allocate(local, remote, &|port| bound.is_bound(port), &in_use)
            .ok()
    }

    fn on_bound(&mut self, port: u16) {
        self.table.bind_udp(port, self.core);
    }

    fn on_released(&mut self, port: u16) {
        self.table.release_udp(port, self.core);
    }
}

/// The core a datagram from `source` to `destination` that arrived on `arrival` belongs to,
/// given the cores with a socket on its port (`bound`):
/// 1. no core has the port: here (closed port; answered here with port unreachable);
/// 2. an ephemeral port: the core Receive Flow Deliver names for a reply from `source`'s
///    port, if it has the port (a reply to a query one of our sockets sent, the UDP twin of
///    a TCP active open);
/// 3. this core has the port: here (a server bound on every core takes each datagram where
///    it lands, as the NIC spread them);
/// 4. else one of the cores that have it, by the rendezvous hash the global listener uses
///    (one core for a port bound once, such as a DHCP client's 68).
pub fn udp_owner(
    rfd: &ReceiveFlowDeliver,
    arrival: CoreId,
    source: SocketAddrV4,
    destination: SocketAddrV4,
    bound: CoreSet,
) -> CoreId {
    if bound.is_empty() {
        return arrival;
    }
    if rfd.ephemeral_ports().contains(destination.port()) {
        let steered = rfd.active_owner(destination.port(), source.port());
        if bound.contains(steered) {
            return steered;
        }
    }
    if bound.contains(arrival) {
        return arrival;
    }
    let tuple = FourTuple {
        local: destination,
        remote: source,
    };
    fallback_core(&tuple, bound, arrival).unwrap_or(arrival)
}
