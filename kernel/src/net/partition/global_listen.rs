//! The global listen table: which cores serve each listening port, shared read-mostly by all cores, with a per-core copy so the fast path takes no lock.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::net::rfd::CoreId;

/// A set of cores (at most 128, the Receive Flow Deliver limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CoreSet(u128);

impl CoreSet {
    pub const EMPTY: CoreSet = CoreSet(0);

    /// Adds `core`; cores beyond 127 are ignored (no configuration has them).
    pub fn insert(&mut self, core: CoreId) {
        if core.0 < 128 {
            self.0 |= 1 << core.0;
        }
    }

    pub fn remove(&mut self, core: CoreId) {
        if core.0 < 128 {
            self.0 &= !(1 << core.0);
        }
    }

    pub fn contains(self, core: CoreId) -> bool {
        core.0 < 128 && self.0 >> core.0 & 1 == 1
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The cores in increasing order.
    pub fn iter(self) -> impl Iterator<Item = CoreId> {
        (0..128u16)
            .filter(move |&core| self.0 >> core & 1 == 1)
            .map(CoreId)
    }
}

impl FromIterator<CoreId> for CoreSet {
    fn from_iter<I: IntoIterator<Item = CoreId>>(cores: I) -> Self {
        let mut set = CoreSet::EMPTY;
        for core in cores {
            set.insert(core);
        }
        set
    }
}

type PortMap = hashbrown::HashMap<u16, CoreSet>;

/// Port -> the cores whose worker serves it. Written only when a worker starts or stops
/// serving a port; every change bumps `version`, which each core's [`GlobalListenView`] reads
/// (one atomic load) to know when its copy is stale.
pub struct GlobalListenTable {
    version: AtomicU64,
    ports: spin::RwLock<PortMap>,
    /// UDP ports bound, and on which cores: a separate map with its own version, so that
    /// binding and closing UDP sockets (a resolver does it per query) never makes a core
    /// re-read the TCP listen ports.
    udp_version: AtomicU64,
    udp_ports: spin::RwLock<PortMap>,
}

impl GlobalListenTable {
    pub fn new() -> Arc<GlobalListenTable> {
        Arc::new(GlobalListenTable {
            version: AtomicU64::new(0),
            ports: spin::RwLock::new(PortMap::new()),
            udp_version: AtomicU64::new(0),
            udp_ports: spin::RwLock::new(PortMap::new()),
        })
    }

