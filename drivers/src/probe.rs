//! Which PCI functions the drivers support, and one probe per driver that brings a function
//! up and returns it behind the common [`Nic`]/[`NicQueue`] traits, so that the boot code
//! brings up "the NIC" without naming a driver.
//!
//! The table ([`SUPPORTED_DEVICES`]) maps a vendor/device id to a [`Driver`]; [`select`]
//! picks the function to use among those present (the first supported one, or the one the
//! command line names); [`probe`] runs that driver's probe; [`ProbedNic::describe`] says what
//! came up (driver, queues, steering) for the one console line.

use core::fmt;

use crate::hal::{Dma, DmaRegion, Mmio, MmioMapper, Timer};
use crate::ixgbe::{self, Ixgbe, IxgbeError, IxgbeOptions, IxgbeQueue, SteeringMode};
use crate::nic::{
    ChecksumOffload, ExactFilter, LinkState, MacAddress, Nic, NicQueue, QueueId, QueueStatistics,
    RssConfiguration, Steering, SteeringError, TransmitError,
};
use crate::pci::{PciAddress, PciConfig, PciFunction};
use crate::virtio::VIRTIO_VENDOR_ID;
use crate::virtio::net::device::{DEVICE_ID_MODERN, DEVICE_ID_TRANSITIONAL, MsixRouting};
use crate::virtio::net::{VirtioNet, VirtioNetError, VirtioNetOptions, VirtioNetQueue};

/// The drivers of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    VirtioNet,
    Ixgbe,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::VirtioNet => "virtio-net",
            Driver::Ixgbe => "ixgbe",
        }
    }
}

/// One supported PCI function kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupportedDevice {
    pub vendor_id: u16,
    pub device_id: u16,
    pub driver: Driver,
}

const fn virtio(device_id: u16) -> SupportedDevice {
    SupportedDevice {
        vendor_id: VIRTIO_VENDOR_ID,
        device_id,
        driver: Driver::VirtioNet,
    }
}

const fn intel_82599(device_id: u16) -> SupportedDevice {
    SupportedDevice {
        vendor_id: ixgbe::device::INTEL_VENDOR_ID,
        device_id,
        driver: Driver::Ixgbe,
    }
}

/// Every supported vendor/device id: virtio-net modern and transitional (virtio 1.2, 4.1.2)
/// and the 82599 variants of [`ixgbe::DEVICE_IDS`].
pub const SUPPORTED_DEVICES: &[SupportedDevice] = &[
    virtio(DEVICE_ID_MODERN),
    virtio(DEVICE_ID_TRANSITIONAL),
    intel_82599(0x10F7),
    intel_82599(0x1514),
    intel_82599(0x1517),
    intel_82599(0x10F8),
    intel_82599(0x10F9),
    intel_82599(0x10FB),
    intel_82599(0x152A),
    intel_82599(0x1529),
    intel_82599(0x1507),
    intel_82599(0x154D),
    intel_82599(0x154A),
    intel_82599(0x154F),
    intel_82599(0x1557),
    intel_82599(0x1558),
    intel_82599(0x10FC),
    intel_82599(0x151C),
];

/// The driver for a vendor/device id, if any.
pub fn driver_for(vendor_id: u16, device_id: u16) -> Option<Driver> {
    SUPPORTED_DEVICES
        .iter()
        .find(|device| device.vendor_id == vendor_id && device.device_id == device_id)
        .map(|device| device.driver)
}

/// A PCI function found by enumeration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciCandidate {
    pub address: PciAddress,
    pub vendor_id: u16,
    pub device_id: u16,
}

/// Why no function was selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// No supported function is present.
    NoSupportedDevice,
    /// `nic=` names a function that is absent.
    NamedDeviceAbsent { address: PciAddress },
    /// `nic=` names a function no driver supports.
    NamedDeviceUnsupported {
        address: PciAddress,
        vendor_id: u16,
        device_id: u16,
    },
}

