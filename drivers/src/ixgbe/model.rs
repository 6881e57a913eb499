//! A behavioural model of the Intel 82599 behind the test HAL (tests only): register file
//! with the reset and initialisation handshakes, descriptor rings in simulated DMA memory,
//! RSS and Flow Director perfect filters, statistics, and a wire.
//!
//! It is written from the datasheet's description and FACTS.md, not from the driver: its
//! Toeplitz hash, Flow Director bucket hash and mask decoding are its own code (checked
//! against published and hardware-reported values in the tests), so a driver that agrees
//! with it agrees with something other than itself. It also records protocol violations
//! (an order the datasheet forbids) for the tests to assert on.

use core::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::string::{String, ToString};
use std::vec::Vec;

use super::registers as reg;
use crate::hal::fake::{FakeClock, FakeMemory, RegisterModel};

/// A handshake the driver waits for; [`ModelSettings::never`] makes one never complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Handshake {
    Reset,
    EepromAutoRead,
    DmaInit,
    ReceiveQueueEnable(usize),
    TransmitQueueEnable(usize),
    SecurityRxReady,
    FlowDirectorInit,
    FlowDirectorCommand,
    Link,
}

#[derive(Clone, Debug)]
pub struct ModelSettings {
    pub mac: [u8; 6],
    /// Nanoseconds each handshake takes.
    pub reset_ns: u64,
    pub eeprom_ns: u64,
    pub dma_init_ns: u64,
    pub queue_enable_ns: u64,
    pub security_ns: u64,
    pub flow_director_init_ns: u64,
    pub flow_director_command_ns: u64,
    pub link_ns: u64,
    pub never: BTreeSet<Handshake>,
    /// Frames the receive packet buffer holds while a queue without DROP_EN has no descriptor.
    pub packet_buffer_frames: usize,
    /// Send at once on every TDT write (as hardware does, give or take microseconds) instead
    /// of when the test calls [`Model82599::run_transmit`].
    pub transmit_on_tail_write: bool,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            mac: [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c],
            reset_ns: 2_000_000,
            eeprom_ns: 5_000_000,
            dma_init_ns: 6_000_000,
            queue_enable_ns: 20_000,
            security_ns: 100_000,
            flow_director_init_ns: 2_000_000,
            flow_director_command_ns: 15_000,
            link_ns: 200_000_000,
            never: BTreeSet::new(),
            packet_buffer_frames: 64,
            transmit_on_tail_write: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    ResetDone,
    EepromDone,
    DmaInitDone,
    ReceiveEnabled(usize),
    TransmitEnabled(usize),
    SecurityReady,
    FlowDirectorReady,
    CommandDone,
    LinkUp,
}

/// One register access, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read(usize),
    Write(usize, u32),
}

/// A filter as the model stores it: the fields the driver wrote, under the bucket it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredFilter {
    pub flow_type: u32,
    pub source_address: [u8; 4],
    pub destination_address: [u8; 4],
    pub source_port: u16,
    pub destination_port: u16,
    pub vlan_flex: u32,
    pub queue: usize,
    pub soft_id: u16,
}

/// How a received frame was steered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steered {
    pub queue: usize,
    pub flow_director_match: bool,
    pub rss_hash: u32,
}

struct State {
    registers: BTreeMap<usize, u32>,
    events: Vec<(u64, Event)>,
    log: Vec<Access>,
    violations: Vec<String>,
    buckets: BTreeMap<u16, Vec<StoredFilter>>,
    filter_count: usize,
    collisions: u32,
    packet_buffer: VecDeque<(Vec<u8>, Steered)>,
    transmitted: Vec<Vec<u8>>,
    /// A partial frame per transmit queue (descriptors without EOP so far).
    transmit_partial: BTreeMap<usize, Vec<u8>>,
    /// Deliveries per queue, for tests.
    delivered: Vec<(usize, Steered)>,
    /// Force the next write-back's length (fault injection).
    next_length_override: Option<u16>,
}

/// The model; share it as `Rc<Model82599>` with a `FakeMmioMapper` window.
pub struct Model82599 {
    settings: ModelSettings,
    clock: FakeClock,
    memory: FakeMemory,
    state: RefCell<State>,
}

