//! The proxy's test bench over the simulated network: host 0 runs clients, host 1 the proxy, hosts 2.. the backends, each a small scripted HTTP server that records what reached it.

#![allow(dead_code)] // each test file uses its own part of the bench

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use unisock_app::proxy::{self, ProxySettings, ProxyShared, Worker, WorkerPlace};
use unisock_kernel::executor::Handle;
use unisock_kernel::net::tcp::TcpConfig;
use unisock_kernel::socket::{Shutdown, TcpListener, TcpStream};
use unisock_kernel::time::Instant;
use unisock_sim::{Impairments, Network, host_address};

pub const PROXY_PORT: u16 = 80;
pub const BACKEND_PORT: u16 = 8080;
pub const CLIENT_HOST: usize = 0;
pub const PROXY_HOST: usize = 1;

/// What a backend does with each request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answers `status` with `body`, framed by Content-Length (keeps the connection).
    Fixed { status: u16, body: Vec<u8> },
    /// Answers 200 with the request body, chunked in pieces of `piece` bytes.
    EchoChunked { piece: usize },
    /// Answers 200 with the request body and closes (no framing fields: read until close).
    EchoUntilClose,
    /// Answers 200 with Content-Length: 100000 and the first `sent` bytes, then resets.
    ResetMidBody { sent: usize },
    /// Same, but closes gracefully instead of resetting.
    CloseMidBody { sent: usize },
    /// Reads the request and never answers.
    Silent,
    /// Answers like `Fixed` with 200, except that a request for `/silent` gets no answer.
    FixedExceptSilent { body: Vec<u8> },
    /// Accepts and closes at once, before reading.
    CloseAtOnce,
    /// Answers 101 to an Upgrade request, then echoes bytes in upper case.
    UpgradeEcho,
    /// Answers 200 chunked, one `hello` chunk every `every`, `pieces` of them (a slow stream).
    SlowChunks { pieces: usize, every: Duration },
    /// Answers 101, then sends `tick\n` every `every`, `ticks` times, and then nothing; like
    /// a WebSocket server, closes as soon as the client's direction ends.
    UpgradeTicks { every: Duration, ticks: usize },
    /// Sends a response that is not HTTP.
    Garbage,
    /// Sends `100 Continue`-style interim `103` first, then the fixed answer.
    InterimThenFixed { body: Vec<u8> },
    /// Answers like `Fixed` with 200, except that a request for `/close` is closed without
    /// an answer (nginx's `return 444`, a worker that crashes on it).
    FixedExceptClose { body: Vec<u8> },
    /// Answers GET and HEAD like `Fixed` with 200 and every other method 501, as a stock
    /// `python3 -m http.server` does.
    GetOnly { body: Vec<u8> },
    /// Sends these bytes as its whole answer to every request, keeping the connection.
    Raw { response: Vec<u8> },
    /// Answers `status` (with `Connection: close`) as soon as the request head is in, without
    /// reading the body, half-closes and never reads again: a stock `python3 -m
    /// http.server` answers a POST 501 so. (It then closes, which Linux turns into a reset
    /// when the body is unread; the simulated stack drops received data on a reset, so the
    /// bench stalls instead of resetting.)
    AnswerBeforeBodyThenStall { status: u16 },
}

/// One request as a backend saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub head: String,
    pub body: Vec<u8>,
    /// Index of the backend connection it arrived on (to count reuse).
    pub connection: usize,
}

#[derive(Default)]
pub struct BackendLog {
    pub requests: Vec<SeenRequest>,
    pub connections: usize,
}

/// How a client connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Still open when the client stopped waiting.
    Open,
    Closed,
    Reset,
}

#[derive(Clone, Debug)]
pub struct ClientResult {
    pub received: Vec<u8>,
    pub ending: Ending,
    /// When the client's reading ended (the end of the connection, or giving up).
    pub finished_at: Instant,
}

pub struct Bench {
    pub network: Network,
    pub backends: Vec<Rc<RefCell<BackendLog>>>,
    pub shared: ProxyShared,
    pub results: Vec<Rc<RefCell<Option<ClientResult>>>>,
}

