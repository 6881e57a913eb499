//! Bringing up a virtio-net PCI function (virtio 1.2, 3.1.1 and 5.1.5): feature negotiation,
//! queue-pair and control-queue set-up, multiqueue and RSS commands; and its [`Nic`] face.
//!
//! What the boot code does, on the boot core, before the other cores start:
//!
//! ```text
//! let pci = PortPciConfig::new(unsafe { X86PortIo::new() });     // or its own PciConfig
//! let function = PciFunction::new(&pci, address);               // from PCI enumeration
//! let mapper = unsafe { IdentityMmioMapper::new() };             // BARs identity-mapped, UC
//! let dma = unsafe { IdentityMappedDma::new() };                 // heap identity-mapped
//! let options = VirtioNetOptions { queue_pairs: cores, msix: MsixRouting::ReceiveOnly, ..Default::default() };
//! let mut nic = VirtioNet::new(&function, &mapper, &dma, options)?;
//! if let Some(rss) = nic.steering().rss { nic.configure_rss(&configuration)?; }
//! // MSI-X (optional): MsixCapability::read(&function), MsixTable::map(&function, &cap, &mapper),
//! // table.program(vector, MsiMessage::x86(apic_id_of_owner, idt_vector)), cap.enable(&function).
//! for core in 0..nic.queue_count() { give core its nic.take_queue(QueueId(core)) }
//! ```

use alloc::vec::Vec;

use crate::hal::{Dma, DmaRegion, HalError, Mmio, MmioMapper};
use crate::nic::{
    ExactFilter, LinkState, MacAddress, Nic, QueueId, RssCapabilities, RssConfiguration, Steering,
    SteeringError,
};
use crate::packet_pool::{PacketPool, PoolError};
use crate::pci::{PciConfig, PciFunction};
use crate::virtio::VIRTIO_VENDOR_ID;
use crate::virtio::features::{DeviceStatus, Features};
use crate::virtio::net::config::{ConfigError, read_config, read_link_state};
use crate::virtio::net::control::{ControlCommand, ControlError, ControlQueue, validate_rss};
use crate::virtio::net::queue::{VirtioNetQueue, pool_size};
use crate::virtio::pci_transport::{NO_MSIX_VECTOR, PciTransport, TransportError};
use crate::virtio::virtqueue::{QueueError, SplitVirtqueue};

/// PCI device IDs of a virtio network function: transitional (legacy + modern interface)
/// and modern-only (0x1040 + device type 1), virtio 1.2, 4.1.2.
pub const DEVICE_ID_TRANSITIONAL: u16 = 0x1000;
pub const DEVICE_ID_MODERN: u16 = 0x1041;

/// Control queue size we ask for: commands run one at a time, two descriptors each.
const CONTROL_QUEUE_SIZE: u16 = 16;
/// Control buffer without RSS: the largest other command is a few bytes.
const CONTROL_BUFFER_BASE: usize = 64;

/// Features the driver can use; the device's offer is intersected with these.
/// GUEST_CSUM stays off: received frames then always carry complete checksums, which the
/// stack verifies, whatever the host's offload settings. CSUM (transmit checksum offload)
/// is used only when the options ask for it.
fn supported_features(options: &VirtioNetOptions) -> Features {
    let mut features = Features::VERSION_1
        | Features::MAC
        | Features::STATUS
        | Features::CTRL_VQ
        | Features::MQ
        | Features::RSS
        | Features::ACCESS_PLATFORM;
    if options.transmit_checksum_offload {
        features |= Features::CSUM;
    }
    features
}

/// Where each queue's interrupts go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixRouting {
    /// No MSI-X vectors: the driver polls (interrupt suppression still applies).
    None,
    /// Configuration changes on vector 0, pair `i`'s receive queue on `1 + i`; transmit
    /// queues have none (completions are reclaimed while polling). `N + 1` vectors: what an
    /// idle core needs to wake on arriving frames.
    ReceiveOnly,
    /// Configuration changes on vector 0; pair `i` receives on `1 + 2i`, transmits on
    /// `2 + 2i`. Matches QEMU's `vectors=2N+2`. The control queue has no vector (polled).
    PerQueue,
}

/// What the boot code asks of the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioNetOptions {
    /// Queue pairs wanted, normally the core count; the device may offer fewer.
    pub queue_pairs: u16,
    /// Descriptors per receive and transmit queue, a power of two (reduced to the device's
    /// maximum).
    pub queue_size: u16,
    /// Packet buffer size, a multiple of 64 that holds the 12-byte header plus a frame.
    pub buffer_size: usize,
    pub msix: MsixRouting,
    /// MAC to use if the device does not offer one.
    pub fallback_mac: MacAddress,
    /// Negotiate CSUM when offered, so queues accept [`ChecksumOffload`] requests (under
    /// QEMU the host then sums the payload instead of the emulated guest).
    ///
    /// [`ChecksumOffload`]: crate::nic::ChecksumOffload
    pub transmit_checksum_offload: bool,
}

