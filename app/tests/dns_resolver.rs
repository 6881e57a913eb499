//! The DNS stub resolver over the simulator against scripted servers: answers, a forgery with the wrong id, a lost answer, a truncated answer retried over TCP, fail-over between servers, NXDOMAIN.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use unisock_app::dns::resolver::DEFAULT_ATTEMPT_TIMEOUT;
use unisock_app::dns::{
    Name, RecordType, Resolution, ResolveError, Resolver, ResolverConfig, ResolverCounters,
};
use unisock_kernel::socket::{TcpListener, TcpStream, UdpSocket};
use unisock_sim::{Impairments, Network};

const SERVER: usize = 0;
const CLIENT: usize = 1;
const STEP_LIMIT: u64 = 100_000;
const TTL: u32 = 30;
const UDP_ADDRESSES: [[u8; 4]; 1] = [[10, 9, 0, 1]];
/// More than the UDP answer: what only the TCP answer carries.
const TCP_ADDRESSES: [[u8; 4]; 3] = [[10, 9, 0, 1], [10, 9, 0, 2], [10, 9, 0, 3]];

/// What the scripted server does with the next query it hears.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Answer,
    /// A forged answer with the id off by one, then the real one.
    WrongIdThenAnswer,
    /// An answer to another name with the right id, then the real one.
    WrongQuestionThenAnswer,
    /// Nothing: the query or its answer was lost.
    Silence,
    /// TC set and no records: ask over TCP.
    Truncated,
    ServerFailure,
    NameError,
    /// Two SRV records, the first target's address in the additional section.
    Services,
}

/// The response to `query` (its id and question copied), with `flags` and one A record per
/// address, the owner compressed to a pointer at the question (offset 12).
fn response(query: &[u8], flags: u16, addresses: &[[u8; 4]]) -> Vec<u8> {
    let mut message = query[..2].to_vec();
    message.extend_from_slice(&flags.to_be_bytes());
    message.extend_from_slice(&1u16.to_be_bytes());
    message.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    message.extend_from_slice(&[0, 0, 0, 0]);
    message.extend_from_slice(&query[12..]);
    for address in addresses {
        message.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        message.extend_from_slice(&TTL.to_be_bytes());
        message.extend_from_slice(&4u16.to_be_bytes());
        message.extend_from_slice(address);
    }
    message
}

const ANSWER_FLAGS: u16 = 0x8180;

/// An SRV answer: `one` (priority 10, weight 60, port 9001) and `two` (10, 40, 9002) under
/// the question's domain, compressed against it, with `one`'s address as additional data.
fn services_response(query: &[u8]) -> Vec<u8> {
    let mut message = response(query, ANSWER_FLAGS, &[]);
    message[7] = 2; // ANCOUNT
    message[11] = 1; // ARCOUNT
    let mut targets = Vec::new();
    for (label, weight, port) in [(b"one", 60u16, 9001u16), (b"two", 40, 9002)] {
        message.extend_from_slice(&[0xC0, 12, 0, 33, 0, 1]);
        message.extend_from_slice(&TTL.to_be_bytes());
        message.extend_from_slice(&12u16.to_be_bytes());
        message.extend_from_slice(&10u16.to_be_bytes());
        message.extend_from_slice(&weight.to_be_bytes());
        message.extend_from_slice(&port.to_be_bytes());
        // The target: one label, then a pointer past "_http._tcp" to the domain (offset 23).
        targets.push(message.len() as u16);
        message.push(3);
        message.extend_from_slice(label);
        message.extend_from_slice(&[0xC0, 23]);
    }
    message.extend_from_slice(&(0xC000 | targets[0]).to_be_bytes());
    message.extend_from_slice(&[0, 1, 0, 1]);
    message.extend_from_slice(&7u32.to_be_bytes());
    message.extend_from_slice(&[0, 4, 10, 9, 1, 1]);
    message
}

/// The source and id of each query a server heard.
type Heard = Rc<RefCell<Vec<(SocketAddrV4, u16)>>>;

