//! One core's 82599 queue pair: an advanced-descriptor receive ring and transmit ring with
//! their own packet pool, polled in batches (one RDT write per receive batch, one TDT write
//! per transmit flush, transmit buffers reclaimed in batches), ixy style.

use alloc::vec::Vec;

use super::registers::*;
use crate::hal::{DmaRegion, Mmio, PhysAddr};
use crate::nic::{ChecksumOffload, NicQueue, QueueId, QueueStatistics, TransmitError};
use crate::packet_pool::{PacketBuffer, PacketPool};

/// Transmit descriptors are reclaimed this many at a time (ixy's `TX_CLEAN_BATCH`): one DD
/// check frees the whole batch.
pub const TRANSMIT_CLEAN_BATCH: usize = 32;

/// Largest frame handed to the NIC, without the CRC it appends (MAXFRS defaults to 1518
/// with the CRC).
pub const MAX_FRAME_LENGTH: usize = 1514;

/// Counters of what the device wrote back that the driver refused, beyond
/// [`QueueStatistics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IxgbeQueueCounters {
    /// Frames that matched a Flow Director filter (FLM set).
    pub flow_director_matches: u64,
    /// Frames the NIC flagged with a receive error (RXE: CRC, symbol, length).
    pub rx_errors: u64,
    /// Descriptors of frames that spanned several buffers (no EOP); dropped.
    pub rx_multi_descriptor: u64,
    /// Flow Director errors in the write-back (length, drop, collision).
    pub flow_director_errors: u64,
}

/// A ring of 16-byte descriptors in DMA memory with the packet buffer behind each slot.
struct Ring<R: DmaRegion> {
    descriptors: R,
    buffers: Vec<Option<PacketBuffer>>,
}

impl<R: DmaRegion> Ring<R> {
    fn size(&self) -> usize {
        self.buffers.len()
    }

    fn offset(slot: usize, field: usize) -> usize {
        slot * DESCRIPTOR_BYTES + field
    }
}

/// A receive/transmit queue pair owned by one core.
pub struct IxgbeQueue<M: Mmio, R: DmaRegion> {
    id: QueueId,
    index: usize,
    registers: M,
    pool: PacketPool<R>,
    /// Bus address of every pool buffer, by index, computed once.
    buffer_addresses: Vec<PhysAddr>,
    receive: Ring<R>,
    /// The next receive descriptor the device will complete.
    receive_next: usize,
    /// Dropping the rest of a frame that spans descriptors.
    receive_discarding: bool,
    transmit: Ring<R>,
    /// Oldest transmit descriptor not yet reclaimed.
    transmit_clean: usize,
    /// Next free transmit slot (what TDT becomes at the next flush).
    transmit_tail: usize,
    /// What TDT says now.
    transmit_published: usize,
    statistics: QueueStatistics,
    counters: IxgbeQueueCounters,
}

/// The queue's rings and pool before the device is told about them.
pub(crate) struct QueueMemory<R: DmaRegion> {
    pub receive_descriptors: R,
    pub transmit_descriptors: R,
    pub pool: PacketPool<R>,
    pub ring_size: usize,
}

impl<M: Mmio, R: DmaRegion> IxgbeQueue<M, R> {
    /// Fills every receive descriptor with a pool buffer (read format); the device is not
    /// told yet (see [`start_receive`](Self::start_receive)).
    pub(crate) fn new(id: QueueId, registers: M, memory: QueueMemory<R>) -> Self {
        let QueueMemory {
            receive_descriptors,
            transmit_descriptors,
            mut pool,
            ring_size,
        } = memory;
        let buffer_addresses = (0..pool.capacity())
            .map(|index| pool.physical_address_of_index(index))
            .collect();
        let mut receive = Ring {
            descriptors: receive_descriptors,
            buffers: (0..ring_size).map(|_| None).collect(),
        };
        for slot in 0..ring_size {
            let buffer = pool
                .allocate()
                .expect("the pool holds a buffer per receive slot (checked by the caller)");
            receive.buffers[slot] = Some(buffer);
        }
        let mut queue = IxgbeQueue {
            id,
            index: usize::from(id.0),
            registers,
            pool,
            buffer_addresses,
            receive,
            receive_next: 0,
            receive_discarding: false,
            transmit: Ring {
                descriptors: transmit_descriptors,
                buffers: (0..ring_size).map(|_| None).collect(),
            },
            transmit_clean: 0,
            transmit_tail: 0,
            transmit_published: 0,
            statistics: QueueStatistics::default(),
            counters: IxgbeQueueCounters::default(),
        };
        for slot in 0..ring_size {
            queue.post_receive(slot);
        }
        queue
    }

