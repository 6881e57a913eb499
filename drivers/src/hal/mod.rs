//! The hardware abstraction layer: the only way driver logic touches MMIO, port I/O, DMA memory and physical addresses.
//!
//! Driver code is generic over these traits and contains no `unsafe`. The image provides the
//! real implementations (see [`identity`] for identity-mapped memory and [`port_io`] for x86
//! port I/O); host tests provide fakes over plain memory that also play the device's part.

#[allow(unsafe_code)]
pub mod identity;
#[allow(unsafe_code)]
pub mod port_io;

#[cfg(test)]
pub mod fake;

use core::fmt;

/// A physical (bus) address, as a device sees it in DMA and BAR registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(pub u64);

impl PhysAddr {
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// This address plus `bytes`, or `None` on overflow.
    pub fn checked_add(self, bytes: u64) -> Option<PhysAddr> {
        self.0.checked_add(bytes).map(PhysAddr)
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:#x}", self.0)
    }
}

/// A window of device registers (a mapped BAR or a part of one).
///
/// Accesses are volatile and little-endian as the device defines them. Offsets are relative to
/// the start of the window; an access outside `len()` is a driver bug and panics, which is why
/// drivers check every device-provided offset against the window when they parse it.
pub trait Mmio {
    /// Size of the window in bytes.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_u8(&self, offset: usize) -> u8;
    fn read_u16(&self, offset: usize) -> u16;
    fn read_u32(&self, offset: usize) -> u32;
    fn write_u8(&self, offset: usize, value: u8);
    fn write_u16(&self, offset: usize, value: u16);
    fn write_u32(&self, offset: usize, value: u32);

    /// A 64-bit register accessed as two 32-bit halves, low first: virtio 1.x (4.1.3.1) lets
    /// the driver split 64-bit fields, and some platforms do not support 64-bit MMIO.
    fn read_u64(&self, offset: usize) -> u64 {
        let low = u64::from(self.read_u32(offset));
        let high = u64::from(self.read_u32(offset + 4));
        low | (high << 32)
    }

    fn write_u64(&self, offset: usize, value: u64) {
        self.write_u32(offset, value as u32);
        self.write_u32(offset + 4, (value >> 32) as u32);
    }
}

/// Maps a physical range of device memory (a BAR) into an [`Mmio`] window.
pub trait MmioMapper {
    type Mmio: Mmio;

    /// Makes `length` bytes of device memory at `physical` accessible, uncached.
    fn map(&self, physical: PhysAddr, length: usize) -> Result<Self::Mmio, HalError>;
}

/// x86 I/O port space (used by PCI configuration mechanism #1 and legacy devices).
pub trait PortIo {
    fn read_u32(&self, port: u16) -> u32;
    fn write_u32(&self, port: u16, value: u32);
}

/// Allocates memory that a device can reach by DMA.
pub trait Dma {
    type Region: DmaRegion;

    /// Allocates `bytes` of physically contiguous, zeroed memory aligned to `alignment`
    /// (a power of two, at most 4096).
    fn allocate(&self, bytes: usize, alignment: usize) -> Result<Self::Region, HalError>;
}

/// One physically contiguous DMA allocation, owned by the driver; freed on drop.
///
/// Word accessors are volatile and little-endian: they are how the driver reads and writes
/// memory that the device may access at the same time (descriptor rings). The byte views are
/// for memory the device is not using right now (a packet buffer before it is posted or after
/// the device handed it back). Offsets outside the region are a driver bug and panic.
pub trait DmaRegion {
    fn physical_address(&self) -> PhysAddr;
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_u16(&self, offset: usize) -> u16;
    fn read_u32(&self, offset: usize) -> u32;
    fn read_u64(&self, offset: usize) -> u64;
    fn write_u16(&mut self, offset: usize, value: u16);
    fn write_u32(&mut self, offset: usize, value: u32);
    fn write_u64(&mut self, offset: usize, value: u64);

    /// Lends `length` bytes at `offset` to `reader`.
    fn with_bytes<R>(&self, offset: usize, length: usize, reader: impl FnOnce(&[u8]) -> R) -> R;

    /// Lends `length` bytes at `offset` to `writer`.
    fn with_bytes_mut<R>(
        &mut self,
        offset: usize,
        length: usize,
        writer: impl FnOnce(&mut [u8]) -> R,
    ) -> R;
}

/// Busy-wait delays, for the bounded polls of a device's reset and initialisation handshakes.
///
/// Drivers never wait without a bound: every poll is a number of attempts with a delay
/// between them, so a device that never answers costs a known time and yields an error.
pub trait Timer {
    /// Waits at least `microseconds`.
    fn delay_microseconds(&self, microseconds: u64);
}

/// Why a HAL request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HalError {
    /// No memory left for a DMA allocation of this size and alignment.
    OutOfDmaMemory,
    /// The requested alignment is not a power of two or is larger than a page.
    UnsupportedAlignment,
    /// A zero-sized allocation or mapping was requested.
    ZeroSize,
    /// The platform cannot map this physical range.
    UnmappableRange,
}
