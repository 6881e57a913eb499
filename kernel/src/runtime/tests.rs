//! The run loop on an in-memory queue and clock: hand-over to the owning core with its wake-up,
//! ARP copies, halting until the next deadline, and the published counters.

extern crate std;

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::wire::{
    ArpOperation, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol,
    Ipv4Packet, TcpPacket,
};

use super::*;
use crate::net::arp::ArpMessage;
use crate::net::ethernet;
use crate::net::interface::{InterfaceConfig, SinkFull};
use crate::net::ipv4::{self, Ipv4Config};
use crate::net::partition::{GlobalListenTable, ServedPort};
use crate::net::rfd::{CoreId, InboundSegment, ReceiveFlowDeliver, RfdConfig};
use crate::net::tcp::TcpConfig;
use crate::sync::RingMesh;
use crate::time::Instant;

const US: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

/// The wire end of a fake queue: frames to receive, frames sent.
#[derive(Default)]
struct Wire {
    to_receive: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    interrupts_enabled: bool,
    /// Frames handed to the loop, as a driver would count them.
    received: u64,
}

#[derive(Clone, Default)]
struct FakeQueue(Rc<RefCell<Wire>>);

impl QueuePair for FakeQueue {
    fn receive_burst(&mut self, max_frames: usize, handler: &mut dyn FnMut(&[u8])) -> usize {
        let mut count = 0;
        while count < max_frames {
            let Some(frame) = self.0.borrow_mut().to_receive.pop_front() else {
                break;
            };
            handler(&frame);
            self.0.borrow_mut().received += 1;
            count += 1;
        }
        count
    }

    fn transmit(&mut self, length: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<(), SinkFull> {
        let mut frame = vec![0u8; length];
        fill(&mut frame);
        self.0.borrow_mut().sent.push(frame);
        Ok(())
    }

    fn flush(&mut self) {}

    fn enable_interrupts(&mut self) -> bool {
        let mut wire = self.0.borrow_mut();
        wire.interrupts_enabled = true;
        !wire.to_receive.is_empty()
    }

    fn disable_interrupts(&mut self) {
        self.0.borrow_mut().interrupts_enabled = false;
    }

    fn counters(&self) -> NicQueueCounters {
        let wire = self.0.borrow();
        NicQueueCounters {
            rx_frames: wire.received,
            tx_frames: wire.sent.len() as u64,
            ..NicQueueCounters::default()
        }
    }
}

/// A clock the test moves, and a record of wakes and halts. Halting jumps to the deadline.
#[derive(Default)]
struct Machine {
    now: Cell<Instant>,
    wakes: RefCell<Vec<CoreId>>,
    halts: RefCell<Vec<Option<Instant>>>,
}

#[derive(Clone)]
struct FakePlatform(Rc<Machine>);

impl Platform for FakePlatform {
    fn now(&self) -> Instant {
        self.0.now.get()
    }

    fn wake(&self, core: CoreId) {
        self.0.wakes.borrow_mut().push(core);
    }

    fn halt_until(&self, deadline: Option<Instant>) {
        self.0.halts.borrow_mut().push(deadline);
        if let Some(deadline) = deadline {
            self.0.now.set(self.0.now.get().max(deadline));
        }
    }
}

struct Host {
    cores: Vec<CoreRuntime<FakeQueue, FakePlatform>>,
    queues: Vec<FakeQueue>,
    machine: Rc<Machine>,
    doorbells: Arc<Doorbells>,
    statistics: Arc<NetworkStatistics>,
    rfd: Arc<ReceiveFlowDeliver>,
    _served: Vec<ServedPort>,
}

fn host(core_count: usize) -> Host {
    let rfd = Arc::new(ReceiveFlowDeliver::new(RfdConfig::port_xor(core_count).unwrap()).unwrap());
    let listen = GlobalListenTable::new();
    let doorbells = Arc::new(Doorbells::new(core_count));
    let statistics = Arc::new(NetworkStatistics::new(core_count));
    let machine = Rc::new(Machine::default());
    let mut cores = Vec::new();
    let mut queues = Vec::new();
    let mut served = Vec::new();
    for (index, rings) in RingMesh::new(core_count, 16)
        .into_cores()
        .into_iter()
        .enumerate()
    {
        let queue = FakeQueue::default();
        queues.push(queue.clone());
        let setup = CoreSetup {
            core: CoreId(index as u16),
            queue,
            rings,
            rfd: rfd.clone(),
            listen: listen.clone(),
            doorbells: doorbells.clone(),
            statistics: statistics.clone(),
            interface: InterfaceConfig {
                hardware_address: US,
                ipv4: Ipv4Config {
                    address: OUR_IP,
                    prefix_len: 24,
                    gateway: Some(PEER_IP),
                },
            },
            tcp: TcpConfig::default(),
            secret: [index as u8; 16],
            port_start: 7 * index as u16,
        };
        let mut runtime = CoreRuntime::new(setup, FakePlatform(machine.clone())).unwrap();
        served.push(
            runtime
                .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16)
                .unwrap(),
        );
        cores.push(runtime);
    }
    let mut host = Host {
        cores,
        queues,
        machine,
        doorbells,
        statistics,
        rfd,
        _served: served,
    };
    // The start-up announcements go out; forget them.
    for core in 0..core_count {
        host.cores[core].poll_once();
        host.queues[core].0.borrow_mut().sent.clear();
    }
    host
}

