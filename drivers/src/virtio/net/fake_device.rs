//! Test-only virtio-net PCI function: configuration space with virtio capabilities, a BAR
//! with the common, ISR, device and notification structures (QEMU's layout) and an MSI-X
//! table, and the device's side of the virtqueues over simulated memory.

use core::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

use crate::hal::fake::{FakeDma, FakeMemory, FakeMmio, FakeMmioMapper, FakeRegion, RegisterModel};
use crate::pci::fake::FakePciConfig;
use crate::pci::{PciAddress, PciFunction, capability};
use crate::virtio::features::{DeviceStatus, Features};
use crate::virtio::net::control::{ACK_OK, class, mq_command};
use crate::virtio::net::device::{DEVICE_ID_MODERN, VirtioNet, VirtioNetError, VirtioNetOptions};
use crate::virtio::net::header::HEADER_LENGTH;
use crate::virtio::pci_transport::{NO_MSIX_VECTOR, config_type};

pub const BAR_PHYSICAL: u64 = 0xfe00_0000;
pub const BAR_INDEX: usize = 4;
pub const BAR_SIZE: u64 = 0x8000;
pub const COMMON_OFFSET: usize = 0x0000;
pub const COMMON_LENGTH: usize = 0x38;
pub const ISR_OFFSET: usize = 0x1000;
pub const DEVICE_OFFSET: usize = 0x2000;
pub const DEVICE_LENGTH: usize = 24;
pub const NOTIFY_OFFSET: usize = 0x3000;
pub const NOTIFY_MULTIPLIER: usize = 4;
pub const MSIX_TABLE_OFFSET: usize = 0x4000;
pub const MSIX_PBA_OFFSET: usize = 0x4800;

const DESCRIPTOR_FLAG_NEXT: u16 = 1;
const DESCRIPTOR_FLAG_WRITE: u16 = 2;

pub fn address() -> PciAddress {
    PciAddress::new(0, 3, 0)
}

/// What the fake device offers and how it behaves.
#[derive(Clone, Debug)]
pub struct Settings {
    pub offered: Features,
    pub max_queue_pairs: u16,
    pub queue_max_size: u16,
    pub mac: [u8; 6],
    pub link_up: bool,
    pub rss_max_key_size: u8,
    pub rss_max_indirection_table_length: u16,
    pub supported_hash_types: u32,
    /// When false, the device clears FEATURES_OK (refuses the driver's features).
    pub accept_features: bool,
    pub msix_vectors: u16,
    /// Ack byte for every control command.
    pub control_ack: u8,
    /// Whether the device answers control commands at all.
    pub control_answers: bool,
    /// The device never finishes a reset (status stays non-zero).
    pub stuck_in_reset: bool,
    /// The configuration generation changes on every read (a device whose configuration
    /// never settles).
    pub restless_configuration: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            offered: Features::VERSION_1
                | Features::MAC
                | Features::STATUS
                | Features::CTRL_VQ
                | Features::MQ
                | Features::RSS
                | Features::CSUM
                | Features::GUEST_CSUM
                | Features::MRG_RXBUF
                | Features::RING_EVENT_IDX
                | Features::RING_INDIRECT_DESC,
            max_queue_pairs: 4,
            queue_max_size: 256,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            link_up: true,
            rss_max_key_size: 40,
            rss_max_indirection_table_length: 128,
            supported_hash_types: 0b11_1111,
            accept_features: true,
            msix_vectors: 10,
            control_ack: ACK_OK,
            control_answers: true,
            stuck_in_reset: false,
            restless_configuration: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct QueueState {
    pub size: u16,
    pub enabled: bool,
    pub descriptor_table: u64,
    pub driver_area: u64,
    pub device_area: u64,
    pub msix_vector: u16,
    pub notifications: usize,
    last_available: u16,
    used_index: u16,
}

/// A descriptor as the device reads it.
#[derive(Clone, Copy, Debug)]
pub struct Descriptor {
    pub address: u64,
    pub length: u32,
    pub flags: u16,
}

struct State {
    settings: Settings,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    status: u8,
    queue_select: u16,
    config_msix_vector: u16,
    configuration_generation: core::cell::Cell<u8>,
    queues: Vec<QueueState>,
    msix_table: Vec<u8>,
    control_log: Vec<(u8, u8, Vec<u8>)>,
    active_queue_pairs: u16,
    /// Frames that arrived on a pair's tap but found no buffer on the pair RSS steered them
    /// to: (arrival pair, target pair, frame), in arrival order (see `deliver_steered`).
    parked: Vec<(u16, u16, Vec<u8>)>,
}

impl State {
    /// What `num_queues` (a le16) reports: every queue the pairs and the control queue need,
    /// or as many as it can express.
    fn queue_count(&self) -> u16 {
        let control = u32::from(self.settings.offered.contains(Features::CTRL_VQ));
        let needed = 2 * u32::from(self.settings.max_queue_pairs) + control;
        u16::try_from(needed).unwrap_or(u16::MAX)
    }

