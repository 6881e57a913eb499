//! The stub resolver: asks the configured recursive resolvers over a connected UDP socket, retries and fails over, falls back to TCP on a truncated answer, counts every answer it throws away, and says when to ask again.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::net::SocketAddrV4;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::net::udp::next_random;
use unisock_kernel::socket::{SharedTcpLayer, SharedUdpLayer, TcpStream, UdpSocket};

use super::message::{
    Answer, MAX_UDP_MESSAGE, MessageError, Name, Query, RecordType, ResponseCode, parse_response,
};

/// Shortest time an answer is kept before asking again, whatever its TTL: a TTL of 0 or 1 s
/// (common behind load-balancing DNS) would otherwise have each core query in a loop. Envoy's
/// `dns_min_refresh_rate` defaults to 5 s as well.
pub const TTL_FLOOR: Duration = Duration::from_secs(5);
/// Longest time an answer is kept: a day-long TTL must not pin a pool to addresses for a day
/// (Envoy and HAProxy's `hold valid` cap it the same way).
pub const TTL_CEILING: Duration = Duration::from_secs(3600);
/// When to ask again after a failure (every server silent, SERVFAIL, NXDOMAIN); the caller
/// keeps its last good answer meanwhile.
pub const RETRY_AFTER_FAILURE: Duration = TTL_FLOOR;
/// How long one attempt waits for its answer (glibc's `timeout:` default is 5 s; a proxy
/// re-resolving in the background can afford less).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per server before the next one (glibc's `attempts:` default is 2).
pub const DEFAULT_ATTEMPTS_PER_SERVER: u32 = 2;
/// The port a DNS server listens on, UDP and TCP (RFC 1035 section 4.2).
pub const DNS_PORT: u16 = 53;
/// The domain of the stack's derived secret that seeds query ids (see
/// `TcpLayer::derived_secret`): "dns_qid".
pub const QUERY_ID_DOMAIN: u64 = 0x0064_6e73_5f71_6964;

/// Where the resolver asks and how patiently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Recursive resolvers in order of preference (DHCP option 6 or the configuration).
    pub servers: Vec<SocketAddrV4>,
    pub attempt_timeout: Duration,
    pub attempts_per_server: u32,
}

impl ResolverConfig {
    pub fn new(servers: Vec<SocketAddrV4>) -> ResolverConfig {
        ResolverConfig {
            servers,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            attempts_per_server: DEFAULT_ATTEMPTS_PER_SERVER,
        }
    }
}

/// Unpredictable 16-bit query ids (RFC 5452 section 9.2), from a seed the caller takes from
/// the stack's boot secret ([`QueryIds::from_stack`]).
pub struct QueryIds {
    state: u64,
}

impl QueryIds {
    pub fn new(seed: u64) -> QueryIds {
        QueryIds {
            // xorshift never leaves zero.
            state: seed | 1,
        }
    }

    /// Seeded from the core's TCP layer's boot secret, as the UDP ports are.
    pub fn from_stack(tcp: &SharedTcpLayer) -> QueryIds {
        QueryIds::new(tcp.borrow().derived_secret(QUERY_ID_DOMAIN))
    }

    pub fn next_id(&mut self) -> u16 {
        (next_random(&mut self.state) >> 48) as u16
    }
}

/// What the resolver threw away or gave up on, per reason; the caller publishes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolverCounters {
    pub queries_sent: u64,
    pub answers_accepted: u64,
    /// Answers whose id was not the query's (late answers, forgeries).
    pub mismatched_ids: u64,
    /// Answers with our id but another question (or not exactly one).
    pub wrong_questions: u64,
    /// Answers refused as malformed (bad names, pointers, records, oversized, not a response).
    pub malformed_answers: u64,
    /// Truncated answers asked again over TCP.
    pub truncated_retried_over_tcp: u64,
    /// TCP retries that failed (connect, write, read, timeout, or a bad answer).
    pub tcp_failures: u64,
    /// Attempts that heard nothing acceptable in time.
    pub timeouts: u64,
    /// Servers whose port was closed (ICMP port unreachable) or whose socket failed.
    pub unreachable_servers: u64,
    /// SERVFAIL, REFUSED and other failure codes: the next server is asked.
    pub server_failures: u64,
    /// NXDOMAIN answers.
    pub nonexistent_names: u64,
}

/// A name resolved: the answer, who gave it, and when to ask again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub answer: Answer,
    pub server: SocketAddrV4,
    /// The smallest TTL of the records used, clamped to [`TTL_FLOOR`]..[`TTL_CEILING`].
    pub refresh_after: Duration,
}