pub fn backend_address(index: usize) -> SocketAddrV4 {
    SocketAddrV4::new(host_address(2 + index), BACKEND_PORT)
}

/// `words` as the command line would give them, plus `backends=` for `behaviours`.
pub fn settings(words: &str, backends: usize) -> ProxySettings {
    let list: Vec<String> = (0..backends)
        .map(|index| backend_address(index).to_string())
        .collect();
    let line = format!("proxy={PROXY_PORT} backends={} {words}", list.join(","));
    let pairs: Vec<(&str, &str)> = line
        .split_whitespace()
        .map(|word| word.split_once('=').unwrap_or((word, "")))
        .collect();
    ProxySettings::from_words(pairs).unwrap().unwrap()
}

impl Bench {
    pub fn new(
        seed: u64,
        impairments: Impairments,
        proxy_settings: ProxySettings,
        behaviours: Vec<Behaviour>,
    ) -> Bench {
        Self::with_backend_weights(seed, impairments, proxy_settings, behaviours)
    }

    pub fn with_backend_weights(
        seed: u64,
        impairments: Impairments,
        proxy_settings: ProxySettings,
        behaviours: Vec<Behaviour>,
    ) -> Bench {
        Self::with_tcp_config(
            seed,
            impairments,
            TcpConfig::default(),
            proxy_settings,
            behaviours,
        )
    }

