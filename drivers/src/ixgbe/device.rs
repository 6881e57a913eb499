//! Bringing up an Intel 82599 port (datasheet 4.6, "Device Initialization", in ixy's order)
//! and its [`Nic`] face: RSS (7.1.2.8) and Flow Director perfect filters (7.1.2.7).
//!
//! The whole life of the device, top to bottom:
//!
//! ```text
//! mask interrupts -> global reset, wait -> mask again -> wait EEPROM auto-read, DMA init
//! -> link: 10G serial, restart auto-negotiation -> read statistics (clears them)
//! -> receive: RXEN off, packet buffers (Flow Director's share from buffer 0), CRC strip,
//!    broadcast accept, MAC -> Flow Director (while RXEN = 0) -> transmit set-up
//! -> per queue: rings + pool, RX enable + poll, RDT; TX enable + poll
//! -> RXEN on (security path paused around it) -> bounded wait for link ("no link" goes on)
//! ```
//!
//! Interrupts stay masked: every queue is polled by the core that owns it.

use alloc::vec::Vec;

use super::flow_director::{
    self, FILTER_MEMORY_BYTES, FlowDirectorError, FlowDirectorInput, FlowDirectorMasks,
    PERFECT_FILTER_CAPACITY, PerfectFilter, poll,
};
use super::queue::{IxgbeQueue, QueueMemory};
use super::registers::*;
use super::statistics::{IxgbeStatistics, StatisticsReader};
use crate::hal::{Dma, DmaRegion, HalError, Mmio, MmioMapper, Timer};
use crate::nic::{
    ExactFilter, HashTypes, LinkState, MacAddress, Nic, QueueId, RssCapabilities, RssConfiguration,
    Steering, SteeringError,
};
use crate::packet_pool::{PacketPool, PoolError};
use crate::pci::bar::{Bar, BarError};
use crate::pci::{PciConfig, PciFunction};

/// Intel's PCI vendor id.
pub const INTEL_VENDOR_ID: u16 = 0x8086;

/// Most queues RSS can spread over on the 82599 (4-bit RETA entries).
pub const MAX_QUEUES: u16 = 16;

/// The RSS key length (RSSRK, ten 32-bit registers) and indirection table length (RETA).
pub const RSS_KEY_LENGTH: usize = 40;
pub const RSS_TABLE_LENGTH: usize = 128;

/// How receive steering is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteeringMode {
    /// RSS only (in case the hardware disagrees with the documentation about combining the
    /// two): software Receive Flow Deliver hands misdelivered replies over.
    Rss,
    /// RSS for everything, Flow Director perfect filters for replies on connections we open
    /// (a matching packet goes to the filter's queue, the rest through RSS, as in Linux).
    RssAndFlowDirector,
}

/// What the boot code asks of the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IxgbeOptions {
    /// Queue pairs, normally the core count: 1..=16.
    pub queue_count: u16,
    /// Descriptors per ring: a multiple of 8 (RDLEN/TDLEN are multiples of 128 bytes), at
    /// least 16, at most 4096.
    pub ring_size: u16,
    /// Packet buffer size: a multiple of 1024 (SRRCTL.BSIZEPACKET units), 1024..=16384.
    pub buffer_size: usize,
    pub steering: SteeringMode,
    /// The Flow Director masks (global to the port), used with
    /// [`SteeringMode::RssAndFlowDirector`].
    pub flow_director_masks: FlowDirectorMasks,
    /// A MAC to use instead of the one in RAL0/RAH0 (the command line's `mac=`).
    pub mac: Option<MacAddress>,
    /// How long to wait for the link before reporting "no link" and going on.
    pub link_wait_milliseconds: u32,
}

impl IxgbeOptions {
    /// `queue_count` queues with Receive Flow Deliver's Flow Director masks for that many cores.
    pub fn new(queue_count: u16, steering: SteeringMode) -> Self {
        IxgbeOptions {
            queue_count,
            ring_size: 512,
            buffer_size: 2048,
            steering,
            flow_director_masks: FlowDirectorMasks::receive_flow_deliver(queue_count),
            mac: None,
            link_wait_milliseconds: 3000,
        }
    }
}

