//! Unisock's applications, written only against the kernel's socket API: the HTTP reverse
//! proxy, a minimal HTTP responder, and the transfer services the end-to-end tests check
//! bytes with.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod admin;
pub mod config;
pub mod control;
pub mod dns;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod responder;
pub mod services;
pub mod sha256;
pub mod transfer;

pub use services::{Services, StatisticsReport, start_services};
