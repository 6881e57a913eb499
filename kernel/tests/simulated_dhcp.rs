//! The DHCP client driven over a real `UdpSocket` in the simulator against a scripted server on port 67: a lost DISCOVER, the lease, its renewal at T1.
//!
//! The simulated interface's address is fixed at construction (as the image's is today), so
//! the server offers the client host the address it already has; what this checks is the
//! exchange over the stack (broadcast both ways, the unicast renewal) and the timers on the
//! executor's virtual clock.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use smoltcp::wire::{DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress};
use unisock_kernel::executor::Handle;
use unisock_kernel::net::dhcp::{Action, DhcpClient, Lease};
use unisock_kernel::socket::UdpSocket;
use unisock_sim::{Impairments, Network};

const SERVER: usize = 0;
const CLIENT: usize = 1;
const STEP_LIMIT: u64 = 100_000;
const LEASE_SECONDS: u32 = 20;

/// What the server heard: the message type, the sender, and the time in seconds.
type Heard = Rc<RefCell<Vec<(DhcpMessageType, SocketAddrV4, u64)>>>;

/// The scripted server: ignores the first DISCOVER (lost), offers the client host's address,
/// acknowledges every REQUEST with a 20 s lease; broadcasts while the client has no address
/// (ciaddr 0.0.0.0, RFC 2131 section 4.1), unicasts to ciaddr once it has one.
fn spawn_server(network: &mut Network) -> Heard {
    let socket = UdpSocket::bind(
        &network.hosts[SERVER].udp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67),
    )
    .unwrap();
    socket.set_broadcast(true).unwrap();
    let server_address = network.hosts[SERVER].address;
    let offered = network.hosts[CLIENT].address;
    let handle = network.hosts[SERVER].executor.handle();
    let heard: Heard = Rc::new(RefCell::new(Vec::new()));
    let heard_by_task = heard.clone();
    network.hosts[SERVER].executor.spawn(async move {
        let mut buffer = [0u8; 1500];
        let mut discovers = 0;
        loop {
            let Ok((count, sender)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let packet = DhcpPacket::new_checked(&buffer[..count]).unwrap();
            let request = DhcpRepr::parse(&packet).unwrap();
            heard_by_task.borrow_mut().push((
                request.message_type,
                sender,
                handle.now().as_millis() / 1000,
            ));
            let reply_type = match request.message_type {
                DhcpMessageType::Discover => {
                    discovers += 1;
                    if discovers == 1 {
                        continue;
                    }
                    DhcpMessageType::Offer
                }
                DhcpMessageType::Request => DhcpMessageType::Ack,
                _ => continue,
            };
            let reply = reply(&request, reply_type, server_address, offered);
            let destination = if request.client_ip.is_unspecified() {
                Ipv4Addr::BROADCAST
            } else {
                request.client_ip
            };
            socket
                .send_to(SocketAddrV4::new(destination, 68), &reply)
                .await
                .unwrap();
        }
    });
    heard
}

fn reply(
    request: &DhcpRepr<'_>,
    message_type: DhcpMessageType,
    server: Ipv4Addr,
    offered: Ipv4Addr,
) -> Vec<u8> {
    let lease = LEASE_SECONDS.to_be_bytes();
    let mtu = 1400u16.to_be_bytes();
    let dns = server.octets();
    let options = [
        DhcpOption {
            kind: 26,
            data: &mtu,
        },
        DhcpOption {
            kind: 6,
            data: &dns,
        },
    ];
    let repr = DhcpRepr {
        message_type,
        transaction_id: request.transaction_id,
        secs: 0,
        client_hardware_address: request.client_hardware_address,
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: offered,
        server_ip: Ipv4Addr::UNSPECIFIED,
        router: Some(server),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: request.broadcast,
        requested_ip: None,
        client_identifier: request.client_identifier,
        server_identifier: Some(server),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(u32::from_be_bytes(lease)),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &options,
    };
    let mut buffer = vec![0u8; repr.buffer_len()];
    repr.emit(&mut DhcpPacket::new_unchecked(&mut buffer[..]))
        .unwrap();
    buffer
}

