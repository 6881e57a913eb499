//! One core's network interface: frames up through Ethernet, ARP, IPv4 and ICMP into TCP and UDP, and their segments and datagrams back down as frames.
//!
//! It owns no device and never blocks: the core's loop hands it received frames, polls it for
//! frames to send, and sleeps no longer than its next deadline. A poll takes no more frames
//! from TCP than the driver has room for; the rest wait in TCP's queue for the next poll.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::{EthernetAddress, EthernetProtocol, IpProtocol};

use super::arp::{self, ArpCache, ArpMessage, Enqueued, WaitingPacket};
use super::checksum;
use super::counters::{Counters, DropReason};
use super::ethernet;
use super::icmp::{self, IcmpErrorKind, IcmpMessage, TcpIcmpError};
use super::icmp_rate_limit::IcmpRateLimiter;
use super::ipv4::{self, Ipv4Config, ReceivedPacket};
use super::tcp::{self, OutSegment};
use super::udp::{self, OutDatagram, UdpConfig, UdpInputError, UdpLayer};
use crate::socket::{SharedTcpLayer, SharedUdpLayer};
use crate::time::Instant;

/// Frames built while receiving (ARP replies, echo replies) that may wait for the next
/// [`Interface::poll`]; beyond it they are dropped and counted, so a ping flood costs bounded memory.
pub const CONTROL_QUEUE_CAPACITY: usize = 64;

/// Where the interface puts the frames it sends: the driver's transmit queue.
///
/// The interface asks for a buffer of the exact frame length and writes the frame straight into
/// it, so a driver can hand out its DMA buffer and no copy is made in between.
pub trait FrameSink {
    /// Send one frame of `len` bytes: `fill` writes the whole frame into the buffer it is given
    /// (exactly `len` bytes long). `Err(SinkFull)` when no buffer is free; the frame is then lost.
    fn transmit(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SinkFull>;

    /// How many more frames `transmit` can take now (free transmit descriptors). The interface
    /// sends no more than this in one poll and keeps the rest queued.
    fn room(&self) -> usize {
        usize::MAX
    }
}

/// The driver had no free transmit buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkFull;

/// A sink that keeps every frame in memory: for tests, the simulator and benchmarks.
impl FrameSink for Vec<Vec<u8>> {
    fn transmit(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SinkFull> {
        let mut frame = alloc::vec![0u8; len];
        fill(&mut frame);
        self.push(frame);
        Ok(())
    }
}

/// The addresses of one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub hardware_address: EthernetAddress,
    pub ipv4: Ipv4Config,
}

/// Whether an ARP request for us is answered: by the core that received it, not by the cores
/// that only observe a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Yes,
    No,
}

/// A frame decided while receiving, sent at the next poll.
#[derive(Debug)]
enum ControlFrame {
    Arp {
        destination: EthernetAddress,
        message: ArpMessage,
    },
    EchoReply {
        hardware_destination: EthernetAddress,
        destination: Ipv4Addr,
        identifier: u16,
        sequence_number: u16,
        data: Vec<u8>,
    },
    /// ICMP port unreachable for a datagram to a closed UDP port.
    PortUnreachable {
        hardware_destination: EthernetAddress,
        destination: Ipv4Addr,
        /// The start of the offending IPv4 packet (at most [`icmp::MAX_QUOTE_LEN`] bytes).
        quoted: Vec<u8>,
    },
}

/// Whether a frame came to the Ethernet broadcast address: RFC 1122 3.2.2 forbids ICMP errors
/// about datagrams sent to a link-layer broadcast even when their IP destination is ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkDestination {
    Unicast,
    Broadcast,
}

/// One core's interface: addresses, ARP cache, counters and the core's TCP and UDP layers.
pub struct Interface {
    config: InterfaceConfig,
    arp: ArpCache,
    tcp: SharedTcpLayer,
    udp: SharedUdpLayer,
    /// The core's bucket for the ICMP errors it originates (port unreachable).
    icmp_errors: IcmpRateLimiter,
    counters: Counters,
    /// Frames decided while receiving, sent at the next poll.
    control: VecDeque<ControlFrame>,
    /// Packets whose next hop was just resolved, with its MAC, sent at the next poll.
    resolved: VecDeque<(EthernetAddress, Vec<u8>)>,
    /// Gratuitous ARP announcements still to send at start-up (RFC 5227 section 2.3).
    announcements_left: u8,
    next_announcement: Instant,
    /// The latest time we were given.
    now: Instant,
}

impl Interface {
    /// An interface with `config` that feeds `tcp`. It announces its address with gratuitous
    /// ARP at the first poll, so that neighbours with a stale entry for it learn the new MAC.
    ///
    /// It makes the core's UDP layer itself ([`udp`](Self::udp)), its ephemeral port choice
    /// seeded from the TCP layer's boot secret (a dispatcher installs its own port policy).
    pub fn new(config: InterfaceConfig, tcp: SharedTcpLayer, now: Instant) -> Interface {
        tcp.borrow_mut().set_source_address(config.ipv4.address);
        let (core, port_seed) = {
            let tcp = tcp.borrow();
            (tcp.core(), tcp.derived_secret(udp::PORT_SEED_DOMAIN))
        };
        let mut udp = UdpLayer::new(UdpConfig::default(), core, port_seed);
        udp.set_source_address(config.ipv4.address);
        udp.set_subnet_broadcast(config.ipv4.subnet_broadcast());
        Interface {
            config,
            arp: ArpCache::new(),
            tcp,
            udp: udp.into_shared(),
            icmp_errors: IcmpRateLimiter::new(
                super::icmp_rate_limit::ERRORS_PER_SECOND,
                super::icmp_rate_limit::BURST,
                now,
            ),
            counters: Counters::default(),
            control: VecDeque::new(),
            resolved: VecDeque::new(),
            announcements_left: arp::ANNOUNCEMENTS,
            next_announcement: now,
            now,
        }
    }

    pub fn config(&self) -> &InterfaceConfig {
        &self.config
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The core's TCP layer (the same one the core's tasks hold).
    pub fn tcp(&self) -> &SharedTcpLayer {
        &self.tcp
    }

    /// The core's UDP layer (the same one the core's UDP sockets hold).
    pub fn udp(&self) -> &SharedUdpLayer {
        &self.udp
    }

    pub fn arp_cache(&self) -> &ArpCache {
        &self.arp
    }

    /// Frames and packets waiting inside the interface for a poll or an ARP answer.
    pub fn queued_frames(&self) -> usize {
        self.control.len() + self.resolved.len() + self.arp.waiting_count()
    }

    // ----- receive path -----

