//! The admin listener over the simulated network: its refusals reach a client that is still sending its request.

mod support;

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;
use std::time::Duration;

use support::{Ending, join};
use unisock_app::admin::{self, AdminContext};
use unisock_app::config::{AddressRange, Configuration};
use unisock_app::control::{ControlBoard, CoreProxy, CoreProxyStart};
use unisock_app::proxy::WorkerPlace;
use unisock_kernel::net::partition::{GlobalListenTable, PortOpener};
use unisock_kernel::net::tcp::CoreId;
use unisock_kernel::socket::TcpStream;
use unisock_sim::{Impairments, Network, host_address};

const CLIENT: usize = 0;
const APPLIANCE: usize = 1;
const ADMIN_PORT: u16 = 9000;
const TOKEN: &str = "0123456789abcdef";

/// A network of a client and an appliance whose admin listener allows the client.
fn network() -> Network {
    let network = Network::new(3, Impairments::clean(), 2);
    let text = format!(
        "[admin]\nport = {ADMIN_PORT}\ntoken = \"{TOKEN}\"\nallow = [\"{}/32\"]\n\n\
         [[listener]]\nport = 80\npool = \"a\"\n\n[pool.a]\nbackends = [\"{}:8080\"]\n",
        host_address(CLIENT),
        host_address(2)
    );
    let board = ControlBoard::new(Configuration::from_file(&text).unwrap(), 1, Vec::new());
    let host = &network.hosts[APPLIANCE];
    let (core, _opened) = CoreProxy::start(CoreProxyStart {
        board,
        place: WorkerPlace { index: 0, count: 1 },
        tcp: host.tcp.clone(),
        opener: PortOpener::new(host.tcp.clone(), CoreId(0), GlobalListenTable::new()),
        handle: host.executor.handle(),
        access_log: None,
        udp: None,
    });
    let context = AdminContext {
        core,
        own_network: AddressRange::parse("10.0.0.0/24").unwrap(),
        report: Rc::new(|_, _: &mut String| {}),
    };
    admin::start(context, ADMIN_PORT).unwrap();
    network
}

/// Sends `request` to the admin listener and reads until the connection ends: what came
/// back and how it ended.
fn exchange(request: Vec<u8>) -> (String, Ending) {
    let mut network = network();
    let slot = Rc::new(RefCell::new(None));
    let result = slot.clone();
    let host = &mut network.hosts[CLIENT];
    let tcp = host.tcp.clone();
    let handle = host.executor.handle();
    let admin = SocketAddrV4::new(host_address(APPLIANCE), ADMIN_PORT);
    host.executor.spawn(async move {
        let stream = TcpStream::connect(&tcp, admin).await.unwrap();
        let writer = async {
            let _ = stream.write_all(&request).await;
        };
        let reader = async {
            let mut received = Vec::new();
            let mut buffer = vec![0u8; 65536];
            loop {
                match handle
                    .timeout(Duration::from_secs(60), stream.read(&mut buffer))
                    .await
                {
                    Ok(Ok(0)) => return (received, Ending::Closed),
                    Ok(Ok(count)) => received.extend_from_slice(&buffer[..count]),
                    Ok(Err(_)) => return (received, Ending::Reset),
                    Err(_) => return (received, Ending::Open),
                }
            }
        };
        let ((), (received, ending)) = join(writer, reader).await;
        *slot.borrow_mut() = Some((String::from_utf8_lossy(&received).into_owned(), ending));
    });
    let end = network.now + Duration::from_secs(120);
    while result.borrow().is_none() && network.now < end {
        if !network.step() {
            break;
        }
    }
    result.borrow().clone().expect("the client finished")
}

fn with_body(head: &str, body_bytes: usize) -> Vec<u8> {
    let mut request = head.as_bytes().to_vec();
    request.extend(std::iter::repeat_n(b'z', body_bytes));
    request
}

/// Refusals answered before the request's end (a missing token, a body over the limit, a
/// head over the limit) reach the client: the admin listener, like the proxy, sends its FIN
/// and reads the rest of the request until the client closes or the linger ends, instead of
/// closing with unread bytes, which resets the connection and makes the client's stack drop
/// the answer. Before, each of these clients saw a reset and no answer.
#[test]
fn a_refusal_reaches_a_client_still_sending_its_request() {
    let cases = [
        (
            "no token",
            with_body(
                "PUT /config HTTP/1.1\r\nHost: admin\r\nContent-Length: 200000\r\n\r\n",
                200_000,
            ),
            "HTTP/1.1 403 ",
        ),
        (
            "body over 1 MiB",
            with_body(
                &format!(
                    "PUT /config HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
                     Content-Length: 2000000\r\n\r\n"
                ),
                300_000,
            ),
            "HTTP/1.1 413 ",
        ),
        (
            "head over 32 KiB",
            format!(
                "GET /stats HTTP/1.1\r\nHost: admin\r\nX-Big: {}\r\n\r\n",
                "b".repeat(100_000)
            )
            .into_bytes(),
            "HTTP/1.1 431 ",
        ),
    ];
    for (name, request, status_line) in cases {
        let (received, ending) = exchange(request);
        assert!(received.starts_with(status_line), "{name}: {received:?}");
        assert_eq!(ending, Ending::Closed, "{name}");
    }
}
