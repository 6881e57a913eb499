//! One core's virtio-net queue pair: receive queue 2i and transmit queue 2i+1 with their own
//! packet pool. Batched: one device notification per burst at most, interrupts off while
//! the core polls.

use alloc::vec::Vec;

use crate::hal::{DmaRegion, Mmio};
use crate::nic::{ChecksumOffload, NicQueue, QueueId, QueueStatistics, TransmitError};
use crate::packet_pool::{PacketBuffer, PacketPool};
use crate::virtio::net::header::{HEADER_LENGTH, write_checksum_header, write_transmit_header};
use crate::virtio::pci_transport::{NO_MSIX_VECTOR, QueueNotifier};
use crate::virtio::virtqueue::{QueueError, Segment, SplitVirtqueue};

/// A virtqueue with the packet buffer behind each in-flight descriptor chain.
struct BufferRing<M: Mmio, R: DmaRegion> {
    queue: SplitVirtqueue<R>,
    notifier: QueueNotifier<M>,
    /// Indexed by head descriptor.
    buffers: Vec<Option<PacketBuffer>>,
    msix_vector: u16,
}

impl<M: Mmio, R: DmaRegion> BufferRing<M, R> {
    fn new(queue: SplitVirtqueue<R>, notifier: QueueNotifier<M>, msix_vector: u16) -> Self {
        let buffers = (0..queue.size()).map(|_| None).collect();
        BufferRing {
            queue,
            notifier,
            buffers,
            msix_vector,
        }
    }

    /// Queues `buffer` as one descriptor. Gives the buffer back if the ring is full.
    fn post(
        &mut self,
        buffer: PacketBuffer,
        segment: Segment,
    ) -> Result<(), (PacketBuffer, QueueError)> {
        match self.queue.add(&[segment]) {
            Ok(head) => {
                self.buffers[usize::from(head)] = Some(buffer);
                Ok(())
            }
            Err(error) => Err((buffer, error)),
        }
    }

    /// Publishes new descriptors and kicks the device if it wants a kick.
    fn publish_and_notify(&mut self, statistics: &mut QueueStatistics) {
        if self.queue.publish() && self.queue.needs_notification() {
            self.notifier.notify();
            statistics.notifications += 1;
        }
    }

    /// Pops one completion and its buffer; device errors are counted and skipped.
    fn pop(&mut self, statistics: &mut QueueStatistics) -> PopResult {
        match self.queue.pop_used() {
            Ok(None) => PopResult::Empty,
            Ok(Some(used)) => match self.buffers[usize::from(used.head)].take() {
                Some(buffer) => PopResult::Buffer(buffer, used.length),
                None => {
                    statistics.device_bad_id += 1;
                    PopResult::Skipped
                }
            },
            Err(QueueError::UsedIndexJump { .. }) => {
                statistics.device_index_jump += 1;
                PopResult::Empty
            }
            Err(_) => {
                statistics.device_bad_id += 1;
                PopResult::Skipped
            }
        }
    }
}

enum PopResult {
    Empty,
    Skipped,
    Buffer(PacketBuffer, u32),
}

/// A receive/transmit virtqueue pair owned by one core.
pub struct VirtioNetQueue<M: Mmio, R: DmaRegion> {
    id: QueueId,
    pool: PacketPool<R>,
    receive: BufferRing<M, R>,
    transmit: BufferRing<M, R>,
    /// CSUM was negotiated: the device completes checksums on request.
    checksum_offload: bool,
    statistics: QueueStatistics,
}

impl<M: Mmio, R: DmaRegion> VirtioNetQueue<M, R> {
    /// Builds the pair and fills the receive ring from `pool` (publishing, not notifying: the
    /// device may not be live yet; see [`kick_receive`](Self::kick_receive)). Interrupts start
    /// suppressed on both queues.
    pub(crate) fn new(
        id: QueueId,
        pool: PacketPool<R>,
        receive: (SplitVirtqueue<R>, QueueNotifier<M>, u16),
        transmit: (SplitVirtqueue<R>, QueueNotifier<M>, u16),
        checksum_offload: bool,
    ) -> Self {
        let mut queue = VirtioNetQueue {
            id,
            pool,
            receive: BufferRing::new(receive.0, receive.1, receive.2),
            transmit: BufferRing::new(transmit.0, transmit.1, transmit.2),
            checksum_offload,
            statistics: QueueStatistics::default(),
        };
        queue.receive.queue.set_interrupts_suppressed(true);
        queue.transmit.queue.set_interrupts_suppressed(true);
        while queue.receive.queue.free_descriptors() > 0 {
            let Some(buffer) = queue.pool.allocate() else {
                break;
            };
            if let Err((buffer, _)) = queue.post_receive(buffer) {
                queue.pool.release(buffer);
                break;
            }
        }
        queue.receive.queue.publish();
        queue
    }

    /// Tells the device the receive ring has buffers (once, after DRIVER_OK).
    pub(crate) fn kick_receive(&mut self) {
        self.receive.notifier.notify();
        self.statistics.notifications += 1;
    }

    fn post_receive(&mut self, buffer: PacketBuffer) -> Result<(), (PacketBuffer, QueueError)> {
        let segment = Segment {
            address: self.pool.physical_address(&buffer),
            length: self.pool.buffer_size() as u32,
            device_writable: true,
        };
        self.receive.post(buffer, segment)
    }

    /// Returns the buffers of frames the device has sent to the pool.
    fn reclaim_transmitted(&mut self) {
        loop {
            match self.transmit.pop(&mut self.statistics) {
                PopResult::Empty => break,
                PopResult::Skipped => {}
                PopResult::Buffer(buffer, _) => self.pool.release(buffer),
            }
        }
    }