impl Default for VirtioNetOptions {
    fn default() -> Self {
        VirtioNetOptions {
            queue_pairs: 1,
            queue_size: 256,
            buffer_size: crate::packet_pool::DEFAULT_BUFFER_SIZE,
            msix: MsixRouting::None,
            // Locally administered, unicast.
            fallback_mac: MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]),
            transmit_checksum_offload: false,
        }
    }
}

/// Why the device could not be brought up (or a command failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioNetError {
    /// The function is not a virtio network device.
    NotVirtioNet {
        vendor_id: u16,
        device_id: u16,
    },
    /// `queue_pairs` is zero or `queue_size` not a power of two.
    BadOptions,
    Transport(TransportError),
    /// The device does not offer VERSION_1 (a legacy-only device).
    LegacyOnly,
    /// The device did not keep FEATURES_OK after we wrote our features.
    FeaturesRejected {
        features: Features,
    },
    Config(ConfigError),
    /// The device has fewer virtqueues than its advertised queue pairs need (up to 0x10001,
    /// one more than the 16-bit `num_queues` can report).
    TooFewVirtqueues {
        needed: u32,
        available: u16,
    },
    Queue {
        queue: u16,
        error: QueueError,
    },
    Pool(PoolError),
    ControlBuffer(HalError),
    Control(ControlError),
    /// The device set DEVICE_NEEDS_RESET during set-up.
    DeviceNeedsReset,
}

impl From<TransportError> for VirtioNetError {
    fn from(error: TransportError) -> Self {
        VirtioNetError::Transport(error)
    }
}

/// A live virtio-net device: the control plane, and the queue pairs until cores take them.
pub struct VirtioNet<M: Mmio, R: DmaRegion> {
    transport: PciTransport<M>,
    features: Features,
    mac: MacAddress,
    max_queue_pairs: u16,
    queue_pairs: u16,
    rss: Option<RssCapabilities>,
    control: Option<ControlQueue<M, R>>,
    queues: Vec<Option<VirtioNetQueue<M, R>>>,
}

impl<M: Mmio + Clone, R: DmaRegion> VirtioNet<M, R> {
    /// Brings up the virtio-net function at `function`: enables memory decoding, maps its
    /// virtio structures with `mapper`, resets the device and only then enables bus
    /// mastering, negotiates features, sets up
    /// `options.queue_pairs` queue pairs (fewer if the device has fewer) with buffers from
    /// `dma`, sets DRIVER_OK and activates the pairs with `VQ_PAIRS_SET`.
    ///
    /// On failure after the device was touched, the device is marked FAILED.
    pub fn new<C, P, D>(
        function: &PciFunction<'_, C>,
        mapper: &P,
        dma: &D,
        options: VirtioNetOptions,
    ) -> Result<Self, VirtioNetError>
    where
        C: PciConfig,
        P: MmioMapper<Mmio = M>,
        D: Dma<Region = R>,
    {
        let (vendor_id, device_id) = (function.vendor_id(), function.device_id());
        if vendor_id != VIRTIO_VENDOR_ID
            || (device_id != DEVICE_ID_TRANSITIONAL && device_id != DEVICE_ID_MODERN)
        {
            return Err(VirtioNetError::NotVirtioNet {
                vendor_id,
                device_id,
            });
        }
        if options.queue_pairs == 0
            || options.queue_size == 0
            || !options.queue_size.is_power_of_two()
        {
            return Err(VirtioNetError::BadOptions);
        }
        // Registers first; DMA only once the reset has stopped whatever a previous owner
        // (firmware's network boot, an earlier kernel) left the device doing (3.1.1 step 1).
        function.enable_memory_space();
        let transport = PciTransport::new(function, mapper)?;
        transport.reset()?;
        function.enable_bus_master();
        match Self::bring_up(transport, dma, options) {
            Ok(device) => Ok(device),
            Err((transport, error)) => {
                transport.add_status(DeviceStatus::FAILED);
                Err(error)
            }
        }
    }