/// A UDP server on `port` of the server host that replies as `script` says, one entry per query.
fn spawn_udp_server(network: &mut Network, port: u16, script: Vec<Reply>) -> Heard {
    let socket = UdpSocket::bind(
        &network.hosts[SERVER].udp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
    )
    .unwrap();
    let mut script = VecDeque::from(script);
    let heard: Heard = Rc::new(RefCell::new(Vec::new()));
    let heard_by_task = heard.clone();
    network.hosts[SERVER].executor.spawn(async move {
        let mut buffer = [0u8; 1024];
        loop {
            let Ok((count, sender)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let query = buffer[..count].to_vec();
            heard_by_task
                .borrow_mut()
                .push((sender, u16::from_be_bytes([query[0], query[1]])));
            let reply = script
                .pop_front()
                .expect("a query the script did not expect");
            let answer = response(&query, ANSWER_FLAGS, &UDP_ADDRESSES);
            let replies = match reply {
                Reply::Answer => vec![answer],
                Reply::WrongIdThenAnswer => {
                    let mut forged = response(&query, ANSWER_FLAGS, &[[6, 6, 6, 6]]);
                    forged[1] ^= 1;
                    vec![forged, answer]
                }
                Reply::WrongQuestionThenAnswer => {
                    let mut other = response(&query, ANSWER_FLAGS, &[[6, 6, 6, 6]]);
                    // The first letter of the question's name changed.
                    other[13] ^= 0x01;
                    vec![other, answer]
                }
                Reply::Silence => vec![],
                Reply::Truncated => vec![response(&query, ANSWER_FLAGS | 0x0200, &[])],
                Reply::ServerFailure => vec![response(&query, ANSWER_FLAGS | 2, &[])],
                Reply::NameError => vec![response(&query, ANSWER_FLAGS | 3, &[])],
                Reply::Services => vec![services_response(&query)],
            };
            for datagram in replies {
                socket.send_to(sender, &datagram).await.unwrap();
            }
        }
    });
    heard
}

/// A DNS-over-TCP server on port 53 (RFC 7766): each connection gets one length-prefixed
/// answer with all of `TCP_ADDRESSES`.
fn spawn_tcp_server(network: &mut Network, connections: Rc<RefCell<u32>>) {
    let listener = TcpListener::bind(
        &network.hosts[SERVER].tcp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53),
        4,
    )
    .unwrap();
    network.hosts[SERVER].executor.spawn(async move {
        while let Ok(stream) = listener.accept().await {
            *connections.borrow_mut() += 1;
            let mut length = [0u8; 2];
            read_exact(&stream, &mut length).await;
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
            read_exact(&stream, &mut query).await;
            let answer = response(&query, ANSWER_FLAGS, &TCP_ADDRESSES);
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            stream.write_all(&framed).await.unwrap();
            let _ = stream.close();
        }
    });
}

async fn read_exact(stream: &TcpStream, buffer: &mut [u8]) {
    let mut filled = 0;
    while filled < buffer.len() {
        let count = stream.read(&mut buffer[filled..]).await.unwrap();
        assert!(count > 0, "the client closed early");
        filled += count;
    }
}

type Outcome = Rc<RefCell<Option<(Result<Resolution, ResolveError>, ResolverCounters)>>>;

/// Resolves `web.unisock.test` (A) from the client host with `servers` (ports of the server
/// host), running the network until it is done.
fn resolve(
    network: &mut Network,
    ports: &[u16],
) -> (Result<Resolution, ResolveError>, ResolverCounters) {
    resolve_name(network, ports, "web.unisock.test", RecordType::A)
}

fn resolve_name(
    network: &mut Network,
    ports: &[u16],
    name: &'static str,
    record_type: RecordType,
) -> (Result<Resolution, ResolveError>, ResolverCounters) {
    let servers = ports
        .iter()
        .map(|&port| SocketAddrV4::new(network.hosts[SERVER].address, port))
        .collect();
    let host = &network.hosts[CLIENT];
    let resolver = Resolver::new(
        host.udp.clone(),
        host.tcp.clone(),
        host.executor.handle(),
        ResolverConfig::new(servers),
    );
    let outcome: Outcome = Rc::new(RefCell::new(None));
    let outcome_by_task = outcome.clone();
    network.hosts[CLIENT].executor.spawn(async move {
        let name = Name::from_dotted(name).unwrap();
        let result = resolver.resolve(&name, record_type).await;
        *outcome_by_task.borrow_mut() = Some((result, resolver.counters()));
    });
    let mut steps = 0;
    while outcome.borrow().is_none() {
        assert!(network.step(), "the network went idle");
        steps += 1;
        assert!(steps < STEP_LIMIT);
    }
    outcome.borrow_mut().take().unwrap()
}