/// A step of the bring-up that waits for the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStep {
    /// CTRL.RST did not clear.
    Reset,
    /// EEC.AUTO_RD did not become set.
    EepromAutoRead,
    /// RDRXCTL.DMAIDONE did not become set.
    DmaInit,
    /// SECRXSTAT.SECRX_RDY did not become set before RXEN changed.
    SecurityRxPathIdle,
    ReceiveQueueEnable {
        queue: u16,
    },
    TransmitQueueEnable {
        queue: u16,
    },
}

/// Why the device could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IxgbeError {
    /// The function is not a supported 82599 port.
    NotIxgbe {
        vendor_id: u16,
        device_id: u16,
    },
    BadOptions,
    Bar(BarError),
    /// BAR 0 is not a memory BAR, or too small for the register file.
    BadRegisterBar,
    Map(HalError),
    Dma(HalError),
    Pool(PoolError),
    /// The device did not finish a step in time.
    Timeout(WaitStep),
    FlowDirector(FlowDirectorError),
}

/// Bytes of BAR 0 the driver touches (EEC at 0x10010 is the highest register used).
const REGISTER_WINDOW_BYTES: usize = 0x20000;

/// A live 82599 port: the control plane, and the queue pairs until cores take them.
pub struct Ixgbe<M: Mmio, R: DmaRegion, T: Timer> {
    registers: M,
    timer: T,
    mac: MacAddress,
    options: IxgbeOptions,
    /// Installed perfect filters (already masked), in soft-id order.
    filters: Vec<PerfectFilter>,
    /// Whether the link came up within the bounded wait at bring-up.
    link_up_at_start: bool,
    statistics: StatisticsReader<M>,
    queues: Vec<Option<IxgbeQueue<M, R>>>,
}

impl<M: Mmio + Clone, R: DmaRegion, T: Timer> Ixgbe<M, R, T> {
    /// Brings up the 82599 function at `function`: maps BAR 0, runs [`Self::bring_up`],
    /// enabling bus mastering only after the reset has stopped whatever DMA a previous owner
    /// left running.
    pub fn new<C, P, D>(
        function: &PciFunction<'_, C>,
        mapper: &P,
        dma: &D,
        timer: T,
        options: IxgbeOptions,
    ) -> Result<Self, IxgbeError>
    where
        C: PciConfig,
        P: MmioMapper<Mmio = M>,
        D: Dma<Region = R>,
    {
        let (vendor_id, device_id) = (function.vendor_id(), function.device_id());
        if vendor_id != INTEL_VENDOR_ID || !super::DEVICE_IDS.contains(&device_id) {
            return Err(IxgbeError::NotIxgbe {
                vendor_id,
                device_id,
            });
        }
        let Bar::Memory { address, size, .. } = function.bar(0).map_err(IxgbeError::Bar)? else {
            return Err(IxgbeError::BadRegisterBar);
        };
        if size < REGISTER_WINDOW_BYTES as u64 {
            return Err(IxgbeError::BadRegisterBar);
        }
        function.enable_memory_space();
        let registers = mapper
            .map(address, REGISTER_WINDOW_BYTES)
            .map_err(IxgbeError::Map)?;
        Self::bring_up(registers, dma, timer, options, || {
            function.enable_bus_master()
        })
    }