    /// Status handshake and set-up after reset; on error hands the transport back so the
    /// caller can mark the device FAILED.
    #[allow(clippy::result_large_err)]
    fn bring_up<D: Dma<Region = R>>(
        transport: PciTransport<M>,
        dma: &D,
        options: VirtioNetOptions,
    ) -> Result<Self, (PciTransport<M>, VirtioNetError)> {
        macro_rules! attempt {
            ($expression:expr) => {
                match $expression {
                    Ok(value) => value,
                    Err(error) => return Err((transport, error.into())),
                }
            };
        }
        transport.set_status(DeviceStatus::ACKNOWLEDGE);
        transport.add_status(DeviceStatus::DRIVER);
        let features = attempt!(negotiate(&transport, &options));
        let config = attempt!(
            read_config(transport.device_config(), features, || transport
                .config_generation())
            .map_err(VirtioNetError::Config)
        );
        let max_queue_pairs = config.max_virtqueue_pairs;
        let has_control = features.contains(Features::CTRL_VQ);
        // In 32 bits: 0x8000 pairs is valid (5.1.4.1) and needs more queues than a u16 holds.
        // Once the check passes, every queue index below (up to the control queue at
        // 2 * max_queue_pairs) fits in a u16.
        let needed = 2 * u32::from(max_queue_pairs) + u32::from(has_control);
        let available = transport.queue_count();
        if u32::from(available) < needed {
            return Err((
                transport,
                VirtioNetError::TooFewVirtqueues { needed, available },
            ));
        }
        let queue_pairs = options.queue_pairs.min(max_queue_pairs);
        let config_vector = match options.msix {
            MsixRouting::None => NO_MSIX_VECTOR,
            MsixRouting::ReceiveOnly | MsixRouting::PerQueue => 0,
        };
        attempt!(transport.set_config_msix_vector(config_vector));
        let mut queues = Vec::with_capacity(usize::from(queue_pairs));
        for pair in 0..queue_pairs {
            let checksum_offload = features.contains(Features::CSUM);
            let queue = attempt!(set_up_pair(
                &transport,
                dma,
                &options,
                pair,
                checksum_offload
            ));
            queues.push(Some(queue));
        }
        let control = if has_control {
            let table = config.rss.map_or(0, |rss| rss.max_indirection_table_length);
            let capacity = CONTROL_BUFFER_BASE + 2 * table + usize::from(u8::MAX);
            Some(attempt!(set_up_control(
                &transport,
                dma,
                2 * max_queue_pairs,
                capacity
            )))
        } else {
            None
        };
        transport.add_status(DeviceStatus::DRIVER_OK);
        if transport
            .status()
            .contains(DeviceStatus::DEVICE_NEEDS_RESET)
        {
            return Err((transport, VirtioNetError::DeviceNeedsReset));
        }
        for queue in queues.iter_mut().flatten() {
            queue.kick_receive();
        }
        let mut device = VirtioNet {
            transport,
            features,
            mac: config.mac.unwrap_or(options.fallback_mac),
            max_queue_pairs,
            queue_pairs,
            rss: config.rss,
            control,
            queues,
        };
        if features.contains(Features::MQ)
            && queue_pairs > 1
            && let Some(control) = device.control.as_mut()
            && let Err(error) = control.execute(&ControlCommand::set_queue_pairs(queue_pairs))
        {
            return Err((device.transport, VirtioNetError::Control(error)));
        }
        Ok(device)
    }

    pub fn features(&self) -> Features {
        self.features
    }

    /// Queue pairs the device supports (its `max_virtqueue_pairs`).
    pub fn max_queue_pairs(&self) -> u16 {
        self.max_queue_pairs
    }

    /// Whether the device has hit an error it can only leave by a reset (2.1.2); the queues
    /// stop working until the device is brought up again.
    pub fn needs_reset(&self) -> bool {
        self.transport
            .status()
            .contains(DeviceStatus::DEVICE_NEEDS_RESET)
    }

    /// The MSI-X vector for configuration-change interrupts, if routed.
    pub fn config_msix_vector(&self) -> Option<u16> {
        let vector = self.transport.config_msix_vector();
        (vector != NO_MSIX_VECTOR).then_some(vector)
    }

    /// Sends a raw control command (for classes this driver does not wrap).
    pub fn execute_control(&mut self, command: &ControlCommand) -> Result<(), VirtioNetError> {
        let control = self
            .control
            .as_mut()
            .ok_or(VirtioNetError::Control(ControlError::QueueBroken))?;
        control.execute(command).map_err(VirtioNetError::Control)
    }
}

/// Reads the offer, writes our subset, and checks FEATURES_OK (3.1.1 steps 4-6).
fn negotiate<M: Mmio>(
    transport: &PciTransport<M>,
    options: &VirtioNetOptions,
) -> Result<Features, VirtioNetError> {
    let offered = Features::from_bits_retain(transport.device_features());
    if !offered.contains(Features::VERSION_1) {
        return Err(VirtioNetError::LegacyOnly);
    }
    let mut features = offered & supported_features(options);
    // MQ and RSS need the control queue to be of any use (5.1.3.1).
    if !features.contains(Features::CTRL_VQ) {
        features.remove(Features::MQ | Features::RSS);
    }
    transport.set_driver_features(features.bits());
    transport.add_status(DeviceStatus::FEATURES_OK);
    if !transport.status().contains(DeviceStatus::FEATURES_OK) {
        return Err(VirtioNetError::FeaturesRejected { features });
    }
    Ok(features)
}