fn addresses(resolution: &Resolution) -> Vec<Ipv4Addr> {
    resolution
        .answer
        .addresses
        .iter()
        .map(|record| record.address)
        .collect()
}

fn expected(addresses: &[[u8; 4]]) -> Vec<Ipv4Addr> {
    addresses
        .iter()
        .map(|&octets| Ipv4Addr::from(octets))
        .collect()
}

#[test]
fn an_answer_is_taken_with_its_ttl() {
    let mut network = Network::new(11, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::Answer]);
    let (result, counters) = resolve(&mut network, &[53]);
    let resolution = result.unwrap();
    assert_eq!(addresses(&resolution), expected(&UDP_ADDRESSES));
    assert_eq!(
        resolution.refresh_after,
        Duration::from_secs(u64::from(TTL))
    );
    assert_eq!(resolution.server.port(), 53);
    assert_eq!(counters.queries_sent, 1);
    assert_eq!(counters.answers_accepted, 1);
}

#[test]
fn a_forged_answer_with_the_wrong_id_is_ignored_and_counted() {
    let mut network = Network::new(12, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::WrongIdThenAnswer]);
    let (result, counters) = resolve(&mut network, &[53]);
    assert_eq!(addresses(&result.unwrap()), expected(&UDP_ADDRESSES));
    assert_eq!(counters.mismatched_ids, 1);
    assert_eq!(counters.queries_sent, 1);
}

#[test]
fn an_answer_to_another_question_is_ignored_and_counted() {
    let mut network = Network::new(13, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::WrongQuestionThenAnswer]);
    let (result, counters) = resolve(&mut network, &[53]);
    assert_eq!(addresses(&result.unwrap()), expected(&UDP_ADDRESSES));
    assert_eq!(counters.wrong_questions, 1);
    assert_eq!(counters.mismatched_ids, 0);
}

#[test]
fn a_lost_answer_is_asked_for_again_after_the_timeout() {
    let mut network = Network::new(14, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::Silence, Reply::Answer]);
    let (result, counters) = resolve(&mut network, &[53]);
    assert_eq!(addresses(&result.unwrap()), expected(&UDP_ADDRESSES));
    assert_eq!(counters.timeouts, 1);
    assert_eq!(counters.queries_sent, 2);
    // The retry waited for the timeout on the virtual clock.
    assert!(
        network
            .now
            .saturating_since(unisock_kernel::time::Instant::ZERO)
            >= DEFAULT_ATTEMPT_TIMEOUT
    );
}

#[test]
fn a_truncated_answer_is_asked_for_again_over_tcp() {
    let mut network = Network::new(15, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::Truncated]);
    let connections = Rc::new(RefCell::new(0));
    spawn_tcp_server(&mut network, connections.clone());
    let (result, counters) = resolve(&mut network, &[53]);
    assert_eq!(addresses(&result.unwrap()), expected(&TCP_ADDRESSES));
    assert_eq!(*connections.borrow(), 1);
    assert_eq!(counters.truncated_retried_over_tcp, 1);
    assert_eq!(counters.tcp_failures, 0);
}

#[test]
fn a_silent_server_hands_over_to_the_next_after_its_attempts() {
    let mut network = Network::new(16, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::Silence, Reply::Silence]);
    spawn_udp_server(&mut network, 5353, vec![Reply::Answer]);
    let (result, counters) = resolve(&mut network, &[53, 5353]);
    let resolution = result.unwrap();
    assert_eq!(resolution.server.port(), 5353);
    assert_eq!(counters.timeouts, 2);
    assert_eq!(counters.queries_sent, 3);
}