    /// The initialisation sequence over a mapped register window; `enable_dma` is called
    /// once the reset is complete and before any ring address is written.
    pub fn bring_up<D: Dma<Region = R>>(
        registers: M,
        dma: &D,
        timer: T,
        options: IxgbeOptions,
        enable_dma: impl FnOnce(),
    ) -> Result<Self, IxgbeError> {
        check_options(&options)?;
        let r = &registers;
        // 4.6.3.1: interrupts off, then the global reset, then off again (the reset restores
        // the default masks).
        r.write_u32(EIMC, EIMC_ALL);
        r.write_u32(CTRL, r.read_u32(CTRL) | CONTROL_RESET_MASK.bits());
        wait(&timer, WaitStep::Reset, 1000, 10, || {
            r.read_u32(CTRL) & CONTROL_RESET_MASK.bits() == 0
        })?;
        // 4.6.3.2: at least 10 ms before touching the device again after a reset.
        timer.delay_microseconds(10_000);
        r.write_u32(EIMC, EIMC_ALL);
        enable_dma();

        // 4.6.3: the EEPROM auto-read and the DMA initialisation finish after the reset.
        wait(&timer, WaitStep::EepromAutoRead, 1000, 100, || {
            r.read_u32(EEC) & EEC_AUTO_READ_DONE != 0
        })?;
        wait(&timer, WaitStep::DmaInit, 1000, 100, || {
            r.read_u32(RDRXCTL) & RDRXCTL_DMA_INIT_DONE != 0
        })?;

        // 4.6.4 link set-up: 10G serial, restart auto-negotiation (ixy's SFP+ recipe).
        let autoc = r.read_u32(AUTOC) & !(AUTOC_LINK_MODE_MASK | AUTOC_10G_PMA_PMD_MASK);
        r.write_u32(AUTOC, autoc | AUTOC_LINK_MODE_10G_SERIAL);
        r.write_u32(AUTOC, r.read_u32(AUTOC) | AUTOC_RESTART_AUTONEGOTIATION);

        // Statistics are clear on read: start from zero.
        let mut statistics = StatisticsReader::new(registers.clone());
        statistics.read();
        statistics.reset_totals();

        let mac = set_up_mac(r, options.mac);
        let flow_director = options.steering == SteeringMode::RssAndFlowDirector;
        set_up_receive(r, &options, flow_director);
        if flow_director {
            flow_director::initialize(r, &timer, &options.flow_director_masks)
                .map_err(IxgbeError::FlowDirector)?;
        }
        set_up_transmit(r);

        let mut queues = Vec::with_capacity(usize::from(options.queue_count));
        for index in 0..options.queue_count {
            let queue = set_up_queue(&registers, dma, &timer, &options, index)?;
            queues.push(Some(queue));
        }
        enable_receive(r, &timer)?;

        let link_up_at_start = poll(&timer, options.link_wait_milliseconds / 10, 10_000, || {
            r.read_u32(LINKS) & LINKS_UP != 0
        });
        Ok(Ixgbe {
            registers,
            timer,
            mac,
            options,
            filters: Vec::new(),
            link_up_at_start,
            statistics,
            queues,
        })
    }

    pub fn mac(&self) -> MacAddress {
        self.mac
    }

    pub fn options(&self) -> &IxgbeOptions {
        &self.options
    }

    /// Whether the link was up when bring-up finished waiting (it may come up later).
    pub fn link_up_at_start(&self) -> bool {
        self.link_up_at_start
    }

    /// Link speed in Mb/s while the link is up (LINKS [29:28]).
    pub fn link_speed_mbps(&self) -> Option<u32> {
        let links = self.registers.read_u32(LINKS);
        if links & LINKS_UP == 0 {
            return None;
        }
        match links & LINKS_SPEED_MASK {
            LINKS_SPEED_10G => Some(10_000),
            LINKS_SPEED_1G => Some(1_000),
            LINKS_SPEED_100M => Some(100),
            _ => None,
        }
    }

    /// Perfect filters installed so far.
    pub fn filters(&self) -> &[PerfectFilter] {
        &self.filters
    }

    /// A reader of the device counters that can live elsewhere (e.g. with the boot core's
    /// periodic work): it only reads clear-on-read statistics registers, which no queue uses.
    pub fn take_statistics_reader(&mut self) -> StatisticsReader<M> {
        core::mem::replace(
            &mut self.statistics,
            StatisticsReader::new(self.registers.clone()),
        )
    }

    /// Reads the device counters now and returns the totals since bring-up.
    pub fn statistics(&mut self) -> IxgbeStatistics {
        self.statistics.read()
    }

    /// Switches the MAC's internal loopback (HLREG0.LPBK) for a self-test: transmitted frames
    /// come back through the receive path, steering included.
    pub fn set_loopback(&mut self, on: bool) {
        let value = self.registers.read_u32(HLREG0);
        let loopback = MacControl::LOOPBACK.bits();
        self.registers.write_u32(
            HLREG0,
            if on {
                value | loopback
            } else {
                value & !loopback
            },
        );
    }
}

