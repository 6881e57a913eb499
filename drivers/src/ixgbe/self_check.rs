//! The one-boot self-check for users with an 82599 (`ixgbe.selftest=1`): in the MAC's
//! internal loopback (HLREG0.LPBK), frames built to hit each queue's Flow Director filter and
//! each RSS bucket are sent, and each must come back on the queue the steering promises.
//!
//! The caller says what to send and where it must land (it knows the RSS key, the table and
//! the filters it installed); this module only sends, waits with a bound, and reports.

use alloc::vec::Vec;
use core::net::SocketAddrV4;

use super::device::Ixgbe;
use super::queue::IxgbeQueue;
use crate::hal::{DmaRegion, Mmio, Timer};
use crate::nic::{MacAddress, NicQueue, QueueId};

/// What a check exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A reply that a Flow Director filter must steer.
    FlowDirectorFilter,
    /// A packet that RSS must steer (its redirection-table index).
    RssBucket { index: u8 },
}

/// One frame to send and the queue it must arrive on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckFrame {
    pub kind: CheckKind,
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub expected_queue: QueueId,
}

/// What happened to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub frame: CheckFrame,
    /// The queue it came back on, or `None` if it did not come back within the wait.
    pub arrived_on: Option<QueueId>,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.arrived_on == Some(self.frame.expected_queue)
    }
}

/// The frames of the standard check: for each core, a reply from `backend` to the local port
/// `local_port_base + core` (whose low bits name the core, so `local_port_base` must have
/// those bits clear) that the filters must put on that core's queue; and for each of the 128
/// RSS buckets a client packet to `listener` whose port XOR selects that bucket under the
/// port-only key, expected where `rss_queue` (the stack's Receive Flow Deliver) says.
pub fn standard_frames(
    cores: u16,
    backend: SocketAddrV4,
    local_address: core::net::Ipv4Addr,
    local_port_base: u16,
    listener: SocketAddrV4,
    rss_queue: impl Fn(SocketAddrV4, SocketAddrV4) -> QueueId,
) -> Vec<CheckFrame> {
    let mut frames: Vec<CheckFrame> = (0..cores)
        .map(|core| CheckFrame {
            kind: CheckKind::FlowDirectorFilter,
            source: backend,
            destination: SocketAddrV4::new(local_address, local_port_base + core),
            expected_queue: QueueId(core),
        })
        .collect();
    for index in 0..128u8 {
        // Bucket index = bitrev7(port XOR), so the port XOR of bucket i is bitrev7(i).
        let port_xor = u16::from(index.reverse_bits() >> 1);
        let client = SocketAddrV4::new(
            core::net::Ipv4Addr::new(192, 0, 2, 1),
            (50000 & !0x7f) | ((port_xor ^ listener.port()) & 0x7f),
        );
        frames.push(CheckFrame {
            kind: CheckKind::RssBucket { index },
            source: client,
            destination: listener,
            expected_queue: rss_queue(client, listener),
        });
    }
    frames
}

/// Polls per frame, 10 us apart: 10 ms for a frame to come back.
const POLLS_PER_FRAME: u32 = 1000;

/// A TCP/IPv4 SYN to our own MAC (so that the loopback frame passes the MAC filter) whose
/// payload-less header carries `tag` as its sequence number.
fn check_frame(mac: MacAddress, frame: &CheckFrame, tag: u32) -> [u8; 54] {
    let mut bytes = [0u8; 54];
    bytes[0..6].copy_from_slice(&mac.0);
    bytes[6..12].copy_from_slice(&mac.0);
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut bytes[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&frame.source.ip().octets());
    ip[16..20].copy_from_slice(&frame.destination.ip().octets());
    // RFC 791 header checksum, so that nothing on the way has a reason to drop it.
    let sum = ip
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum::<u32>();
    let folded = (sum & 0xFFFF) + (sum >> 16);
    let checksum = !((folded & 0xFFFF) + (folded >> 16)) as u16;
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let tcp = &mut bytes[34..54];
    tcp[0..2].copy_from_slice(&frame.source.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&frame.destination.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&tag.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02;
    bytes
}

fn tag_of(frame: &[u8]) -> Option<u32> {
    let bytes = frame.get(38..42)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Sends every frame from queue 0 in MAC loopback and reports where each came back. The
/// queues must be all of the NIC's, in order; loopback is switched off again at the end.
pub fn run<M: Mmio + Clone, R: DmaRegion, T: Timer>(
    nic: &mut Ixgbe<M, R, T>,
    queues: &mut [IxgbeQueue<M, R>],
    timer: &T,
    frames: &[CheckFrame],
) -> Vec<CheckResult> {
    let mac = nic.mac();
    nic.set_loopback(true);
    let mut results = Vec::with_capacity(frames.len());
    for (index, frame) in frames.iter().enumerate() {
        let tag = 0x5E1F_0000 | index as u32;
        let bytes = check_frame(mac, frame, tag);
        let mut arrived_on = None;
        if let Some(sender) = queues.first_mut()
            && sender
                .transmit(bytes.len(), |buffer| buffer.copy_from_slice(&bytes))
                .is_ok()
        {
            sender.tx_flush();
            'wait: for _ in 0..POLLS_PER_FRAME {
                for queue in queues.iter_mut() {
                    let mut seen = false;
                    queue.rx_burst(32, &mut |received| seen |= tag_of(received) == Some(tag));
                    if seen {
                        arrived_on = Some(queue.id());
                        break 'wait;
                    }
                }
                timer.delay_microseconds(10);
            }
        }
        results.push(CheckResult {
            frame: *frame,
            arrived_on,
        });
    }
    for queue in queues.iter_mut() {
        queue.tx_flush();
    }
    nic.set_loopback(false);
    results
}
