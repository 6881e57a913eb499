//! The multi-queue NIC abstraction every driver implements: a control-plane [`Nic`] and one
//! [`NicQueue`] per core, which that core owns outright (no lock on the data path).
//!
//! Boot code brings a device up, asks [`Nic::steering`] what it can do, programs RSS (and,
//! on NICs that have them, exact filters), then hands queue `i` to core `i` with
//! [`Nic::take_queue`]. The network stack reads frames as `&[u8]` in
//! [`NicQueue::rx_burst`] and writes frames into `&mut [u8]` in [`NicQueue::tx_enqueue`].

use alloc::vec::Vec;
use bitflags::bitflags;
use core::fmt;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl fmt::Display for MacAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, f] = self.0;
        write!(formatter, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
    }
}

/// Index of a queue pair (one receive and one transmit queue), which is also the index of
/// the core that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(pub u16);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    Down,
}

bitflags! {
    /// Packet types an RSS hash can cover. The bit layout is virtio-net's
    /// (`VIRTIO_NET_RSS_HASH_TYPE_*`, virtio 1.2, 5.1.6.4.3.1); other drivers translate.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct HashTypes: u32 {
        const IPV4 = 1 << 0;
        const TCP_IPV4 = 1 << 1;
        const UDP_IPV4 = 1 << 2;
        const IPV6 = 1 << 3;
        const TCP_IPV6 = 1 << 4;
        const UDP_IPV6 = 1 << 5;
        const IPV6_EXTENSIONS = 1 << 6;
        const TCP_IPV6_EXTENSIONS = 1 << 7;
        const UDP_IPV6_EXTENSIONS = 1 << 8;
    }
}

/// What a NIC's RSS can be programmed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssCapabilities {
    /// Longest Toeplitz key in bytes.
    pub max_key_length: usize,
    /// Most indirection-table entries (the table length must be a power of two up to this).
    pub max_indirection_table_length: usize,
    pub hash_types: HashTypes,
}

/// The receive steering a NIC offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steering {
    /// Programmable RSS, if any. Without it, the NIC (or host) picks queues by itself.
    pub rss: Option<RssCapabilities>,
    /// How many exact-match filters (e.g. 82599 Flow Director perfect filters) can be
    /// installed; zero if none.
    pub exact_filters: usize,
}

/// An RSS programming request: the queue is `indirection_table[hash & (len - 1)]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfiguration {
    pub hash_types: HashTypes,
    pub key: Vec<u8>,
    pub indirection_table: Vec<QueueId>,
    /// Where packets that match no hash type go.
    pub unclassified_queue: QueueId,
}

/// A TCP/IPv4 exact-match filter; `None` fields are wildcards (on NICs whose masks are
/// global, every filter must wildcard the same fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactFilter {
    pub source_address: Option<[u8; 4]>,
    pub destination_address: Option<[u8; 4]>,
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
    /// The bits of `destination_port` that must match (`0xffff`: the whole port); Receive
    /// Flow Deliver matches only the low bits of the local port, which name the core.
    pub destination_port_mask: u16,
    pub queue: QueueId,
}

impl ExactFilter {
    /// The filter Receive Flow Deliver needs on NICs with exact filters: replies from
    /// `remote_port` (any address) to a local port whose low bits (`local_port_mask`) equal
    /// `core` go to that core's queue.
    pub fn reply_to_core(remote_port: u16, core: u16, local_port_mask: u16) -> Self {
        ExactFilter {
            source_address: None,
            destination_address: None,
            source_port: Some(remote_port),
            destination_port: Some(core & local_port_mask),
            destination_port_mask: local_port_mask,
            queue: QueueId(core),
        }
    }
}

/// Why a steering request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteeringError {
    /// The NIC has no programmable RSS.
    RssUnsupported,
    /// The NIC has no exact filters, or all are in use.
    NoExactFilterAvailable,
    KeyTooLong {
        length: usize,
        max: usize,
    },
    /// Hash types were requested without a key to hash with.
    EmptyKey,
    /// The indirection table is empty, not a power of two long, or too long.
    BadIndirectionTableLength {
        length: usize,
        max: usize,
    },
    /// A table entry (or the unclassified queue) names a queue that is not active.
    NoSuchQueue {
        queue: QueueId,
        queue_count: usize,
    },
    /// Hash types the NIC does not support were requested.
    UnsupportedHashTypes {
        requested: HashTypes,
        supported: HashTypes,
    },
    /// The device rejected or did not answer the command.
    DeviceRefused,
    /// The filter wildcards other fields than the NIC's global filter masks.
    FilterMasksDiffer,
}

