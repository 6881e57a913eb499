//! The local APIC (xAPIC, memory-mapped): enable it, read this core's id, send INIT and
//! start-up IPIs. Register offsets from the Intel SDM vol. 3, table 12-1.

use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE: bit 11 enables the APIC, bits 12.. hold the register page.
const IA32_APIC_BASE: u32 = 0x1b;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
const APIC_BASE_MASK: u64 = 0x000f_ffff_ffff_f000;

const REGISTER_ID: u64 = 0x20;
const REGISTER_TASK_PRIORITY: u64 = 0x80;
const REGISTER_SPURIOUS_VECTOR: u64 = 0xf0;
const REGISTER_INTERRUPT_COMMAND_LOW: u64 = 0x300;
const REGISTER_INTERRUPT_COMMAND_HIGH: u64 = 0x310;

/// Spurious-interrupt vector register: bit 8 software-enables the APIC.
const SPURIOUS_APIC_ENABLE: u32 = 1 << 8;
const SPURIOUS_VECTOR: u32 = 0xff;
/// Interrupt command register (12.6.1): delivery mode bits 10:8, level bit 14, status bit 12.
const COMMAND_DELIVERY_INIT: u32 = 0b101 << 8;
const COMMAND_DELIVERY_STARTUP: u32 = 0b110 << 8;
const COMMAND_LEVEL_ASSERT: u32 = 1 << 14;
const COMMAND_DELIVERY_PENDING: u32 = 1 << 12;

/// The calling core's local APIC.
pub struct LocalApic {
    base: u64,
}

impl LocalApic {
    /// Turns on this core's local APIC and returns a handle to it.
    pub fn enable() -> LocalApic {
        let mut msr = Msr::new(IA32_APIC_BASE);
        // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; setting the enable bit keeps
        // the firmware's base address.
        let base = unsafe {
            let value = msr.read() | APIC_GLOBAL_ENABLE;
            msr.write(value);
            value & APIC_BASE_MASK
        };
        let apic = LocalApic { base };
        apic.write(REGISTER_TASK_PRIORITY, 0);
        apic.write(
            REGISTER_SPURIOUS_VECTOR,
            SPURIOUS_APIC_ENABLE | SPURIOUS_VECTOR,
        );
        apic
    }

    /// This core's APIC id (xAPIC: bits 31:24 of the ID register).
    pub fn id(&self) -> u32 {
        self.read(REGISTER_ID) >> 24
    }

    /// Sends INIT to the core with `apic_id` (MP start-up, Intel SDM vol. 3, 11.4.4.1).
    pub fn send_init(&self, apic_id: u32) {
        self.send_command(apic_id, COMMAND_DELIVERY_INIT | COMMAND_LEVEL_ASSERT);
    }

    /// Sends a start-up IPI: the core starts in real mode at `page_address` (4 KiB aligned,
    /// below 1 MiB).
    pub fn send_startup(&self, apic_id: u32, page_address: u64) {
        let vector = (page_address >> 12) as u32 & 0xff;
        self.send_command(
            apic_id,
            COMMAND_DELIVERY_STARTUP | COMMAND_LEVEL_ASSERT | vector,
        );
    }

    fn send_command(&self, apic_id: u32, command: u32) {
        self.write(REGISTER_INTERRUPT_COMMAND_HIGH, apic_id << 24);
        self.write(REGISTER_INTERRUPT_COMMAND_LOW, command);
        while self.read(REGISTER_INTERRUPT_COMMAND_LOW) & COMMAND_DELIVERY_PENDING != 0 {
            core::hint::spin_loop();
        }
    }

    fn read(&self, register: u64) -> u32 {
        // SAFETY: `base` is this core's APIC register page (identity-mapped, below 4 GiB);
        // every register is a 32-bit word at a 16-byte aligned offset.
        unsafe { core::ptr::read_volatile((self.base + register) as *const u32) }
    }

    fn write(&self, register: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + register) as *mut u32, value) }
    }
}
