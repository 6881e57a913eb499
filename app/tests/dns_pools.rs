//! Backends found by name over the simulated network: a scripted DNS server on its own host, two HTTP backends, the proxy resolving `web.unisock.test:8080` (A) or `_http._tcp.unisock.test` (SRV); the pool follows a change of the records within the TTL with no client error, keeps its last answer when the resolver goes silent (and says so), uses SRV ports and weights, keeps the health state of the addresses that stay, and has no backend before the first answer.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use unisock_app::config::Configuration;
use unisock_app::control::{ControlBoard, CoreProxy, CoreProxyStart, follow_names};
use unisock_app::proxy::WorkerPlace;
use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::{GlobalListenTable, PortOpener};
use unisock_kernel::net::tcp::CoreId;
use unisock_kernel::socket::{TcpListener, TcpStream, UdpSocket};
use unisock_kernel::time::Instant;
use unisock_sim::{Impairments, Network, host_address};

const CLIENT: usize = 0;
const PROXY: usize = 1;
const DNS: usize = 2;
/// Backends are hosts 3 and 4.
const FIRST_BACKEND: usize = 3;
const BACKEND_PORT: u16 = 8080;
const OTHER_PORT: u16 = 9090;
/// The records' TTL: the resolver's floor (5 s), so the pool must follow within it.
const TTL: u32 = 5;

/// How the scripted DNS server answers an SRV target's A query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetLookup {
    Answers,
    ServerFailure,
    Silent,
}

/// What the scripted DNS server answers.
#[derive(Clone, Debug)]
enum Zone {
    /// A records with these addresses.
    Addresses(Vec<Ipv4Addr>),
    /// SRV records: (target's address, port, weight), each target's A record as additional data.
    Services(Vec<(Ipv4Addr, u16, u16)>),
    /// SRV records (target's address, port, weight, how the target's A lookup goes) with no
    /// additional data: each target is looked up on its own.
    TargetsLookedUp(Vec<(Ipv4Addr, u16, u16, TargetLookup)>),
    /// No answer at all.
    Silent,
}

