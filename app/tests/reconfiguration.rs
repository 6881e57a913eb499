//! Live reconfiguration over the simulated network: thousands of requests across `PUT /config`-style switches that change a listener's pool and timeouts, add a listener and remove it again; every request is answered completely by a backend of the configuration it started under, no connection is reset, and the removed listener closes once drained. Also the socket listing's joined legs.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use unisock_app::admin::joined_pairs;
use unisock_app::config::Configuration;
use unisock_app::control::{ControlBoard, CoreProxy, CoreProxyStart};
use unisock_app::proxy::WorkerPlace;
use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::{GlobalListenTable, PortOpener};
use unisock_kernel::net::tcp::CoreId;
use unisock_kernel::socket::{TcpListener, TcpStream};
use unisock_sim::{Impairments, Network, host_address};

const CLIENT: usize = 0;
const PROXY: usize = 1;
const BACKEND_PORT: u16 = 8080;

fn backend(index: usize) -> String {
    format!("{}:{BACKEND_PORT}", host_address(2 + index))
}

/// Listener 80 -> pool `a` (backends 0, 1).
fn first_file() -> String {
    format!(
        "[[listener]]\nport = 80\npool = \"a\"\n\n[pool.a]\nbackends = [\"{}\", \"{}\"]\n\
         keepalive.idle = 4\n\n[pool.b]\nbackends = [\"{}\"]\n",
        backend(0),
        backend(1),
        backend(2)
    )
}

/// Listener 80 -> pool `b` (backend 2) with other timeouts; listener 81 -> pool `a`.
fn second_file() -> String {
    format!(
        "[[listener]]\nport = 80\npool = \"b\"\ntimeout.client = 7\n\n[[listener]]\nport = 81\n\
         pool = \"a\"\n\n[pool.a]\nbackends = [\"{}\", \"{}\"]\n\n[pool.b]\nbackends = [\"{}\"]\n\
         timeout.connect = 2\ntimeout.backend = 3\n",
        backend(0),
        backend(1),
        backend(2)
    )
}

/// Back to one listener: 81 removed.
fn third_file() -> String {
    format!(
        "[[listener]]\nport = 80\npool = \"b\"\n\n[pool.a]\nbackends = [\"{}\", \"{}\"]\n\n\
         [pool.b]\nbackends = [\"{}\"]\n",
        backend(0),
        backend(1),
        backend(2)
    )
}

