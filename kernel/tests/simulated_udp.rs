//! UDP between two whole stacks in the simulator: an echo server and a client that retries, over clean and impaired wires; closed ports answered, rate-limited and counted.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use unisock_kernel::net::counters::DropReason;
use unisock_kernel::net::icmp_rate_limit;
use unisock_kernel::socket::{UdpError, UdpSocket};
use unisock_sim::{Impairments, Network, Rng, pattern_byte};

const ECHO_PORT: u16 = 7;
const SERVER: usize = 0;
const CLIENT: usize = 1;
const QUERIES: u64 = 40;
const STEP_LIMIT: u64 = 200_000;

/// The echo server: every datagram goes back to its sender.
fn spawn_echo_server(network: &mut Network) {
    let socket = UdpSocket::bind(
        &network.hosts[SERVER].udp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, ECHO_PORT),
    )
    .unwrap();
    network.hosts[SERVER].executor.spawn(async move {
        let mut buffer = [0u8; 2048];
        loop {
            let Ok((count, sender)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let _ = socket.send_to(sender, &buffer[..count]).await;
        }
    });
}

/// The client: `QUERIES` queries on one connected socket, each sent again after 100 ms of
/// silence (a resolver's retransmission), each answered only by its own bytes. Returns the
/// shared list of queries answered and the number of sends.
fn spawn_client(network: &mut Network, seed: u64) -> (Rc<RefCell<Vec<u64>>>, Rc<RefCell<u64>>) {
    let server = SocketAddrV4::new(network.hosts[SERVER].address, ECHO_PORT);
    let socket = UdpSocket::connect(&network.hosts[CLIENT].udp, server).unwrap();
    let executor = network.hosts[CLIENT].executor.handle();
    let answered = Rc::new(RefCell::new(Vec::new()));
    let sends = Rc::new(RefCell::new(0u64));
    let (answered_by_task, sends_by_task) = (answered.clone(), sends.clone());
    network.hosts[CLIENT].executor.spawn(async move {
        for query in 0..QUERIES {
            let length = 1 + (query * 37 % 1400) as usize;
            let payload: Vec<u8> = (0..length as u64)
                .map(|offset| pattern_byte(seed, query, offset))
                .collect();
            'attempts: loop {
                *sends_by_task.borrow_mut() += 1;
                socket.send(&payload).await.unwrap();
                let deadline = executor.now() + Duration::from_millis(100);
                loop {
                    let mut buffer = [0u8; 2048];
                    let left = deadline.saturating_since(executor.now());
                    match executor.timeout(left, socket.recv(&mut buffer)).await {
                        Ok(Ok(count)) if buffer[..count] == payload[..] => break 'attempts,
                        // A late answer to an earlier query (or a duplicate): keep waiting.
                        Ok(Ok(_)) => continue,
                        Ok(Err(error)) => panic!("recv: {error:?}"),
                        Err(_) => continue 'attempts,
                    }
                }
            }
            answered_by_task.borrow_mut().push(query);
        }
    });
    (answered, sends)
}

fn run_echo(seed: u64, impairments: Impairments) -> (Network, u64) {
    let mut network = Network::new(seed, impairments, 2);
    spawn_echo_server(&mut network);
    let (answered, sends) = spawn_client(&mut network, seed);
    let mut steps = 0;
    while answered.borrow().len() < QUERIES as usize {
        assert!(network.step(), "seed {seed}: the network went idle");
        steps += 1;
        assert!(
            steps < STEP_LIMIT,
            "seed {seed}: answered {:?}",
            answered.borrow()
        );
    }
    assert_eq!(*answered.borrow(), (0..QUERIES).collect::<Vec<_>>());
    let sends = *sends.borrow();
    (network, sends)
}

#[test]
fn every_query_is_echoed_over_a_clean_wire_with_no_retry() {
    let (network, sends) = run_echo(1, Impairments::clean());
    assert_eq!(sends, QUERIES);
    let server = network.hosts[SERVER].interface.counters();
    assert_eq!(server.udp_datagrams_delivered, QUERIES);
    for reason in [
        DropReason::UdpBadChecksum,
        DropReason::UdpTruncated,
        DropReason::UdpNoSocket,
        DropReason::UdpQueueFull,
    ] {
        assert_eq!(server.drops(reason), 0, "{reason}");
    }
    assert_eq!(
        network.hosts[CLIENT]
            .udp
            .borrow()
            .counters()
            .datagrams_received,
        QUERIES
    );
}

