//! The IDT and a handler for every CPU exception: each prints a register dump on the
//! console (`unisock: fault ...`) and exits with failure. Nothing here ever returns to the
//! faulting code: the data path runs with interrupts off, so any exception is a bug.
//! External vectors (32 and up) go to `idle`'s entries, which acknowledge and return: a core
//! takes them only while it halts.
//!
//! Stubs are naked functions (stable Rust) instead of the nightly `x86-interrupt` ABI.

use core::arch::naked_asm;
use core::fmt::Write;

use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::{Cr0, Cr2, Cr3, Cr4};
use x86_64::structures::DescriptorTablePointer;

use crate::console;
use crate::exit::{ExitCode, exit};
use crate::idle;
use crate::start::KERNEL_CODE_SELECTOR;

/// Exceptions that run on their own stack (IST 1 in every core's TSS): a double fault may
/// come from a stack overflow, and an NMI or machine check may arrive anywhere.
pub const FAULT_STACK_INDEX: u16 = 0;
const VECTOR_NMI: usize = 2;
const VECTOR_DOUBLE_FAULT: usize = 8;
const VECTOR_MACHINE_CHECK: usize = 18;
const EXCEPTION_COUNT: usize = 32;

/// Gate options (Intel SDM vol. 3, 7.14.1): present, DPL 0, 64-bit interrupt gate.
const GATE_PRESENT_INTERRUPT: u16 = 0x8e00;

/// Names of the architectural exceptions (Intel SDM vol. 3, table 7-1).
const EXCEPTION_NAMES: [&str; EXCEPTION_COUNT] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating-point",
    "alignment check",
    "machine check",
    "SIMD floating-point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// One 16-byte IDT gate descriptor.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    options: u16,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        options: 0,
        offset_middle: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn new(handler: u64, stack_table_index: Option<u16>) -> Gate {
        let ist = stack_table_index.map_or(0, |index| index + 1);
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CODE_SELECTOR,
            options: GATE_PRESENT_INTERRUPT | ist,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct InterruptTable([Gate; 256]);

/// Written once by the bootstrap processor before any other core starts.
static IDT: spin::Once<InterruptTable> = spin::Once::new();

/// Builds the IDT (once) and loads it on this core.
pub fn load() {
    let table = IDT.call_once(|| {
        let mut gates = [Gate::MISSING; 256];
        for (vector, stub) in STUBS.iter().enumerate() {
            let stack = matches!(
                vector,
                VECTOR_NMI | VECTOR_DOUBLE_FAULT | VECTOR_MACHINE_CHECK
            )
            .then_some(FAULT_STACK_INDEX);
            gates[vector] = Gate::new(*stub as usize as u64, stack);
        }
        // External vectors (queue, timer and wake-up interrupts) only end a halt: see `idle`.
        for gate in &mut gates[idle::FIRST_EXTERNAL_VECTOR..idle::SPURIOUS_VECTOR] {
            *gate = Gate::new(idle::interrupt_entry as *const () as u64, None);
        }
        gates[idle::SPURIOUS_VECTOR] = Gate::new(idle::spurious_entry as *const () as u64, None);
        InterruptTable(gates)
    });
    let pointer = DescriptorTablePointer {
        limit: (size_of::<InterruptTable>() - 1) as u16,
        base: VirtAddr::new(table as *const InterruptTable as u64),
    };
    // SAFETY: the table is 'static and every present gate points to a stub below.
    unsafe { lidt(&pointer) };
}

/// The stack as the common stub leaves it: saved registers, then what the stub and the CPU
/// pushed (Intel SDM vol. 3, 7.14.4).
#[repr(C)]
struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Prints the report and exits; called by `exception_common` with the frame.
extern "C" fn report_exception(frame: &ExceptionFrame) -> ! {
    let name = EXCEPTION_NAMES
        .get(frame.vector as usize)
        .unwrap_or(&"unknown");
    let mut out = console::emergency_writer();
    let _ = writeln!(
        out,
        "unisock: fault cpu={} vector={} ({}) error=0x{:x} rip=0x{:016x}",
        crate::cpu::current_index(),
        frame.vector,
        name,
        frame.error_code,
        frame.rip
    );
    let _ = writeln!(
        out,
        "  cs=0x{:x} rflags=0x{:x} rsp=0x{:016x} ss=0x{:x}",
        frame.cs, frame.rflags, frame.rsp, frame.ss
    );
    let _ = writeln!(
        out,
        "  cr0=0x{:x} cr2=0x{:016x} cr3=0x{:x} cr4=0x{:x}",
        Cr0::read_raw(),
        Cr2::read_raw(),
        Cr3::read_raw().0.start_address().as_u64(),
        Cr4::read_raw()
    );
    let registers = [
        ("rax", frame.rax),
        ("rbx", frame.rbx),
        ("rcx", frame.rcx),
        ("rdx", frame.rdx),
        ("rsi", frame.rsi),
        ("rdi", frame.rdi),
        ("rbp", frame.rbp),
        ("r8", frame.r8),
        ("r9", frame.r9),
        ("r10", frame.r10),
        ("r11", frame.r11),
        ("r12", frame.r12),
        ("r13", frame.r13),
        ("r14", frame.r14),
        ("r15", frame.r15),
    ];
    for row in registers.chunks(4) {
        let _ = write!(out, " ");
        for (name, value) in row {
            let _ = write!(out, " {name:>3}=0x{value:016x}");
        }
        let _ = writeln!(out);
    }
    exit(ExitCode::Failure)
}

/// Saves every general-purpose register and calls [`report_exception`] with the frame.
/// On entry the stack holds the vector and the error code (real or a pushed zero); the
/// CPU aligned it to 16 bytes before its pushes, so after 22 quadwords it is aligned again.
#[unsafe(naked)]
extern "C" fn exception_common() -> ! {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "mov rdi, rsp",
        "call {report}",
        "ud2",
        report = sym report_exception,
    )
}