/// A backend that answers every request with its own name after `delay`, keeping the
/// connection open (keep-alive) until the proxy closes it.
async fn serve_backend(listener: TcpListener, handle: Handle, name: String, delay: Duration) {
    loop {
        let Ok(stream) = listener.accept().await else {
            return;
        };
        let handle2 = handle.clone();
        let name = name.clone();
        handle.spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 2048];
            loop {
                while let Some(end) = find(&buffer, b"\r\n\r\n") {
                    buffer.drain(..end + 4);
                    handle2.sleep(delay).await;
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

/// The proxy's core 0 on the proxy host, following `board`.
fn start_proxy(network: &mut Network, board: &Arc<ControlBoard>) {
    let host = &network.hosts[PROXY];
    CoreProxy::start(CoreProxyStart {
        board: board.clone(),
        place: WorkerPlace { index: 0, count: 1 },
        tcp: host.tcp.clone(),
        opener: PortOpener::new(host.tcp.clone(), CoreId(0), GlobalListenTable::new()),
        handle: host.executor.handle(),
        access_log: None,
        udp: None,
    })
    .1
    .unwrap();
}

/// Backend `index` (`backend-<index>`, on host 2 + `index`), answering after `delay`.
fn start_backend(network: &mut Network, index: usize, delay: Duration) {
    let host = &mut network.hosts[2 + index];
    let listener = TcpListener::bind(
        &host.tcp,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT),
        1024,
    )
    .unwrap();
    let handle = host.executor.handle();
    host.executor.spawn(serve_backend(
        listener,
        handle,
        format!("backend-{index}"),
        delay,
    ));
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The body (the backend's name) of a complete 200 response, then a clean close.
    Answered(String),
    Refused,
    Broken(String),
}

/// One request on its own connection at `start`; the outcome lands in the slot.
fn client(network: &mut Network, port: u16, start: Duration, slot: Rc<RefCell<Option<Outcome>>>) {
    let host = &mut network.hosts[CLIENT];
    let tcp = host.tcp.clone();
    let handle = host.executor.handle();
    let proxy = SocketAddrV4::new(host_address(PROXY), port);
    host.executor.spawn(async move {
        handle.sleep(start).await;
        let outcome = async {
            let stream = match handle
                .timeout(Duration::from_secs(10), TcpStream::connect(&tcp, proxy))
                .await
            {
                Ok(Ok(stream)) => stream,
                _ => return Outcome::Refused,
            };
            let request = "GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n".to_string();
            if stream.write_all(request.as_bytes()).await.is_err() {
                return Outcome::Broken("write".into());
            }
            let mut received = Vec::new();
            let mut chunk = [0u8; 2048];
            loop {
                match handle
                    .timeout(Duration::from_secs(20), stream.read(&mut chunk))
                    .await
                {
                    Ok(Ok(0)) => break,
                    Ok(Ok(count)) => received.extend_from_slice(&chunk[..count]),
                    Ok(Err(error)) => return Outcome::Broken(format!("{error:?}")),
                    Err(_) => return Outcome::Broken("timed out".into()),
                }
            }
            let _ = stream.close();
            let text = String::from_utf8_lossy(&received).into_owned();
            match text.split_once("\r\n\r\n") {
                Some((head, body)) if head.starts_with("HTTP/1.1 200") => {
                    Outcome::Answered(body.to_string())
                }
                _ => Outcome::Broken(text),
            }
        }
        .await;
        *slot.borrow_mut() = Some(outcome);
    });
}

fn run_until(network: &mut Network, at: Duration, start: unisock_kernel::time::Instant) {
    while network.now < start + at {
        if !network.step() {
            break;
        }
    }
}

#[test]
fn requests_across_reconfigurations_are_all_answered() {
    let mut network = Network::new(7, Impairments::clean(), 5);
    let start = network.now;
    let first = Configuration::from_file(&first_file()).unwrap();
    let board = ControlBoard::new(first, 1, Vec::new());
    start_proxy(&mut network, &board);
    for index in 0..3 {
        start_backend(&mut network, index, Duration::from_millis(30));
    }
    // Requests every 3 ms from 0 to 9 s on port 80, and from 3.5 s to 6 s on port 81.
    let mut on_80 = Vec::new();
    let mut on_81 = Vec::new();
    for step in 0..3000u64 {
        let at = Duration::from_millis(step * 3);
        let slot = Rc::new(RefCell::new(None));
        client(&mut network, 80, at, slot.clone());
        on_80.push((at, slot));
        if (3500..6000).contains(&(step * 3)) && step % 2 == 0 {
            let slot = Rc::new(RefCell::new(None));
            client(&mut network, 81, at, slot.clone());
            on_81.push((at, slot));
        }
    }
    let late_81 = Rc::new(RefCell::new(None));
    client(&mut network, 81, Duration::from_secs(8), late_81.clone());

    run_until(&mut network, Duration::from_secs(3), start);
    let second = Configuration::from_file(&second_file()).unwrap();
    let generation = board.publish(second);
    run_until(&mut network, Duration::from_millis(3100), start);
    assert_eq!(
        board.cores_applied(generation),
        1,
        "the core switched within 100 ms"
    );
    // The listing while requests are in flight joins client legs to backend legs.
    let request = board.request_sockets();
    run_until(&mut network, Duration::from_millis(3200), start);
    let answers = board.collect_sockets(request).expect("the core answered");
    let pairs = joined_pairs(&answers);
    assert!(
        !pairs.is_empty(),
        "no joined legs while requests were in flight"
    );
    for (client_end, backend_end) in &pairs {
        assert_eq!(*client_end.ip(), host_address(CLIENT));
        assert_eq!(backend_end.port(), BACKEND_PORT);
    }

    run_until(&mut network, Duration::from_millis(6500), start);
    let third = Configuration::from_file(&third_file()).unwrap();
    board.publish(third);
    run_until(&mut network, Duration::from_secs(40), start);

    let switch = Duration::from_secs(3);
    let mut answered = 0;
    for (at, slot) in &on_80 {
        let outcome = slot.borrow().clone();
        let Some(Outcome::Answered(name)) = outcome else {
            panic!("request on 80 at {at:?}: {outcome:?}");
        };
        answered += 1;
        // Started well before the switch: the first configuration's pool; well after: the
        // second's. Around the switch either is right.
        if *at + Duration::from_millis(100) < switch {
            assert!(name == "backend-0" || name == "backend-1", "{at:?}: {name}");
        } else if *at > switch + Duration::from_millis(100) {
            assert_eq!(name, "backend-2", "{at:?}");
        }
    }
    for (at, slot) in &on_81 {
        let outcome = slot.borrow().clone();
        match outcome {
            Some(Outcome::Answered(name)) => {
                assert!(name == "backend-0" || name == "backend-1", "{at:?}: {name}");
                answered += 1;
            }
            other => panic!("request on 81 at {at:?}: {other:?}"),
        }
    }
    assert_eq!(answered, on_80.len() + on_81.len());
    assert!(
        on_81.len() > 300,
        "port 81 carried {} requests",
        on_81.len()
    );
    // After the third configuration, 81 is closed: a new connection is refused.
    assert_eq!(*late_81.borrow(), Some(Outcome::Refused));
}

/// One pool `a` of backend 0 on port 80, with `extra` keys in the pool's table.
fn health_file(extra: &str) -> String {
    format!(
        "[[listener]]\nport = 80\npool = \"a\"\n\n[pool.a]\nbackends = [\"{}\"]\n{extra}",
        backend(0)
    )
}

/// A backend that active checks took down is up again once a `PUT /config` turns the checks
/// off (with the same backends, so the pool keeps its health board): without checks a backend
/// is up unless passive ejection has it out.
#[test]
fn turning_health_checks_off_brings_a_backend_they_took_down_back() {
    let mut network = Network::new(7, Impairments::clean(), 3);
    let start = network.now;
    // The backend answers after 300 ms, the probe gives up after 100 ms: it goes down.
    let checked = health_file(
        "health.probe = \"http:/health\"\nhealth.interval = 0.2\nhealth.timeout = 0.1\n\
         health.fall = 1\n",
    );
    let board = ControlBoard::new(Configuration::from_file(&checked).unwrap(), 1, Vec::new());
    start_proxy(&mut network, &board);
    start_backend(&mut network, 0, Duration::from_millis(300));
    let while_down = Rc::new(RefCell::new(None));
    client(&mut network, 80, Duration::from_secs(2), while_down.clone());
    let after = Rc::new(RefCell::new(None));
    client(&mut network, 80, Duration::from_secs(4), after.clone());
    run_until(&mut network, Duration::from_secs(3), start);
    assert!(
        matches!(*while_down.borrow(), Some(Outcome::Broken(ref text)) if text.starts_with("HTTP/1.1 503")),
        "{:?}",
        while_down.borrow()
    );
    board.publish(Configuration::from_file(&health_file("")).unwrap());
    run_until(&mut network, Duration::from_secs(10), start);
    assert_eq!(*after.borrow(), Some(Outcome::Answered("backend-0".into())));
}

/// A health checker whose configuration was replaced while its probe was in flight must not
/// publish that probe's verdict: here the probe (given 1 s against a backend that answers
/// after 3 s) fails after `PUT /config` turned the checks off, and the backend stays up.
/// Before, the retired checker looked at `is_retired` only before probing and took the
/// backend down half a second after the checks were turned off.
#[test]
fn a_retired_health_checker_does_not_publish_its_last_probe() {
    let mut network = Network::new(7, Impairments::clean(), 3);
    let start = network.now;
    let checked = health_file(
        "health.probe = \"http:/health\"\nhealth.interval = 1\nhealth.timeout = 1\n\
         health.fall = 1\n",
    );
    let board = ControlBoard::new(Configuration::from_file(&checked).unwrap(), 1, Vec::new());
    start_proxy(&mut network, &board);
    start_backend(&mut network, 0, Duration::from_secs(3));
    // The first probe runs from 1 s to 2 s; the checks are turned off at 1.5 s.
    run_until(&mut network, Duration::from_millis(1500), start);
    assert!(board.current().health[0].is_up(0));
    board.publish(Configuration::from_file(&health_file("")).unwrap());
    run_until(&mut network, Duration::from_secs(5), start);
    assert!(
        board.current().health[0].is_up(0),
        "the retired checker took the backend down"
    );
    assert_eq!(board.current().health[0].history(0), (0, 0));
}
