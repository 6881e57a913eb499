//! MSI-X (PCI 3.0, 6.8.2): the capability's control bits and the vector table in a BAR.
//!
//! The boot code maps the table's BAR window, points each vector at the core that owns the
//! queue (an x86 message, Intel SDM vol. 3, 11.11) and enables MSI-X; drivers only say which
//! vector each queue raises.

use super::bar::{Bar, BarError};
use super::{PciConfig, PciFunction, capability::id};
use crate::hal::{HalError, Mmio, MmioMapper};

/// Capability layout (PCI 3.0, 6.8.2): ID and next pointer, then message control at 2, the
/// table offset/BIR dword at 4 and the pending-bit array offset/BIR dword at 8.
const CAPABILITY_MESSAGE_CONTROL: u8 = 2;
const CAPABILITY_TABLE: u8 = 4;
const CAPABILITY_PENDING_BIT_ARRAY: u8 = 8;
const CAPABILITY_LENGTH: usize = 12;
/// Size of configuration space (PCI 3.0, 6.1); the capability must end inside it.
const CONFIGURATION_SPACE_LENGTH: usize = 256;

/// Message control: table size minus one in bits 10:0.
const CONTROL_TABLE_SIZE_MASK: u16 = 0x07ff;
/// Message control: all vectors masked.
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Message control: MSI-X enabled.
const CONTROL_ENABLE: u16 = 1 << 15;
/// Offset/BIR dwords: BAR index in bits 2:0.
const BIR_MASK: u32 = 0x7;

/// Size of one table entry: address low, address high, data, vector control.
pub const TABLE_ENTRY_SIZE: usize = 16;
const ENTRY_ADDRESS_LOW: usize = 0;
const ENTRY_ADDRESS_HIGH: usize = 4;
const ENTRY_DATA: usize = 8;
const ENTRY_VECTOR_CONTROL: usize = 12;
/// Vector control: this vector is masked.
const VECTOR_CONTROL_MASKED: u32 = 1 << 0;

/// Local APIC message address base (Intel SDM vol. 3, 11.11.1).
const X86_MSI_ADDRESS_BASE: u64 = 0xfee0_0000;
const X86_MSI_DESTINATION_SHIFT: u64 = 12;

/// Where a function's MSI-X table and pending-bit array live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixCapability {
    /// Offset of the capability in configuration space.
    pub offset: u8,
    /// Number of vectors the function has.
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pending_bit_array_bar: u8,
    pub pending_bit_array_offset: u32,
}

impl MsixCapability {
    /// Reads the function's MSI-X capability, if it has a well-formed one (one that ends
    /// inside configuration space; a list pointer near the end would make the offsets wrap).
    pub fn read<C: PciConfig>(function: &PciFunction<'_, C>) -> Option<Self> {
        let capability = function.find_capability(id::MSI_X)?;
        if usize::from(capability.offset) + CAPABILITY_LENGTH > CONFIGURATION_SPACE_LENGTH {
            return None;
        }
        let control = function.read_u16(capability.offset + CAPABILITY_MESSAGE_CONTROL);
        let table = function.read_u32(capability.offset + CAPABILITY_TABLE);
        let pending = function.read_u32(capability.offset + CAPABILITY_PENDING_BIT_ARRAY);
        Some(MsixCapability {
            offset: capability.offset,
            table_size: (control & CONTROL_TABLE_SIZE_MASK) + 1,
            table_bar: (table & BIR_MASK) as u8,
            table_offset: table & !BIR_MASK,
            pending_bit_array_bar: (pending & BIR_MASK) as u8,
            pending_bit_array_offset: pending & !BIR_MASK,
        })
    }

    /// Bytes of BAR space the vector table covers.
    pub fn table_length(&self) -> usize {
        usize::from(self.table_size) * TABLE_ENTRY_SIZE
    }