impl Host {
    /// A client port whose connections to port 80 Receive Flow Deliver gives to `owner`.
    fn client_port_owned_by(&self, owner: usize) -> u16 {
        (40_000..)
            .find(|&port| {
                let segment = InboundSegment::new(
                    SocketAddrV4::new(PEER_IP, port),
                    SocketAddrV4::new(OUR_IP, 80),
                );
                self.rfd.rss_owner(&segment) == CoreId(owner as u16)
            })
            .unwrap()
    }

    fn sent(&self, core: usize) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.queues[core].0.borrow_mut().sent)
    }
}

fn syn_frame(source_port: u16) -> Vec<u8> {
    syn_frame_to(source_port, 80)
}

fn syn_frame_to(source_port: u16, destination_port: u16) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&source_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&destination_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    TcpPacket::new_unchecked(&mut tcp[..])
        .fill_checksum(&IpAddress::Ipv4(PEER_IP), &IpAddress::Ipv4(OUR_IP));
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv4::HEADER_LEN + tcp.len()];
    let packet = ethernet::write_header(&mut frame, PEER, US, EthernetProtocol::Ipv4);
    ipv4::write_header(packet, PEER_IP, OUR_IP, IpProtocol::Tcp, tcp.len()).copy_from_slice(&tcp);
    frame
}

fn arp_frame(message: ArpMessage, destination: EthernetAddress) -> Vec<u8> {
    let mut frame = vec![0u8; ethernet::HEADER_LEN + crate::net::arp::PACKET_LEN];
    let payload = ethernet::write_header(
        &mut frame,
        message.sender_hardware,
        destination,
        EthernetProtocol::Arp,
    );
    message.write(payload);
    frame
}

#[test]
fn a_syn_on_the_wrong_queue_wakes_its_owner_which_answers_once_arp_is_learnt() {
    let mut host = host(2);
    let port = host.client_port_owned_by(0);
    // Core 0 is about to halt; the SYN arrives on core 1's queue.
    host.doorbells.announce_halt(CoreId(0));
    host.queues[1]
        .0
        .borrow_mut()
        .to_receive
        .push_back(syn_frame(port));
    assert!(host.cores[1].poll_once());
    assert_eq!(host.cores[1].counters().rfd_forwarded, 1);
    assert_eq!(*host.machine.wakes.borrow(), [CoreId(0)]);
    assert!(
        host.sent(1).is_empty(),
        "core 1 does not answer a flow it does not own"
    );

    // The owner takes it from its ring; it does not know the peer's MAC yet, so it asks.
    assert!(host.cores[0].poll_once());
    assert_eq!(host.cores[0].counters().rfd_received, 1);
    let sent = host.sent(0);
    assert_eq!(sent.len(), 1);
    let frame = EthernetFrame::new_checked(&sent[0][..]).unwrap();
    assert_eq!(frame.ethertype(), EthernetProtocol::Arp);
    let request = ArpMessage::parse(frame.payload()).unwrap();
    assert_eq!(request.operation, ArpOperation::Request);
    assert_eq!(request.target_protocol, PEER_IP);

    // The reply lands on core 1's queue; core 1 passes a copy to core 0, which then sends
    // its SYN-ACK from its own queue.
    let reply = ArpMessage::reply_to(&request, PEER);
    host.queues[1]
        .0
        .borrow_mut()
        .to_receive
        .push_back(arp_frame(reply, US));
    host.cores[1].poll_once();
    host.cores[0].poll_once();
    let sent = host.sent(0);
    assert_eq!(sent.len(), 1, "one SYN-ACK");
    let frame = EthernetFrame::new_checked(&sent[0][..]).unwrap();
    assert_eq!(frame.dst_addr(), PEER);
    let packet = Ipv4Packet::new_checked(frame.payload()).unwrap();
    let segment = TcpPacket::new_checked(packet.payload()).unwrap();
    assert!(segment.syn() && segment.ack());
    assert_eq!(segment.dst_port(), port);
    assert_eq!(segment.ack_number().0, 1001);
    assert_eq!(
        host.cores[0].counters().tcp_passive_opens,
        0,
        "not yet established"
    );
    assert!(host.sent(1).is_empty());
}

