//! One host with two cores, each with its own interface and TCP layer (same MAC and address), talking to a peer: RFD-chosen ports bring every reply to the core that opened the connection, and ARP copies keep every core's neighbour cache fed.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use smoltcp::wire::EthernetAddress;
use unisock_kernel::net::counters::DropReason;
use unisock_kernel::net::interface::{Interface, InterfaceConfig};
use unisock_kernel::net::ipv4::Ipv4Config;
use unisock_kernel::net::partition::FrameSummary;
use unisock_kernel::net::rfd::{FourTuple, LocalPortAllocator, ReceiveFlowDeliver, RfdConfig};
use unisock_kernel::net::tcp::{
    CoreId, PortAllocator, Shutdown, SocketError, SocketHandle, TcpConfig, TcpLayer,
};
use unisock_kernel::socket::SharedTcpLayer;
use unisock_kernel::time::Instant;

const HOST_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
const PEER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
const CORES: usize = 2;

/// TCP's port-allocator hook, answered by RFD's allocator for one core.
struct RfdPorts(LocalPortAllocator);

impl PortAllocator for RfdPorts {
    fn choose_port(
        &mut self,
        local: Ipv4Addr,
        remote: SocketAddrV4,
        is_usable: &mut dyn FnMut(u16) -> bool,
    ) -> Option<u16> {
        let is_usable = RefCell::new(is_usable);
        let not_listening = |_port: u16| false;
        let in_use = |tuple: &FourTuple| !(is_usable.borrow_mut())(tuple.local.port());
        self.0.allocate(local, remote, &not_listening, &in_use).ok()
    }
}

fn interface(
    hardware_address: EthernetAddress,
    address: Ipv4Addr,
    tcp: SharedTcpLayer,
) -> Interface {
    let config = InterfaceConfig {
        hardware_address,
        ipv4: Ipv4Config {
            address,
            prefix_len: 24,
            gateway: None,
        },
    };
    Interface::new(config, tcp, Instant::ZERO)
}

struct Client {
    handle: SocketHandle,
    request: Vec<u8>,
    sent: bool,
    reply: Vec<u8>,
    done: bool,
}

struct World {
    rfd: ReceiveFlowDeliver,
    cores: Vec<Interface>,
    core_tcp: Vec<SharedTcpLayer>,
    peer: Interface,
    peer_tcp: SharedTcpLayer,
    now: Instant,
    /// Whether the run loop hands ARP copies to the cores that did not receive the frame.
    share_arp: bool,
}

impl World {
    fn new(share_arp: bool) -> World {
        let rfd = ReceiveFlowDeliver::new(RfdConfig::port_xor(CORES).unwrap()).unwrap();
        let mut cores = Vec::new();
        let mut core_tcp = Vec::new();
        for core in 0..CORES {
            let id = CoreId(core as u16);
            let tcp = TcpLayer::new(TcpConfig::default(), id, [7; 16]).into_shared();
            let ports = LocalPortAllocator::new(&rfd, id, 1234 + core as u16).unwrap();
            tcp.borrow_mut()
                .set_port_allocator(Box::new(RfdPorts(ports)));
            cores.push(interface(HOST_MAC, HOST_ADDRESS, tcp.clone()));
            core_tcp.push(tcp);
        }
        let peer_tcp = TcpLayer::new(TcpConfig::default(), CoreId(0), [9; 16]).into_shared();
        let peer = interface(PEER_MAC, PEER_ADDRESS, peer_tcp.clone());
        World {
            rfd,
            cores,
            core_tcp,
            peer,
            peer_tcp,
            now: Instant::ZERO,
            share_arp,
        }
    }

    /// The host's run loop for one frame from the wire; the NIC puts everything that is not
    /// TCP on queue 0.
    fn host_receive(&mut self, frame: &[u8]) {
        let no_listener = |_port: u16| false;
        match FrameSummary::of(frame) {
            FrameSummary::Tcp(segment) => {
                let owner = self.rfd.owner_core(&segment.inbound(), &no_listener);
                self.cores[usize::from(owner.0)].receive(self.now, frame);
            }
            FrameSummary::IcmpErrorAboutTcp(segment) => {
                let owner = self.rfd.owner_core(&segment, &no_listener);
                self.cores[usize::from(owner.0)].receive(self.now, frame);
            }
            FrameSummary::Arp => {
                self.cores[0].receive(self.now, frame);
                if self.share_arp {
                    for core in &mut self.cores[1..] {
                        core.observe_arp(self.now, frame);
                    }
                }
            }
            FrameSummary::Udp { .. }
            | FrameSummary::IcmpErrorAboutUdp { .. }
            | FrameSummary::Other => self.cores[0].receive(self.now, frame),
        }
    }

