//! Per-core counters of the run loop, published by each core for anyone to read (the
//! appliance serves them at `/stats` and `/metrics`): traffic on every core, how much work
//! software Receive Flow Deliver had to do, the TCP layer's counters and the NIC queue's.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{Exposition, Metric, MetricKind, MetricSource};
use crate::net::counters::DropReason as InterfaceDropReason;
use crate::net::tcp::DropReason;
use crate::sync::CachePadded;

/// Generates, from one list, the atomic block, its plain snapshot, the metric definitions,
/// the `/stats` fields and the Prometheus families, so that none of them can disagree.
///
/// `scalars` are one number per core; `labelled` are an array per core, one series per
/// element, the element named by the label's value (and `<field>_<value>` on `/stats`).
macro_rules! counters {
    (
        scalars {
            $( $field:ident: $kind:ident $name:ident $help:literal, )*
        }
        labelled {
            $( $array:ident[$length:expr] by $label:literal $label_value:path:
               $array_kind:ident $array_name:ident $array_help:literal, )*
        }
    ) => {
        /// One core's published counters; only that core writes them.
        pub struct CoreStatistics {
            $( pub $field: AtomicU64, )*
            $( pub $array: [AtomicU64; $length], )*
        }

        impl Default for CoreStatistics {
            fn default() -> CoreStatistics {
                CoreStatistics {
                    $( $field: AtomicU64::new(0), )*
                    $( $array: core::array::from_fn(|_| AtomicU64::new(0)), )*
                }
            }
        }

        /// A plain copy of one core's counters.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct CoreSnapshot {
            $( #[doc = $help] pub $field: u64, )*
            $( #[doc = $array_help] pub $array: [u64; $length], )*
        }

        impl Default for CoreSnapshot {
            fn default() -> CoreSnapshot {
                CoreSnapshot {
                    $( $field: 0, )*
                    $( $array: [0; $length], )*
                }
            }
        }

        /// The definition of every metric in a [`CoreSnapshot`], in `/stats` order.
        pub const CORE_METRICS: &[Metric] = &[
            $( Metric::new(stringify!($name), stringify!($field), MetricKind::$kind, $help), )*
            $( Metric::new(stringify!($array_name), stringify!($array),
                           MetricKind::$array_kind, $array_help).with_labels(&[$label]), )*
        ];

        impl CoreStatistics {
            /// Publishes `snapshot` (relaxed stores: readers want recent numbers, not a
            /// consistent cut across counters).
            pub fn publish(&self, snapshot: &CoreSnapshot) {
                $( self.$field.store(snapshot.$field, Ordering::Relaxed); )*
                $(
                    for (published, value) in self.$array.iter().zip(snapshot.$array) {
                        published.store(value, Ordering::Relaxed);
                    }
                )*
            }

            pub fn snapshot(&self) -> CoreSnapshot {
                CoreSnapshot {
                    $( $field: self.$field.load(Ordering::Relaxed), )*
                    $( $array: core::array::from_fn(|index| {
                        self.$array[index].load(Ordering::Relaxed)
                    }), )*
                }
            }
        }

        impl CoreSnapshot {
            /// `name=value` pairs separated by spaces.
            pub fn write_fields(&self, out: &mut dyn Write) -> fmt::Result {
                let mut separator = "";
                $(
                    write!(out, "{separator}{}={}", stringify!($field), self.$field)?;
                    separator = " ";
                )*
                $(
                    for (index, value) in self.$array.iter().enumerate() {
                        write!(out, "{separator}{}_{}={}", stringify!($array),
                               $label_value(index), value)?;
                        separator = " ";
                    }
                )*
                let _ = separator;
                Ok(())
            }

            /// A snapshot whose every value `value(stats_name, label_value)` chose (tests
            /// give each a different number to see each land in its own series).
            #[cfg(test)]
            pub fn from_values(
                value: &mut impl FnMut(&'static str, Option<&'static str>) -> u64,
            ) -> CoreSnapshot {
                CoreSnapshot {
                    $( $field: value(stringify!($field), None), )*
                    $( $array: core::array::from_fn(|index| {
                        value(stringify!($array), Some($label_value(index)))
                    }), )*
                }
            }

            /// Adds `other` field by field (for the total line).
            pub fn add(&mut self, other: &CoreSnapshot) {
                $( self.$field = self.$field.wrapping_add(other.$field); )*
                $(
                    for (sum, value) in self.$array.iter_mut().zip(other.$array) {
                        *sum = sum.wrapping_add(value);
                    }
                )*
            }
        }

        /// Every family: a series per core (`core="<i>"`) and the total (`core="total"`).
        fn write_families(
            snapshots: &[CoreSnapshot],
            total: &CoreSnapshot,
            out: &mut Exposition<'_>,
        ) -> fmt::Result {
            let mut definitions = CORE_METRICS.iter();
            $(
                let metric = definitions.next().ok_or(fmt::Error)?;
                out.family(metric)?;
                for (core, snapshot) in snapshots.iter().enumerate() {
                    out.sample(metric, &[("core", &core)], snapshot.$field)?;
                }
                out.sample(metric, &[("core", &"total")], total.$field)?;
            )*
            $(
                let metric = definitions.next().ok_or(fmt::Error)?;
                out.family(metric)?;
                for index in 0..$length {
                    let value = $label_value(index);
                    for (core, snapshot) in snapshots.iter().enumerate() {
                        out.sample(metric, &[("core", &core), ($label, &value)],
                                   snapshot.$array[index])?;
                    }
                    out.sample(metric, &[("core", &"total"), ($label, &value)],
                               total.$array[index])?;
                }
            )*
            Ok(())
        }
    };
}

/// The name of TCP drop reason `index` (the `reason` label).
fn drop_reason(index: usize) -> &'static str {
    DropReason::ALL
        .get(index)
        .map_or("unknown", |reason| reason.name())
}