/// The size to use for a queue: what we want, capped at the device's maximum, rounded down
/// to a power of two.
fn queue_size(wanted: u16, device_maximum: u16) -> u16 {
    let size = wanted
        .min(device_maximum)
        .min(crate::virtio::virtqueue::MAX_QUEUE_SIZE);
    1 << (u16::BITS - 1 - size.leading_zeros())
}

fn set_up_pair<M: Mmio + Clone, R: DmaRegion, D: Dma<Region = R>>(
    transport: &PciTransport<M>,
    dma: &D,
    options: &VirtioNetOptions,
    pair: u16,
    checksum_offload: bool,
) -> Result<VirtioNetQueue<M, R>, VirtioNetError> {
    let receive_index = 2 * pair;
    let transmit_index = 2 * pair + 1;
    let (receive_vector, transmit_vector) = match options.msix {
        MsixRouting::None => (NO_MSIX_VECTOR, NO_MSIX_VECTOR),
        MsixRouting::ReceiveOnly => (1 + pair, NO_MSIX_VECTOR),
        MsixRouting::PerQueue => (1 + 2 * pair, 2 + 2 * pair),
    };
    let mut rings = Vec::with_capacity(2);
    for (index, vector) in [
        (receive_index, receive_vector),
        (transmit_index, transmit_vector),
    ] {
        let size = queue_size(options.queue_size, transport.queue_max_size(index)?);
        let queue = SplitVirtqueue::new(dma, size).map_err(|error| VirtioNetError::Queue {
            queue: index,
            error,
        })?;
        let notifier = transport.enable_queue(index, size, queue.addresses(), vector)?;
        rings.push((queue, notifier, vector));
    }
    let transmit = rings.pop().expect("two rings were pushed");
    let receive = rings.pop().expect("two rings were pushed");
    let pool = PacketPool::new(
        dma,
        pool_size(receive.0.size(), transmit.0.size()),
        options.buffer_size,
    )
    .map_err(VirtioNetError::Pool)?;
    Ok(VirtioNetQueue::new(
        QueueId(pair),
        pool,
        receive,
        transmit,
        checksum_offload,
    ))
}

fn set_up_control<M: Mmio + Clone, R: DmaRegion, D: Dma<Region = R>>(
    transport: &PciTransport<M>,
    dma: &D,
    index: u16,
    command_capacity: usize,
) -> Result<ControlQueue<M, R>, VirtioNetError> {
    let size = queue_size(CONTROL_QUEUE_SIZE, transport.queue_max_size(index)?);
    let mut queue = SplitVirtqueue::new(dma, size).map_err(|error| VirtioNetError::Queue {
        queue: index,
        error,
    })?;
    queue.set_interrupts_suppressed(true);
    let notifier = transport.enable_queue(index, size, queue.addresses(), NO_MSIX_VECTOR)?;
    ControlQueue::new(dma, queue, notifier, command_capacity).map_err(VirtioNetError::ControlBuffer)
}

impl<M: Mmio + Clone, R: DmaRegion> Nic for VirtioNet<M, R> {
    type Queue = VirtioNetQueue<M, R>;

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn link_state(&self) -> LinkState {
        read_link_state(self.transport.device_config(), self.features)
    }

    fn queue_count(&self) -> usize {
        usize::from(self.queue_pairs)
    }

    fn steering(&self) -> Steering {
        Steering {
            rss: self.rss,
            exact_filters: 0,
        }
    }

    fn configure_rss(&mut self, configuration: &RssConfiguration) -> Result<(), SteeringError> {
        let capabilities = self.rss.ok_or(SteeringError::RssUnsupported)?;
        validate_rss(configuration, &capabilities, self.queue_count())?;
        let control = self.control.as_mut().ok_or(SteeringError::RssUnsupported)?;
        control
            .execute(&ControlCommand::rss_config(configuration, self.queue_pairs))
            .map_err(|_| SteeringError::DeviceRefused)
    }

    /// virtio-net has no exact filters (there is no n-tuple control command).
    fn add_exact_filter(&mut self, _filter: &ExactFilter) -> Result<(), SteeringError> {
        Err(SteeringError::NoExactFilterAvailable)
    }

    fn take_queue(&mut self, queue: QueueId) -> Option<Self::Queue> {
        self.queues.get_mut(usize::from(queue.0))?.take()
    }
}
