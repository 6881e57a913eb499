//! Draining a core over the simulated network: a keep-alive client idle between requests is closed as soon as the drain begins (not at its idle timeout), a client whose request is in progress gets its response with `Connection: close` and then the close, and the core's `/metrics` shows its client connections falling to zero and the core drained.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use unisock_app::config::Configuration;
use unisock_app::control::{ControlBoard, CoreProxy, CoreProxyStart};
use unisock_app::proxy::WorkerPlace;
use unisock_kernel::executor::Handle;
use unisock_kernel::metrics::exposition_check::read_exposition;
use unisock_kernel::metrics::write_prometheus;
use unisock_kernel::net::partition::{GlobalListenTable, PortOpener};
use unisock_kernel::net::tcp::CoreId;
use unisock_kernel::socket::{TcpListener, TcpStream};
use unisock_kernel::time::Instant;
use unisock_sim::{Impairments, Network, host_address};

const CLIENT: usize = 0;
const PROXY: usize = 1;
const BACKEND: usize = 2;
const BACKEND_PORT: u16 = 8080;
/// How long the backend takes to answer.
const BACKEND_DELAY: Duration = Duration::from_millis(500);
const DRAIN_AT: Duration = Duration::from_millis(1200);

/// A backend that answers every request after [`BACKEND_DELAY`] and keeps its connection.
async fn serve_backend(listener: TcpListener, handle: Handle) {
    while let Ok(stream) = listener.accept().await {
        let handle = handle.clone();
        let task = handle.clone();
        task.spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 2048];
            loop {
                while let Some(end) = find(&buffer, b"\r\n\r\n") {
                    buffer.drain(..end + 4);
                    handle.sleep(BACKEND_DELAY).await;
                    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(response).await.is_err() {
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

/// What one keep-alive client saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Response heads, in order.
    heads: Vec<String>,
    /// When the proxy closed the connection (end of stream), since the start.
    closed_at: Option<Duration>,
    error: Option<String>,
}

/// A client that connects at `start`, sends one keep-alive request, reads its response,
/// and then waits (up to 100 s) for the proxy to close the connection.
fn keep_alive_client(network: &mut Network, start: Duration, seen: Rc<RefCell<Seen>>) {
    let began = network.now;
    let host = &mut network.hosts[CLIENT];
    let tcp = host.tcp.clone();
    let handle = host.executor.handle();
    let proxy = SocketAddrV4::new(host_address(PROXY), 80);
    host.executor.spawn(async move {
        handle.sleep(start).await;
        let Ok(Ok(stream)) = handle
            .timeout(Duration::from_secs(5), TcpStream::connect(&tcp, proxy))
            .await
        else {
            seen.borrow_mut().error = Some("connect".into());
            return;
        };
        let request = b"GET / HTTP/1.1\r\nHost: site\r\n\r\n";
        if stream.write_all(request).await.is_err() {
            seen.borrow_mut().error = Some("write".into());
            return;
        }
        let mut received = Vec::new();
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(end) = find(&received, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).into_owned();
                // Every response of the backend has a two-byte body.
                if received.len() >= end + 4 + 2 {
                    received.drain(..end + 4 + 2);
                    seen.borrow_mut().heads.push(head);
                    continue;
                }
            }
            match handle
                .timeout(Duration::from_secs(100), stream.read(&mut chunk))
                .await
            {
                Ok(Ok(0)) => {
                    seen.borrow_mut().closed_at = Some(handle.now().saturating_since(began));
                    let _ = stream.close();
                    return;
                }
                Ok(Ok(count)) => received.extend_from_slice(&chunk[..count]),
                Ok(Err(error)) => {
                    seen.borrow_mut().error = Some(format!("{error:?}"));
                    return;
                }
                Err(_) => {
                    seen.borrow_mut().error = Some("never closed".into());
                    return;
                }
            }
        }
    });
}

fn run_until(network: &mut Network, at: Duration, start: Instant) {
    while network.now < start + at {
        if !network.step() {
            break;
        }
    }
}

/// The board's per-core families, read back: (client connections, draining, drained) of core 0.
fn core_state(board: &ControlBoard) -> (f64, f64, f64) {
    let mut text = String::new();
    write_prometheus(&[board], &mut text).unwrap();
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let value = |name: &str| {
        read.value(name, &[("core", "0")])
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    (
        value("unisock_proxy_core_client_connections"),
        value("unisock_proxy_core_draining"),
        value("unisock_proxy_core_drained"),
    )
}

#[test]
fn a_drained_core_closes_idle_keep_alive_connections_and_busy_ones_after_their_response() {
    let mut network = Network::new(11, Impairments::clean(), 3);
    let start = network.now;
    let file = format!(
        "[[listener]]\nport = 80\npool = \"a\"\n\n[pool.a]\nbackends = [\"{}:{BACKEND_PORT}\"]\n",
        host_address(BACKEND)
    );
    let board = ControlBoard::new(Configuration::from_file(&file).unwrap(), 1, Vec::new());
    {
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
    {
        let host = &mut network.hosts[BACKEND];
        let listener = TcpListener::bind(
            &host.tcp,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT),
            64,
        )
        .unwrap();
        let handle = host.executor.handle();
        host.executor.spawn(serve_backend(listener, handle));
    }
    // `idle` is answered at about 0.6 s and then waits; `busy` asks at 1 s and is answered
    // at about 1.5 s, after the drain began.
    let idle = Rc::new(RefCell::new(Seen::default()));
    let busy = Rc::new(RefCell::new(Seen::default()));
    keep_alive_client(&mut network, Duration::from_millis(100), idle.clone());
    keep_alive_client(&mut network, Duration::from_millis(1000), busy.clone());

    run_until(&mut network, Duration::from_millis(1100), start);
    assert_eq!(idle.borrow().heads.len(), 1, "{:?}", idle.borrow());
    assert_eq!(core_state(&board), (2.0, 0.0, 0.0));

    run_until(&mut network, DRAIN_AT, start);
    assert!(board.set_drained(0, true));
    run_until(&mut network, Duration::from_secs(3), start);

    let idle = idle.borrow().clone();
    assert_eq!(idle.error, None, "{idle:?}");
    // Closed without a word: no error response for a request it never sent.
    assert_eq!(idle.heads.len(), 1, "{idle:?}");
    let closed = idle
        .closed_at
        .unwrap_or_else(|| panic!("the idle connection was closed: {idle:?}"));
    // At the control task's next look at the board (20 ms), not at the idle timeout (60 s).
    assert!(
        closed < DRAIN_AT + Duration::from_millis(100),
        "the idle connection closed at {closed:?}"
    );

    let busy = busy.borrow().clone();
    assert_eq!(busy.error, None, "{busy:?}");
    assert_eq!(busy.heads.len(), 1, "{busy:?}");
    assert!(
        busy.heads[0].starts_with("HTTP/1.1 200")
            && busy.heads[0]
                .to_ascii_lowercase()
                .contains("connection: close"),
        "{busy:?}"
    );
    assert!(busy.closed_at.is_some(), "{busy:?}");

    // Empty, and shown as drained.
    assert_eq!(core_state(&board), (0.0, 0.0, 1.0));
    // Enabled again: serving, no longer drained.
    board.set_drained(0, false);
    assert_eq!(core_state(&board), (0.0, 0.0, 0.0));
}
