//! The control virtqueue (virtio 1.2, 5.1.6.5): command encoding, including the exact
//! `RSS_CONFIG` layout, and synchronous execution with a bounded wait.

use alloc::vec::Vec;

use crate::hal::{Dma, DmaRegion, HalError, Mmio, PhysAddr};
use crate::nic::{RssCapabilities, RssConfiguration, SteeringError};
use crate::virtio::pci_transport::QueueNotifier;
use crate::virtio::virtqueue::{QueueError, Segment, SplitVirtqueue};

/// Command classes (5.1.6.5).
pub mod class {
    pub const RX: u8 = 0;
    pub const MAC: u8 = 1;
    pub const VLAN: u8 = 2;
    pub const ANNOUNCE: u8 = 3;
    /// Multiqueue and RSS (5.1.6.5.5, 5.1.6.5.7).
    pub const MQ: u8 = 4;
}

/// Commands of class MQ.
pub mod mq_command {
    /// `le16 virtqueue_pairs` (5.1.6.5.5).
    pub const VQ_PAIRS_SET: u8 = 0;
    /// `struct virtio_net_rss_config` (5.1.6.5.7.1).
    pub const RSS_CONFIG: u8 = 1;
    pub const HASH_CONFIG: u8 = 2;
}

/// The `ack` byte the device writes (5.1.6.5).
pub const ACK_OK: u8 = 0;
pub const ACK_ERROR: u8 = 1;
/// Written into the ack byte before submission so a device that never writes it is noticed.
const ACK_UNWRITTEN: u8 = 0xff;

/// Polls of the used ring before a command is declared lost. QEMU completes control
/// commands during the notification write, so the first poll normally succeeds.
const COMPLETION_POLL_LIMIT: usize = 10_000_000;

/// One control command: class, command and its data, sent as one device-readable buffer
/// followed by a one-byte device-writable ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlCommand {
    pub class: u8,
    pub command: u8,
    pub data: Vec<u8>,
}

impl ControlCommand {
    /// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`. Note QEMU turns RSS off when it handles this
    /// command, so RSS is (re)programmed after it.
    pub fn set_queue_pairs(pairs: u16) -> Self {
        ControlCommand {
            class: class::MQ,
            command: mq_command::VQ_PAIRS_SET,
            data: pairs.to_le_bytes().to_vec(),
        }
    }

    /// `VIRTIO_NET_CTRL_MQ_RSS_CONFIG`:
    /// `le32 hash_types; le16 indirection_table_mask; le16 unclassified_queue;
    /// le16 indirection_table[mask + 1]; le16 max_tx_vq; u8 hash_key_length;
    /// u8 hash_key_data[hash_key_length]`. Queue numbers are queue-pair indices (index 0 is
    /// receiveq1). `configuration` must have passed [`validate_rss`].
    pub fn rss_config(configuration: &RssConfiguration, transmit_queue_count: u16) -> Self {
        let table = &configuration.indirection_table;
        let mut data = Vec::with_capacity(11 + 2 * table.len() + configuration.key.len());
        data.extend_from_slice(&configuration.hash_types.bits().to_le_bytes());
        data.extend_from_slice(&((table.len() - 1) as u16).to_le_bytes());
        data.extend_from_slice(&configuration.unclassified_queue.0.to_le_bytes());
        for queue in table {
            data.extend_from_slice(&queue.0.to_le_bytes());
        }
        data.extend_from_slice(&transmit_queue_count.to_le_bytes());
        data.push(configuration.key.len() as u8);
        data.extend_from_slice(&configuration.key);
        ControlCommand {
            class: class::MQ,
            command: mq_command::RSS_CONFIG,
            data,
        }
    }

    fn encoded_length(&self) -> usize {
        2 + self.data.len()
    }
}

