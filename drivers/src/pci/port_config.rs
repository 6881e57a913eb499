//! PCI configuration mechanism #1 (PCI 3.0, 3.2.2.3.2): an address port and a data port.

use super::{PciAddress, PciConfig};
use crate::hal::PortIo;

/// CONFIG_ADDRESS: enable bit, bus, device, function, dword-aligned register.
pub const CONFIG_ADDRESS_PORT: u16 = 0xcf8;
/// CONFIG_DATA: the selected dword.
pub const CONFIG_DATA_PORT: u16 = 0xcfc;
const CONFIG_ADDRESS_ENABLE: u32 = 1 << 31;

/// Configuration access through ports 0xCF8/0xCFC.
///
/// The address/data pair is not atomic: use one instance from one core at a time (device
/// set-up runs on the boot core before the others start).
pub struct PortPciConfig<P: PortIo> {
    ports: P,
}

impl<P: PortIo> PortPciConfig<P> {
    pub fn new(ports: P) -> Self {
        PortPciConfig { ports }
    }

    fn select(&self, address: PciAddress, offset: u8) {
        let value = CONFIG_ADDRESS_ENABLE
            | (u32::from(address.bus) << 16)
            | (u32::from(address.device & 0x1f) << 11)
            | (u32::from(address.function & 0x7) << 8)
            | u32::from(offset & 0xfc);
        self.ports.write_u32(CONFIG_ADDRESS_PORT, value);
    }
}

impl<P: PortIo> PciConfig for PortPciConfig<P> {
    fn read_u32(&self, address: PciAddress, offset: u8) -> u32 {
        self.select(address, offset);
        self.ports.read_u32(CONFIG_DATA_PORT)
    }

    fn write_u32(&self, address: PciAddress, offset: u8, value: u32) {
        self.select(address, offset);
        self.ports.write_u32(CONFIG_DATA_PORT, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    #[derive(Default)]
    struct RecordingPorts {
        writes: RefCell<Vec<(u16, u32)>>,
    }

    impl PortIo for RecordingPorts {
        fn read_u32(&self, port: u16) -> u32 {
            assert_eq!(port, CONFIG_DATA_PORT);
            0x1041_1af4
        }
        fn write_u32(&self, port: u16, value: u32) {
            self.writes.borrow_mut().push((port, value));
        }
    }

    #[test]
    fn selects_bus_device_function_and_register_before_each_access() {
        let config = PortPciConfig::new(RecordingPorts::default());
        let address = PciAddress::new(0x12, 0x1f, 0x7);
        assert_eq!(config.read_u32(address, 0x10), 0x1041_1af4);
        config.write_u32(address, 0x07, 0xdead_beef);
        let writes = config.ports.writes.borrow();
        assert_eq!(writes[0], (CONFIG_ADDRESS_PORT, 0x8012_ff10));
        // The low two offset bits are dropped: configuration space is read in dwords.
        assert_eq!(writes[1], (CONFIG_ADDRESS_PORT, 0x8012_ff04));
        assert_eq!(writes[2], (CONFIG_DATA_PORT, 0xdead_beef));
    }
}
