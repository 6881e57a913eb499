//! Unisock's portable core: everything that runs in the image but touches no device.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