/// The name of interface drop reason `index` (the `reason` label).
fn interface_drop_reason(index: usize) -> &'static str {
    InterfaceDropReason::ALL
        .get(index)
        .map_or("unknown", |reason| reason.name())
}

counters! {
    scalars {
        rx_frames: Counter unisock_rx_frames_total
            "Frames taken from this core's receive queue.",
        tx_frames: Counter unisock_tx_frames_total
            "Frames handed to this core's transmit queue.",
        tx_full: Counter unisock_tx_queue_full_total
            "Frames the transmit queue refused (full even after a flush).",
        rfd_local: Counter unisock_rfd_local_segments_total
            "TCP segments that arrived on this core's queue and belong to it.",
        rfd_forwarded: Counter unisock_rfd_forwarded_segments_total
            "TCP segments that arrived here but belong to another core, handed over its ring (Receive Flow Deliver).",
        rfd_received: Counter unisock_rfd_received_frames_total
            "Frames other cores handed to this core over its inbound rings.",
        global_listener_fallbacks: Counter unisock_global_listener_fallbacks_total
            "SYNs for a port this core does not serve, sent to a core that does (global listener).",
        arp_copies_sent: Counter unisock_arp_copies_sent_total
            "Copies of ARP frames sent to the other cores (each core keeps its own ARP cache).",
        ring_full_drops: Counter unisock_ring_full_drops_total
            "Frames dropped because the ring to their owner core was full.",
        frames_accepted: Counter unisock_interface_frames_accepted_total
            "Received frames the interface used: delivered, answered or learnt from.",
        frames_dropped: Counter unisock_interface_frames_dropped_total
            "Received frames the interface dropped (each also counted by reason).",
        tcp_segments_in: Counter unisock_tcp_segments_received_total
            "TCP segments received.",
        tcp_segments_out: Counter unisock_tcp_segments_sent_total
            "TCP segments sent.",
        tcp_retransmits: Counter unisock_tcp_retransmitted_segments_total
            "TCP segments sent again, of every kind (timeouts, fast retransmits, SYN and SYN-ACK retries).",
        tcp_fast_retransmits: Counter unisock_tcp_fast_retransmits_total
            "TCP fast retransmissions (three duplicate ACKs or SACK).",
        tcp_spurious_fast_retransmits: Counter unisock_tcp_spurious_fast_retransmits_total
            "TCP fast retransmissions the timestamps proved spurious, their window reduction undone.",
        tcp_timeouts: Counter unisock_tcp_retransmission_timeouts_total
            "TCP retransmission timer expiries.",
        tcp_passive_opens: Counter unisock_tcp_passive_opens_total
            "TCP connections accepted by a listener.",
        tcp_active_opens: Counter unisock_tcp_active_opens_total
            "TCP connections opened by connect.",
        tcp_resets_sent: Counter unisock_tcp_resets_sent_total
            "TCP RSTs sent.",
        tcp_acks_rate_limited: Counter unisock_tcp_acks_rate_limited_total
            "Challenge and duplicate ACKs not sent because a rate limit bit.",
        tcp_resets_rate_limited: Counter unisock_tcp_resets_rate_limited_total
            "RSTs to unknown peers not sent because the per-second limit was reached.",
        tcp_output_queue_drops: Counter unisock_tcp_output_queue_drops_total
            "TCP segments dropped from a full output queue.",
        tcp_persist_timeouts: Counter unisock_tcp_persist_timeouts_total
            "TCP connections reset after their zero-window probes went unanswered.",
        tcp_orphan_persist_limits: Counter unisock_tcp_orphan_persist_limits_total
            "TCP orphans reset after their time limit holding data the peer did not take, however it answered.",
        tcp_orphans_reaped: Counter unisock_tcp_orphans_reaped_total
            "TCP orphans holding unsent data reset, oldest first, because the buffer budget ran into its reserve.",
        udp_datagrams_received: Counter unisock_udp_datagrams_received_total
            "UDP datagrams queued on a socket (drops are counted by reason in unisock_interface_drops_total).",
        udp_datagrams_sent: Counter unisock_udp_datagrams_sent_total
            "UDP datagrams handed to the interface to send.",
        udp_send_queue_full: Counter unisock_udp_send_queue_full_total
            "UDP sends refused because the core's output queue was full.",
        udp_broadcast_refused: Counter unisock_udp_broadcast_refused_total
            "UDP sends to a broadcast address refused because the socket did not allow broadcast.",
        udp_ports_exhausted: Counter unisock_udp_ports_exhausted_total
            "UDP binds to port 0 that found no free ephemeral port.",
        udp_icmp_errors: Counter unisock_udp_icmp_errors_total
            "ICMP errors (port unreachable and the like) reported to a connected UDP socket.",
        udp_forwarded: Counter unisock_udp_forwarded_datagrams_total
            "UDP datagrams (and ICMP errors about ours) that arrived here for a port whose socket is on another core, handed over its ring.",
        icmp_port_unreachables_sent: Counter unisock_icmp_port_unreachables_sent_total
            "ICMP port unreachable messages sent for datagrams to closed UDP ports (rate-limited ones are drops, reason icmp_rate_limited).",
        icmp_errors_routed: Counter unisock_icmp_errors_routed_total
            "ICMP errors sent along the fallback route of the flow they quote.",
        tcp_connections: Gauge unisock_tcp_connections
            "TCP connections this core holds now, counted against its limit (half-open included, TIME_WAIT not).",
        tcp_time_wait: Gauge unisock_tcp_time_wait_connections
            "TIME_WAIT records this core holds now.",
        tcp_timer_entries: Gauge unisock_tcp_timer_entries
            "Entries in this core's TCP timer wheel now (live and stale; about one per connection and TIME_WAIT record).",
        tcp_buffer_bytes: Gauge unisock_tcp_buffer_bytes
            "Payload bytes this core's send, receive and reassembly queues hold now.",
        tcp_buffer_budget_bytes: Gauge unisock_tcp_buffer_budget_bytes
            "Most payload bytes this core buffers (a quarter of the heap shared by the cores; its last quarter kept for connections holding under 4 KiB, at most as many at once as it holds 8 KiB).",
        tcp_resets_received: Counter unisock_tcp_resets_received_total
            "TCP RSTs received that ended a connection or handshake.",
        tcp_challenge_acks: Counter unisock_tcp_challenge_acks_total
            "Challenge ACKs sent (RFC 5961).",
        tcp_syn_cookies_sent: Counter unisock_tcp_syn_cookies_sent_total
            "SYN-ACKs sent with a SYN cookie (the SYN queue was full).",
        tcp_syn_cookies_validated: Counter unisock_tcp_syn_cookies_validated_total
            "ACKs whose SYN cookie validated and made a connection.",
        tcp_time_wait_reuses: Counter unisock_tcp_time_wait_reuses_total
            "TIME_WAIT records replaced by a new connection on the same tuple.",
        tcp_time_wait_overflows: Counter unisock_tcp_time_wait_overflows_total
            "Connections that skipped TIME_WAIT because the TIME_WAIT table was full.",
        tcp_connections_timed_out: Counter unisock_tcp_connections_timed_out_total
            "TCP connections aborted after the retransmission or keepalive limit.",
        tcp_keepalive_probes: Counter unisock_tcp_keepalive_probes_total
            "TCP keepalive probes sent.",
        tcp_zero_window_probes: Counter unisock_tcp_zero_window_probes_total
            "TCP zero-window probes sent.",
        tcp_icmp_errors: Counter unisock_tcp_icmp_errors_total
            "ICMP errors delivered to a TCP connection.",
        tcp_write_memory_refusals: Counter unisock_tcp_write_memory_refusals_total
            "Writes refused because the per-core buffer-memory limit was reached.",
        tcp_out_of_order_bytes_pruned: Counter unisock_tcp_out_of_order_pruned_bytes_total
            "Bytes held out of order that were dropped, highest sequence first, to make room for in-order data in the buffer budget.",
        tcp_reserve_limit_refusals: Counter unisock_tcp_buffer_reserve_refusals_total
            "Writes refused and segments dropped because the buffer budget's reserve already served its most connections at once.",
        tcp_connection_limit_refusals: Counter unisock_tcp_connection_limit_refusals_total
            "Connects refused by the per-core connection limit (refused SYNs are drops).",
        nic_rx_frames: Counter unisock_nic_received_frames_total
            "Frames the NIC queue's driver received.",
        nic_rx_bytes: Counter unisock_nic_received_bytes_total
            "Bytes the NIC queue's driver received.",
        nic_tx_frames: Counter unisock_nic_transmitted_frames_total
            "Frames the NIC queue's driver queued for sending.",
        nic_tx_bytes: Counter unisock_nic_transmitted_bytes_total
            "Bytes the NIC queue's driver queued for sending.",
        nic_notifications: Counter unisock_nic_notifications_total
            "Doorbell writes (device kicks) of the NIC queue.",
        nic_tx_full: Counter unisock_nic_transmit_full_total
            "Transmits the NIC queue's driver refused for want of a free buffer or descriptor.",
        nic_rx_bad_length: Counter unisock_nic_receive_bad_length_total
            "Received frames the driver dropped because the device reported an impossible length.",
        nic_device_errors: Counter unisock_nic_device_errors_total
            "Completions the device reported with an unknown descriptor id or beyond the buffers in flight.",
        halts: Counter unisock_core_halts_total
            "Times this core halted waiting for an interrupt or its next timer.",
        loops: Counter unisock_core_loop_iterations_total
            "Iterations of this core's run loop.",
    }
    labelled {
        tcp_drops[DropReason::COUNT] by "reason" drop_reason:
            Counter unisock_tcp_drops_total "TCP segments (or requests) dropped, by reason.",
        interface_drops[InterfaceDropReason::ALL.len()] by "reason" interface_drop_reason:
            Counter unisock_interface_drops_total
            "Frames the interface dropped (received or to be sent), by reason.",
    }
}