/// Registers that clear when read (datasheet 8.2.3.23; FDIR statistics).
fn clears_on_read(offset: usize) -> bool {
    let fixed = [
        reg::GPRC,
        reg::GPTC,
        reg::GORCL,
        reg::GORCH,
        reg::GOTCL,
        reg::GOTCH,
        reg::CRCERRS,
        reg::FDIRMATCH,
        reg::FDIRMISS,
        reg::FDIRUSTAT,
        reg::FDIRFSTAT,
    ];
    fixed.contains(&offset)
        || (0x03FA0..0x03FE0).contains(&offset)
        || ((0x01430..0x01430 + 0x40 * 16).contains(&offset)
            && (offset - 0x01430).is_multiple_of(0x40))
}

const RSS_KEY_BYTES: usize = 40;
const FLOW_DIRECTOR_CAPACITY: u32 = 2046;

impl Model82599 {
    pub fn new(settings: ModelSettings, clock: &FakeClock, memory: &FakeMemory) -> Rc<Self> {
        let model = Model82599 {
            settings,
            clock: clock.clone(),
            memory: memory.clone(),
            state: RefCell::new(State {
                registers: BTreeMap::new(),
                events: Vec::new(),
                log: Vec::new(),
                violations: Vec::new(),
                buckets: BTreeMap::new(),
                filter_count: 0,
                collisions: 0,
                packet_buffer: VecDeque::new(),
                transmitted: Vec::new(),
                transmit_partial: BTreeMap::new(),
                delivered: Vec::new(),
                next_length_override: None,
            }),
        };
        // Power-on: as after a reset, with the handshakes already done and DCA_RXCTRL's
        // relaxed-ordering default of 1.
        {
            let mut state = model.state.borrow_mut();
            model.load_defaults(&mut state);
            set_bits(&mut state, reg::EEC, reg::EEC_AUTO_READ_DONE);
            set_bits(&mut state, reg::RDRXCTL, reg::RDRXCTL_DMA_INIT_DONE);
        }
        Rc::new(model)
    }

