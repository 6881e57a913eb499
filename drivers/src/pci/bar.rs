//! Base Address Register decoding and sizing (PCI 3.0, 6.2.5.1).

use super::{Command, PciConfig, PciFunction, register};
use crate::hal::PhysAddr;

/// Number of BARs in a type 0 header.
pub const BAR_COUNT: u8 = 6;

const BAR_IO_SPACE: u32 = 1 << 0;
const BAR_MEMORY_TYPE_MASK: u32 = 0b11 << 1;
const BAR_MEMORY_TYPE_64: u32 = 0b10 << 1;
const BAR_PREFETCHABLE: u32 = 1 << 3;
const BAR_MEMORY_ADDRESS_MASK: u32 = !0xf;
const BAR_IO_ADDRESS_MASK: u32 = !0x3;

/// What one BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    Memory {
        address: PhysAddr,
        size: u64,
        prefetchable: bool,
        is_64_bit: bool,
    },
    Io {
        port: u32,
        size: u32,
    },
}

/// Why a BAR could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// BAR index 6 or more.
    NoSuchBar { index: u8 },
    /// The BAR is not implemented (reads back zero after sizing).
    Unimplemented { index: u8 },
    /// A 64-bit BAR in the last slot, with no room for its upper half.
    Truncated64Bit { index: u8 },
    /// The BAR is the upper half of the 64-bit BAR before it.
    UpperHalf { index: u8 },
}

impl<C: PciConfig> PciFunction<'_, C> {
    /// Decodes and sizes BAR `index`. Decoding is switched off in the command register while
    /// the BAR holds the all-ones sizing pattern, then restored.
    pub fn bar(&self, index: u8) -> Result<Bar, BarError> {
        if index >= BAR_COUNT {
            return Err(BarError::NoSuchBar { index });
        }
        if self.is_upper_half(index) {
            return Err(BarError::UpperHalf { index });
        }
        let offset = register::BAR0 + 4 * index;
        let original = self.read_u32(offset);
        let command = self.command();
        self.set_command(command - (Command::MEMORY_SPACE | Command::IO_SPACE));
        let result = if original & BAR_IO_SPACE != 0 {
            let mask = self.size_dword(offset, original) & BAR_IO_ADDRESS_MASK;
            let size = (!mask).wrapping_add(1) & 0xffff;
            if mask == 0 {
                Err(BarError::Unimplemented { index })
            } else {
                Ok(Bar::Io {
                    port: original & BAR_IO_ADDRESS_MASK,
                    size,
                })
            }
        } else if original & BAR_MEMORY_TYPE_MASK == BAR_MEMORY_TYPE_64 {
            if index + 1 >= BAR_COUNT {
                Err(BarError::Truncated64Bit { index })
            } else {
                let upper_offset = offset + 4;
                let original_upper = self.read_u32(upper_offset);
                let low_mask = self.size_dword(offset, original) & BAR_MEMORY_ADDRESS_MASK;
                let high_mask = self.size_dword(upper_offset, original_upper);
                let mask = (u64::from(high_mask) << 32) | u64::from(low_mask);
                let address = (u64::from(original_upper) << 32)
                    | u64::from(original & BAR_MEMORY_ADDRESS_MASK);
                if mask == 0 {
                    Err(BarError::Unimplemented { index })
                } else {
                    Ok(Bar::Memory {
                        address: PhysAddr(address),
                        size: (!mask).wrapping_add(1),
                        prefetchable: original & BAR_PREFETCHABLE != 0,
                        is_64_bit: true,
                    })
                }
            }
        } else {
            let mask = self.size_dword(offset, original) & BAR_MEMORY_ADDRESS_MASK;
            if mask == 0 {
                Err(BarError::Unimplemented { index })
            } else {
                Ok(Bar::Memory {
                    address: PhysAddr(u64::from(original & BAR_MEMORY_ADDRESS_MASK)),
                    size: u64::from((!mask).wrapping_add(1)),
                    prefetchable: original & BAR_PREFETCHABLE != 0,
                    is_64_bit: false,
                })
            }
        };
        self.set_command(command);
        result
    }

    /// Whether BAR `index` is the upper dword of a 64-bit BAR. Walks from BAR 0 so that a run
    /// of 64-bit BARs splits into pairs the way the device means it.
    fn is_upper_half(&self, index: u8) -> bool {
        let mut current = 0;
        while current < index {
            let value = self.read_u32(register::BAR0 + 4 * current);
            let is_64 =
                value & BAR_IO_SPACE == 0 && value & BAR_MEMORY_TYPE_MASK == BAR_MEMORY_TYPE_64;
            current += if is_64 { 2 } else { 1 };
        }
        current > index
    }

    fn size_dword(&self, offset: u8, original: u32) -> u32 {
        self.write_u32(offset, u32::MAX);
        let mask = self.read_u32(offset);
        self.write_u32(offset, original);
        mask
    }
}