    fn reset(&mut self) {
        self.status = 0;
        self.driver_features = 0;
        self.config_msix_vector = NO_MSIX_VECTOR;
        self.active_queue_pairs = 1;
        let size = self.settings.queue_max_size;
        self.queues = (0..self.queue_count())
            .map(|_| QueueState {
                size,
                msix_vector: NO_MSIX_VECTOR,
                ..QueueState::default()
            })
            .collect();
    }

    fn selected(&mut self) -> &mut QueueState {
        let index = usize::from(self.queue_select);
        &mut self.queues[index]
    }

    fn accept_vector(&self, vector: u16) -> u16 {
        if vector < self.settings.msix_vectors {
            vector
        } else {
            NO_MSIX_VECTOR
        }
    }
}

/// The fake device. Its register model is installed in a [`FakeMmioMapper`].
pub struct FakeVirtioNet {
    state: RefCell<State>,
    memory: FakeMemory,
}

fn set_half(value: &mut u64, high: bool, half: u64) {
    if high {
        *value = (*value & 0xffff_ffff) | (half << 32);
    } else {
        *value = (*value & !0xffff_ffff) | half;
    }
}

impl RegisterModel for FakeVirtioNet {
    fn read(&self, offset: usize, width: usize) -> u64 {
        let state = self.state.borrow();
        if (MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET).contains(&offset) {
            let start = offset - MSIX_TABLE_OFFSET;
            let mut bytes = [0; 8];
            bytes[..width].copy_from_slice(&state.msix_table[start..start + width]);
            return u64::from_le_bytes(bytes);
        }
        if (DEVICE_OFFSET..DEVICE_OFFSET + DEVICE_LENGTH).contains(&offset) {
            let settings = &state.settings;
            return match (offset - DEVICE_OFFSET, width) {
                (mac @ 0..6, 1) => settings.mac[mac].into(),
                (6, 2) => u64::from(settings.link_up),
                (8, 2) => settings.max_queue_pairs.into(),
                (10, 2) => 1500,
                (17, 1) => settings.rss_max_key_size.into(),
                (18, 2) => settings.rss_max_indirection_table_length.into(),
                (20, 4) => settings.supported_hash_types.into(),
                (field, width) => panic!("device config read {field:#x}/{width}"),
            };
        }
        if offset == ISR_OFFSET {
            return 0;
        }
        let selected = usize::from(state.queue_select);
        let queue = state.queues.get(selected);
        match (offset, width) {
            (0x00, 4) => state.device_feature_select.into(),
            (0x04, 4) => match state.device_feature_select {
                0 => state.settings.offered.bits() & 0xffff_ffff,
                1 => state.settings.offered.bits() >> 32,
                _ => 0,
            },
            (0x08, 4) => state.driver_feature_select.into(),
            (0x10, 2) => state.config_msix_vector.into(),
            (0x12, 2) => state.queue_count().into(),
            (0x14, 1) => state.status.into(),
            (0x15, 1) => {
                let generation = &state.configuration_generation;
                if state.settings.restless_configuration {
                    generation.set(generation.get().wrapping_add(1));
                }
                generation.get().into()
            }
            (0x16, 2) => state.queue_select.into(),
            (0x18, 2) => queue.map_or(0, |queue| queue.size).into(),
            (0x1a, 2) => queue
                .map_or(NO_MSIX_VECTOR, |queue| queue.msix_vector)
                .into(),
            (0x1c, 2) => queue.is_some_and(|queue| queue.enabled).into(),
            (0x1e, 2) => selected as u64,
            (offset, width) => panic!("common config read {offset:#x}/{width}"),
        }
    }