    fn load_defaults(&self, state: &mut State) {
        state.registers.clear();
        let mac = self.settings.mac;
        state.registers.insert(
            reg::ral(0),
            u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]),
        );
        state.registers.insert(
            reg::rah(0),
            u32::from(u16::from_le_bytes([mac[4], mac[5]])) | reg::RAH_ADDRESS_VALID,
        );
        for queue in 0..16 {
            state
                .registers
                .insert(reg::dca_rxctrl(queue), reg::DCA_RXCTRL_RELAXED_WRITE_BACK);
        }
        // RTTDCS.ARBDIS is set out of reset on the 82599 with DCB off.
        state
            .registers
            .insert(reg::RTTDCS, reg::RTTDCS_ARBITER_DISABLE);
        state.buckets.clear();
        state.filter_count = 0;
        state.collisions = 0;
        state.packet_buffer.clear();
    }

    fn schedule(&self, state: &mut State, handshake: Handshake, after_ns: u64, event: Event) {
        if !self.settings.never.contains(&handshake) {
            state
                .events
                .push((self.clock.now_nanoseconds() + after_ns, event));
        }
    }

    /// Applies every timed event that is due.
    fn settle(&self, state: &mut State) {
        let now = self.clock.now_nanoseconds();
        let (due, later): (Vec<_>, Vec<_>) =
            state.events.drain(..).partition(|(time, _)| *time <= now);
        state.events = later;
        for (_, event) in due {
            match event {
                Event::ResetDone => clear_bits(state, reg::CTRL, reg::CONTROL_RESET_MASK.bits()),
                Event::EepromDone => set_bits(state, reg::EEC, reg::EEC_AUTO_READ_DONE),
                Event::DmaInitDone => set_bits(state, reg::RDRXCTL, reg::RDRXCTL_DMA_INIT_DONE),
                Event::ReceiveEnabled(queue) => {
                    set_bits(state, reg::rxdctl(queue), reg::RXDCTL_ENABLE)
                }
                Event::TransmitEnabled(queue) => {
                    set_bits(state, reg::txdctl(queue), reg::TXDCTL_ENABLE)
                }
                Event::SecurityReady => set_bits(state, reg::SECRXSTAT, reg::SECRXSTAT_READY),
                Event::FlowDirectorReady => set_bits(state, reg::FDIRCTRL, reg::FDIRCTRL_INIT_DONE),
                Event::CommandDone => clear_bits(state, reg::FDIRCMD, reg::FDIRCMD_COMMAND_MASK),
                Event::LinkUp => {
                    state
                        .registers
                        .insert(reg::LINKS, reg::LINKS_UP | reg::LINKS_SPEED_10G);
                }
            }
        }
    }

    fn value(state: &State, offset: usize) -> u32 {
        state.registers.get(&offset).copied().unwrap_or(0)
    }

    fn violation(state: &mut State, what: &str) {
        state.violations.push(what.to_string());
    }

    fn in_reset(state: &State) -> bool {
        Self::value(state, reg::CTRL) & reg::CONTROL_RESET_MASK.bits() != 0
    }

    fn write_register(&self, state: &mut State, offset: usize, value: u32) {
        if Self::in_reset(state) && offset != reg::CTRL {
            Self::violation(state, "register written while the reset is in progress");
        }
        let old = Self::value(state, offset);
        match offset {
            reg::CTRL if value & reg::Control::RESET.bits() != 0 => {
                self.load_defaults(state);
                state.events.clear();
                state
                    .registers
                    .insert(reg::CTRL, value & reg::CONTROL_RESET_MASK.bits());
                self.schedule(
                    state,
                    Handshake::Reset,
                    self.settings.reset_ns,
                    Event::ResetDone,
                );
                self.schedule(
                    state,
                    Handshake::EepromAutoRead,
                    self.settings.eeprom_ns,
                    Event::EepromDone,
                );
                self.schedule(
                    state,
                    Handshake::DmaInit,
                    self.settings.dma_init_ns,
                    Event::DmaInitDone,
                );
                return;
            }
            reg::EEC | reg::LINKS | reg::SECRXSTAT | reg::FDIRFREE => return,
            reg::AUTOC => {
                if value & reg::AUTOC_RESTART_AUTONEGOTIATION != 0 {
                    state.registers.remove(&reg::LINKS);
                    self.schedule(state, Handshake::Link, self.settings.link_ns, Event::LinkUp);
                }
                state
                    .registers
                    .insert(offset, value & !reg::AUTOC_RESTART_AUTONEGOTIATION);
                return;
            }
            reg::RDRXCTL => {
                let keep = old & reg::RDRXCTL_DMA_INIT_DONE;
                state
                    .registers
                    .insert(offset, (value & !reg::RDRXCTL_DMA_INIT_DONE) | keep);
                return;
            }
            reg::RXCTRL => {
                let enabling =
                    value & reg::RXCTRL_RX_ENABLE != 0 && old & reg::RXCTRL_RX_ENABLE == 0;
                if enabling {
                    if Self::value(state, reg::SECRXCTRL) & reg::SECRXCTRL_RX_DISABLE == 0 {
                        Self::violation(state, "RXEN set without pausing the security Rx path");
                    }
                    if Self::value(state, reg::RDRXCTL) & reg::RDRXCTL_DMA_INIT_DONE == 0 {
                        Self::violation(state, "RXEN set before DMA init done");
                    }
                }
            }
            reg::SECRXCTRL => {
                if value & reg::SECRXCTRL_RX_DISABLE != 0 {
                    self.schedule(
                        state,
                        Handshake::SecurityRxReady,
                        self.settings.security_ns,
                        Event::SecurityReady,
                    );
                } else {
                    clear_bits(state, reg::SECRXSTAT, reg::SECRXSTAT_READY);
                }
            }
            reg::FDIRCTRL => {
                if Self::value(state, reg::RXCTRL) & reg::RXCTRL_RX_ENABLE != 0 {
                    Self::violation(state, "Flow Director initialised while RXEN = 1");
                }
                state.buckets.clear();
                state.filter_count = 0;
                state
                    .registers
                    .insert(offset, value & !reg::FDIRCTRL_INIT_DONE);
                if value & reg::FDIRCTRL_PBALLOC_MASK != 0 {
                    self.schedule(
                        state,
                        Handshake::FlowDirectorInit,
                        self.settings.flow_director_init_ns,
                        Event::FlowDirectorReady,
                    );
                }
                return;
            }
            reg::FDIRCMD => {
                state.registers.insert(offset, value);
                self.flow_director_command(state, value);
                self.schedule(
                    state,
                    Handshake::FlowDirectorCommand,
                    self.settings.flow_director_command_ns,
                    Event::CommandDone,
                );
                return;
            }
            _ => {}
        }
        // Queue registers.
        if (0x01000..0x01000 + 0x40 * 64).contains(&offset) {
            let queue = (offset - 0x01000) / 0x40;
            match (offset - 0x01000) % 0x40 {
                0x28 => {
                    // RXDCTL: ENABLE reads back only once the queue runs.
                    state.registers.insert(offset, value & !reg::RXDCTL_ENABLE);
                    if value & reg::RXDCTL_ENABLE != 0 {
                        if Self::value(state, reg::rdlen(queue)) == 0 {
                            Self::violation(state, "receive queue enabled without a ring");
                        }
                        self.schedule(
                            state,
                            Handshake::ReceiveQueueEnable(queue),
                            self.settings.queue_enable_ns,
                            Event::ReceiveEnabled(queue),
                        );
                    }
                    return;
                }
                0x18 => {
                    state.registers.insert(offset, value);
                    self.drain_packet_buffer(state);
                    return;
                }
                _ => {}
            }
        }
        if (0x06000..0x06000 + 0x40 * 128).contains(&offset) && (offset - 0x06000) % 0x40 == 0x28 {
            let queue = (offset - 0x06000) / 0x40;
            state.registers.insert(offset, value & !reg::TXDCTL_ENABLE);
            if value & reg::TXDCTL_ENABLE != 0 {
                if Self::value(state, reg::tdlen(queue)) == 0 {
                    Self::violation(state, "transmit queue enabled without a ring");
                }
                self.schedule(
                    state,
                    Handshake::TransmitQueueEnable(queue),
                    self.settings.queue_enable_ns,
                    Event::TransmitEnabled(queue),
                );
            }
            return;
        }
        state.registers.insert(offset, value);
    }

    fn read_register(&self, state: &mut State, offset: usize) -> u32 {
        let value = match offset {
            reg::FDIRFREE => {
                if Self::value(state, reg::FDIRCTRL) & reg::FDIRCTRL_INIT_DONE == 0 {
                    0
                } else {
                    (FLOW_DIRECTOR_CAPACITY - state.filter_count as u32)
                        | (state.collisions << reg::FDIRFREE_COLLISIONS_SHIFT)
                }
            }
            _ => Self::value(state, offset),
        };
        if clears_on_read(offset) {
            state.registers.remove(&offset);
        }
        value
    }

    // ---- Flow Director ------------------------------------------------------------------

    /// The masks as the registers encode them, decoded bit by bit: (source address, destination
    /// address, source port, destination port) with 1 = compare.
    fn masks(state: &State) -> ([u8; 4], [u8; 4], u16, u16) {
        let decode_port = |field: u32| -> u16 {
            // The register holds NOT(bit-reversed mask): bit i of the register is bit 15 - i
            // of the mask, inverted.
            let mut mask = 0u16;
            for bit in 0..16 {
                if field & (1 << bit) == 0 {
                    mask |= 1 << (15 - bit);
                }
            }
            mask
        };
        let ports = Self::value(state, reg::FDIRTCPM);
        let ignore_l4 = Self::value(state, reg::FDIRM) & 0x8 != 0;
        let (source_port, destination_port) = if ignore_l4 {
            (0, 0)
        } else {
            (decode_port(ports & 0xFFFF), decode_port(ports >> 16))
        };
        let address = |offset| (!Self::value(state, offset)).to_le_bytes();
        (
            address(reg::FDIRSIP4M),
            address(reg::FDIRDIP4M),
            source_port,
            destination_port,
        )
    }

    fn flow_director_command(&self, state: &mut State, command: u32) {
        if command & reg::FDIRCMD_COMMAND_MASK != reg::FlowDirectorCommand::ADD.bits() {
            return;
        }
        if Self::value(state, reg::FDIRCTRL) & reg::FDIRCTRL_INIT_DONE == 0 {
            Self::violation(state, "filter added before Flow Director init done");
            return;
        }
        if command & reg::FlowDirectorCommand::QUEUE_ENABLE.bits() == 0 {
            Self::violation(state, "filter added without QUEUE_EN");
        }
        let hash_register = Self::value(state, reg::FDIRHASH);
        let ports = Self::value(state, reg::FDIRPORT);
        let filter = StoredFilter {
            flow_type: (command >> 5) & 0x3,
            source_address: Self::value(state, reg::FDIRIPSA).to_le_bytes(),
            destination_address: Self::value(state, reg::FDIRIPDA).to_le_bytes(),
            source_port: ports as u16,
            destination_port: (ports >> 16) as u16,
            vlan_flex: Self::value(state, reg::FDIRVLAN),
            queue: ((command >> 16) & 0x7F) as usize,
            soft_id: (hash_register >> 16) as u16,
        };
        let bucket = (hash_register & 0x7FF) as u16;
        let update = command & reg::FlowDirectorCommand::FILTER_UPDATE.bits() != 0;
        let same_fields = |stored: &StoredFilter| {
            StoredFilter {
                queue: filter.queue,
                soft_id: filter.soft_id,
                ..*stored
            } == filter
        };
        let chain = state.buckets.entry(bucket).or_default();
        if let Some(existing) = chain.iter_mut().find(|stored| same_fields(stored)) {
            if update {
                *existing = filter;
                add_counter(state, reg::FDIRUSTAT, 1);
            } else {
                add_counter(state, reg::FDIRFSTAT, 1);
            }
            return;
        }
        if state.filter_count as u32 >= FLOW_DIRECTOR_CAPACITY {
            add_counter(state, reg::FDIRFSTAT, 1);
            return;
        }
        if !chain.is_empty() {
            state.collisions += 1;
        }
        chain.push(filter);
        state.filter_count += 1;
        add_counter(state, reg::FDIRUSTAT, 1);
    }

    /// Every filter stored, with the bucket it was stored under.
    pub fn filters(&self) -> Vec<(u16, StoredFilter)> {
        let state = self.state.borrow();
        state
            .buckets
            .iter()
            .flat_map(|(bucket, chain)| chain.iter().map(|filter| (*bucket, *filter)))
            .collect()
    }

    // ---- Receive ------------------------------------------------------------------------

    /// Where the hardware would steer `frame` (an Ethernet frame without CRC).
    fn steer(state: &mut State, frame: &[u8]) -> Steered {
        let Some(packet) = parse(frame) else {
            return Steered {
                queue: 0,
                flow_director_match: false,
                rss_hash: 0,
            };
        };
        let control = Self::value(state, reg::FDIRCTRL);
        if control & reg::FDIRCTRL_INIT_DONE != 0 && control & reg::FDIRCTRL_PERFECT_MATCH != 0 {
            let (source_mask, destination_mask, source_port_mask, destination_port_mask) =
                Self::masks(state);
            let and = |a: [u8; 4], m: [u8; 4]| -> [u8; 4] { core::array::from_fn(|i| a[i] & m[i]) };
            let ignore = Self::value(state, reg::FDIRM);
            let flex = if ignore & 0x10 == 0 {
                let word = ((control >> reg::FDIRCTRL_FLEX_OFFSET_SHIFT) & 0x1F) as usize;
                u16::from_be_bytes([frame[2 * word], frame[2 * word + 1]])
            } else {
                0
            };
            let masked = StoredFilter {
                flow_type: packet.flow_type,
                source_address: and(packet.source_address, source_mask),
                destination_address: and(packet.destination_address, destination_mask),
                source_port: packet.source_port & source_port_mask,
                destination_port: packet.destination_port & destination_port_mask,
                vlan_flex: u32::from(flex) << 16,
                queue: 0,
                soft_id: 0,
            };
            let bucket = (model_bucket_hash(&HashInput {
                flow_type: masked.flow_type,
                vlan: 0,
                source_address: masked.source_address,
                destination_address: masked.destination_address,
                source_port: masked.source_port,
                destination_port: masked.destination_port,
                flex,
            }) & 0x7FF) as u16;
            let found = state.buckets.get(&bucket).and_then(|chain| {
                chain.iter().find(|stored| {
                    StoredFilter {
                        queue: 0,
                        soft_id: 0,
                        ..**stored
                    } == masked
                })
            });
            if let Some(filter) = found.copied() {
                add_counter(state, reg::FDIRMATCH, 1);
                return Steered {
                    queue: filter.queue,
                    flow_director_match: true,
                    rss_hash: u32::from(filter.soft_id) | u32::from(bucket) << 16,
                };
            }
            add_counter(state, reg::FDIRMISS, 1);
        }
        let mrqc = Self::value(state, reg::MRQC);
        if mrqc & 0xF != 1 {
            return Steered {
                queue: 0,
                flow_director_match: false,
                rss_hash: 0,
            };
        }
        let mut key = [0u8; RSS_KEY_BYTES];
        for register in 0..10 {
            key[4 * register..4 * register + 4]
                .copy_from_slice(&Self::value(state, reg::rssrk(register)).to_le_bytes());
        }
        let mut input = Vec::new();
        input.extend_from_slice(&packet.source_address);
        input.extend_from_slice(&packet.destination_address);
        let hashed = if packet.flow_type == 2 && mrqc & (1 << 16) != 0 {
            input.extend_from_slice(&packet.source_port.to_be_bytes());
            input.extend_from_slice(&packet.destination_port.to_be_bytes());
            true
        } else {
            mrqc & (1 << 17) != 0
        };
        if !hashed {
            return Steered {
                queue: 0,
                flow_director_match: false,
                rss_hash: 0,
            };
        }
        let hash = model_toeplitz(&key, &input);
        let entry = (hash & 0x7F) as usize;
        let table = Self::value(state, reg::reta(entry / 4)).to_le_bytes();
        Steered {
            queue: usize::from(table[entry % 4] & 0x0F),
            flow_director_match: false,
            rss_hash: hash,
        }
    }

    /// A frame arrives from the wire.
    pub fn receive(&self, frame: &[u8]) {
        let mut state = self.state.borrow_mut();
        self.settle(&mut state);
        let steered = Self::steer(&mut state, frame);
        if state.packet_buffer.len() >= self.settings.packet_buffer_frames {
            add_counter(&mut state, reg::mpc(0), 1);
            return;
        }
        let mut stored = frame.to_vec();
        if Self::value(&state, reg::HLREG0) & reg::MacControl::RX_CRC_STRIP.bits() == 0 {
            stored.extend_from_slice(&[0xC0, 0xC0, 0xC0, 0xC0]);
        }
        state.packet_buffer.push_back((stored, steered));
        self.drain_packet_buffer(&mut state);
    }

    /// Moves frames from the packet buffer to their queues' rings, in order; a queue without
    /// descriptors drops (DROP_EN) or holds the whole buffer up (head-of-line blocking).
    fn drain_packet_buffer(&self, state: &mut State) {
        if Self::value(state, reg::RXCTRL) & reg::RXCTRL_RX_ENABLE == 0 {
            return;
        }
        while let Some((frame, steered)) = state.packet_buffer.front().cloned() {
            let queue = steered.queue;
            let ring_size = (Self::value(state, reg::rdlen(queue)) / 16) as usize;
            let enabled = Self::value(state, reg::rxdctl(queue)) & reg::RXDCTL_ENABLE != 0;
            let srrctl = Self::value(state, reg::srrctl(queue));
            let buffer_size = ((srrctl & 0x1F) as usize) * 1024;
            if !enabled || ring_size == 0 || buffer_size == 0 {
                state.packet_buffer.pop_front();
                add_counter(state, reg::mpc(0), 1);
                continue;
            }
            let head = Self::value(state, reg::rdh(queue)) as usize;
            let tail = Self::value(state, reg::rdt(queue)) as usize;
            let available = (tail + ring_size - head) % ring_size;
            let needed = frame.len().div_ceil(buffer_size).max(1);
            if available < needed {
                if srrctl & reg::SRRCTL_DROP_ENABLE != 0 {
                    state.packet_buffer.pop_front();
                    add_counter(state, reg::qprdc(queue), 1);
                    add_counter(state, reg::rnbc(0), 1);
                    continue;
                }
                return;
            }
            state.packet_buffer.pop_front();
            let base = u64::from(Self::value(state, reg::rdbal(queue)))
                | u64::from(Self::value(state, reg::rdbah(queue))) << 32;
            let report = Self::value(state, reg::FDIRCTRL) & reg::FDIRCTRL_REPORT_STATUS != 0;
            let mut slot = head;
            for (index, chunk) in frame.chunks(buffer_size).enumerate() {
                let descriptor = base + (slot * 16) as u64;
                let buffer = self.memory.read_u64(descriptor);
                self.memory.write(buffer, chunk);
                let last = index + 1 == needed;
                let rss_type = if steered.flow_director_match && report {
                    reg::RSS_TYPE_FLOW_DIRECTOR_MATCH
                } else if steered.rss_hash != 0 {
                    reg::RSS_TYPE_TCP_IPV4
                } else {
                    0
                };
                let mut status = reg::ReceiveStatus::DESCRIPTOR_DONE.bits();
                if last {
                    status |= reg::ReceiveStatus::END_OF_PACKET.bits();
                    if steered.flow_director_match && report {
                        status |= reg::ReceiveStatus::FLOW_DIRECTOR_MATCH.bits();
                    }
                }
                let length = state
                    .next_length_override
                    .take()
                    .unwrap_or(chunk.len() as u16);
                let mut write_back = [0u8; 16];
                write_back[0..4].copy_from_slice(&rss_type.to_le_bytes());
                write_back[4..8].copy_from_slice(&steered.rss_hash.to_le_bytes());
                write_back[8..12].copy_from_slice(&status.to_le_bytes());
                write_back[12..14].copy_from_slice(&length.to_le_bytes());
                self.memory.write(descriptor, &write_back);
                slot = (slot + 1) % ring_size;
            }
            state.registers.insert(reg::rdh(queue), slot as u32);
            add_counter(state, reg::GPRC, 1);
            add_counter(state, reg::GORCL, frame.len() as u32);
            state.delivered.push((queue, steered));
        }
    }

    // ---- Transmit -----------------------------------------------------------------------

    /// Processes up to `limit` transmit descriptors per queue (the device's DMA running);
    /// frames go to the wire, or back to the receive path in MAC loopback.
    pub fn run_transmit(&self, limit: usize) {
        let mut frames = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            self.settle(&mut state);
            if Self::value(&state, reg::DMATXCTL) & reg::DMATXCTL_TRANSMIT_ENABLE == 0 {
                return;
            }
            for queue in 0..16 {
                if Self::value(&state, reg::txdctl(queue)) & reg::TXDCTL_ENABLE == 0 {
                    continue;
                }
                let ring_size = (Self::value(&state, reg::tdlen(queue)) / 16) as usize;
                let base = u64::from(Self::value(&state, reg::tdbal(queue)))
                    | u64::from(Self::value(&state, reg::tdbah(queue))) << 32;
                let tail = Self::value(&state, reg::tdt(queue)) as usize;
                let mut head = Self::value(&state, reg::tdh(queue)) as usize;
                if ring_size == 0 || tail >= ring_size {
                    if tail >= ring_size && ring_size != 0 {
                        Self::violation(&mut state, "TDT beyond the ring");
                    }
                    continue;
                }
                let mut done = 0;
                while head != tail && done < limit {
                    let descriptor = base + (head * 16) as u64;
                    let address = self.memory.read_u64(descriptor);
                    let command = self.memory.read_u32(descriptor + 8);
                    let data = (reg::TransmitCommand::DATA_DESCRIPTOR
                        | reg::TransmitCommand::DESCRIPTOR_EXTENSION)
                        .bits();
                    if command & (reg::TX_DTYP_MASK | data) != data {
                        Self::violation(
                            &mut state,
                            "transmit descriptor is not an advanced data descriptor",
                        );
                    }
                    let length = (command & reg::TX_LENGTH_MASK) as usize;
                    let bytes = self.memory.read_vec(address, length);
                    let partial = state.transmit_partial.entry(queue).or_default();
                    partial.extend_from_slice(&bytes);
                    if command & reg::TransmitCommand::END_OF_PACKET.bits() != 0 {
                        let mut frame = state.transmit_partial.remove(&queue).unwrap_or_default();
                        let hlreg0 = Self::value(&state, reg::HLREG0);
                        if hlreg0 & reg::MacControl::TX_PAD_ENABLE.bits() != 0 && frame.len() < 60 {
                            frame.resize(60, 0);
                        }
                        add_counter(&mut state, reg::GPTC, 1);
                        add_counter(&mut state, reg::GOTCL, frame.len() as u32);
                        frames.push((frame, hlreg0 & reg::MacControl::LOOPBACK.bits() != 0));
                    }
                    if command & reg::TransmitCommand::REPORT_STATUS.bits() != 0 {
                        self.memory
                            .write_u32(descriptor + 12, reg::TX_STATUS_DESCRIPTOR_DONE);
                    }
                    head = (head + 1) % ring_size;
                    done += 1;
                }
                state.registers.insert(reg::tdh(queue), head as u32);
            }
        }
        for (frame, loopback) in frames {
            if loopback {
                self.receive(&frame);
            } else {
                self.state.borrow_mut().transmitted.push(frame);
            }
        }
    }

    /// Frames sent to the wire since the last call.
    pub fn take_transmitted(&self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.state.borrow_mut().transmitted)
    }

    /// Steering decisions of frames written to rings since the last call.
    pub fn take_delivered(&self) -> Vec<(usize, Steered)> {
        core::mem::take(&mut self.state.borrow_mut().delivered)
    }

    pub fn take_log(&self) -> Vec<Access> {
        core::mem::take(&mut self.state.borrow_mut().log)
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.borrow().violations.clone()
    }

    /// The raw register value (no side effects, no log).
    pub fn peek(&self, offset: usize) -> u32 {
        Self::value(&self.state.borrow(), offset)
    }

    /// Makes the next receive write-back report `length` (a device fault).
    pub fn corrupt_next_length(&self, length: u16) {
        self.state.borrow_mut().next_length_override = Some(length);
    }

    /// Frames waiting in the receive packet buffer.
    pub fn packet_buffer_frames(&self) -> usize {
        self.state.borrow().packet_buffer.len()
    }
}

