//! The split virtqueue (virtio 1.2, 2.7): descriptor table, driver (available) ring and
//! device (used) ring in one DMA region, with driver-side bookkeeping of free descriptors.
//!
//! The device may write anything into the used ring; every index it provides is checked
//! before use and a bad one is reported as a [`QueueError`], never a panic.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use crate::hal::{Dma, DmaRegion, HalError, PhysAddr};
use crate::virtio::pci_transport::QueueAddresses;

/// Largest split queue size (2.7).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// `struct virtq_desc` (2.7.5): le64 addr, le32 len, le16 flags, le16 next.
const DESCRIPTOR_SIZE: usize = 16;
const DESCRIPTOR_ADDRESS: usize = 0;
const DESCRIPTOR_LENGTH: usize = 8;
const DESCRIPTOR_FLAGS: usize = 12;
const DESCRIPTOR_NEXT: usize = 14;
/// Descriptor flags (2.7.5).
const DESCRIPTOR_FLAG_NEXT: u16 = 1;
const DESCRIPTOR_FLAG_WRITE: u16 = 2;

/// `struct virtq_avail` (2.7.6): le16 flags, le16 idx, le16 ring[size], le16 used_event.
const AVAIL_FLAGS: usize = 0;
const AVAIL_INDEX: usize = 2;
const AVAIL_RING: usize = 4;
/// Driver ring flag: do not interrupt me when you use buffers (2.7.7).
pub const AVAIL_FLAG_NO_INTERRUPT: u16 = 1;

/// `struct virtq_used` (2.7.8): le16 flags, le16 idx, {le32 id, le32 len} ring[size],
/// le16 avail_event.
const USED_FLAGS: usize = 0;
const USED_INDEX: usize = 2;
const USED_RING: usize = 4;
const USED_ELEMENT_SIZE: usize = 8;
/// Device ring flag: do not notify me when you add buffers (2.7.10).
pub const USED_FLAG_NO_NOTIFY: u16 = 1;

/// Alignment of the used ring (2.7, table "Virtqueue Part Alignment").
const USED_ALIGNMENT: usize = 4;
const REGION_ALIGNMENT: usize = 4096;

/// One piece of a buffer chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub address: PhysAddr,
    pub length: u32,
    /// The device writes this piece (receive buffers, control acks); else it reads it.
    pub device_writable: bool,
}

/// A chain the device has finished with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsedBuffer {
    /// Head descriptor index, as returned by [`SplitVirtqueue::add`].
    pub head: u16,
    /// Bytes the device wrote into the chain's writable part.
    pub length: u32,
}

/// Why a virtqueue operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// Size is zero, not a power of two, or above 32768.
    InvalidSize { size: u16 },
    /// The ring memory could not be allocated.
    Dma(HalError),
    /// Not enough free descriptors for the chain.
    Full,
    /// A chain needs at least one segment.
    EmptyChain,
    /// The device returned a head index outside the descriptor table (entry skipped).
    UsedIdOutOfRange { id: u32 },
    /// The device returned a head that is not in flight: never published to it, or already
    /// returned (entry skipped).
    UsedIdNotInFlight { id: u16 },
    /// The device's used index claims more completions than there are buffers in flight;
    /// nothing is consumed.
    UsedIndexJump { used_index: u16, last_used: u16 },
}

/// A split virtqueue owned by the driver.
pub struct SplitVirtqueue<R: DmaRegion> {
    memory: R,
    size: u16,
    avail_offset: usize,
    used_offset: usize,
    /// Driver-side free list (never read back from device-visible memory).
    next_free: Vec<u16>,
    free_head: u16,
    free_count: u16,
    /// Number of descriptors in the chain headed here while it is in flight; 0 otherwise.
    chain_lengths: Vec<u16>,
    /// Whether the chain headed here has been published, so the device may return it.
    published: Vec<bool>,
    /// Heads added since the last publish, in order (driver-side: the device could
    /// scribble on the available ring).
    unpublished_heads: Vec<u16>,
    in_flight: u16,
    /// Available index including entries not yet published to the device.
    next_avail: u16,
    published_avail: u16,
    last_used: u16,
}