/// Checks an RSS request against what the device offers and the active queue count.
pub fn validate_rss(
    configuration: &RssConfiguration,
    capabilities: &RssCapabilities,
    queue_count: usize,
) -> Result<(), SteeringError> {
    let key_length = configuration.key.len();
    let max_key = capabilities.max_key_length.min(usize::from(u8::MAX));
    if key_length > max_key {
        return Err(SteeringError::KeyTooLong {
            length: key_length,
            max: max_key,
        });
    }
    if key_length == 0 && !configuration.hash_types.is_empty() {
        return Err(SteeringError::EmptyKey);
    }
    let table_length = configuration.indirection_table.len();
    let max_table = capabilities.max_indirection_table_length;
    if table_length == 0 || !table_length.is_power_of_two() || table_length > max_table {
        return Err(SteeringError::BadIndirectionTableLength {
            length: table_length,
            max: max_table,
        });
    }
    if !capabilities.hash_types.contains(configuration.hash_types) {
        return Err(SteeringError::UnsupportedHashTypes {
            requested: configuration.hash_types,
            supported: capabilities.hash_types,
        });
    }
    let queues = configuration
        .indirection_table
        .iter()
        .chain([&configuration.unclassified_queue]);
    for queue in queues {
        if usize::from(queue.0) >= queue_count {
            return Err(SteeringError::NoSuchQueue {
                queue: *queue,
                queue_count,
            });
        }
    }
    Ok(())
}

/// Why a control command failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The command does not fit the control buffer.
    CommandTooLong {
        length: usize,
        capacity: usize,
    },
    Queue(QueueError),
    /// The device did not complete the command in time; the queue is no longer used.
    Timeout,
    /// An earlier command timed out or was answered out of protocol, so the queue's state
    /// is unknown and it is no longer used.
    QueueBroken,
    /// The device completed a different chain than the one submitted.
    UnexpectedCompletion {
        head: u16,
    },
    /// The device answered with an ack other than OK.
    Rejected {
        class: u8,
        command: u8,
        ack: u8,
    },
}

/// The control virtqueue and its command buffer.
pub struct ControlQueue<M: Mmio, R: DmaRegion> {
    queue: SplitVirtqueue<R>,
    notifier: QueueNotifier<M>,
    buffer: R,
    broken: bool,
}

impl<M: Mmio, R: DmaRegion> ControlQueue<M, R> {
    /// Allocates the command buffer: `command_capacity` bytes plus the ack byte.
    pub fn new<D: Dma<Region = R>>(
        dma: &D,
        queue: SplitVirtqueue<R>,
        notifier: QueueNotifier<M>,
        command_capacity: usize,
    ) -> Result<Self, HalError> {
        let buffer = dma.allocate(command_capacity + 1, 64)?;
        Ok(ControlQueue {
            queue,
            notifier,
            buffer,
            broken: false,
        })
    }

    fn ack_offset(&self) -> usize {
        self.buffer.len() - 1
    }

    /// Sends `command` and waits for the device's ack.
    pub fn execute(&mut self, command: &ControlCommand) -> Result<(), ControlError> {
        if self.broken {
            return Err(ControlError::QueueBroken);
        }
        let length = command.encoded_length();
        let capacity = self.ack_offset();
        if length > capacity {
            return Err(ControlError::CommandTooLong { length, capacity });
        }
        let ack_offset = self.ack_offset();
        self.buffer.with_bytes_mut(0, length, |bytes| {
            bytes[0] = command.class;
            bytes[1] = command.command;
            bytes[2..].copy_from_slice(&command.data);
        });
        self.buffer
            .with_bytes_mut(ack_offset, 1, |ack| ack[0] = ACK_UNWRITTEN);
        let base = self.buffer.physical_address();
        let head = self
            .queue
            .add(&[
                Segment {
                    address: base,
                    length: length as u32,
                    device_writable: false,
                },
                Segment {
                    address: PhysAddr(base.as_u64() + ack_offset as u64),
                    length: 1,
                    device_writable: true,
                },
            ])
            .map_err(ControlError::Queue)?;
        self.queue.publish();
        self.notifier.notify();
        for _ in 0..COMPLETION_POLL_LIMIT {
            let used = match self.queue.pop_used() {
                Ok(None) => {
                    core::hint::spin_loop();
                    continue;
                }
                Ok(Some(used)) => used,
                Err(error) => return Err(self.retire(ControlError::Queue(error))),
            };
            if used.head != head {
                return Err(self.retire(ControlError::UnexpectedCompletion { head: used.head }));
            }
            let ack = self.buffer.with_bytes(ack_offset, 1, |ack| ack[0]);
            if ack != ACK_OK {
                return Err(ControlError::Rejected {
                    class: command.class,
                    command: command.command,
                    ack,
                });
            }
            return Ok(());
        }
        Err(self.retire(ControlError::Timeout))
    }

    /// After the device broke the one-command-at-a-time protocol (or went silent) the
    /// queue's state is unknown: stop using it and report why.
    fn retire(&mut self, error: ControlError) -> ControlError {
        self.broken = true;
        error
    }
}
