//! Leaving the machine: QEMU's isa-debug-exit device first, then ACPI power-off, then halt.

use x86_64::instructions::port::Port;

/// The isa-debug-exit device's port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
/// QEMU exits with status `(value << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// What the image tells its host on the way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU exit status 33; the `qemu/run` script turns it into 0.
    Success = 0x10,
    /// QEMU exit status 35; the `qemu/run` script turns it into 3.
    Failure = 0x11,
}

/// Ends the run. Under QEMU, isa-debug-exit stops it with a status. On a machine without
/// that device the write goes nowhere; then success powers off (ACPI S5) and failure halts,
/// so that the report stays on the console.
pub fn exit(code: ExitCode) -> ! {
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is isa-debug-exit under QEMU and unused on PC hardware.
    unsafe { port.write(code as u32) };
    if code == ExitCode::Success {
        crate::acpi::power_off();
    }
    halt_forever()
}

/// Stops this core for good: interrupts off, then `hlt` (an NMI only wakes it to halt again).
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}
