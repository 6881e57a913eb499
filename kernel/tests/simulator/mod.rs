//! The kernel's simulator scenarios (transfers, hostile traffic) over the shared network simulator (`unisock-sim`).

#![allow(dead_code)] // each test file uses its own part of the simulator

pub use unisock_sim::*;

pub mod hostile;
pub mod transfer;