/// Why a name could not be resolved. The caller keeps its last good answer and asks again
/// after [`RETRY_AFTER_FAILURE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No server configured.
    NoServers,
    /// A server said the name does not exist (NXDOMAIN); asking another one would not help.
    NameDoesNotExist,
    /// Every server failed: silent, unreachable, SERVFAIL or malformed answers.
    NoServerAnswered,
}

/// When to resolve again after an answer whose smallest TTL is `ttl_seconds`.
pub fn refresh_after(ttl_seconds: Option<u32>) -> Duration {
    match ttl_seconds {
        Some(seconds) => Duration::from_secs(u64::from(seconds)).clamp(TTL_FLOOR, TTL_CEILING),
        // No record (NODATA): nothing to keep, ask again soon.
        None => TTL_FLOOR,
    }
}

/// What one server said to one query.
enum ServerOutcome {
    Answered(Answer),
    NameDoesNotExist,
    Failed,
}

/// A stub resolver of one core: its sockets are opened on that core's stack, so answers come
/// back to it (`UdpSocket::connect` picks a port that steers there). One per core is enough:
/// `resolve` takes `&self`, so the core's tasks can share it (in an `Rc`) and resolve several
/// names at once, each on its own socket, from one stream of query ids and one set of counters.
pub struct Resolver {
    udp: SharedUdpLayer,
    tcp: SharedTcpLayer,
    handle: Handle,
    config: ResolverConfig,
    /// Shared with the resolvers this one replaces and is replaced by: a new server list
    /// must not start the id sequence over (RFC 5452 section 9.2).
    ids: Rc<RefCell<QueryIds>>,
    counters: Cell<ResolverCounters>,
}

impl Resolver {
    pub fn new(
        udp: SharedUdpLayer,
        tcp: SharedTcpLayer,
        handle: Handle,
        config: ResolverConfig,
    ) -> Resolver {
        let ids = Rc::new(RefCell::new(QueryIds::from_stack(&tcp)));
        Resolver::with_query_ids(udp, tcp, handle, config, ids)
    }

    /// A resolver that draws its query ids from `ids`, which the caller keeps across
    /// resolvers (a core's resolver is rebuilt when `PUT /config` changes the servers).
    pub fn with_query_ids(
        udp: SharedUdpLayer,
        tcp: SharedTcpLayer,
        handle: Handle,
        config: ResolverConfig,
        ids: Rc<RefCell<QueryIds>>,
    ) -> Resolver {
        Resolver {
            udp,
            tcp,
            handle,
            config,
            ids,
            counters: Cell::new(ResolverCounters::default()),
        }
    }

    pub fn counters(&self) -> ResolverCounters {
        self.counters.get()
    }