/// The function to bring up: the one `wanted` names (`nic=<bus:dev.fn>`), else the first
/// supported one in `candidates`' order (enumeration order).
pub fn select(
    candidates: &[PciCandidate],
    wanted: Option<PciAddress>,
) -> Result<(PciCandidate, Driver), SelectError> {
    match wanted {
        Some(address) => {
            let candidate = candidates
                .iter()
                .find(|candidate| candidate.address == address)
                .ok_or(SelectError::NamedDeviceAbsent { address })?;
            let driver = driver_for(candidate.vendor_id, candidate.device_id).ok_or(
                SelectError::NamedDeviceUnsupported {
                    address,
                    vendor_id: candidate.vendor_id,
                    device_id: candidate.device_id,
                },
            )?;
            Ok((*candidate, driver))
        }
        None => candidates
            .iter()
            .find_map(|candidate| {
                driver_for(candidate.vendor_id, candidate.device_id)
                    .map(|driver| (*candidate, driver))
            })
            .ok_or(SelectError::NoSupportedDevice),
    }
}

/// Whether to program exact filters (Flow Director) where the NIC has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteeringPreference {
    /// RSS only (`ixgbe.steering=rss`).
    RssOnly,
    /// RSS plus exact filters for replies on connections we open (`ixgbe.steering=fdir`).
    RssAndExactFilters,
}

/// What the boot code asks of whichever driver probes the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicOptions {
    /// Queue pairs wanted (the core count); a NIC may give fewer.
    pub queue_count: u16,
    /// Descriptors per ring.
    pub ring_size: u16,
    pub steering: SteeringPreference,
    /// The MAC to use (`mac=`): instead of the 82599's own (written to RAL0/RAH0); for
    /// virtio-net only when the device offers none (its MAC is the host's choice).
    pub mac: Option<MacAddress>,
    /// MSI-X vectors for receive queues were routed (virtio-net: vector 1 + queue).
    pub receive_interrupts: bool,
    /// How long to wait for a link at bring-up.
    pub link_wait_milliseconds: u32,
}

impl Default for NicOptions {
    fn default() -> Self {
        NicOptions {
            queue_count: 1,
            ring_size: 256,
            steering: SteeringPreference::RssAndExactFilters,
            mac: None,
            receive_interrupts: false,
            link_wait_milliseconds: 3000,
        }
    }
}

/// Why a probe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    Unsupported { vendor_id: u16, device_id: u16 },
    VirtioNet(VirtioNetError),
    Ixgbe(IxgbeError),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Unsupported {
                vendor_id,
                device_id,
            } => write!(formatter, "no driver for {vendor_id:04x}:{device_id:04x}"),
            ProbeError::VirtioNet(error) => write!(formatter, "virtio-net: {error:?}"),
            ProbeError::Ixgbe(error) => write!(formatter, "ixgbe: {error:?}"),
        }
    }
}

/// The device behind the common traits, whichever driver brought it up.
pub enum ProbedNic<M: Mmio, R: DmaRegion, T: Timer> {
    VirtioNet(VirtioNet<M, R>),
    Ixgbe(Ixgbe<M, R, T>),
}

/// One queue pair of a [`ProbedNic`].
pub enum ProbedQueue<M: Mmio, R: DmaRegion> {
    VirtioNet(VirtioNetQueue<M, R>),
    Ixgbe(IxgbeQueue<M, R>),
}

/// The virtio-net probe.
pub fn probe_virtio_net<C, P, D, M, R, T>(
    function: &PciFunction<'_, C>,
    mapper: &P,
    dma: &D,
    options: &NicOptions,
) -> Result<ProbedNic<M, R, T>, ProbeError>
where
    C: PciConfig,
    P: MmioMapper<Mmio = M>,
    D: Dma<Region = R>,
    M: Mmio + Clone,
    R: DmaRegion,
    T: Timer,
{
    let mut virtio_options = VirtioNetOptions {
        queue_pairs: options.queue_count,
        queue_size: options.ring_size,
        msix: if options.receive_interrupts {
            MsixRouting::ReceiveOnly
        } else {
            MsixRouting::None
        },
        ..VirtioNetOptions::default()
    };
    if let Some(mac) = options.mac {
        virtio_options.fallback_mac = mac;
    }
    VirtioNet::new(function, mapper, dma, virtio_options)
        .map(ProbedNic::VirtioNet)
        .map_err(ProbeError::VirtioNet)
}

