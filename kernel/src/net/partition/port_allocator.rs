//! The `connect` port chooser of a partitioned core: Receive Flow Deliver's per-core allocator, so that replies on a connection we open come back to the core that opened it.

use alloc::sync::Arc;
use core::cell::RefCell;
use core::net::{Ipv4Addr, SocketAddrV4};

use super::global_listen::{GlobalListenTable, GlobalListenView};
use crate::net::rfd::{CoreId, FourTuple, LocalPortAllocator, ReceiveFlowDeliver, RfdConfigError};
use crate::net::tcp::PortAllocator;

/// A [`PortAllocator`] for one core's TCP layer: ports this core owns, never a port some core
/// listens on (Receive Flow Deliver would take its packets as passive).
pub struct RfdPortAllocator {
    allocator: LocalPortAllocator,
    listen: GlobalListenView,
}

impl RfdPortAllocator {
    pub fn new(
        rfd: &ReceiveFlowDeliver,
        core: CoreId,
        start: u16,
        listen: Arc<GlobalListenTable>,
    ) -> Result<RfdPortAllocator, RfdConfigError> {
        Ok(RfdPortAllocator {
            allocator: LocalPortAllocator::new(rfd, core, start)?,
            listen: GlobalListenView::new(listen),
        })
    }

    /// Allocations that found every port of this core's share taken.
    pub fn exhausted_count(&self) -> u64 {
        self.allocator.exhausted_count()
    }
}

impl PortAllocator for RfdPortAllocator {
    fn choose_port(
        &mut self,
        local: Ipv4Addr,
        remote: SocketAddrV4,
        is_usable: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        self.listen.refresh();
        let usable = RefCell::new(is_usable);
        let in_use = |tuple: &FourTuple| !(*usable.borrow_mut())(tuple.local.port());
        let listen = &self.listen;
        self.allocator
            .allocate(local, remote, &|port| listen.is_listened(port), &in_use)
            .ok()
    }
}