    /// Enables MSI-X with all vectors unmasked at function level (each vector keeps its own
    /// mask bit), which also disables legacy INTx for the function.
    pub fn enable<C: PciConfig>(&self, function: &PciFunction<'_, C>) {
        let register = self.offset + CAPABILITY_MESSAGE_CONTROL;
        let control = function.read_u16(register);
        function.write_u16(
            register,
            (control | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK,
        );
    }

    pub fn disable<C: PciConfig>(&self, function: &PciFunction<'_, C>) {
        let register = self.offset + CAPABILITY_MESSAGE_CONTROL;
        let control = function.read_u16(register);
        function.write_u16(register, control & !CONTROL_ENABLE);
    }
}

/// The address/data pair a vector writes to raise an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

impl MsiMessage {
    /// A fixed, edge-triggered interrupt `vector` delivered to the local APIC `apic_id`
    /// (physical destination mode).
    pub fn x86(apic_id: u8, vector: u8) -> Self {
        MsiMessage {
            address: X86_MSI_ADDRESS_BASE | (u64::from(apic_id) << X86_MSI_DESTINATION_SHIFT),
            data: u32::from(vector),
        }
    }
}

/// Why an MSI-X table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    /// The mapped window is smaller than the table the capability describes.
    TableWindowTooSmall {
        needed: usize,
        mapped: usize,
    },
    /// The function has no vector with this number.
    NoSuchVector {
        vector: u16,
        table_size: u16,
    },
    /// The table's BAR cannot be decoded.
    Bar(BarError),
    /// The table's BAR is an I/O BAR (MSI-X tables live in memory space).
    IoBar {
        bar: u8,
    },
    /// The table extends past the end of its BAR.
    TableOutsideBar {
        bar: u8,
    },
    Map(HalError),
}

/// The MSI-X vector table, through a mapped window that starts at the table.
pub struct MsixTable<M: Mmio> {
    mmio: M,
    table_size: u16,
}

impl<M: Mmio> MsixTable<M> {
    /// Decodes the BAR that holds `capability`'s table and maps the table with `mapper`.
    pub fn map<C: PciConfig, P: MmioMapper<Mmio = M>>(
        function: &PciFunction<'_, C>,
        capability: &MsixCapability,
        mapper: &P,
    ) -> Result<Self, MsixError> {
        let bar = capability.table_bar;
        let Bar::Memory { address, size, .. } = function.bar(bar).map_err(MsixError::Bar)? else {
            return Err(MsixError::IoBar { bar });
        };
        let end = u64::from(capability.table_offset) + capability.table_length() as u64;
        if end > size {
            return Err(MsixError::TableOutsideBar { bar });
        }
        let physical = address
            .checked_add(u64::from(capability.table_offset))
            .ok_or(MsixError::TableOutsideBar { bar })?;
        let mmio = mapper
            .map(physical, capability.table_length())
            .map_err(MsixError::Map)?;
        MsixTable::new(mmio, capability)
    }

    pub fn new(mmio: M, capability: &MsixCapability) -> Result<Self, MsixError> {
        if mmio.len() < capability.table_length() {
            return Err(MsixError::TableWindowTooSmall {
                needed: capability.table_length(),
                mapped: mmio.len(),
            });
        }
        Ok(MsixTable {
            mmio,
            table_size: capability.table_size,
        })
    }

    fn entry(&self, vector: u16) -> Result<usize, MsixError> {
        if vector >= self.table_size {
            return Err(MsixError::NoSuchVector {
                vector,
                table_size: self.table_size,
            });
        }
        Ok(usize::from(vector) * TABLE_ENTRY_SIZE)
    }

    /// Points `vector` at `message` and unmasks it. The entry is masked while it changes so
    /// the device never sends a half-written message.
    pub fn program(&self, vector: u16, message: MsiMessage) -> Result<(), MsixError> {
        let entry = self.entry(vector)?;
        self.mask(vector)?;
        self.mmio
            .write_u32(entry + ENTRY_ADDRESS_LOW, message.address as u32);
        self.mmio
            .write_u32(entry + ENTRY_ADDRESS_HIGH, (message.address >> 32) as u32);
        self.mmio.write_u32(entry + ENTRY_DATA, message.data);
        self.unmask(vector)
    }

    pub fn mask(&self, vector: u16) -> Result<(), MsixError> {
        let entry = self.entry(vector)?;
        let control = self.mmio.read_u32(entry + ENTRY_VECTOR_CONTROL);
        self.mmio.write_u32(
            entry + ENTRY_VECTOR_CONTROL,
            control | VECTOR_CONTROL_MASKED,
        );
        Ok(())
    }

    pub fn unmask(&self, vector: u16) -> Result<(), MsixError> {
        let entry = self.entry(vector)?;
        let control = self.mmio.read_u32(entry + ENTRY_VECTOR_CONTROL);
        self.mmio.write_u32(
            entry + ENTRY_VECTOR_CONTROL,
            control & !VECTOR_CONTROL_MASKED,
        );
        Ok(())
    }
}