/// The caller's side: a socket on 0.0.0.0:68, the machine's deadline as the receive timeout,
/// each action carried out (the ARP probe is reported clear: the simulator has no other
/// claimant), every `Bound` lease recorded with its time in seconds.
fn spawn_client(network: &mut Network) -> Rc<RefCell<Vec<(Lease, u64)>>> {
    let socket = UdpSocket::bind(
        &network.hosts[CLIENT].udp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
    )
    .unwrap();
    socket.set_broadcast(true).unwrap();
    let handle: Handle = network.hosts[CLIENT].executor.handle();
    let EthernetAddress(mac) = network.hosts[CLIENT].hardware_address;
    let mut client = DhcpClient::new(mac, 99, None, handle.now());
    let leases = Rc::new(RefCell::new(Vec::new()));
    let leases_by_task = leases.clone();
    network.hosts[CLIENT].executor.spawn(async move {
        let mut buffer = [0u8; 1500];
        let mut pending: VecDeque<Action> = VecDeque::new();
        loop {
            pending.extend(client.poll(handle.now()));
            while let Some(action) = pending.pop_front() {
                match action {
                    Action::Send {
                        destination,
                        message,
                    } => {
                        socket
                            .send_to(SocketAddrV4::new(destination, 67), &message)
                            .await
                            .unwrap();
                    }
                    Action::Probe { .. } => {
                        pending.extend(client.probe_result(handle.now(), false))
                    }
                    Action::Bound(lease) => leases_by_task
                        .borrow_mut()
                        .push((lease, handle.now().as_millis() / 1000)),
                    Action::Deconfigure { address } => panic!("lost {address}"),
                }
            }
            let received = match client.next_deadline() {
                Some(deadline) => {
                    let left = deadline.saturating_since(handle.now());
                    // Elapsed: the deadline came first, `poll` above handles it.
                    handle
                        .timeout(left, socket.recv_from(&mut buffer))
                        .await
                        .ok()
                }
                None => Some(socket.recv_from(&mut buffer).await),
            };
            if let Some(Ok((count, _sender))) = received {
                pending.extend(client.receive(handle.now(), &buffer[..count]));
            }
        }
    });
    leases
}

#[test]
fn a_lease_is_acquired_after_a_lost_discover_and_renewed_by_unicast_at_t1() {
    let mut network = Network::new(5, Impairments::clean(), 2);
    let heard = spawn_server(&mut network);
    let leases = spawn_client(&mut network);
    let mut steps = 0;
    while leases.borrow().len() < 2 {
        assert!(network.step(), "the network went idle");
        steps += 1;
        assert!(steps < STEP_LIMIT);
    }
    let leases = leases.borrow();
    let (first, bound_at) = &leases[0];
    assert_eq!(first.address, network.hosts[CLIENT].address);
    assert_eq!(first.prefix_len, 24);
    assert_eq!(first.routers, vec![network.hosts[SERVER].address]);
    assert_eq!(first.dns_servers, vec![network.hosts[SERVER].address]);
    assert_eq!(first.mtu, Some(1400));
    assert_eq!(first.lease_time, Some(Duration::from_secs(20)));
    // The first DISCOVER went unanswered: the second left 4 s +/- 1 s later.
    assert!((3..=5).contains(bound_at), "bound at {bound_at} s");
    // Renewed at T1, half the 20 s lease after the REQUEST.
    assert_eq!(leases[1].1, bound_at + 10);

    let heard = heard.borrow();
    let types: Vec<DhcpMessageType> = heard.iter().map(|(kind, _, _)| *kind).collect();
    assert_eq!(
        types,
        vec![
            DhcpMessageType::Discover,
            DhcpMessageType::Discover,
            DhcpMessageType::Request,
            DhcpMessageType::Request,
        ]
    );
    // Every message came from port 68; the renewal from the leased address.
    assert!(heard.iter().all(|(_, sender, _)| sender.port() == 68));
    assert_eq!(*heard[3].1.ip(), network.hosts[CLIENT].address);
}