    /// Like `new`, with every host's stack (the proxy's too) under `tcp_config`.
    pub fn with_tcp_config(
        seed: u64,
        impairments: Impairments,
        tcp_config: TcpConfig,
        proxy_settings: ProxySettings,
        behaviours: Vec<Behaviour>,
    ) -> Bench {
        let mut network = Network::with_config(seed, impairments, 2 + behaviours.len(), tcp_config);
        let shared = ProxyShared::new(proxy_settings, 1);
        {
            let host = &network.hosts[PROXY_HOST];
            let listener = TcpListener::bind(
                &host.tcp,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PROXY_PORT),
                1024,
            )
            .unwrap();
            let worker = Worker::new(
                shared.clone(),
                WorkerPlace { index: 0, count: 1 },
                host.tcp.clone(),
                host.executor.handle(),
            );
            proxy::start(listener, worker);
        }
        let mut backends = Vec::new();
        for (index, behaviour) in behaviours.into_iter().enumerate() {
            let log = Rc::new(RefCell::new(BackendLog::default()));
            let host = &mut network.hosts[2 + index];
            let listener = TcpListener::bind(
                &host.tcp,
                SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, BACKEND_PORT),
                1024,
            )
            .unwrap();
            let handle = host.executor.handle();
            host.executor
                .spawn(serve_backend(listener, handle, behaviour, log.clone()));
            backends.push(log);
        }
        Bench {
            network,
            backends,
            shared,
            results: Vec::new(),
        }
    }

    /// Starts a client that connects to the proxy at `start_after`, writes `request`, and reads
    /// until the connection ends or `give_up` passes; returns its index in `results`.
    pub fn client(&mut self, request: Vec<u8>, start_after: Duration, give_up: Duration) -> usize {
        self.client_with(vec![(Duration::ZERO, request)], start_after, give_up, false)
    }

    /// A client that writes each part after its delay, optionally half-closes after the last.
    pub fn client_with(
        &mut self,
        parts: Vec<(Duration, Vec<u8>)>,
        start_after: Duration,
        give_up: Duration,
        shutdown_after: bool,
    ) -> usize {
        self.spawn_client(parts, start_after, give_up, shutdown_after, None)
    }

    /// A client that writes `request` and then reads at most `bytes_per_read` bytes at a
    /// time, pausing `pause` after each read (a reader slower than the response).
    pub fn slow_reader(
        &mut self,
        request: Vec<u8>,
        (bytes_per_read, pause): (usize, Duration),
        give_up: Duration,
    ) -> usize {
        self.spawn_client(
            vec![(Duration::ZERO, request)],
            Duration::ZERO,
            give_up,
            false,
            Some((bytes_per_read, pause)),
        )
    }

    fn spawn_client(
        &mut self,
        parts: Vec<(Duration, Vec<u8>)>,
        start_after: Duration,
        give_up: Duration,
        shutdown_after: bool,
        slow_reading: Option<(usize, Duration)>,
    ) -> usize {
        let slot = Rc::new(RefCell::new(None));
        self.results.push(slot.clone());
        let host = &mut self.network.hosts[CLIENT_HOST];
        let tcp = host.tcp.clone();
        let handle = host.executor.handle();
        let proxy = SocketAddrV4::new(host_address(PROXY_HOST), PROXY_PORT);
        host.executor.spawn(async move {
            handle.sleep(start_after).await;
            let deadline = handle.now() + give_up;
            let stream = match handle
                .timeout(give_up, TcpStream::connect(&tcp, proxy))
                .await
            {
                Ok(Ok(stream)) => stream,
                _ => {
                    *slot.borrow_mut() = Some(ClientResult {
                        received: Vec::new(),
                        ending: Ending::Reset,
                        finished_at: handle.now(),
                    });
                    return;
                }
            };
            let _ = stream.set_no_delay(true);
            let writer = async {
                for (delay, part) in &parts {
                    handle.sleep(*delay).await;
                    if stream.write_all(part).await.is_err() {
                        return;
                    }
                }
                if shutdown_after {
                    let _ = stream.shutdown(Shutdown::Write);
                }
            };
            let reader = async {
                let mut received = Vec::new();
                let (read_size, pause) = slow_reading.unwrap_or((65536, Duration::ZERO));
                let mut buffer = vec![0u8; read_size];
                loop {
                    let left = deadline.saturating_since(handle.now());
                    match handle.timeout(left, stream.read(&mut buffer)).await {
                        Ok(Ok(0)) => return (received, Ending::Closed, handle.now()),
                        Ok(Ok(count)) => received.extend_from_slice(&buffer[..count]),
                        Ok(Err(_)) => return (received, Ending::Reset, handle.now()),
                        Err(_) => return (received, Ending::Open, handle.now()),
                    }
                    if !pause.is_zero() {
                        handle.sleep(pause).await;
                        // A slow reader always has more waiting: it stops at its deadline.
                        if handle.now() >= deadline {
                            return (received, Ending::Open, handle.now());
                        }
                    }
                }
            };
            let ((), (received, ending, finished_at)) = join(writer, reader).await;
            *slot.borrow_mut() = Some(ClientResult {
                received,
                ending,
                finished_at,
            });
        });
        self.results.len() - 1
    }

    /// Runs until every client has a result (or `limit` of simulated time passes).
    pub fn run(&mut self, limit: Duration) {
        let end = self.network.now + limit;
        let mut steps = 0u64;
        while self.results.iter().any(|slot| slot.borrow().is_none()) {
            steps += 1;
            assert!(steps < 20_000_000, "the simulation live-locked");
            if !self.network.step() || self.network.now > end {
                break;
            }
        }
    }

    /// Lets the simulation run on for `duration` (health checks, timers).
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.network.now + duration;
        while self.network.now < end {
            if !self.network.step() {
                break;
            }
        }
    }

    pub fn result(&self, client: usize) -> ClientResult {
        self.results[client]
            .borrow()
            .clone()
            .expect("the client finished")
    }

    /// Every client's responses (parsed), for a bench whose clients all got complete ones.
    pub fn responses(&self, client: usize, head_requests: &[bool]) -> Vec<Response> {
        parse_responses(&self.result(client).received, head_requests)
    }

    pub fn report(&self) -> String {
        let mut out = String::new();
        self.shared.statistics.write_report(&mut out).unwrap();
        out
    }

    /// The value of exactly `field` in the report's `proxy core=total` line; panics when the
    /// field is missing (so a renamed counter fails the test instead of passing it).
    pub fn total(&self, field: &str) -> u64 {
        let report = self.report();
        let line = report
            .lines()
            .find(|line| line.starts_with("proxy core=total"))
            .expect("a total line");
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(field)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {field} in {line}"))
            .parse()
            .unwrap()
    }
}