/// Bytes of ring memory for a queue of `size`, and where the avail and used rings start.
fn layout(size: u16) -> (usize, usize, usize) {
    let size = usize::from(size);
    let avail_offset = DESCRIPTOR_SIZE * size;
    let avail_end = avail_offset + AVAIL_RING + 2 * size + 2;
    let used_offset = avail_end.next_multiple_of(USED_ALIGNMENT);
    let total = used_offset + USED_RING + USED_ELEMENT_SIZE * size + 2;
    (total, avail_offset, used_offset)
}

impl<R: DmaRegion> SplitVirtqueue<R> {
    /// Allocates a zeroed queue of `size` descriptors.
    pub fn new<D: Dma<Region = R>>(dma: &D, size: u16) -> Result<Self, QueueError> {
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::InvalidSize { size });
        }
        let (total, avail_offset, used_offset) = layout(size);
        let memory = dma
            .allocate(total, REGION_ALIGNMENT)
            .map_err(QueueError::Dma)?;
        let next_free = (1..=size).map(|next| next % size).collect();
        Ok(SplitVirtqueue {
            memory,
            size,
            avail_offset,
            used_offset,
            next_free,
            free_head: 0,
            free_count: size,
            chain_lengths: vec![0; usize::from(size)],
            published: vec![false; usize::from(size)],
            unpublished_heads: Vec::with_capacity(usize::from(size)),
            in_flight: 0,
            next_avail: 0,
            published_avail: 0,
            last_used: 0,
        })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn free_descriptors(&self) -> u16 {
        self.free_count
    }

    /// Chains added and not yet returned by the device.
    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }

    pub fn addresses(&self) -> QueueAddresses {
        let base = self.memory.physical_address();
        QueueAddresses {
            descriptor_table: base,
            driver_area: PhysAddr(base.as_u64() + self.avail_offset as u64),
            device_area: PhysAddr(base.as_u64() + self.used_offset as u64),
        }
    }

    fn ring_position(&self, index: u16) -> usize {
        usize::from(index & (self.size - 1))
    }

    /// Writes a chain of descriptors and queues its head in the available ring. The device
    /// does not see it until [`publish`](Self::publish). Returns the head index, which
    /// [`pop_used`](Self::pop_used) reports when the device is done with the chain.
    pub fn add(&mut self, segments: &[Segment]) -> Result<u16, QueueError> {
        if segments.is_empty() {
            return Err(QueueError::EmptyChain);
        }
        if segments.len() > usize::from(self.free_count) {
            return Err(QueueError::Full);
        }
        let head = self.free_head;
        let mut current = head;
        for (position, segment) in segments.iter().enumerate() {
            let base = usize::from(current) * DESCRIPTOR_SIZE;
            let next = self.next_free[usize::from(current)];
            let is_last = position + 1 == segments.len();
            let mut flags = 0;
            if segment.device_writable {
                flags |= DESCRIPTOR_FLAG_WRITE;
            }
            if !is_last {
                flags |= DESCRIPTOR_FLAG_NEXT;
            }
            self.memory
                .write_u64(base + DESCRIPTOR_ADDRESS, segment.address.as_u64());
            self.memory
                .write_u32(base + DESCRIPTOR_LENGTH, segment.length);
            self.memory.write_u16(base + DESCRIPTOR_FLAGS, flags);
            self.memory
                .write_u16(base + DESCRIPTOR_NEXT, if is_last { 0 } else { next });
            if !is_last {
                current = next;
            } else {
                self.free_head = next;
            }
        }
        let length = segments.len() as u16;
        self.free_count -= length;
        self.chain_lengths[usize::from(head)] = length;
        self.unpublished_heads.push(head);
        self.in_flight += 1;
        let slot = self.avail_offset + AVAIL_RING + 2 * self.ring_position(self.next_avail);
        self.memory.write_u16(slot, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(head)
    }

    /// Makes every chain added so far visible to the device. Returns whether there was
    /// anything new; the caller then kicks the device if [`needs_notification`] says so.
    ///
    /// [`needs_notification`]: Self::needs_notification
    pub fn publish(&mut self) -> bool {
        if self.next_avail == self.published_avail {
            return false;
        }
        // The ring entries and descriptors must be visible before the index (2.7.13.3.1).
        fence(Ordering::Release);
        self.memory
            .write_u16(self.avail_offset + AVAIL_INDEX, self.next_avail);
        self.published_avail = self.next_avail;
        for head in self.unpublished_heads.drain(..) {
            self.published[usize::from(head)] = true;
        }
        true
    }

    /// Whether the device wants a notification for newly published buffers, i.e. it has not
    /// set NO_NOTIFY in the used ring (2.7.10).
    pub fn needs_notification(&self) -> bool {
        // The index store must be ordered before the flags load, or we could miss the device
        // clearing NO_NOTIFY just before it stopped polling (2.7.13.4.1).
        fence(Ordering::SeqCst);
        self.memory.read_u16(self.used_offset + USED_FLAGS) & USED_FLAG_NO_NOTIFY == 0
    }

    /// Asks the device not to interrupt (`suppressed`) or to interrupt again when it uses
    /// buffers (2.7.7). Only a hint: the device may still interrupt.
    pub fn set_interrupts_suppressed(&mut self, suppressed: bool) {
        let flags = if suppressed {
            AVAIL_FLAG_NO_INTERRUPT
        } else {
            0
        };
        self.memory
            .write_u16(self.avail_offset + AVAIL_FLAGS, flags);
        fence(Ordering::SeqCst);
    }

    pub fn interrupts_suppressed(&self) -> bool {
        self.memory.read_u16(self.avail_offset + AVAIL_FLAGS) & AVAIL_FLAG_NO_INTERRUPT != 0
    }

    /// Whether the device has returned chains not yet popped.
    pub fn has_used(&self) -> bool {
        self.memory.read_u16(self.used_offset + USED_INDEX) != self.last_used
    }

    /// Takes the next chain the device has finished with, freeing its descriptors.
    pub fn pop_used(&mut self) -> Result<Option<UsedBuffer>, QueueError> {
        let used_index = self.memory.read_u16(self.used_offset + USED_INDEX);
        let pending = used_index.wrapping_sub(self.last_used);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.in_flight {
            return Err(QueueError::UsedIndexJump {
                used_index,
                last_used: self.last_used,
            });
        }
        // Read the element only after seeing the index that covers it (2.7.13.3.1).
        fence(Ordering::Acquire);
        let element =
            self.used_offset + USED_RING + USED_ELEMENT_SIZE * self.ring_position(self.last_used);
        let id = self.memory.read_u32(element);
        let length = self.memory.read_u32(element + 4);
        self.last_used = self.last_used.wrapping_add(1);
        if id >= u32::from(self.size) {
            return Err(QueueError::UsedIdOutOfRange { id });
        }
        let head = id as u16;
        let chain_length = self.chain_lengths[usize::from(head)];
        // A chain added but not yet published is still the driver's: freeing it now would
        // hand its descriptors out twice once it is published.
        if chain_length == 0 || !self.published[usize::from(head)] {
            return Err(QueueError::UsedIdNotInFlight { id: head });
        }
        self.free_chain(head, chain_length);
        Ok(Some(UsedBuffer { head, length }))
    }

    /// Returns the chain's descriptors to the free list, following our own links (not the
    /// device-visible `next` fields, which the device could have scribbled on).
    fn free_chain(&mut self, head: u16, chain_length: u16) {
        let mut last = head;
        for _ in 1..chain_length {
            last = self.next_free[usize::from(last)];
        }
        self.next_free[usize::from(last)] = self.free_head;
        self.free_head = head;
        self.free_count += chain_length;
        self.chain_lengths[usize::from(head)] = 0;
        self.published[usize::from(head)] = false;
        self.in_flight -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::fake::{FakeDma, FakeMemory};

    fn segment(address: u64, length: u32, device_writable: bool) -> Segment {
        Segment {
            address: PhysAddr(address),
            length,
            device_writable,
        }
    }

    #[test]
    fn sizes_must_be_powers_of_two_up_to_32768() {
        let memory = FakeMemory::new();
        let dma = FakeDma::new(&memory);
        for size in [0, 3, 100, 65535] {
            assert_eq!(
                SplitVirtqueue::new(&dma, size).err(),
                Some(QueueError::InvalidSize { size })
            );
        }
        assert!(SplitVirtqueue::new(&dma, 32768).is_ok());
    }

    #[test]
    fn chains_are_linked_flagged_and_published_only_on_request() {
        let memory = FakeMemory::new();
        let mut queue = SplitVirtqueue::new(&FakeDma::new(&memory), 4).unwrap();
        let head = queue
            .add(&[
                segment(0x1000, 10, false),
                segment(0x2000, 20, false),
                segment(0x3000, 1, true),
            ])
            .unwrap();
        assert_eq!(queue.free_descriptors(), 1);
        let addresses = queue.addresses();
        let table = addresses.descriptor_table.as_u64();
        let mut current = head;
        let mut seen = Vec::new();
        loop {
            let base = table + 16 * u64::from(current);
            let flags = memory.read_u16(base + 12);
            seen.push((memory.read_u64(base), memory.read_u32(base + 8), flags));
            if flags & DESCRIPTOR_FLAG_NEXT == 0 {
                break;
            }
            current = memory.read_u16(base + 14);
        }
        assert_eq!(seen, [(0x1000, 10, 1), (0x2000, 20, 1), (0x3000, 1, 2)]);
        let driver_area = addresses.driver_area.as_u64();
        assert_eq!(memory.read_u16(driver_area + 2), 0, "not yet published");
        assert!(queue.publish());
        assert!(!queue.publish(), "nothing new");
        assert_eq!(memory.read_u16(driver_area + 2), 1);
        assert_eq!(memory.read_u16(driver_area + 4), head);
        assert_eq!(
            queue.add(&[segment(1, 1, false), segment(2, 1, false)]),
            Err(QueueError::Full)
        );
        assert_eq!(queue.add(&[]), Err(QueueError::EmptyChain));
    }

    #[test]
    fn a_completion_of_a_chain_not_yet_published_is_refused() {
        let memory = FakeMemory::new();
        let mut queue = SplitVirtqueue::new(&FakeDma::new(&memory), 4).unwrap();
        let head = queue.add(&[segment(0x1000, 10, true)]).unwrap();
        let device_area = queue.addresses().device_area.as_u64();
        // A device that returns a chain it was never shown.
        memory.write_u32(device_area + 4, head.into());
        memory.write_u32(device_area + 8, 10);
        memory.write_u16(device_area + 2, 1);
        assert_eq!(
            queue.pop_used(),
            Err(QueueError::UsedIdNotInFlight { id: head })
        );
        assert_eq!(queue.free_descriptors(), 3, "the chain stays the driver's");
        // Once published, the device may return it.
        assert!(queue.publish());
        memory.write_u32(device_area + 12, head.into());
        memory.write_u32(device_area + 16, 7);
        memory.write_u16(device_area + 2, 2);
        assert_eq!(queue.pop_used(), Ok(Some(UsedBuffer { head, length: 7 })));
        assert_eq!(queue.free_descriptors(), 4);
    }

    #[test]
    fn used_chains_return_their_descriptors() {
        let memory = FakeMemory::new();
        let mut queue = SplitVirtqueue::new(&FakeDma::new(&memory), 4).unwrap();
        let first = queue
            .add(&[segment(0x1000, 10, false), segment(0x2000, 1, true)])
            .unwrap();
        let second = queue
            .add(&[segment(0x3000, 10, false), segment(0x4000, 1, true)])
            .unwrap();
        queue.publish();
        assert_eq!(queue.free_descriptors(), 0);
        let device_area = queue.addresses().device_area.as_u64();
        // Complete out of order: second, then first.
        memory.write_u32(device_area + 4, second.into());
        memory.write_u32(device_area + 8, 7);
        memory.write_u32(device_area + 12, first.into());
        memory.write_u32(device_area + 16, 9);
        memory.write_u16(device_area + 2, 2);
        assert_eq!(
            queue.pop_used(),
            Ok(Some(UsedBuffer {
                head: second,
                length: 7
            }))
        );
        assert_eq!(queue.free_descriptors(), 2);
        assert_eq!(
            queue.pop_used(),
            Ok(Some(UsedBuffer {
                head: first,
                length: 9
            }))
        );
        assert_eq!(queue.pop_used(), Ok(None));
        assert_eq!(queue.free_descriptors(), 4);
        assert_eq!(queue.in_flight(), 0);
        // All four descriptors can be chained again.
        let chain = [segment(1, 1, false); 4];
        assert!(queue.add(&chain).is_ok());
    }
}
