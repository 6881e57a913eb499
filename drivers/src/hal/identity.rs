//! The real HAL for identity-mapped memory: volatile MMIO windows and heap-backed DMA regions.
//!
//! This file and [`super::port_io`] are the only places in the crate with `unsafe`. Both rest
//! on one platform promise, made by whoever constructs them (the boot crate): the physical
//! ranges involved are mapped at the same virtual address (device memory uncached).

use core::alloc::Layout;
use core::ptr::NonNull;

use super::{Dma, DmaRegion, HalError, Mmio, MmioMapper, PhysAddr};

const PAGE_SIZE: usize = 4096;

/// A window of device registers at a fixed virtual address.
#[derive(Debug)]
pub struct RawMmio {
    base: NonNull<u8>,
    length: usize,
}

// SAFETY: a `RawMmio` is an address range of device registers; moving the handle to another
// core does not change what the accesses do, and every access is a single volatile operation.
unsafe impl Send for RawMmio {}
// SAFETY: as above; register accesses through `&self` are volatile and carry no Rust-level
// aliasing assumption about the device memory.
unsafe impl Sync for RawMmio {}

impl RawMmio {
    /// # Safety
    /// `base..base + length` must be mapped uncached to device registers for as long as this
    /// value (and its clones) live, and no Rust reference may point into that range.
    pub unsafe fn new(base: NonNull<u8>, length: usize) -> Self {
        RawMmio { base, length }
    }

    /// A new handle for `length` bytes at `offset` within this window.
    pub fn subwindow(&self, offset: usize, length: usize) -> Option<RawMmio> {
        let end = offset.checked_add(length)?;
        if end > self.length {
            return None;
        }
        // SAFETY: `offset` is within the window (checked above), so the pointer stays inside
        // the same mapping; the new window is a sub-range of one that satisfies `new`'s contract.
        let base = unsafe { self.base.add(offset) };
        Some(RawMmio { base, length })
    }

    fn pointer<T>(&self, offset: usize) -> *mut T {
        checked_pointer(self.base, self.length, offset, "MMIO access", "window")
    }
}

impl Clone for RawMmio {
    fn clone(&self) -> Self {
        RawMmio {
            base: self.base,
            length: self.length,
        }
    }
}

impl Mmio for RawMmio {
    fn len(&self) -> usize {
        self.length
    }

    fn read_u8(&self, offset: usize) -> u8 {
        // SAFETY: `pointer` checked bounds and alignment; the range is mapped device memory
        // (constructor contract), so a volatile read is the intended register access.
        unsafe { self.pointer::<u8>(offset).read_volatile() }
    }

    fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: as in `read_u8`.
        u16::from_le(unsafe { self.pointer::<u16>(offset).read_volatile() })
    }

    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read_u8`.
        u32::from_le(unsafe { self.pointer::<u32>(offset).read_volatile() })
    }

    fn write_u8(&self, offset: usize, value: u8) {
        // SAFETY: `pointer` checked bounds and alignment; the range is mapped device memory
        // (constructor contract), so a volatile write is the intended register access.
        unsafe { self.pointer::<u8>(offset).write_volatile(value) }
    }

    fn write_u16(&self, offset: usize, value: u16) {
        // SAFETY: as in `write_u8`.
        unsafe { self.pointer::<u16>(offset).write_volatile(value.to_le()) }
    }

    fn write_u32(&self, offset: usize, value: u32) {
        // SAFETY: as in `write_u8`.
        unsafe { self.pointer::<u32>(offset).write_volatile(value.to_le()) }
    }
}

/// `base + offset` as a pointer to a `T`, for one access of a register window or DMA region
/// of `length` bytes at `base`. An access that would leave the range or be misaligned is a
/// driver bug, and panics (naming the `access` and the `container`) rather than touching
/// memory outside the range.
fn checked_pointer<T>(
    base: NonNull<u8>,
    length: usize,
    offset: usize,
    access: &str,
    container: &str,
) -> *mut T {
    let size = core::mem::size_of::<T>();
    assert!(
        offset.checked_add(size).is_some_and(|end| end <= length),
        "{access} at {offset:#x} outside a {container} of {length:#x} bytes"
    );
    assert!(
        offset.is_multiple_of(size),
        "misaligned {access} at {offset:#x}"
    );
    // SAFETY: `offset + size <= length` (checked above), so the pointer stays inside the
    // range that starts at `base`, which the caller owns.
    unsafe { base.as_ptr().add(offset).cast::<T>() }
}

/// Maps BARs on a platform that identity-maps all device memory (uncached).
#[derive(Debug)]
pub struct IdentityMmioMapper {
    _private: (),
}

impl IdentityMmioMapper {
    /// # Safety
    /// Every physical range later passed to [`MmioMapper::map`] must be identity-mapped,
    /// uncached, to device registers for the rest of the program, and never referenced by Rust
    /// references.
    pub unsafe fn new() -> Self {
        IdentityMmioMapper { _private: () }
    }
}

impl MmioMapper for IdentityMmioMapper {
    type Mmio = RawMmio;

    fn map(&self, physical: PhysAddr, length: usize) -> Result<RawMmio, HalError> {
        if length == 0 {
            return Err(HalError::ZeroSize);
        }
        let start = usize::try_from(physical.as_u64()).map_err(|_| HalError::UnmappableRange)?;
        start.checked_add(length).ok_or(HalError::UnmappableRange)?;
        let base = NonNull::new(start as *mut u8).ok_or(HalError::UnmappableRange)?;
        // SAFETY: the constructor's contract says this physical range is identity-mapped
        // device memory, so its physical address is also a valid virtual address for MMIO.
        Ok(unsafe { RawMmio::new(base, length) })
    }
}

/// DMA memory from the global allocator, on a platform whose heap is identity-mapped.
#[derive(Debug)]
pub struct IdentityMappedDma {
    _private: (),
}

impl IdentityMappedDma {
    /// # Safety
    /// The global allocator's memory must be identity-mapped (virtual address == physical
    /// address), cacheable and coherent with device DMA (true on x86_64).
    pub unsafe fn new() -> Self {
        IdentityMappedDma { _private: () }
    }
}

impl Dma for IdentityMappedDma {
    type Region = IdentityRegion;

    fn allocate(&self, bytes: usize, alignment: usize) -> Result<IdentityRegion, HalError> {
        if bytes == 0 {
            return Err(HalError::ZeroSize);
        }
        if !alignment.is_power_of_two() || alignment > PAGE_SIZE {
            return Err(HalError::UnsupportedAlignment);
        }
        // Page alignment keeps a region that fits in a page from crossing a page boundary,
        // which matters to no virtio device but costs little and helps future IOMMU use.
        let layout = Layout::from_size_align(
            bytes,
            alignment.max(PAGE_SIZE.min(bytes.next_power_of_two())),
        )
        .map_err(|_| HalError::UnsupportedAlignment)?;
        // SAFETY: `layout` has a non-zero size (checked above).
        let pointer = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let base = NonNull::new(pointer).ok_or(HalError::OutOfDmaMemory)?;
        Ok(IdentityRegion { base, layout })
    }
}

/// A DMA region allocated by [`IdentityMappedDma`].
#[derive(Debug)]
pub struct IdentityRegion {
    base: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the region owns its allocation exclusively; moving it to another core moves that
// ownership, and all access goes through `&self`/`&mut self`.
unsafe impl Send for IdentityRegion {}

impl IdentityRegion {
    fn pointer<T>(&self, offset: usize) -> *mut T {
        checked_pointer(
            self.base,
            self.layout.size(),
            offset,
            "DMA access",
            "region",
        )
    }

    fn check_range(&self, offset: usize, length: usize) {
        assert!(
            offset
                .checked_add(length)
                .is_some_and(|end| end <= self.layout.size()),
            "DMA byte range {offset:#x}+{length:#x} outside a region of {:#x} bytes",
            self.layout.size()
        );
    }
}

impl DmaRegion for IdentityRegion {
    fn physical_address(&self) -> PhysAddr {
        PhysAddr(self.base.as_ptr() as u64)
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: `pointer` checked bounds and alignment inside our live allocation. Volatile,
        // because the device may write this memory behind the compiler's back.
        u16::from_le(unsafe { self.pointer::<u16>(offset).read_volatile() })
    }

    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read_u16`.
        u32::from_le(unsafe { self.pointer::<u32>(offset).read_volatile() })
    }

    fn read_u64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read_u16`.
        u64::from_le(unsafe { self.pointer::<u64>(offset).read_volatile() })
    }

    fn write_u16(&mut self, offset: usize, value: u16) {
        // SAFETY: `pointer` checked bounds and alignment inside our live allocation, and
        // `&mut self` excludes any outstanding byte view. Volatile, because the device reads it.
        unsafe { self.pointer::<u16>(offset).write_volatile(value.to_le()) }
    }

    fn write_u32(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `write_u16`.
        unsafe { self.pointer::<u32>(offset).write_volatile(value.to_le()) }
    }

    fn write_u64(&mut self, offset: usize, value: u64) {
        // SAFETY: as in `write_u16`.
        unsafe { self.pointer::<u64>(offset).write_volatile(value.to_le()) }
    }

    fn with_bytes<R>(&self, offset: usize, length: usize, reader: impl FnOnce(&[u8]) -> R) -> R {
        self.check_range(offset, length);
        // SAFETY: the range is inside our live allocation (checked above); `&self` excludes
        // writes through this handle while the slice lives, and the driver lends only bytes
        // the device has finished with (trait contract).
        let bytes = unsafe { core::slice::from_raw_parts(self.base.as_ptr().add(offset), length) };
        reader(bytes)
    }

    fn with_bytes_mut<R>(
        &mut self,
        offset: usize,
        length: usize,
        writer: impl FnOnce(&mut [u8]) -> R,
    ) -> R {
        self.check_range(offset, length);
        // SAFETY: the range is inside our live allocation (checked above); `&mut self` makes
        // this the only view, and the device does not touch bytes it has not been given.
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(self.base.as_ptr().add(offset), length) };
        writer(bytes)
    }
}

impl Drop for IdentityRegion {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed` with exactly this layout and is freed once.
        unsafe { alloc::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::net::{VirtioNet, VirtioNetQueue};

    fn assert_send<T: Send>() {}

    #[test]
    fn driver_objects_over_the_real_hal_can_move_to_their_core() {
        assert_send::<VirtioNetQueue<RawMmio, IdentityRegion>>();
        assert_send::<VirtioNet<RawMmio, IdentityRegion>>();
    }

    #[test]
    fn dma_regions_are_zeroed_aligned_and_little_endian() {
        // SAFETY: on the host the "physical" address is just the heap pointer; nothing here
        // gives it to a device.
        let dma = unsafe { IdentityMappedDma::new() };
        let mut region = dma.allocate(6000, 16).unwrap();
        assert_eq!(region.physical_address().as_u64() % 4096, 0);
        assert_eq!(region.len(), 6000);
        region.with_bytes(0, 6000, |bytes| {
            assert!(bytes.iter().all(|byte| *byte == 0))
        });
        region.write_u32(8, 0x0403_0201);
        region.write_u64(16, 0x0807_0605_0403_0201);
        region.with_bytes(8, 4, |bytes| assert_eq!(bytes, [1, 2, 3, 4]));
        assert_eq!(region.read_u16(10), 0x0403);
        assert_eq!(region.read_u64(16), 0x0807_0605_0403_0201);
        region.with_bytes_mut(5996, 4, |bytes| bytes.copy_from_slice(b"tail"));
        assert_eq!(region.read_u32(5996), u32::from_le_bytes(*b"tail"));
        assert_eq!(dma.allocate(0, 8).err(), Some(HalError::ZeroSize));
        assert_eq!(
            dma.allocate(8, 3).err(),
            Some(HalError::UnsupportedAlignment)
        );
        assert_eq!(
            dma.allocate(8, 8192).err(),
            Some(HalError::UnsupportedAlignment)
        );
    }

    #[test]
    #[should_panic(expected = "outside a region")]
    fn out_of_range_dma_access_panics_instead_of_corrupting_memory() {
        // SAFETY: as above.
        let dma = unsafe { IdentityMappedDma::new() };
        let region = dma.allocate(64, 8).unwrap();
        region.read_u32(64);
    }

    #[test]
    fn mmio_windows_access_registers_by_offset_and_refuse_to_grow() {
        let mut registers = [0u32; 8];
        let base = NonNull::new(registers.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `registers` outlives the window and is only touched through it below.
        let window = unsafe { RawMmio::new(base, 32) };
        window.write_u32(4, 0xdead_beef);
        window.write_u16(8, 0x1234);
        window.write_u8(10, 0x56);
        assert_eq!(window.read_u32(4), 0xdead_beef);
        assert_eq!(window.read_u32(8), 0x0056_1234);
        window.write_u64(16, 0x1122_3344_5566_7788);
        assert_eq!(window.read_u32(16), 0x5566_7788);
        assert_eq!(window.read_u64(16), 0x1122_3344_5566_7788);
        let sub = window.subwindow(16, 16).unwrap();
        assert_eq!(sub.read_u32(0), 0x5566_7788);
        assert!(window.subwindow(16, 17).is_none());
        // Through the window only: the array stays untouched by Rust references meanwhile.
        assert_eq!(window.read_u32(4), 0xdead_beef);
    }
}
