//! The baseline the partition is measured against: one TCP layer, one listen table and one established table for all cores, behind one lock, as in the Linux design.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::time::Duration;

use smoltcp::wire::{EthernetAddress, EthernetProtocol, IpAddress, IpProtocol, TcpPacket};

use super::counters::PartitionCounters;
use super::dispatcher::{ForwardReason, RING_DRAIN_BATCH, RingFrame};
use super::frame_summary::FrameSummary;
use crate::net::arp::{self, ArpMessage};
use crate::net::ethernet;
use crate::net::interface::{FrameSink, Interface};
use crate::net::ipv4;
use crate::net::rfd::CoreId;
use crate::net::tcp::TcpLayer;
use crate::sync::mesh::CoreRings;
use crate::time::Instant;

/// Packets waiting for an ARP answer on one core; beyond it the oldest is dropped.
const PARKED_CAPACITY: usize = 256;
/// How long a packet waits for an ARP answer.
const PARKED_LIFETIME: Duration = Duration::from_secs(3);

/// All TCBs and listeners of the host, shared by every core.
pub struct SharedTables {
    layer: spin::Mutex<TcpLayer>,
}

impl SharedTables {
    /// Shares `layer`; `address` is the source address of the connections it opens.
    pub fn new(mut layer: TcpLayer, address: Ipv4Addr) -> Arc<SharedTables> {
        layer.set_source_address(address);
        Arc::new(SharedTables {
            layer: spin::Mutex::new(layer),
        })
    }

    /// The one lock: every segment, timer tick and socket call of every core goes through it.
    pub fn lock(&self) -> spin::MutexGuard<'_, TcpLayer> {
        self.layer.lock()
    }
}

/// An outgoing segment copied out of the shared layer, so the lock is not held while framing.
struct StagedSegment {
    source: Ipv4Addr,
    destination: Ipv4Addr,
    start: usize,
    len: usize,
}

/// An IPv4 packet whose next hop this core's ARP cache does not know yet.
struct ParkedPacket {
    next_hop: Ipv4Addr,
    packet: Vec<u8>,
    since: Instant,
}

/// One core in the shared-table mode. Its interface answers ARP and ICMP echo as in the
/// partitioned mode (its own TCP layer stays idle); TCP segments go to the shared layer.
/// ICMP errors about TCP reach only the idle layer in this mode: it is a baseline for
/// measurement, not a mode to run an appliance in.
pub struct SharedCore {
    core: CoreId,
    interface: Interface,
    tables: Arc<SharedTables>,
    rings: CoreRings<RingFrame>,
    counters: PartitionCounters,
    staged: Vec<StagedSegment>,
    staged_bytes: Vec<u8>,
    parked: VecDeque<ParkedPacket>,
    last_request: hashbrown::HashMap<Ipv4Addr, Instant>,
    inbound: Vec<RingFrame>,
    /// Packets dropped because no ARP answer came in time or too many waited.
    pub unresolved_drops: u64,
}