/// A response as the client received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Splits a byte stream into complete responses (written independently of the proxy's own
/// framing code: whole-buffer parsing, simple decoders). Interim 1xx responses are
/// returned too. `head_requests[i]` says whether the i-th final response answers a HEAD.
/// Panics on anything malformed or incomplete except a trailing until-close body.
pub fn parse_responses(mut bytes: &[u8], head_requests: &[bool]) -> Vec<Response> {
    let mut responses = Vec::new();
    let mut finals = 0;
    while !bytes.is_empty() {
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut storage);
        let length = match parsed.parse(bytes).expect("a valid response head") {
            httparse::Status::Complete(length) => length,
            httparse::Status::Partial => panic!(
                "incomplete response head: {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        let status = parsed.code.unwrap();
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|header| {
                (
                    header.name.to_string(),
                    String::from_utf8_lossy(header.value).into_owned(),
                )
            })
            .collect();
        bytes = &bytes[length..];
        let find = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
        };
        let is_head = status >= 200 && head_requests.get(finals).copied().unwrap_or(false);
        let bodiless = is_head || status < 200 || status == 204 || status == 304;
        let body = if bodiless {
            Vec::new()
        } else if find("transfer-encoding").is_some_and(|value| {
            // Chunked is the final coding (RFC 9112 6.3 item 4); codings before it stay
            // in the body.
            value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        }) {
            let mut body = Vec::new();
            loop {
                let line_end = bytes
                    .windows(2)
                    .position(|window| window == b"\r\n")
                    .expect("a chunk size line");
                let size_text = std::str::from_utf8(&bytes[..line_end]).unwrap();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .expect("hex size");
                bytes = &bytes[line_end + 2..];
                if size == 0 {
                    let end = bytes
                        .windows(2)
                        .position(|window| window == b"\r\n")
                        .unwrap();
                    assert_eq!(end, 0, "no trailers expected from the proxy");
                    bytes = &bytes[2..];
                    break;
                }
                body.extend_from_slice(&bytes[..size]);
                assert_eq!(&bytes[size..size + 2], b"\r\n");
                bytes = &bytes[size + 2..];
            }
            body
        } else if let Some(length) = find("content-length") {
            let length: usize = length.parse().unwrap();
            assert!(
                bytes.len() >= length,
                "body shorter than its Content-Length"
            );
            let body = bytes[..length].to_vec();
            bytes = &bytes[length..];
            body
        } else {
            let body = bytes.to_vec();
            bytes = &[];
            body
        };
        if status >= 200 {
            finals += 1;
        }
        responses.push(Response {
            status,
            headers,
            body,
        });
    }
    responses
}

async fn serve_backend(
    listener: TcpListener,
    handle: Handle,
    behaviour: Behaviour,
    log: Rc<RefCell<BackendLog>>,
) {
    loop {
        let Ok(stream) = listener.accept().await else {
            return;
        };
        let connection = {
            let mut log = log.borrow_mut();
            log.connections += 1;
            log.connections - 1
        };
        let behaviour = behaviour.clone();
        let log = log.clone();
        let handle_for_task = handle.clone();
        handle.spawn(async move {
            backend_connection(stream, handle_for_task, behaviour, log, connection).await;
        });
    }
}

/// Reads one request (head and body, Content-Length or chunked) from `buffer` + `stream`.
async fn read_request(stream: &TcpStream, buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>, bool)> {
    let mut chunk = vec![0u8; 16384];
    loop {
        let mut storage = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut storage);
        if let Ok(httparse::Status::Complete(length)) = request.parse(buffer) {
            let head = String::from_utf8_lossy(&buffer[..length]).into_owned();
            let lower = head.to_ascii_lowercase();
            let keep = !lower.contains("connection: close");
            let content_length = request
                .headers
                .iter()
                .find(|header| header.name.eq_ignore_ascii_case("content-length"))
                .map(|header| {
                    std::str::from_utf8(header.value)
                        .unwrap()
                        .parse::<usize>()
                        .unwrap()
                });
            let chunked = lower.contains("transfer-encoding: chunked");
            buffer.drain(..length);
            let body = if chunked {
                read_chunked(stream, buffer).await?
            } else {
                let length = content_length.unwrap_or(0);
                while buffer.len() < length {
                    let count = stream.read(&mut chunk).await.ok()?;
                    if count == 0 {
                        return None;
                    }
                    buffer.extend_from_slice(&chunk[..count]);
                }
                buffer.drain(..length).collect()
            };
            return Some((head, body, keep));
        }
        let count = stream.read(&mut chunk).await.ok()?;
        if count == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..count]);
    }
}

