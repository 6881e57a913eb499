//! Per-core counters of the partition: where each frame was handled, how it got there, and what was lost on the way.

use core::ops::AddAssign;

/// What one core's dispatcher did with the frames it saw. Plain numbers, owned by the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionCounters {
    /// Frames taken from this core's NIC queue.
    pub frames_from_nic: u64,
    /// TCP segments that arrived from the NIC on the core that owns them.
    pub arrived_on_owner: u64,
    /// TCP segments (and ICMP errors) this core handed to their owner over a ring (software RFD).
    pub forwarded_by_rfd: u64,
    /// SYNs owned by this core, whose port it does not serve, sent to a serving core (the
    /// global listener).
    pub global_listener_fallbacks: u64,
    /// Later segments of such flows sent the same way.
    pub global_listener_segments: u64,
    /// Frames other cores handed to this one.
    pub received_from_rings: u64,
    /// Frames lost because the ring to their destination was full.
    pub ring_drops: u64,
    /// Copies of ARP frames sent to the other cores.
    pub arp_copies_sent: u64,
    /// TCP segments this core's stack processed.
    pub segments_processed: u64,
    /// Passive segments that no core serves (the local layer answers them, normally with a RST).
    pub no_serving_core: u64,
    /// ICMP errors about a connection the global listener placed on another core, sent on
    /// to that core along the flow's route.
    pub icmp_errors_routed: u64,
    /// UDP datagrams (and ICMP errors about ours) for a port whose socket is on another core,
    /// handed to that core.
    pub udp_forwarded: u64,
}

impl AddAssign for PartitionCounters {
    fn add_assign(&mut self, other: PartitionCounters) {
        self.frames_from_nic += other.frames_from_nic;
        self.arrived_on_owner += other.arrived_on_owner;
        self.forwarded_by_rfd += other.forwarded_by_rfd;
        self.global_listener_fallbacks += other.global_listener_fallbacks;
        self.global_listener_segments += other.global_listener_segments;
        self.received_from_rings += other.received_from_rings;
        self.ring_drops += other.ring_drops;
        self.arp_copies_sent += other.arp_copies_sent;
        self.segments_processed += other.segments_processed;
        self.no_serving_core += other.no_serving_core;
        self.icmp_errors_routed += other.icmp_errors_routed;
        self.udp_forwarded += other.udp_forwarded;
    }
}
