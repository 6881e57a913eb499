//! The self-test's simulated multi-queue NIC: the wire between the appliance's cores and the peers, each core's queue pair on it, and the peers themselves.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use smoltcp::wire::EthernetAddress;

use super::scenario::Steering;
use super::{APPLIANCE_MAC, interface_config, tcp_config};
use crate::net::interface::{Interface, SinkFull};
use crate::net::rfd::CoreId;
use crate::net::rss::{IndirectionTable, RssKey, ToeplitzTable};
use crate::net::tcp::TcpLayer;
use crate::runtime::QueuePair;
use crate::socket::SharedTcpLayer;
use crate::time::Instant;

/// How a simulated NIC picks the receive queue of a frame (shared with the host harness in
/// kernel/tests/partition, so both simulate the same NIC).
pub struct FrameSteering {
    steering: Steering,
    table: IndirectionTable,
    hasher: ToeplitzTable,
}

impl FrameSteering {
    /// RSS uses the port-only key and `table`, the same that Receive Flow Deliver assumes.
    pub fn new(steering: Steering, table: IndirectionTable) -> FrameSteering {
        FrameSteering {
            steering,
            table,
            hasher: ToeplitzTable::new(RssKey::PORT_ONLY),
        }
    }

    /// The queue (of `queues`) for `frame`; `random` draws it under random steering.
    pub fn queue_for(&self, frame: &[u8], random: &mut u64, queues: usize) -> usize {
        if self.steering == Steering::Random {
            *random = mix(random.wrapping_add(0x9e37_79b9_7f4a_7c15));
            return (*random % queues as u64) as usize;
        }
        // Ethernet 14 + IPv4 20 (no options are sent) + TCP ports.
        let is_tcp = frame.len() >= 38 && frame[12..14] == [0x08, 0x00] && frame[23] == 6;
        if !is_tcp {
            return 0;
        }
        let source = Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]);
        let destination = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
        let source_port = u16::from_be_bytes([frame[34], frame[35]]);
        let destination_port = u16::from_be_bytes([frame[36], frame[37]]);
        let hash = self
            .hasher
            .hash_ipv4_tcp(source, destination, source_port, destination_port);
        self.table.queue_for_hash(hash).index()
    }
}

/// The simulated NIC and the wire behind it: a queue per appliance core and an inbox per
/// peer, shared by all cores.
pub(super) struct Wire {
    steering: FrameSteering,
    queues: Vec<spin::Mutex<VecDeque<Vec<u8>>>>,
    clients: Vec<spin::Mutex<VecDeque<Vec<u8>>>>,
    backends: Vec<spin::Mutex<VecDeque<Vec<u8>>>>,
}

impl Wire {
    pub(super) fn new(steering: Steering, table: IndirectionTable, cores: usize) -> Wire {
        let inboxes = || {
            (0..cores)
                .map(|_| spin::Mutex::new(VecDeque::new()))
                .collect()
        };
        Wire {
            steering: FrameSteering::new(steering, table),
            queues: inboxes(),
            clients: inboxes(),
            backends: inboxes(),
        }
    }

    /// Puts a frame on the wire; `random` draws the queue under random steering.
    pub(super) fn send(&self, frame: Vec<u8>, from_appliance: bool, random: &mut u64) {
        let destination = &frame[..6];
        if destination == APPLIANCE_MAC.0 || (destination == [0xff; 6] && !from_appliance) {
            let queue = self.steering.queue_for(&frame, random, self.queues.len());
            self.queues[queue].lock().push_back(frame);
        } else if destination == [0xff; 6] {
            for peer in self.clients.iter().chain(&self.backends) {
                peer.lock().push_back(frame.clone());
            }
        } else if destination[..3] == [0x02, 0, 0] && destination[4] == 0 {
            let index = usize::from(destination[5]).wrapping_sub(1);
            let peers = match destination[3] {
                1 => &self.clients,
                _ => &self.backends,
            };
            if let Some(peer) = peers.get(index) {
                peer.lock().push_back(frame);
            }
        }
    }
}

/// One appliance core's queue pair on the simulated NIC.
pub(super) struct WireQueue {
    pub(super) wire: Arc<Wire>,
    pub(super) core: usize,
    pub(super) random: u64,
    pub(super) to_send: Vec<Vec<u8>>,
}

impl QueuePair for WireQueue {
    fn receive_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        let mut handed = 0;
        while handed < max_frames {
            // The lock is released before the handler runs.
            let Some(frame) = self.wire.queues[self.core].lock().pop_front() else {
                break;
            };
            handler(&frame);
            handed += 1;
        }
        handed
    }

    fn transmit(&mut self, length: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), SinkFull> {
        let mut frame = vec![0; length];
        fill(&mut frame);
        self.to_send.push(frame);
        Ok(())
    }

    fn flush(&mut self) {
        for frame in self.to_send.drain(..) {
            self.wire.send(frame, true, &mut self.random);
        }
    }

    fn enable_interrupts(&mut self) -> bool {
        !self.wire.queues[self.core].lock().is_empty()
    }

    fn disable_interrupts(&mut self) {}
}

/// SplitMix64's finaliser.
pub(super) fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A peer machine on the wire: its interface and its layer.
pub(super) struct Peer {
    interface: Interface,
    pub(super) tcp: SharedTcpLayer,
    index: usize,
    is_client: bool,
}

impl Peer {
    pub(super) fn new(
        address: Ipv4Addr,
        mac: EthernetAddress,
        secret: u8,
        index: usize,
        is_client: bool,
        now: Instant,
    ) -> Peer {
        let tcp = TcpLayer::new(tcp_config(), CoreId(0), [secret; 16]).into_shared();
        Peer {
            interface: Interface::new(interface_config(address, mac), tcp.clone(), now),
            tcp,
            index,
            is_client,
        }
    }

    /// Receives what arrived and transmits what is ready; true if anything moved.
    pub(super) fn turn(&mut self, now: Instant, wire: &Wire, random: &mut u64) -> bool {
        let inboxes = if self.is_client {
            &wire.clients
        } else {
            &wire.backends
        };
        let arrived = core::mem::take(&mut *inboxes[self.index].lock());
        let mut moved = !arrived.is_empty();
        for frame in arrived {
            self.interface.receive(now, &frame);
        }
        let mut sink = Vec::new();
        self.interface.poll(now, &mut sink);
        for frame in sink {
            wire.send(frame, false, random);
            moved = true;
        }
        moved
    }
}
