//! Changes to the boot identity map: unmapping guard pages below stacks and making device
//! memory uncached, which split the 2 MiB pages they touch into 4 KiB pages (Intel SDM vol. 3,
//! 5.5 4-level paging).
//!
//! The tables are shared by every core and there is no TLB shootdown, so changes are made
//! only while the bootstrap processor is the only core running.

use spin::Mutex;
use x86_64::VirtAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::Cr3;

use crate::memory;
use crate::start::IDENTITY_MAPPED_GIB;
use unisock_kernel::mem::FRAME_SIZE;

const ENTRY_PRESENT: u64 = 1 << 0;
const ENTRY_WRITABLE: u64 = 1 << 1;
/// Page-level write-through and cache disable: with the power-on PAT (never reprogrammed
/// here), PWT|PCD selects PAT entry 3, uncached (Intel SDM vol. 3, 13.12.3, table 13-11). The
/// same bits in 2 MiB and 4 KiB entries.
const ENTRY_WRITE_THROUGH: u64 = 1 << 3;
const ENTRY_CACHE_DISABLE: u64 = 1 << 4;
const ENTRY_UNCACHED: u64 = ENTRY_WRITE_THROUGH | ENTRY_CACHE_DISABLE;
const ENTRY_HUGE_PAGE: u64 = 1 << 7;
const ENTRY_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const ENTRIES_PER_TABLE: u64 = 512;
const HUGE_PAGE_BYTES: u64 = 2 * 1024 * 1024;

/// Serialises edits (there is only one editor at boot, but the tables are global).
static EDIT_LOCK: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug)]
pub enum PagingError {
    /// The address is outside the identity map.
    NotMapped,
    /// No frame for the new page table.
    OutOfFrames,
}

/// Unmaps the 4 KiB page at `address` so that any access to it faults. Call only while no
/// other core runs.
pub fn unmap_guard_page(address: u64) -> Result<(), PagingError> {
    if address >= IDENTITY_MAPPED_GIB << 30 {
        return Err(PagingError::NotMapped);
    }
    let _guard = EDIT_LOCK.lock();
    let pml4 = Cr3::read().0.start_address().as_u64();
    let pdpt = entry_target(table_entry(pml4, address >> 39))?;
    let directory = entry_target(table_entry(pdpt, address >> 30))?;
    let directory_entry = table_entry(directory, address >> 21);
    // SAFETY: the page tables are identity-mapped and only this code edits them after boot.
    let entry = unsafe { directory_entry.read_volatile() };
    if entry & ENTRY_PRESENT == 0 {
        return Err(PagingError::NotMapped);
    }
    if entry & ENTRY_HUGE_PAGE != 0 {
        split_huge_page(directory_entry, entry)?;
    }
    let table = entry_target(directory_entry)?;
    // SAFETY: `table` is the 4 KiB page table of this address; clearing the entry unmaps
    // only the guard page, and the TLB entry is flushed right after.
    unsafe { table_entry(table, address >> 12).write_volatile(0) };
    tlb::flush(VirtAddr::new(address));
    Ok(())
}

/// What [`make_uncached`] changed, for the boot log.
#[derive(Clone, Copy, Debug, Default)]
pub struct UncachedSummary {
    pub huge_pages: u64,
    pub small_pages: u64,
}

