//! Intel 82599 register offsets and bit fields used by this driver, by name.
//!
//! Section numbers are those of the "Intel 82599 10 GbE Controller Datasheet" (register
//! descriptions in chapter 8.2.3, initialisation in 4.6, receive in 7.1, transmit in 7.2).
//! Offsets and values were cross-checked against the Linux and DPDK ixgbe drivers and ixy
//! (see ../shared/FACTS.md); subsection numbers are given where known, the chapter otherwise.
//! Queue-indexed registers are functions of the queue index (0..16 here: RSS on the 82599
//! reaches at most 16 queues).

use bitflags::bitflags;

// ---- General control and status (8.2.3.1) -------------------------------------------------

/// Device Control (8.2.3.1.1).
pub const CTRL: usize = 0x00000;
/// Device Status (8.2.3.1.2); read to flush posted writes.
pub const STATUS: usize = 0x00008;
/// Extended Device Control (8.2.3.1.3).
pub const CTRL_EXT: usize = 0x00018;

bitflags! {
    /// CTRL bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Control: u32 {
        /// Link reset: resets the MAC/PHY link logic; self-clearing.
        const LINK_RESET = 1 << 3;
        /// Device (software) reset; self-clearing once the reset is done (4.2.1.x).
        const RESET = 1 << 26;
    }
}

/// Both reset bits, as ixy and Linux write them (`IXGBE_CTRL_RST_MASK` = 0x04000008).
pub const CONTROL_RESET_MASK: Control = Control::RESET.union(Control::LINK_RESET);

bitflags! {
    /// CTRL_EXT bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ExtendedControl: u32 {
        /// No-snoop disable: descriptor and buffer DMA stay snooped (coherent) on x86.
        const NO_SNOOP_DISABLE = 1 << 16;
    }
}

// ---- EEPROM / flash (8.2.3.2) --------------------------------------------------------------

/// EEPROM/Flash Control (8.2.3.2.1).
pub const EEC: usize = 0x10010;
/// EEC bit 9: the EEPROM auto-read after reset is done (4.6.3 step "wait for EEPROM").
pub const EEC_AUTO_READ_DONE: u32 = 1 << 9;

// ---- Interrupts (8.2.3.5) ------------------------------------------------------------------

/// Extended Interrupt Mask Clear: writing 1s masks those causes.
pub const EIMC: usize = 0x00888;
/// Every cause of EIMC (bit 31 is reserved).
pub const EIMC_ALL: u32 = 0x7FFF_FFFF;

// ---- Receive DMA (8.2.3.8) -----------------------------------------------------------------

/// Receive Descriptor Base Address Low/High, Length, Head, Tail, Control (8.2.3.8.1-8.2.3.8.6).
pub const fn rdbal(queue: usize) -> usize {
    0x01000 + 0x40 * queue
}
pub const fn rdbah(queue: usize) -> usize {
    0x01004 + 0x40 * queue
}
pub const fn rdlen(queue: usize) -> usize {
    0x01008 + 0x40 * queue
}
pub const fn rdh(queue: usize) -> usize {
    0x01010 + 0x40 * queue
}
pub const fn rdt(queue: usize) -> usize {
    0x01018 + 0x40 * queue
}
pub const fn rxdctl(queue: usize) -> usize {
    0x01028 + 0x40 * queue
}
/// Split and Replication Receive Control (8.2.3.8.7): queues 0..16 live at 0x02100.
pub const fn srrctl(queue: usize) -> usize {
    if queue < 16 {
        0x02100 + 4 * queue
    } else {
        0x01014 + 0x40 * queue
    }
}
/// Receive DCA control, queues 0..16 (8.2.3.11.1).
pub const fn dca_rxctrl(queue: usize) -> usize {
    0x02200 + 4 * queue
}
/// DCA_RXCTRL bit 12 must be cleared (ixy and Linux do: it is a relaxed-ordering bit that
/// defaults to 1 and is documented as "reserved, must be 0" for descriptor write-back).
pub const DCA_RXCTRL_RELAXED_WRITE_BACK: u32 = 1 << 12;

/// RXDCTL bit 25: queue enable; reads back set once the queue is running (4.6.7).
pub const RXDCTL_ENABLE: u32 = 1 << 25;