    /// MSI-X vectors of the receive and transmit queues (`None` when not routed).
    pub fn msix_vectors(&self) -> (Option<u16>, Option<u16>) {
        let routed = |vector| (vector != NO_MSIX_VECTOR).then_some(vector);
        (
            routed(self.receive.msix_vector),
            routed(self.transmit.msix_vector),
        )
    }

    /// Receive buffers the device can currently fill.
    pub fn receive_buffers_posted(&self) -> u16 {
        self.receive.queue.in_flight()
    }

    /// Frames queued or in flight on the transmit queue.
    pub fn transmit_in_flight(&self) -> u16 {
        self.transmit.queue.in_flight()
    }

    pub fn free_packet_buffers(&self) -> usize {
        self.pool.available()
    }
}

impl<M: Mmio, R: DmaRegion> NicQueue for VirtioNetQueue<M, R> {
    fn id(&self) -> QueueId {
        self.id
    }

    fn rx_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        let mut handled = 0;
        let mut reposted = false;
        // Every popped entry counts against the budget, bad ones too, so a misbehaving
        // device cannot keep us here.
        for _ in 0..max_frames {
            let (buffer, length) = match self.receive.pop(&mut self.statistics) {
                PopResult::Empty => break,
                PopResult::Skipped => continue,
                PopResult::Buffer(buffer, length) => (buffer, length as usize),
            };
            if length < HEADER_LENGTH || length > self.pool.buffer_size() {
                self.statistics.rx_bad_length += 1;
            } else {
                self.pool
                    .with_bytes(&buffer, length, |bytes| handler(&bytes[HEADER_LENGTH..]));
                self.statistics.rx_frames += 1;
                self.statistics.rx_bytes += (length - HEADER_LENGTH) as u64;
                handled += 1;
            }
            // One descriptor was just freed, so reposting cannot run out of room.
            if let Err((buffer, _)) = self.post_receive(buffer) {
                self.pool.release(buffer);
            }
            reposted = true;
        }
        if reposted {
            self.receive.publish_and_notify(&mut self.statistics);
        }
        handled
    }

    fn tx_enqueue(
        &mut self,
        length: usize,
        checksum: Option<ChecksumOffload>,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), TransmitError> {
        let max = self.max_frame_length();
        if length > max {
            return Err(TransmitError::FrameTooLong { length, max });
        }
        if let Some(checksum) = checksum {
            if !self.checksum_offload {
                return Err(TransmitError::ChecksumOffloadUnavailable);
            }
            let field_end = usize::from(checksum.start) + usize::from(checksum.offset) + 2;
            if field_end > length {
                return Err(TransmitError::ChecksumOutsideFrame { checksum, length });
            }
        }
        if self.transmit.queue.free_descriptors() == 0 || self.pool.available() == 0 {
            self.reclaim_transmitted();
        }
        if self.transmit.queue.free_descriptors() == 0 {
            self.statistics.tx_full += 1;
            return Err(TransmitError::QueueFull);
        }
        let Some(buffer) = self.pool.allocate() else {
            self.statistics.tx_full += 1;
            return Err(TransmitError::QueueFull);
        };
        self.pool
            .with_bytes_mut(&buffer, HEADER_LENGTH + length, |bytes| {
                let (header, frame) = bytes.split_at_mut(HEADER_LENGTH);
                match checksum {
                    None => write_transmit_header(header),
                    Some(checksum) => {
                        write_checksum_header(header, checksum.start, checksum.offset)
                    }
                }
                fill(frame);
            });
        let segment = Segment {
            address: self.pool.physical_address(&buffer),
            length: (HEADER_LENGTH + length) as u32,
            device_writable: false,
        };
        if let Err((buffer, _)) = self.transmit.post(buffer, segment) {
            self.pool.release(buffer);
            self.statistics.tx_full += 1;
            return Err(TransmitError::QueueFull);
        }
        self.statistics.tx_frames += 1;
        self.statistics.tx_bytes += length as u64;
        Ok(())
    }

    fn tx_flush(&mut self) {
        self.transmit.publish_and_notify(&mut self.statistics);
        self.reclaim_transmitted();
    }

    fn transmit_checksum_offload(&self) -> bool {
        self.checksum_offload
    }

    fn max_frame_length(&self) -> usize {
        self.pool.buffer_size() - HEADER_LENGTH
    }

    fn disable_interrupts(&mut self) {
        self.receive.queue.set_interrupts_suppressed(true);
    }

    /// Re-enables the receive interrupt and kicks the receive queue whatever NO_NOTIFY says.
    /// The kick is for QEMU's software RSS: a frame the host puts on this queue's tap but
    /// steers to a queue with no free buffer is parked on *this* queue, the tap stops being
    /// read, and only a notification of this queue retries it (the other queue's refill kick
    /// does not). This queue's ring is full, so it would never kick again by itself, and every
    /// later frame of the tap would wait for ever. One kick per halt bounds that wait.
    fn enable_interrupts(&mut self) -> bool {
        self.receive.queue.set_interrupts_suppressed(false);
        self.receive.notifier.notify();
        self.statistics.notifications += 1;
        self.receive.queue.has_used()
    }

    fn statistics(&self) -> QueueStatistics {
        self.statistics
    }
}

/// Per-queue sizes chosen at set-up.
pub(crate) fn pool_size(receive_size: u16, transmit_size: u16) -> usize {
    usize::from(receive_size) + usize::from(transmit_size)
}
