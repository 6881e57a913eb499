//! Receive Flow Deliver: which core owns a TCP/IPv4 packet, and which local port a core picks so that it owns the connection it opens.
//!
//! Fastsocket (Lin et al., ASPLOS 2016, "Receive Flow Deliver"): a connection this host opens is owned by the
//! core that opened it, and its local port is chosen so that the port itself names that core; a
//! connection a client opens is owned by the core the NIC's RSS hash sends it to. Every packet of
//! a flow gets the same owner whichever queue it arrived on, so a misdelivered packet is handed
//! to its owner over an inter-core ring and no TCP state is ever shared. This module only
//! decides; it never touches a packet or a ring.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use super::rss::{IndirectionTable, QueueId, RssKey, ToeplitzTable};

/// The crate's one core number, defined with the TCP layer's socket handles and re-exported
/// here because Receive Flow Deliver is where a packet gets its core.
pub use super::tcp::CoreId;

/// The queue a core owns: each core owns exactly one receive queue, with its own number
/// (DESIGN: one queue pair per core).
pub const fn queue_of_core(core: CoreId) -> QueueId {
    QueueId::new(core.0)
}

/// The core that owns a receive queue.
pub const fn core_of_queue(queue: QueueId) -> CoreId {
    CoreId(queue.as_u16())
}

const fn core_index(core: CoreId) -> usize {
    core.0 as usize
}

/// How the NIC steers replies on connections we open; chosen once at initialisation because the
/// NIC's masks and key are global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveSteering {
    /// Flow Director perfect filters (82599 datasheet, "Flow Director Filters") match the low bits of our local
    /// port: `owner = local_port & (roundup_pow2(core_count) - 1)`, the paper's rule. With a core
    /// count that is not a power of two, the ports whose low bits name no core are never used.
    LocalPortLowBits,
    /// Plain RSS with [`RssKey::PORT_ONLY`]: `owner = table[bitrev7((local ^ remote) & 0x7f)]`.
    /// The same formula then gives the owner of passive connections too.
    PortXor,
}

/// Whether a packet belongs to a connection this host opened or one a client opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowDirection {
    /// A reply on a connection we opened (the proxy's connection to a backend).
    Active,
    /// A packet of a connection a peer opened to one of our listeners (or to no listener).
    Passive,
}

/// The listen tables, as Receive Flow Deliver needs them; the TCP layer implements it.
pub trait ListenPorts {
    /// True if some listener (local or global) accepts connections on this TCP port.
    fn is_listening(&self, port: u16) -> bool;
}

impl<F: Fn(u16) -> bool> ListenPorts for F {
    fn is_listening(&self, port: u16) -> bool {
        self(port)
    }
}

/// A connection's addresses from this host's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FourTuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

/// The TCP layer's answer to "may a new connection use this 4-tuple?".
pub trait FourTupleInUse {
    /// True if a connection, including one in TIME_WAIT, already uses this 4-tuple.
    fn is_in_use(&self, tuple: &FourTuple) -> bool;
}

impl<F: Fn(&FourTuple) -> bool> FourTupleInUse for F {
    fn is_in_use(&self, tuple: &FourTuple) -> bool {
        self(tuple)
    }
}

/// The addresses of a received TCP/IPv4 segment, as they appear in the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundSegment {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    /// The RSS hash the NIC reported in its receive descriptor, if it hashed with this Receive
    /// Flow Deliver's key; saves recomputing it.
    pub reported_hash: Option<u32>,
}

impl InboundSegment {
    pub const fn new(source: SocketAddrV4, destination: SocketAddrV4) -> Self {
        InboundSegment {
            source,
            destination,
            reported_hash: None,
        }
    }
}

/// The ephemeral port range our connections take their local ports from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EphemeralPortRange {
    first: u16,
    last: u16,
}

impl EphemeralPortRange {
    /// Linux's default `ip_local_port_range`.
    pub const LINUX_DEFAULT: EphemeralPortRange = EphemeralPortRange {
        first: 32768,
        last: 60999,
    };

    /// The range must hold at least 128 ports, so that every core finds ports of its own
    /// whatever the remote port, and must not reach below 1024: a destination port below the
    /// range is then proof that a packet is not a reply on a connection we opened.
    pub fn new(first: u16, last: u16) -> Result<Self, RfdConfigError> {
        if first < 1024 {
            return Err(RfdConfigError::EphemeralRangeBelow1024);
        }
        if last < first || usize::from(last - first) + 1 < 128 {
            return Err(RfdConfigError::EphemeralRangeTooSmall);
        }
        Ok(EphemeralPortRange { first, last })
    }