fn check_options(options: &IxgbeOptions) -> Result<(), IxgbeError> {
    let ring = usize::from(options.ring_size);
    let ok = (1..=MAX_QUEUES).contains(&options.queue_count)
        && (16..=4096).contains(&ring)
        && (ring * DESCRIPTOR_BYTES).is_multiple_of(RING_LENGTH_ALIGNMENT)
        && (1024..=16384).contains(&options.buffer_size)
        && options.buffer_size.is_multiple_of(SRRCTL_BSIZE_PACKET_UNIT);
    if ok {
        Ok(())
    } else {
        Err(IxgbeError::BadOptions)
    }
}

/// Polls `done` up to `attempts` times, `interval` us apart; a timeout names its step.
fn wait<T: Timer>(
    timer: &T,
    step: WaitStep,
    attempts: u32,
    interval_microseconds: u64,
    done: impl FnMut() -> bool,
) -> Result<(), IxgbeError> {
    if poll(timer, attempts, interval_microseconds, done) {
        Ok(())
    } else {
        Err(IxgbeError::Timeout(step))
    }
}

/// The MAC from RAL0/RAH0 (loaded from the EEPROM), or `wanted` written there.
fn set_up_mac<M: Mmio>(r: &M, wanted: Option<MacAddress>) -> MacAddress {
    if let Some(mac) = wanted {
        let bytes = mac.0;
        r.write_u32(
            ral(0),
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        );
        r.write_u32(
            rah(0),
            u32::from(u16::from_le_bytes([bytes[4], bytes[5]])) | RAH_ADDRESS_VALID,
        );
        return mac;
    }
    let low = r.read_u32(ral(0)).to_le_bytes();
    let high = r.read_u32(rah(0)).to_le_bytes();
    MacAddress([low[0], low[1], low[2], low[3], high[0], high[1]])
}

/// 4.6.7 receive initialisation, except the queues and RXEN.
fn set_up_receive<M: Mmio>(r: &M, options: &IxgbeOptions, flow_director: bool) {
    r.write_u32(RXCTRL, r.read_u32(RXCTRL) & !RXCTRL_RX_ENABLE);
    // One packet buffer without DCB; Flow Director's filter memory comes out of buffer 0.
    let reserved = if flow_director {
        FILTER_MEMORY_BYTES
    } else {
        0
    };
    r.write_u32(rxpbsize(0), RX_PACKET_BUFFER_BYTES - reserved);
    for buffer in 1..8 {
        r.write_u32(rxpbsize(buffer), 0);
    }
    r.write_u32(HLREG0, r.read_u32(HLREG0) | MacControl::RX_CRC_STRIP.bits());
    r.write_u32(RDRXCTL, r.read_u32(RDRXCTL) | RDRXCTL_CRC_STRIP);
    r.write_u32(
        FCTRL,
        r.read_u32(FCTRL) | FilterControl::BROADCAST_ACCEPT.bits(),
    );
    // The RSS hash (not the fragment checksum) in the descriptor; RSS on with the default
    // hash types until `configure_rss` programs the key and table.
    r.write_u32(RXCSUM, r.read_u32(RXCSUM) | RXCSUM_PACKET_CHECKSUM_DISABLE);
    r.write_u32(MRQC, mrqc_for(HashTypes::TCP_IPV4 | HashTypes::IPV4));
    // Statistics set n counts queue n (RQSMR: one byte per queue).
    for register in 0..usize::from(options.queue_count).div_ceil(4) {
        let base = 4 * register as u32;
        r.write_u32(
            rqsmr(register),
            base | (base + 1) << 8 | (base + 2) << 16 | (base + 3) << 24,
        );
    }
    r.write_u32(
        CTRL_EXT,
        r.read_u32(CTRL_EXT) | ExtendedControl::NO_SNOOP_DISABLE.bits(),
    );
}