impl RegisterModel for Model82599 {
    fn read(&self, offset: usize, width: usize) -> u64 {
        assert_eq!(width, 4, "the 82599's registers are 32-bit");
        let mut state = self.state.borrow_mut();
        self.settle(&mut state);
        state.log.push(Access::Read(offset));
        u64::from(self.read_register(&mut state, offset))
    }

    fn write(&self, offset: usize, width: usize, value: u64) {
        assert_eq!(width, 4, "the 82599's registers are 32-bit");
        let mut state = self.state.borrow_mut();
        self.settle(&mut state);
        state.log.push(Access::Write(offset, value as u32));
        self.write_register(&mut state, offset, value as u32);
        drop(state);
        let transmit_tail = (0x06018..0x06018 + 0x40 * 16).contains(&offset)
            && (offset - 0x06018).is_multiple_of(0x40);
        if transmit_tail && self.settings.transmit_on_tail_write {
            self.run_transmit(usize::MAX);
        }
    }
}

fn set_bits(state: &mut State, offset: usize, bits: u32) {
    *state.registers.entry(offset).or_default() |= bits;
}

fn clear_bits(state: &mut State, offset: usize, bits: u32) {
    *state.registers.entry(offset).or_default() &= !bits;
}

fn add_counter(state: &mut State, offset: usize, amount: u32) {
    let counter = state.registers.entry(offset).or_default();
    *counter = counter.wrapping_add(amount);
}