fn name_wire(dotted: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in dotted.split('.') {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// The answer to `query` (its id and question copied) from `zone`.
fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    let mut message = query[..2].to_vec();
    message.extend_from_slice(&0x8180u16.to_be_bytes());
    message.extend_from_slice(&1u16.to_be_bytes());
    let mut records = Vec::new();
    let mut additional = Vec::new();
    let (answers, extra) = match zone {
        Zone::Silent => return None,
        Zone::TargetsLookedUp(targets) => {
            let question = &query[12..];
            let query_type = u16::from_be_bytes([query[query.len() - 4], query[query.len() - 3]]);
            if query_type == 33 {
                for (index, (_, port, weight, _)) in targets.iter().enumerate() {
                    let target = name_wire(&format!("b{index}.unisock.test"));
                    records.extend_from_slice(&[0xC0, 12, 0, 33, 0, 1]);
                    records.extend_from_slice(&TTL.to_be_bytes());
                    records.extend_from_slice(&(6 + target.len() as u16).to_be_bytes());
                    records.extend_from_slice(&10u16.to_be_bytes());
                    records.extend_from_slice(&weight.to_be_bytes());
                    records.extend_from_slice(&port.to_be_bytes());
                    records.extend_from_slice(&target);
                }
                (targets.len(), 0)
            } else {
                let (address, answers) = targets
                    .iter()
                    .enumerate()
                    .find(|(index, _)| {
                        question.starts_with(&name_wire(&format!("b{index}.unisock.test")))
                    })
                    .map(|(_, (address, _, _, lookup))| (*address, *lookup))?;
                if answers == TargetLookup::Silent {
                    return None;
                }
                if answers == TargetLookup::ServerFailure {
                    // SERVFAIL, no record.
                    message[2..4].copy_from_slice(&0x8182u16.to_be_bytes());
                    (0, 0)
                } else {
                    records.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
                    records.extend_from_slice(&TTL.to_be_bytes());
                    records.extend_from_slice(&4u16.to_be_bytes());
                    records.extend_from_slice(&address.octets());
                    (1, 0)
                }
            }
        }
        Zone::Addresses(addresses) => {
            for address in addresses {
                records.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
                records.extend_from_slice(&TTL.to_be_bytes());
                records.extend_from_slice(&4u16.to_be_bytes());
                records.extend_from_slice(&address.octets());
            }
            (addresses.len(), 0)
        }
        Zone::Services(services) => {
            for (index, (address, port, weight)) in services.iter().enumerate() {
                let target = name_wire(&format!("b{index}.unisock.test"));
                records.extend_from_slice(&[0xC0, 12, 0, 33, 0, 1]);
                records.extend_from_slice(&TTL.to_be_bytes());
                records.extend_from_slice(&(6 + target.len() as u16).to_be_bytes());
                records.extend_from_slice(&10u16.to_be_bytes());
                records.extend_from_slice(&weight.to_be_bytes());
                records.extend_from_slice(&port.to_be_bytes());
                records.extend_from_slice(&target);
                additional.extend_from_slice(&target);
                additional.extend_from_slice(&[0, 1, 0, 1]);
                additional.extend_from_slice(&TTL.to_be_bytes());
                additional.extend_from_slice(&4u16.to_be_bytes());
                additional.extend_from_slice(&address.octets());
            }
            (services.len(), services.len())
        }
    };
    message.extend_from_slice(&(answers as u16).to_be_bytes());
    message.extend_from_slice(&[0, 0]);
    message.extend_from_slice(&(extra as u16).to_be_bytes());
    message.extend_from_slice(&query[12..]);
    message.extend_from_slice(&records);
    message.extend_from_slice(&additional);
    Some(message)
}

/// The DNS server on port 53 of its host, answering from `zone` as it is when asked; the ids
/// of the queries it got, in order.
fn start_dns(network: &mut Network, zone: Rc<RefCell<Zone>>) -> Rc<RefCell<Vec<u16>>> {
    let ids = Rc::new(RefCell::new(Vec::new()));
    let seen = ids.clone();
    let socket = UdpSocket::bind(
        &network.hosts[DNS].udp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53),
    )
    .unwrap();
    network.hosts[DNS].executor.spawn(async move {
        let mut buffer = [0u8; 1024];
        while let Ok((count, sender)) = socket.recv_from(&mut buffer).await {
            if count >= 2 {
                seen.borrow_mut()
                    .push(u16::from_be_bytes([buffer[0], buffer[1]]));
            }
            let reply = answer(&buffer[..count], &zone.borrow());
            if let Some(reply) = reply {
                let _ = socket.send_to(sender, &reply).await;
            }
        }
    });
    ids
}

/// A backend answering every request with `backend-<host>:<port>`, keeping the connection.
fn start_backend(network: &mut Network, host_index: usize, port: u16) {
    let host = &mut network.hosts[host_index];
    let listener = TcpListener::bind(
        &host.tcp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
        1024,
    )
    .unwrap();
    let handle = host.executor.handle();
    let name = format!("backend-{host_index}:{port}");
    host.executor.spawn(serve_backend(listener, handle, name));
}