/// The 82599 probe: at most 16 queues (RSS's reach), Flow Director unless RSS only is asked.
pub fn probe_ixgbe<C, P, D, M, R, T>(
    function: &PciFunction<'_, C>,
    mapper: &P,
    dma: &D,
    timer: T,
    options: &NicOptions,
) -> Result<ProbedNic<M, R, T>, ProbeError>
where
    C: PciConfig,
    P: MmioMapper<Mmio = M>,
    D: Dma<Region = R>,
    M: Mmio + Clone,
    R: DmaRegion,
    T: Timer,
{
    let queue_count = options.queue_count.clamp(1, ixgbe::device::MAX_QUEUES);
    let steering = match options.steering {
        SteeringPreference::RssOnly => SteeringMode::Rss,
        SteeringPreference::RssAndExactFilters => SteeringMode::RssAndFlowDirector,
    };
    let ixgbe_options = IxgbeOptions {
        ring_size: options.ring_size.clamp(16, 4096) & !7,
        mac: options.mac,
        link_wait_milliseconds: options.link_wait_milliseconds,
        ..IxgbeOptions::new(queue_count, steering)
    };
    Ixgbe::new(function, mapper, dma, timer, ixgbe_options)
        .map(ProbedNic::Ixgbe)
        .map_err(ProbeError::Ixgbe)
}

/// Brings up the function with the driver the table names for it.
pub fn probe<C, P, D, M, R, T>(
    function: &PciFunction<'_, C>,
    mapper: &P,
    dma: &D,
    timer: T,
    options: &NicOptions,
) -> Result<ProbedNic<M, R, T>, ProbeError>
where
    C: PciConfig,
    P: MmioMapper<Mmio = M>,
    D: Dma<Region = R>,
    M: Mmio + Clone,
    R: DmaRegion,
    T: Timer,
{
    let (vendor_id, device_id) = (function.vendor_id(), function.device_id());
    match driver_for(vendor_id, device_id) {
        Some(Driver::VirtioNet) => probe_virtio_net(function, mapper, dma, options),
        Some(Driver::Ixgbe) => probe_ixgbe(function, mapper, dma, timer, options),
        None => Err(ProbeError::Unsupported {
            vendor_id,
            device_id,
        }),
    }
}

/// What came up, for the console line and the stack's choice of Receive Flow Deliver rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicDescription {
    pub driver: Driver,
    pub queues: usize,
    pub steering: Steering,
}

impl NicDescription {
    /// The steering mode in one word: `rss+fdir` when exact filters are available,
    /// `rss` with RSS only, `none` when the NIC (or host) picks queues by itself.
    pub fn steering_mode(&self) -> &'static str {
        match (self.steering.rss.is_some(), self.steering.exact_filters > 0) {
            (_, true) => "rss+exact-filters",
            (true, false) => "rss",
            (false, false) => "none",
        }
    }
}

impl fmt::Display for NicDescription {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "driver={} queues={} steering={}",
            self.driver.name(),
            self.queues,
            self.steering_mode()
        )?;
        if self.steering.exact_filters > 0 {
            write!(formatter, " exact-filters={}", self.steering.exact_filters)?;
        }
        Ok(())
    }
}

impl<M: Mmio + Clone, R: DmaRegion, T: Timer> ProbedNic<M, R, T> {
    pub fn driver(&self) -> Driver {
        match self {
            ProbedNic::VirtioNet(_) => Driver::VirtioNet,
            ProbedNic::Ixgbe(_) => Driver::Ixgbe,
        }
    }

    /// Runs the NIC's loopback self-check ([`ixgbe::self_check`]) with all its queues (which
    /// it uses up); `None` if the driver has none (virtio-net).
    pub fn loopback_self_check(
        &mut self,
        timer: &T,
        frames: &[ixgbe::self_check::CheckFrame],
    ) -> Option<alloc::vec::Vec<ixgbe::self_check::CheckResult>> {
        let ProbedNic::Ixgbe(nic) = self else {
            return None;
        };
        let mut queues: alloc::vec::Vec<_> = (0..nic.queue_count() as u16)
            .filter_map(|queue| nic.take_queue(QueueId(queue)))
            .collect();
        Some(ixgbe::self_check::run(nic, &mut queues, timer, frames))
    }