/// Per-queue counters; the error counters name the same causes as the driver's errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStatistics {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Device kicks written (at most one per burst).
    pub notifications: u64,
    /// `tx_enqueue` found no free buffer or descriptor.
    pub tx_full: u64,
    /// The device returned a used entry with an unknown or idle descriptor id.
    pub device_bad_id: u64,
    /// The device claimed more completions than buffers in flight.
    pub device_index_jump: u64,
    /// The device reported a received length shorter than the header or longer than the
    /// buffer; the frame was dropped.
    pub rx_bad_length: u64,
}

/// A request that the NIC complete one checksum of a frame: it sums the bytes from `start`
/// to the end of the frame (RFC 1071) and stores the result at `start + offset`. The caller
/// leaves the pseudo-header sum in that field (for TCP/UDP), as with Linux's CHECKSUM_PARTIAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumOffload {
    pub start: u16,
    pub offset: u16,
}

/// Why a frame could not be queued for transmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransmitError {
    /// No free buffer or ring slot: the device has not caught up. Retry after a flush.
    QueueFull,
    /// The frame does not fit in one packet buffer.
    FrameTooLong { length: usize, max: usize },
    /// Checksum offload was requested but the queue does not have it
    /// (see [`NicQueue::transmit_checksum_offload`]).
    ChecksumOffloadUnavailable,
    /// The checksum field would not lie inside the frame.
    ChecksumOutsideFrame {
        checksum: ChecksumOffload,
        length: usize,
    },
}

/// One core's receive/transmit queue pair. Owned by that core; no method takes a lock.
pub trait NicQueue {
    fn id(&self) -> QueueId;

    /// Hands up to `max_frames` received Ethernet frames to `handler`, one at a time; each
    /// buffer goes back to the receive ring right after `handler` returns. Notifies the
    /// device at most once. Returns the number of frames handled.
    fn rx_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize;

    /// Queues one frame of `length` bytes, which `fill` writes; with `checksum`, the NIC
    /// completes that checksum. The device does not see the frame until
    /// [`tx_flush`](Self::tx_flush).
    fn tx_enqueue(
        &mut self,
        length: usize,
        checksum: Option<ChecksumOffload>,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), TransmitError>;

    /// Whether [`tx_enqueue`](Self::tx_enqueue) accepts a [`ChecksumOffload`].
    fn transmit_checksum_offload(&self) -> bool;

    /// [`tx_enqueue`](Self::tx_enqueue) for a one-shot writer, the shape of the network
    /// stack's frame sink (`transmit(len, fill: impl FnOnce(&mut [u8]))`).
    fn transmit(&mut self, length: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), TransmitError>
    where
        Self: Sized,
    {
        let mut fill = Some(fill);
        self.tx_enqueue(length, None, &mut |bytes| {
            if let Some(fill) = fill.take() {
                fill(bytes)
            }
        })
    }

    /// Publishes every queued frame with one notification (if the device wants one) and
    /// reclaims the buffers of frames the device has sent.
    fn tx_flush(&mut self);

    /// Largest frame `tx_enqueue` accepts.
    fn max_frame_length(&self) -> usize;

    /// Stops asking the device for interrupts on this queue (busy polling).
    fn disable_interrupts(&mut self);

    /// Asks the device for an interrupt when frames arrive. Returns `true` if frames are
    /// already waiting, in which case the caller must poll again instead of sleeping (the
    /// interrupt for them may already have been skipped). Called before every halt, so a
    /// driver may also tell the device here that the queue is being served (virtio-net kicks
    /// its receive queue: see `VirtioNetQueue`).
    fn enable_interrupts(&mut self) -> bool;

    fn statistics(&self) -> QueueStatistics;
}

/// A multi-queue NIC's control plane, used by the boot core before (or between) the data
/// path runs.
pub trait Nic {
    type Queue: NicQueue;

    fn mac_address(&self) -> MacAddress;
    fn link_state(&self) -> LinkState;
    /// Active queue pairs.
    fn queue_count(&self) -> usize;
    fn steering(&self) -> Steering;
    fn configure_rss(&mut self, configuration: &RssConfiguration) -> Result<(), SteeringError>;
    fn add_exact_filter(&mut self, filter: &ExactFilter) -> Result<(), SteeringError>;
    /// Moves queue pair `queue` out of the NIC, to be owned by its core. `None` if there is no
    /// such queue or it was already taken.
    fn take_queue(&mut self, queue: QueueId) -> Option<Self::Queue>;
}
