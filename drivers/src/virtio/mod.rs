//! Virtio 1.x over modern PCI: feature bits, the PCI transport, split virtqueues, and devices.

pub mod features;
pub mod net;
pub mod pci_transport;
pub mod virtqueue;

/// Red Hat's PCI vendor ID, used by all virtio devices (virtio 1.2, 4.1.2).
pub const VIRTIO_VENDOR_ID: u16 = 0x1af4;