/// SRRCTL fields.
pub const SRRCTL_BSIZE_PACKET_MASK: u32 = 0x1F;
/// Packet buffer size is in 1 KiB units.
pub const SRRCTL_BSIZE_PACKET_UNIT: usize = 1024;
pub const SRRCTL_DESCTYPE_MASK: u32 = 0x7 << 25;
/// Advanced descriptors, one buffer (no header split).
pub const SRRCTL_DESCTYPE_ADVANCED_ONE_BUFFER: u32 = 0x1 << 25;
/// Drop a packet that finds no descriptor on this queue instead of holding the packet
/// buffer (and every other queue) hostage (7.1.2.10 / 8.2.3.8.7 DROP_EN).
pub const SRRCTL_DROP_ENABLE: u32 = 1 << 28;

/// Receive DMA Control (8.2.3.8.8).
pub const RDRXCTL: usize = 0x02F00;
/// RDRXCTL bit 1: strip the CRC in DMA (must agree with HLREG0.RXCRCSTRP).
pub const RDRXCTL_CRC_STRIP: u32 = 1 << 1;
/// RDRXCTL bit 3: DMA initialisation done after reset.
pub const RDRXCTL_DMA_INIT_DONE: u32 = 1 << 3;

/// Receive Packet Buffer Size, eight buffers (8.2.3.8.9); the value is the size in bytes
/// (KB << 10).
pub const fn rxpbsize(buffer: usize) -> usize {
    0x03C00 + 4 * buffer
}
/// The 82599's receive packet buffer memory, shared by RXPBSIZE(0..8) and Flow Director.
pub const RX_PACKET_BUFFER_BYTES: u32 = 512 * 1024;

/// Receive Control (8.2.3.8.10).
pub const RXCTRL: usize = 0x03000;
pub const RXCTRL_RX_ENABLE: u32 = 1 << 0;

/// Receive statistics queue mapping: 4 queues per register, one byte each naming the
/// statistics counter set of the queue (8.2.3.8.x, RQSMR).
pub const fn rqsmr(register: usize) -> usize {
    0x02300 + 4 * register
}

// ---- Receive filtering (8.2.3.7) -----------------------------------------------------------

/// Filter Control (8.2.3.7.1).
pub const FCTRL: usize = 0x05080;
bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FilterControl: u32 {
        const MULTICAST_PROMISCUOUS = 1 << 8;
        const UNICAST_PROMISCUOUS = 1 << 9;
        const BROADCAST_ACCEPT = 1 << 10;
    }
}

/// Receive Checksum Control; PCSD (bit 13) makes the descriptor carry the RSS hash instead
/// of the fragment checksum.
pub const RXCSUM: usize = 0x05000;
pub const RXCSUM_PACKET_CHECKSUM_DISABLE: u32 = 1 << 13;

/// Receive Address Low/High, entry 0 is the station MAC (8.2.3.7.8 / 8.2.3.7.9).
pub const fn ral(entry: usize) -> usize {
    0x0A200 + 8 * entry
}
pub const fn rah(entry: usize) -> usize {
    0x0A204 + 8 * entry
}
/// RAH bit 31: address valid.
pub const RAH_ADDRESS_VALID: u32 = 1 << 31;

/// Multiple Receive Queues Command (8.2.3.7.12).
pub const MRQC: usize = 0x05818;
bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MultipleReceiveQueues: u32 {
        /// MRQE = 0001b: RSS only (no DCB, no virtualisation).
        const RSS_ENABLE = 0x1;
        const HASH_TCP_IPV4 = 1 << 16;
        const HASH_IPV4 = 1 << 17;
        const HASH_IPV6 = 1 << 20;
        const HASH_TCP_IPV6 = 1 << 21;
        const HASH_UDP_IPV4 = 1 << 22;
        const HASH_UDP_IPV6 = 1 << 23;
    }
}

/// Redirection table, 32 registers of four 8-bit entries (7.1.2.8.2, 8.2.3.7.13).
pub const fn reta(register: usize) -> usize {
    0x05C00 + 4 * register
}
pub const RETA_REGISTERS: usize = 32;
/// RSS Random Key, ten registers, key bytes little-endian in each (8.2.3.7.14).
pub const fn rssrk(register: usize) -> usize {
    0x05C80 + 4 * register
}
pub const RSSRK_REGISTERS: usize = 10;
/// RETA entries on the 82599 name a 4-bit queue index.
pub const RETA_QUEUE_MASK: u8 = 0x0F;

// ---- Transmit (8.2.3.9) --------------------------------------------------------------------

