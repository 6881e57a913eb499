//! The access log's syslog target over the simulated network: a collector host listening on UDP 514 receives one datagram per request, each a well-formed RFC 5424 message (checked by a strict parser written here) with the configured facility and hostname, the count sent matches `/metrics`, and a new configuration switches the log on, changes it and turns it off live.

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use unisock_app::config::Configuration;
use unisock_app::control::{ControlBoard, CoreProxy, CoreProxyStart};
use unisock_app::proxy::WorkerPlace;
use unisock_kernel::executor::Handle;
use unisock_kernel::metrics::exposition_check::read_exposition;
use unisock_kernel::metrics::write_prometheus;
use unisock_kernel::net::partition::{GlobalListenTable, PortOpener};
use unisock_kernel::net::tcp::CoreId;
use unisock_kernel::socket::{TcpListener, TcpStream, UdpSocket};
use unisock_kernel::time::Instant;
use unisock_sim::{Impairments, Network, host_address};

const CLIENT: usize = 0;
const PROXY: usize = 1;
const BACKEND: usize = 2;
const COLLECTOR: usize = 3;
const BACKEND_PORT: u16 = 8080;
const SYSLOG_PORT: u16 = 514;
const REQUESTS: usize = 25;

/// The fields of one RFC 5424 message (section 6), as the strict parser below reads them.
#[derive(Debug)]
struct SyslogMessage {
    facility: u8,
    severity: u8,
    timestamp: String,
    hostname: String,
    app_name: String,
    process_id: String,
    message_id: String,
    message: String,
}

/// One header field: 1 to `limit` printable US-ASCII characters (33 to 126), then one space.
fn field<'a>(rest: &mut &'a [u8], name: &str, limit: usize) -> Result<&'a str, String> {
    let end = rest
        .iter()
        .position(|&byte| byte == b' ')
        .ok_or_else(|| format!("{name}: no space after it"))?;
    let value = &rest[..end];
    if value.is_empty() || value.len() > limit {
        return Err(format!("{name}: {} characters (1 to {limit})", value.len()));
    }
    if !value.iter().all(|byte| (33..=126).contains(byte)) {
        return Err(format!("{name}: not printable US-ASCII"));
    }
    *rest = &rest[end + 1..];
    Ok(std::str::from_utf8(value).unwrap())
}

