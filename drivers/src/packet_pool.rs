//! A per-core pool of fixed-size DMA packet buffers, handed out as owned [`PacketBuffer`]
//! handles (an index into one contiguous region).

use alloc::vec::Vec;

use crate::hal::{Dma, DmaRegion, HalError, PhysAddr};

/// Default buffer size: a 1514-byte frame plus the 12-byte virtio-net header fits.
pub const DEFAULT_BUFFER_SIZE: usize = 2048;

/// An owned packet buffer of a [`PacketPool`]. It is not `Clone`: whoever holds it (the pool,
/// a ring slot, a caller) is its only owner, and it goes back with [`PacketPool::release`].
#[derive(Debug, PartialEq, Eq)]
pub struct PacketBuffer {
    index: u16,
}

impl PacketBuffer {
    pub fn index(&self) -> u16 {
        self.index
    }
}

/// Why a pool could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// Zero buffers, more than 65536, or a buffer size not a multiple of 64.
    BadGeometry {
        count: usize,
        buffer_size: usize,
    },
    Dma(HalError),
}

/// Fixed-size DMA buffers carved from one region; allocation and release are O(1) and
/// lock-free (the pool has one owner).
pub struct PacketPool<R: DmaRegion> {
    memory: R,
    buffer_size: usize,
    count: usize,
    free: Vec<u16>,
}

impl<R: DmaRegion> PacketPool<R> {
    pub fn new<D: Dma<Region = R>>(
        dma: &D,
        count: usize,
        buffer_size: usize,
    ) -> Result<Self, PoolError> {
        if count == 0
            || count > usize::from(u16::MAX) + 1
            || buffer_size == 0
            || !buffer_size.is_multiple_of(64)
        {
            return Err(PoolError::BadGeometry { count, buffer_size });
        }
        let memory = dma
            .allocate(count * buffer_size, 4096)
            .map_err(PoolError::Dma)?;
        // Hand out low indices first: a reversed stack pops 0, 1, 2, ...
        let free = (0..count).rev().map(|index| index as u16).collect();
        Ok(PacketPool {
            memory,
            buffer_size,
            count,
            free,
        })
    }

    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    pub fn capacity(&self) -> usize {
        self.count
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub fn allocate(&mut self) -> Option<PacketBuffer> {
        self.free.pop().map(|index| PacketBuffer { index })
    }

    pub fn release(&mut self, buffer: PacketBuffer) {
        debug_assert!(usize::from(buffer.index) < self.count);
        debug_assert!(
            self.free.len() < self.count,
            "more buffers released than allocated"
        );
        self.free.push(buffer.index);
    }

    fn offset(&self, buffer: &PacketBuffer) -> usize {
        usize::from(buffer.index) * self.buffer_size
    }

    pub fn physical_address(&self, buffer: &PacketBuffer) -> PhysAddr {
        PhysAddr(self.memory.physical_address().as_u64() + self.offset(buffer) as u64)
    }

    /// The bus address of buffer `index` (for drivers that precompute every buffer's address).
    pub fn physical_address_of_index(&self, index: usize) -> PhysAddr {
        PhysAddr(self.memory.physical_address().as_u64() + (index * self.buffer_size) as u64)
    }

    /// Lends the first `length` bytes of `buffer` (at most the buffer size).
    pub fn with_bytes<T>(
        &self,
        buffer: &PacketBuffer,
        length: usize,
        reader: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let length = length.min(self.buffer_size);
        self.memory.with_bytes(self.offset(buffer), length, reader)
    }

    /// Lends the first `length` bytes of `buffer` (at most the buffer size) for writing.
    pub fn with_bytes_mut<T>(
        &mut self,
        buffer: &PacketBuffer,
        length: usize,
        writer: impl FnOnce(&mut [u8]) -> T,
    ) -> T {
        let length = length.min(self.buffer_size);
        let offset = self.offset(buffer);
        self.memory.with_bytes_mut(offset, length, writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::fake::{FakeDma, FakeMemory};

    #[test]
    fn buffers_are_distinct_and_come_back() {
        let memory = FakeMemory::new();
        let mut pool = PacketPool::new(&FakeDma::new(&memory), 4, 2048).unwrap();
        let buffers: Vec<_> = core::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(buffers.len(), 4);
        assert!(pool.allocate().is_none());
        let addresses: Vec<_> = buffers
            .iter()
            .map(|buffer| pool.physical_address(buffer))
            .collect();
        for pair in addresses.windows(2) {
            assert_eq!(pair[1].as_u64() - pair[0].as_u64(), 2048);
        }
        pool.with_bytes_mut(&buffers[1], 3, |bytes| bytes.copy_from_slice(b"abc"));
        assert_eq!(memory.read_vec(addresses[1].as_u64(), 3), b"abc");
        for buffer in buffers {
            pool.release(buffer);
        }
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn rejects_bad_geometry_and_reports_dma_failure() {
        let memory = FakeMemory::new();
        let dma = FakeDma::new(&memory);
        assert!(matches!(
            PacketPool::new(&dma, 0, 2048),
            Err(PoolError::BadGeometry { .. })
        ));
        assert!(matches!(
            PacketPool::new(&dma, 4, 100),
            Err(PoolError::BadGeometry { .. })
        ));
        dma.fail_after(0);
        assert_eq!(
            PacketPool::new(&dma, 4, 2048).err(),
            Some(PoolError::Dma(HalError::OutOfDmaMemory))
        );
    }
}