#[test]
fn an_idle_core_halts_until_its_next_deadline_but_not_while_frames_wait() {
    let mut host = host(1);
    assert!(!host.cores[0].poll_once(), "nothing to do after start-up");
    let deadline = host.cores[0].next_deadline();
    assert!(deadline.is_some(), "the second ARP announcement is due");
    host.cores[0].idle();
    assert_eq!(*host.machine.halts.borrow(), [deadline]);
    assert!(
        !host.queues[0].0.borrow().interrupts_enabled,
        "polling again"
    );
    assert_eq!(host.cores[0].counters().halts, 1);

    // A frame is waiting when the core enables its interrupt: it must not halt.
    host.queues[0]
        .0
        .borrow_mut()
        .to_receive
        .push_back(syn_frame(40_000));
    host.cores[0].idle();
    assert_eq!(host.machine.halts.borrow().len(), 1);
    assert!(host.cores[0].poll_once());
}

#[test]
fn a_core_does_not_halt_over_a_frame_handed_to_it_just_before() {
    let mut host = host(2);
    let port = host.client_port_owned_by(0);
    host.queues[1]
        .0
        .borrow_mut()
        .to_receive
        .push_back(syn_frame(port));
    host.cores[1].poll_once();
    assert!(
        host.machine.wakes.borrow().is_empty(),
        "core 0 was not halted"
    );
    // Core 0 goes idle with the frame on its ring: its last look finds it.
    host.cores[0].idle();
    assert!(host.machine.halts.borrow().is_empty());
    assert_eq!(host.cores[0].counters().halts, 0);
}

#[test]
fn the_report_has_a_line_per_core_and_a_total() {
    let mut host = host(2);
    for core in 0..2 {
        let port = host.client_port_owned_by(core);
        host.queues[core]
            .0
            .borrow_mut()
            .to_receive
            .push_back(syn_frame(port));
        host.cores[core].poll_once();
    }
    let mut report = String::new();
    host.statistics.write_report(&mut report).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("core=0 rx_frames=1 "), "{report}");
    assert!(lines[1].starts_with("core=1 rx_frames=1 "), "{report}");
    assert!(lines[2].starts_with("core=total rx_frames=2 "), "{report}");
    assert!(lines[2].contains(" rfd_local=2 "), "{report}");
}

#[test]
fn the_published_counters_carry_the_queue_s_and_the_tcp_layer_s_own() {
    let mut host = host(1);
    let port = host.client_port_owned_by(0);
    {
        let mut wire = host.queues[0].0.borrow_mut();
        wire.to_receive.push_back(syn_frame(port));
        // Nobody listens on 81: a drop for want of a socket (answered with a RST).
        wire.to_receive.push_back(syn_frame_to(port, 81));
    }
    host.cores[0].poll_once();
    let published = host.statistics.core(0).unwrap().snapshot();
    let wire = host.queues[0].0.borrow();
    assert_eq!(published.nic_rx_frames, 2);
    assert_eq!(published.nic_tx_frames, wire.sent.len() as u64);
    // The answers wait for the peer's address; the ARP request went out.
    assert!(published.nic_tx_frames > 0);
    let tcp = host.cores[0].tcp();
    assert_eq!(published.tcp_drops, tcp.borrow().counters().drops);
    assert_eq!(
        published.tcp_drops[crate::net::tcp::DropReason::NoSocket as usize],
        1
    );
    assert_eq!(published.tcp_resets_sent, 1);
}
