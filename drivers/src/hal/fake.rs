//! Test-only HAL: simulated physical memory, DMA regions in it, and MMIO windows backed by
//! register models that play the device's side.

use core::cell::{Cell, RefCell};
use std::rc::Rc;
use std::vec::Vec;

use super::{Dma, DmaRegion, HalError, Mmio, MmioMapper, PhysAddr, Timer};

/// Simulated time in nanoseconds, shared by a [`FakeTimer`] (which advances it when the
/// driver waits) and the device models that read it (a bit that becomes set "after 5 ms").
#[derive(Clone, Default)]
pub struct FakeClock {
    nanoseconds: Rc<Cell<u64>>,
}

impl FakeClock {
    pub fn new() -> Self {
        FakeClock::default()
    }

    pub fn now_nanoseconds(&self) -> u64 {
        self.nanoseconds.get()
    }

    pub fn advance_nanoseconds(&self, nanoseconds: u64) {
        self.nanoseconds.set(self.nanoseconds.get() + nanoseconds);
    }
}

/// A [`Timer`] whose delays advance a [`FakeClock`] instead of spinning.
#[derive(Clone, Default)]
pub struct FakeTimer {
    clock: FakeClock,
}

impl FakeTimer {
    pub fn new(clock: &FakeClock) -> Self {
        FakeTimer {
            clock: clock.clone(),
        }
    }
}

impl Timer for FakeTimer {
    fn delay_microseconds(&self, microseconds: u64) {
        self.clock.advance_nanoseconds(microseconds * 1000);
    }
}

/// Physical address of the first byte of simulated memory; non-zero so that a forgotten
/// address (zero) in a descriptor is caught.
pub const FAKE_MEMORY_BASE: u64 = 0x4000_0000;

#[derive(Default)]
struct MemoryInner {
    bytes: Vec<u8>,
    live_regions: usize,
}

/// Simulated physical memory shared by the driver (through [`FakeRegion`]s) and a fake
/// device (through physical addresses).
#[derive(Clone, Default)]
pub struct FakeMemory {
    inner: Rc<RefCell<MemoryInner>>,
}

impl FakeMemory {
    pub fn new() -> Self {
        FakeMemory::default()
    }

    fn index(&self, physical: u64, length: usize) -> usize {
        let start = physical
            .checked_sub(FAKE_MEMORY_BASE)
            .unwrap_or_else(|| panic!("physical address {physical:#x} below simulated memory"));
        let start = usize::try_from(start).unwrap();
        assert!(
            start + length <= self.inner.borrow().bytes.len(),
            "physical range {physical:#x}+{length:#x} outside simulated memory"
        );
        start
    }

    pub fn read(&self, physical: u64, buffer: &mut [u8]) {
        let start = self.index(physical, buffer.len());
        buffer.copy_from_slice(&self.inner.borrow().bytes[start..start + buffer.len()]);
    }

    pub fn write(&self, physical: u64, bytes: &[u8]) {
        let start = self.index(physical, bytes.len());
        self.inner.borrow_mut().bytes[start..start + bytes.len()].copy_from_slice(bytes);
    }

    pub fn read_vec(&self, physical: u64, length: usize) -> Vec<u8> {
        let mut buffer = std::vec![0; length];
        self.read(physical, &mut buffer);
        buffer
    }

    pub fn read_u16(&self, physical: u64) -> u16 {
        let mut bytes = [0; 2];
        self.read(physical, &mut bytes);
        u16::from_le_bytes(bytes)
    }

    pub fn read_u32(&self, physical: u64) -> u32 {
        let mut bytes = [0; 4];
        self.read(physical, &mut bytes);
        u32::from_le_bytes(bytes)
    }

    pub fn read_u64(&self, physical: u64) -> u64 {
        let mut bytes = [0; 8];
        self.read(physical, &mut bytes);
        u64::from_le_bytes(bytes)
    }

    pub fn write_u16(&self, physical: u64, value: u16) {
        self.write(physical, &value.to_le_bytes());
    }

    pub fn write_u32(&self, physical: u64, value: u32) {
        self.write(physical, &value.to_le_bytes());
    }

    /// Regions allocated and not yet dropped.
    pub fn live_regions(&self) -> usize {
        self.inner.borrow().live_regions
    }
}

/// Allocates [`FakeRegion`]s from a [`FakeMemory`] with a bump pointer (never reused, so a
/// use after free shows up as stale data rather than silent aliasing).
pub struct FakeDma {
    memory: FakeMemory,
    /// When set, allocations fail once this many more have succeeded.
    allocations_before_failure: Cell<Option<usize>>,
}

impl FakeDma {
    pub fn new(memory: &FakeMemory) -> Self {
        FakeDma {
            memory: memory.clone(),
            allocations_before_failure: Cell::new(None),
        }
    }

    pub fn fail_after(&self, successful_allocations: usize) {
        self.allocations_before_failure
            .set(Some(successful_allocations));
    }
}

impl Dma for FakeDma {
    type Region = FakeRegion;

    fn allocate(&self, bytes: usize, alignment: usize) -> Result<FakeRegion, HalError> {
        if bytes == 0 {
            return Err(HalError::ZeroSize);
        }
        if !alignment.is_power_of_two() || alignment > 4096 {
            return Err(HalError::UnsupportedAlignment);
        }
        match self.allocations_before_failure.get() {
            Some(0) => return Err(HalError::OutOfDmaMemory),
            Some(remaining) => self.allocations_before_failure.set(Some(remaining - 1)),
            None => {}
        }
        let mut inner = self.memory.inner.borrow_mut();
        let start = inner.bytes.len().next_multiple_of(alignment);
        inner.bytes.resize(start + bytes, 0);
        inner.live_regions += 1;
        Ok(FakeRegion {
            memory: self.memory.clone(),
            start,
            length: bytes,
        })
    }
}