pub const fn tdbal(queue: usize) -> usize {
    0x06000 + 0x40 * queue
}
pub const fn tdbah(queue: usize) -> usize {
    0x06004 + 0x40 * queue
}
pub const fn tdlen(queue: usize) -> usize {
    0x06008 + 0x40 * queue
}
pub const fn tdh(queue: usize) -> usize {
    0x06010 + 0x40 * queue
}
pub const fn tdt(queue: usize) -> usize {
    0x06018 + 0x40 * queue
}
pub const fn txdctl(queue: usize) -> usize {
    0x06028 + 0x40 * queue
}
/// TXDCTL: prefetch, host and write-back thresholds in [6:0], [14:8], [22:16]; enable bit 25.
pub const TXDCTL_THRESHOLD_MASK: u32 = 0x7F | (0x7F << 8) | (0x7F << 16);
/// ixy's and DPDK's thresholds: PTHRESH 36, HTHRESH 8, WTHRESH 4.
pub const TXDCTL_THRESHOLDS: u32 = 36 | (8 << 8) | (4 << 16);
pub const TXDCTL_ENABLE: u32 = 1 << 25;

/// Transmit Packet Buffer Size, eight buffers (8.2.3.9.x); 160 KB in buffer 0 without DCB.
pub const fn txpbsize(buffer: usize) -> usize {
    0x0CC00 + 4 * buffer
}
pub const TX_PACKET_BUFFER_BYTES: u32 = 160 * 1024;

/// DMA Tx TCP Max Allow Size Requests (8.2.3.9.x): 0xFFFF when DCB is off (4.6.11.x).
pub const DTXMXSZRQ: usize = 0x08100;
pub const DTXMXSZRQ_UNLIMITED: u32 = 0xFFFF;

/// DCB Transmit Descriptor Plane Control and Status; ARBDIS (bit 6) must be cleared when
/// DCB is off for the transmit arbiter to run (4.6.11.3.x).
pub const RTTDCS: usize = 0x04900;
pub const RTTDCS_ARBITER_DISABLE: u32 = 1 << 6;

/// DMA Tx Control; TE enables the transmit DMA of every queue.
pub const DMATXCTL: usize = 0x04A80;
pub const DMATXCTL_TRANSMIT_ENABLE: u32 = 1 << 0;

// ---- MAC (8.2.3.22) ------------------------------------------------------------------------

/// MAC Core Control 0.
pub const HLREG0: usize = 0x04240;
bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MacControl: u32 {
        /// Append the Ethernet CRC to transmitted frames.
        const TX_CRC_ENABLE = 1 << 0;
        /// Strip the Ethernet CRC from received frames.
        const RX_CRC_STRIP = 1 << 1;
        /// Pad short transmitted frames to 64 bytes.
        const TX_PAD_ENABLE = 1 << 10;
        /// MAC loopback: transmitted frames come back to the receive path (for self-tests).
        const LOOPBACK = 1 << 15;
    }
}

/// Auto-Negotiation Control (8.2.3.22.19).
pub const AUTOC: usize = 0x042A0;
pub const AUTOC_RESTART_AUTONEGOTIATION: u32 = 1 << 12;
/// Link mode select [15:13]; 011b = 10G serial (KR/SFI), as ixy and Linux use on SFP+ ports.
pub const AUTOC_LINK_MODE_MASK: u32 = 0x7 << 13;
pub const AUTOC_LINK_MODE_10G_SERIAL: u32 = 0x3 << 13;
/// 10G PMA/PMD [8:7]; 00b = XAUI (ixy's choice, ignored in serial mode).
pub const AUTOC_10G_PMA_PMD_MASK: u32 = 0x3 << 7;

/// Link Status (8.2.3.22.20).
pub const LINKS: usize = 0x042A4;
pub const LINKS_UP: u32 = 1 << 30;
pub const LINKS_SPEED_MASK: u32 = 0x3 << 28;
pub const LINKS_SPEED_10G: u32 = 0x3 << 28;
pub const LINKS_SPEED_1G: u32 = 0x2 << 28;
pub const LINKS_SPEED_100M: u32 = 0x1 << 28;

// ---- Security block (8.2.3.x) --------------------------------------------------------------

/// Security Rx Control: RX_DIS (bit 1) stops the receive security path while RXEN changes
/// (Linux `ixgbe_disable_sec_rx_path`).
pub const SECRXCTRL: usize = 0x08D00;
pub const SECRXCTRL_RX_DISABLE: u32 = 1 << 1;
/// Security Rx Status: RDY (bit 0) once the security path is idle.
pub const SECRXSTAT: usize = 0x08D04;
pub const SECRXSTAT_READY: u32 = 1 << 0;

// ---- Flow Director (7.1.2.7, registers 8.2.3.21) -------------------------------------------