    pub const fn first(&self) -> u16 {
        self.first
    }

    pub const fn last(&self) -> u16 {
        self.last
    }

    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    pub const fn len(&self) -> usize {
        (self.last - self.first) as usize + 1
    }

    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The port after `port` in the range, wrapping to the first.
    const fn after(&self, port: u16) -> u16 {
        if port >= self.last {
            self.first
        } else {
            port + 1
        }
    }
}

impl Default for EphemeralPortRange {
    fn default() -> Self {
        Self::LINUX_DEFAULT
    }
}

/// Why a Receive Flow Deliver configuration or a port allocator is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RfdConfigError {
    /// Between 1 and 128 cores: 128 is the number of indirection table entries.
    CoreCountOutOfRange,
    /// The indirection table names a queue that no core owns.
    TableNamesMissingCore {
        queue: QueueId,
    },
    /// Port-XOR steering needs a key that makes hash[6:0] a function of the port XOR.
    KeyDoesNotSteerByPortXor,
    /// Port-XOR steering needs every core in the table, or a core could own no port.
    CoreMissingFromTable {
        core: CoreId,
    },
    EphemeralRangeBelow1024,
    EphemeralRangeTooSmall,
    /// A port allocator was asked for a core beyond the core count.
    NoSuchCore {
        core: CoreId,
    },
}

/// Everything Receive Flow Deliver must agree on with the NIC set-up.
#[derive(Clone, Debug)]
pub struct RfdConfig {
    pub core_count: usize,
    pub active_steering: ActiveSteering,
    /// The key the NIC hashes with (the passive owner is the queue of this hash).
    pub rss_key: RssKey,
    /// The table the NIC maps hashes to queues with.
    pub indirection_table: IndirectionTable,
    pub ephemeral_ports: EphemeralPortRange,
    /// Remote service ports we connect to (the backends), besides those below 1024.
    pub backend_ports: Vec<u16>,
}

impl RfdConfig {
    /// Port-XOR steering with the port-only key over `core_count` queues: needs nothing from the
    /// NIC but RSS with a programmable key (virtio-net RSS, e1000e, 82599).
    pub fn port_xor(core_count: usize) -> Result<Self, RfdConfigError> {
        let indirection_table = IndirectionTable::port_xor(core_count)
            .map_err(|_| RfdConfigError::CoreCountOutOfRange)?;
        Ok(RfdConfig {
            core_count,
            active_steering: ActiveSteering::PortXor,
            rss_key: RssKey::PORT_ONLY,
            indirection_table,
            ephemeral_ports: EphemeralPortRange::default(),
            backend_ports: Vec::new(),
        })
    }
}

/// Per-core counters of Receive Flow Deliver decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RfdCounters {
    /// Packets that arrived on the queue of the core that owns them.
    pub arrived_on_owner: u64,
    /// Packets this core handed to their owner over a ring.
    pub forwarded: u64,
    /// Packets classified as replies on connections we opened.
    pub active: u64,
    /// Packets classified as belonging to connections peers opened.
    pub passive: u64,
    /// Active packets decided by the source-port shortcut, without asking the listen tables.
    pub classified_by_source_port: u64,
}

/// Where a received packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// This core owns it: hand it to the local stack.
    Local,
    /// Another core owns it: hand it over that core's ring.
    Forward(CoreId),
}

/// The owner of every packet, computed the same way on every core. Read-only after
/// construction, so the cores may share one (it is `Sync`) or each keep a copy.
pub struct ReceiveFlowDeliver {
    core_count: usize,
    active_steering: ActiveSteering,
    hasher: ToeplitzTable,
    indirection_table: IndirectionTable,
    ephemeral_ports: EphemeralPortRange,
    /// Sorted, for binary search.
    backend_ports: Vec<u16>,
}