    fn count(&self, update: impl FnOnce(&mut ResolverCounters)) {
        let mut counters = self.counters.get();
        update(&mut counters);
        self.counters.set(counters);
    }

    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// Asks the servers in turn, each `attempts_per_server` times, for `name`'s records of
    /// `record_type`, following the rules of RFC 1035 section 7.2 and glibc's `res_send`: a
    /// server that fails (silent, unreachable, SERVFAIL) hands over to the next; NXDOMAIN
    /// ends the search.
    pub async fn resolve(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<Resolution, ResolveError> {
        if self.config.servers.is_empty() {
            return Err(ResolveError::NoServers);
        }
        for server in self.config.servers.clone() {
            let query = Query {
                id: self.ids.borrow_mut().next_id(),
                name: name.clone(),
                record_type,
            };
            match self.ask_server(server, &query).await {
                ServerOutcome::Answered(answer) => {
                    self.count(|counters| counters.answers_accepted += 1);
                    let refresh_after = refresh_after(answer.smallest_ttl());
                    return Ok(Resolution {
                        answer,
                        server,
                        refresh_after,
                    });
                }
                ServerOutcome::NameDoesNotExist => return Err(ResolveError::NameDoesNotExist),
                ServerOutcome::Failed => continue,
            }
        }
        Err(ResolveError::NoServerAnswered)
    }

    /// One server: a fresh connected socket (a fresh random port, RFC 5452 section 9.2), the
    /// same id for its retransmissions so that a late answer to the first still counts.
    async fn ask_server(&self, server: SocketAddrV4, query: &Query) -> ServerOutcome {
        let Ok(socket) = UdpSocket::connect(&self.udp, server) else {
            self.count(|counters| counters.unreachable_servers += 1);
            return ServerOutcome::Failed;
        };
        let encoded = query.encode();
        // One byte more than the largest acceptable answer tells an oversized one apart.
        let mut buffer = vec![0u8; MAX_UDP_MESSAGE + 1];
        for _ in 0..self.config.attempts_per_server {
            self.count(|counters| counters.queries_sent += 1);
            if socket.send(&encoded).await.is_err() {
                self.count(|counters| counters.unreachable_servers += 1);
                return ServerOutcome::Failed;
            }
            let deadline = self.handle.now() + self.config.attempt_timeout;
            loop {
                let left = deadline.saturating_since(self.handle.now());
                let received = match self.handle.timeout(left, socket.recv(&mut buffer)).await {
                    Err(_) => {
                        self.count(|counters| counters.timeouts += 1);
                        break;
                    }
                    // ConnectionRefused: an ICMP port unreachable (RFC 1122 section 4.1.3.3).
                    Ok(Err(_)) => {
                        self.count(|counters| counters.unreachable_servers += 1);
                        return ServerOutcome::Failed;
                    }
                    Ok(Ok(count)) => count,
                };
                if received > MAX_UDP_MESSAGE {
                    self.count(|counters| counters.malformed_answers += 1);
                    continue;
                }
                match parse_response(query, &buffer[..received]) {
                    Ok(answer) if answer.truncated => {
                        self.count(|counters| counters.truncated_retried_over_tcp += 1);
                        return self.ask_over_tcp(server, query).await;
                    }
                    Ok(answer) => return self.judge(answer),
                    // Not ours or broken: keep listening until the deadline, as glibc does,
                    // so that a forgery cannot end the wait for the real answer.
                    Err(error) => self.count_refusal(error),
                }
            }
        }
        ServerOutcome::Failed
    }

    /// The same question over TCP (RFC 7766 section 5): the 2-byte length, the query, then
    /// the answer after its own length, all within one attempt timeout.
    async fn ask_over_tcp(&self, server: SocketAddrV4, query: &Query) -> ServerOutcome {
        let exchange = tcp_exchange(self.tcp.clone(), server, query.encode());
        match self
            .handle
            .timeout(self.config.attempt_timeout, exchange)
            .await
        {
            Ok(Some(message)) => match parse_response(query, &message) {
                Ok(answer) if !answer.truncated => self.judge(answer),
                Ok(_) => {
                    self.count(|counters| counters.tcp_failures += 1);
                    ServerOutcome::Failed
                }
                Err(error) => {
                    self.count_refusal(error);
                    self.count(|counters| counters.tcp_failures += 1);
                    ServerOutcome::Failed
                }
            },
            Ok(None) | Err(_) => {
                self.count(|counters| counters.tcp_failures += 1);
                ServerOutcome::Failed
            }
        }
    }

    /// An accepted answer by its response code.
    fn judge(&self, answer: Answer) -> ServerOutcome {
        match answer.response_code {
            ResponseCode::NoError => ServerOutcome::Answered(answer),
            ResponseCode::NameError => {
                self.count(|counters| counters.nonexistent_names += 1);
                ServerOutcome::NameDoesNotExist
            }
            _ => {
                self.count(|counters| counters.server_failures += 1);
                ServerOutcome::Failed
            }
        }
    }

    fn count_refusal(&self, error: MessageError) {
        match error {
            MessageError::IdMismatch => self.count(|counters| counters.mismatched_ids += 1),
            MessageError::QuestionMismatch | MessageError::QuestionCount => {
                self.count(|counters| counters.wrong_questions += 1)
            }
            _ => self.count(|counters| counters.malformed_answers += 1),
        }
    }
}

/// Connects, sends `query` with its length prefix, reads one length-prefixed answer. `None`
/// on any failure (the caller counts it).
async fn tcp_exchange(
    tcp: SharedTcpLayer,
    server: SocketAddrV4,
    query: Vec<u8>,
) -> Option<Vec<u8>> {
    let stream = TcpStream::connect(&tcp, server).await.ok()?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await.ok()?;
    let mut length = [0u8; 2];
    read_exact(&stream, &mut length).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_exact(&stream, &mut message).await?;
    let _ = stream.close();
    Some(message)
}

async fn read_exact(stream: &TcpStream, buffer: &mut [u8]) -> Option<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]).await {
            Ok(0) | Err(_) => return None,
            Ok(count) => filled += count,
        }
    }
    Some(())
}