    fn write(&self, offset: usize, width: usize, value: u64) {
        if (NOTIFY_OFFSET..MSIX_TABLE_OFFSET).contains(&offset) {
            assert_eq!(width, 2, "notify writes are 16 bits");
            let queue = (offset - NOTIFY_OFFSET) / NOTIFY_MULTIPLIER;
            assert_eq!(
                value as usize, queue,
                "notify value must be the queue index"
            );
            self.notified(queue as u16);
            return;
        }
        let mut state = self.state.borrow_mut();
        if (MSIX_TABLE_OFFSET..MSIX_PBA_OFFSET).contains(&offset) {
            let start = offset - MSIX_TABLE_OFFSET;
            state.msix_table[start..start + width].copy_from_slice(&value.to_le_bytes()[..width]);
            return;
        }
        match (offset, width) {
            (0x00, 4) => state.device_feature_select = value as u32,
            (0x08, 4) => state.driver_feature_select = value as u32,
            (0x0c, 4) => {
                let high = state.driver_feature_select == 1;
                set_half(&mut state.driver_features, high, value);
            }
            (0x10, 2) => state.config_msix_vector = state.accept_vector(value as u16),
            (0x14, 1) => {
                let mut status = value as u8;
                if status == 0 {
                    let stuck = state.settings.stuck_in_reset;
                    state.reset();
                    if stuck {
                        state.status = DeviceStatus::ACKNOWLEDGE.bits();
                    }
                    return;
                }
                let offered = state.settings.offered.bits();
                let features_ok = DeviceStatus::FEATURES_OK.bits();
                if status & features_ok != 0
                    && (!state.settings.accept_features || state.driver_features & !offered != 0)
                {
                    status &= !features_ok;
                }
                state.status = status;
            }
            (0x16, 2) => state.queue_select = value as u16,
            (0x18, 2) => state.selected().size = value as u16,
            (0x1a, 2) => {
                let vector = state.accept_vector(value as u16);
                state.selected().msix_vector = vector;
            }
            (0x1c, 2) => state.selected().enabled = value == 1,
            (0x20 | 0x24, 4) => set_half(
                &mut state.selected().descriptor_table,
                offset == 0x24,
                value,
            ),
            (0x28 | 0x2c, 4) => set_half(&mut state.selected().driver_area, offset == 0x2c, value),
            (0x30 | 0x34, 4) => set_half(&mut state.selected().device_area, offset == 0x34, value),
            (offset, width) => panic!("common config write {offset:#x}/{width}"),
        }
    }
}

impl FakeVirtioNet {
    pub fn new(settings: Settings, memory: &FakeMemory) -> Self {
        let mut state = State {
            settings,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            status: 0,
            queue_select: 0,
            config_msix_vector: NO_MSIX_VECTOR,
            configuration_generation: core::cell::Cell::new(0),
            queues: Vec::new(),
            msix_table: std::vec![0; MSIX_PBA_OFFSET - MSIX_TABLE_OFFSET],
            control_log: Vec::new(),
            active_queue_pairs: 1,
            parked: Vec::new(),
        };
        state.reset();
        FakeVirtioNet {
            state: RefCell::new(state),
            memory: memory.clone(),
        }
    }