/// 4.6.8 transmit initialisation, except the queues.
fn set_up_transmit<M: Mmio>(r: &M) {
    r.write_u32(
        HLREG0,
        r.read_u32(HLREG0) | (MacControl::TX_CRC_ENABLE | MacControl::TX_PAD_ENABLE).bits(),
    );
    r.write_u32(txpbsize(0), TX_PACKET_BUFFER_BYTES);
    for buffer in 1..8 {
        r.write_u32(txpbsize(buffer), 0);
    }
    r.write_u32(DTXMXSZRQ, DTXMXSZRQ_UNLIMITED);
    r.write_u32(RTTDCS, r.read_u32(RTTDCS) & !RTTDCS_ARBITER_DISABLE);
    r.write_u32(DMATXCTL, r.read_u32(DMATXCTL) | DMATXCTL_TRANSMIT_ENABLE);
}

/// One queue pair: rings and pool in DMA memory, registers, enable and wait.
fn set_up_queue<M: Mmio + Clone, R: DmaRegion, D: Dma<Region = R>, T: Timer>(
    registers: &M,
    dma: &D,
    timer: &T,
    options: &IxgbeOptions,
    index: u16,
) -> Result<IxgbeQueue<M, R>, IxgbeError> {
    let r = registers;
    let queue = usize::from(index);
    let ring_size = usize::from(options.ring_size);
    let ring_bytes = ring_size * DESCRIPTOR_BYTES;
    let receive_descriptors = dma.allocate(ring_bytes, 128).map_err(IxgbeError::Dma)?;
    let transmit_descriptors = dma.allocate(ring_bytes, 128).map_err(IxgbeError::Dma)?;
    // A buffer per receive slot and per transmit slot: the rings can never run the pool dry.
    let pool =
        PacketPool::new(dma, 2 * ring_size, options.buffer_size).map_err(IxgbeError::Pool)?;

    // Receive ring (4.6.7.1).
    let split_control = (r.read_u32(srrctl(queue))
        & !(SRRCTL_DESCTYPE_MASK | SRRCTL_BSIZE_PACKET_MASK))
        | SRRCTL_DESCTYPE_ADVANCED_ONE_BUFFER
        | SRRCTL_DROP_ENABLE
        | (options.buffer_size / SRRCTL_BSIZE_PACKET_UNIT) as u32;
    r.write_u32(srrctl(queue), split_control);
    let receive_base = receive_descriptors.physical_address().as_u64();
    r.write_u32(rdbal(queue), receive_base as u32);
    r.write_u32(rdbah(queue), (receive_base >> 32) as u32);
    r.write_u32(rdlen(queue), ring_bytes as u32);
    r.write_u32(rdh(queue), 0);
    r.write_u32(rdt(queue), 0);
    r.write_u32(
        dca_rxctrl(queue),
        r.read_u32(dca_rxctrl(queue)) & !DCA_RXCTRL_RELAXED_WRITE_BACK,
    );

    // Transmit ring (4.6.8.1).
    let transmit_base = transmit_descriptors.physical_address().as_u64();
    r.write_u32(tdbal(queue), transmit_base as u32);
    r.write_u32(tdbah(queue), (transmit_base >> 32) as u32);
    r.write_u32(tdlen(queue), ring_bytes as u32);
    r.write_u32(tdh(queue), 0);
    r.write_u32(tdt(queue), 0);
    let thresholds = (r.read_u32(txdctl(queue)) & !TXDCTL_THRESHOLD_MASK) | TXDCTL_THRESHOLDS;
    r.write_u32(txdctl(queue), thresholds);

    let mut nic_queue = IxgbeQueue::new(
        QueueId(index),
        registers.clone(),
        QueueMemory {
            receive_descriptors,
            transmit_descriptors,
            pool,
            ring_size,
        },
    );
    // Enable, wait for the enable bit to read back, then give the ring to the device.
    r.write_u32(rxdctl(queue), r.read_u32(rxdctl(queue)) | RXDCTL_ENABLE);
    wait(
        timer,
        WaitStep::ReceiveQueueEnable { queue: index },
        1000,
        10,
        || r.read_u32(rxdctl(queue)) & RXDCTL_ENABLE != 0,
    )?;
    nic_queue.start_receive();
    r.write_u32(txdctl(queue), r.read_u32(txdctl(queue)) | TXDCTL_ENABLE);
    wait(
        timer,
        WaitStep::TransmitQueueEnable { queue: index },
        1000,
        10,
        || r.read_u32(txdctl(queue)) & TXDCTL_ENABLE != 0,
    )?;
    Ok(nic_queue)
}