async fn serve_backend(listener: TcpListener, handle: Handle, name: String) {
    while let Ok(stream) = listener.accept().await {
        let name = name.clone();
        handle.spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 2048];
            loop {
                while let Some(end) = find(&buffer, b"\r\n\r\n") {
                    buffer.drain(..end + 4);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => {
                        let _ = stream.close();
                        return;
                    }
                    Ok(count) => buffer.extend_from_slice(&chunk[..count]),
                }
            }
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The proxy's one core, following `board` and resolving its names; the console lines it
/// writes are collected.
fn start_proxy(network: &mut Network, board: &Arc<ControlBoard>) -> Rc<RefCell<String>> {
    let host = &network.hosts[PROXY];
    let (core, opened) = CoreProxy::start(CoreProxyStart {
        board: board.clone(),
        place: WorkerPlace { index: 0, count: 1 },
        tcp: host.tcp.clone(),
        opener: PortOpener::new(host.tcp.clone(), CoreId(0), GlobalListenTable::new()),
        handle: host.executor.handle(),
        access_log: None,
        udp: None,
    });
    opened.unwrap();
    let console = Rc::new(RefCell::new(String::new()));
    let lines = console.clone();
    follow_names(
        core,
        host.udp.clone(),
        host.tcp.clone(),
        Some(Rc::new(move |line: &str| {
            let mut lines = lines.borrow_mut();
            lines.push_str(line);
            lines.push('\n');
        })),
    );
    console
}

fn configuration(backends: &str) -> Configuration {
    Configuration::from_sources(
        None,
        &format!(
            "proxy=80 backends={backends} resolvers={}",
            host_address(DNS)
        ),
        &[],
    )
    .unwrap()
}

/// A request's outcome: the status and body of the response.
type Slot = Rc<RefCell<Option<Result<(u16, String), String>>>>;

/// One request on its own connection at `start` (from the network's start).
fn request(network: &mut Network, start: Duration) -> Slot {
    let slot: Slot = Rc::new(RefCell::new(None));
    let result = slot.clone();
    let host = &mut network.hosts[CLIENT];
    let tcp = host.tcp.clone();
    let handle = host.executor.handle();
    let proxy = SocketAddrV4::new(host_address(PROXY), 80);
    host.executor.spawn(async move {
        handle.sleep(start).await;
        let outcome = async {
            let stream = TcpStream::connect(&tcp, proxy)
                .await
                .map_err(|error| format!("connect: {error:?}"))?;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n")
                .await
                .map_err(|error| format!("write: {error:?}"))?;
            let mut received = Vec::new();
            let mut chunk = [0u8; 2048];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) => break,
                    Ok(count) => received.extend_from_slice(&chunk[..count]),
                    Err(error) => return Err(format!("read: {error:?}")),
                }
            }
            let _ = stream.close();
            let text = String::from_utf8_lossy(&received).into_owned();
            let (head, body) = text
                .split_once("\r\n\r\n")
                .ok_or_else(|| format!("no head: {text}"))?;
            let status = head
                .get(9..12)
                .and_then(|status| status.parse().ok())
                .ok_or_else(|| format!("no status: {head}"))?;
            Ok((status, body.to_string()))
        }
        .await;
        *result.borrow_mut() = Some(outcome);
    });
    slot
}

fn run_until(network: &mut Network, at: Duration, start: Instant) {
    while network.now < start + at {
        if !network.step() {
            break;
        }
    }
}

fn backend_name(host_index: usize, port: u16) -> String {
    format!("backend-{host_index}:{port}")
}

#[test]
fn the_pool_follows_a_change_of_the_a_records_within_the_ttl_with_no_client_error() {
    let mut network = Network::new(31, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::Addresses(vec![host_address(
        FIRST_BACKEND,
    )])));
    start_dns(&mut network, zone.clone());
    start_backend(&mut network, FIRST_BACKEND, BACKEND_PORT);
    start_backend(&mut network, FIRST_BACKEND + 1, BACKEND_PORT);
    let board = ControlBoard::new(
        configuration(&format!("web.unisock.test:{BACKEND_PORT}")),
        1,
        Vec::new(),
    );
    start_proxy(&mut network, &board);
    // A request every 100 ms from 1 s to 16 s; the records change at 3 s.
    let slots: Vec<(Duration, Slot)> = (10..160u64)
        .map(|tenth| {
            let at = Duration::from_millis(tenth * 100);
            (at, request(&mut network, at))
        })
        .collect();
    run_until(&mut network, Duration::from_secs(3), start);
    *zone.borrow_mut() = Zone::Addresses(vec![host_address(FIRST_BACKEND + 1)]);
    run_until(&mut network, Duration::from_secs(20), start);

    let change = Duration::from_secs(3);
    let first = backend_name(FIRST_BACKEND, BACKEND_PORT);
    let second = backend_name(FIRST_BACKEND + 1, BACKEND_PORT);
    for (at, slot) in &slots {
        let outcome = slot.borrow().clone();
        let Some(Ok((200, body))) = outcome else {
            panic!("request at {at:?}: {outcome:?}");
        };
        if *at < change {
            assert_eq!(body, first, "request at {at:?}");
        }
        // Within the TTL of the change (plus a resolution's round trip).
        if *at >= change + Duration::from_secs(u64::from(TTL)) + Duration::from_millis(500) {
            assert_eq!(body, second, "request at {at:?}");
        }
    }
    let state = board
        .discovery
        .name("default", &format!("web.unisock.test:{BACKEND_PORT}"))
        .unwrap();
    assert_eq!(state.changed, 2, "{state:?}");
    assert_eq!(state.addresses, 1);
    assert!(!state.serving_stale);
    let current = board.current();
    assert_eq!(
        current.configuration.pools[0].settings.backends[0].address,
        SocketAddrV4::new(host_address(FIRST_BACKEND + 1), BACKEND_PORT)
    );
    assert!(board.discovery.resolver_counters().answers_accepted >= 3);
}

