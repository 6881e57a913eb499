//! The access log against a console that stalls, over the simulated network: every request is answered as if there were no log, the lines that do not fit in the core's ring are dropped and counted in `/metrics`, the console is never asked more than once a drain period while it is busy, and when it takes bytes again the queued lines come out whole and in order.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use unisock_app::config::Configuration;
use unisock_app::control::{ConsoleWriter, ControlBoard, CoreProxy, CoreProxyStart};
use unisock_app::proxy::WorkerPlace;
use unisock_app::proxy::console_ring::{DRAIN_PERIOD, RING_BYTES};
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
const REQUESTS: usize = 600;

/// A 16550 behind a switch: while stalled it takes nothing; else 16 bytes a call.
#[derive(Default)]
struct Console {
    stalled: bool,
    written: Vec<u8>,
    calls_while_stalled: u64,
}

async fn serve_backend(listener: TcpListener, handle: Handle) {
    while let Ok(stream) = listener.accept().await {
        handle.spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 2048];
            while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(count) => buffer.extend_from_slice(&chunk[..count]),
                }
            }
            let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            let _ = stream.write_all(response).await;
            let _ = stream.close();
        });
    }
}

/// `REQUESTS` requests, one connection each, one every 5 ms; counts complete answers.
fn clients(network: &mut Network, answered: Rc<RefCell<usize>>) {
    let host = &mut network.hosts[CLIENT];
    let tcp = host.tcp.clone();
    let handle = host.executor.handle();
    let proxy = SocketAddrV4::new(host_address(PROXY), 80);
    for index in 0..REQUESTS {
        let (tcp, handle, answered) = (tcp.clone(), handle.clone(), answered.clone());
        host.executor.spawn(async move {
            handle.sleep(Duration::from_millis(5 * index as u64)).await;
            let Ok(Ok(stream)) = handle
                .timeout(Duration::from_secs(5), TcpStream::connect(&tcp, proxy))
                .await
            else {
                return;
            };
            let request =
                format!("GET /item/{index} HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).await.is_err() {
                return;
            }
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while let Ok(Ok(count)) = handle
                .timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
            {
                if count == 0 {
                    break;
                }
                received.extend_from_slice(&chunk[..count]);
            }
            let _ = stream.close();
            if received.starts_with(b"HTTP/1.1 200") && received.ends_with(b"\r\n\r\nok") {
                *answered.borrow_mut() += 1;
            }
        });
    }
}

fn run_until(network: &mut Network, at: Duration, start: Instant) {
    while network.now < start + at {
        if !network.step() {
            break;
        }
    }
}

fn metric(board: &ControlBoard, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut text = String::new();
    write_prometheus(&[board], &mut text).unwrap();
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let mut all = vec![("core", "0")];
    all.extend_from_slice(labels);
    read.value(name, &all)
        .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}")) as u64
}

#[test]
fn a_stalled_console_drops_and_counts_lines_and_never_holds_up_requests() {
    let mut network = Network::new(5, Impairments::clean(), 3);
    let start = network.now;
    let file = format!(
        "[access_log]\ntarget = \"console\"\nrate = 100000\n\n[[listener]]\nport = 80\n\
         pool = \"a\"\n\n[pool.a]\nbackends = [\"{}:{BACKEND_PORT}\"]\n",
        host_address(BACKEND)
    );
    let board = ControlBoard::new(Configuration::from_file(&file).unwrap(), 1, Vec::new());
    let console = Rc::new(RefCell::new(Console {
        stalled: true,
        ..Console::default()
    }));
    let writer: ConsoleWriter = {
        let console = console.clone();
        Rc::new(move |bytes: &[u8]| {
            let mut console = console.borrow_mut();
            assert!(
                !bytes[..bytes.len() - 1].contains(&b'\n'),
                "a write ran past a line end"
            );
            if console.stalled {
                console.calls_while_stalled += 1;
                return 0;
            }
            let taken = bytes.len().min(16);
            console.written.extend_from_slice(&bytes[..taken]);
            taken
        })
    };
    {
        let host = &network.hosts[PROXY];
        CoreProxy::start(CoreProxyStart {
            board: board.clone(),
            place: WorkerPlace { index: 0, count: 1 },
            tcp: host.tcp.clone(),
            opener: PortOpener::new(host.tcp.clone(), CoreId(0), GlobalListenTable::new()),
            handle: host.executor.handle(),
            access_log: Some(writer),
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
            1024,
        )
        .unwrap();
        let handle = host.executor.handle();
        host.executor.spawn(serve_backend(listener, handle));
    }
    let answered = Rc::new(RefCell::new(0));
    clients(&mut network, answered.clone());

    // The traffic lasts 3 s; the console takes nothing for 4 s.
    let stalled_for = Duration::from_secs(4);
    run_until(&mut network, stalled_for, start);
    assert_eq!(*answered.borrow(), REQUESTS, "requests were held up");
    let queued = metric(&board, "unisock_proxy_access_log_lines_total", &[]);
    let ring_full = metric(
        &board,
        "unisock_proxy_access_log_dropped_total",
        &[("reason", "ring_full")],
    );
    let rate = metric(
        &board,
        "unisock_proxy_access_log_dropped_total",
        &[("reason", "rate")],
    );
    assert_eq!(rate, 0);
    assert_eq!(queued + ring_full, REQUESTS as u64);
    assert!(ring_full > 0, "the ring never filled: {queued} queued");
    assert!(
        queued as usize * 60 <= RING_BYTES,
        "{queued} lines in the ring"
    );
    // The drain task looks at a busy console once a drain period, no more: it never spins.
    let looks = console.borrow().calls_while_stalled;
    let periods = (stalled_for.as_nanos() / DRAIN_PERIOD.as_nanos()) as u64;
    assert!(
        looks > 0 && looks <= periods + 1,
        "{looks} looks in {periods} periods"
    );
    assert!(console.borrow().written.is_empty());

    // The console comes back: the queued lines come out whole, in order.
    console.borrow_mut().stalled = false;
    run_until(&mut network, Duration::from_secs(12), start);
    let console = console.borrow();
    let text = String::from_utf8(console.written.clone()).unwrap();
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines.len() as u64, queued, "{text}");
    for (index, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with("access: core=0 client=")
                && line.contains(&format!("\"GET /item/{index}\""))
                && line.contains(" status=200 "),
            "{line}"
        );
    }
    assert_eq!(
        metric(&board, "unisock_proxy_access_log_console_bytes_total", &[]),
        console.written.len() as u64
    );
}