    /// Move every frame that is ready, once; true if any moved.
    fn exchange(&mut self) -> bool {
        let mut moved = false;
        for core in 0..CORES {
            let mut frames: Vec<Vec<u8>> = Vec::new();
            self.cores[core].poll(self.now, &mut frames);
            for frame in frames {
                moved = true;
                self.peer.receive(self.now, &frame);
            }
        }
        let mut frames: Vec<Vec<u8>> = Vec::new();
        self.peer.poll(self.now, &mut frames);
        for frame in frames {
            moved = true;
            self.host_receive(&frame);
        }
        moved
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.cores
            .iter()
            .chain(std::iter::once(&self.peer))
            .filter_map(|interface| interface.next_deadline())
            .min()
    }
}

/// Each core opens one connection; the peer echoes each request back and closes.
fn run(world: &mut World, until: Duration) -> Vec<Client> {
    let listener = world
        .peer_tcp
        .borrow_mut()
        .listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80), 16)
        .unwrap();
    let mut clients: Vec<Client> = (0..CORES)
        .map(|core| {
            let handle = world.core_tcp[core]
                .borrow_mut()
                .connect(SocketAddrV4::new(PEER_ADDRESS, 80), None)
                .unwrap();
            Client {
                handle,
                request: format!("hello from core {core}").into_bytes(),
                sent: false,
                reply: Vec::new(),
                done: false,
            }
        })
        .collect();
    let mut accepted: Vec<(SocketHandle, Vec<u8>)> = Vec::new();
    let end = Instant::ZERO + until;
    while world.now < end && !clients.iter().all(|client| client.done) {
        for (core, client) in clients.iter_mut().enumerate() {
            let mut tcp = world.core_tcp[core].borrow_mut();
            if client.done {
                continue;
            }
            let readiness = tcp.readiness(client.handle).unwrap();
            if readiness.error.is_some() {
                continue;
            }
            if readiness.connected && !client.sent {
                assert_eq!(
                    tcp.write(client.handle, &client.request),
                    Ok(client.request.len())
                );
                tcp.shutdown(client.handle, Shutdown::Write).unwrap();
                client.sent = true;
            }
            let mut buffer = [0u8; 256];
            loop {
                match tcp.read(client.handle, &mut buffer) {
                    Ok(0) => {
                        tcp.close(client.handle).unwrap();
                        client.done = true;
                        break;
                    }
                    Ok(count) => client.reply.extend_from_slice(&buffer[..count]),
                    Err(SocketError::WouldBlock) | Err(SocketError::NotConnected) => break,
                    Err(error) => panic!("core {core} read: {error:?}"),
                }
            }
        }
        {
            let mut tcp = world.peer_tcp.borrow_mut();
            while let Ok(handle) = tcp.accept(listener) {
                accepted.push((handle, Vec::new()));
            }
            accepted.retain_mut(|(handle, request)| {
                let mut buffer = [0u8; 256];
                loop {
                    match tcp.read(*handle, &mut buffer) {
                        Ok(0) => {
                            tcp.write(*handle, request).unwrap();
                            tcp.close(*handle).unwrap();
                            return false;
                        }
                        Ok(count) => request.extend_from_slice(&buffer[..count]),
                        Err(_) => return true,
                    }
                }
            });
        }
        if !world.exchange() {
            match world.next_deadline() {
                Some(deadline) => world.now = world.now.max(deadline),
                None => break,
            }
        }
    }
    clients
}

#[test]
fn every_core_reaches_the_peer_when_arp_is_shared() {
    let mut world = World::new(true);
    let clients = run(&mut world, Duration::from_secs(30));
    for (core, client) in clients.iter().enumerate() {
        assert!(client.done, "core {core} did not finish");
        assert_eq!(client.reply, client.request, "core {core}");
        let local = world.core_tcp[core].borrow().counters().clone();
        assert_eq!(local.resets_received, 0, "core {core}: {local:?}");
    }
    // Core 1 never got an ARP frame from the NIC; it learnt the peer from core 0's copies.
    assert!(world.cores[1].counters().arp_frames_observed > 0);
    assert_eq!(
        world.cores[1].counters().frames_received,
        world.cores[1].counters().tcp_segments_delivered
    );
    for core in &world.cores {
        assert_eq!(core.counters().drops(DropReason::ArpResolutionFailed), 0);
    }
    // Every reply reached the core that owns the connection: no core answered a stray
    // segment with a reset.
    assert_eq!(world.peer_tcp.borrow().counters().resets_received, 0);
}

#[test]
fn without_arp_copies_the_other_cores_never_learn_the_peer() {
    let mut world = World::new(false);
    let clients = run(&mut world, Duration::from_secs(5));
    assert!(clients[0].done);
    assert!(!clients[1].done);
    assert!(
        world.cores[1]
            .counters()
            .drops(DropReason::ArpResolutionFailed)
            > 0
    );
}