#[test]
fn a_resolver_that_stops_answering_leaves_the_last_answer_in_force_and_says_so() {
    let mut network = Network::new(32, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::Addresses(vec![host_address(
        FIRST_BACKEND,
    )])));
    start_dns(&mut network, zone.clone());
    start_backend(&mut network, FIRST_BACKEND, BACKEND_PORT);
    let board = ControlBoard::new(
        configuration(&format!("web.unisock.test:{BACKEND_PORT}")),
        1,
        Vec::new(),
    );
    let console = start_proxy(&mut network, &board);
    let slots: Vec<(Duration, Slot)> = (2..30u64)
        .map(|second| {
            let at = Duration::from_secs(second);
            (at, request(&mut network, at))
        })
        .collect();
    run_until(&mut network, Duration::from_secs(1), start);
    *zone.borrow_mut() = Zone::Silent;
    run_until(&mut network, Duration::from_secs(32), start);

    for (at, slot) in &slots {
        let outcome = slot.borrow().clone();
        assert_eq!(
            outcome,
            Some(Ok((200, backend_name(FIRST_BACKEND, BACKEND_PORT)))),
            "request at {at:?}"
        );
    }
    let state = board
        .discovery
        .name("default", &format!("web.unisock.test:{BACKEND_PORT}"))
        .unwrap();
    assert!(state.serving_stale, "{state:?}");
    assert!(state.failed >= 2, "{state:?}");
    assert_eq!(state.addresses, 1);
    let said = console.borrow().clone();
    assert_eq!(
        said.matches("keeping the last good answer (1 addresses)")
            .count(),
        1,
        "said once: {said}"
    );
    assert!(board.discovery.resolver_counters().timeouts > 0);
    let mut exposition = String::new();
    unisock_kernel::metrics::write_prometheus(&[&*board], &mut exposition).unwrap();
    assert!(
        exposition.contains(
            "unisock_dns_serving_stale{pool=\"default\",name=\"web.unisock.test:8080\"} 1"
        ),
        "{exposition}"
    );

    // The resolver answers again: the line says so and the gauge falls.
    *zone.borrow_mut() = Zone::Addresses(vec![host_address(FIRST_BACKEND)]);
    run_until(&mut network, Duration::from_secs(45), start);
    let said = console.borrow().clone();
    assert!(said.contains("answered again"), "{said}");
    assert!(
        !board
            .discovery
            .name("default", &format!("web.unisock.test:{BACKEND_PORT}"))
            .unwrap()
            .serving_stale
    );
}

#[test]
fn srv_records_give_the_backends_their_ports_and_weights() {
    let mut network = Network::new(33, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::Services(vec![
        (host_address(FIRST_BACKEND), BACKEND_PORT, 60),
        (host_address(FIRST_BACKEND + 1), OTHER_PORT, 40),
    ])));
    start_dns(&mut network, zone);
    start_backend(&mut network, FIRST_BACKEND, BACKEND_PORT);
    start_backend(&mut network, FIRST_BACKEND + 1, OTHER_PORT);
    let configuration = configuration("_http._tcp.unisock.test balance=wrr");
    let board = ControlBoard::new(configuration, 1, Vec::new());
    start_proxy(&mut network, &board);
    let slots: Vec<Slot> = (0..50u64)
        .map(|index| request(&mut network, Duration::from_millis(1000 + index * 20)))
        .collect();
    run_until(&mut network, Duration::from_secs(4), start);

    let current = board.current();
    let backends: Vec<(SocketAddrV4, u32)> = current.configuration.pools[0]
        .settings
        .backends
        .iter()
        .map(|backend| (backend.address, backend.weight))
        .collect();
    assert_eq!(
        backends,
        [
            (
                SocketAddrV4::new(host_address(FIRST_BACKEND), BACKEND_PORT),
                60
            ),
            (
                SocketAddrV4::new(host_address(FIRST_BACKEND + 1), OTHER_PORT),
                40
            )
        ]
    );
    let mut first = 0;
    for slot in &slots {
        let outcome = slot.borrow().clone();
        match outcome {
            Some(Ok((200, body))) if body == backend_name(FIRST_BACKEND, BACKEND_PORT) => {
                first += 1
            }
            Some(Ok((200, body))) if body == backend_name(FIRST_BACKEND + 1, OTHER_PORT) => {}
            other => panic!("{other:?}"),
        }
    }
    // Smooth weighted round robin: exactly 60 % of 50.
    assert_eq!(first, 30);
}