    /// Take one received frame. Whatever it holds, it is consumed: delivered to TCP, answered
    /// (ARP, echo) at the next poll, or dropped and counted. Never panics on any input.
    pub fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.now = self.now.max(now);
        self.counters.frames_received += 1;
        match self.receive_frame(now, frame) {
            Ok(()) => self.counters.frames_accepted += 1,
            Err(reason) => {
                self.counters.frames_dropped += 1;
                self.counters.count_drop(reason);
            }
        }
    }

    fn receive_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        let frame = ethernet::parse(frame, self.config.hardware_address)?;
        match frame.ethertype {
            EthernetProtocol::Arp => self.receive_arp(now, frame.payload, Answer::Yes),
            EthernetProtocol::Ipv4 => {
                let link = if frame.destination == EthernetAddress::BROADCAST {
                    LinkDestination::Broadcast
                } else {
                    LinkDestination::Unicast
                };
                self.receive_ipv4(now, frame.source, link, frame.payload)
            }
            _ => Err(DropReason::EthernetUnknownType),
        }
    }

    /// Learn from an ARP frame that another core of this host received and answered.
    ///
    /// Every core keeps its own neighbour cache (no lock on the transmit path), but the NIC
    /// delivers ARP to one queue only; the run loop hands a copy of each ARP frame to the other
    /// cores, which learn from it here without answering (one reply per request, not one per
    /// core), so that the packets they parked for that neighbour leave too. Drops are not
    /// counted again: the core that received the frame counted them.
    pub fn observe_arp(&mut self, now: Instant, frame: &[u8]) {
        self.now = self.now.max(now);
        self.counters.arp_frames_observed += 1;
        if let Ok(frame) = ethernet::parse(frame, self.config.hardware_address)
            && frame.ethertype == EthernetProtocol::Arp
        {
            let _ = self.receive_arp(now, frame.payload, Answer::No);
        }
    }

    /// RFC 826 "Packet Reception", with RFC 5227's view of our own address.
    fn receive_arp(
        &mut self,
        now: Instant,
        payload: &[u8],
        answer: Answer,
    ) -> Result<(), DropReason> {
        let message = ArpMessage::parse(payload)?;
        let our_address = self.config.ipv4.address;
        let for_us = message.target_protocol == our_address;
        if !message.sender_hardware.is_unicast() {
            return Err(DropReason::ArpBadSender);
        }
        if message.sender_protocol.is_unspecified() {
            // An RFC 5227 probe: somebody checks whether the address is free. Defend ours.
            if for_us && message.operation == smoltcp::wire::ArpOperation::Request {
                if answer == Answer::No {
                    return Ok(());
                }
                return self.queue_control(ControlFrame::Arp {
                    destination: message.sender_hardware,
                    message: ArpMessage::reply_to(&message, self.config.hardware_address),
                });
            }
            return Err(DropReason::ArpBadSender);
        }
        // Another host claims our address (RFC 5227 section 2.4): never learn it.
        if message.sender_protocol == our_address
            || !self.config.ipv4.is_on_link(message.sender_protocol)
        {
            return Err(DropReason::ArpBadSender);
        }
        // Merge: update an entry we already have; add one only if the packet is for us.
        let merged = for_us || self.arp.contains(message.sender_protocol);
        if merged
            && self
                .arp
                .holds_back_change(now, message.sender_protocol, message.sender_hardware)
        {
            // A new MAC for a neighbour we know: ask who holds the address before believing
            // it (a corrupted frame is answered by the true owner), unanswered meanwhile.
            if answer == Answer::Yes {
                self.queue_arp_request(message.sender_protocol);
            }
            return Err(DropReason::ArpUnconfirmedChange);
        }
        if merged {
            let released = self
                .arp
                .learn(now, message.sender_protocol, message.sender_hardware);
            for WaitingPacket { packet, .. } in released {
                self.resolved.push_back((message.sender_hardware, packet));
            }
        }
        if !for_us {
            // A gratuitous ARP that refreshed an entry was used; any other is not ours.
            return if merged {
                Ok(())
            } else {
                Err(DropReason::ArpNotForUs)
            };
        }
        if message.operation == smoltcp::wire::ArpOperation::Request && answer == Answer::Yes {
            self.queue_control(ControlFrame::Arp {
                destination: message.sender_hardware,
                message: ArpMessage::reply_to(&message, self.config.hardware_address),
            })?;
        }
        Ok(())
    }

    fn receive_ipv4(
        &mut self,
        now: Instant,
        hardware_source: EthernetAddress,
        link: LinkDestination,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        let packet = ipv4::parse(bytes, &self.config.ipv4)?;
        match packet.protocol {
            IpProtocol::Udp => self.receive_udp(now, hardware_source, link, &packet),
            IpProtocol::Tcp => {
                if packet.destination != self.config.ipv4.address {
                    return Err(DropReason::TcpNotUnicast);
                }
                if !checksum::tcp_is_valid(packet.source, packet.destination, packet.payload) {
                    return Err(DropReason::TcpBadChecksum);
                }
                self.counters.tcp_segments_delivered += 1;
                self.tcp.borrow_mut().on_segment(
                    now,
                    packet.source,
                    packet.destination,
                    packet.payload,
                );
                Ok(())
            }
            IpProtocol::Icmp => {
                match icmp::parse(packet.payload, packet.source, self.config.ipv4.address)? {
                    IcmpMessage::EchoRequest {
                        identifier,
                        sequence_number,
                        data,
                    } => {
                        if packet.destination != self.config.ipv4.address {
                            return Err(DropReason::IcmpEchoToBroadcast);
                        }
                        // A request in a jumbo frame would need a reply larger than our MTU.
                        if ipv4::HEADER_LEN + icmp::echo_reply_len(data) > ethernet::MTU {
                            return Err(DropReason::IcmpEchoTooLarge);
                        }
                        // Answer the MAC the request came from: it is the right next hop back
                        // and needs no ARP round trip.
                        self.queue_control(ControlFrame::EchoReply {
                            hardware_destination: hardware_source,
                            destination: packet.source,
                            identifier,
                            sequence_number,
                            data: data.to_vec(),
                        })
                    }
                    IcmpMessage::UdpError(error) => {
                        self.udp
                            .borrow_mut()
                            .on_icmp_error(error.local, error.remote, error.kind)
                            .map_err(|_| DropReason::IcmpErrorNoSocket)?;
                        self.counters.icmp_errors_delivered += 1;
                        Ok(())
                    }
                    IcmpMessage::TcpError(error) => {
                        self.counters.icmp_errors_delivered += 1;
                        self.tcp.borrow_mut().on_icmp_error(now, tcp_error(&error));
                        Ok(())
                    }
                }
            }
            _ => Err(DropReason::Ipv4UnknownProtocol),
        }
    }

    /// RFC 768 on receive: check the datagram, queue it on its socket, or answer a closed
    /// port with ICMP port unreachable (RFC 1122 3.2.2.1, 4.1.3.1).
    fn receive_udp(
        &mut self,
        now: Instant,
        hardware_source: EthernetAddress,
        link: LinkDestination,
        packet: &ReceivedPacket<'_>,
    ) -> Result<(), DropReason> {
        let datagram = udp::datagram::parse(packet.source, packet.destination, packet.payload)
            .map_err(|error| match error {
                udp::datagram::DatagramError::Truncated => DropReason::UdpTruncated,
                udp::datagram::DatagramError::BadChecksum => DropReason::UdpBadChecksum,
            })?;
        let source = SocketAddrV4::new(packet.source, datagram.source_port);
        let destination = SocketAddrV4::new(packet.destination, datagram.destination_port);
        let delivered = self
            .udp
            .borrow_mut()
            .on_datagram(source, destination, datagram.payload);
        match delivered {
            Ok(()) => {
                self.counters.udp_datagrams_delivered += 1;
                Ok(())
            }
            Err(UdpInputError::QueueFull) => Err(DropReason::UdpQueueFull),
            Err(UdpInputError::NoSocket) => {
                self.answer_port_unreachable(now, hardware_source, link, packet);
                Err(DropReason::UdpNoSocket)
            }
        }
    }

    /// Port unreachable for a datagram nobody takes. Never about a datagram to a broadcast
    /// (IP or link layer, RFC 1122 3.2.2; multicast never gets this far), and no more often
    /// than the core's token bucket allows (Linux's `icmp_msgs_per_sec`), so a flood to closed
    /// ports costs bounded output and the host reflects nothing at scale.
    fn answer_port_unreachable(
        &mut self,
        now: Instant,
        hardware_source: EthernetAddress,
        link: LinkDestination,
        packet: &ReceivedPacket<'_>,
    ) {
        if packet.destination != self.config.ipv4.address || link == LinkDestination::Broadcast {
            return;
        }
        if !self.icmp_errors.allow(now) {
            self.counters.count_drop(DropReason::IcmpRateLimited);
            return;
        }
        let quoted_len = packet.packet.len().min(icmp::MAX_QUOTE_LEN);
        let queued = self.queue_control(ControlFrame::PortUnreachable {
            hardware_destination: hardware_source,
            destination: packet.source,
            quoted: packet.packet[..quoted_len].to_vec(),
        });
        if let Err(reason) = queued {
            self.counters.count_drop(reason);
        }
    }

    fn queue_control(&mut self, frame: ControlFrame) -> Result<(), DropReason> {
        if self.control.len() >= CONTROL_QUEUE_CAPACITY {
            return Err(DropReason::ControlQueueFull);
        }
        self.control.push_back(frame);
        Ok(())
    }

    // ----- transmit path -----

    /// Fire the timers that are due (ARP retries and expiry, TCP's), then hand every frame
    /// that is ready to `sink`: start-up announcements, ARP and echo replies, packets whose
    /// neighbour was just resolved, and TCP's output.
    pub fn poll(&mut self, now: Instant, sink: &mut impl FrameSink) {
        self.now = self.now.max(now);
        let tcp_has_output = self.run_timers(now);
        // Most polls find nothing to send: they return here, and only the others pay for
        // the call to the sending steps (and the registers it saves).
        let announcement_due = self.announcements_left > 0 && now >= self.next_announcement;
        if !announcement_due
            && !tcp_has_output
            && !self.udp.borrow().has_output()
            && self.control.is_empty()
            && self.resolved.is_empty()
        {
            return;
        }
        self.send_ready(now, sink);
    }

    /// The sending half of [`poll`](Self::poll): every frame that is ready, as far as the
    /// sink has room.
    #[inline(never)]
    fn send_ready(&mut self, now: Instant, sink: &mut impl FrameSink) {
        if self.announcements_left > 0 && sink.room() > 0 {
            self.send_announcement(now, sink);
        }
        if !self.control.is_empty() {
            self.send_control_frames(sink);
        }
        while !self.resolved.is_empty() && sink.room() > 0 {
            let Some((destination, packet)) = self.resolved.pop_front() else {
                break;
            };
            self.send_frame(
                sink,
                packet.len(),
                destination,
                EthernetProtocol::Ipv4,
                |payload| payload.copy_from_slice(&packet),
            );
        }
        if self.tcp.borrow().has_output() {
            let tcp = self.tcp.clone();
            tcp.borrow_mut()
                .drain_output_up_to(sink.room(), |segment| self.send_segment(now, segment, sink));
            // ARP requests for next hops that TCP's segments just found unresolved.
            self.send_control_frames(sink);
        }
        if self.udp.borrow().has_output() {
            let udp = self.udp.clone();
            udp.borrow_mut()
                .drain_output_up_to(sink.room(), |datagram| {
                    self.send_datagram(now, datagram, sink)
                });
            self.send_control_frames(sink);
        }
    }

    fn send_control_frames(&mut self, sink: &mut impl FrameSink) {
        while sink.room() > 0 {
            let Some(frame) = self.control.pop_front() else {
                break;
            };
            self.send_control(frame, sink);
        }
    }

    /// Inlined into `poll`: at most polls nothing is due and this is two comparisons.
    /// Returns whether TCP has segments to send, asked while the layer is borrowed anyway.
    #[inline]
    fn run_timers(&mut self, now: Instant) -> bool {
        if self.arp.timers_due(now) {
            self.run_arp_timers(now);
        }
        let mut tcp = self.tcp.borrow_mut();
        // Socket calls between polls read the layer's clock: keep it current.
        tcp.advance_time(now);
        if tcp.next_deadline().is_some_and(|deadline| deadline <= now) {
            tcp.on_timers(now);
        }
        tcp.has_output()
    }

    #[inline(never)]
    fn run_arp_timers(&mut self, now: Instant) {
        let mut requests: Vec<Ipv4Addr> = Vec::new();
        let mut failed = 0;
        self.arp
            .on_timers(now, |address| requests.push(address), |_| failed += 1);
        for _ in 0..failed {
            self.counters.count_drop(DropReason::ArpResolutionFailed);
        }
        for address in requests {
            self.queue_arp_request(address);
        }
    }

    fn queue_arp_request(&mut self, target: Ipv4Addr) {
        let message = ArpMessage::request(
            self.config.hardware_address,
            self.config.ipv4.address,
            target,
        );
        // A request that finds the queue full is not lost: the resolution stays pending and the
        // ARP timer sends it again, so nothing is counted here.
        let _ = self.queue_control(ControlFrame::Arp {
            destination: EthernetAddress::BROADCAST,
            message,
        });
    }

    /// A unicast poll of a neighbour whose entry is about to expire (RFC 1122 2.3.2.1); if it
    /// gets no answer the entry expires and the next packet resolves it by broadcast.
    fn queue_arp_refresh(&mut self, target: Ipv4Addr, hardware: EthernetAddress) {
        let message = ArpMessage::request(
            self.config.hardware_address,
            self.config.ipv4.address,
            target,
        );
        let _ = self.queue_control(ControlFrame::Arp {
            destination: hardware,
            message,
        });
    }

    fn send_announcement(&mut self, now: Instant, sink: &mut impl FrameSink) {
        if self.announcements_left == 0 || now < self.next_announcement {
            return;
        }
        self.announcements_left -= 1;
        self.next_announcement = now + arp::ANNOUNCE_INTERVAL;
        let message =
            ArpMessage::announcement(self.config.hardware_address, self.config.ipv4.address);
        self.send_control(
            ControlFrame::Arp {
                destination: EthernetAddress::BROADCAST,
                message,
            },
            sink,
        );
    }

    fn send_control(&mut self, frame: ControlFrame, sink: &mut impl FrameSink) {
        match frame {
            ControlFrame::Arp {
                destination,
                message,
            } => {
                if message.operation == smoltcp::wire::ArpOperation::Request {
                    self.counters.arp_requests_sent += 1;
                } else {
                    self.counters.arp_replies_sent += 1;
                }
                self.send_frame(
                    sink,
                    arp::PACKET_LEN,
                    destination,
                    EthernetProtocol::Arp,
                    |payload| message.write(payload),
                );
            }
            ControlFrame::PortUnreachable {
                hardware_destination,
                destination,
                quoted,
            } => {
                self.counters.port_unreachables_sent += 1;
                let icmp_len = icmp::port_unreachable_len(&quoted);
                self.send_icmp(sink, hardware_destination, destination, icmp_len, |icmp| {
                    icmp::write_port_unreachable(icmp, &quoted)
                });
            }
            ControlFrame::EchoReply {
                hardware_destination,
                destination,
                identifier,
                sequence_number,
                data,
            } => {
                self.counters.echo_replies_sent += 1;
                let icmp_len = icmp::echo_reply_len(&data);
                self.send_icmp(sink, hardware_destination, destination, icmp_len, |icmp| {
                    icmp::write_echo_reply(icmp, identifier, sequence_number, &data)
                });
            }
        }
    }

    /// Frame one TCP segment: straight into the driver's buffer when the next hop is known,
    /// else as an IPv4 packet parked in the ARP queue.
    fn send_segment(&mut self, now: Instant, segment: OutSegment<'_>, sink: &mut impl FrameSink) {
        if let Err(reason) = self.try_send_segment(now, segment, sink) {
            self.counters.count_drop(reason);
        }
    }

    fn try_send_segment(
        &mut self,
        now: Instant,
        segment: OutSegment<'_>,
        sink: &mut impl FrameSink,
    ) -> Result<(), DropReason> {
        if segment.source != self.config.ipv4.address {
            return Err(DropReason::TransmitBadSource);
        }
        let packet_len = ipv4::HEADER_LEN + segment.tcp.len();
        if packet_len > ethernet::MTU {
            return Err(DropReason::TransmitTooLarge);
        }
        self.send_ipv4(now, sink, segment.destination, packet_len, |buffer| {
            let tcp_bytes = ipv4::write_header(
                buffer,
                segment.source,
                segment.destination,
                IpProtocol::Tcp,
                segment.tcp.len(),
            );
            tcp_bytes.copy_from_slice(segment.tcp);
        })
    }

    /// Sends an IPv4 packet of `packet_len` bytes, written by `write_packet`, to
    /// `destination` through its next hop: straight to the driver when the neighbour is
    /// known, else parked until ARP resolves it.
    fn send_ipv4(
        &mut self,
        now: Instant,
        sink: &mut impl FrameSink,
        destination: Ipv4Addr,
        packet_len: usize,
        write_packet: impl FnOnce(&mut [u8]),
    ) -> Result<(), DropReason> {
        let next_hop = self
            .config
            .ipv4
            .next_hop(destination)
            .ok_or(DropReason::TransmitNoRoute)?;
        if let Some(neighbour) = self.arp.lookup_for_transmit(now, next_hop) {
            if neighbour.refresh {
                self.queue_arp_refresh(next_hop, neighbour.hardware);
            }
            self.send_frame(
                sink,
                packet_len,
                neighbour.hardware,
                EthernetProtocol::Ipv4,
                write_packet,
            );
            return Ok(());
        }
        let mut packet = alloc::vec![0u8; packet_len];
        write_packet(&mut packet);
        if self.arp.enqueue(now, next_hop, packet)? == Enqueued::SendRequest {
            self.queue_arp_request(next_hop);
        }
        Ok(())
    }

    /// Frame one UDP datagram: to the Ethernet broadcast for an IP broadcast, else like a
    /// TCP segment (straight to the driver, or parked for ARP).
    fn send_datagram(
        &mut self,
        now: Instant,
        datagram: OutDatagram<'_>,
        sink: &mut impl FrameSink,
    ) {
        if let Err(reason) = self.try_send_datagram(now, datagram, sink) {
            self.counters.count_drop(reason);
        }
    }

    fn try_send_datagram(
        &mut self,
        now: Instant,
        datagram: OutDatagram<'_>,
        sink: &mut impl FrameSink,
    ) -> Result<(), DropReason> {
        let source = *datagram.source.ip();
        let destination = *datagram.destination.ip();
        if source != self.config.ipv4.address {
            return Err(DropReason::TransmitBadSource);
        }
        let udp_len = udp::datagram::HEADER_LEN + datagram.payload.len();
        let packet_len = ipv4::HEADER_LEN + udp_len;
        if packet_len > ethernet::MTU {
            return Err(DropReason::TransmitTooLarge);
        }
        let write_packet = |buffer: &mut [u8]| {
            let udp_bytes =
                ipv4::write_header(buffer, source, destination, IpProtocol::Udp, udp_len);
            udp::datagram::write(
                udp_bytes,
                (source, datagram.source.port()),
                (destination, datagram.destination.port()),
                datagram.payload,
            );
        };
        if destination.is_broadcast() || Some(destination) == self.config.ipv4.subnet_broadcast() {
            self.send_frame(
                sink,
                packet_len,
                EthernetAddress::BROADCAST,
                EthernetProtocol::Ipv4,
                write_packet,
            );
            return Ok(());
        }
        self.send_ipv4(now, sink, destination, packet_len, write_packet)
    }

    /// Hand one frame to the driver: Ethernet header from us to `destination`, then
    /// `write_payload` fills the `payload_len` bytes after it.
    fn send_frame(
        &mut self,
        sink: &mut impl FrameSink,
        payload_len: usize,
        destination: EthernetAddress,
        ethertype: EthernetProtocol,
        write_payload: impl FnOnce(&mut [u8]),
    ) {
        let source = self.config.hardware_address;
        let sent = sink.transmit(ethernet::HEADER_LEN + payload_len, |frame| {
            write_payload(ethernet::write_header(
                frame,
                source,
                destination,
                ethertype,
            ));
        });
        match sent {
            Ok(()) => self.counters.frames_transmitted += 1,
            Err(SinkFull) => self.counters.count_drop(DropReason::TransmitQueueFull),
        }
    }

    /// Sends an ICMP message of `icmp_len` bytes, written by `write_icmp`, from our address
    /// to `destination` in an IPv4 packet of its own.
    fn send_icmp(
        &mut self,
        sink: &mut impl FrameSink,
        hardware_destination: EthernetAddress,
        destination: Ipv4Addr,
        icmp_len: usize,
        write_icmp: impl FnOnce(&mut [u8]),
    ) {
        let source = self.config.ipv4.address;
        self.send_frame(
            sink,
            ipv4::HEADER_LEN + icmp_len,
            hardware_destination,
            EthernetProtocol::Ipv4,
            |payload| {
                write_icmp(ipv4::write_header(
                    payload,
                    source,
                    destination,
                    IpProtocol::Icmp,
                    icmp_len,
                ))
            },
        );
    }

    /// When [`poll`](Self::poll) next has work even if no frame arrives: now if frames are
    /// queued, else the earliest timer of ARP, the announcements and TCP. `None` when idle.
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.control.is_empty()
            || !self.resolved.is_empty()
            || self.tcp.borrow().has_output()
            || self.udp.borrow().has_output()
        {
            return Some(self.now);
        }
        let announcement = (self.announcements_left > 0).then_some(self.next_announcement);
        [
            announcement,
            self.arp.next_deadline(),
            self.tcp.borrow().next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The error as TCP takes it.
fn tcp_error(error: &TcpIcmpError) -> tcp::IcmpError {
    let kind = match error.kind {
        IcmpErrorKind::FragmentationNeeded { next_hop_mtu } => {
            tcp::IcmpErrorKind::FragmentationNeeded { next_hop_mtu }
        }
        IcmpErrorKind::NetworkUnreachable => tcp::IcmpErrorKind::DestinationUnreachable { code: 0 },
        IcmpErrorKind::HostUnreachable => tcp::IcmpErrorKind::DestinationUnreachable { code: 1 },
        IcmpErrorKind::ProtocolUnreachable => {
            tcp::IcmpErrorKind::DestinationUnreachable { code: 2 }
        }
        IcmpErrorKind::PortUnreachable => tcp::IcmpErrorKind::DestinationUnreachable { code: 3 },
        IcmpErrorKind::SourceRouteFailed => tcp::IcmpErrorKind::DestinationUnreachable { code: 5 },
        IcmpErrorKind::AdministrativelyProhibited { code }
        | IcmpErrorKind::OtherUnreachable { code } => {
            tcp::IcmpErrorKind::DestinationUnreachable { code }
        }
        IcmpErrorKind::TimeExceeded => tcp::IcmpErrorKind::TimeExceeded,
        IcmpErrorKind::ParameterProblem => tcp::IcmpErrorKind::ParameterProblem,
    };
    let segment = &error.segment;
    tcp::IcmpError {
        kind,
        local: SocketAddrV4::new(segment.local_address, segment.local_port),
        remote: SocketAddrV4::new(segment.remote_address, segment.remote_port),
        sequence: segment.sequence_number,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tcp::{CoreId, TcpConfig, TcpLayer};
    use core::time::Duration;
    use smoltcp::wire::{
        ArpOperation, EthernetFrame, Icmpv4Packet, IpAddress, Ipv4Packet, TcpPacket,
    };

    const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
    const PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn interface() -> Interface {
        let tcp = TcpLayer::new(TcpConfig::default(), CoreId(0), [1; 16]).into_shared();
        let config = InterfaceConfig {
            hardware_address: US,
            ipv4: Ipv4Config {
                address: OUR_IP,
                prefix_len: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 0, 254)),
            },
        };
        Interface::new(config, tcp, Instant::ZERO)
    }

    /// An interface past its start-up announcements that has just received the peer's ARP
    /// request for our address (so it knows the peer; its reply is not yet polled out).
    fn interface_that_heard_the_peer_ask_for_us() -> Interface {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let request = ArpMessage::request(PEER, PEER_IP, OUR_IP);
        interface.receive(
            Instant::ZERO,
            &arp_frame(request, EthernetAddress::BROADCAST),
        );
        interface
    }

    fn arp_frame(message: ArpMessage, destination: EthernetAddress) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
        let payload = ethernet::write_header(
            &mut frame,
            message.sender_hardware,
            destination,
            EthernetProtocol::Arp,
        );
        message.write(payload);
        frame
    }

    fn parse_arp(frame: &[u8]) -> (EthernetAddress, ArpMessage) {
        let view = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!(view.ethertype(), EthernetProtocol::Arp);
        (view.dst_addr(), ArpMessage::parse(view.payload()).unwrap())
    }

    fn ipv4_frame(source: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let mut frame = alloc::vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + payload.len()];
        let packet = ethernet::write_header(&mut frame, PEER, US, EthernetProtocol::Ipv4);
        ipv4::write_header(packet, source, OUR_IP, protocol, payload.len())
            .copy_from_slice(payload);
        frame
    }

    /// Poll at `now` and return the frames sent.
    fn poll(interface: &mut Interface, now: Instant) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        interface.poll(now, &mut frames);
        frames
    }

    #[test]
    fn the_address_is_announced_twice_at_start() {
        let mut interface = interface();
        let first = poll(&mut interface, Instant::ZERO);
        assert_eq!(first.len(), 1);
        let (destination, message) = parse_arp(&first[0]);
        assert_eq!(destination, EthernetAddress::BROADCAST);
        assert_eq!(message, ArpMessage::announcement(US, OUR_IP));
        assert!(poll(&mut interface, Instant::from_millis(1000)).is_empty());
        assert_eq!(interface.next_deadline(), Some(Instant::from_millis(2000)));
        assert_eq!(poll(&mut interface, Instant::from_millis(2000)).len(), 1);
        assert!(poll(&mut interface, Instant::from_millis(9000)).is_empty());
        assert_eq!(interface.counters().arp_requests_sent, 2);
    }

    #[test]
    fn a_request_for_us_is_answered_and_its_sender_learnt() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let request = ArpMessage::request(PEER, PEER_IP, OUR_IP);
        interface.receive(
            Instant::ZERO,
            &arp_frame(request, EthernetAddress::BROADCAST),
        );
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 1);
        let (destination, reply) = parse_arp(&sent[0]);
        assert_eq!(destination, PEER);
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!((reply.sender_hardware, reply.sender_protocol), (US, OUR_IP));
        assert_eq!(
            interface.arp_cache().lookup(Instant::ZERO, PEER_IP),
            Some(PEER)
        );

        let elsewhere = ArpMessage::request(
            EthernetAddress([0x02, 0, 0, 0, 0, 3]),
            Ipv4Addr::new(10, 0, 0, 3),
            Ipv4Addr::new(10, 0, 0, 4),
        );
        interface.receive(
            Instant::ZERO,
            &arp_frame(elsewhere, EthernetAddress::BROADCAST),
        );
        assert!(poll(&mut interface, Instant::ZERO).is_empty());
        assert_eq!(interface.counters().drops(DropReason::ArpNotForUs), 1);
        assert_eq!(interface.arp_cache().entry_count(), 1);

        // Somebody else claiming our address is not believed (RFC 5227 section 2.4).
        let thief = ArpMessage::request(EthernetAddress([0x02, 9, 9, 9, 9, 9]), OUR_IP, PEER_IP);
        interface.receive(Instant::ZERO, &arp_frame(thief, EthernetAddress::BROADCAST));
        assert_eq!(interface.counters().drops(DropReason::ArpBadSender), 1);
        assert_every_frame_counted(&interface);
    }

    /// Every frame received was either accepted or dropped under a counted reason.
    fn assert_every_frame_counted(interface: &Interface) {
        let counters = interface.counters();
        assert_eq!(
            counters.frames_received,
            counters.frames_accepted + counters.frames_dropped
        );
    }

    /// Issue 29, item 9: one ARP frame with a bit flipped in its sender MAC (ARP has no
    /// checksum; the impairment relay flips bits past the Ethernet header) made every frame to
    /// that neighbour go to a MAC nobody has until the entry expired a minute later, and a
    /// download through the relay stalled. A new MAC is now believed only when claimed twice,
    /// and the claim draws a broadcast request that the true owner answers.
    #[test]
    fn one_arp_frame_with_a_new_mac_does_not_redirect_a_known_neighbour() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let corrupted = EthernetAddress([0x02, 1, 0, 0, 0, 2]);
        let later = Instant::from_millis(2000);
        interface.receive(
            later,
            &arp_frame(
                ArpMessage::announcement(corrupted, PEER_IP),
                EthernetAddress::BROADCAST,
            ),
        );
        assert_eq!(interface.arp_cache().lookup(later, PEER_IP), Some(PEER));
        assert_eq!(
            interface.counters().drops(DropReason::ArpUnconfirmedChange),
            1
        );
        let sent = poll(&mut interface, later);
        // (Beside our own second start-up announcement, due at 2 s.)
        let asked: Vec<_> = sent
            .iter()
            .map(|frame| parse_arp(frame))
            .filter(|(_, message)| message.target_protocol == PEER_IP)
            .collect();
        assert_eq!(
            asked,
            [(
                EthernetAddress::BROADCAST,
                ArpMessage::request(US, OUR_IP, PEER_IP)
            )]
        );
        // The owner answers with the MAC we know: the entry is renewed, and the same
        // corrupted claim again once the first is `CLAIM_HOLD` old is still only a claim.
        interface.receive(
            later,
            &arp_frame(ArpMessage::reply_to(&asked[0].1, PEER), US),
        );
        interface.receive(
            later + arp::CLAIM_HOLD,
            &arp_frame(
                ArpMessage::announcement(corrupted, PEER_IP),
                EthernetAddress::BROADCAST,
            ),
        );
        assert_eq!(interface.arp_cache().lookup(later, PEER_IP), Some(PEER));
        assert_eq!(
            interface.counters().drops(DropReason::ArpUnconfirmedChange),
            2
        );
        // A host that really moved says so twice (RFC 5227 announces twice): believed.
        let moved = EthernetAddress([0x02, 0, 0, 0, 0, 9]);
        for _ in 0..2 {
            interface.receive(
                later,
                &arp_frame(
                    ArpMessage::announcement(moved, PEER_IP),
                    EthernetAddress::BROADCAST,
                ),
            );
        }
        assert_eq!(interface.arp_cache().lookup(later, PEER_IP), Some(moved));
        assert_every_frame_counted(&interface);
    }

    /// Review of issue 29's fixes, should-fix 6: a frame with the known MAC forgot the claim,
    /// so one such frame from an attacker between the two announcements of the true owner
    /// (RFC 5227: ANNOUNCE_INTERVAL 2 s apart) kept a poisoned entry for good. A claim now
    /// survives renewals for `arp::CLAIM_HOLD`.
    #[test]
    fn a_known_mac_between_two_announcements_does_not_keep_the_old_mac() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let moved = EthernetAddress([0x02, 0, 0, 0, 0, 9]);
        let announce = |interface: &mut Interface, at: Instant, hardware| {
            interface.receive(
                at,
                &arp_frame(
                    ArpMessage::announcement(hardware, PEER_IP),
                    EthernetAddress::BROADCAST,
                ),
            );
        };
        announce(&mut interface, Instant::from_millis(2000), moved);
        announce(&mut interface, Instant::from_millis(3000), PEER);
        announce(&mut interface, Instant::from_millis(4000), moved);
        let now = Instant::from_millis(4000);
        assert_eq!(interface.arp_cache().lookup(now, PEER_IP), Some(moved));
        // Long after a claim, the known MAC's frames have forgotten it: one claim again is
        // only a claim.
        let corrupted = EthernetAddress([0x02, 1, 0, 0, 0, 2]);
        announce(&mut interface, Instant::from_millis(5000), corrupted);
        announce(&mut interface, Instant::from_millis(9000), moved);
        announce(&mut interface, Instant::from_millis(9500), corrupted);
        let now = Instant::from_millis(9500);
        assert_eq!(interface.arp_cache().lookup(now, PEER_IP), Some(moved));
    }

    #[test]
    fn an_observed_arp_frame_teaches_but_is_not_answered() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let request = ArpMessage::request(PEER, PEER_IP, OUR_IP);
        interface.observe_arp(
            Instant::ZERO,
            &arp_frame(request, EthernetAddress::BROADCAST),
        );
        assert!(poll(&mut interface, Instant::ZERO).is_empty());
        assert_eq!(
            interface.arp_cache().lookup(Instant::ZERO, PEER_IP),
            Some(PEER)
        );
        assert_eq!(interface.counters().arp_frames_observed, 1);
        assert_eq!(interface.counters().frames_received, 0);
    }

    #[test]
    fn echo_requests_get_replies_and_broadcast_ones_do_not() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let mut request = alloc::vec![8, 0, 0, 0, 0, 9, 0, 1, b'h', b'i'];
        Icmpv4Packet::new_unchecked(&mut request[..]).fill_checksum();
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Icmp, &request),
        );
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 1);
        let frame = EthernetFrame::new_checked(&sent[0][..]).unwrap();
        assert_eq!(frame.dst_addr(), PEER);
        let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(packet.dst_addr(), PEER_IP);
        let reply = Icmpv4Packet::new_checked(packet.payload()).unwrap();
        assert!(reply.verify_checksum());
        assert_eq!(packet.payload()[0], 0);
        assert_eq!(&packet.payload()[4..], &request[4..]);
        assert_eq!(interface.counters().echo_replies_sent, 1);

        let mut broadcast = ipv4_frame(PEER_IP, IpProtocol::Icmp, &request);
        let mut view = Ipv4Packet::new_unchecked(&mut broadcast[ethernet::HEADER_LEN..]);
        view.set_dst_addr(Ipv4Addr::new(10, 0, 0, 255));
        view.fill_checksum();
        interface.receive(Instant::ZERO, &broadcast);
        assert!(poll(&mut interface, Instant::ZERO).is_empty());
        assert_eq!(
            interface.counters().drops(DropReason::IcmpEchoToBroadcast),
            1
        );

        let mut jumbo = alloc::vec![0u8; 3000];
        jumbo[0] = 8;
        Icmpv4Packet::new_unchecked(&mut jumbo[..]).fill_checksum();
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Icmp, &jumbo),
        );
        assert!(poll(&mut interface, Instant::ZERO).is_empty());
        assert_eq!(interface.counters().drops(DropReason::IcmpEchoTooLarge), 1);
    }

    #[test]
    fn the_control_queue_is_bounded() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let mut request = alloc::vec![8, 0, 0, 0, 0, 9, 0, 1];
        Icmpv4Packet::new_unchecked(&mut request[..]).fill_checksum();
        let frame = ipv4_frame(PEER_IP, IpProtocol::Icmp, &request);
        for _ in 0..CONTROL_QUEUE_CAPACITY + 5 {
            interface.receive(Instant::ZERO, &frame);
        }
        assert_eq!(interface.counters().drops(DropReason::ControlQueueFull), 5);
        assert_eq!(
            poll(&mut interface, Instant::ZERO).len(),
            CONTROL_QUEUE_CAPACITY
        );
        assert_eq!(interface.queued_frames(), 0);
    }

    /// A driver ring with a fixed number of free descriptors.
    struct SmallRing {
        frames: Vec<Vec<u8>>,
        free: usize,
    }

    impl FrameSink for SmallRing {
        fn transmit(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SinkFull> {
            if self.free == 0 {
                return Err(SinkFull);
            }
            self.free -= 1;
            self.frames.transmit(len, fill)
        }

        fn room(&self) -> usize {
            self.free
        }
    }

    #[test]
    fn a_poll_sends_no_more_than_the_driver_has_room_for() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        let remote = SocketAddrV4::new(PEER_IP, 80);
        for _ in 0..3 {
            interface
                .tcp()
                .borrow_mut()
                .connect(remote, None)
                .expect("connect");
        }
        // One ARP reply and three SYNs are ready; the ring takes two per poll.
        let mut ring = SmallRing {
            frames: Vec::new(),
            free: 2,
        };
        interface.poll(Instant::ZERO, &mut ring);
        assert_eq!(ring.frames.len(), 2);
        assert_eq!(interface.next_deadline(), Some(Instant::ZERO));
        ring.free = 2;
        interface.poll(Instant::ZERO, &mut ring);
        assert_eq!(ring.frames.len(), 4);
        assert_eq!(interface.counters().drops(DropReason::TransmitQueueFull), 0);
        assert!(!interface.tcp().borrow().has_output());
    }

    #[test]
    fn tcp_segments_wait_for_arp_and_leave_when_it_answers() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let remote = SocketAddrV4::new(PEER_IP, 80);
        interface
            .tcp()
            .borrow_mut()
            .connect(remote, None)
            .expect("connect");
        let sent = poll(&mut interface, Instant::ZERO);
        // The SYN waits; an ARP request for the peer went out instead.
        assert_eq!(sent.len(), 1);
        let (destination, request) = parse_arp(&sent[0]);
        assert_eq!(destination, EthernetAddress::BROADCAST);
        assert_eq!(request.target_protocol, PEER_IP);
        assert_eq!(interface.arp_cache().waiting_count(), 1);

        let reply = ArpMessage::reply_to(&request, PEER);
        interface.receive(Instant::from_millis(1), &arp_frame(reply, US));
        let sent = poll(&mut interface, Instant::from_millis(1));
        assert_eq!(sent.len(), 1);
        let frame = EthernetFrame::new_checked(&sent[0][..]).unwrap();
        assert_eq!(frame.dst_addr(), PEER);
        let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
        assert_eq!(packet.next_header(), IpProtocol::Tcp);
        let segment = TcpPacket::new_checked(packet.payload()).unwrap();
        assert!(segment.syn());
        assert!(segment.verify_checksum(&IpAddress::Ipv4(OUR_IP), &IpAddress::Ipv4(PEER_IP)));
        assert_eq!(interface.queued_frames(), 0);
    }

    #[test]
    fn packets_off_the_link_go_to_the_gateway_or_nowhere() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        let far = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 443);
        interface
            .tcp()
            .borrow_mut()
            .connect(far, None)
            .expect("connect");
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            parse_arp(&sent[0]).1.target_protocol,
            Ipv4Addr::new(10, 0, 0, 254)
        );

        let tcp = TcpLayer::new(TcpConfig::default(), CoreId(0), [1; 16]).into_shared();
        let config = InterfaceConfig {
            hardware_address: US,
            ipv4: Ipv4Config {
                address: OUR_IP,
                prefix_len: 24,
                gateway: None,
            },
        };
        let mut isolated = Interface::new(config, tcp, Instant::ZERO);
        poll(&mut isolated, Instant::ZERO);
        isolated
            .tcp()
            .borrow_mut()
            .connect(far, None)
            .expect("connect");
        assert!(poll(&mut isolated, Instant::ZERO).is_empty());
        assert_eq!(isolated.counters().drops(DropReason::TransmitNoRoute), 1);
    }

    #[test]
    fn a_neighbour_in_use_is_polled_by_unicast_before_its_entry_expires() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let late = Instant::ZERO + arp::ENTRY_LIFETIME - Duration::from_secs(2);
        // Time passes (and the second announcement goes) before the application connects.
        poll(&mut interface, late);
        interface
            .tcp()
            .borrow_mut()
            .connect(SocketAddrV4::new(PEER_IP, 80), None)
            .expect("connect");
        let sent = poll(&mut interface, late);
        // The SYN still goes out at once, and a request goes straight to the peer's MAC.
        assert_eq!(sent.len(), 2);
        let requests: Vec<_> = sent
            .iter()
            .filter(|frame| frame[12..14] == [0x08, 0x06])
            .map(|frame| parse_arp(frame))
            .collect();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].0, PEER);
        assert_eq!(requests[0].1.target_protocol, PEER_IP);
        let reply = ArpMessage::reply_to(&requests[0].1, PEER);
        interface.receive(late, &arp_frame(reply, US));
        assert_eq!(
            interface
                .arp_cache()
                .lookup(late + Duration::from_secs(30), PEER_IP),
            Some(PEER)
        );
    }

    #[test]
    fn unanswered_resolutions_give_up_and_count_their_packets() {
        let mut interface = interface();
        poll(&mut interface, Instant::ZERO);
        interface
            .tcp()
            .borrow_mut()
            .connect(SocketAddrV4::new(PEER_IP, 80), None)
            .expect("connect");
        let is_request_for_peer = |frame: &Vec<u8>| {
            frame[12..14] == [0x08, 0x06] && parse_arp(frame).1.target_protocol == PEER_IP
        };
        let mut requests = poll(&mut interface, Instant::ZERO)
            .iter()
            .filter(|frame| is_request_for_peer(frame))
            .count();
        let mut now = Instant::ZERO;
        loop {
            now = now + Duration::from_millis(250);
            let sent = poll(&mut interface, now);
            if interface.counters().drops(DropReason::ArpResolutionFailed) > 0 {
                // TCP's retransmitted SYN may start a new resolution in this same poll.
                break;
            }
            requests += sent
                .iter()
                .filter(|frame| is_request_for_peer(frame))
                .count();
        }
        // RFC 1122 2.3.2.1: a few requests a second apart, then the waiting packets go.
        assert_eq!(requests, usize::from(arp::MAX_REQUESTS));
        assert_eq!(
            now,
            Instant::ZERO + arp::REQUEST_INTERVAL * u32::from(arp::MAX_REQUESTS)
        );
    }

    #[test]
    fn icmp_errors_about_our_segments_reach_tcp() {
        let mut interface = interface();
        let mut message = alloc::vec![3, 3, 0, 0, 0, 0, 0, 0];
        let mut quoted = [0u8; 28];
        quoted[0] = 0x45;
        quoted[9] = 6;
        quoted[12..16].copy_from_slice(&OUR_IP.octets());
        quoted[16..20].copy_from_slice(&PEER_IP.octets());
        quoted[20..22].copy_from_slice(&40000u16.to_be_bytes());
        quoted[22..24].copy_from_slice(&80u16.to_be_bytes());
        message.extend_from_slice(&quoted);
        Icmpv4Packet::new_unchecked(&mut message[..]).fill_checksum();
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Icmp, &message),
        );
        assert_eq!(interface.counters().icmp_errors_delivered, 1);

        message[0] = 11; // time exceeded: a soft error, remembered by TCP
        message[2..4].copy_from_slice(&[0, 0]);
        Icmpv4Packet::new_unchecked(&mut message[..]).fill_checksum();
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Icmp, &message),
        );
        assert_eq!(interface.counters().icmp_errors_delivered, 2);
        assert_eq!(interface.tcp().borrow().counters().icmp_errors, 2);
    }

    #[test]
    fn a_port_unreachable_quoting_our_syn_refuses_the_connection() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let handle = interface
            .tcp()
            .borrow_mut()
            .connect(SocketAddrV4::new(PEER_IP, 80), None)
            .expect("connect");
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 1);
        // RFC 792: the error quotes the IP header and the first 8 bytes of our SYN.
        let syn_packet = &sent[0][ethernet::HEADER_LEN..];
        let mut message = alloc::vec![3, 3, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&syn_packet[..ipv4::HEADER_LEN + 8]);
        let now = Instant::from_millis(5);
        // A forged error with a sequence number that is not in flight changes nothing
        // (RFC 5927 section 4.1).
        let mut forged = message.clone();
        forged[8 + ipv4::HEADER_LEN + 4] ^= 0x80;
        Icmpv4Packet::new_unchecked(&mut forged[..]).fill_checksum();
        interface.receive(now, &ipv4_frame(PEER_IP, IpProtocol::Icmp, &forged));
        let readiness = interface
            .tcp()
            .borrow()
            .readiness(handle)
            .expect("readiness");
        assert_eq!(readiness.error, None);

        Icmpv4Packet::new_unchecked(&mut message[..]).fill_checksum();
        interface.receive(now, &ipv4_frame(PEER_IP, IpProtocol::Icmp, &message));
        assert_eq!(interface.counters().icmp_errors_delivered, 2);
        let readiness = interface
            .tcp()
            .borrow()
            .readiness(handle)
            .expect("readiness");
        assert_eq!(readiness.error, Some(tcp::SocketError::ConnectionRefused));
    }

    fn udp_datagram(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut datagram = alloc::vec![0u8; udp::datagram::HEADER_LEN + payload.len()];
        udp::datagram::write(
            &mut datagram,
            (PEER_IP, source_port),
            (OUR_IP, destination_port),
            payload,
        );
        datagram
    }

    fn udp_frame(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
        ipv4_frame(
            PEER_IP,
            IpProtocol::Udp,
            &udp_datagram(source_port, destination_port, payload),
        )
    }

    /// The ICMP messages among `frames`, as (type, code, quoted bytes).
    fn icmp_messages(frames: &[Vec<u8>]) -> Vec<(u8, u8, Vec<u8>)> {
        frames
            .iter()
            .filter_map(|frame| {
                let ethernet = EthernetFrame::new_checked(&frame[..]).ok()?;
                let packet = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
                if packet.next_header() != IpProtocol::Icmp {
                    return None;
                }
                assert!(packet.verify_checksum());
                let icmp = Icmpv4Packet::new_checked(packet.payload()).unwrap();
                assert!(icmp.verify_checksum());
                let bytes = packet.payload();
                Some((bytes[0], bytes[1], bytes[8..].to_vec()))
            })
            .collect()
    }

    #[test]
    fn a_datagram_reaches_its_socket_and_bad_ones_are_counted_by_reason() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        let socket = interface
            .udp()
            .borrow_mut()
            .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5353))
            .unwrap();
        interface.receive(Instant::ZERO, &udp_frame(4000, 5353, b"hello"));
        assert_eq!(interface.counters().udp_datagrams_delivered, 1);
        let mut buffer = [0u8; 16];
        assert_eq!(
            interface.udp().borrow_mut().recv_from(socket, &mut buffer),
            Ok((5, SocketAddrV4::new(PEER_IP, 4000)))
        );

        let mut corrupt = udp_frame(4000, 5353, b"hello");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        interface.receive(Instant::ZERO, &corrupt);
        assert_eq!(interface.counters().drops(DropReason::UdpBadChecksum), 1);

        // No checksum at all is allowed over IPv4 (RFC 768).
        let mut unchecked = udp_datagram(4000, 5353, b"plain");
        unchecked[6..8].copy_from_slice(&[0, 0]);
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Udp, &unchecked),
        );
        assert_eq!(interface.counters().udp_datagrams_delivered, 2);

        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Udp, &[0, 1, 2, 3, 4]),
        );
        assert_eq!(interface.counters().drops(DropReason::UdpTruncated), 1);
        assert_every_frame_counted(&interface);
    }

    #[test]
    fn a_closed_port_is_answered_with_port_unreachable_quoting_the_datagram() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let frame = udp_frame(4000, 9999, b"anyone?");
        interface.receive(Instant::ZERO, &frame);
        assert_eq!(interface.counters().drops(DropReason::UdpNoSocket), 1);
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            EthernetFrame::new_checked(&sent[0][..]).unwrap().dst_addr(),
            PEER
        );
        let messages = icmp_messages(&sent);
        assert_eq!(messages.len(), 1);
        let (message_type, code, quoted) = &messages[0];
        assert_eq!((*message_type, *code), (3, 3));
        // The whole offending IPv4 packet (it is short), header first (RFC 792).
        assert_eq!(&quoted[..], &frame[ethernet::HEADER_LEN..]);
        assert_eq!(interface.counters().port_unreachables_sent, 1);
    }

    #[test]
    fn no_port_unreachable_about_a_broadcast() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        // To the subnet's broadcast address.
        let mut frame = udp_frame(68, 9999, b"x");
        {
            let mut packet = Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
            packet.set_dst_addr(Ipv4Addr::new(10, 0, 0, 255));
            packet.fill_checksum();
        }
        let datagram = &mut frame[ethernet::HEADER_LEN + ipv4::HEADER_LEN..];
        let mut udp_packet = smoltcp::wire::UdpPacket::new_unchecked(datagram);
        udp_packet.fill_checksum(
            &IpAddress::Ipv4(PEER_IP),
            &IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 255)),
        );
        interface.receive(Instant::ZERO, &frame);
        // To our address, but in an Ethernet broadcast.
        let mut link_broadcast = udp_frame(68, 9999, b"x");
        link_broadcast[..6].copy_from_slice(&[0xff; 6]);
        interface.receive(Instant::ZERO, &link_broadcast);
        assert_eq!(interface.counters().drops(DropReason::UdpNoSocket), 2);
        assert!(poll(&mut interface, Instant::ZERO).is_empty());
        assert_eq!(interface.counters().port_unreachables_sent, 0);
    }

    #[test]
    fn port_unreachables_are_rate_limited_per_core() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let burst = crate::net::icmp_rate_limit::BURST as usize;
        let frame = udp_frame(4000, 9999, b"flood");
        for _ in 0..burst + 20 {
            interface.receive(Instant::ZERO, &frame);
        }
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(icmp_messages(&sent).len(), burst);
        assert_eq!(interface.counters().drops(DropReason::IcmpRateLimited), 20);
        assert_eq!(
            interface.counters().drops(DropReason::UdpNoSocket),
            burst as u64 + 20
        );
        // A millisecond later the bucket holds one more token (1000 a second).
        let later = Instant::from_millis(1);
        interface.receive(later, &frame);
        interface.receive(later, &frame);
        assert_eq!(icmp_messages(&poll(&mut interface, later)).len(), 1);
        assert_eq!(interface.counters().drops(DropReason::IcmpRateLimited), 21);
    }

    #[test]
    fn a_port_unreachable_about_our_datagram_reaches_its_connected_socket() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let udp = interface.udp().clone();
        let socket = udp
            .borrow_mut()
            .connect_new(SocketAddrV4::new(PEER_IP, 53))
            .unwrap();
        udp.borrow_mut().send(socket, b"query").unwrap();
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 1);
        let mut message = alloc::vec![3, 3, 0, 0, 0, 0, 0, 0];
        message.extend_from_slice(&sent[0][ethernet::HEADER_LEN..]);
        Icmpv4Packet::new_unchecked(&mut message[..]).fill_checksum();
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Icmp, &message),
        );
        assert_eq!(interface.counters().icmp_errors_delivered, 1);
        let mut buffer = [0u8; 8];
        assert_eq!(
            udp.borrow_mut().recv(socket, &mut buffer),
            Err(udp::UdpError::ConnectionRefused)
        );
        // Once the socket is gone, the same error is dropped and counted.
        udp.borrow_mut().close(socket).unwrap();
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Icmp, &message),
        );
        assert_eq!(interface.counters().drops(DropReason::IcmpErrorNoSocket), 1);
    }

    #[test]
    fn a_sent_datagram_leaves_with_its_checksum_and_a_broadcast_needs_no_arp() {
        let mut interface = interface_that_heard_the_peer_ask_for_us();
        poll(&mut interface, Instant::ZERO);
        let udp = interface.udp().clone();
        let socket = udp
            .borrow_mut()
            .bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
            .unwrap();
        let port = udp.borrow().local_address(socket).unwrap().port();
        udp.borrow_mut()
            .send_to(socket, SocketAddrV4::new(PEER_IP, 53), b"query")
            .unwrap();
        // Broadcast only once allowed (SO_BROADCAST), the subnet's as well as the limited one.
        for broadcast in [Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 0, 0, 255)] {
            assert_eq!(
                udp.borrow_mut()
                    .send_to(socket, SocketAddrV4::new(broadcast, 67), b"everyone"),
                Err(udp::UdpError::BroadcastNotAllowed)
            );
        }
        assert_eq!(udp.borrow().counters().broadcast_refused, 2);
        udp.borrow_mut().set_broadcast(socket, true).unwrap();
        udp.borrow_mut()
            .send_to(
                socket,
                SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
                b"everyone",
            )
            .unwrap();
        assert_eq!(interface.next_deadline(), Some(Instant::ZERO));
        let sent = poll(&mut interface, Instant::ZERO);
        assert_eq!(sent.len(), 2);
        let unicast = EthernetFrame::new_checked(&sent[0][..]).unwrap();
        assert_eq!(unicast.dst_addr(), PEER);
        let packet = Ipv4Packet::new_checked(unicast.payload()).unwrap();
        assert!(packet.verify_checksum());
        let datagram = smoltcp::wire::UdpPacket::new_checked(packet.payload()).unwrap();
        assert_ne!(datagram.checksum(), 0);
        assert!(datagram.verify_checksum(&IpAddress::Ipv4(OUR_IP), &IpAddress::Ipv4(PEER_IP)));
        assert_eq!(
            (datagram.src_port(), datagram.dst_port(), datagram.payload()),
            (port, 53, &b"query"[..])
        );
        let broadcast = EthernetFrame::new_checked(&sent[1][..]).unwrap();
        assert_eq!(broadcast.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(udp.borrow().counters().datagrams_sent, 2);
    }

    #[test]
    fn tcp_with_a_bad_checksum_never_reaches_tcp() {
        let mut interface = interface();
        let mut segment = [0u8; 20];
        segment[12] = 5 << 4;
        segment[13] = 0x02; // SYN
        interface.receive(
            Instant::ZERO,
            &ipv4_frame(PEER_IP, IpProtocol::Tcp, &segment),
        );
        assert_eq!(interface.counters().drops(DropReason::TcpBadChecksum), 1);
        assert_eq!(interface.counters().tcp_segments_delivered, 0);
        assert_eq!(interface.tcp().borrow().counters().segments_in, 0);
    }
}