/// Flow Director Control.
pub const FDIRCTRL: usize = 0x0EE00;
/// PBALLOC [1:0]: 1 = 64 KB of filter memory (2046 perfect filters).
pub const FDIRCTRL_PBALLOC_64K: u32 = 0x1;
pub const FDIRCTRL_PBALLOC_MASK: u32 = 0x3;
pub const FDIRCTRL_INIT_DONE: u32 = 1 << 3;
pub const FDIRCTRL_PERFECT_MATCH: u32 = 1 << 4;
/// Report the filter id in the receive descriptor of a matching packet (FLM status bit).
pub const FDIRCTRL_REPORT_STATUS: u32 = 1 << 5;
pub const FDIRCTRL_DROP_QUEUE_SHIFT: u32 = 8;
pub const FDIRCTRL_FLEX_OFFSET_SHIFT: u32 = 16;
pub const FDIRCTRL_MAX_LENGTH_SHIFT: u32 = 24;
pub const FDIRCTRL_FULL_THRESHOLD_SHIFT: u32 = 28;
/// Bucket hash key and signature key (Linux `IXGBE_ATR_BUCKET_HASH_KEY`/`SIGNATURE_HASH_KEY`).
pub const FDIRHKEY: usize = 0x0EE68;
pub const FDIRSKEY: usize = 0x0EE6C;
pub const FLOW_DIRECTOR_BUCKET_HASH_KEY: u32 = 0x3DAD_14E2;
pub const FLOW_DIRECTOR_SIGNATURE_HASH_KEY: u32 = 0x174D_3614;

/// Global masks (1 = ignore this field).
pub const FDIRM: usize = 0x0EE70;
bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FlowDirectorIgnore: u32 {
        const VLAN_ID = 0x01;
        const VLAN_PRIORITY = 0x02;
        const POOL = 0x04;
        const L4_PROTOCOL = 0x08;
        const FLEX = 0x10;
        const DESTINATION_IPV6 = 0x20;
    }
}
/// Port masks: the bitwise NOT of the masks after each 16-bit half is bit-reversed;
/// destination port [31:16], source port [15:0].
pub const FDIRTCPM: usize = 0x0EE44;
pub const FDIRUDPM: usize = 0x0EE48;
/// IPv4 address masks, NOT of the mask in network byte order.
pub const FDIRSIP4M: usize = 0x0EE40;
pub const FDIRDIP4M: usize = 0x0EE3C;

/// Filter programming registers.
pub const fn fdirsipv6(word: usize) -> usize {
    0x0EE0C + 4 * word
}
pub const FDIRIPSA: usize = 0x0EE18;
pub const FDIRIPDA: usize = 0x0EE1C;
pub const FDIRPORT: usize = 0x0EE20;
pub const FDIRPORT_DESTINATION_SHIFT: u32 = 16;
pub const FDIRVLAN: usize = 0x0EE24;
pub const FDIRVLAN_FLEX_SHIFT: u32 = 16;
pub const FDIRHASH: usize = 0x0EE28;
pub const FDIRHASH_SOFT_ID_SHIFT: u32 = 16;
pub const FDIRCMD: usize = 0x0EE2C;
bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FlowDirectorCommand: u32 {
        const ADD = 0x1;
        const REMOVE = 0x2;
        const QUERY = 0x3;
        const FILTER_VALID = 0x4;
        const FILTER_UPDATE = 0x8;
        /// L4 type [6:5]: TCP = 2.
        const L4_TCP = 0x2 << 5;
        const L4_UDP = 0x1 << 5;
        const IPV6 = 0x80;
        const CLEAR_HASH_TABLE = 0x100;
        const DROP = 0x200;
        /// Last command of a series (Linux sets it on every add).
        const LAST = 0x800;
        const QUEUE_ENABLE = 0x8000;
    }
}
/// CMD [1:0]: reads 0 once the command has completed.
pub const FDIRCMD_COMMAND_MASK: u32 = 0x3;
pub const FDIRCMD_QUEUE_SHIFT: u32 = 16;
pub const FDIRCMD_QUEUE_MASK: u32 = 0x7F << 16;
/// Free filters [15:0] and the collision count [30:16] (Linux `IXGBE_FDIRFREE_*`).
pub const FDIRFREE: usize = 0x0EE38;
pub const FDIRFREE_FREE_MASK: u32 = 0xFFFF;
pub const FDIRFREE_COLLISIONS_SHIFT: u32 = 16;
pub const FDIRFREE_COLLISIONS_MASK: u32 = 0x7FFF << 16;
/// Adds [15:0] and removes [31:16] (clear on read).
pub const FDIRUSTAT: usize = 0x0EE50;
/// Failed adds [7:0] and failed removes [15:8] (clear on read).
pub const FDIRFSTAT: usize = 0x0EE54;
/// Packets that matched / missed a filter (clear on read).
pub const FDIRMATCH: usize = 0x0EE58;
pub const FDIRMISS: usize = 0x0EE5C;