#[test]
fn an_srv_target_that_stops_resolving_keeps_its_addresses_in_the_pool() {
    let mut network = Network::new(36, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::TargetsLookedUp(vec![
        (
            host_address(FIRST_BACKEND),
            BACKEND_PORT,
            1,
            TargetLookup::Answers,
        ),
        (
            host_address(FIRST_BACKEND + 1),
            OTHER_PORT,
            1,
            TargetLookup::Answers,
        ),
    ])));
    start_dns(&mut network, zone.clone());
    let board = ControlBoard::new(configuration("_http._tcp.unisock.test"), 1, Vec::new());
    start_proxy(&mut network, &board);
    let both = [
        SocketAddrV4::new(host_address(FIRST_BACKEND), BACKEND_PORT),
        SocketAddrV4::new(host_address(FIRST_BACKEND + 1), OTHER_PORT),
    ];
    let pool = |board: &ControlBoard| -> Vec<SocketAddrV4> {
        board.current().configuration.pools[0]
            .settings
            .backends
            .iter()
            .map(|backend| backend.address)
            .collect()
    };
    run_until(&mut network, Duration::from_secs(2), start);
    assert_eq!(pool(&board), both);
    // The second target's A lookup fails from now on, over several TTLs: its address stays
    // (no flapping: the membership never changes again), the answer is served stale.
    if let Zone::TargetsLookedUp(targets) = &mut *zone.borrow_mut() {
        targets[1].3 = TargetLookup::ServerFailure;
    }
    for second in 3..40 {
        run_until(&mut network, Duration::from_secs(second), start);
        assert_eq!(pool(&board), both, "at {second} s");
    }
    let state = board
        .discovery
        .name("default", "_http._tcp.unisock.test")
        .unwrap();
    assert_eq!(state.changed, 1, "{state:?}");
    assert!(state.failed >= 2, "{state:?}");
    assert!(state.serving_stale, "{state:?}");
    assert_eq!(state.addresses, 2);
}

#[test]
fn two_names_with_the_same_address_each_report_it_and_keep_it_when_the_resolver_stops() {
    let mut network = Network::new(37, Impairments::clean(), 5);
    let start = network.now;
    // The scripted server gives every name the same answer.
    let zone = Rc::new(RefCell::new(Zone::Addresses(vec![host_address(
        FIRST_BACKEND,
    )])));
    start_dns(&mut network, zone.clone());
    let board = ControlBoard::new(
        configuration(&format!(
            "web.unisock.test:{BACKEND_PORT},www.unisock.test:{BACKEND_PORT}"
        )),
        1,
        Vec::new(),
    );
    start_proxy(&mut network, &board);
    run_until(&mut network, Duration::from_secs(2), start);
    let second = format!("www.unisock.test:{BACKEND_PORT}");
    assert_eq!(
        board.discovery.name("default", &second).unwrap().addresses,
        1
    );
    *zone.borrow_mut() = Zone::Silent;
    run_until(&mut network, Duration::from_secs(20), start);
    // The second name's answer in force still has the address the first one put in the pool:
    // the gauge says so in the failure branch as in the success one, and the answer is stale.
    let state = board.discovery.name("default", &second).unwrap();
    assert!(state.failed >= 1, "{state:?}");
    assert_eq!(state.addresses, 1, "{state:?}");
    assert!(state.serving_stale, "{state:?}");
    assert_eq!(
        board.current().configuration.pools[0].settings.backends[0].address,
        SocketAddrV4::new(host_address(FIRST_BACKEND), BACKEND_PORT)
    );
}

