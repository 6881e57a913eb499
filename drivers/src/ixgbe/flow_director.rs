//! Flow Director perfect filters (82599 datasheet 7.1.2.7): the port-global masks, the bucket
//! hash the driver computes for each filter, and the register sequences that enable the
//! filter table and add a filter.
//!
//! Receive Flow Deliver uses one filter per (backend port, core): a reply from the backend's
//! port to a local port whose low bits name core c goes to queue c. The masks say exactly
//! that: remote address ignored, remote (source) port exact, local (destination) port masked
//! to the core bits, local address ignored (the host may answer on several).

use super::registers::*;
use crate::hal::{Mmio, Timer};

/// Filter memory taken from receive packet buffer 0 at PBALLOC = 64K (Linux: `32 << pballoc`
/// KB; DPDK: `1 << (15 + pballoc)` bytes).
pub const FILTER_MEMORY_BYTES: u32 = 64 * 1024;
/// Perfect filters at 64K: `(1024 << pballoc) - 2`.
pub const PERFECT_FILTER_CAPACITY: usize = (1024 << 1) - 2;
/// Bucket hash bits the hardware uses at PBALLOC = 64K (DPDK's width; the hardware reports
/// 11-bit values at 64K, FACTS.md).
pub const BUCKET_HASH_MASK_64K: u32 = 0x7FF;

/// Flow types of the hash input's dword 0 (Linux `ixgbe_atr_flow_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowType {
    Ipv4 = 0,
    UdpIpv4 = 1,
    TcpIpv4 = 2,
}

impl FlowType {
    fn command_bits(self) -> FlowDirectorCommand {
        match self {
            FlowType::Ipv4 => FlowDirectorCommand::empty(),
            FlowType::UdpIpv4 => FlowDirectorCommand::L4_UDP,
            FlowType::TcpIpv4 => FlowDirectorCommand::L4_TCP,
        }
    }
}

/// The fields a perfect filter compares, as the packet carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowDirectorInput {
    pub flow_type: FlowType,
    pub vlan_id: u16,
    pub pool: u8,
    pub source_address: [u8; 4],
    pub destination_address: [u8; 4],
    pub source_port: u16,
    pub destination_port: u16,
    pub flex_bytes: u16,
}

impl FlowDirectorInput {
    pub const fn tcp_ipv4(
        source_address: [u8; 4],
        destination_address: [u8; 4],
        source_port: u16,
        destination_port: u16,
    ) -> Self {
        FlowDirectorInput {
            flow_type: FlowType::TcpIpv4,
            vlan_id: 0,
            pool: 0,
            source_address,
            destination_address,
            source_port,
            destination_port,
            flex_bytes: 0,
        }
    }

    /// This input with the masks applied to its fields, as the hardware compares and hashes it.
    /// (Linux applies the masks before hashing and writing; DPDK does not, a known pitfall.)
    pub fn masked(&self, masks: &FlowDirectorMasks) -> Self {
        let and = |value: [u8; 4], mask: [u8; 4]| core::array::from_fn(|i| value[i] & mask[i]);
        FlowDirectorInput {
            flow_type: self.flow_type,
            vlan_id: if masks.vlan_id {
                self.vlan_id & 0x0FFF
            } else {
                0
            },
            pool: 0,
            source_address: and(self.source_address, masks.source_address),
            destination_address: and(self.destination_address, masks.destination_address),
            source_port: self.source_port & masks.source_port,
            destination_port: self.destination_port & masks.destination_port,
            flex_bytes: if masks.flex_bytes { self.flex_bytes } else { 0 },
        }
    }

    /// The perfect-filter bucket hash (Linux `ixgbe_atr_compute_perfect_hash_82599`) of an
    /// input that is already masked, kept to the 11 bits of PBALLOC = 64K.
    ///
    /// The input is eleven big-endian dwords: dword 0 = pool | flow type | VLAN, then the
    /// destination and source addresses (four dwords each, IPv4 in the first), the ports
    /// (`source << 16 | destination`) and the flex bytes (`flex << 16`). Dwords 1..10 are
    /// XORed into one "common" dword; the key then selects shifted copies of it.
    pub fn bucket_hash(&self) -> u16 {
        let flow_vlan_pool =
            u32::from(self.pool) << 24 | (self.flow_type as u32) << 16 | u32::from(self.vlan_id);
        let common = u32::from_be_bytes(self.destination_address)
            ^ u32::from_be_bytes(self.source_address)
            ^ (u32::from(self.source_port) << 16 | u32::from(self.destination_port))
            ^ u32::from(self.flex_bytes) << 16;
        let high = common ^ flow_vlan_pool ^ (flow_vlan_pool >> 16);
        let mut low = common.rotate_left(16);
        let key = FLOW_DIRECTOR_BUCKET_HASH_KEY;
        let mut hash = 0u32;
        for bit in 0..16 {
            if key & (1 << bit) != 0 {
                hash ^= low >> bit;
            }
            if key & (1 << (bit + 16)) != 0 {
                hash ^= high >> bit;
            }
            if bit == 0 {
                // The VLAN/flow bits join the low dword only after bit 0 (the hardware does
                // not process stream bit 0 with them).
                low ^= flow_vlan_pool ^ (flow_vlan_pool << 16);
            }
        }
        (hash & BUCKET_HASH_MASK_64K) as u16
    }
}