/// Makes `range` (4 KiB-aligned, inside the identity map) uncached: whole 2 MiB pages in
/// their directory entry, the rest page by page after splitting. Call only while no other core
/// runs, and then [`flush_caches`].
pub fn make_uncached(range: core::ops::Range<u64>) -> Result<UncachedSummary, PagingError> {
    if range.end > IDENTITY_MAPPED_GIB << 30 {
        return Err(PagingError::NotMapped);
    }
    let _guard = EDIT_LOCK.lock();
    let pml4 = Cr3::read().0.start_address().as_u64();
    let mut summary = UncachedSummary::default();
    let mut address = range.start & !(FRAME_SIZE - 1);
    while address < range.end {
        let pdpt = entry_target(table_entry(pml4, address >> 39))?;
        let directory = entry_target(table_entry(pdpt, address >> 30))?;
        let directory_entry = table_entry(directory, address >> 21);
        // SAFETY: the page tables are identity-mapped and only this code edits them after boot.
        let entry = unsafe { directory_entry.read_volatile() };
        if entry & ENTRY_PRESENT == 0 {
            return Err(PagingError::NotMapped);
        }
        let whole =
            address.is_multiple_of(HUGE_PAGE_BYTES) && address + HUGE_PAGE_BYTES <= range.end;
        if whole && entry & ENTRY_HUGE_PAGE != 0 {
            // SAFETY: only the memory type of a 2 MiB page of device memory changes; the TLB
            // and caches are flushed by `flush_caches` before anything relies on it.
            unsafe { directory_entry.write_volatile(entry | ENTRY_UNCACHED) };
            summary.huge_pages += 1;
            address += HUGE_PAGE_BYTES;
            continue;
        }
        if entry & ENTRY_HUGE_PAGE != 0 {
            split_huge_page(directory_entry, entry)?;
        }
        let page_entry = table_entry(entry_target(directory_entry)?, address >> 12);
        // SAFETY: as above, for one 4 KiB page; a guard page's empty entry stays empty.
        unsafe {
            let value = page_entry.read_volatile();
            if value & ENTRY_PRESENT != 0 {
                page_entry.write_volatile(value | ENTRY_UNCACHED);
            }
        }
        summary.small_pages += 1;
        address += FRAME_SIZE;
    }
    Ok(summary)
}

/// Flushes the TLB and writes back and invalidates every cache, after memory types changed:
/// lines the old write-back mapping may have fetched (prefetched, even) must not outlive it
/// (Intel SDM vol. 3, 13.12.4, which asks for the same after a PAT change).
pub fn flush_caches() {
    tlb::flush_all();
    // SAFETY: wbinvd only writes back and invalidates caches; it is privileged, and the image
    // runs in ring 0.
    unsafe { core::arch::asm!("wbinvd", options(nostack, preserves_flags)) };
}

/// Replaces a 2 MiB mapping with a page table of 512 4 KiB pages that map the same memory
/// with the same memory type.
fn split_huge_page(directory_entry: *mut u64, entry: u64) -> Result<(), PagingError> {
    let table = memory::allocate_frames(1, FRAME_SIZE).ok_or(PagingError::OutOfFrames)?;
    let base = entry & ENTRY_ADDRESS_MASK & !(HUGE_PAGE_BYTES - 1);
    let memory_type = entry & ENTRY_UNCACHED;
    for index in 0..ENTRIES_PER_TABLE {
        let page = base + index * FRAME_SIZE;
        // SAFETY: `table` is a fresh, zeroed, identity-mapped frame that nothing else uses.
        unsafe {
            table_entry(table.start, index)
                .write_volatile(page | memory_type | ENTRY_PRESENT | ENTRY_WRITABLE)
        };
    }
    // SAFETY: the new table maps exactly what the huge page mapped, so the switch is
    // invisible to running code; the whole TLB is flushed after it.
    unsafe {
        directory_entry.write_volatile(table.start | ENTRY_PRESENT | ENTRY_WRITABLE);
    }
    tlb::flush_all();
    Ok(())
}

/// The entry of `table` (a physical, identity-mapped address) selected by the low 9 bits of
/// `index`.
fn table_entry(table: u64, index: u64) -> *mut u64 {
    (table + (index % ENTRIES_PER_TABLE) * 8) as *mut u64
}

/// The table an entry points to.
fn entry_target(entry: *mut u64) -> Result<u64, PagingError> {
    // SAFETY: `entry` points into an identity-mapped page table.
    let value = unsafe { entry.read_volatile() };
    if value & ENTRY_PRESENT == 0 || value & ENTRY_HUGE_PAGE != 0 {
        return Err(PagingError::NotMapped);
    }
    Ok(value & ENTRY_ADDRESS_MASK)
}
