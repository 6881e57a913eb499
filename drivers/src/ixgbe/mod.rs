//! The Intel 82599 10 GbE driver (ixgbe), ixy style: poll-mode, batched, one queue pair per
//! core, RSS and Flow Director perfect filters for Receive Flow Deliver in hardware.
//!
//! Read it top to bottom: [`registers`] names every register and bit it uses, [`device`]
//! brings the port up and is its [`Nic`](crate::nic::Nic), [`queue`] is one core's rings,
//! [`flow_director`] the perfect filters and their bucket hash, [`statistics`] the device
//! counters. It reaches the hardware only through the HAL; [`model`] (tests only) is a
//! behavioural model of the 82599 behind the same HAL.

pub mod device;
pub mod flow_director;
pub mod queue;
pub mod registers;
pub mod self_check;
pub mod statistics;

#[cfg(test)]
pub mod model;
#[cfg(test)]
mod partition_tests;
#[cfg(test)]
mod tests;

pub use device::{Ixgbe, IxgbeError, IxgbeOptions, SteeringMode, WaitStep};
pub use queue::IxgbeQueue;
pub use statistics::{IxgbeStatistics, StatisticsReader};

/// PCI device ids of 82599 functions, as Linux's `ixgbe_pci_tbl` lists them (`ixgbe_type.h`).
/// The link set-up here (AUTOC 10G serial) is the SFP+/backplane-KR recipe of ixy; the KX4,
/// CX4 and copper (T3 LOM) variants are probed too but their link may need more (unverified).
pub const DEVICE_IDS: &[u16] = &[
    0x10F7, // KX4
    0x1514, // KX4 mezzanine
    0x1517, // KR
    0x10F8, // combined backplane
    0x10F9, // CX4
    0x10FB, // SFP+ (X520)
    0x152A, // backplane FCoE
    0x1529, // SFP+ FCoE
    0x1507, // SFP+ EM
    0x154D, // SFP+ SF2
    0x154A, // SFP+ SF QP
    0x154F, // LS
    0x1557, // 82599EN SFP+
    0x1558, // QSFP+ SF QP
    0x10FC, // XAUI LOM
    0x151C, // T3 LOM (copper)
];