/// `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]`,
/// RFC 5424 section 6: PRI 0 to 191 with no leading zero, VERSION 1, TIMESTAMP NILVALUE or an
/// RFC 3339 date-time (section 6.2.3), field lengths of section 6 (HOSTNAME 255, APP-NAME 48,
/// PROCID 128, MSGID 32), STRUCTURED-DATA NILVALUE (this test's sender never writes any), MSG
/// UTF-8 when it starts with the BOM, else any octets (here: ASCII expected).
fn parse_rfc5424(datagram: &[u8]) -> Result<SyslogMessage, String> {
    let mut rest = datagram
        .strip_prefix(b"<")
        .ok_or("no `<` opening the PRI")?;
    let close = rest
        .iter()
        .position(|&byte| byte == b'>')
        .ok_or("no `>` closing the PRI")?;
    let digits = &rest[..close];
    if digits.is_empty()
        || digits.len() > 3
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(format!("PRI {:?} is not 1 to 3 digits", digits));
    }
    let priority: u16 = std::str::from_utf8(digits).unwrap().parse().unwrap();
    if priority > 191 {
        return Err(format!("PRI {priority} above 191"));
    }
    rest = &rest[close + 1..];
    let version = field(&mut rest, "VERSION", 3)?;
    if version != "1" {
        return Err(format!("VERSION {version}, not 1"));
    }
    let timestamp = field(&mut rest, "TIMESTAMP", 64)?;
    if timestamp != "-" && !is_rfc3339(timestamp) {
        return Err(format!("TIMESTAMP {timestamp}"));
    }
    let hostname = field(&mut rest, "HOSTNAME", 255)?;
    let app_name = field(&mut rest, "APP-NAME", 48)?;
    let process_id = field(&mut rest, "PROCID", 128)?;
    let message_id = field(&mut rest, "MSGID", 32)?;
    let structured = match rest.iter().position(|&byte| byte == b' ') {
        Some(end) => {
            let structured = &rest[..end];
            rest = &rest[end + 1..];
            structured
        }
        None => std::mem::take(&mut rest),
    };
    if structured != b"-" {
        return Err(format!(
            "STRUCTURED-DATA {:?}",
            String::from_utf8_lossy(structured)
        ));
    }
    let message = match rest.strip_prefix(b"\xEF\xBB\xBF") {
        Some(utf8) => std::str::from_utf8(utf8).map_err(|_| "MSG after the BOM is not UTF-8")?,
        None if rest.is_ascii() => std::str::from_utf8(rest).unwrap(),
        None => return Err("MSG without a BOM is not ASCII".into()),
    };
    Ok(SyslogMessage {
        facility: (priority / 8) as u8,
        severity: (priority % 8) as u8,
        timestamp: timestamp.into(),
        hostname: hostname.into(),
        app_name: app_name.into(),
        process_id: process_id.into(),
        message_id: message_id.into(),
        message: message.into(),
    })
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm)`, by shape.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if bytes.len() < shape.len() + 1 {
        return false;
    }
    let matches = shape.iter().zip(bytes).all(|(want, got)| match want {
        b'd' => got.is_ascii_digit(),
        other => other == got,
    });
    let mut zone = &text[shape.len()..];
    if let Some(fraction) = zone.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&digits) {
            return false;
        }
        zone = &fraction[digits..];
    }
    matches
        && (zone == "Z"
            || (zone.len() == 6
                && (zone.starts_with('+') || zone.starts_with('-'))
                && zone.as_bytes()[3] == b':'))
}

#[test]
fn the_strict_parser_refuses_what_rfc_5424_refuses() {
    let good = b"<134>1 - edge-1 unisock - access - access: core=0";
    let message = parse_rfc5424(good).unwrap();
    assert_eq!((message.facility, message.severity), (16, 6));
    assert_eq!(message.message, "access: core=0");
    parse_rfc5424(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 -")
        .unwrap();
    for bad in [
        &b"134>1 - h a - m - x"[..],
        b"<192>1 - h a - m - x",
        b"<034>1 - h a - m - x",
        b"<34>2 - h a - m - x",
        b"<34> - h a - m - x",
        b"<34>1 yesterday h a - m - x",
        b"<34>1 - h a - m",
        b"<34>1 -  a - m - x",
        b"<34>1 - h a - m [sd] x",
        b"<34>1 - h a - 0123456789012345678901234567890123 - x",
        b"<34>1 - h a - m - \xff",
    ] {
        assert!(
            parse_rfc5424(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
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

/// Requests `indices`, one connection each, one every 10 ms from now; counts complete answers.
fn clients(network: &mut Network, indices: std::ops::Range<usize>, answered: Rc<RefCell<usize>>) {
    let host = &mut network.hosts[CLIENT];
    let tcp = host.tcp.clone();
    let handle = host.executor.handle();
    let proxy = SocketAddrV4::new(host_address(PROXY), 80);
    let first = indices.start;
    for index in indices {
        let (tcp, handle, answered) = (tcp.clone(), handle.clone(), answered.clone());
        host.executor.spawn(async move {
            handle
                .sleep(Duration::from_millis(10 * (index - first) as u64))
                .await;
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

fn metric(board: &ControlBoard, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut text = String::new();
    write_prometheus(&[board], &mut text).unwrap();
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let mut all = vec![("core", "0")];
    all.extend_from_slice(labels);
    read.value(name, &all)
        .unwrap_or_else(|| panic!("{name} {labels:?} missing:\n{text}")) as u64
}

/// A configuration: `access_log` and top-level lines given, one listener to the backend.
fn configuration(top: &str, access_log: &str) -> Configuration {
    let file = format!(
        "{top}\n[access_log]\nrate = 100000\n{access_log}\n\n[[listener]]\nport = 80\n\
         pool = \"a\"\n\n[pool.a]\nbackends = [\"{}:{BACKEND_PORT}\"]\n",
        host_address(BACKEND)
    );
    Configuration::from_file(&file).unwrap_or_else(|error| panic!("{error}\n{file}"))
}

fn syslog_settings(facility: &str) -> String {
    format!(
        "target = \"syslog\"\nsyslog.collector = \"{}:{SYSLOG_PORT}\"\n\
         syslog.facility = \"{facility}\"",
        host_address(COLLECTOR)
    )
}

type Received = Rc<RefCell<Vec<(SocketAddrV4, Vec<u8>)>>>;

/// The four hosts: the proxy's core started with `first`, the backend, and the collector
/// recording every datagram it receives on UDP 514.
fn setup(first: Configuration) -> (Network, Arc<ControlBoard>, Received) {
    let mut network = Network::new(11, Impairments::clean(), 4);
    let board = ControlBoard::new(first, 1, Vec::new());
    {
        let host = &network.hosts[PROXY];
        CoreProxy::start(CoreProxyStart {
            board: board.clone(),
            place: WorkerPlace { index: 0, count: 1 },
            tcp: host.tcp.clone(),
            opener: PortOpener::new(host.tcp.clone(), CoreId(0), GlobalListenTable::new()),
            handle: host.executor.handle(),
            access_log: None,
            udp: Some(host.udp.clone()),
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
    let received: Received = Rc::new(RefCell::new(Vec::new()));
    {
        let host = &mut network.hosts[COLLECTOR];
        let socket = UdpSocket::bind(
            &host.udp,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SYSLOG_PORT),
        )
        .unwrap();
        let received = received.clone();
        host.executor.spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok((count, sender)) = socket.recv_from(&mut buffer).await {
                received
                    .borrow_mut()
                    .push((sender, buffer[..count].to_vec()));
            }
        });
    }
    (network, board, received)
}

fn run_for(network: &mut Network, duration: Duration) {
    let end: Instant = network.now + duration;
    while network.now < end {
        if !network.step() {
            break;
        }
    }
}

/// Each datagram parses, with `facility` and `hostname`, and logs request `first + i`.
fn check_messages(
    datagrams: &[(SocketAddrV4, Vec<u8>)],
    first: usize,
    facility: u8,
    hostname: &str,
) {
    for (offset, (sender, datagram)) in datagrams.iter().enumerate() {
        assert_eq!(*sender.ip(), host_address(PROXY));
        assert!(datagram.len() <= 1024);
        let message = parse_rfc5424(datagram)
            .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(datagram)));
        assert_eq!(message.facility, facility);
        assert_eq!(message.severity, 6, "informational");
        assert_eq!(message.timestamp, "-");
        assert_eq!(message.hostname, hostname);
        assert_eq!(message.app_name, "unisock");
        assert_eq!(message.process_id, "-");
        assert_eq!(message.message_id, "access");
        let client = host_address(CLIENT);
        let index = first + offset;
        assert!(
            message
                .message
                .starts_with(&format!("access: core=0 client={client}:"))
                && message.message.contains(&format!(
                    "\"GET /item/{index}\" status=200 bytes=2 backend="
                ))
                && message.message.contains(" latency_us="),
            "{}",
            message.message
        );
    }
}

#[test]
fn a_collector_receives_one_rfc_5424_message_per_request() {
    let (mut network, board, received) = setup(configuration(
        "hostname = \"edge-1\"",
        &syslog_settings("local4"),
    ));
    let answered = Rc::new(RefCell::new(0));
    clients(&mut network, 0..REQUESTS, answered.clone());
    run_for(&mut network, Duration::from_secs(3));
    assert_eq!(*answered.borrow(), REQUESTS);
    let received = received.borrow();
    assert_eq!(received.len(), REQUESTS, "datagrams at the collector");
    check_messages(&received, 0, 20, "edge-1");
    // One socket for the whole run: every datagram from the same port.
    assert!(received.iter().all(|(sender, _)| sender == &received[0].0));
    assert_eq!(
        metric(&board, "unisock_proxy_access_log_lines_total", &[]),
        REQUESTS as u64
    );
    for reason in ["rate", "syslog_queue_full", "syslog_unsent"] {
        assert_eq!(
            metric(
                &board,
                "unisock_proxy_access_log_dropped_total",
                &[("reason", reason)]
            ),
            0
        );
    }
}

/// A new configuration takes the log to syslog, changes its facility and hostname, and
/// turns it off, live, between requests.
#[test]
fn a_new_configuration_switches_syslog_on_changes_it_and_turns_it_off() {
    let (mut network, board, received) = setup(configuration("", "target = \"off\""));
    let answered = Rc::new(RefCell::new(0));
    clients(&mut network, 0..5, answered.clone());
    run_for(&mut network, Duration::from_secs(1));
    assert!(received.borrow().is_empty());

    board.publish(configuration("", &syslog_settings("local0")));
    run_for(&mut network, Duration::from_millis(100));
    clients(&mut network, 5..10, answered.clone());
    run_for(&mut network, Duration::from_secs(1));
    assert_eq!(received.borrow().len(), 5);
    // No hostname configured: `unisock`; local0 is 16.
    check_messages(&received.borrow(), 5, 16, "unisock");

    board.publish(configuration(
        "hostname = \"edge-2.example\"",
        &syslog_settings("local6"),
    ));
    run_for(&mut network, Duration::from_millis(100));
    clients(&mut network, 10..15, answered.clone());
    run_for(&mut network, Duration::from_secs(1));
    assert_eq!(received.borrow().len(), 10);
    check_messages(&received.borrow()[5..], 10, 22, "edge-2.example");

    board.publish(configuration("", "target = \"off\""));
    run_for(&mut network, Duration::from_millis(100));
    clients(&mut network, 15..20, answered.clone());
    run_for(&mut network, Duration::from_secs(1));
    assert_eq!(received.borrow().len(), 10);
    assert_eq!(*answered.borrow(), 20);
    // The earlier generations' syslog sockets closed with their workers: none is left open.
    assert_eq!(network.hosts[PROXY].udp.borrow().socket_count(), 0);
}