#[test]
fn a_closed_port_and_a_servfail_hand_over_to_the_next_server() {
    let mut network = Network::new(17, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::ServerFailure]);
    spawn_udp_server(&mut network, 5353, vec![Reply::Answer]);
    // Port 54 is closed: the ICMP port unreachable ends that server's attempts at once.
    let (result, counters) = resolve(&mut network, &[54, 53, 5353]);
    assert_eq!(result.unwrap().server.port(), 5353);
    assert_eq!(counters.unreachable_servers, 1);
    assert_eq!(counters.server_failures, 1);
    assert_eq!(counters.timeouts, 0);
}

#[test]
fn nxdomain_ends_the_search() {
    let mut network = Network::new(18, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::NameError]);
    // The second server's script is empty: asking it would panic the server task and leave
    // the resolver waiting, which the step limit catches.
    spawn_udp_server(&mut network, 5353, vec![]);
    let (result, counters) = resolve(&mut network, &[53, 5353]);
    assert_eq!(result, Err(ResolveError::NameDoesNotExist));
    assert_eq!(counters.nonexistent_names, 1);
    assert_eq!(counters.queries_sent, 1);
}

#[test]
fn every_server_silent_is_an_error_the_caller_can_keep_its_last_answer_on() {
    let mut network = Network::new(19, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::Silence, Reply::Silence]);
    let (result, counters) = resolve(&mut network, &[53]);
    assert_eq!(result, Err(ResolveError::NoServerAnswered));
    assert_eq!(counters.timeouts, 2);
}

#[test]
fn one_resolver_per_core_serves_two_names_at_once_on_separate_ports_and_ids() {
    let mut network = Network::new(20, Impairments::clean(), 2);
    let heard = spawn_udp_server(&mut network, 53, vec![Reply::Answer, Reply::Answer]);
    let server = SocketAddrV4::new(network.hosts[SERVER].address, 53);
    let host = &network.hosts[CLIENT];
    let resolver = Rc::new(Resolver::new(
        host.udp.clone(),
        host.tcp.clone(),
        host.executor.handle(),
        ResolverConfig::new(vec![server]),
    ));
    let done = Rc::new(RefCell::new(Vec::new()));
    for name in ["one.unisock.test", "two.unisock.test"] {
        let (resolver, done) = (resolver.clone(), done.clone());
        network.hosts[CLIENT].executor.spawn(async move {
            let name = Name::from_dotted(name).unwrap();
            let resolution = resolver.resolve(&name, RecordType::A).await.unwrap();
            done.borrow_mut().push(resolution.answer.canonical_name);
        });
    }
    let mut steps = 0;
    while done.borrow().len() < 2 {
        assert!(network.step() && steps < STEP_LIMIT);
        steps += 1;
    }
    let heard = heard.borrow();
    assert_eq!(heard.len(), 2);
    assert_ne!(heard[0].0.port(), heard[1].0.port());
    assert_ne!(heard[0].1, heard[1].1);
    let counters = resolver.counters();
    assert_eq!((counters.queries_sent, counters.answers_accepted), (2, 2));
}

#[test]
fn an_srv_answer_gives_ports_weights_and_the_additional_addresses() {
    let mut network = Network::new(21, Impairments::clean(), 2);
    spawn_udp_server(&mut network, 53, vec![Reply::Services]);
    let (result, _) = resolve_name(
        &mut network,
        &[53],
        "_http._tcp.unisock.test",
        RecordType::Srv,
    );
    let resolution = result.unwrap();
    let services = &resolution.answer.services;
    let summary: Vec<(String, u16, u16, u16, usize)> = services
        .iter()
        .map(|service| {
            (
                service.target.to_dotted(),
                service.priority,
                service.weight,
                service.port,
                service.target_addresses.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("one.unisock.test".to_string(), 10, 60, 9001, 1),
            ("two.unisock.test".to_string(), 10, 40, 9002, 0),
        ]
    );
    assert_eq!(
        services[0].target_addresses[0].address,
        Ipv4Addr::new(10, 9, 1, 1)
    );
    // The additional address's 7 s, within the floor and the ceiling.
    assert_eq!(resolution.refresh_after, Duration::from_secs(7));
}