impl SharedCore {
    /// `rings` carry only copies of ARP frames in this mode.
    pub fn new(
        interface: Interface,
        tables: Arc<SharedTables>,
        rings: CoreRings<RingFrame>,
    ) -> SharedCore {
        SharedCore {
            core: rings.core(),
            interface,
            tables,
            rings,
            counters: PartitionCounters::default(),
            staged: Vec::new(),
            staged_bytes: Vec::new(),
            parked: VecDeque::new(),
            last_request: hashbrown::HashMap::new(),
            inbound: Vec::new(),
            unresolved_drops: 0,
        }
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    pub fn tables(&self) -> &Arc<SharedTables> {
        &self.tables
    }

    pub fn interface(&self) -> &Interface {
        &self.interface
    }

    pub fn counters(&self) -> &PartitionCounters {
        &self.counters
    }

    /// One frame from this core's NIC queue.
    pub fn on_frame_from_nic(&mut self, now: Instant, frame: &[u8]) {
        self.counters.frames_from_nic += 1;
        match FrameSummary::of(frame) {
            FrameSummary::Tcp(_) => {
                self.counters.arrived_on_owner += 1;
                if !self.deliver_tcp(now, frame) {
                    // Not for us or damaged: let the interface count why.
                    self.interface.receive(now, frame);
                }
            }
            FrameSummary::Arp => {
                self.interface.receive(now, frame);
                for other in (0..self.rings.core_count() as u16).map(CoreId) {
                    if other != self.core {
                        self.counters.arp_copies_sent += 1;
                        let copy = RingFrame {
                            reason: ForwardReason::ArpCopy,
                            bytes: frame.to_vec(),
                        };
                        if self.rings.try_send(other, copy).is_err() {
                            self.counters.ring_drops += 1;
                        }
                    }
                }
            }
            // The baseline shares only TCP's tables: UDP is handled where it lands, by the
            // receiving core's own UDP layer.
            FrameSummary::IcmpErrorAboutTcp(_)
            | FrameSummary::Udp { .. }
            | FrameSummary::IcmpErrorAboutUdp { .. }
            | FrameSummary::Other => self.interface.receive(now, frame),
        }
    }

    /// Checks the frame as the interface would and hands the segment to the shared layer.
    fn deliver_tcp(&mut self, now: Instant, frame: &[u8]) -> bool {
        let config = *self.interface.config();
        let Ok(ethernet) = ethernet::parse(frame, config.hardware_address) else {
            return false;
        };
        let Ok(packet) = ipv4::parse(ethernet.payload, &config.ipv4) else {
            return false;
        };
        if packet.protocol != IpProtocol::Tcp || packet.destination != config.ipv4.address {
            return false;
        }
        let checksum_ok = TcpPacket::new_unchecked(packet.payload).verify_checksum(
            &IpAddress::Ipv4(packet.source),
            &IpAddress::Ipv4(packet.destination),
        );
        if !checksum_ok {
            return false;
        }
        self.counters.segments_processed += 1;
        self.tables
            .lock()
            .on_segment(now, packet.source, packet.destination, packet.payload);
        true
    }

    /// ARP copies from the other cores.
    pub fn drain_inbound(&mut self, now: Instant) -> usize {
        let mut batch = core::mem::take(&mut self.inbound);
        let moved = self.rings.drain_inbound(&mut batch, RING_DRAIN_BATCH);
        self.counters.received_from_rings += moved as u64;
        for frame in batch.drain(..) {
            self.interface.observe_arp(now, &frame.bytes);
        }
        self.inbound = batch;
        moved
    }

    /// Fires the shared layer's due timers, takes whatever it queued (from any core's calls)
    /// and sends it from this core, with ARP and echo replies.
    pub fn poll(&mut self, now: Instant, sink: &mut impl FrameSink) {
        self.interface.poll(now, sink);
        {
            let mut layer = self.tables.lock();
            layer.advance_time(now);
            if layer
                .next_deadline()
                .is_some_and(|deadline| deadline <= now)
            {
                layer.on_timers(now);
            }
            let staged = &mut self.staged;
            let bytes = &mut self.staged_bytes;
            layer.drain_output(|segment| {
                staged.push(StagedSegment {
                    source: segment.source,
                    destination: segment.destination,
                    start: bytes.len(),
                    len: segment.tcp.len(),
                });
                bytes.extend_from_slice(segment.tcp);
            });
        }
        let staged = core::mem::take(&mut self.staged);
        for segment in &staged {
            let start = segment.start;
            let tcp = &self.staged_bytes[start..start + segment.len];
            let mut packet = alloc::vec![0u8; ipv4::HEADER_LEN + tcp.len()];
            ipv4::write_header(
                &mut packet,
                segment.source,
                segment.destination,
                IpProtocol::Tcp,
                tcp.len(),
            )
            .copy_from_slice(tcp);
            self.send_packet(now, segment.destination, packet, sink);
        }
        self.staged = staged;
        self.staged.clear();
        self.staged_bytes.clear();
        self.retry_parked(now, sink);
    }

    fn send_packet(
        &mut self,
        now: Instant,
        destination: Ipv4Addr,
        packet: Vec<u8>,
        sink: &mut impl FrameSink,
    ) {
        let Some(next_hop) = self.interface.config().ipv4.next_hop(destination) else {
            self.unresolved_drops += 1;
            return;
        };
        match self.interface.arp_cache().lookup(now, next_hop) {
            Some(hardware) => self.transmit(sink, hardware, EthernetProtocol::Ipv4, &packet),
            None => {
                if self.parked.len() >= PARKED_CAPACITY {
                    self.parked.pop_front();
                    self.unresolved_drops += 1;
                }
                self.parked.push_back(ParkedPacket {
                    next_hop,
                    packet,
                    since: now,
                });
                self.request(now, next_hop, sink);
            }
        }
    }

    fn retry_parked(&mut self, now: Instant, sink: &mut impl FrameSink) {
        for _ in 0..self.parked.len() {
            let Some(parked) = self.parked.pop_front() else {
                break;
            };
            match self.interface.arp_cache().lookup(now, parked.next_hop) {
                Some(hardware) => {
                    self.transmit(sink, hardware, EthernetProtocol::Ipv4, &parked.packet)
                }
                None if now.saturating_since(parked.since) > PARKED_LIFETIME => {
                    self.unresolved_drops += 1
                }
                None => {
                    self.request(now, parked.next_hop, sink);
                    self.parked.push_back(parked);
                }
            }
        }
    }

    /// An ARP request for `target`, at most one a second (RFC 1122 section 2.3.2.1).
    fn request(&mut self, now: Instant, target: Ipv4Addr, sink: &mut impl FrameSink) {
        if self
            .last_request
            .get(&target)
            .is_some_and(|&last| now.saturating_since(last) < arp::REQUEST_INTERVAL)
        {
            return;
        }
        self.last_request.insert(target, now);
        let config = *self.interface.config();
        let message = ArpMessage::request(config.hardware_address, config.ipv4.address, target);
        let mut payload = [0u8; arp::PACKET_LEN];
        message.write(&mut payload);
        self.transmit(
            sink,
            EthernetAddress::BROADCAST,
            EthernetProtocol::Arp,
            &payload,
        );
    }

    fn transmit(
        &mut self,
        sink: &mut impl FrameSink,
        destination: EthernetAddress,
        ethertype: EthernetProtocol,
        payload: &[u8],
    ) {
        let source = self.interface.config().hardware_address;
        let sent = sink.transmit(ethernet::HEADER_LEN + payload.len(), |frame| {
            ethernet::write_header(frame, source, destination, ethertype).copy_from_slice(payload);
        });
        if sent.is_err() {
            self.unresolved_drops += 1;
        }
    }
}