/// The fields of an IPv4 frame the filters look at.
struct Packet {
    /// Flow Director flow type: 0 IPv4, 1 UDP, 2 TCP.
    flow_type: u32,
    source_address: [u8; 4],
    destination_address: [u8; 4],
    source_port: u16,
    destination_port: u16,
}

fn parse(frame: &[u8]) -> Option<Packet> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let header_length = usize::from(ip[0] & 0x0F) * 4;
    let (flow_type, has_ports) = match ip[9] {
        6 => (2, true),
        17 => (1, true),
        _ => (0, false),
    };
    let ports = ip.get(header_length..header_length + 4);
    let (source_port, destination_port) = match (has_ports, ports) {
        (true, Some(ports)) => (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        ),
        _ => (0, 0),
    };
    Some(Packet {
        flow_type,
        source_address: ip[12..16].try_into().ok()?,
        destination_address: ip[16..20].try_into().ok()?,
        source_port,
        destination_port,
    })
}

/// Input of the model's bucket hash.
pub struct HashInput {
    pub flow_type: u32,
    pub vlan: u16,
    pub source_address: [u8; 4],
    pub destination_address: [u8; 4],
    pub source_port: u16,
    pub destination_port: u16,
    pub flex: u16,
}

/// The model's own Flow Director perfect-filter bucket hash (15 bits; the device keeps 11
/// at 64K), from FACTS.md's description: a linear function of the XOR of the input's
/// address, port and flex dwords ("common") and of dword 0, selected by the bits of the
/// bucket key 0x3DAD14E2. Written as a sum over the key's set bits.
pub fn model_bucket_hash(input: &HashInput) -> u32 {
    const KEY: u32 = 0x3DAD_14E2;
    let word0 = input.flow_type << 16 | u32::from(input.vlan);
    let mut common = 0u32;
    for word in [
        u32::from_be_bytes(input.destination_address),
        u32::from_be_bytes(input.source_address),
        u32::from(input.source_port) << 16 | u32::from(input.destination_port),
        u32::from(input.flex) << 16,
    ] {
        common ^= word;
    }
    let swapped = common.rotate_left(16);
    // Low key half (bits 0..16) works on the swapped dword, with dword 0 folded in for
    // every bit but the first; high half (bits 16..32) on common with dword 0 folded in.
    let low_first = swapped;
    let low_rest = swapped ^ word0 ^ (word0 << 16);
    let high = common ^ word0 ^ (word0 >> 16);
    (0..32)
        .filter(|bit| KEY >> bit & 1 == 1)
        .map(|bit| match bit {
            0 => low_first,
            1..=15 => low_rest >> bit,
            _ => high >> (bit - 16),
        })
        .fold(0, |hash, term| hash ^ term)
        & 0x7FFF
}

/// The model's own Toeplitz hash: for each set input bit i (most significant bit of byte 0
/// first), XOR in the 32 key bits that start at bit i; key bits are picked one at a time.
pub fn model_toeplitz(key: &[u8; RSS_KEY_BYTES], input: &[u8]) -> u32 {
    let key_bit = |position: usize| -> u32 {
        key.get(position / 8)
            .map_or(0, |byte| u32::from(byte >> (7 - position % 8) & 1))
    };
    let mut hash = 0u32;
    for position in 0..input.len() * 8 {
        if input[position / 8] >> (7 - position % 8) & 1 == 1 {
            let window = (0..32).fold(0u32, |window, offset| {
                window << 1 | key_bit(position + offset)
            });
            hash ^= window;
        }
    }
    hash
}
