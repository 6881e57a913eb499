//! Changes to the boot identity map: unmapping guard pages below stacks, which splits the
//! 2 MiB page around them into 4 KiB pages (Intel SDM vol. 3, 5.5 4-level paging).
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

/// Replaces a 2 MiB mapping with a page table of 512 4 KiB pages that map the same memory.
fn split_huge_page(directory_entry: *mut u64, entry: u64) -> Result<(), PagingError> {
    let table = memory::allocate_frames(1, FRAME_SIZE).ok_or(PagingError::OutOfFrames)?;
    let base = entry & ENTRY_ADDRESS_MASK & !(HUGE_PAGE_BYTES - 1);
    for index in 0..ENTRIES_PER_TABLE {
        let page = base + index * FRAME_SIZE;
        // SAFETY: `table` is a fresh, zeroed, identity-mapped frame that nothing else uses.
        unsafe {
            table_entry(table.start, index).write_volatile(page | ENTRY_PRESENT | ENTRY_WRITABLE)
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
