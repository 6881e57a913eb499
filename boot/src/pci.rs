//! PCI configuration space through the legacy ports (configuration mechanism #1, PCI Local
//! Bus spec 3.0, 3.2.2.3.2), and the enumeration of every device behind bus 0.

use alloc::vec::Vec;
use core::fmt;

use spin::Mutex;
use x86_64::instructions::port::Port;

const CONFIG_ADDRESS_PORT: u16 = 0xcf8;
const CONFIG_DATA_PORT: u16 = 0xcfc;
const CONFIG_ENABLE: u32 = 1 << 31;

/// Configuration header offsets (PCI spec 6.1).
const OFFSET_VENDOR_DEVICE: u8 = 0x00;
const OFFSET_CLASS: u8 = 0x08;
const OFFSET_HEADER_TYPE: u8 = 0x0c;
const OFFSET_BRIDGE_BUSES: u8 = 0x18;
const HEADER_MULTI_FUNCTION: u32 = 1 << 23;
const VENDOR_NONE: u16 = 0xffff;
const CLASS_BRIDGE: u8 = 0x06;
const SUBCLASS_PCI_TO_PCI: u8 = 0x04;

/// The two config ports form one transaction: one core at a time.
static CONFIG_LOCK: Mutex<()> = Mutex::new(());
static DEVICES: spin::Once<Vec<PciDevice>> = spin::Once::new();

/// Bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddress {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl PciAddress {
    fn config_address(self, offset: u8) -> u32 {
        CONFIG_ENABLE
            | u32::from(self.bus) << 16
            | u32::from(self.device) << 11
            | u32::from(self.function) << 8
            | u32::from(offset & 0xfc)
    }

    /// Reads the 32-bit configuration register at `offset` (rounded down to 4 bytes).
    pub fn read_u32(self, offset: u8) -> u32 {
        let _guard = CONFIG_LOCK.lock();
        // SAFETY: 0xcf8/0xcfc are the PCI configuration ports on every PC; the lock keeps the
        // address/data pair from interleaving with another core's.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS_PORT).write(self.config_address(offset));
            Port::<u32>::new(CONFIG_DATA_PORT).read()
        }
    }

    /// Writes the 32-bit configuration register at `offset` (rounded down to 4 bytes).
    pub fn write_u32(self, offset: u8, value: u32) {
        let _guard = CONFIG_LOCK.lock();
        // SAFETY: as in `read_u32`; what the write does to the device is the caller's intent.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS_PORT).write(self.config_address(offset));
            Port::<u32>::new(CONFIG_DATA_PORT).write(value);
        }
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:02x}:{:02x}.{}",
            self.bus, self.device, self.function
        )
    }
}

/// One function found by [`enumerate`].
#[derive(Clone, Copy, Debug)]
pub struct PciDevice {
    pub address: PciAddress,
    pub vendor_id: u16,
    pub device_id: u16,
    pub class: u8,
    pub subclass: u8,
    pub interface: u8,
}

impl PciDevice {
    /// A short name for the class code (PCI Code and ID Assignment spec, chapter 1).
    pub fn class_name(&self) -> &'static str {
        match (self.class, self.subclass) {
            (0x01, 0x06) => "sata controller",
            (0x01, _) => "storage controller",
            (0x02, 0x00) => "ethernet controller",
            (0x02, _) => "network controller",
            (0x03, _) => "display controller",
            (0x06, 0x00) => "host bridge",
            (0x06, 0x01) => "isa bridge",
            (0x06, 0x04) => "pci bridge",
            (0x06, _) => "bridge",
            (0x0c, 0x05) => "smbus controller",
            (0x0c, _) => "serial bus controller",
            _ => "device",
        }
    }
}

/// Finds every function on bus 0 and behind its PCI-to-PCI bridges, once; later calls
/// return the same list.
pub fn enumerate() -> &'static [PciDevice] {
    DEVICES.call_once(|| {
        let mut devices = Vec::new();
        let mut visited = [false; 256];
        scan_bus(0, &mut devices, &mut visited);
        devices
    })
}

fn scan_bus(bus: u8, devices: &mut Vec<PciDevice>, visited: &mut [bool; 256]) {
    if core::mem::replace(&mut visited[usize::from(bus)], true) {
        return;
    }
    for device in 0..32 {
        let first = PciAddress {
            bus,
            device,
            function: 0,
        };
        if first.read_u32(OFFSET_VENDOR_DEVICE) as u16 == VENDOR_NONE {
            continue;
        }
        let functions = if first.read_u32(OFFSET_HEADER_TYPE) & HEADER_MULTI_FUNCTION != 0 {
            8
        } else {
            1
        };
        for function in 0..functions {
            let address = PciAddress {
                bus,
                device,
                function,
            };
            let identity = address.read_u32(OFFSET_VENDOR_DEVICE);
            if identity as u16 == VENDOR_NONE {
                continue;
            }
            let class = address.read_u32(OFFSET_CLASS);
            let found = PciDevice {
                address,
                vendor_id: identity as u16,
                device_id: (identity >> 16) as u16,
                class: (class >> 24) as u8,
                subclass: (class >> 16) as u8,
                interface: (class >> 8) as u8,
            };
            devices.push(found);
            if found.class == CLASS_BRIDGE && found.subclass == SUBCLASS_PCI_TO_PCI {
                let secondary = (address.read_u32(OFFSET_BRIDGE_BUSES) >> 8) as u8;
                if secondary != 0 {
                    scan_bus(secondary, devices, visited);
                }
            }
        }
    }
}
