//! The HTTP responder: answers every request with one fixed response (and `GET /stats` and
//! `GET /metrics` with the appliance's counters), then closes. One request per connection, like the short-lived
//! connections the appliance is built for. The body's size comes from `responder.body=`.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::ServedPort;
use unisock_kernel::socket::{SocketError, TcpStream};

use crate::http::{head_length, request_line};
use crate::metrics::ReportFormat;
use crate::services::StatisticsReport;

/// The body of the fixed response by default; a body of another size repeats it.
pub const BODY: &str = "Hello from Unisock\n";
/// Longest request head read; a longer one gets `431`.
pub const MAX_HEAD_LENGTH: usize = 8 * 1024;
/// A client that sends no complete head in this time is dropped (a slow client must not hold
/// a connection for ever).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A body of exactly `length` bytes: [`BODY`] repeated and cut to `length - 1` bytes, then a
/// newline. The default length gives [`BODY`] itself; any other reads as lines of text that
/// `curl` prints whole. Built once per core and shared by its connections.
pub fn body_of_length(length: usize) -> Rc<[u8]> {
    let mut body: Vec<u8> = BODY
        .bytes()
        .cycle()
        .take(length.saturating_sub(1))
        .collect();
    if length > 0 {
        body.push(b'\n');
    }
    body.into()
}

/// Accepts connections on `port` for as long as it is served, one task per connection, each
/// answered with `body`.
pub async fn serve(
    port: ServedPort,
    handle: Handle,
    body: Rc<[u8]>,
    report: Option<StatisticsReport>,
) {
    loop {
        match port.listener().accept().await {
            Ok(stream) => {
                let handle_for_task = handle.clone();
                let body = body.clone();
                let report = report.clone();
                handle.spawn(async move {
                    // Errors end the connection; the TCP layer counts their causes.
                    let _ = answer(stream, handle_for_task, &body, report).await;
                });
            }
            // Accept fails only when the listener itself is gone (a stale handle).
            Err(_) => return,
        }
    }
}

/// Reads one request head and writes the response: the head, then the body straight from
/// `body` (never copied into a response buffer, however large it is).
async fn answer(
    stream: TcpStream,
    handle: Handle,
    body: &[u8],
    report: Option<StatisticsReport>,
) -> Result<(), SocketError> {
    stream.set_no_delay(true)?;
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    // One deadline for the whole head, not one per read: a client trickling a byte every few
    // seconds (slowloris) must not hold the connection for hours.
    let deadline = handle.now() + HEAD_TIMEOUT;
    let head_end = loop {
        let left = deadline.saturating_since(handle.now());
        let read = match handle.timeout(left, stream.read(&mut buffer)).await {
            Ok(result) => result?,
            Err(_elapsed) => return stream.abort(),
        };
        if read == 0 {
            return stream.close();
        }
        head.extend_from_slice(&buffer[..read]);
        if let Some(end) = head_length(&head) {
            break end;
        }
        if head.len() > MAX_HEAD_LENGTH {
            stream
                .write_all(&response_head(431, "Request Header Fields Too Large", 0))
                .await?;
            return stream.close();
        }
    };
    let statistics;
    let mut content_type = "text/plain";
    let (status, reason, body): (u16, &str, &[u8]) = match request_line(&head[..head_end]) {
        None => (400, "Bad Request", b""),
        Some(line) if line.method == "GET" && report_format(line.target).is_some() => {
            let format = report_format(line.target).unwrap_or(ReportFormat::Stats);
            let mut text = String::new();
            match &report {
                Some(report) => report(format, &mut text),
                None => text.push_str("no statistics\n"),
            }
            statistics = text;
            content_type = format.content_type();
            (200, "OK", statistics.as_bytes())
        }
        Some(_) => (200, "OK", body),
    };
    // Both writes land in the send buffer before the stack next runs, so a small response
    // still leaves in one segment.
    stream
        .write_all(&response_head_of_type(
            status,
            reason,
            content_type,
            body.len(),
        ))
        .await?;
    stream.write_all(body).await?;
    stream.close()
}

/// Which report a target asks for: `/stats` or `/metrics` (Prometheus).
fn report_format(target: &str) -> Option<ReportFormat> {
    match target {
        "/stats" => Some(ReportFormat::Stats),
        "/metrics" => Some(ReportFormat::Prometheus),
        _ => None,
    }
}