    pub fn describe(&self) -> NicDescription {
        NicDescription {
            driver: self.driver(),
            queues: self.queue_count(),
            steering: self.steering(),
        }
    }
}

/// Forwards a call to whichever driver is inside.
macro_rules! each_nic {
    ($value:expr, $nic:ident => $call:expr) => {
        match $value {
            ProbedNic::VirtioNet($nic) => $call,
            ProbedNic::Ixgbe($nic) => $call,
        }
    };
}

macro_rules! each_queue {
    ($value:expr, $queue:ident => $call:expr) => {
        match $value {
            ProbedQueue::VirtioNet($queue) => $call,
            ProbedQueue::Ixgbe($queue) => $call,
        }
    };
}

impl<M: Mmio + Clone, R: DmaRegion, T: Timer> Nic for ProbedNic<M, R, T> {
    type Queue = ProbedQueue<M, R>;

    fn mac_address(&self) -> MacAddress {
        each_nic!(self, nic => nic.mac_address())
    }

    fn link_state(&self) -> LinkState {
        each_nic!(self, nic => nic.link_state())
    }

    fn queue_count(&self) -> usize {
        each_nic!(self, nic => nic.queue_count())
    }

    fn steering(&self) -> Steering {
        each_nic!(self, nic => nic.steering())
    }

    fn configure_rss(&mut self, configuration: &RssConfiguration) -> Result<(), SteeringError> {
        each_nic!(self, nic => nic.configure_rss(configuration))
    }

    fn add_exact_filter(&mut self, filter: &ExactFilter) -> Result<(), SteeringError> {
        each_nic!(self, nic => nic.add_exact_filter(filter))
    }

    fn take_queue(&mut self, queue: QueueId) -> Option<Self::Queue> {
        match self {
            ProbedNic::VirtioNet(nic) => nic.take_queue(queue).map(ProbedQueue::VirtioNet),
            ProbedNic::Ixgbe(nic) => nic.take_queue(queue).map(ProbedQueue::Ixgbe),
        }
    }
}

impl<M: Mmio, R: DmaRegion> ProbedQueue<M, R> {
    /// MSI-X vectors of the receive and transmit queues, where routed (the 82599 driver
    /// polls and routes none).
    pub fn msix_vectors(&self) -> (Option<u16>, Option<u16>) {
        match self {
            ProbedQueue::VirtioNet(queue) => queue.msix_vectors(),
            ProbedQueue::Ixgbe(_) => (None, None),
        }
    }
}

impl<M: Mmio, R: DmaRegion> NicQueue for ProbedQueue<M, R> {
    fn id(&self) -> QueueId {
        each_queue!(self, queue => queue.id())
    }

    fn rx_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        each_queue!(self, queue => queue.rx_burst(max_frames, handler))
    }

    fn tx_enqueue(
        &mut self,
        length: usize,
        checksum: Option<ChecksumOffload>,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), TransmitError> {
        each_queue!(self, queue => queue.tx_enqueue(length, checksum, fill))
    }

    fn transmit_checksum_offload(&self) -> bool {
        each_queue!(self, queue => queue.transmit_checksum_offload())
    }

    fn tx_flush(&mut self) {
        each_queue!(self, queue => queue.tx_flush())
    }

    fn max_frame_length(&self) -> usize {
        each_queue!(self, queue => queue.max_frame_length())
    }

    fn disable_interrupts(&mut self) {
        each_queue!(self, queue => queue.disable_interrupts())
    }

    fn enable_interrupts(&mut self) -> bool {
        each_queue!(self, queue => queue.enable_interrupts())
    }

    fn statistics(&self) -> QueueStatistics {
        each_queue!(self, queue => queue.statistics())
    }
}

#[cfg(test)]
mod tests;