    /// Hands the receive ring to the device: every descriptor but the one at the tail (4.6.7:
    /// "RDT = ring size - 1").
    pub(crate) fn start_receive(&mut self) {
        self.registers
            .write_u32(rdt(self.index), (self.receive.size() - 1) as u32);
    }

    /// Writes slot `slot`'s buffer address in read format; the zero header address also
    /// clears the DD bit of the previous write-back.
    fn post_receive(&mut self, slot: usize) {
        let buffer = self.receive.buffers[slot]
            .as_ref()
            .expect("every receive slot holds a buffer");
        let address = self.buffer_addresses[usize::from(buffer.index())];
        let descriptors = &mut self.receive.descriptors;
        descriptors.write_u64(
            Ring::<R>::offset(slot, RX_READ_PACKET_ADDRESS),
            address.as_u64(),
        );
        descriptors.write_u64(Ring::<R>::offset(slot, RX_READ_HEADER_ADDRESS), 0);
    }

    /// Descriptors in flight on the transmit ring (published or not).
    fn transmit_in_flight(&self) -> usize {
        let size = self.transmit.size();
        (self.transmit_tail + size - self.transmit_clean) % size
    }

    /// Frees completed transmit buffers, a batch per DD check: the device writes back in
    /// order, so DD on the batch's last descriptor means the whole batch is done.
    fn reclaim_transmitted(&mut self) {
        let size = self.transmit.size();
        loop {
            let published = (self.transmit_published + size - self.transmit_clean) % size;
            if published == 0 {
                return;
            }
            let batch = published.min(TRANSMIT_CLEAN_BATCH);
            let last = (self.transmit_clean + batch - 1) % size;
            let status = self
                .transmit
                .descriptors
                .read_u32(Ring::<R>::offset(last, TX_OFFLOAD_STATUS));
            if status & TX_STATUS_DESCRIPTOR_DONE == 0 {
                return;
            }
            for _ in 0..batch {
                match self.transmit.buffers[self.transmit_clean].take() {
                    Some(buffer) => self.pool.release(buffer),
                    None => self.statistics.device_bad_id += 1,
                }
                self.transmit_clean = (self.transmit_clean + 1) % size;
            }
        }
    }

    pub fn counters(&self) -> IxgbeQueueCounters {
        self.counters
    }

    /// Packet buffers neither posted for receive nor in flight for transmit.
    pub fn free_packet_buffers(&self) -> usize {
        self.pool.available()
    }

    /// All buffers this queue owns: in the pool, on the receive ring, on the transmit ring.
    pub fn packet_buffer_capacity(&self) -> usize {
        self.pool.capacity()
    }

    /// Buffers on the transmit ring, waiting to be sent or reclaimed.
    pub fn transmit_buffers_in_flight(&self) -> usize {
        self.transmit.buffers.iter().flatten().count()
    }

    /// Buffers on the receive ring.
    pub fn receive_buffers_posted(&self) -> usize {
        self.receive.buffers.iter().flatten().count()
    }
}

impl<M: Mmio, R: DmaRegion> NicQueue for IxgbeQueue<M, R> {
    fn id(&self) -> QueueId {
        self.id
    }

