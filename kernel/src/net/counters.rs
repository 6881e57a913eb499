//! Per-core counters of the lower layers: frames in and out, and every dropped frame by its cause.

use core::fmt;

/// Why the interface dropped a frame or a packet instead of delivering or sending it.
///
/// Each variant is one cause; [`Counters`] keeps one counter per variant under the same name,
/// so that a counter that moves points straight at the check that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet II header (14 bytes).
    EthernetTooShort,
    /// Destination MAC is neither ours nor broadcast.
    EthernetNotForUs,
    /// Source MAC is broadcast or multicast, which no sender may use (IEEE 802.3 clause 3.2.3).
    EthernetBadSource,
    /// An EtherType we do not speak (IPv6, VLAN tags, LLDP, ...).
    EthernetUnknownType,
    /// An ARP packet too short, or not Ethernet/IPv4 (RFC 826).
    ArpMalformed,
    /// An ARP operation other than request or reply.
    ArpUnknownOperation,
    /// An ARP sender address that is broadcast, multicast, zero or our own.
    ArpBadSender,
    /// An ARP request for an address that is not ours.
    ArpNotForUs,
    /// An ARP packet that gave a known neighbour a new MAC, not believed until a second
    /// packet claims the same (a corrupted frame must not redirect the neighbour's traffic).
    ArpUnconfirmedChange,
    /// An IPv4 header that is shorter than its fields, not version 4, or with inconsistent lengths.
    Ipv4BadHeader,
    /// An IPv4 header whose checksum does not verify (RFC 791 section 3.1).
    Ipv4BadChecksum,
    /// An IPv4 fragment: this stack does not reassemble (MF set or a non-zero offset).
    Ipv4Fragment,
    /// An IPv4 destination that is not our address.
    Ipv4NotForUs,
    /// An IPv4 source that no host may use: broadcast, multicast, or our own (RFC 1122 3.2.1.3).
    Ipv4BadSource,
    /// An IPv4 protocol other than ICMP, UDP and TCP.
    Ipv4UnknownProtocol,
    /// An ICMP message shorter than its header or whose inner header is cut short.
    IcmpMalformed,
    /// An ICMP message whose checksum does not verify (RFC 792).
    IcmpBadChecksum,
    /// An ICMP message type we do not act on (echo replies, redirects, timestamps, ...).
    IcmpUnsupported,
    /// An ICMP error about a packet that we did not send (inner source is not our address).
    IcmpErrorNotOurs,
    /// An echo request to a broadcast address (RFC 1122 3.2.2.6 lets a host ignore it, which
    /// keeps us out of smurf amplification).
    IcmpEchoToBroadcast,
    /// An echo request whose reply would not fit in our MTU (it came in a jumbo frame).
    IcmpEchoTooLarge,
    /// A TCP segment whose checksum over the pseudo-header does not verify (RFC 9293 3.1).
    TcpBadChecksum,
    /// A TCP segment sent to a broadcast address (RFC 9293 3.10.7.2: TCP is unicast only).
    TcpNotUnicast,
    /// A UDP datagram shorter than its header, or whose length field claims more bytes than
    /// its IPv4 packet holds (RFC 768).
    UdpTruncated,
    /// A UDP datagram whose non-zero checksum does not verify over the pseudo-header (RFC 768).
    UdpBadChecksum,
    /// A UDP datagram to a port no socket of the core is bound to (answered with ICMP port
    /// unreachable when unicast and the rate limit allows).
    UdpNoSocket,
    /// A UDP datagram whose socket's receive queue was full.
    UdpQueueFull,
    /// An ICMP error about a UDP datagram of ours that no socket connected to its peer takes
    /// (closed since, or unconnected: Linux reports errors to connected sockets only).
    IcmpErrorNoSocket,
    /// An ICMP error (port unreachable) not sent because the core's token bucket was empty
    /// (Linux's `icmp_msgs_per_sec`).
    IcmpRateLimited,
    /// A received ARP request or echo request found the queue of replies full.
    ControlQueueFull,
    /// An outgoing packet waited for ARP resolution and the resolution timed out.
    ArpResolutionFailed,
    /// An outgoing packet found the queue of packets waiting for ARP full.
    ArpQueueFull,
    /// An outgoing packet larger than the MTU.
    TransmitTooLarge,
    /// An outgoing packet with a source address that is not ours.
    TransmitBadSource,
    /// An outgoing packet to an address off our link while we have no gateway.
    TransmitNoRoute,
    /// The driver had no free transmit buffer for a frame.
    TransmitQueueFull,
}

