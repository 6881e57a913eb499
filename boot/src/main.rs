//! The Unisock image: x86_64 entry, platform bring-up, and the per-core start that links every layer.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("unisock-boot builds the bootable image: run `cargo xtask build`");
}

extern crate alloc;

#[cfg(target_os = "none")]
#[macro_use]
mod console;

#[cfg(target_os = "none")]
mod acpi;
#[cfg(target_os = "none")]
mod apic;
// Also built for host tests: it parses what the loader hands over, which tests can fake.
#[cfg(any(target_os = "none", test))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod boot_info;
#[cfg(target_os = "none")]
mod clock;
// Also built for host tests: which source wins, and the size limit.
#[cfg(any(target_os = "none", test))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod configuration_file;
#[cfg(target_os = "none")]
mod cpu;
// Also built for host tests: which ranges of a memory map are device memory.
#[cfg(any(target_os = "none", test))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod device_memory;
// Also built for host tests: the retry and mixing logic, and the host CPU's own generator.
#[cfg(any(target_os = "none", test))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod entropy;
#[cfg(target_os = "none")]
mod exit;
// Also built for host tests: the directory walk, against a fake device.
#[cfg(any(target_os = "none", test))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod fw_cfg;
#[cfg(target_os = "none")]
mod idle;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod network;
#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
mod pci;
#[cfg(target_os = "none")]
mod self_test;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod start;

#[cfg(target_os = "none")]
mod image;

#[cfg(target_os = "none")]
pub use clock::now;
#[cfg(target_os = "none")]
use image::{ap_main, boot_main};
