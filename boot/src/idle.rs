//! How an idle core sleeps and what wakes it: the interrupt entries for device, timer and
//! wake-up vectors (they only acknowledge: the data path runs with interrupts off and a core
//! takes them only while halted), the local APIC's one-shot timer for the next deadline, and
//! the inter-processor interrupt another core sends to wake it.
//!
//! Local APIC registers from the Intel SDM vol. 3, table 12-1; the timer from section 12.5.4.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use unisock_kernel::time::Instant;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use crate::clock;

/// The vector of every queue's MSI-X receive interrupt.
pub const QUEUE_VECTOR: u8 = 0x40;
/// The vector another core sends to wake this one.
pub const WAKE_VECTOR: u8 = 0x41;
/// The local APIC timer's vector.
pub const TIMER_VECTOR: u8 = 0x42;
/// The vector of device configuration changes (link state): taken and ignored.
pub const CONFIG_VECTOR: u8 = 0x43;
/// The local APIC's spurious vector (set by `apic::LocalApic::enable`): never acknowledged.
pub const SPURIOUS_VECTOR: usize = 0xff;
/// The first vector above the architectural exceptions.
pub const FIRST_EXTERNAL_VECTOR: usize = 32;

/// The longest a core halts without a deadline: nothing should need it, but a lost wake-up
/// then costs at most this long instead of for ever.
const MAX_HALT: Duration = Duration::from_secs(1);
/// Calibration of the APIC timer against the TSC clock.
const CALIBRATION_MICROS: u64 = 2_000;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_MASK: u64 = 0x000f_ffff_ffff_f000;
const REGISTER_END_OF_INTERRUPT: u64 = 0xb0;
const REGISTER_INTERRUPT_COMMAND_LOW: u64 = 0x300;
const REGISTER_INTERRUPT_COMMAND_HIGH: u64 = 0x310;
const REGISTER_TIMER_VECTOR: u64 = 0x320;
const REGISTER_TIMER_INITIAL_COUNT: u64 = 0x380;
const REGISTER_TIMER_CURRENT_COUNT: u64 = 0x390;
const REGISTER_TIMER_DIVIDE: u64 = 0x3e0;
/// LVT bit 16 masks the entry; timer mode bits 18:17 = 00 is one-shot.
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration 0b0011: divide the bus clock by 16.
const TIMER_DIVIDE_BY_16: u32 = 0b0011;
/// Interrupt command: fixed delivery, physical destination, level assert (SDM 12.6.1).
const COMMAND_LEVEL_ASSERT: u32 = 1 << 14;
const COMMAND_DELIVERY_PENDING: u32 = 1 << 12;

/// The legacy 8259 interrupt controllers' data ports: masking every line keeps the PIT's
/// IRQ 0 (which firmware maps onto an exception vector) away once interrupts are enabled.
const PIC_PRIMARY_DATA: u16 = 0x21;
const PIC_SECONDARY_DATA: u16 = 0xa1;

/// Address of the local APIC's register page (the same on every core); 0 until `init`.
static APIC_REGISTERS: AtomicU64 = AtomicU64::new(0);
/// Address of the local APIC's end-of-interrupt register, for the interrupt entry.
static END_OF_INTERRUPT: AtomicU64 = AtomicU64::new(0);
/// APIC timer ticks per millisecond (divided by 16); 0 until calibrated.
static TIMER_TICKS_PER_MILLI: AtomicU32 = AtomicU32::new(0);