impl DropReason {
    /// Every reason, in the order of [`Counters::drops`].
    pub const ALL: [DropReason; 36] = [
        DropReason::EthernetTooShort,
        DropReason::EthernetNotForUs,
        DropReason::EthernetBadSource,
        DropReason::EthernetUnknownType,
        DropReason::ArpMalformed,
        DropReason::ArpUnknownOperation,
        DropReason::ArpBadSender,
        DropReason::ArpNotForUs,
        DropReason::ArpUnconfirmedChange,
        DropReason::Ipv4BadHeader,
        DropReason::Ipv4BadChecksum,
        DropReason::Ipv4Fragment,
        DropReason::Ipv4NotForUs,
        DropReason::Ipv4BadSource,
        DropReason::Ipv4UnknownProtocol,
        DropReason::IcmpMalformed,
        DropReason::IcmpBadChecksum,
        DropReason::IcmpUnsupported,
        DropReason::IcmpErrorNotOurs,
        DropReason::IcmpEchoToBroadcast,
        DropReason::IcmpEchoTooLarge,
        DropReason::TcpBadChecksum,
        DropReason::TcpNotUnicast,
        DropReason::UdpTruncated,
        DropReason::UdpBadChecksum,
        DropReason::UdpNoSocket,
        DropReason::UdpQueueFull,
        DropReason::IcmpErrorNoSocket,
        DropReason::IcmpRateLimited,
        DropReason::ControlQueueFull,
        DropReason::ArpResolutionFailed,
        DropReason::ArpQueueFull,
        DropReason::TransmitTooLarge,
        DropReason::TransmitBadSource,
        DropReason::TransmitNoRoute,
        DropReason::TransmitQueueFull,
    ];

    /// The counter's name, in snake case, as introspection shows it.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::EthernetTooShort => "ethernet_too_short",
            DropReason::EthernetNotForUs => "ethernet_not_for_us",
            DropReason::EthernetBadSource => "ethernet_bad_source",
            DropReason::EthernetUnknownType => "ethernet_unknown_type",
            DropReason::ArpMalformed => "arp_malformed",
            DropReason::ArpUnknownOperation => "arp_unknown_operation",
            DropReason::ArpBadSender => "arp_bad_sender",
            DropReason::ArpNotForUs => "arp_not_for_us",
            DropReason::ArpUnconfirmedChange => "arp_unconfirmed_change",
            DropReason::Ipv4BadHeader => "ipv4_bad_header",
            DropReason::Ipv4BadChecksum => "ipv4_bad_checksum",
            DropReason::Ipv4Fragment => "ipv4_fragment",
            DropReason::Ipv4NotForUs => "ipv4_not_for_us",
            DropReason::Ipv4BadSource => "ipv4_bad_source",
            DropReason::Ipv4UnknownProtocol => "ipv4_unknown_protocol",
            DropReason::IcmpMalformed => "icmp_malformed",
            DropReason::IcmpBadChecksum => "icmp_bad_checksum",
            DropReason::IcmpUnsupported => "icmp_unsupported",
            DropReason::IcmpErrorNotOurs => "icmp_error_not_ours",
            DropReason::IcmpEchoToBroadcast => "icmp_echo_to_broadcast",
            DropReason::IcmpEchoTooLarge => "icmp_echo_too_large",
            DropReason::TcpBadChecksum => "tcp_bad_checksum",
            DropReason::TcpNotUnicast => "tcp_not_unicast",
            DropReason::UdpTruncated => "udp_truncated",
            DropReason::UdpBadChecksum => "udp_bad_checksum",
            DropReason::UdpNoSocket => "udp_no_socket",
            DropReason::UdpQueueFull => "udp_queue_full",
            DropReason::IcmpErrorNoSocket => "icmp_error_no_socket",
            DropReason::IcmpRateLimited => "icmp_rate_limited",
            DropReason::ControlQueueFull => "control_queue_full",
            DropReason::ArpResolutionFailed => "arp_resolution_failed",
            DropReason::ArpQueueFull => "arp_queue_full",
            DropReason::TransmitTooLarge => "transmit_too_large",
            DropReason::TransmitBadSource => "transmit_bad_source",
            DropReason::TransmitNoRoute => "transmit_no_route",
            DropReason::TransmitQueueFull => "transmit_queue_full",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Counters of one core's interface. Plain integers: only the owning core writes them.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to [`receive`](super::interface::Interface::receive).
    pub frames_received: u64,
    /// Received frames that were used: delivered, answered or learnt from.
    pub frames_accepted: u64,
    /// Received frames that were dropped (each also counted under its reason).
    pub frames_dropped: u64,
    /// ARP frames another core received and this core learnt from (`observe_arp`).
    pub arp_frames_observed: u64,
    /// Frames handed to the driver.
    pub frames_transmitted: u64,
    /// IPv4 packets delivered to TCP.
    pub tcp_segments_delivered: u64,
    /// ICMP errors delivered to TCP or UDP.
    pub icmp_errors_delivered: u64,
    /// UDP datagrams queued on a socket.
    pub udp_datagrams_delivered: u64,
    /// ICMP echo requests answered.
    pub echo_replies_sent: u64,
    /// ICMP port unreachable messages sent for datagrams to closed UDP ports.
    pub port_unreachables_sent: u64,
    /// ARP requests sent (including gratuitous ARP and retries).
    pub arp_requests_sent: u64,
    /// ARP replies sent.
    pub arp_replies_sent: u64,
    drops: [u64; DropReason::ALL.len()],
}

