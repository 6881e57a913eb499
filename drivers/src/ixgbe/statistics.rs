//! The 82599's device counters (datasheet 8.2.3.23 and the Flow Director statistics of
//! 8.2.3.21), which clear on read: a reader accumulates them into 64-bit totals.
//!
//! Reading touches only statistics registers, never a queue's, so it can run on any core
//! at any time without disturbing the data path.

use super::registers::*;
use crate::hal::Mmio;

/// Totals since bring-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IxgbeStatistics {
    /// Good packets and octets received and transmitted (GPRC/GORC, GPTC/GOTC).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets missed for lack of room in the packet buffer (MPC, all buffers).
    pub rx_missed: u64,
    /// Packets that found no receive descriptor (RNBC, all buffers).
    pub rx_no_buffer: u64,
    /// Packets dropped by DROP_EN queues that had no descriptor (QPRDC, all queues).
    pub rx_queue_drops: u64,
    pub crc_errors: u64,
    /// Packets that matched / missed a Flow Director filter.
    pub flow_director_matches: u64,
    pub flow_director_misses: u64,
    /// Filter adds and removes the device performed, and those it refused.
    pub flow_director_adds: u64,
    pub flow_director_removes: u64,
    pub flow_director_failed_adds: u64,
    /// Filters sharing a bucket with another (FDIRFREE.COLL, a level, not a total).
    pub flow_director_collisions: u64,
    /// Free perfect filters (FDIRFREE.FREE, a level).
    pub flow_director_free: u64,
}

/// Accumulates the clear-on-read counters of one port.
pub struct StatisticsReader<M: Mmio> {
    registers: M,
    totals: IxgbeStatistics,
}

impl<M: Mmio> StatisticsReader<M> {
    pub fn new(registers: M) -> Self {
        StatisticsReader {
            registers,
            totals: IxgbeStatistics::default(),
        }
    }

    /// Forgets the totals (after the first read that clears the registers at bring-up).
    pub fn reset_totals(&mut self) {
        self.totals = IxgbeStatistics::default();
    }

    /// Reads every counter once and returns the updated totals.
    pub fn read(&mut self) -> IxgbeStatistics {
        let r = &self.registers;
        let read = |offset| u64::from(r.read_u32(offset));
        // The 36-bit octet counters: low half first, the high read clears both.
        let octets = |low, high| read(low) | (read(high) & 0xF) << 32;
        let t = &mut self.totals;
        t.rx_packets += read(GPRC);
        t.rx_bytes += octets(GORCL, GORCH);
        t.tx_packets += read(GPTC);
        t.tx_bytes += octets(GOTCL, GOTCH);
        for buffer in 0..8 {
            t.rx_missed += read(mpc(buffer));
            t.rx_no_buffer += read(rnbc(buffer));
        }
        for set in 0..16 {
            t.rx_queue_drops += read(qprdc(set));
        }
        t.crc_errors += read(CRCERRS);
        t.flow_director_matches += read(FDIRMATCH);
        t.flow_director_misses += read(FDIRMISS);
        let updates = read(FDIRUSTAT);
        t.flow_director_adds += updates & 0xFFFF;
        t.flow_director_removes += updates >> 16;
        t.flow_director_failed_adds += read(FDIRFSTAT) & 0xFF;
        let free = r.read_u32(FDIRFREE);
        t.flow_director_free = u64::from(free & FDIRFREE_FREE_MASK);
        t.flow_director_collisions =
            u64::from((free & FDIRFREE_COLLISIONS_MASK) >> FDIRFREE_COLLISIONS_SHIFT);
        *t
    }

    /// The totals as of the last [`read`](Self::read).
    pub fn totals(&self) -> IxgbeStatistics {
        self.totals
    }
}
