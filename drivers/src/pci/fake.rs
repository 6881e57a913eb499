//! Test-only PCI configuration space: functions built from a header, BARs and capabilities.

use core::cell::RefCell;
use std::collections::BTreeMap;

use super::{PciAddress, PciConfig, Status, register};

struct FakeFunction {
    bytes: [u8; 256],
    /// Per dword: the bits a write may change (BARs expose only their address bits).
    writable: [u32; 64],
    next_capability: u8,
    last_capability: Option<u8>,
}

/// Configuration space of a set of fake PCI functions.
#[derive(Default)]
pub struct FakePciConfig {
    functions: RefCell<BTreeMap<PciAddress, FakeFunction>>,
}

impl FakePciConfig {
    pub fn add_function(&self, address: PciAddress, vendor_id: u16, device_id: u16) {
        let mut function = FakeFunction {
            bytes: [0; 256],
            writable: [u32::MAX; 64],
            next_capability: 0x40,
            last_capability: None,
        };
        function.bytes[0..2].copy_from_slice(&vendor_id.to_le_bytes());
        function.bytes[2..4].copy_from_slice(&device_id.to_le_bytes());
        // Identification dwords and the status half of the command dword are read-only.
        function.writable[0] = 0;
        function.writable[1] = 0x0000_ffff;
        function.writable[2] = 0;
        for bar in 0..6 {
            function.writable[4 + bar] = 0;
        }
        self.functions.borrow_mut().insert(address, function);
    }

    /// A 64-bit memory BAR at `index`/`index + 1`. `size` is a power of two.
    pub fn add_memory_bar_64(&self, address: PciAddress, index: usize, physical: u64, size: u64) {
        let mut functions = self.functions.borrow_mut();
        let function = functions.get_mut(&address).unwrap();
        let low = (physical as u32 & !0xf) | 0b100;
        let offset = 0x10 + 4 * index;
        function.bytes[offset..offset + 4].copy_from_slice(&low.to_le_bytes());
        function.bytes[offset + 4..offset + 8]
            .copy_from_slice(&((physical >> 32) as u32).to_le_bytes());
        let mask = !(size - 1);
        function.writable[4 + index] = mask as u32 & !0xf;
        function.writable[5 + index] = (mask >> 32) as u32;
    }

    /// Appends a capability (`body` starts after the ID and next-pointer bytes) and returns
    /// its offset.
    pub fn add_capability(&self, address: PciAddress, id: u8, body: &[u8]) -> u8 {
        let mut functions = self.functions.borrow_mut();
        let function = functions.get_mut(&address).unwrap();
        let offset = function.next_capability;
        let start = usize::from(offset);
        function.bytes[start] = id;
        function.bytes[start + 1] = 0;
        function.bytes[start + 2..start + 2 + body.len()].copy_from_slice(body);
        match function.last_capability {
            None => {
                function.bytes[usize::from(register::CAPABILITIES_POINTER)] = offset;
                let status = Status::CAPABILITIES_LIST.bits();
                function.bytes[6..8].copy_from_slice(&status.to_le_bytes());
            }
            Some(last) => function.bytes[usize::from(last) + 1] = offset,
        }
        function.last_capability = Some(offset);
        function.next_capability = ((start + 2 + body.len() + 3) & !3) as u8;
        offset
    }

    /// Overwrites one byte, bypassing write masks (to corrupt a capability, for example).
    pub fn poke(&self, address: PciAddress, offset: u8, value: u8) {
        self.functions.borrow_mut().get_mut(&address).unwrap().bytes[usize::from(offset)] = value;
    }

    pub fn read_u16(&self, address: PciAddress, offset: u8) -> u16 {
        let value = self.read_u32(address, offset & !3);
        (value >> ((offset & 2) * 8)) as u16
    }
}

impl PciConfig for FakePciConfig {
    fn read_u32(&self, address: PciAddress, offset: u8) -> u32 {
        assert_eq!(offset % 4, 0);
        match self.functions.borrow().get(&address) {
            None => u32::MAX,
            Some(function) => {
                let start = usize::from(offset);
                u32::from_le_bytes(function.bytes[start..start + 4].try_into().unwrap())
            }
        }
    }

    fn write_u32(&self, address: PciAddress, offset: u8, value: u32) {
        assert_eq!(offset % 4, 0);
        let mut functions = self.functions.borrow_mut();
        let Some(function) = functions.get_mut(&address) else {
            return;
        };
        let start = usize::from(offset);
        let writable = function.writable[start / 4];
        let old = u32::from_le_bytes(function.bytes[start..start + 4].try_into().unwrap());
        let new = (value & writable) | (old & !writable);
        function.bytes[start..start + 4].copy_from_slice(&new.to_le_bytes());
    }
}