// By hand: arrays longer than 32 have no derived `Default`.
impl Default for Counters {
    fn default() -> Counters {
        Counters {
            frames_received: 0,
            frames_accepted: 0,
            frames_dropped: 0,
            arp_frames_observed: 0,
            frames_transmitted: 0,
            tcp_segments_delivered: 0,
            icmp_errors_delivered: 0,
            udp_datagrams_delivered: 0,
            echo_replies_sent: 0,
            port_unreachables_sent: 0,
            arp_requests_sent: 0,
            arp_replies_sent: 0,
            drops: [0; DropReason::ALL.len()],
        }
    }
}

/// Shows the drop counters by name, and only those that moved.
impl fmt::Debug for Counters {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct NonZeroDrops<'a>(&'a Counters);
        impl fmt::Debug for NonZeroDrops<'_> {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter
                    .debug_map()
                    .entries(
                        self.0
                            .drops_by_reason()
                            .filter(|(_, count)| *count > 0)
                            .map(|(reason, count)| (reason.name(), count)),
                    )
                    .finish()
            }
        }
        formatter
            .debug_struct("Counters")
            .field("frames_received", &self.frames_received)
            .field("frames_accepted", &self.frames_accepted)
            .field("frames_dropped", &self.frames_dropped)
            .field("arp_frames_observed", &self.arp_frames_observed)
            .field("frames_transmitted", &self.frames_transmitted)
            .field("tcp_segments_delivered", &self.tcp_segments_delivered)
            .field("icmp_errors_delivered", &self.icmp_errors_delivered)
            .field("udp_datagrams_delivered", &self.udp_datagrams_delivered)
            .field("echo_replies_sent", &self.echo_replies_sent)
            .field("port_unreachables_sent", &self.port_unreachables_sent)
            .field("arp_requests_sent", &self.arp_requests_sent)
            .field("arp_replies_sent", &self.arp_replies_sent)
            .field("drops", &NonZeroDrops(self))
            .finish()
    }
}

impl Counters {
    /// Count one frame or packet dropped for `reason`.
    pub fn count_drop(&mut self, reason: DropReason) {
        let counter = &mut self.drops[reason.index()];
        *counter = counter.saturating_add(1);
    }

    /// Frames or packets dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All drops, whatever their reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Each reason with its count, in the order of [`DropReason::ALL`].
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|reason| (*reason, self.drops(*reason)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        for (position, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), position, "{reason} is out of order in ALL");
        }
        let mut counters = Counters::default();
        counters.count_drop(DropReason::Ipv4Fragment);
        counters.count_drop(DropReason::Ipv4Fragment);
        counters.count_drop(DropReason::ArpQueueFull);
        assert_eq!(counters.drops(DropReason::Ipv4Fragment), 2);
        assert_eq!(counters.drops(DropReason::ArpQueueFull), 1);
        assert_eq!(counters.drops(DropReason::Ipv4BadChecksum), 0);
        assert_eq!(counters.total_drops(), 3);
        let names: alloc::vec::Vec<&str> = counters
            .drops_by_reason()
            .filter(|(_, count)| *count > 0)
            .map(|(reason, _)| reason.name())
            .collect();
        assert_eq!(names, ["ipv4_fragment", "arp_queue_full"]);
        let shown = alloc::format!("{counters:?}");
        assert!(
            shown.contains(r#"drops: {"ipv4_fragment": 2, "arp_queue_full": 1}"#),
            "{shown}"
        );
    }
}
