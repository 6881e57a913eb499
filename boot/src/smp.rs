//! Starting the application processors: the real-mode trampoline page, INIT-SIPI-SIPI, and
//! each AP's first steps in long mode up to [`crate::ap_main`].
//!
//! The trampoline goes straight from real mode to long mode: it loads the boot GDT and page
//! tables (both linked below 4 GiB, so their addresses are immediates and nothing in the
//! copied page needs patching), clears CR0.CD/NW (APs leave INIT with caches disabled), and
//! far-jumps into the image. There each AP takes the next stack slot.

use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use unisock_kernel::mem::FRAME_SIZE;

use crate::acpi::Processor;
use crate::apic::LocalApic;
use crate::clock;
use crate::memory;
use crate::paging::{self, PagingError};
use crate::start::{
    KERNEL_CODE_SELECTOR, KERNEL_DATA_SELECTOR, enter_long_mode, load_data_segments,
};

/// The most cores the image runs on (xAPIC ids are 8 bits).
pub const MAX_CORES: usize = 256;
/// Frames of each AP's main stack.
const AP_STACK_FRAMES: u64 = 16;
/// Intel SDM vol. 3, 11.4.4.1 and the MP spec B.4: 10 ms after INIT, 200 µs between SIPIs.
const INIT_DELAY_MICROS: u64 = 10_000;
const STARTUP_DELAY_MICROS: u64 = 200;
/// How long to wait for every AP to report before giving up on the missing ones.
const ONLINE_TIMEOUT_MICROS: u64 = 2_000_000;

/// Stack tops, one per slot; an AP's slot is the order in which it reached long mode.
static STACK_TOPS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// How many slots have stacks; an AP beyond them parks.
static SLOT_COUNT: AtomicU32 = AtomicU32::new(0);
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);
/// APs that have finished their start-up.
static ONLINE: AtomicU32 = AtomicU32::new(0);

global_asm!(
    // Copied to a low page and run there in real mode, with cs = page >> 4 and ip = 0.
    ".section .text.ap_trampoline, \"ax\"",
    ".code16",
    ".global ap_trampoline_start",
    "ap_trampoline_start:",
    "cli",
    "cld",
    "mov ax, cs",
    "mov ds, ax",
    // lgdt [ap_trampoline_gdt_pointer] with a 32-bit operand (the full base), encoded by hand:
    // the assembler takes no label difference as a memory operand.
    ".byte 0x66, 0x0f, 0x01, 0x16",
    ".word ap_trampoline_gdt_pointer - ap_trampoline_start",
    // Straight into long mode: paging and protection turn on together.
    enter_long_mode!(),
    // ljmp 0x08:ap_start64, with a 32-bit offset (operand-size prefix in 16-bit code).
    ".byte 0x66, 0xea",
    ".long ap_start64",
    ".word {code}",
    ".p2align 3",
    "ap_trampoline_gdt_pointer:",
    ".word 23",                             // boot GDT: three 8-byte descriptors
    ".long boot_gdt",
    ".global ap_trampoline_end",
    "ap_trampoline_end:",

    ".section .text.ap_start64, \"ax\"",
    ".code64",
    "ap_start64:",
    load_data_segments!(),
    "mov eax, 1",
    "lock xadd dword ptr [rip + {next_slot}], eax",
    "cmp eax, dword ptr [rip + {slot_count}]",
    "jae 2f",
    "lea rcx, [rip + {stack_tops}]",
    "mov rsp, [rcx + rax * 8]",
    "mov edi, eax",
    "call {ap_main}",
    "2:",
    "cli",
    "hlt",
    "jmp 2b",
    code = const KERNEL_CODE_SELECTOR,
    data = const KERNEL_DATA_SELECTOR,
    next_slot = sym NEXT_SLOT,
    slot_count = sym SLOT_COUNT,
    stack_tops = sym STACK_TOPS,
    ap_main = sym crate::ap_main,
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
}

// The fields are read through `Debug`, in the boot log.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub enum SmpError {
    OutOfFrames,
    Paging(PagingError),
}

/// CPUID.1:ECX bit 31, set by hypervisors (and by QEMU's TCG) for their guests.
fn under_hypervisor() -> bool {
    const HYPERVISOR_PRESENT: u32 = 1 << 31;
    core::arch::x86_64::__cpuid(1).ecx & HYPERVISOR_PRESENT != 0
}

/// The stack top of AP slot `slot`.
pub fn stack_top(slot: u32) -> u64 {
    STACK_TOPS[slot as usize].load(Ordering::Acquire)
}

/// Called by each AP when it is ready.
pub fn report_online() {
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

/// Starts every processor in `processors` except this one, using the low page at
/// `trampoline_page`; returns how many APs came online.
pub fn start_application_processors(
    apic: &LocalApic,
    processors: &[Processor],
    trampoline_page: u64,
) -> Result<u32, SmpError> {
    let own_id = apic.id();
    let targets: Vec<u32> = processors
        .iter()
        .map(|processor| processor.apic_id)
        .filter(|&apic_id| apic_id != own_id && apic_id <= 0xff)
        .take(MAX_CORES - 1)
        .collect();
    if targets.is_empty() {
        return Ok(0);
    }
    for (slot, top) in STACK_TOPS.iter().take(targets.len()).enumerate() {
        // One more frame than the stack: the lowest is its guard page.
        let stack = memory::allocate_frames(AP_STACK_FRAMES + 1, FRAME_SIZE)
            .ok_or(SmpError::OutOfFrames)?;
        paging::unmap_guard_page(stack.start).map_err(SmpError::Paging)?;
        top.store(stack.end(), Ordering::Release);
        crate::debug!("smp: slot {slot} stack 0x{:x}", stack.start);
    }
    SLOT_COUNT.store(targets.len() as u32, Ordering::Release);

    let start = (&raw const ap_trampoline_start) as usize;
    let length = (&raw const ap_trampoline_end) as usize - start;
    // SAFETY: `trampoline_page` is a free, identity-mapped page below 1 MiB taken from the
    // memory map for this purpose; the trampoline is shorter than a page.
    unsafe {
        core::ptr::copy_nonoverlapping(start as *const u8, trampoline_page as *mut u8, length);
    }

    for &apic_id in &targets {
        apic.send_init(apic_id);
    }
    if !under_hypervisor() {
        // Virtual CPUs take INIT at once; real ones get the time the MP spec asks for.
        clock::spin_micros(INIT_DELAY_MICROS);
    }
    for _ in 0..2 {
        for &apic_id in &targets {
            apic.send_startup(apic_id, trampoline_page);
        }
        clock::spin_micros(STARTUP_DELAY_MICROS);
    }
    let deadline = clock::now().as_nanos() + ONLINE_TIMEOUT_MICROS * 1000;
    while ONLINE.load(Ordering::Acquire) < targets.len() as u32
        && clock::now().as_nanos() < deadline
    {
        core::hint::spin_loop();
    }
    Ok(ONLINE.load(Ordering::Acquire))
}