async fn read_chunked(stream: &TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = vec![0u8; 16384];
    loop {
        // Wait for a whole chunk (size line, data, CRLF) or the last chunk and its CRLF.
        if let Some(line_end) = buffer.windows(2).position(|window| window == b"\r\n") {
            let size_text = std::str::from_utf8(&buffer[..line_end]).ok()?.to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // The trailer section ends at the first empty line after the last chunk.
                if let Some(end) = buffer[line_end..]
                    .windows(4)
                    .position(|window| window == b"\r\n\r\n")
                {
                    buffer.drain(..line_end + end + 4);
                    return Some(body);
                }
            } else if buffer.len() >= line_end + 2 + size + 2 {
                body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
                buffer.drain(..line_end + 2 + size + 2);
                continue;
            }
        }
        let count = stream.read(&mut chunk).await.ok()?;
        if count == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..count]);
    }
}

async fn backend_connection(
    stream: TcpStream,
    handle: Handle,
    behaviour: Behaviour,
    log: Rc<RefCell<BackendLog>>,
    connection: usize,
) {
    let _ = stream.set_no_delay(true);
    if matches!(behaviour, Behaviour::CloseAtOnce) {
        let _ = stream.close();
        return;
    }
    let mut buffer = Vec::new();
    if let Behaviour::AnswerBeforeBodyThenStall { status } = behaviour {
        let mut chunk = vec![0u8; 4096];
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(count) if count > 0 => buffer.extend_from_slice(&chunk[..count]),
                _ => return,
            }
        };
        log.borrow_mut().requests.push(SeenRequest {
            head: String::from_utf8_lossy(&buffer[..head_end]).into_owned(),
            body: Vec::new(),
            connection,
        });
        let response = format!(
            "HTTP/1.1 {status} Unsupported method\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.shutdown(Shutdown::Write);
        handle.sleep(Duration::from_secs(3600)).await;
        return;
    }
    loop {
        let Some((head, body, keep)) = read_request(&stream, &mut buffer).await else {
            let _ = stream.close();
            return;
        };
        log.borrow_mut().requests.push(SeenRequest {
            head: head.clone(),
            body: body.clone(),
            connection,
        });
        let is_head = head.starts_with("HEAD ");
        match &behaviour {
            Behaviour::Fixed { status, body } => {
                let mut response = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nX-Backend: yes\r\n",
                    body.len()
                )
                .into_bytes();
                if !keep {
                    response.extend_from_slice(b"Connection: close\r\n");
                }
                response.extend_from_slice(b"\r\n");
                if !is_head && *status != 204 && *status != 304 {
                    response.extend_from_slice(body);
                }
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Behaviour::FixedExceptClose { body } | Behaviour::GetOnly { body } => {
                if matches!(behaviour, Behaviour::FixedExceptClose { .. })
                    && head.starts_with("GET /close ")
                {
                    let _ = stream.close();
                    return;
                }
                let status = match &behaviour {
                    Behaviour::GetOnly { .. }
                        if !head.starts_with("GET ") && !head.starts_with("HEAD ") =>
                    {
                        "501 Unsupported method"
                    }
                    _ => "200 OK",
                };
                let mut response = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                if !is_head {
                    response.extend_from_slice(body);
                }
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Behaviour::FixedExceptSilent { body } => {
                if head.starts_with("GET /silent ") {
                    handle.sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let mut response =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                        .into_bytes();
                response.extend_from_slice(body);
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Behaviour::InterimThenFixed { body } => {
                let mut response = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".to_vec();
                response.extend_from_slice(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                response.extend_from_slice(body);
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Behaviour::EchoChunked { piece } => {
                let mut response =
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for part in body.chunks((*piece).max(1)) {
                    response.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
                    response.extend_from_slice(part);
                    response.extend_from_slice(b"\r\n");
                }
                response.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
                if stream.write_all(&response).await.is_err() {
                    return;
                }
            }
            Behaviour::EchoUntilClose => {
                let mut response = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
                response.extend_from_slice(&body);
                let _ = stream.write_all(&response).await;
                let _ = stream.close();
                return;
            }
            Behaviour::ResetMidBody { sent } | Behaviour::CloseMidBody { sent } => {
                let mut response = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                response.extend(std::iter::repeat_n(b'x', *sent));
                let _ = stream.write_all(&response).await;
                handle.sleep(Duration::from_millis(50)).await;
                if matches!(behaviour, Behaviour::ResetMidBody { .. }) {
                    let _ = stream.abort();
                } else {
                    let _ = stream.close();
                }
                return;
            }
            Behaviour::Silent => {
                handle.sleep(Duration::from_secs(3600)).await;
                return;
            }
            Behaviour::Garbage => {
                let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
                let _ = stream.close();
                return;
            }
            Behaviour::UpgradeEcho => {
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                    .await;
                let mut data = std::mem::take(&mut buffer);
                let mut chunk = vec![0u8; 4096];
                loop {
                    if !data.is_empty() {
                        let upper: Vec<u8> = data.iter().map(u8::to_ascii_uppercase).collect();
                        if stream.write_all(&upper).await.is_err() {
                            return;
                        }
                        data.clear();
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            let _ = stream.close();
                            return;
                        }
                        Ok(count) => data.extend_from_slice(&chunk[..count]),
                    }
                }
            }
            Behaviour::SlowChunks { pieces, every } => {
                let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head).await.is_err() {
                    return;
                }
                for _ in 0..*pieces {
                    handle.sleep(*every).await;
                    if stream.write_all(b"5\r\nhello\r\n").await.is_err() {
                        return;
                    }
                }
                if stream.write_all(b"0\r\n\r\n").await.is_err() {
                    return;
                }
            }
            Behaviour::UpgradeTicks { every, ticks } => {
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ticks\r\n\r\n")
                    .await;
                let ticker = async {
                    for _ in 0..*ticks {
                        handle.sleep(*every).await;
                        if stream.write_all(b"tick\n").await.is_err() {
                            return;
                        }
                    }
                    handle.sleep(Duration::from_secs(86_400)).await;
                };
                let watcher = async {
                    let mut chunk = vec![0u8; 4096];
                    while let Ok(count) = stream.read(&mut chunk).await {
                        if count == 0 {
                            return;
                        }
                    }
                };
                first_of(ticker, watcher).await;
                let _ = stream.close();
                return;
            }
            Behaviour::Raw { response } => {
                if stream.write_all(response).await.is_err() {
                    return;
                }
            }
            Behaviour::CloseAtOnce | Behaviour::AnswerBeforeBodyThenStall { .. } => {
                unreachable!("handled before reading")
            }
        }
        if !keep {
            let _ = stream.close();
            return;
        }
    }
}

/// Runs two futures until either completes.
pub async fn first_of<A: std::future::Future<Output = ()>, B: std::future::Future<Output = ()>>(
    first: A,
    second: B,
) {
    let mut first = Box::pin(first);
    let mut second = Box::pin(second);
    std::future::poll_fn(move |context| {
        if first.as_mut().poll(context).is_ready() || second.as_mut().poll(context).is_ready() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Runs two futures to completion.
pub async fn join<A: std::future::Future, B: std::future::Future>(
    first: A,
    second: B,
) -> (A::Output, B::Output) {
    let mut first = Box::pin(first);
    let mut second = Box::pin(second);
    let mut first_output = None;
    let mut second_output = None;
    std::future::poll_fn(move |context| {
        if first_output.is_none()
            && let std::task::Poll::Ready(output) = first.as_mut().poll(context)
        {
            first_output = Some(output);
        }
        if second_output.is_none()
            && let std::task::Poll::Ready(output) = second.as_mut().poll(context)
        {
            second_output = Some(output);
        }
        match (first_output.take(), second_output.take()) {
            (Some(first), Some(second)) => std::task::Poll::Ready((first, second)),
            (first, second) => {
                first_output = first;
                second_output = second;
                std::task::Poll::Pending
            }
        }
    })
    .await
}

/// Clean wire with 50 µs delay.
pub fn clean() -> Impairments {
    Impairments::clean()
}
