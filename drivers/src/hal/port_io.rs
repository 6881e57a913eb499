//! x86 port I/O with the `in`/`out` instructions, for PCI configuration mechanism #1.

use super::PortIo;

/// Port I/O on the executing x86_64 core.
#[derive(Debug)]
pub struct X86PortIo {
    _private: (),
}

impl X86PortIo {
    /// # Safety
    /// The caller runs at an I/O privilege level that allows `in`/`out` (ring 0 in the image),
    /// and the ports it will touch through this value belong to the driver using it.
    pub unsafe fn new() -> Self {
        X86PortIo { _private: () }
    }
}

#[cfg(target_arch = "x86_64")]
impl PortIo for X86PortIo {
    fn read_u32(&self, port: u16) -> u32 {
        let value: u32;
        // SAFETY: `new`'s contract grants I/O privilege and ownership of the port; `in` reads
        // a device register and touches no memory.
        unsafe {
            core::arch::asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags));
        }
        value
    }

    fn write_u32(&self, port: u16, value: u32) {
        // SAFETY: `new`'s contract grants I/O privilege and ownership of the port; `out`
        // writes a device register and touches no memory.
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags));
        }
    }
}
