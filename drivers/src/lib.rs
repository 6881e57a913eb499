//! Unisock's NIC drivers; each reaches hardware only through the HAL so its logic is host-testable.
#![cfg_attr(not(test), no_std)]
// `unsafe` lives only in the real HAL (`hal::identity`, `hal::port_io`), which opt out.
#![deny(unsafe_code)]

extern crate alloc;

pub mod hal;
pub mod ixgbe;
pub mod nic;
pub mod packet_pool;
pub mod pci;
pub mod probe;
pub mod virtio;
