//! The virtio network device (virtio 1.2, 5.1): one receive/transmit queue pair per core, a
//! control queue, and RSS when the device offers it.

pub mod config;
pub mod control;
pub mod device;
pub mod header;
pub mod queue;

#[cfg(test)]
pub(crate) mod fake_device;
#[cfg(test)]
mod tests;

pub use device::{VirtioNet, VirtioNetError, VirtioNetOptions};
pub use queue::VirtioNetQueue;