#[test]
fn a_resolution_with_many_silent_srv_targets_ends_within_its_deadline() {
    let mut network = Network::new(38, Impairments::clean(), 5);
    let start = network.now;
    // One target answers; twelve are silent, each lookup 2 attempts x 2 s: 48 s one after
    // another, past the 30 s deadline of one resolution.
    let mut targets = vec![(
        host_address(FIRST_BACKEND),
        BACKEND_PORT,
        1,
        TargetLookup::Answers,
    )];
    for index in 1..=12u8 {
        targets.push((
            Ipv4Addr::new(10, 9, 0, index),
            BACKEND_PORT,
            1,
            TargetLookup::Silent,
        ));
    }
    let zone = Rc::new(RefCell::new(Zone::TargetsLookedUp(targets)));
    start_dns(&mut network, zone);
    let board = ControlBoard::new(configuration("_http._tcp.unisock.test"), 1, Vec::new());
    start_proxy(&mut network, &board);
    run_until(&mut network, Duration::from_secs(35), start);
    // Before any answer the target that resolved is used; the resolution ended at its deadline.
    let backends: Vec<SocketAddrV4> = board.current().configuration.pools[0]
        .settings
        .backends
        .iter()
        .map(|backend| backend.address)
        .collect();
    assert_eq!(
        backends,
        [SocketAddrV4::new(host_address(FIRST_BACKEND), BACKEND_PORT)]
    );
    let state = board
        .discovery
        .name("default", "_http._tcp.unisock.test")
        .unwrap();
    assert_eq!(state.changed, 1, "{state:?}");
    // The next resolution has a good answer to keep: the first silent target fails it, and
    // the answer is kept.
    run_until(&mut network, Duration::from_secs(45), start);
    let state = board
        .discovery
        .name("default", "_http._tcp.unisock.test")
        .unwrap();
    assert!(state.failed >= 1, "{state:?}");
    assert!(state.serving_stale, "{state:?}");
}

#[test]
fn query_ids_go_on_after_a_change_of_the_resolvers_instead_of_starting_over() {
    let mut network = Network::new(39, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::Addresses(vec![host_address(
        FIRST_BACKEND,
    )])));
    let ids = start_dns(&mut network, zone);
    let name = format!("web.unisock.test:{BACKEND_PORT}");
    let board = ControlBoard::new(configuration(&name), 1, Vec::new());
    start_proxy(&mut network, &board);
    // Three resolutions (TTL 5 s), then a new resolver list (the same server first).
    run_until(&mut network, Duration::from_secs(12), start);
    let before = ids.borrow().clone();
    assert!(before.len() >= 3, "{before:?}");
    let mut changed = board.current().configuration.clone();
    changed
        .dns
        .resolvers
        .push(SocketAddrV4::new(host_address(9), 53));
    board.publish(changed);
    run_until(&mut network, Duration::from_secs(24), start);
    let after = ids.borrow()[before.len()..].to_vec();
    assert!(after.len() >= 2, "{after:?}");
    // The rebuilt resolver would otherwise repeat the core's sequence from its start.
    assert_ne!(
        after[..2],
        before[..2],
        "before {before:?}, after {after:?}"
    );
}

#[test]
fn before_the_first_answer_the_pool_has_no_backend_and_answers_503() {
    let mut network = Network::new(34, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::Silent));
    start_dns(&mut network, zone);
    start_backend(&mut network, FIRST_BACKEND, BACKEND_PORT);
    let board = ControlBoard::new(
        configuration(&format!("web.unisock.test:{BACKEND_PORT}")),
        1,
        Vec::new(),
    );
    let console = start_proxy(&mut network, &board);
    let slot = request(&mut network, Duration::from_secs(1));
    run_until(&mut network, Duration::from_secs(12), start);
    let outcome = slot.borrow().clone();
    let Some(Ok((503, body))) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(body.contains("503"), "{body}");
    // Counted as a request with no backend to send it to.
    let mut exposition = String::new();
    let current = board.current();
    let metrics = current.metrics();
    unisock_kernel::metrics::write_prometheus(&[&metrics], &mut exposition).unwrap();
    assert!(
        exposition
            .lines()
            .any(|line| line.starts_with("unisock_proxy_no_backend_total{")
                && line.contains("core=\"total\"")
                && line.ends_with(" 1")),
        "{exposition}"
    );
    let state = board
        .discovery
        .name("default", &format!("web.unisock.test:{BACKEND_PORT}"))
        .unwrap();
    // Nothing to keep: failed, but not stale.
    assert!(!state.serving_stale && state.failed >= 1, "{state:?}");
    assert!(console.borrow().contains("(0 addresses)"));
}