/// RXEN last, with the receive security path paused around it (Linux
/// `ixgbe_enable_rx_dma_82599`: disable, wait for SECRX_RDY up to 40 ms, RXEN, enable).
fn enable_receive<M: Mmio, T: Timer>(r: &M, timer: &T) -> Result<(), IxgbeError> {
    r.write_u32(SECRXCTRL, r.read_u32(SECRXCTRL) | SECRXCTRL_RX_DISABLE);
    wait(timer, WaitStep::SecurityRxPathIdle, 40, 1000, || {
        r.read_u32(SECRXSTAT) & SECRXSTAT_READY != 0
    })?;
    r.write_u32(RXCTRL, r.read_u32(RXCTRL) | RXCTRL_RX_ENABLE);
    r.write_u32(SECRXCTRL, r.read_u32(SECRXCTRL) & !SECRXCTRL_RX_DISABLE);
    Ok(())
}

/// The hash types the 82599 computes (MRQC fields).
fn supported_hash_types() -> HashTypes {
    HashTypes::IPV4
        | HashTypes::TCP_IPV4
        | HashTypes::UDP_IPV4
        | HashTypes::IPV6
        | HashTypes::TCP_IPV6
        | HashTypes::UDP_IPV6
}

fn mrqc_for(hash_types: HashTypes) -> u32 {
    let pairs = [
        (HashTypes::IPV4, MultipleReceiveQueues::HASH_IPV4),
        (HashTypes::TCP_IPV4, MultipleReceiveQueues::HASH_TCP_IPV4),
        (HashTypes::UDP_IPV4, MultipleReceiveQueues::HASH_UDP_IPV4),
        (HashTypes::IPV6, MultipleReceiveQueues::HASH_IPV6),
        (HashTypes::TCP_IPV6, MultipleReceiveQueues::HASH_TCP_IPV6),
        (HashTypes::UDP_IPV6, MultipleReceiveQueues::HASH_UDP_IPV6),
    ];
    pairs
        .iter()
        .filter(|(hash_type, _)| hash_types.contains(*hash_type))
        .fold(MultipleReceiveQueues::RSS_ENABLE, |mrqc, (_, bit)| {
            mrqc | *bit
        })
        .bits()
}