impl ReceiveFlowDeliver {
    pub fn new(config: RfdConfig) -> Result<Self, RfdConfigError> {
        let RfdConfig {
            core_count,
            active_steering,
            rss_key,
            indirection_table,
            ephemeral_ports,
            mut backend_ports,
        } = config;
        if !(1..=128).contains(&core_count) {
            return Err(RfdConfigError::CoreCountOutOfRange);
        }
        let highest_queue = indirection_table.highest_queue();
        if highest_queue.index() >= core_count {
            return Err(RfdConfigError::TableNamesMissingCore {
                queue: highest_queue,
            });
        }
        if active_steering == ActiveSteering::PortXor {
            if !rss_key.steers_by_port_xor() {
                return Err(RfdConfigError::KeyDoesNotSteerByPortXor);
            }
            for core in (0..core_count as u16).map(CoreId) {
                if !indirection_table.entries().contains(&queue_of_core(core)) {
                    return Err(RfdConfigError::CoreMissingFromTable { core });
                }
            }
        }
        backend_ports.sort_unstable();
        backend_ports.dedup();
        Ok(ReceiveFlowDeliver {
            core_count,
            active_steering,
            hasher: ToeplitzTable::new(rss_key),
            indirection_table,
            ephemeral_ports,
            backend_ports,
        })
    }

    pub fn core_count(&self) -> usize {
        self.core_count
    }

    pub fn active_steering(&self) -> ActiveSteering {
        self.active_steering
    }

    pub fn ephemeral_ports(&self) -> EphemeralPortRange {
        self.ephemeral_ports
    }

    pub fn indirection_table(&self) -> &IndirectionTable {
        &self.indirection_table
    }

    /// A well-known service port of a remote: below 1024 or one of the configured backend ports.
    pub fn is_well_known_service(&self, port: u16) -> bool {
        port < 1024 || self.backend_ports.binary_search(&port).is_ok()
    }

    /// The paper's classifier, in its order, made exact by one fact: our active
    /// local ports come only from the ephemeral range.
    ///
    /// 1. The source port is a well-known service port and the destination port is ephemeral: a
    ///    backend replying to a port we picked -> active, without consulting the listen tables.
    /// 2. The destination port is outside the ephemeral range: no connection we opened uses it
    ///    -> passive.
    /// 3. Otherwise the listen tables decide: a listener on the destination port -> passive,
    ///    none -> active.
    ///
    /// The answer depends only on the ports and the set of listeners, so every packet of a flow
    /// is classified alike on every core. (A listener inside the ephemeral range reached from a
    /// well-known source port is taken as active by rule 1; consistently so.)
    pub fn classify(
        &self,
        source_port: u16,
        destination_port: u16,
        listen: &impl ListenPorts,
    ) -> FlowDirection {
        self.classify_with_reason(source_port, destination_port, listen)
            .0
    }

    fn classify_with_reason(
        &self,
        source_port: u16,
        destination_port: u16,
        listen: &impl ListenPorts,
    ) -> (FlowDirection, bool) {
        let destination_ephemeral = self.ephemeral_ports.contains(destination_port);
        if destination_ephemeral && self.is_well_known_service(source_port) {
            return (FlowDirection::Active, true);
        }
        if !destination_ephemeral || listen.is_listening(destination_port) {
            (FlowDirection::Passive, false)
        } else {
            (FlowDirection::Active, false)
        }
    }

    /// The core that owns a connection we opened from `local_port` to `remote_port`.
    pub fn active_owner(&self, local_port: u16, remote_port: u16) -> CoreId {
        match self.active_steering {
            ActiveSteering::LocalPortLowBits => {
                let mask = self.low_bits_mask();
                // Ports whose low bits name no core are never allocated; a stray packet to one
                // still needs some fixed owner, which then answers it with a RST.
                CoreId(((local_port & mask) as usize % self.core_count) as u16)
            }
            ActiveSteering::PortXor => core_of_queue(
                self.indirection_table
                    .queue_for_ports(local_port, remote_port),
            ),
        }
    }

    /// The core whose queue the NIC's RSS delivers this segment to.
    pub fn rss_owner(&self, segment: &InboundSegment) -> CoreId {
        let hash = segment.reported_hash.unwrap_or_else(|| {
            self.hasher.hash_ipv4_tcp(
                *segment.source.ip(),
                *segment.destination.ip(),
                segment.source.port(),
                segment.destination.port(),
            )
        });
        core_of_queue(self.indirection_table.queue_for_hash(hash))
    }

    /// The core that owns this segment: for a reply on a connection we opened, the core named
    /// by our local port (the destination port); for a passive connection, the core RSS picks.
    pub fn owner_core(&self, segment: &InboundSegment, listen: &impl ListenPorts) -> CoreId {
        self.owner_with_direction(segment, listen).0
    }