    /// `core`'s worker now accepts connections on `port`.
    pub fn serve(&self, port: u16, core: CoreId) {
        let mut ports = self.ports.write();
        ports.entry(port).or_default().insert(core);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// `core`'s worker no longer accepts new connections on `port`.
    pub fn stop_serving(&self, port: u16, core: CoreId) {
        let mut ports = self.ports.write();
        if let Some(cores) = ports.get_mut(&port) {
            cores.remove(core);
            if cores.is_empty() {
                ports.remove(&port);
            }
        }
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The cores serving `port` now (takes the read lock: for the slow path and tests).
    pub fn serving(&self, port: u16) -> CoreSet {
        self.ports.read().get(&port).copied().unwrap_or_default()
    }

    /// Bumped on every change.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// `core` has a UDP socket bound to `port`.
    pub fn bind_udp(&self, port: u16, core: CoreId) {
        let mut ports = self.udp_ports.write();
        ports.entry(port).or_default().insert(core);
        self.udp_version.fetch_add(1, Ordering::Release);
    }

    /// `core` closed its UDP socket on `port`.
    pub fn release_udp(&self, port: u16, core: CoreId) {
        let mut ports = self.udp_ports.write();
        if let Some(cores) = ports.get_mut(&port) {
            cores.remove(core);
            if cores.is_empty() {
                ports.remove(&port);
            }
        }
        self.udp_version.fetch_add(1, Ordering::Release);
    }

    /// The cores with a UDP socket bound to `port` (a read lock: not for the per-frame path,
    /// which reads its [`UdpBoundView`]).
    pub fn udp_bound(&self, port: u16) -> CoreSet {
        self.udp_ports
            .read()
            .get(&port)
            .copied()
            .unwrap_or_default()
    }
}

/// One core's copy of the UDP half of the table, refreshed like [`GlobalListenView`]: one
/// atomic load per UDP datagram, the lock only after a bind or close somewhere.
pub struct UdpBoundView {
    table: Arc<GlobalListenTable>,
    version_seen: u64,
    ports: PortMap,
}

impl UdpBoundView {
    pub fn new(table: Arc<GlobalListenTable>) -> UdpBoundView {
        let mut view = UdpBoundView {
            table,
            version_seen: u64::MAX,
            ports: PortMap::new(),
        };
        view.refresh();
        view
    }

    /// Copies the table if it changed since the last refresh.
    pub fn refresh(&mut self) {
        let version = self.table.udp_version.load(Ordering::Acquire);
        if version == self.version_seen {
            return;
        }
        let ports = self.table.udp_ports.read();
        self.ports.clone_from(&ports);
        self.version_seen = version;
    }

    /// The cores with a UDP socket on `port`, as of the last refresh.
    pub fn bound(&self, port: u16) -> CoreSet {
        self.ports.get(&port).copied().unwrap_or_default()
    }

    /// Whether some core has a UDP socket on `port`, as of the last refresh.
    pub fn is_bound(&self, port: u16) -> bool {
        self.ports.contains_key(&port)
    }
}

/// One core's copy of the global listen table.
pub struct GlobalListenView {
    table: Arc<GlobalListenTable>,
    version_seen: u64,
    ports: PortMap,
}

impl GlobalListenView {
    pub fn new(table: Arc<GlobalListenTable>) -> GlobalListenView {
        let mut view = GlobalListenView {
            table,
            version_seen: u64::MAX,
            ports: PortMap::new(),
        };
        view.refresh();
        view
    }

    pub fn table(&self) -> &Arc<GlobalListenTable> {
        &self.table
    }

    /// Copies the table again if it changed since the last copy; true if it did. Costs one
    /// atomic load when nothing changed.
    pub fn refresh(&mut self) -> bool {
        let version = self.table.version();
        if version == self.version_seen {
            return false;
        }
        let ports = self.table.ports.read();
        self.ports.clone_from(&ports);
        // A change that raced with the copy bumped the version after the value read
        // above, so the next refresh copies again.
        self.version_seen = version;
        true
    }

    /// The cores serving `port`, as of the last refresh.
    pub fn serving(&self, port: u16) -> CoreSet {
        self.ports.get(&port).copied().unwrap_or_default()
    }

    /// Whether some core serves `port` (Receive Flow Deliver's "ask the listen tables").
    pub fn is_listened(&self, port: u16) -> bool {
        self.ports.contains_key(&port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_follow_the_table_only_when_it_changes() {
        let table = GlobalListenTable::new();
        let mut view = GlobalListenView::new(table.clone());
        assert!(!view.is_listened(80));
        table.serve(80, CoreId(1));
        table.serve(80, CoreId(3));
        assert!(!view.is_listened(80), "a view changes only when refreshed");
        assert!(view.refresh());
        assert!(!view.refresh());
        assert_eq!(
            view.serving(80).iter().collect::<alloc::vec::Vec<_>>(),
            [CoreId(1), CoreId(3)]
        );
        table.stop_serving(80, CoreId(1));
        table.stop_serving(80, CoreId(3));
        assert!(view.refresh());
        assert!(!view.is_listened(80));
        assert_eq!(table.serving(80), CoreSet::EMPTY);
    }

    #[test]
    fn core_sets_hold_128_cores() {
        let mut set: CoreSet = [CoreId(0), CoreId(127), CoreId(128)].into_iter().collect();
        assert_eq!(set.len(), 2);
        assert!(set.contains(CoreId(127)) && !set.contains(CoreId(128)));
        set.remove(CoreId(0));
        assert_eq!(set.iter().collect::<alloc::vec::Vec<_>>(), [CoreId(127)]);
    }
}
