//! The virtio PCI transport (virtio 1.2, 4.1): capability parsing, the common configuration
//! structure, queue notification and MSI-X vector routing.

use crate::hal::{HalError, Mmio, MmioMapper, PhysAddr};
use crate::pci::bar::{Bar, BarError};
use crate::pci::capability::id;
use crate::pci::{PciConfig, PciFunction};
use crate::virtio::features::DeviceStatus;

/// `cfg_type` values of `struct virtio_pci_cap` (4.1.4).
pub mod config_type {
    pub const COMMON: u8 = 1;
    pub const NOTIFY: u8 = 2;
    pub const ISR: u8 = 3;
    pub const DEVICE: u8 = 4;
    pub const PCI_ACCESS: u8 = 5;
}

/// Layout of `struct virtio_pci_cap` after the generic ID/next bytes (4.1.4).
mod capability_field {
    pub const LENGTH: u8 = 2;
    pub const CONFIG_TYPE: u8 = 3;
    pub const BAR: u8 = 4;
    pub const OFFSET: u8 = 8;
    pub const STRUCTURE_LENGTH: u8 = 12;
    /// `notify_off_multiplier`, only in the notification capability (4.1.4.4).
    pub const NOTIFY_OFF_MULTIPLIER: u8 = 16;
}

/// `struct virtio_pci_common_cfg` offsets (4.1.4.3).
pub mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    pub const DEVICE_FEATURE: usize = 0x04;
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    pub const DRIVER_FEATURE: usize = 0x0c;
    pub const CONFIG_MSIX_VECTOR: usize = 0x10;
    pub const NUM_QUEUES: usize = 0x12;
    pub const DEVICE_STATUS: usize = 0x14;
    pub const CONFIG_GENERATION: usize = 0x15;
    pub const QUEUE_SELECT: usize = 0x16;
    pub const QUEUE_SIZE: usize = 0x18;
    pub const QUEUE_MSIX_VECTOR: usize = 0x1a;
    pub const QUEUE_ENABLE: usize = 0x1c;
    pub const QUEUE_NOTIFY_OFF: usize = 0x1e;
    pub const QUEUE_DESC: usize = 0x20;
    pub const QUEUE_DRIVER: usize = 0x28;
    pub const QUEUE_DEVICE: usize = 0x30;
    /// Size of the structure in virtio 1.0; later fields are optional.
    pub const MINIMUM_LENGTH: usize = 0x38;
}

/// "No vector" value for the MSI-X vector registers (4.1.4.3); also what the device reads
/// back when it could not allocate the requested vector.
pub const NO_MSIX_VECTOR: u16 = 0xffff;

/// Polls of the status register while waiting for a reset to finish.
const RESET_POLL_LIMIT: usize = 1_000_000;

/// One `virtio_pci_cap` structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCapability {
    pub config_type: u8,
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
    /// Only meaningful for the notification capability.
    pub notify_off_multiplier: u32,
}

/// Why the transport could not be set up or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The device lacks a required virtio capability (a legacy-only device has none).
    MissingCapability { config_type: u8 },
    /// A capability is shorter than its structure.
    CapabilityTooShort {
        config_type: u8,
        capability_length: u8,
    },
    /// A capability names a BAR that cannot be decoded.
    Bar { bar: u8, error: BarError },
    /// A capability lives in an I/O BAR; only memory BARs are supported.
    IoBar { bar: u8 },
    /// A structure extends past the end of its BAR.
    StructureOutsideBar { config_type: u8, bar: u8 },
    /// A structure is too short to hold its registers.
    StructureTooShort { config_type: u8, length: u32 },
    /// The platform could not map a structure.
    Map(HalError),
    /// The device did not read back status 0 after a reset.
    ResetTimeout,
    /// The device has fewer queues than the driver needs.
    NoSuchQueue { queue: u16, queue_count: u16 },
    /// The device reports a maximum size of zero (queue unavailable).
    QueueUnavailable { queue: u16 },
    /// A queue's notification address is outside the notification structure.
    NotifyOutsideStructure { queue: u16, offset: u64 },
    /// A queue's notification address is odd: the device broke the rule that the multiplier
    /// is 0 or an even power of two (4.1.4.4), and a 16-bit write there would be misaligned.
    NotifyMisaligned { queue: u16, offset: u64 },
    /// The device refused an MSI-X vector (it reads back `NO_MSIX_VECTOR`).
    MsixVectorRejected { queue: Option<u16>, vector: u16 },
}

/// Physical addresses of a split virtqueue's three parts (2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAddresses {
    pub descriptor_table: PhysAddr,
    pub driver_area: PhysAddr,
    pub device_area: PhysAddr,
}

/// Kicks one virtqueue: writes its index to its notification address (4.1.4.4).
#[derive(Clone)]
pub struct QueueNotifier<M: Mmio> {
    mmio: M,
    offset: usize,
    queue: u16,
}