    fn owner_with_direction(
        &self,
        segment: &InboundSegment,
        listen: &impl ListenPorts,
    ) -> (CoreId, FlowDirection, bool) {
        let source_port = segment.source.port();
        let destination_port = segment.destination.port();
        let (direction, by_source_port) =
            self.classify_with_reason(source_port, destination_port, listen);
        let owner = match direction {
            FlowDirection::Active => self.active_owner(destination_port, source_port),
            FlowDirection::Passive => self.rss_owner(segment),
        };
        (owner, direction, by_source_port)
    }

    /// Decides where a segment that arrived on `arrival` goes, and counts the decision.
    pub fn deliver(
        &self,
        arrival: CoreId,
        segment: &InboundSegment,
        listen: &impl ListenPorts,
        counters: &mut RfdCounters,
    ) -> Delivery {
        let (owner, direction, by_source_port) = self.owner_with_direction(segment, listen);
        match direction {
            FlowDirection::Active => counters.active += 1,
            FlowDirection::Passive => counters.passive += 1,
        }
        if by_source_port {
            counters.classified_by_source_port += 1;
        }
        if owner == arrival {
            counters.arrived_on_owner += 1;
            Delivery::Local
        } else {
            counters.forwarded += 1;
            Delivery::Forward(owner)
        }
    }

    /// The key the NIC must hash with.
    pub fn rss_key(&self) -> &RssKey {
        self.hasher.key()
    }

    /// `roundup_pow2(core_count) - 1`: the bits of our local port that Flow Director filters
    /// must match under [`ActiveSteering::LocalPortLowBits`] (destination port & mask == core
    /// -> that core's queue).
    pub fn low_bits_mask(&self) -> u16 {
        (self.core_count as u16).next_power_of_two() - 1
    }
}

/// Why no local port could be allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortAllocationError {
    /// Every port of this core's share of the range is listened on or in use towards this
    /// remote (TIME_WAIT included).
    Exhausted,
}

/// Hands one core local ports that steer replies back to it, from its own share of the
/// ephemeral range; the shares of different cores are disjoint for any remote port.
pub struct LocalPortAllocator {
    core: CoreId,
    active_steering: ActiveSteering,
    low_bits_mask: u16,
    /// Bit x set: a port XOR whose low seven bits are x steers to this core.
    owned_port_xors: u128,
    ephemeral_ports: EphemeralPortRange,
    /// The next port to try: allocation cycles through the range so a freed port rests (and its
    /// TIME_WAIT runs out) before it comes round again.
    cursor: u16,
    /// Allocations refused with [`PortAllocationError::Exhausted`].
    exhausted: u64,
}

