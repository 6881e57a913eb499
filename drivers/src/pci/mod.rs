//! PCI configuration space: function addresses, the config access trait, header registers.
//!
//! Offsets follow the PCI Local Bus Specification 3.0, section 6.1 (type 0 header).

pub mod bar;
pub mod capability;
pub mod msix;
pub mod port_config;

use bitflags::bitflags;

/// Bus, device and function of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    pub bus: u8,
    /// 0..32
    pub device: u8,
    /// 0..8
    pub function: u8,
}

impl PciAddress {
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        PciAddress {
            bus,
            device: device & 0x1f,
            function: function & 0x7,
        }
    }
}

/// Access to the configuration space of PCI functions, one aligned dword at a time.
///
/// `offset` is a byte offset, a multiple of 4, below 256 (legacy configuration space).
pub trait PciConfig {
    fn read_u32(&self, address: PciAddress, offset: u8) -> u32;
    fn write_u32(&self, address: PciAddress, offset: u8, value: u32);
}

/// Type 0 header offsets (PCI 3.0, 6.1).
pub mod register {
    pub const VENDOR_ID: u8 = 0x00;
    pub const DEVICE_ID: u8 = 0x02;
    pub const COMMAND: u8 = 0x04;
    pub const STATUS: u8 = 0x06;
    pub const REVISION_ID: u8 = 0x08;
    pub const HEADER_TYPE: u8 = 0x0e;
    pub const BAR0: u8 = 0x10;
    pub const SUBSYSTEM_ID: u8 = 0x2e;
    pub const CAPABILITIES_POINTER: u8 = 0x34;
    pub const INTERRUPT_LINE: u8 = 0x3c;
}

/// Vendor ID read from an empty slot.
pub const NO_DEVICE_VENDOR_ID: u16 = 0xffff;

bitflags! {
    /// Command register bits (PCI 3.0, 6.2.2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Command: u16 {
        const IO_SPACE = 1 << 0;
        const MEMORY_SPACE = 1 << 1;
        const BUS_MASTER = 1 << 2;
        const INTERRUPT_DISABLE = 1 << 10;
    }
}

bitflags! {
    /// Status register bits (PCI 3.0, 6.2.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Status: u16 {
        const CAPABILITIES_LIST = 1 << 4;
    }
}

/// One PCI function, seen through a [`PciConfig`] access method.
pub struct PciFunction<'a, C: PciConfig> {
    config: &'a C,
    address: PciAddress,
}

impl<'a, C: PciConfig> PciFunction<'a, C> {
    pub fn new(config: &'a C, address: PciAddress) -> Self {
        PciFunction { config, address }
    }

    pub fn address(&self) -> PciAddress {
        self.address
    }

    pub fn read_u32(&self, offset: u8) -> u32 {
        self.config.read_u32(self.address, offset & !3)
    }

    pub fn write_u32(&self, offset: u8, value: u32) {
        self.config.write_u32(self.address, offset & !3, value)
    }

    pub fn read_u16(&self, offset: u8) -> u16 {
        (self.read_u32(offset) >> ((offset & 2) * 8)) as u16
    }

    pub fn read_u8(&self, offset: u8) -> u8 {
        (self.read_u32(offset) >> ((offset & 3) * 8)) as u8
    }

    /// Writes 16 bits with a read-modify-write of the containing dword.
    ///
    /// Do not use it next to write-1-to-clear bits (the status register).
    pub fn write_u16(&self, offset: u8, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read_u32(offset);
        let new = (old & !(0xffff << shift)) | (u32::from(value) << shift);
        self.write_u32(offset, new);
    }

    pub fn vendor_id(&self) -> u16 {
        self.read_u16(register::VENDOR_ID)
    }

    pub fn device_id(&self) -> u16 {
        self.read_u16(register::DEVICE_ID)
    }

    pub fn is_present(&self) -> bool {
        self.vendor_id() != NO_DEVICE_VENDOR_ID
    }

    pub fn command(&self) -> Command {
        Command::from_bits_retain(self.read_u16(register::COMMAND))
    }

    /// Writes the command register without touching the status register next to it (its
    /// error bits are write-1-to-clear, so a read-modify-write of the dword would clear them).
    pub fn set_command(&self, command: Command) {
        self.write_u32(register::COMMAND, u32::from(command.bits()));
    }

    pub fn status(&self) -> Status {
        Status::from_bits_retain(self.read_u16(register::STATUS))
    }

    /// Lets the function decode its memory BARs and master the bus (DMA).
    pub fn enable_memory_and_bus_master(&self) {
        self.set_command(self.command() | Command::MEMORY_SPACE | Command::BUS_MASTER);
    }

    /// Lets the function decode its memory BARs, without letting it master the bus yet.
    pub fn enable_memory_space(&self) {
        self.set_command(self.command() | Command::MEMORY_SPACE);
    }

    /// Lets the function master the bus (DMA).
    pub fn enable_bus_master(&self) {
        self.set_command(self.command() | Command::BUS_MASTER);
    }
}

#[cfg(test)]
pub mod fake;