/// A DMA region inside [`FakeMemory`].
pub struct FakeRegion {
    memory: FakeMemory,
    start: usize,
    length: usize,
}

impl FakeRegion {
    fn range(&self, offset: usize, length: usize) -> core::ops::Range<usize> {
        assert!(offset + length <= self.length, "DMA access outside region");
        self.start + offset..self.start + offset + length
    }

    fn read_array<const N: usize>(&self, offset: usize) -> [u8; N] {
        assert_eq!(offset % N, 0, "misaligned DMA access");
        let range = self.range(offset, N);
        self.memory.inner.borrow().bytes[range].try_into().unwrap()
    }

    fn write_array<const N: usize>(&mut self, offset: usize, bytes: [u8; N]) {
        assert_eq!(offset % N, 0, "misaligned DMA access");
        let range = self.range(offset, N);
        self.memory.inner.borrow_mut().bytes[range].copy_from_slice(&bytes);
    }
}

impl DmaRegion for FakeRegion {
    fn physical_address(&self) -> PhysAddr {
        PhysAddr(FAKE_MEMORY_BASE + self.start as u64)
    }

    fn len(&self) -> usize {
        self.length
    }

    fn read_u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.read_array(offset))
    }

    fn read_u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.read_array(offset))
    }

    fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.read_array(offset))
    }

    fn write_u16(&mut self, offset: usize, value: u16) {
        self.write_array(offset, value.to_le_bytes());
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        self.write_array(offset, value.to_le_bytes());
    }

    fn write_u64(&mut self, offset: usize, value: u64) {
        self.write_array(offset, value.to_le_bytes());
    }

    fn with_bytes<R>(&self, offset: usize, length: usize, reader: impl FnOnce(&[u8]) -> R) -> R {
        let range = self.range(offset, length);
        reader(&self.memory.inner.borrow().bytes[range])
    }

    fn with_bytes_mut<R>(
        &mut self,
        offset: usize,
        length: usize,
        writer: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        let range = self.range(offset, length);
        writer(&mut self.memory.inner.borrow_mut().bytes[range])
    }
}

impl Drop for FakeRegion {
    fn drop(&mut self) {
        self.memory.inner.borrow_mut().live_regions -= 1;
    }
}

/// A device's register file: what reads return and what writes do.
pub trait RegisterModel {
    fn read(&self, offset: usize, width: usize) -> u64;
    fn write(&self, offset: usize, width: usize, value: u64);
}

/// An MMIO window onto part of a [`RegisterModel`].
#[derive(Clone)]
pub struct FakeMmio {
    model: Rc<dyn RegisterModel>,
    base: usize,
    length: usize,
}

impl FakeMmio {
    fn check(&self, offset: usize, width: usize) -> usize {
        assert!(
            offset + width <= self.length,
            "MMIO access at {offset:#x} outside window"
        );
        assert_eq!(offset % width, 0, "misaligned MMIO access");
        self.base + offset
    }
}

impl Mmio for FakeMmio {
    fn len(&self) -> usize {
        self.length
    }

    fn read_u8(&self, offset: usize) -> u8 {
        self.model.read(self.check(offset, 1), 1) as u8
    }

    fn read_u16(&self, offset: usize) -> u16 {
        self.model.read(self.check(offset, 2), 2) as u16
    }

    fn read_u32(&self, offset: usize) -> u32 {
        self.model.read(self.check(offset, 4), 4) as u32
    }

    fn write_u8(&self, offset: usize, value: u8) {
        self.model.write(self.check(offset, 1), 1, value.into())
    }

    fn write_u16(&self, offset: usize, value: u16) {
        self.model.write(self.check(offset, 2), 2, value.into())
    }

    fn write_u32(&self, offset: usize, value: u32) {
        self.model.write(self.check(offset, 4), 4, value.into())
    }
}

/// A device register window at a physical address.
struct Window {
    physical: u64,
    length: usize,
    model: Rc<dyn RegisterModel>,
}

/// Maps physical ranges inside registered device windows to [`FakeMmio`]s.
#[derive(Default)]
pub struct FakeMmioMapper {
    windows: RefCell<Vec<Window>>,
}

impl FakeMmioMapper {
    pub fn add_window(&self, physical: u64, length: usize, model: Rc<dyn RegisterModel>) {
        self.windows.borrow_mut().push(Window {
            physical,
            length,
            model,
        });
    }
}

impl MmioMapper for FakeMmioMapper {
    type Mmio = FakeMmio;

    fn map(&self, physical: PhysAddr, length: usize) -> Result<FakeMmio, HalError> {
        if length == 0 {
            return Err(HalError::ZeroSize);
        }
        let address = physical.as_u64();
        for window in self.windows.borrow().iter() {
            let end = window.physical + window.length as u64;
            if address >= window.physical && address + length as u64 <= end {
                return Ok(FakeMmio {
                    model: window.model.clone(),
                    base: (address - window.physical) as usize,
                    length,
                });
            }
        }
        Err(HalError::UnmappableRange)
    }
}
