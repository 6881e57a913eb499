//! The NIC's port-wide counters (the device's own statistics registers, not a queue's): one
//! core reads the device now and then, off its data path, and publishes them here for the
//! reports. A NIC without such registers (virtio-net) publishes none.

use core::fmt::{self, Write};

use spin::Mutex;

use super::definition::{Metric, MetricKind};
use super::exposition::{Exposition, MetricSource};

/// Generates the plain counters struct and its definitions from one list.
macro_rules! port_counters {
    ($( $field:ident: $kind:ident $name:ident $help:literal, )*) => {
        /// What the driver read from the device, totals since bring-up.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct NicPortCounters {
            $( #[doc = $help] pub $field: u64, )*
        }

        /// The definition of every port counter, in `/stats` order.
        pub const NIC_PORT_METRICS: &[Metric] = &[
            $( Metric::new(stringify!($name), stringify!($field), MetricKind::$kind, $help), )*
        ];

        impl NicPortCounters {
            /// The values in [`NIC_PORT_METRICS`] order.
            fn values(&self) -> impl Iterator<Item = u64> {
                [$( self.$field, )*].into_iter()
            }
        }
    };
}

port_counters! {
    rx_packets: Counter unisock_nic_port_received_packets_total
        "Good packets the NIC port received (the device's count).",
    rx_bytes: Counter unisock_nic_port_received_bytes_total
        "Bytes of good packets the NIC port received (the device's count).",
    tx_packets: Counter unisock_nic_port_transmitted_packets_total
        "Good packets the NIC port sent (the device's count).",
    tx_bytes: Counter unisock_nic_port_transmitted_bytes_total
        "Bytes of good packets the NIC port sent (the device's count).",
    rx_missed: Counter unisock_nic_port_missed_packets_total
        "Packets the NIC port missed for lack of room in its packet buffer.",
    rx_no_buffer: Counter unisock_nic_port_no_descriptor_total
        "Times a received packet found no free receive descriptor.",
    rx_queue_drops: Counter unisock_nic_port_queue_drops_total
        "Packets dropped by receive queues that had no descriptor.",
    crc_errors: Counter unisock_nic_port_crc_errors_total
        "Received frames with a bad CRC.",
    flow_director_matches: Counter unisock_nic_port_flow_director_matches_total
        "Received packets that matched an exact (Flow Director) filter.",
    flow_director_misses: Counter unisock_nic_port_flow_director_misses_total
        "Received packets that matched no exact (Flow Director) filter.",
}

/// The latest port counters, with the driver's name; written by one core about once a
/// second, read by the reports (a lock off the data path).
pub struct NicPortStatistics {
    driver: &'static str,
    counters: Mutex<NicPortCounters>,
}

impl NicPortStatistics {
    pub fn new(driver: &'static str) -> NicPortStatistics {
        NicPortStatistics {
            driver,
            counters: Mutex::new(NicPortCounters::default()),
        }
    }

    pub fn publish(&self, counters: NicPortCounters) {
        *self.counters.lock() = counters;
    }

    pub fn counters(&self) -> NicPortCounters {
        *self.counters.lock()
    }
}

impl MetricSource for NicPortStatistics {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> fmt::Result {
        let counters = self.counters();
        for (metric, value) in NIC_PORT_METRICS.iter().zip(counters.values()) {
            out.family(metric)?;
            out.sample(metric, &[("driver", &self.driver)], value)?;
        }
        Ok(())
    }

    /// One line: `nic_port driver=<name> name=value ...`.
    fn write_stats(&self, out: &mut dyn Write) -> fmt::Result {
        let counters = self.counters();
        write!(out, "nic_port driver={}", self.driver)?;
        for (metric, value) in NIC_PORT_METRICS.iter().zip(counters.values()) {
            write!(out, " {}={value}", metric.stats_name)?;
        }
        writeln!(out)
    }
}
