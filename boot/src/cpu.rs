//! Each core's own state: its GDT and TSS (with the fault stack), and the per-core data block
//! that `gs` points to.

use alloc::boxed::Box;

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::model_specific::GsBase;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

use crate::interrupts::{self, FAULT_STACK_INDEX};
use crate::memory;
use unisock_kernel::mem::FRAME_SIZE;

/// Frames of each core's fault stack (double fault, NMI, machine check).
const FAULT_STACK_FRAMES: u64 = 4;

/// The data block of one core; `gs:0` holds its address.
#[repr(C)]
pub struct Core {
    /// Points to this block, so `mov rax, gs:[0]` finds it.
    self_pointer: *const Core,
    /// Dense index: 0 is the bootstrap processor, then APs in the order they came up.
    pub index: u32,
    /// The local APIC id, as the core itself reads it.
    pub apic_id: u32,
    /// Top of the core's main stack.
    pub stack_top: u64,
}

// SAFETY: a `Core` is written once before its core starts using it and only read after.
unsafe impl Sync for Core {}

#[derive(Clone, Copy, Debug)]
pub enum CpuError {
    OutOfFrames,
}

/// Gives the calling core its GDT, TSS, IDT and data block. Needs the heap.
pub fn install(index: u32, apic_id: u32, stack_top: u64) -> Result<&'static Core, CpuError> {
    let fault_stack =
        memory::allocate_frames(FAULT_STACK_FRAMES, FRAME_SIZE).ok_or(CpuError::OutOfFrames)?;
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[usize::from(FAULT_STACK_INDEX)] = VirtAddr::new(fault_stack.end());
    let tss: &'static TaskStateSegment = Box::leak(Box::new(tss));

    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let task = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!(code.0, crate::start::KERNEL_CODE_SELECTOR);
    debug_assert_eq!(data.0, crate::start::KERNEL_DATA_SELECTOR);
    let gdt: &'static GlobalDescriptorTable = gdt;
    gdt.load();
    // SAFETY: the selectors name the code, data and TSS descriptors of the GDT just loaded,
    // which lives forever; the code and data segments match the boot GDT's.
    unsafe {
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        load_tss(task);
    }
    interrupts::load();

    let core: &'static mut Core = Box::leak(Box::new(Core {
        self_pointer: core::ptr::null(),
        index,
        apic_id,
        stack_top,
    }));
    core.self_pointer = core as *const Core;
    GsBase::write(VirtAddr::new(core.self_pointer as u64));
    Ok(core)
}

/// This core's data block, once [`install`] has run on it.
pub fn current() -> Option<&'static Core> {
    let base = GsBase::read().as_u64();
    // SAFETY: a non-zero GS base was set by `install` to a leaked, never-freed `Core`.
    (base != 0).then(|| unsafe { &*(base as *const Core) })
}

/// This core's index; 0 before the data block exists (only the BSP runs then).
pub fn current_index() -> u32 {
    current().map_or(0, |core| core.index)
}