    fn rx_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        let size = self.receive.size();
        let buffer_size = self.pool.buffer_size();
        let mut handled = 0;
        let mut last_refilled = None;
        // Every completed descriptor counts against the budget, bad ones too.
        for _ in 0..max_frames {
            let slot = self.receive_next;
            let descriptors = &self.receive.descriptors;
            let status = ReceiveStatus::from_bits_retain(
                descriptors.read_u32(Ring::<R>::offset(slot, RX_WB_STATUS_ERROR)),
            );
            if !status.contains(ReceiveStatus::DESCRIPTOR_DONE) {
                break;
            }
            let length = usize::from(descriptors.read_u16(Ring::<R>::offset(slot, RX_WB_LENGTH)));
            let end_of_packet = status.contains(ReceiveStatus::END_OF_PACKET);
            if !end_of_packet || self.receive_discarding {
                // A frame larger than one buffer: the stack wants whole frames in one buffer,
                // so drop every piece up to and including the one with EOP.
                self.counters.rx_multi_descriptor += 1;
                self.receive_discarding = !end_of_packet;
            } else if status.contains(ReceiveStatus::RX_ERROR) {
                self.counters.rx_errors += 1;
            } else if length == 0 || length > buffer_size {
                self.statistics.rx_bad_length += 1;
            } else {
                if status.contains(ReceiveStatus::FLOW_DIRECTOR_MATCH) {
                    self.counters.flow_director_matches += 1;
                }
                if status.intersects(
                    ReceiveStatus::FLOW_DIRECTOR_LENGTH_ERROR
                        | ReceiveStatus::FLOW_DIRECTOR_DROP_ERROR
                        | ReceiveStatus::FLOW_DIRECTOR_COLLISION,
                ) {
                    self.counters.flow_director_errors += 1;
                }
                let buffer = self.receive.buffers[slot]
                    .as_ref()
                    .expect("every receive slot holds a buffer");
                self.pool.with_bytes(buffer, length, |bytes| handler(bytes));
                self.statistics.rx_frames += 1;
                self.statistics.rx_bytes += length as u64;
                handled += 1;
            }
            // The buffer goes straight back to the ring (the handler has finished with it).
            self.post_receive(slot);
            last_refilled = Some(slot);
            self.receive_next = (slot + 1) % size;
        }
        if let Some(slot) = last_refilled {
            // RDT names the slot after the last one the device may fill: the one just refilled
            // stays ours until the next batch moves the tail past it.
            self.registers.write_u32(rdt(self.index), slot as u32);
            self.statistics.notifications += 1;
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
        if checksum.is_some() {
            return Err(TransmitError::ChecksumOffloadUnavailable);
        }
        let size = self.transmit.size();
        // One slot stays empty: TDT == TDH means "nothing to send".
        if self.transmit_in_flight() + 1 >= size || self.pool.available() == 0 {
            self.reclaim_transmitted();
        }
        if self.transmit_in_flight() + 1 >= size {
            self.statistics.tx_full += 1;
            return Err(TransmitError::QueueFull);
        }
        let Some(buffer) = self.pool.allocate() else {
            self.statistics.tx_full += 1;
            return Err(TransmitError::QueueFull);
        };
        self.pool
            .with_bytes_mut(&buffer, length, |bytes| fill(bytes));
        let slot = self.transmit_tail;
        let address = self.buffer_addresses[usize::from(buffer.index())];
        let command = TransmitCommand::DATA_DESCRIPTOR
            | TransmitCommand::END_OF_PACKET
            | TransmitCommand::INSERT_FCS
            | TransmitCommand::REPORT_STATUS
            | TransmitCommand::DESCRIPTOR_EXTENSION;
        let descriptors = &mut self.transmit.descriptors;
        descriptors.write_u64(Ring::<R>::offset(slot, TX_BUFFER_ADDRESS), address.as_u64());
        descriptors.write_u32(
            Ring::<R>::offset(slot, TX_COMMAND_TYPE_LENGTH),
            command.bits() | length as u32,
        );
        descriptors.write_u32(
            Ring::<R>::offset(slot, TX_OFFLOAD_STATUS),
            (length as u32) << TX_PAYLOAD_LENGTH_SHIFT,
        );
        self.transmit.buffers[slot] = Some(buffer);
        self.transmit_tail = (slot + 1) % size;
        self.statistics.tx_frames += 1;
        self.statistics.tx_bytes += length as u64;
        Ok(())
    }

    fn tx_flush(&mut self) {
        if self.transmit_published != self.transmit_tail {
            self.registers
                .write_u32(tdt(self.index), self.transmit_tail as u32);
            self.transmit_published = self.transmit_tail;
            self.statistics.notifications += 1;
        }
        self.reclaim_transmitted();
    }

    /// The 82599 offloads checksums through context descriptors, which this driver does not
    /// write; the stack computes them.
    fn transmit_checksum_offload(&self) -> bool {
        false
    }

    fn max_frame_length(&self) -> usize {
        MAX_FRAME_LENGTH.min(self.pool.buffer_size())
    }

    /// Interrupts stay masked (EIMC) for the driver's whole life: it only polls.
    fn disable_interrupts(&mut self) {}

    /// Poll mode (ixy's): the driver never arms an interrupt (EIMC masks them all), so no
    /// interrupt would end a halt. The answer is always "keep polling": a core that halted on
    /// this queue could sleep through every frame that arrives.
    fn enable_interrupts(&mut self) -> bool {
        true
    }

    fn statistics(&self) -> QueueStatistics {
        self.statistics
    }
}