#[test]
fn every_query_is_echoed_intact_over_impaired_wires() {
    // Loss, duplication, reordering and flipped bits: only the retries and the checksum stand
    // between the client and a wrong answer. A replay is the seed.
    let mut corrupted_seen = 0;
    for seed in 1..=12u64 {
        let impairments = Impairments {
            corruption: 0.05,
            ..Impairments::random(&mut Rng::new(seed ^ 0x0dd_5eed))
        };
        let (network, _) = run_echo(seed, impairments);
        for host in &network.hosts {
            corrupted_seen += host.interface.counters().drops(DropReason::UdpBadChecksum)
                + host.interface.counters().drops(DropReason::Ipv4BadChecksum);
        }
    }
    assert!(
        corrupted_seen > 0,
        "the wire flipped no bit a checksum caught"
    );
}

#[test]
fn a_closed_port_is_answered_and_a_flood_of_them_is_rate_limited() {
    let mut network = Network::new(3, Impairments::clean(), 2);
    let target = SocketAddrV4::new(network.hosts[SERVER].address, 9);
    let socket = UdpSocket::bind(
        &network.hosts[CLIENT].udp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
    )
    .unwrap();
    // Let ARP settle with one datagram (until its answer is back: the socket is not connected,
    // so the port unreachable is not for it), then a flood in one instant.
    socket.try_send_to(target, b"probe").unwrap();
    let answered = |network: &Network| {
        network.hosts[CLIENT]
            .interface
            .counters()
            .drops(DropReason::IcmpErrorNoSocket)
            == 1
    };
    while !answered(&network) {
        assert!(network.step());
    }
    let server = network.hosts[SERVER].interface.counters();
    assert_eq!(server.port_unreachables_sent, 1);
    let burst = u64::from(icmp_rate_limit::BURST);
    let flood = burst + 30;
    let mut queued = 0;
    while queued < flood {
        match socket.try_send_to(target, b"flood") {
            Ok(_) => queued += 1,
            Err(UdpError::WouldBlock) => {
                network.poll_hosts();
            }
            Err(error) => panic!("{error:?}"),
        }
    }
    let mut steps = 0;
    while network.hosts[SERVER]
        .interface
        .counters()
        .drops(DropReason::UdpNoSocket)
        < flood + 1
    {
        assert!(network.step() && steps < 1000, "the flood did not arrive");
        steps += 1;
    }
    let server = network.hosts[SERVER].interface.counters();
    assert_eq!(server.drops(DropReason::UdpNoSocket), flood + 1);
    // The bucket had spent one token on the probe and earned at most one back since.
    let sent = server.port_unreachables_sent - 1;
    let limited = server.drops(DropReason::IcmpRateLimited);
    assert_eq!(sent + limited, flood);
    assert!(limited >= 29, "sent {sent}, limited {limited}");
}

#[test]
fn a_connected_socket_learns_that_its_peer_s_port_is_closed() {
    let mut network = Network::new(4, Impairments::clean(), 2);
    let target = SocketAddrV4::new(network.hosts[SERVER].address, 53);
    let socket = UdpSocket::connect(&network.hosts[CLIENT].udp, target).unwrap();
    let executor = network.hosts[CLIENT].executor.handle();
    let outcome = Rc::new(RefCell::new(None));
    let outcome_by_task = outcome.clone();
    network.hosts[CLIENT].executor.spawn(async move {
        socket.send(b"query").await.unwrap();
        let mut buffer = [0u8; 64];
        let received = executor
            .timeout(Duration::from_secs(1), socket.recv(&mut buffer))
            .await;
        *outcome_by_task.borrow_mut() = Some(received.ok());
    });
    while outcome.borrow().is_none() {
        assert!(network.step());
    }
    // Refused well before the timeout, from the ICMP port unreachable (RFC 1122 4.1.3.3).
    assert_eq!(
        *outcome.borrow(),
        Some(Some(Err(UdpError::ConnectionRefused)))
    );
    assert!(
        network
            .now
            .saturating_since(unisock_kernel::time::Instant::ZERO)
            < Duration::from_secs(1)
    );
    assert_eq!(
        network.hosts[CLIENT]
            .interface
            .counters()
            .icmp_errors_delivered,
        1
    );
}