impl<M: Mmio + Clone, R: DmaRegion, T: Timer> Nic for Ixgbe<M, R, T> {
    type Queue = IxgbeQueue<M, R>;

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn link_state(&self) -> LinkState {
        if self.registers.read_u32(LINKS) & LINKS_UP != 0 {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }

    fn queue_count(&self) -> usize {
        usize::from(self.options.queue_count)
    }

    fn steering(&self) -> Steering {
        let exact_filters = match self.options.steering {
            SteeringMode::Rss => 0,
            SteeringMode::RssAndFlowDirector => PERFECT_FILTER_CAPACITY - self.filters.len(),
        };
        Steering {
            rss: Some(RssCapabilities {
                max_key_length: RSS_KEY_LENGTH,
                max_indirection_table_length: RSS_TABLE_LENGTH,
                hash_types: supported_hash_types(),
            }),
            exact_filters,
        }
    }

    /// Writes RSSRK (key bytes little-endian in each register), RETA (a table shorter than
    /// 128 entries repeats) and MRQC. Packets of no hash type go to queue 0 on the 82599, so
    /// `unclassified_queue` must be queue 0.
    fn configure_rss(&mut self, configuration: &RssConfiguration) -> Result<(), SteeringError> {
        let key = &configuration.key;
        if key.len() > RSS_KEY_LENGTH {
            return Err(SteeringError::KeyTooLong {
                length: key.len(),
                max: RSS_KEY_LENGTH,
            });
        }
        if key.is_empty() && !configuration.hash_types.is_empty() {
            return Err(SteeringError::EmptyKey);
        }
        let table = &configuration.indirection_table;
        if table.is_empty() || !table.len().is_power_of_two() || table.len() > RSS_TABLE_LENGTH {
            return Err(SteeringError::BadIndirectionTableLength {
                length: table.len(),
                max: RSS_TABLE_LENGTH,
            });
        }
        let queue_count = self.queue_count();
        for &queue in table.iter().chain([&configuration.unclassified_queue]) {
            if usize::from(queue.0) >= queue_count {
                return Err(SteeringError::NoSuchQueue { queue, queue_count });
            }
        }
        if configuration.unclassified_queue != QueueId(0) {
            return Err(SteeringError::DeviceRefused);
        }
        let supported = supported_hash_types();
        if !supported.contains(configuration.hash_types) {
            return Err(SteeringError::UnsupportedHashTypes {
                requested: configuration.hash_types,
                supported,
            });
        }
        let mut key_bytes = [0u8; RSS_KEY_LENGTH];
        key_bytes[..key.len()].copy_from_slice(key);
        for register in 0..RSSRK_REGISTERS {
            let word = &key_bytes[4 * register..4 * register + 4];
            self.registers.write_u32(
                rssrk(register),
                u32::from_le_bytes([word[0], word[1], word[2], word[3]]),
            );
        }
        for register in 0..RETA_REGISTERS {
            let entry =
                |n: usize| table[(4 * register + n) % table.len()].0 as u8 & RETA_QUEUE_MASK;
            self.registers.write_u32(
                reta(register),
                u32::from_le_bytes([entry(0), entry(1), entry(2), entry(3)]),
            );
        }
        self.registers
            .write_u32(MRQC, mrqc_for(configuration.hash_types));
        Ok(())
    }

    /// Adds a TCP/IPv4 perfect filter. Its wildcards must be the port's global masks (chosen
    /// at bring-up); a filter equal to an installed one after masking changes nothing.
    fn add_exact_filter(&mut self, filter: &ExactFilter) -> Result<(), SteeringError> {
        if self.options.steering != SteeringMode::RssAndFlowDirector {
            return Err(SteeringError::NoExactFilterAvailable);
        }
        let masks = &self.options.flow_director_masks;
        let address_mask = |address: Option<[u8; 4]>| address.map_or([0; 4], |_| [0xFF; 4]);
        let port_mask = |port: Option<u16>, mask: u16| port.map_or(0, |_| mask);
        let agrees = address_mask(filter.source_address) == masks.source_address
            && address_mask(filter.destination_address) == masks.destination_address
            && port_mask(filter.source_port, 0xFFFF) == masks.source_port
            && port_mask(filter.destination_port, filter.destination_port_mask)
                == masks.destination_port;
        if !agrees {
            return Err(SteeringError::FilterMasksDiffer);
        }
        if usize::from(filter.queue.0) >= self.queue_count() {
            return Err(SteeringError::NoSuchQueue {
                queue: filter.queue,
                queue_count: self.queue_count(),
            });
        }
        let input = FlowDirectorInput::tcp_ipv4(
            filter.source_address.unwrap_or_default(),
            filter.destination_address.unwrap_or_default(),
            filter.source_port.unwrap_or_default(),
            filter.destination_port.unwrap_or_default(),
        )
        .masked(masks);
        let queue = filter.queue.0 as u8;
        if let Some(existing) = self.filters.iter().find(|f| f.input == input)
            && existing.queue == queue
        {
            return Ok(());
        }
        if self.filters.len() >= PERFECT_FILTER_CAPACITY {
            return Err(SteeringError::NoExactFilterAvailable);
        }
        let soft_id = match self.filters.iter().position(|f| f.input == input) {
            Some(position) => self.filters[position].soft_id,
            None => self.filters.len() as u16,
        };
        let perfect = PerfectFilter {
            input,
            queue,
            soft_id,
        };
        match flow_director::add_filter(&self.registers, &self.timer, &perfect) {
            Ok(()) => {
                match self.filters.iter_mut().find(|f| f.input == input) {
                    Some(existing) => *existing = perfect,
                    None => self.filters.push(perfect),
                }
                Ok(())
            }
            Err(FlowDirectorError::TableFull) => Err(SteeringError::NoExactFilterAvailable),
            Err(_) => Err(SteeringError::DeviceRefused),
        }
    }

    fn take_queue(&mut self, queue: QueueId) -> Option<Self::Queue> {
        self.queues.get_mut(usize::from(queue.0))?.take()
    }
}