/// What a NIC queue's driver counts, whichever driver it is (the boot crate fills it in from
/// the driver's per-queue statistics; a queue that counts nothing leaves it zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicQueueCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub notifications: u64,
    pub tx_full: u64,
    pub rx_bad_length: u64,
    /// Unknown descriptor ids and completions beyond the buffers in flight.
    pub device_errors: u64,
}

impl CoreSnapshot {
    /// Copies the queue's counters in.
    pub fn set_nic(&mut self, nic: &NicQueueCounters) {
        self.nic_rx_frames = nic.rx_frames;
        self.nic_rx_bytes = nic.rx_bytes;
        self.nic_tx_frames = nic.tx_frames;
        self.nic_tx_bytes = nic.tx_bytes;
        self.nic_notifications = nic.notifications;
        self.nic_tx_full = nic.tx_full;
        self.nic_rx_bad_length = nic.rx_bad_length;
        self.nic_device_errors = nic.device_errors;
    }
}

/// Every core's counters, shared by all cores.
pub struct NetworkStatistics {
    cores: Vec<CachePadded<CoreStatistics>>,
}

impl NetworkStatistics {
    pub fn new(core_count: usize) -> NetworkStatistics {
        NetworkStatistics {
            cores: (0..core_count)
                .map(|_| CachePadded::new(CoreStatistics::default()))
                .collect(),
        }
    }

    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    pub fn core(&self, index: usize) -> Option<&CoreStatistics> {
        self.cores.get(index).map(|padded| &**padded)
    }

    /// Every core's snapshot and their sum.
    fn snapshots(&self) -> (Vec<CoreSnapshot>, CoreSnapshot) {
        let snapshots: Vec<CoreSnapshot> = self.cores.iter().map(|core| core.snapshot()).collect();
        let mut total = CoreSnapshot::default();
        for snapshot in &snapshots {
            total.add(snapshot);
        }
        (snapshots, total)
    }

    /// One line per core, `core=<i> name=value ...`, then a `total` line.
    pub fn write_report(&self, out: &mut impl Write) -> fmt::Result {
        self.write_stats(out)
    }
}

impl MetricSource for NetworkStatistics {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let (snapshots, total) = self.snapshots();
        write_families(&snapshots, &total, out)
    }

    fn write_stats(&self, out: &mut dyn Write) -> fmt::Result {
        let (snapshots, total) = self.snapshots();
        for (index, snapshot) in snapshots.iter().enumerate() {
            write!(out, "core={index} ")?;
            snapshot.write_fields(out)?;
            writeln!(out)?;
        }
        write!(out, "core=total ")?;
        total.write_fields(out)?;
        writeln!(out)
    }
}