// ---- Statistics (8.2.3.23), all clear on read ----------------------------------------------

pub const CRCERRS: usize = 0x04000;
/// Missed packets per packet buffer (no room in the packet buffer).
pub const fn mpc(buffer: usize) -> usize {
    0x03FA0 + 4 * buffer
}
/// Receive-no-buffers per packet buffer.
pub const fn rnbc(buffer: usize) -> usize {
    0x03FC0 + 4 * buffer
}
pub const GPRC: usize = 0x04074;
pub const GPTC: usize = 0x04080;
/// Good octets received/transmitted, low then high half (reading the high half clears).
pub const GORCL: usize = 0x04088;
pub const GORCH: usize = 0x0408C;
pub const GOTCL: usize = 0x04090;
pub const GOTCH: usize = 0x04094;
/// Per statistics-set receive drops with DROP_EN (mapped by RQSMR).
pub const fn qprdc(set: usize) -> usize {
    0x01430 + 0x40 * set
}

// ---- Descriptors (7.1.6 receive, 7.2.3.2.4 transmit) ---------------------------------------

/// Both descriptor kinds are 16 bytes; ring lengths are multiples of 128 bytes (8 entries).
pub const DESCRIPTOR_BYTES: usize = 16;
pub const RING_LENGTH_ALIGNMENT: usize = 128;

/// Advanced receive descriptor, read format (7.1.6.1): packet buffer address at 0, header
/// buffer address at 8 (0 here; it also clears DD, which lives in the same dword).
pub const RX_READ_PACKET_ADDRESS: usize = 0;
pub const RX_READ_HEADER_ADDRESS: usize = 8;
/// Advanced receive descriptor, write-back format (7.1.6.2).
pub const RX_WB_PACKET_INFO: usize = 0;
pub const RX_WB_RSS_HASH: usize = 4;
pub const RX_WB_STATUS_ERROR: usize = 8;
pub const RX_WB_LENGTH: usize = 12;
bitflags! {
    /// Extended status [19:0] and extended errors [31:20] of dword 2.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ReceiveStatus: u32 {
        const DESCRIPTOR_DONE = 1 << 0;
        const END_OF_PACKET = 1 << 1;
        /// Flow Director match: dword 1 holds the filter's soft id and bucket hash.
        const FLOW_DIRECTOR_MATCH = 1 << 2;
        const FLOW_DIRECTOR_LENGTH_ERROR = 1 << 20;
        const FLOW_DIRECTOR_DROP_ERROR = 1 << 21;
        const FLOW_DIRECTOR_COLLISION = 1 << 22;
        /// CRC, symbol, undersize/oversize or length error (FCTRL.SBP only).
        const RX_ERROR = 1 << 29;
        const L4_CHECKSUM_ERROR = 1 << 30;
        const IPV4_CHECKSUM_ERROR = 1 << 31;
    }
}
/// RSS type [3:0] of dword 0: 0x1 TCP/IPv4, 0x2 IPv4, 0xF with a Flow Director match.
pub const RX_WB_RSS_TYPE_MASK: u32 = 0xF;
pub const RSS_TYPE_TCP_IPV4: u32 = 0x1;
pub const RSS_TYPE_IPV4: u32 = 0x2;
pub const RSS_TYPE_FLOW_DIRECTOR_MATCH: u32 = 0xF;

/// Advanced transmit data descriptor (7.2.3.2.4): buffer address at 0, command/type/length
/// at 8, offload info and payload length at 12; the write-back status is at 12.
pub const TX_BUFFER_ADDRESS: usize = 0;
pub const TX_COMMAND_TYPE_LENGTH: usize = 8;
pub const TX_OFFLOAD_STATUS: usize = 12;
pub const TX_LENGTH_MASK: u32 = 0xFFFF;
bitflags! {
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct TransmitCommand: u32 {
        /// DTYP = 0011b: advanced data descriptor.
        const DATA_DESCRIPTOR = 0x3 << 20;
        const END_OF_PACKET = 1 << 24;
        const INSERT_FCS = 1 << 25;
        const REPORT_STATUS = 1 << 27;
        const DESCRIPTOR_EXTENSION = 1 << 29;
    }
}
pub const TX_DTYP_MASK: u32 = 0xF << 20;
pub const TX_PAYLOAD_LENGTH_SHIFT: u32 = 14;
/// Write-back: DD in bit 0 of dword 3.
pub const TX_STATUS_DESCRIPTOR_DONE: u32 = 1 << 0;