/// The masks of every filter of the port (FDIRM, FDIRTCPM/FDIRUDPM, FDIRSIP4M/FDIRDIP4M):
/// a 1 bit here means "compare this bit".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowDirectorMasks {
    pub source_address: [u8; 4],
    pub destination_address: [u8; 4],
    pub source_port: u16,
    pub destination_port: u16,
    /// Compare the VLAN id (FDIRM.VLANID = 0).
    pub vlan_id: bool,
    /// Compare the flex bytes (FDIRM.FLEX = 0).
    pub flex_bytes: bool,
}

impl FlowDirectorMasks {
    /// Receive Flow Deliver's masks for `core_count` cores: remote address and local address
    /// ignored, remote port exact, local port masked to `roundup_pow2(core_count) - 1`.
    pub fn receive_flow_deliver(core_count: u16) -> Self {
        FlowDirectorMasks {
            source_address: [0; 4],
            destination_address: [0; 4],
            source_port: 0xFFFF,
            destination_port: core_count.max(1).next_power_of_two() - 1,
            vlan_id: false,
            flex_bytes: false,
        }
    }

    /// FDIRM: what to ignore besides addresses and ports.
    pub fn ignore_register(&self) -> u32 {
        let mut ignore = FlowDirectorIgnore::VLAN_PRIORITY | FlowDirectorIgnore::POOL;
        if !self.vlan_id {
            ignore |= FlowDirectorIgnore::VLAN_ID;
        }
        if !self.flex_bytes {
            ignore |= FlowDirectorIgnore::FLEX;
        }
        ignore.bits()
    }

    /// FDIRTCPM/FDIRUDPM: each 16-bit mask bit-reversed (bit 15 of the mask lands in bit 0),
    /// destination in [31:16], source in [15:0], then inverted so that 1 means ignore.
    /// (Linux `ixgbe_get_fdirtcpm_82599`; FACTS.md: dst 0x000F, src 0xFFFF -> 0x0FFF0000.)
    pub fn port_mask_register(&self) -> u32 {
        !(u32::from(self.destination_port.reverse_bits()) << 16
            | u32::from(self.source_port.reverse_bits()))
    }

    /// FDIRSIP4M/FDIRDIP4M: the NOT of the mask in network byte order, as Linux's big-endian
    /// store leaves it (255.255.255.0 -> 0xFF000000).
    pub fn address_mask_register(mask: [u8; 4]) -> u32 {
        !u32::from_le_bytes(mask)
    }
}

/// One perfect filter: packets whose masked fields equal this input's go to `queue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerfectFilter {
    /// Already masked.
    pub input: FlowDirectorInput,
    pub queue: u8,
    /// The id the hardware reports in the receive descriptor of a matching packet.
    pub soft_id: u16,
}

/// Why Flow Director refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowDirectorError {
    /// FDIRCTRL.INIT_DONE did not become set within 10 ms.
    InitTimeout,
    /// FDIRCMD did not complete within 100 us.
    CommandTimeout,
    /// FDIRFREE reports no free filter.
    TableFull,
}

