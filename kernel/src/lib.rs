//! Unisock's portable core: everything that runs in the image but touches no device.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod config;
pub mod executor;
pub mod mem;
pub mod metrics;
pub mod net;
pub mod runtime;
pub mod socket;
pub mod sync;
pub mod time;