/// The index of `address` in the pool in force.
fn position_of(board: &ControlBoard, address: SocketAddrV4) -> Option<usize> {
    board.current().configuration.pools[0]
        .settings
        .backends
        .iter()
        .position(|backend| backend.address == address)
}

#[test]
fn an_address_that_stays_keeps_its_health_state_across_a_change_of_the_records() {
    let mut network = Network::new(35, Impairments::clean(), 6);
    let start = network.now;
    let address =
        |index: usize| SocketAddrV4::new(host_address(FIRST_BACKEND + index), BACKEND_PORT);
    let zone = Rc::new(RefCell::new(Zone::Addresses(vec![
        host_address(FIRST_BACKEND),
        host_address(FIRST_BACKEND + 1),
    ])));
    start_dns(&mut network, zone.clone());
    for index in 0..3 {
        start_backend(&mut network, FIRST_BACKEND + index, BACKEND_PORT);
    }
    let board = ControlBoard::new(
        configuration(&format!("web.unisock.test:{BACKEND_PORT}")),
        1,
        Vec::new(),
    );
    start_proxy(&mut network, &board);
    run_until(&mut network, Duration::from_secs(1), start);
    // The operator drains the first address.
    let drained = position_of(&board, address(0)).expect("resolved");
    assert!(board.current().health[0].set_drained(drained, true));
    let slots: Vec<(Duration, Slot)> = (20..160u64)
        .map(|tenth| {
            let at = Duration::from_millis(tenth * 100);
            (at, request(&mut network, at))
        })
        .collect();
    run_until(&mut network, Duration::from_secs(3), start);
    // The second address goes, a third comes; the first stays, still drained.
    *zone.borrow_mut() = Zone::Addresses(vec![
        host_address(FIRST_BACKEND),
        host_address(FIRST_BACKEND + 2),
    ]);
    run_until(&mut network, Duration::from_secs(20), start);

    let current = board.current();
    let kept = position_of(&board, address(0)).unwrap();
    assert!(position_of(&board, address(1)).is_none());
    assert!(position_of(&board, address(2)).is_some());
    assert!(
        current.health[0].is_drained(kept),
        "the drain was carried over"
    );
    for (at, slot) in &slots {
        let outcome = slot.borrow().clone();
        let Some(Ok((200, body))) = outcome else {
            panic!("request at {at:?}: {outcome:?}");
        };
        assert_ne!(
            body,
            backend_name(FIRST_BACKEND, BACKEND_PORT),
            "request at {at:?}"
        );
        if *at >= Duration::from_millis(8500) {
            assert_eq!(
                body,
                backend_name(FIRST_BACKEND + 2, BACKEND_PORT),
                "request at {at:?}"
            );
        }
    }
}

#[test]
fn a_configuration_without_the_name_stops_its_resolution_within_a_second() {
    let mut network = Network::new(36, Impairments::clean(), 5);
    let start = network.now;
    let zone = Rc::new(RefCell::new(Zone::Addresses(vec![host_address(
        FIRST_BACKEND,
    )])));
    start_dns(&mut network, zone);
    start_backend(&mut network, FIRST_BACKEND, BACKEND_PORT);
    start_backend(&mut network, FIRST_BACKEND + 1, BACKEND_PORT);
    let name = format!("web.unisock.test:{BACKEND_PORT}");
    let board = ControlBoard::new(configuration(&name), 1, Vec::new());
    start_proxy(&mut network, &board);
    run_until(&mut network, Duration::from_secs(1), start);
    assert_eq!(board.discovery.name("default", &name).unwrap().addresses, 1);
    let queries = board.discovery.resolver_counters().queries_sent;
    board.publish(configuration(&format!(
        "{}:{BACKEND_PORT}",
        host_address(FIRST_BACKEND + 1)
    )));
    run_until(&mut network, Duration::from_millis(2500), start);
    assert_eq!(board.discovery.name("default", &name), None);
    let slot = request(&mut network, Duration::from_millis(2600));
    run_until(&mut network, Duration::from_secs(30), start);
    assert_eq!(
        slot.borrow().clone(),
        Some(Ok((200, backend_name(FIRST_BACKEND + 1, BACKEND_PORT))))
    );
    assert_eq!(
        board.discovery.resolver_counters().queries_sent,
        queries,
        "no query after the name went"
    );
}
