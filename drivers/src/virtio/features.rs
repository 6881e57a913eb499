//! Virtio feature bits (virtio 1.2, 5.1.3 for the network device, 6 for reserved bits) and
//! the device status bits (2.1).

use bitflags::bitflags;

bitflags! {
    /// Feature bits of a virtio network device plus the transport-wide reserved bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Features: u64 {
        /// Device handles packets with a partial checksum (transmit checksum offload).
        const CSUM = 1 << 0;
        /// Driver handles packets with a partial checksum (receive checksum offload).
        const GUEST_CSUM = 1 << 1;
        const CTRL_GUEST_OFFLOADS = 1 << 2;
        const MTU = 1 << 3;
        /// Device has a MAC address in its configuration space.
        const MAC = 1 << 5;
        const GUEST_TSO4 = 1 << 7;
        const GUEST_TSO6 = 1 << 8;
        const HOST_TSO4 = 1 << 11;
        const HOST_TSO6 = 1 << 12;
        /// Driver can merge receive buffers.
        const MRG_RXBUF = 1 << 15;
        /// Configuration status field (link state) is available.
        const STATUS = 1 << 16;
        /// Control virtqueue is available.
        const CTRL_VQ = 1 << 17;
        const CTRL_RX = 1 << 18;
        const CTRL_VLAN = 1 << 19;
        const GUEST_ANNOUNCE = 1 << 21;
        /// Device supports multiqueue with automatic receive steering.
        const MQ = 1 << 22;
        const CTRL_MAC_ADDR = 1 << 23;
        /// Descriptors may point at indirect descriptor tables (6).
        const RING_INDIRECT_DESC = 1 << 28;
        /// used_event/avail_event notification suppression (6).
        const RING_EVENT_IDX = 1 << 29;
        /// Virtio 1.x device, not legacy (6).
        const VERSION_1 = 1 << 32;
        /// Device DMA goes through the platform's address translation (6).
        const ACCESS_PLATFORM = 1 << 33;
        const RING_PACKED = 1 << 34;
        const IN_ORDER = 1 << 35;
        const ORDER_PLATFORM = 1 << 36;
        const SR_IOV = 1 << 37;
        const NOTIFICATION_DATA = 1 << 38;
        /// Device reports the RSS hash in the receive header.
        const HASH_REPORT = 1 << 57;
        /// Device steers receive packets by a driver-programmed RSS key and indirection table.
        const RSS = 1 << 60;
    }
}

bitflags! {
    /// Device status field (virtio 1.2, 2.1).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct DeviceStatus: u8 {
        const ACKNOWLEDGE = 1;
        const DRIVER = 2;
        const DRIVER_OK = 4;
        const FEATURES_OK = 8;
        const DEVICE_NEEDS_RESET = 64;
        const FAILED = 128;
    }
}
