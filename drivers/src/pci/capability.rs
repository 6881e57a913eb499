//! The PCI capability list (PCI 3.0, 6.7), walked with a bound so a looping list cannot hang us.

use super::{PciConfig, PciFunction, Status, register};

/// Capability IDs (PCI Code and ID Assignment Specification, 2).
pub mod id {
    pub const MSI: u8 = 0x05;
    pub const VENDOR_SPECIFIC: u8 = 0x09;
    pub const PCI_EXPRESS: u8 = 0x10;
    pub const MSI_X: u8 = 0x11;
}

/// The most capabilities that fit in the 192 bytes after the header (4 bytes each at least).
const MAX_CAPABILITIES: usize = 48;

/// First configuration-space offset a capability may live at.
const FIRST_CAPABILITY_OFFSET: u8 = 0x40;

/// One entry of the capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    /// Offset of the capability in configuration space.
    pub offset: u8,
}

/// Iterator over a function's capabilities.
pub struct Capabilities<'f, 'a, C: PciConfig> {
    function: &'f PciFunction<'a, C>,
    next: u8,
    visited: usize,
}

impl<'f, 'a, C: PciConfig> Iterator for Capabilities<'f, 'a, C> {
    type Item = Capability;

    fn next(&mut self) -> Option<Capability> {
        // Pointers below 0x40 point into the header: the list ends (or is corrupt).
        if self.next < FIRST_CAPABILITY_OFFSET || self.visited >= MAX_CAPABILITIES {
            return None;
        }
        let offset = self.next;
        let header = self.function.read_u16(offset);
        self.next = (header >> 8) as u8 & !0x3;
        self.visited += 1;
        Some(Capability {
            id: header as u8,
            offset,
        })
    }
}

impl<'a, C: PciConfig> PciFunction<'a, C> {
    /// The capability list, empty if the function has none.
    pub fn capabilities(&self) -> Capabilities<'_, 'a, C> {
        let next = if self.status().contains(Status::CAPABILITIES_LIST) {
            self.read_u8(register::CAPABILITIES_POINTER) & !0x3
        } else {
            0
        };
        Capabilities {
            function: self,
            next,
            visited: 0,
        }
    }

    /// The first capability with this ID.
    pub fn find_capability(&self, capability_id: u8) -> Option<Capability> {
        self.capabilities()
            .find(|capability| capability.id == capability_id)
    }
}