    pub fn status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.state.borrow().status)
    }

    pub fn driver_features(&self) -> Features {
        Features::from_bits_retain(self.state.borrow().driver_features)
    }

    pub fn queue(&self, index: u16) -> QueueState {
        self.state.borrow().queues[usize::from(index)].clone()
    }

    pub fn config_msix_vector(&self) -> u16 {
        self.state.borrow().config_msix_vector
    }

    pub fn control_log(&self) -> Vec<(u8, u8, Vec<u8>)> {
        self.state.borrow().control_log.clone()
    }

    pub fn active_queue_pairs(&self) -> u16 {
        self.state.borrow().active_queue_pairs
    }

    pub fn msix_table(&self) -> Vec<u8> {
        self.state.borrow().msix_table.clone()
    }

    pub fn set_link_up(&self, up: bool) {
        self.state.borrow_mut().settings.link_up = up;
    }

    pub fn set_control_ack(&self, ack: u8) {
        self.state.borrow_mut().settings.control_ack = ack;
    }

    pub fn set_needs_reset(&self) {
        self.state.borrow_mut().status |= DeviceStatus::DEVICE_NEEDS_RESET.bits();
    }

    pub fn set_control_answers(&self, answers: bool) {
        self.state.borrow_mut().settings.control_answers = answers;
    }

    /// Avail ring index the driver has published for `queue`.
    pub fn available_index(&self, queue: u16) -> u16 {
        let driver_area = self.queue(queue).driver_area;
        self.memory.read_u16(driver_area + 2)
    }

    /// Whether the driver asked for no interrupts on `queue`.
    pub fn interrupts_suppressed(&self, queue: u16) -> bool {
        let driver_area = self.queue(queue).driver_area;
        self.memory.read_u16(driver_area) & 1 != 0
    }

    /// Buffers published by the driver and not yet taken by the device.
    pub fn pending_available(&self, queue: u16) -> u16 {
        let state = self.queue(queue);
        self.available_index(queue)
            .wrapping_sub(state.last_available)
    }

    /// Sets or clears NO_NOTIFY in `queue`'s used ring.
    pub fn set_no_notify(&self, queue: u16, no_notify: bool) {
        let device_area = self.queue(queue).device_area;
        self.memory.write_u16(device_area, u16::from(no_notify));
    }

    /// Takes the next available chain of `queue`: head and descriptors.
    pub fn pop_available(&self, queue: u16) -> Option<(u16, Vec<Descriptor>)> {
        let mut state = self.state.borrow_mut();
        let queue_state = &mut state.queues[usize::from(queue)];
        assert!(
            queue_state.enabled,
            "queue {queue} used before it was enabled"
        );
        let available = self.memory.read_u16(queue_state.driver_area + 2);
        if available == queue_state.last_available {
            return None;
        }
        let size = queue_state.size;
        let slot = u64::from(queue_state.last_available % size);
        let head = self.memory.read_u16(queue_state.driver_area + 4 + 2 * slot);
        queue_state.last_available = queue_state.last_available.wrapping_add(1);
        assert!(
            head < size,
            "driver published head {head} outside a queue of {size}"
        );
        let mut chain = Vec::new();
        let mut current = head;
        loop {
            let base = queue_state.descriptor_table + 16 * u64::from(current);
            let descriptor = Descriptor {
                address: self.memory.read_u64(base),
                length: self.memory.read_u32(base + 8),
                flags: self.memory.read_u16(base + 12),
            };
            chain.push(descriptor);
            assert!(chain.len() <= usize::from(size), "descriptor loop");
            if descriptor.flags & DESCRIPTOR_FLAG_NEXT == 0 {
                break;
            }
            current = self.memory.read_u16(base + 14);
        }
        Some((head, chain))
    }

    /// Writes a used-ring entry as the device would (any id: tests use bad ones too).
    pub fn push_used(&self, queue: u16, id: u32, length: u32) {
        let mut state = self.state.borrow_mut();
        let queue_state = &mut state.queues[usize::from(queue)];
        let slot = u64::from(queue_state.used_index % queue_state.size);
        let element = queue_state.device_area + 4 + 8 * slot;
        self.memory.write_u32(element, id);
        self.memory.write_u32(element + 4, length);
        queue_state.used_index = queue_state.used_index.wrapping_add(1);
        self.memory
            .write_u16(queue_state.device_area + 2, queue_state.used_index);
    }

    /// Sets the used index without writing an entry (a device claiming phantom completions).
    pub fn bump_used_index(&self, queue: u16, by: u16) {
        let mut state = self.state.borrow_mut();
        let queue_state = &mut state.queues[usize::from(queue)];
        queue_state.used_index = queue_state.used_index.wrapping_add(by);
        self.memory
            .write_u16(queue_state.device_area + 2, queue_state.used_index);
    }

    /// Receives `frame` on pair `pair`: fills the next receive buffer with a header and the
    /// frame. Returns false if the driver has posted no buffer.
    pub fn deliver(&self, pair: u16, frame: &[u8]) -> bool {
        let queue = 2 * pair;
        let Some((head, chain)) = self.pop_available(queue) else {
            return false;
        };
        assert_eq!(chain.len(), 1, "receive buffers are single descriptors");
        let descriptor = chain[0];
        assert!(
            descriptor.flags & DESCRIPTOR_FLAG_WRITE != 0,
            "receive buffer not writable"
        );
        assert!(
            descriptor.length as usize >= HEADER_LENGTH + frame.len(),
            "buffer too small"
        );
        let mut header = [0u8; HEADER_LENGTH];
        header[10] = 1; // num_buffers
        self.memory.write(descriptor.address, &header);
        self.memory
            .write(descriptor.address + HEADER_LENGTH as u64, frame);
        self.push_used(queue, head.into(), (HEADER_LENGTH + frame.len()) as u32);
        true
    }

    /// Receives `frame` the way QEMU 7.2's software RSS does: it arrives on pair `arrival`'s
    /// tap queue and goes to pair `target`'s receive queue. A delivery sets NO_NOTIFY on the
    /// target (QEMU wants no kicks while it finds buffers). With no buffer on the target, the
    /// frame is parked on the *arrival* queue, which then takes nothing more (the tap is no
    /// longer read), and the target's NO_NOTIFY is cleared; parked frames are retried only
    /// when the arrival pair's receive queue is notified. Returns whether it was delivered.
    pub fn deliver_steered(&self, arrival: u16, target: u16, frame: &[u8]) -> bool {
        let blocked = self
            .state
            .borrow()
            .parked
            .iter()
            .any(|(parked_arrival, _, _)| *parked_arrival == arrival);
        if !blocked && self.deliver(target, frame) {
            self.set_no_notify(2 * target, true);
            return true;
        }
        if !blocked {
            self.set_no_notify(2 * target, false);
        }
        self.state
            .borrow_mut()
            .parked
            .push((arrival, target, frame.to_vec()));
        false
    }

    /// Frames parked by [`deliver_steered`](Self::deliver_steered) and not yet delivered.
    pub fn parked_frames(&self) -> usize {
        self.state.borrow().parked.len()
    }

    /// QEMU's `virtio_net_handle_rx`: a notification of pair `arrival`'s receive queue retries
    /// the frames parked on it, in order, until one still finds no buffer.
    fn retry_parked(&self, arrival: u16) {
        loop {
            let next = {
                let state = self.state.borrow();
                state
                    .parked
                    .iter()
                    .position(|(parked_arrival, _, _)| *parked_arrival == arrival)
                    .map(|position| (position, state.parked[position].1))
            };
            let Some((position, target)) = next else {
                return;
            };
            let frame = self.state.borrow().parked[position].2.clone();
            if !self.deliver(target, &frame) {
                self.set_no_notify(2 * target, false);
                return;
            }
            self.set_no_notify(2 * target, true);
            self.state.borrow_mut().parked.remove(position);
        }
    }

    /// Sends every frame queued on pair `pair`'s transmit queue; returns each frame with its
    /// 12-byte header.
    pub fn transmit_all(&self, pair: u16) -> Vec<Vec<u8>> {
        let queue = 2 * pair + 1;
        let mut frames = Vec::new();
        while let Some((head, chain)) = self.pop_available(queue) {
            let mut bytes = Vec::new();
            for descriptor in chain {
                assert!(
                    descriptor.flags & DESCRIPTOR_FLAG_WRITE == 0,
                    "transmit buffer writable"
                );
                bytes.extend(
                    self.memory
                        .read_vec(descriptor.address, descriptor.length as usize),
                );
            }
            frames.push(bytes);
            self.push_used(queue, head.into(), 0);
        }
        frames
    }

    fn notified(&self, queue: u16) {
        let control_queue = {
            let mut state = self.state.borrow_mut();
            assert!(
                state.status & DeviceStatus::DRIVER_OK.bits() != 0,
                "queue {queue} notified before DRIVER_OK"
            );
            state.queues[usize::from(queue)].notifications += 1;
            state.settings.offered.contains(Features::CTRL_VQ)
                && queue == 2 * state.settings.max_queue_pairs
        };
        if control_queue && self.state.borrow().settings.control_answers {
            self.handle_control(queue);
        } else if !control_queue && queue.is_multiple_of(2) {
            self.retry_parked(queue / 2);
        }
    }

    fn handle_control(&self, queue: u16) {
        while let Some((head, chain)) = self.pop_available(queue) {
            let mut command = Vec::new();
            let mut ack_address = None;
            for descriptor in &chain {
                if descriptor.flags & DESCRIPTOR_FLAG_WRITE != 0 {
                    ack_address = Some(descriptor.address);
                } else {
                    command.extend(
                        self.memory
                            .read_vec(descriptor.address, descriptor.length as usize),
                    );
                }
            }
            let (command_class, command_code, data) =
                (command[0], command[1], command[2..].to_vec());
            let mut state = self.state.borrow_mut();
            let ack = state.settings.control_ack;
            if ack == ACK_OK && command_class == class::MQ {
                match command_code {
                    mq_command::VQ_PAIRS_SET => {
                        state.active_queue_pairs = u16::from_le_bytes([data[0], data[1]]);
                    }
                    mq_command::RSS_CONFIG => {
                        let table_length = u16::from_le_bytes([data[4], data[5]]) as usize + 1;
                        let at = 8 + 2 * table_length;
                        state.active_queue_pairs = u16::from_le_bytes([data[at], data[at + 1]]);
                    }
                    _ => {}
                }
            }
            state.control_log.push((command_class, command_code, data));
            drop(state);
            self.memory.write(
                ack_address.expect("control command without ack buffer"),
                &[ack],
            );
            self.push_used(queue, head.into(), 1);
        }
    }
}

