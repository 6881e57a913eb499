//! Unisock's HTTP applications, written only against the kernel's socket API.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