/// The head of an HTTP/1.1 response with a plain-text body of `body_length` bytes that
/// closes the connection.
pub fn response_head(status: u16, reason: &str, body_length: usize) -> Vec<u8> {
    response_head_of_type(status, reason, "text/plain", body_length)
}

/// [`response_head`] with another `Content-Type`.
pub fn response_head_of_type(
    status: u16,
    reason: &str,
    content_type: &str,
    body_length: usize,
) -> Vec<u8> {
    let mut text = String::with_capacity(128);
    let _ = write!(
        text,
        "HTTP/1.1 {status} {reason}\r\nServer: unisock\r\nContent-Type: {content_type}\r\n\
         Content-Length: {body_length}\r\nConnection: close\r\n\r\n"
    );
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    use core::cell::RefCell;
    use core::net::{Ipv4Addr, SocketAddrV4};
    use unisock_kernel::config::MAX_RESPONDER_BODY;
    use unisock_kernel::socket::TcpListener;
    use unisock_sim::{Impairments, Network, WireStatistics};

    #[test]
    fn the_default_body_is_the_fixed_text() {
        assert_eq!(&*body_of_length(BODY.len()), BODY.as_bytes());
    }

    #[test]
    fn a_body_has_exactly_the_length_asked_and_ends_in_a_newline() {
        for length in [1, 2, 18, 20, 64, 1460, 100_000, MAX_RESPONDER_BODY] {
            let body = body_of_length(length);
            assert_eq!(body.len(), length);
            assert_eq!(body.last(), Some(&b'\n'), "{length}");
            let pattern: Vec<u8> = BODY.bytes().cycle().take(length - 1).collect();
            assert_eq!(&body[..length - 1], &pattern[..], "{length}");
        }
        assert_eq!(
            body_of_length(64).as_ref(),
            &b"Hello from Unisock\nHello from Unisock\nHello from Unisock\nHello \n"[..]
        );
    }

    #[test]
    fn the_head_states_the_body_length() {
        let head = response_head(200, "OK", 100_000);
        let text = core::str::from_utf8(&head).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("\r\nContent-Length: 100000\r\n"));
        assert!(text.ends_with("\r\nConnection: close\r\n\r\n"));
    }

    /// Serves one `GET /` with a body of `length` bytes over the simulated wire (host 1 the
    /// responder, host 0 the client) and returns every byte the client read before the
    /// responder closed, with what the wire did.
    fn fetch_over_the_simulated_wire(
        length: usize,
        impairments: Impairments,
    ) -> (Vec<u8>, WireStatistics) {
        fetch_target_over_the_simulated_wire("/", None, length, impairments)
    }

    /// [`fetch_over_the_simulated_wire`] for `GET <target>`, the responder given `report`.
    fn fetch_target_over_the_simulated_wire(
        target: &'static str,
        report: Option<StatisticsReport>,
        length: usize,
        impairments: Impairments,
    ) -> (Vec<u8>, WireStatistics) {
        let mut network = Network::new(0x5eed_0012, impairments, 2);
        let server = SocketAddrV4::new(network.hosts[1].address, 80);
        let listener = TcpListener::bind(
            &network.hosts[1].tcp,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80),
            4,
        )
        .unwrap();
        let handle = network.hosts[1].executor.handle();
        network.hosts[1].executor.spawn(async move {
            let stream = listener.accept().await.unwrap();
            answer(stream, handle, &body_of_length(length), report)
                .await
                .unwrap();
        });
        let received = Rc::new(RefCell::new(None));
        let client_received = received.clone();
        let client = network.hosts[0].tcp.clone();
        network.hosts[0].executor.spawn(async move {
            let stream = TcpStream::connect(&client, server).await.unwrap();
            stream
                .write_all(format!("GET {target} HTTP/1.1\r\nHost: unisock\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut bytes = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let read = stream.read(&mut buffer).await.unwrap();
                if read == 0 {
                    break;
                }
                bytes.extend_from_slice(&buffer[..read]);
            }
            *client_received.borrow_mut() = Some(bytes);
        });
        let mut steps = 0;
        while received.borrow().is_none() {
            assert!(
                network.step(),
                "the simulation ran dry before the end of stream"
            );
            steps += 1;
            assert!(steps < 1_000_000, "no end of stream after {steps} steps");
        }
        (received.take().unwrap(), network.statistics)
    }

    /// A client that sends its head one byte every 6 s (each read well inside the timeout)
    /// must still lose the connection once the whole head has taken longer than
    /// [`HEAD_TIMEOUT`].
    #[test]
    fn a_head_trickled_slower_than_the_timeout_loses_the_connection() {
        let mut network = Network::new(0x5eed_0013, Impairments::clean(), 2);
        let server = SocketAddrV4::new(network.hosts[1].address, 80);
        let listener = TcpListener::bind(
            &network.hosts[1].tcp,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80),
            4,
        )
        .unwrap();
        let handle = network.hosts[1].executor.handle();
        network.hosts[1].executor.spawn(async move {
            let stream = listener.accept().await.unwrap();
            let _ = answer(stream, handle, &body_of_length(BODY.len()), None).await;
        });
        // When the client saw the connection fail, counted from its first byte.
        let ended = Rc::new(RefCell::new(None));
        let client_ended = ended.clone();
        let client = network.hosts[0].tcp.clone();
        let client_handle = network.hosts[0].executor.handle();
        network.hosts[0].executor.spawn(async move {
            let stream = TcpStream::connect(&client, server).await.unwrap();
            let started = client_handle.now();
            for byte in b"GET / HTTP/1.1\r\nHost: unisock\r\n\r\n" {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                client_handle.sleep(Duration::from_secs(6)).await;
            }
            *client_ended.borrow_mut() = Some(client_handle.now().saturating_since(started));
        });
        let mut steps = 0;
        while ended.borrow().is_none() {
            assert!(network.step(), "the simulation ran dry");
            steps += 1;
            assert!(steps < 1_000_000, "the client never finished");
        }
        let ended = ended.take().unwrap();
        assert!(
            ended <= HEAD_TIMEOUT + Duration::from_secs(12),
            "the trickling client kept its connection for {ended:?}"
        );
    }

    fn check_response(bytes: &[u8], length: usize) {
        let head_end = head_length(bytes).expect("a complete head");
        assert_eq!(&bytes[..head_end], &response_head(200, "OK", length)[..]);
        assert_eq!(bytes.len() - head_end, length, "body bytes");
        assert_eq!(&bytes[head_end..], &body_of_length(length)[..]);
    }

    #[test]
    fn the_response_carries_exactly_the_body_asked_for() {
        for length in [BODY.len(), 1, 64, 100_000, MAX_RESPONDER_BODY] {
            let (bytes, _) = fetch_over_the_simulated_wire(length, Impairments::clean());
            check_response(&bytes, length);
        }
    }

    #[test]
    fn a_body_of_many_segments_survives_loss_and_reordering() {
        let impairments = Impairments {
            loss: 0.05,
            duplication: 0.01,
            reordering: 0.2,
            reorder_delay: core::time::Duration::from_millis(5),
            ..Impairments::clean()
        };
        let (bytes, wire) = fetch_over_the_simulated_wire(100_000, impairments);
        assert!(
            wire.frames_lost > 0 && wire.frames_reordered > 0,
            "{wire:?}"
        );
        check_response(&bytes, 100_000);
    }

    #[test]
    fn metrics_and_stats_render_the_same_report_with_their_content_types() {
        use unisock_kernel::metrics::HeapUsage;
        use unisock_kernel::metrics::exposition_check::read_exposition;

        let report: StatisticsReport = Rc::new(|format, out: &mut String| {
            let heap = HeapUsage {
                used_bytes: 4096,
                capacity_bytes: 65536,
            };
            crate::metrics::write_report(format, &[&heap], out).unwrap();
        });
        let (bytes, _) = fetch_target_over_the_simulated_wire(
            "/metrics",
            Some(report.clone()),
            1,
            Impairments::clean(),
        );
        let head_end = head_length(&bytes).expect("a complete head");
        let head = core::str::from_utf8(&bytes[..head_end]).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{head}"
        );
        let body = core::str::from_utf8(&bytes[head_end..]).unwrap();
        let read = read_exposition(body).unwrap();
        assert_eq!(read.value("unisock_heap_used_bytes", &[]), Some(4096.0));

        let (bytes, _) =
            fetch_target_over_the_simulated_wire("/stats", Some(report), 1, Impairments::clean());
        let head_end = head_length(&bytes).expect("a complete head");
        assert!(
            core::str::from_utf8(&bytes[..head_end])
                .unwrap()
                .contains("\r\nContent-Type: text/plain\r\n")
        );
        assert_eq!(
            &bytes[head_end..],
            b"memory heap_used_bytes=4096 heap_capacity_bytes=65536\n"
        );
    }
}