/// A fake machine: PCI config space with one virtio-net function, its BAR, and memory.
pub struct FakeMachine {
    pub pci: FakePciConfig,
    pub mapper: FakeMmioMapper,
    pub memory: FakeMemory,
    pub dma: FakeDma,
    pub device: Rc<FakeVirtioNet>,
}

fn virtio_capability(
    config_type: u8,
    offset: usize,
    length: usize,
    multiplier: Option<u32>,
) -> Vec<u8> {
    let capability_length: u8 = if multiplier.is_some() { 20 } else { 16 };
    let mut body = std::vec![capability_length, config_type, BAR_INDEX as u8, 0, 0, 0];
    body.extend_from_slice(&(offset as u32).to_le_bytes());
    body.extend_from_slice(&(length as u32).to_le_bytes());
    if let Some(multiplier) = multiplier {
        body.extend_from_slice(&multiplier.to_le_bytes());
    }
    body
}

impl FakeMachine {
    pub fn new(settings: Settings) -> Self {
        let memory = FakeMemory::new();
        let max_pairs = settings.max_queue_pairs;
        let msix_vectors = settings.msix_vectors;
        let device = Rc::new(FakeVirtioNet::new(settings, &memory));
        let pci = FakePciConfig::default();
        pci.add_function(address(), crate::virtio::VIRTIO_VENDOR_ID, DEVICE_ID_MODERN);
        pci.add_memory_bar_64(address(), BAR_INDEX, BAR_PHYSICAL, BAR_SIZE);
        let mut msix = (msix_vectors.max(1) - 1).to_le_bytes().to_vec();
        msix.extend_from_slice(&(MSIX_TABLE_OFFSET as u32 | BAR_INDEX as u32).to_le_bytes());
        msix.extend_from_slice(&(MSIX_PBA_OFFSET as u32 | BAR_INDEX as u32).to_le_bytes());
        pci.add_capability(address(), capability::id::MSI_X, &msix);
        let notify_length = (NOTIFY_MULTIPLIER * (2 * usize::from(max_pairs) + 1))
            .min(MSIX_TABLE_OFFSET - NOTIFY_OFFSET);
        for (config_type, offset, length, multiplier) in [
            (config_type::COMMON, COMMON_OFFSET, COMMON_LENGTH, None),
            (config_type::ISR, ISR_OFFSET, 4, None),
            (config_type::DEVICE, DEVICE_OFFSET, DEVICE_LENGTH, None),
            (
                config_type::NOTIFY,
                NOTIFY_OFFSET,
                notify_length,
                Some(NOTIFY_MULTIPLIER as u32),
            ),
        ] {
            let body = virtio_capability(config_type, offset, length, multiplier);
            pci.add_capability(address(), capability::id::VENDOR_SPECIFIC, &body);
        }
        let mapper = FakeMmioMapper::default();
        mapper.add_window(BAR_PHYSICAL, BAR_SIZE as usize, device.clone());
        let dma = FakeDma::new(&memory);
        FakeMachine {
            pci,
            mapper,
            memory,
            dma,
            device,
        }
    }

    pub fn bring_up(
        &self,
        options: VirtioNetOptions,
    ) -> Result<VirtioNet<FakeMmio, FakeRegion>, VirtioNetError> {
        let function = PciFunction::new(&self.pci, address());
        VirtioNet::new(&function, &self.mapper, &self.dma, options)
    }
}