impl LocalPortAllocator {
    /// `start` picks where the cycle begins; pass a random number so that the ports of a fresh
    /// boot are not predictable (RFC 6056, "Recommendations for Transport-Protocol Port
    /// Randomization").
    pub fn new(rfd: &ReceiveFlowDeliver, core: CoreId, start: u16) -> Result<Self, RfdConfigError> {
        if core_index(core) >= rfd.core_count {
            return Err(RfdConfigError::NoSuchCore { core });
        }
        let owned_port_xors = (0..128u16)
            .filter(|&port_xor| {
                rfd.indirection_table.queue_for_ports(port_xor, 0) == queue_of_core(core)
            })
            .fold(0u128, |bits, port_xor| bits | 1 << port_xor);
        let range = rfd.ephemeral_ports;
        let offset = usize::from(start) % range.len();
        Ok(LocalPortAllocator {
            core,
            active_steering: rfd.active_steering,
            low_bits_mask: rfd.low_bits_mask(),
            owned_port_xors,
            ephemeral_ports: range,
            cursor: range.first + offset as u16,
            exhausted: 0,
        })
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    /// How many allocations failed because this core's share of the range was used up.
    pub fn exhausted_count(&self) -> u64 {
        self.exhausted
    }

    /// Moves where the next allocation starts: a UDP socket asks from a random point each
    /// time, so that its port cannot be predicted from the last one (RFC 6056 algorithm 1).
    pub fn seek(&mut self, start: u16) {
        let offset = usize::from(start) % self.ephemeral_ports.len();
        self.cursor = self.ephemeral_ports.first + offset as u16;
    }

    /// True if replies from `remote_port` to `local_port` steer to this allocator's core.
    pub fn owns(&self, local_port: u16, remote_port: u16) -> bool {
        match self.active_steering {
            ActiveSteering::LocalPortLowBits => local_port & self.low_bits_mask == self.core.0,
            ActiveSteering::PortXor => {
                let port_xor = (local_port ^ remote_port) & 0x7f;
                self.owned_port_xors >> port_xor & 1 == 1
            }
        }
    }

    /// The next free port of this core for a connection from `local_address` to `remote`.
    ///
    /// Skips ports that are listened on (a reply to one would be classified passive) and ports
    /// whose 4-tuple is in use or in TIME_WAIT. Tries each port of the range at most once.
    pub fn allocate(
        &mut self,
        local_address: Ipv4Addr,
        remote: SocketAddrV4,
        listen: &impl ListenPorts,
        in_use: &impl FourTupleInUse,
    ) -> Result<u16, PortAllocationError> {
        for _ in 0..self.ephemeral_ports.len() {
            let port = self.cursor;
            self.cursor = self.ephemeral_ports.after(port);
            if !self.owns(port, remote.port()) || listen.is_listening(port) {
                continue;
            }
            let tuple = FourTuple {
                local: SocketAddrV4::new(local_address, port),
                remote,
            };
            if !in_use.is_in_use(&tuple) {
                return Ok(port);
            }
        }
        self.exhausted += 1;
        Err(PortAllocationError::Exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::rss::port_only_hash_index;
    use alloc::collections::BTreeSet;
    use alloc::vec;
    use core::cell::RefCell;
    use proptest::prelude::*;

    const PROXY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const BACKEND: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 7), 8080);

    fn no_listeners(_: u16) -> bool {
        false
    }

    fn listens_on_80(port: u16) -> bool {
        port == 80
    }

    fn nothing_in_use(_: &FourTuple) -> bool {
        false
    }

    fn low_bits(core_count: usize) -> RfdConfig {
        RfdConfig {
            core_count,
            active_steering: ActiveSteering::LocalPortLowBits,
            rss_key: RssKey::MICROSOFT_VERIFICATION,
            indirection_table: IndirectionTable::round_robin(core_count).unwrap(),
            ephemeral_ports: EphemeralPortRange::default(),
            backend_ports: vec![8080],
        }
    }

    fn port_xor(core_count: usize) -> RfdConfig {
        RfdConfig {
            backend_ports: vec![8080],
            ..RfdConfig::port_xor(core_count).unwrap()
        }
    }

    /// Port-XOR steering with the table the image programs into the NIC (`boot/src/network.rs`).
    fn port_xor_spreading_even_ports(core_count: usize) -> RfdConfig {
        RfdConfig {
            indirection_table: IndirectionTable::port_xor_spreading_even_ports(core_count).unwrap(),
            ..port_xor(core_count)
        }
    }

    fn reply(from: SocketAddrV4, local_port: u16) -> InboundSegment {
        InboundSegment::new(from, SocketAddrV4::new(PROXY, local_port))
    }

    #[test]
    fn configuration_errors_are_reported() {
        let check = |config: RfdConfig| ReceiveFlowDeliver::new(config).err();
        assert_eq!(
            check(RfdConfig {
                core_count: 0,
                ..low_bits(1)
            }),
            Some(RfdConfigError::CoreCountOutOfRange)
        );
        assert_eq!(
            check(RfdConfig {
                core_count: 2,
                ..low_bits(4)
            }),
            Some(RfdConfigError::TableNamesMissingCore {
                queue: QueueId::new(3)
            })
        );
        assert_eq!(
            check(RfdConfig {
                rss_key: RssKey::MICROSOFT_VERIFICATION,
                ..port_xor(4)
            }),
            Some(RfdConfigError::KeyDoesNotSteerByPortXor)
        );
        assert_eq!(
            check(RfdConfig {
                core_count: 5,
                ..port_xor(4)
            }),
            Some(RfdConfigError::CoreMissingFromTable { core: CoreId(4) })
        );
        assert_eq!(
            EphemeralPortRange::new(1000, 2000),
            Err(RfdConfigError::EphemeralRangeBelow1024)
        );
        assert_eq!(
            EphemeralPortRange::new(40000, 40126),
            Err(RfdConfigError::EphemeralRangeTooSmall)
        );
        assert_eq!(
            EphemeralPortRange::new(40000, 30000),
            Err(RfdConfigError::EphemeralRangeTooSmall)
        );
        let rfd = ReceiveFlowDeliver::new(low_bits(4)).unwrap();
        assert_eq!(
            LocalPortAllocator::new(&rfd, CoreId(4), 0).err(),
            Some(RfdConfigError::NoSuchCore { core: CoreId(4) })
        );
    }

    #[test]
    fn classifier_follows_the_paper() {
        let rfd = ReceiveFlowDeliver::new(low_bits(4)).unwrap();
        // A backend on a configured service port replying to an ephemeral port.
        assert_eq!(
            rfd.classify(8080, 40000, &listens_on_80),
            FlowDirection::Active
        );
        // A backend on a port below 1024.
        assert_eq!(
            rfd.classify(443, 40000, &no_listeners),
            FlowDirection::Active
        );
        // A client to our listener.
        assert_eq!(
            rfd.classify(51234, 80, &listens_on_80),
            FlowDirection::Passive
        );
        // A client with a privileged source port is still passive: 80 is not ephemeral.
        assert_eq!(rfd.classify(22, 80, &listens_on_80), FlowDirection::Passive);
        // A packet to a closed port outside the ephemeral range: passive, answered by RST.
        assert_eq!(
            rfd.classify(51234, 5000, &no_listeners),
            FlowDirection::Passive
        );
        // A backend on an unknown port: the listen tables decide.
        assert_eq!(
            rfd.classify(9999, 40000, &no_listeners),
            FlowDirection::Active
        );
        let listens_on_40000 = |port: u16| port == 40000;
        assert_eq!(
            rfd.classify(9999, 40000, &listens_on_40000),
            FlowDirection::Passive
        );
    }

    #[test]
    fn low_bits_owner_is_the_port_residue() {
        let rfd = ReceiveFlowDeliver::new(low_bits(4)).unwrap();
        for port in [40000u16, 40001, 40002, 40003, 40004] {
            assert_eq!(
                rfd.owner_core(&reply(BACKEND, port), &no_listeners),
                CoreId(port & 3)
            );
        }
        assert_eq!(rfd.low_bits_mask(), 3);
        // Three cores: mask 3; residue 3 is never allocated, but still has a fixed owner.
        let rfd = ReceiveFlowDeliver::new(low_bits(3)).unwrap();
        assert_eq!(rfd.low_bits_mask(), 3);
        assert_eq!(rfd.rss_key(), &RssKey::MICROSOFT_VERIFICATION);
        let rfd_five = ReceiveFlowDeliver::new(low_bits(5)).unwrap();
        assert_eq!(rfd_five.low_bits_mask(), 7);
        assert_eq!(rfd.active_owner(40002, 8080), CoreId(2));
        assert_eq!(rfd.active_owner(40003, 8080), CoreId(0));
    }

    #[test]
    fn passive_owner_is_the_rss_queue() {
        // Microsoft vector 1 under the standard key hashes to 0x51ccc178: index 0x78 = 120,
        // and round robin over 4 queues names queue 0.
        let mut config = low_bits(4);
        config.backend_ports.clear();
        let rfd = ReceiveFlowDeliver::new(config).unwrap();
        let segment = InboundSegment::new(
            SocketAddrV4::new(Ipv4Addr::new(66, 9, 149, 187), 2794),
            SocketAddrV4::new(Ipv4Addr::new(161, 142, 100, 80), 1766),
        );
        assert_eq!(rfd.owner_core(&segment, &no_listeners), CoreId(0));
        // Vector 2 gives 0xc626b0ea: index 0x6a = 106, queue 2.
        let segment = InboundSegment::new(
            SocketAddrV4::new(Ipv4Addr::new(199, 92, 111, 2), 14230),
            SocketAddrV4::new(Ipv4Addr::new(65, 69, 140, 83), 4739),
        );
        assert_eq!(rfd.owner_core(&segment, &no_listeners), CoreId(2));
        // A hash reported by the NIC is used as is.
        let reported = InboundSegment {
            reported_hash: Some(0x0000_0003),
            ..segment
        };
        assert_eq!(rfd.owner_core(&reported, &no_listeners), CoreId(3));
    }

    #[test]
    fn deliver_counts_local_and_forwarded() {
        let rfd = ReceiveFlowDeliver::new(low_bits(4)).unwrap();
        let mut counters = RfdCounters::default();
        let segment = reply(BACKEND, 40001);
        assert_eq!(
            rfd.deliver(CoreId(1), &segment, &no_listeners, &mut counters),
            Delivery::Local
        );
        assert_eq!(
            rfd.deliver(CoreId(3), &segment, &no_listeners, &mut counters),
            Delivery::Forward(CoreId(1))
        );
        let unknown_backend = reply(SocketAddrV4::new(*BACKEND.ip(), 9999), 40002);
        rfd.deliver(CoreId(2), &unknown_backend, &no_listeners, &mut counters);
        assert_eq!(
            counters,
            RfdCounters {
                arrived_on_owner: 2,
                forwarded: 1,
                active: 3,
                passive: 0,
                classified_by_source_port: 2,
            }
        );
    }

    #[test]
    fn allocator_cycles_skips_busy_and_listened_ports_and_reports_exhaustion() {
        let mut config = low_bits(4);
        config.ephemeral_ports = EphemeralPortRange::new(40000, 40127).unwrap();
        let rfd = ReceiveFlowDeliver::new(config).unwrap();
        let mut allocator = LocalPortAllocator::new(&rfd, CoreId(2), 0).unwrap();
        let busy = RefCell::new(BTreeSet::new());
        let in_use = |tuple: &FourTuple| busy.borrow().contains(tuple);
        let listens_on_40006 = |port: u16| port == 40006;
        let mut taken = Vec::new();
        loop {
            match allocator.allocate(PROXY, BACKEND, &listens_on_40006, &in_use) {
                Ok(port) => {
                    busy.borrow_mut().insert(FourTuple {
                        local: SocketAddrV4::new(PROXY, port),
                        remote: BACKEND,
                    });
                    taken.push(port);
                }
                Err(error) => {
                    assert_eq!(error, PortAllocationError::Exhausted);
                    assert_eq!(allocator.exhausted_count(), 1);
                    break;
                }
            }
        }
        // Core 2 owns 40002, 40006, ..., 40126; 40006 is listened on and must be skipped.
        let expected: Vec<u16> = (40000..=40127)
            .filter(|port| port & 3 == 2 && *port != 40006)
            .collect();
        assert_eq!(taken, expected);
        // Freeing a port makes it available again, and the cursor finds it.
        busy.borrow_mut().remove(&FourTuple {
            local: SocketAddrV4::new(PROXY, 40050),
            remote: BACKEND,
        });
        assert_eq!(
            allocator.allocate(PROXY, BACKEND, &listens_on_40006, &in_use),
            Ok(40050)
        );
        // The same local port is free towards another remote.
        let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 8), 8080);
        assert!(
            allocator
                .allocate(PROXY, other, &listens_on_40006, &in_use)
                .is_ok()
        );
    }

    #[test]
    fn allocator_start_offsets_the_cycle() {
        let rfd = ReceiveFlowDeliver::new(low_bits(2)).unwrap();
        let mut allocator = LocalPortAllocator::new(&rfd, CoreId(1), 1001).unwrap();
        let first = allocator
            .allocate(PROXY, BACKEND, &no_listeners, &nothing_in_use)
            .unwrap();
        assert_eq!(first, 32768 + 1001);
        let second = allocator
            .allocate(PROXY, BACKEND, &no_listeners, &nothing_in_use)
            .unwrap();
        assert_eq!(second, first + 2);
    }

    #[test]
    fn core_shares_are_disjoint_and_cover_the_range() {
        for config in [low_bits(4), port_xor(3), port_xor(8), low_bits(3)] {
            let rfd = ReceiveFlowDeliver::new(config).unwrap();
            let allocators: Vec<LocalPortAllocator> = (0..rfd.core_count() as u16)
                .map(|core| LocalPortAllocator::new(&rfd, CoreId(core), 0).unwrap())
                .collect();
            for remote_port in [80u16, 443, 8080, 12345] {
                let mut owned_per_core = vec![0usize; allocators.len()];
                for port in 32768..=60999u16 {
                    let owners: Vec<&LocalPortAllocator> = allocators
                        .iter()
                        .filter(|allocator| allocator.owns(port, remote_port))
                        .collect();
                    assert!(owners.len() <= 1, "port {port} owned twice");
                    if let Some(owner) = owners.first() {
                        owned_per_core[core_index(owner.core())] += 1;
                        assert_eq!(rfd.active_owner(port, remote_port), owner.core());
                    } else {
                        // Only low-bits steering with a core count that is not a power of two
                        // leaves ports unowned.
                        assert_eq!(rfd.active_steering(), ActiveSteering::LocalPortLowBits);
                        assert!(usize::from(port & rfd.low_bits_mask()) >= rfd.core_count());
                    }
                }
                let fewest = *owned_per_core.iter().min().unwrap();
                let most = *owned_per_core.iter().max().unwrap();
                assert!(fewest > 0 && most - fewest <= most / 10 + 1);
            }
        }
    }

    #[test]
    fn port_xor_steering_needs_no_classification() {
        // With the port-only key the passive (RSS) owner and the active owner are one function
        // of the ports, so a misclassified packet still reaches the right core.
        let rfd = ReceiveFlowDeliver::new(port_xor(4)).unwrap();
        for local_port in 32768..33768u16 {
            let segment = reply(BACKEND, local_port);
            assert_eq!(
                rfd.rss_owner(&segment),
                rfd.active_owner(local_port, BACKEND.port())
            );
        }
    }

    fn steering() -> impl Strategy<Value = RfdConfig> {
        (1usize..=16, 0..3).prop_map(|(core_count, steering)| match steering {
            0 => port_xor(core_count),
            1 => port_xor_spreading_even_ports(core_count),
            _ => low_bits(core_count),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A port a core allocates makes every reply on that connection owned by that core,
        /// whatever the addresses, the remote port and the core it arrives on.
        #[test]
        fn replies_to_allocated_ports_come_home(
            config in steering(),
            core_seed: u16,
            start: u16,
            remote_address: u32,
            remote_port in prop_oneof![Just(80u16), Just(443), Just(8080), 1024u16..],
            arrival_seed: u16,
            prior_connections in 0usize..64,
        ) {
            let rfd = ReceiveFlowDeliver::new(config).unwrap();
            let core = CoreId(core_seed % rfd.core_count() as u16);
            let arrival = CoreId(arrival_seed % rfd.core_count() as u16);
            let remote = SocketAddrV4::new(Ipv4Addr::from(remote_address), remote_port);
            let mut allocator = LocalPortAllocator::new(&rfd, core, start).unwrap();
            for _ in 0..prior_connections {
                allocator.allocate(PROXY, remote, &listens_on_80, &nothing_in_use).unwrap();
            }
            let port = allocator.allocate(PROXY, remote, &listens_on_80, &nothing_in_use).unwrap();
            prop_assert!(rfd.ephemeral_ports().contains(port));
            let segment = reply(remote, port);
            prop_assert_eq!(rfd.classify(remote_port, port, &listens_on_80), FlowDirection::Active);
            prop_assert_eq!(rfd.owner_core(&segment, &listens_on_80), core);
            let mut counters = RfdCounters::default();
            let delivery = rfd.deliver(arrival, &segment, &listens_on_80, &mut counters);
            if arrival == core {
                prop_assert_eq!(delivery, Delivery::Local);
            } else {
                prop_assert_eq!(delivery, Delivery::Forward(core));
            }
        }

        /// A passive connection's packets are owned by the core of their RSS queue, which is
        /// the same from every arrival core.
        #[test]
        fn passive_owner_is_the_queue_of_the_hash(
            config in steering(),
            client_address: u32,
            client_port in 1024u16..,
        ) {
            let rfd = ReceiveFlowDeliver::new(config.clone()).unwrap();
            let segment = InboundSegment::new(
                SocketAddrV4::new(Ipv4Addr::from(client_address), client_port),
                SocketAddrV4::new(PROXY, 80),
            );
            let hash = crate::net::rss::toeplitz_hash(
                &config.rss_key,
                &crate::net::rss::ipv4_tcp_input(
                    Ipv4Addr::from(client_address), PROXY, client_port, 80,
                ),
            );
            let expected = core_of_queue(config.indirection_table.queue_for_hash(hash));
            prop_assert_eq!(rfd.classify(client_port, 80, &listens_on_80), FlowDirection::Passive);
            prop_assert_eq!(rfd.owner_core(&segment, &listens_on_80), expected);
            // The plain port-XOR table's owner has a closed form.
            if config.active_steering == ActiveSteering::PortXor
                && config.indirection_table == IndirectionTable::port_xor(rfd.core_count()).unwrap()
            {
                prop_assert_eq!(
                    core_index(expected),
                    usize::from((client_port ^ 80) & 0x7f) % rfd.core_count()
                );
            }
        }
    }

    #[test]
    fn port_only_index_matches_owner_formula() {
        let rfd = ReceiveFlowDeliver::new(port_xor(4)).unwrap();
        let owner = rfd.active_owner(40005, 8080);
        let index = port_only_hash_index(40005, 8080);
        assert_eq!(
            queue_of_core(owner),
            rfd.indirection_table().queue_at(index)
        );
        assert_eq!(core_index(owner), usize::from((40005u16 ^ 8080) & 3));
    }
}