/// Makes interrupts safe to take on any core: masks the legacy PICs, records the local
/// APIC's address for the interrupt entry and calibrates the APIC timer. Call once on the
/// bootstrap processor before any core enables interrupts.
pub fn init() -> u32 {
    // SAFETY: ports 0x21 and 0xa1 are the PICs' mask registers on every PC; masking them
    // only stops legacy interrupts, which nothing here uses.
    unsafe {
        Port::<u8>::new(PIC_PRIMARY_DATA).write(0xff);
        Port::<u8>::new(PIC_SECONDARY_DATA).write(0xff);
    }
    let base = read_apic_base();
    APIC_REGISTERS.store(base, Ordering::Release);
    END_OF_INTERRUPT.store(base + REGISTER_END_OF_INTERRUPT, Ordering::Release);
    apic_write(REGISTER_TIMER_VECTOR, LVT_MASKED | u32::from(TIMER_VECTOR));
    apic_write(REGISTER_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    apic_write(REGISTER_TIMER_INITIAL_COUNT, u32::MAX);
    clock::spin_micros(CALIBRATION_MICROS);
    let elapsed = u32::MAX - apic_read(REGISTER_TIMER_CURRENT_COUNT);
    apic_write(REGISTER_TIMER_INITIAL_COUNT, 0);
    let per_milli = (u64::from(elapsed) * 1000 / CALIBRATION_MICROS).max(1) as u32;
    TIMER_TICKS_PER_MILLI.store(per_milli, Ordering::Release);
    per_milli
}

/// Sets up this core's APIC timer (every core has its own): one-shot, divide by 16.
pub fn init_core() {
    apic_write(REGISTER_TIMER_DIVIDE, TIMER_DIVIDE_BY_16);
    apic_write(REGISTER_TIMER_VECTOR, LVT_MASKED | u32::from(TIMER_VECTOR));
    apic_write(REGISTER_TIMER_INITIAL_COUNT, 0);
}

/// Halts until an interrupt arrives or `deadline` passes. Interrupts are enabled only for the
/// halt itself: `sti` takes effect after the next instruction, so an interrupt already pending
/// is taken in the `hlt` and ends it at once, and none can slip in between the caller's last
/// look for work and the halt.
pub fn halt_until(deadline: Option<Instant>) {
    let wait = deadline
        .map_or(MAX_HALT, |deadline| deadline.saturating_since(clock::now()))
        .min(MAX_HALT);
    let per_milli = u64::from(TIMER_TICKS_PER_MILLI.load(Ordering::Acquire));
    let ticks = (wait.as_micros() as u64 * per_milli / 1000).clamp(1, u64::from(u32::MAX)) as u32;
    apic_write(REGISTER_TIMER_VECTOR, u32::from(TIMER_VECTOR));
    apic_write(REGISTER_TIMER_INITIAL_COUNT, ticks);
    // SAFETY: the IDT has an entry for every external vector (`interrupt_entry`), which only
    // acknowledges and returns; interrupts are off again before Rust code continues.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    apic_write(REGISTER_TIMER_INITIAL_COUNT, 0);
    apic_write(REGISTER_TIMER_VECTOR, LVT_MASKED | u32::from(TIMER_VECTOR));
}

/// Halts until any interrupt, with the APIC timer off: for a core that waits for another's
/// wake-up and has no deadline of its own.
pub fn wait_for_wake() {
    // SAFETY: as in `halt_until`.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Sends the wake-up vector to the core with local APIC id `apic_id`.
pub fn send_wake(apic_id: u32) {
    apic_write(REGISTER_INTERRUPT_COMMAND_HIGH, apic_id << 24);
    apic_write(
        REGISTER_INTERRUPT_COMMAND_LOW,
        COMMAND_LEVEL_ASSERT | u32::from(WAKE_VECTOR),
    );
    while apic_read(REGISTER_INTERRUPT_COMMAND_LOW) & COMMAND_DELIVERY_PENDING != 0 {
        core::hint::spin_loop();
    }
}

fn apic_base() -> u64 {
    match APIC_REGISTERS.load(Ordering::Acquire) {
        0 => read_apic_base(),
        base => base,
    }
}

fn read_apic_base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no side effect.
    unsafe { Msr::new(IA32_APIC_BASE).read() & APIC_BASE_MASK }
}

fn apic_read(register: u64) -> u32 {
    // SAFETY: the APIC register page is identity-mapped and every register is a 32-bit word
    // at a 16-byte aligned offset (as in `apic::LocalApic`).
    unsafe { core::ptr::read_volatile((apic_base() + register) as *const u32) }
}

fn apic_write(register: u64, value: u32) {
    // SAFETY: as in `apic_read`; the registers written here belong to this module (timer,
    // interrupt command for wake-ups).
    unsafe { core::ptr::write_volatile((apic_base() + register) as *mut u32, value) }
}

/// The IDT entry of every external vector but the spurious one: acknowledge (EOI) and return.
/// The halted core's `hlt` ends with it; the run loop then looks for work itself.
#[unsafe(naked)]
pub extern "C" fn interrupt_entry() -> ! {
    naked_asm!(
        "push rax",
        "mov rax, qword ptr [rip + {end_of_interrupt}]",
        "mov dword ptr [rax], 0",
        "pop rax",
        "iretq",
        end_of_interrupt = sym END_OF_INTERRUPT,
    )
}

/// The IDT entry of the spurious vector: a spurious interrupt is not acknowledged (SDM 12.9).
#[unsafe(naked)]
pub extern "C" fn spurious_entry() -> ! {
    naked_asm!("iretq")
}