impl<M: Mmio> QueueNotifier<M> {
    pub fn notify(&self) {
        self.mmio.write_u16(self.offset, self.queue);
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// The mapped virtio structures of one PCI function.
pub struct PciTransport<M: Mmio> {
    common: M,
    notify: M,
    notify_off_multiplier: u32,
    isr: Option<M>,
    device: M,
}

/// Reads every virtio vendor capability of `function`, in list order.
pub fn read_capabilities<C: PciConfig>(
    function: &PciFunction<'_, C>,
) -> Result<alloc::vec::Vec<VirtioCapability>, TransportError> {
    let mut found = alloc::vec::Vec::new();
    for capability in function.capabilities() {
        if capability.id != id::VENDOR_SPECIFIC {
            continue;
        }
        let base = capability.offset;
        let capability_length = function.read_u8(base.saturating_add(capability_field::LENGTH));
        let config_type = function.read_u8(base.saturating_add(capability_field::CONFIG_TYPE));
        let minimum = if config_type == config_type::NOTIFY {
            20
        } else {
            16
        };
        if capability_length < minimum {
            return Err(TransportError::CapabilityTooShort {
                config_type,
                capability_length,
            });
        }
        // A capability that would run off the end of configuration space is as bad as a
        // short one (the offsets below would wrap).
        if usize::from(base) + usize::from(minimum) > 256 {
            return Err(TransportError::CapabilityTooShort {
                config_type,
                capability_length,
            });
        }
        found.push(VirtioCapability {
            config_type,
            bar: function.read_u8(base + capability_field::BAR),
            offset: function.read_u32(base + capability_field::OFFSET),
            length: function.read_u32(base + capability_field::STRUCTURE_LENGTH),
            notify_off_multiplier: if config_type == config_type::NOTIFY {
                function.read_u32(base + capability_field::NOTIFY_OFF_MULTIPLIER)
            } else {
                0
            },
        });
    }
    Ok(found)
}

impl<M: Mmio> PciTransport<M> {
    /// Finds and maps the common, notification, ISR and device structures of `function`.
    ///
    /// Per 4.1.4.1 the driver uses the first capability of each type whose BAR it can use;
    /// BAR indices 0x6..=0xff are reserved and skipped.
    pub fn new<C: PciConfig, P: MmioMapper<Mmio = M>>(
        function: &PciFunction<'_, C>,
        mapper: &P,
    ) -> Result<Self, TransportError> {
        let capabilities = read_capabilities(function)?;
        let first = |config_type: u8| {
            capabilities
                .iter()
                .find(|capability| capability.config_type == config_type && capability.bar < 6)
                .copied()
        };
        let map = |config_type: u8, minimum_length: u32| -> Result<Option<M>, TransportError> {
            let Some(capability) = first(config_type) else {
                return Ok(None);
            };
            if capability.length < minimum_length {
                return Err(TransportError::StructureTooShort {
                    config_type,
                    length: capability.length,
                });
            }
            let bar = function
                .bar(capability.bar)
                .map_err(|error| TransportError::Bar {
                    bar: capability.bar,
                    error,
                })?;
            let Bar::Memory { address, size, .. } = bar else {
                return Err(TransportError::IoBar {
                    bar: capability.bar,
                });
            };
            let end = u64::from(capability.offset) + u64::from(capability.length);
            if end > size {
                return Err(TransportError::StructureOutsideBar {
                    config_type,
                    bar: capability.bar,
                });
            }
            let physical = address.checked_add(u64::from(capability.offset)).ok_or(
                TransportError::StructureOutsideBar {
                    config_type,
                    bar: capability.bar,
                },
            )?;
            let mmio = mapper
                .map(physical, capability.length as usize)
                .map_err(TransportError::Map)?;
            Ok(Some(mmio))
        };
        let missing = |config_type| TransportError::MissingCapability { config_type };
        let common = map(config_type::COMMON, common::MINIMUM_LENGTH as u32)?
            .ok_or(missing(config_type::COMMON))?;
        let notify = map(config_type::NOTIFY, 2)?.ok_or(missing(config_type::NOTIFY))?;
        let notify_off_multiplier =
            first(config_type::NOTIFY).map_or(0, |capability| capability.notify_off_multiplier);
        let isr = map(config_type::ISR, 1)?;
        let device = map(config_type::DEVICE, 1)?.ok_or(missing(config_type::DEVICE))?;
        Ok(PciTransport {
            common,
            notify,
            notify_off_multiplier,
            isr,
            device,
        })
    }

    /// Writes 0 to the status and waits until the device reads it back (4.1.4.3.2).
    pub fn reset(&self) -> Result<(), TransportError> {
        self.common.write_u8(common::DEVICE_STATUS, 0);
        for _ in 0..RESET_POLL_LIMIT {
            if self.common.read_u8(common::DEVICE_STATUS) == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(TransportError::ResetTimeout)
    }

    pub fn status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.common.read_u8(common::DEVICE_STATUS))
    }

    pub fn set_status(&self, status: DeviceStatus) {
        self.common.write_u8(common::DEVICE_STATUS, status.bits());
    }

    /// Sets `bits` in the status, keeping the ones already set (3.1.1).
    pub fn add_status(&self, bits: DeviceStatus) {
        self.set_status(self.status() | bits);
    }

    /// All 64 feature bits the device offers.
    pub fn device_features(&self) -> u64 {
        self.common.write_u32(common::DEVICE_FEATURE_SELECT, 0);
        let low = u64::from(self.common.read_u32(common::DEVICE_FEATURE));
        self.common.write_u32(common::DEVICE_FEATURE_SELECT, 1);
        let high = u64::from(self.common.read_u32(common::DEVICE_FEATURE));
        low | (high << 32)
    }

    pub fn set_driver_features(&self, features: u64) {
        self.common.write_u32(common::DRIVER_FEATURE_SELECT, 0);
        self.common
            .write_u32(common::DRIVER_FEATURE, features as u32);
        self.common.write_u32(common::DRIVER_FEATURE_SELECT, 1);
        self.common
            .write_u32(common::DRIVER_FEATURE, (features >> 32) as u32);
    }

    pub fn queue_count(&self) -> u16 {
        self.common.read_u16(common::NUM_QUEUES)
    }

    pub fn config_generation(&self) -> u8 {
        self.common.read_u8(common::CONFIG_GENERATION)
    }

    /// The device-specific configuration structure.
    pub fn device_config(&self) -> &M {
        &self.device
    }

    /// Reads (and so acknowledges) the ISR status; only meaningful with INTx interrupts.
    pub fn read_isr(&self) -> Option<u8> {
        self.isr.as_ref().map(|isr| isr.read_u8(0))
    }

    fn select_queue(&self, queue: u16) -> Result<(), TransportError> {
        let queue_count = self.queue_count();
        if queue >= queue_count {
            return Err(TransportError::NoSuchQueue { queue, queue_count });
        }
        self.common.write_u16(common::QUEUE_SELECT, queue);
        Ok(())
    }

    /// The largest size the device allows for `queue`.
    pub fn queue_max_size(&self, queue: u16) -> Result<u16, TransportError> {
        self.select_queue(queue)?;
        match self.common.read_u16(common::QUEUE_SIZE) {
            0 => Err(TransportError::QueueUnavailable { queue }),
            size => Ok(size),
        }
    }

    pub fn config_msix_vector(&self) -> u16 {
        self.common.read_u16(common::CONFIG_MSIX_VECTOR)
    }

    /// Routes configuration-change interrupts to `vector` (or `NO_MSIX_VECTOR`).
    pub fn set_config_msix_vector(&self, vector: u16) -> Result<(), TransportError> {
        self.common.write_u16(common::CONFIG_MSIX_VECTOR, vector);
        if vector != NO_MSIX_VECTOR && self.common.read_u16(common::CONFIG_MSIX_VECTOR) != vector {
            return Err(TransportError::MsixVectorRejected {
                queue: None,
                vector,
            });
        }
        Ok(())
    }

    /// Routes `queue`'s used-buffer interrupts to `vector` (or `NO_MSIX_VECTOR`).
    pub fn set_queue_msix_vector(&self, queue: u16, vector: u16) -> Result<(), TransportError> {
        self.select_queue(queue)?;
        self.common.write_u16(common::QUEUE_MSIX_VECTOR, vector);
        if vector != NO_MSIX_VECTOR && self.common.read_u16(common::QUEUE_MSIX_VECTOR) != vector {
            return Err(TransportError::MsixVectorRejected {
                queue: Some(queue),
                vector,
            });
        }
        Ok(())
    }

    /// Gives `queue` its size, ring addresses and MSI-X vector, enables it (4.1.5.1.3), and
    /// returns its notifier.
    pub fn enable_queue(
        &self,
        queue: u16,
        size: u16,
        addresses: QueueAddresses,
        msix_vector: u16,
    ) -> Result<QueueNotifier<M>, TransportError>
    where
        M: Clone,
    {
        self.select_queue(queue)?;
        self.common.write_u16(common::QUEUE_SIZE, size);
        self.common
            .write_u64(common::QUEUE_DESC, addresses.descriptor_table.as_u64());
        self.common
            .write_u64(common::QUEUE_DRIVER, addresses.driver_area.as_u64());
        self.common
            .write_u64(common::QUEUE_DEVICE, addresses.device_area.as_u64());
        self.set_queue_msix_vector(queue, msix_vector)?;
        let notify_off = self.common.read_u16(common::QUEUE_NOTIFY_OFF);
        let offset = u64::from(notify_off) * u64::from(self.notify_off_multiplier);
        if offset + 2 > self.notify.len() as u64 {
            return Err(TransportError::NotifyOutsideStructure { queue, offset });
        }
        if !offset.is_multiple_of(2) {
            return Err(TransportError::NotifyMisaligned { queue, offset });
        }
        self.common.write_u16(common::QUEUE_ENABLE, 1);
        Ok(QueueNotifier {
            mmio: self.notify.clone(),
            offset: offset as usize,
            queue,
        })
    }
}