/// A stub for an exception without an error code: pushes a zero in its place.
macro_rules! stub {
    ($name:ident, $vector:literal) => {
        #[unsafe(naked)]
        extern "C" fn $name() -> ! {
            naked_asm!("push 0", "push {vector}", "jmp {common}",
                vector = const $vector, common = sym exception_common)
        }
    };
    ($name:ident, $vector:literal, error_code) => {
        #[unsafe(naked)]
        extern "C" fn $name() -> ! {
            naked_asm!("push {vector}", "jmp {common}",
                vector = const $vector, common = sym exception_common)
        }
    };
}

stub!(exception_0, 0);
stub!(exception_1, 1);
stub!(exception_2, 2);
stub!(exception_3, 3);
stub!(exception_4, 4);
stub!(exception_5, 5);
stub!(exception_6, 6);
stub!(exception_7, 7);
stub!(exception_8, 8, error_code);
stub!(exception_9, 9);
stub!(exception_10, 10, error_code);
stub!(exception_11, 11, error_code);
stub!(exception_12, 12, error_code);
stub!(exception_13, 13, error_code);
stub!(exception_14, 14, error_code);
stub!(exception_15, 15);
stub!(exception_16, 16);
stub!(exception_17, 17, error_code);
stub!(exception_18, 18);
stub!(exception_19, 19);
stub!(exception_20, 20);
stub!(exception_21, 21, error_code);
stub!(exception_22, 22);
stub!(exception_23, 23);
stub!(exception_24, 24);
stub!(exception_25, 25);
stub!(exception_26, 26);
stub!(exception_27, 27);
stub!(exception_28, 28);
stub!(exception_29, 29, error_code);
stub!(exception_30, 30, error_code);
stub!(exception_31, 31);

const STUBS: [extern "C" fn() -> !; EXCEPTION_COUNT] = [
    exception_0,
    exception_1,
    exception_2,
    exception_3,
    exception_4,
    exception_5,
    exception_6,
    exception_7,
    exception_8,
    exception_9,
    exception_10,
    exception_11,
    exception_12,
    exception_13,
    exception_14,
    exception_15,
    exception_16,
    exception_17,
    exception_18,
    exception_19,
    exception_20,
    exception_21,
    exception_22,
    exception_23,
    exception_24,
    exception_25,
    exception_26,
    exception_27,
    exception_28,
    exception_29,
    exception_30,
    exception_31,
];
