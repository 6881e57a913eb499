//! Host tests of the PCI id table, the selection of the NIC and both probes.

use std::format;
use std::vec::Vec;

use super::*;
use crate::hal::fake::{FakeClock, FakeDma, FakeMemory, FakeMmioMapper, FakeTimer};
use crate::ixgbe::model::{Model82599, ModelSettings};
use crate::pci::fake::FakePciConfig;
use crate::virtio::net::fake_device::{self, FakeMachine, Settings};

const BAR0: u64 = 0xFE00_0000;

#[test]
fn the_table_names_every_82599_variant_of_the_issue_and_both_virtio_net_ids() {
    for device_id in [
        0x10fb, 0x10fc, 0x1517, 0x151c, 0x1529, 0x152a, 0x1557, 0x1558, 0x10f7, 0x10f8, 0x10f9,
        0x154d, 0x154f,
    ] {
        assert_eq!(
            driver_for(0x8086, device_id),
            Some(Driver::Ixgbe),
            "{device_id:04x}"
        );
    }
    assert_eq!(driver_for(0x1af4, 0x1041), Some(Driver::VirtioNet));
    assert_eq!(driver_for(0x1af4, 0x1000), Some(Driver::VirtioNet));
    // Not a network device (virtio-blk), an 82598, an X540: not ours.
    assert_eq!(driver_for(0x1af4, 0x1001), None);
    assert_eq!(driver_for(0x8086, 0x10C6), None);
    assert_eq!(driver_for(0x8086, 0x1528), None);
    // The table and the driver's own list agree, without duplicates.
    let intel: Vec<u16> = SUPPORTED_DEVICES
        .iter()
        .filter(|device| device.driver == Driver::Ixgbe)
        .map(|device| device.device_id)
        .collect();
    assert_eq!(intel, crate::ixgbe::DEVICE_IDS);
    for (index, device) in SUPPORTED_DEVICES.iter().enumerate() {
        assert!(!SUPPORTED_DEVICES[index + 1..].contains(device));
    }
}

fn candidate(bus: u8, device: u8, vendor_id: u16, device_id: u16) -> PciCandidate {
    PciCandidate {
        address: PciAddress::new(bus, device, 0),
        vendor_id,
        device_id,
    }
}

#[test]
fn the_first_supported_function_is_chosen_unless_nic_names_one() {
    let candidates = [
        candidate(0, 1, 0x8086, 0x29C0),
        candidate(0, 2, 0x1af4, 0x1041),
        candidate(1, 0, 0x8086, 0x10FB),
    ];
    let (chosen, driver) = select(&candidates, None).unwrap();
    assert_eq!(
        (chosen.address, driver),
        (PciAddress::new(0, 2, 0), Driver::VirtioNet)
    );
    let (chosen, driver) = select(&candidates, Some(PciAddress::new(1, 0, 0))).unwrap();
    assert_eq!(
        (chosen.address, driver),
        (PciAddress::new(1, 0, 0), Driver::Ixgbe)
    );
    assert_eq!(
        select(&candidates, Some(PciAddress::new(3, 0, 0))),
        Err(SelectError::NamedDeviceAbsent {
            address: PciAddress::new(3, 0, 0)
        })
    );
    assert!(matches!(
        select(&candidates, Some(PciAddress::new(0, 1, 0))),
        Err(SelectError::NamedDeviceUnsupported { .. })
    ));
    assert_eq!(
        select(&candidates[..1], None),
        Err(SelectError::NoSupportedDevice)
    );
}

struct IntelMachine {
    pci: FakePciConfig,
    mapper: FakeMmioMapper,
    dma: FakeDma,
    clock: FakeClock,
}

fn intel_machine(device_id: u16) -> IntelMachine {
    let memory = FakeMemory::new();
    let clock = FakeClock::new();
    let model = Model82599::new(ModelSettings::default(), &clock, &memory);
    let mapper = FakeMmioMapper::default();
    mapper.add_window(BAR0, 0x80000, model);
    let pci = FakePciConfig::default();
    pci.add_function(PciAddress::new(1, 0, 0), 0x8086, device_id);
    pci.add_memory_bar_64(PciAddress::new(1, 0, 0), 0, BAR0, 0x80000);
    IntelMachine {
        pci,
        mapper,
        dma: FakeDma::new(&memory),
        clock,
    }
}

#[test]
fn an_82599_probes_as_ixgbe_with_its_steering_described_as_data() {
    for (preference, queues, line) in [
        (
            SteeringPreference::RssAndExactFilters,
            4,
            "driver=ixgbe queues=4 steering=rss+exact-filters exact-filters=2046",
        ),
        (
            SteeringPreference::RssOnly,
            32,
            "driver=ixgbe queues=16 steering=rss",
        ),
    ] {
        let machine = intel_machine(0x10FB);
        let function = PciFunction::new(&machine.pci, PciAddress::new(1, 0, 0));
        let options = NicOptions {
            queue_count: queues,
            ring_size: 64,
            steering: preference,
            ..NicOptions::default()
        };
        let mut nic = probe(
            &function,
            &machine.mapper,
            &machine.dma,
            FakeTimer::new(&machine.clock),
            &options,
        )
        .unwrap();
        assert_eq!(format!("{}", nic.describe()), line);
        assert!(function.command().contains(crate::pci::Command::BUS_MASTER));
        let queue = nic.take_queue(QueueId(0)).unwrap();
        assert_eq!(queue.msix_vectors(), (None, None));
        assert_eq!(queue.max_frame_length(), 1514);
    }
}

#[test]
fn a_virtio_net_function_probes_as_virtio_net() {
    let machine = FakeMachine::new(Settings::default());
    let function = PciFunction::new(&machine.pci, fake_device::address());
    let options = NicOptions {
        queue_count: 1,
        ring_size: 64,
        ..NicOptions::default()
    };
    let nic: ProbedNic<_, _, FakeTimer> = probe(
        &function,
        &machine.mapper,
        &machine.dma,
        FakeTimer::default(),
        &options,
    )
    .unwrap();
    assert_eq!(nic.driver(), Driver::VirtioNet);
    let description = nic.describe();
    assert_eq!(description.queues, 1);
    assert_eq!(description.steering.exact_filters, 0);
}

#[test]
fn an_unsupported_function_is_refused_by_name() {
    let machine = intel_machine(0x1528);
    let function = PciFunction::new(&machine.pci, PciAddress::new(1, 0, 0));
    let result = probe(
        &function,
        &machine.mapper,
        &machine.dma,
        FakeTimer::new(&machine.clock),
        &NicOptions::default(),
    );
    assert!(matches!(
        result,
        Err(ProbeError::Unsupported {
            vendor_id: 0x8086,
            device_id: 0x1528
        })
    ));
}