/// Enables perfect-filter mode with 64K of filter memory and programs the masks. Must run
/// while RXCTRL.RXEN = 0 (datasheet 7.1.2.7.x; Linux and DPDK do it before enabling receive).
pub fn initialize<M: Mmio, T: Timer>(
    registers: &M,
    timer: &T,
    masks: &FlowDirectorMasks,
) -> Result<(), FlowDirectorError> {
    registers.write_u32(FDIRHKEY, FLOW_DIRECTOR_BUCKET_HASH_KEY);
    registers.write_u32(FDIRSKEY, FLOW_DIRECTOR_SIGNATURE_HASH_KEY);
    // Linux's 0x4A067F11 plus REPORT_STATUS (DPDK): drop queue 127, flex bytes at word 6
    // (the EtherType), at most 10 filters per bucket chain, "almost full" at 4 x 16 free.
    let control = FDIRCTRL_PBALLOC_64K
        | FDIRCTRL_PERFECT_MATCH
        | FDIRCTRL_REPORT_STATUS
        | 0x7F << FDIRCTRL_DROP_QUEUE_SHIFT
        | 0x6 << FDIRCTRL_FLEX_OFFSET_SHIFT
        | 0xA << FDIRCTRL_MAX_LENGTH_SHIFT
        | 0x4 << FDIRCTRL_FULL_THRESHOLD_SHIFT;
    registers.write_u32(FDIRCTRL, control);
    registers.read_u32(STATUS);
    if !poll(timer, 10, 1000, || {
        registers.read_u32(FDIRCTRL) & FDIRCTRL_INIT_DONE != 0
    }) {
        return Err(FlowDirectorError::InitTimeout);
    }
    registers.write_u32(FDIRM, masks.ignore_register());
    registers.write_u32(FDIRTCPM, masks.port_mask_register());
    registers.write_u32(FDIRUDPM, masks.port_mask_register());
    registers.write_u32(
        FDIRSIP4M,
        FlowDirectorMasks::address_mask_register(masks.source_address),
    );
    registers.write_u32(
        FDIRDIP4M,
        FlowDirectorMasks::address_mask_register(masks.destination_address),
    );
    Ok(())
}

/// The FDIRCMD value that adds (or updates) a filter steering to `queue`.
pub fn add_command(flow_type: FlowType, queue: u8) -> u32 {
    (FlowDirectorCommand::ADD
        | FlowDirectorCommand::FILTER_UPDATE
        | FlowDirectorCommand::LAST
        | FlowDirectorCommand::QUEUE_ENABLE
        | flow_type.command_bits())
    .bits()
        | u32::from(queue) << FDIRCMD_QUEUE_SHIFT
}

/// Writes one perfect filter (Linux `ixgbe_fdir_write_perfect_filter_82599`) and waits for
/// the command to complete (10 x 10 us, Linux `ixgbe_fdir_check_cmd_complete`).
pub fn add_filter<M: Mmio, T: Timer>(
    registers: &M,
    timer: &T,
    filter: &PerfectFilter,
) -> Result<(), FlowDirectorError> {
    if registers.read_u32(FDIRFREE) & FDIRFREE_FREE_MASK == 0 {
        return Err(FlowDirectorError::TableFull);
    }
    let input = &filter.input;
    for word in 0..3 {
        registers.write_u32(fdirsipv6(word), 0);
    }
    // Addresses in network order (the register's bytes are the address's bytes).
    registers.write_u32(FDIRIPSA, u32::from_le_bytes(input.source_address));
    registers.write_u32(FDIRIPDA, u32::from_le_bytes(input.destination_address));
    registers.write_u32(
        FDIRPORT,
        u32::from(input.destination_port) << FDIRPORT_DESTINATION_SHIFT
            | u32::from(input.source_port),
    );
    registers.write_u32(
        FDIRVLAN,
        // Receive Flow Deliver masks the flex bytes off, so their byte order here (Linux
        // stores them through a double swap) is not exercised; VLAN id in host order.
        u32::from(input.flex_bytes) << FDIRVLAN_FLEX_SHIFT | u32::from(input.vlan_id),
    );
    registers.write_u32(
        FDIRHASH,
        u32::from(input.bucket_hash()) | u32::from(filter.soft_id) << FDIRHASH_SOFT_ID_SHIFT,
    );
    // Flush the filter registers before the command that consumes them.
    registers.read_u32(STATUS);
    registers.write_u32(FDIRCMD, add_command(input.flow_type, filter.queue));
    if poll(timer, 10, 10, || {
        registers.read_u32(FDIRCMD) & FDIRCMD_COMMAND_MASK == 0
    }) {
        Ok(())
    } else {
        Err(FlowDirectorError::CommandTimeout)
    }
}

/// Checks `done` up to `attempts` times, `interval_microseconds` apart; true once it holds.
pub(crate) fn poll<T: Timer>(
    timer: &T,
    attempts: u32,
    interval_microseconds: u64,
    mut done: impl FnMut() -> bool,
) -> bool {
    for _ in 0..attempts {
        if done() {
            return true;
        }
        timer.delay_microseconds(interval_microseconds);
    }
    done()
}
