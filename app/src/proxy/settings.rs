//! The proxy's typed settings and the command-line words that set them (`proxy=`, `backends=`, `balance=`, `timeout.*`, `limit.*`, `health*`, `eject.*`, `pool.*`, `forward.*`, `retry.*`), validated whole.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

/// Everything the reverse proxy needs; built once, shared read-only by every core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// The port the proxy listens on, on every core.
    pub port: u16,
    pub pool: PoolSettings,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub forwarding: ForwardingHeaders,
    pub retries: Retries,
}

/// One backend server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub address: SocketAddrV4,
    /// Relative share of requests under weighted balancing (1 to [`MAX_WEIGHT`]).
    pub weight: u32,
}

/// A backend entry given by name: `host:port[*weight]` (A records, every address a backend
/// with that port and weight) or `_service._proto.name` (SRV records, RFC 2782: each target's
/// addresses with the record's port and weight).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedBackend {
    /// The entry as written (`web.example.com:9001`, `_http._tcp.example.com`).
    pub text: String,
    pub lookup: NameLookup,
    /// The weight of each address of an A name (SRV records carry their own).
    pub weight: u32,
    /// The last good answer as backends, whole (none until the first answer): an address
    /// that is also listed, or in another entry's answer, is kept here too, so that it stays
    /// in the pool while any entry still has it.
    pub resolved: Vec<Backend>,
    /// How many of [`NamedBackend::resolved`] the pool took (the others were in it already,
    /// or past [`MAX_BACKENDS`]); they follow the listed ones in [`PoolSettings::backends`].
    pub backends_in_pool: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameLookup {
    /// A records of `host`, each address with `port`.
    Address { host: String, port: u16 },
    /// SRV records of `name` (`_service._proto.domain`).
    Service { name: String },
}

impl NamedBackend {
    /// The name asked for, as text.
    pub fn query_name(&self) -> &str {
        match &self.lookup {
            NameLookup::Address { host, .. } => host,
            NameLookup::Service { name } => name,
        }
    }
}

impl PoolSettings {
    /// The backends listed by address (the first of [`PoolSettings::backends`]).
    pub fn listed_backends(&self) -> &[Backend] {
        let from_names: usize = self
            .named_backends
            .iter()
            .map(|named| named.backends_in_pool)
            .sum();
        &self.backends[..self.backends.len().saturating_sub(from_names)]
    }

    /// Puts `answer` in force as named entry `index`'s whole answer and rebuilds
    /// [`PoolSettings::backends`] from the listed backends and every entry's whole answer:
    /// addresses already in the pool (listed, or from an earlier name) are left out, at most
    /// [`MAX_BACKENDS`] in all. Rebuilding from whole answers keeps an address two entries
    /// share in the pool while either still has it.
    pub fn set_resolved(&mut self, index: usize, answer: Vec<Backend>) {
        let mut backends = self.listed_backends().to_vec();
        if let Some(named) = self.named_backends.get_mut(index) {
            named.resolved = answer;
        }
        for named in &mut self.named_backends {
            named.backends_in_pool = 0;
            for backend in &named.resolved {
                if backends.len() < MAX_BACKENDS
                    && !backends
                        .iter()
                        .any(|known| known.address == backend.address)
                {
                    backends.push(*backend);
                    named.backends_in_pool += 1;
                }
            }
        }
        self.backends = backends;
    }
}

/// Largest backend weight (`*<weight>` in `backends=`).
pub const MAX_WEIGHT: u32 = 1000;
/// Most backends in one pool.
pub const MAX_BACKENDS: usize = 256;
/// Highest minimum rate (`timeout.body-rate`, `timeout.send-rate`), bytes per second.
pub const MAX_RATE: u64 = 1 << 30;
/// Largest request body read whole before a backend is picked (`limit.body-buffer`): each
/// client connection may hold this much.
pub const MAX_BODY_BUFFER: u64 = 1 << 20;

/// How a request's backend is chosen among the healthy ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Each backend in turn (`rr`).
    RoundRobin,
    /// In turn, in proportion to the weights, spread smoothly (`wrr`).
    WeightedRoundRobin,
    /// The fewest requests in progress on this core (`leastconn`).
    LeastConnections,
    /// Two random backends, the one with fewer requests in progress on this core (`p2c`).
    PowerOfTwoChoices,
    /// A consistent hash of the client's address, so a client keeps its backend while the
    /// set of healthy backends stays the same (`hash`).
    ClientAddressHash,
}

/// How a backend's health is probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthProbe {
    /// No active checks: every backend counts as up unless passive ejection takes it out.
    Off,
    /// A TCP handshake completes.
    Tcp,
    /// `GET <path>` answers with a status in the expected class (2 for 2xx, ...).
    Http { path: String, expected_class: u8 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub probe: HealthProbe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
}

/// Passive ejection: a backend that fails this many requests in a row in a way that says the
/// backend itself is broken (connect refused or timed out, reset or closed before a response,
/// a response that is not HTTP, and the chosen 5xx statuses) is taken out for the cool-off,
/// after which an active check (or, without checks, the cool-off's end) brings it back. At
/// most `max_percent` of the pool is out at once (at least one backend), as Envoy's outlier
/// detection caps ejections with `max_ejection_percent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// 0 turns passive ejection off.
    pub consecutive_failures: u32,
    pub cool_off: Duration,
    /// The backend statuses that count as failures (none by default).
    pub statuses: FailureStatuses,
    /// The largest share of the pool, in percent, that may be ejected at once; at least one
    /// backend may always be.
    pub max_percent: u32,
}

/// A set of 5xx statuses (500 to 599, never 501 or 505) that passive ejection counts as a
/// backend failure, one bit per status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureStatuses(u128);

impl FailureStatuses {
    /// No status counts.
    pub const NONE: FailureStatuses = FailureStatuses(0);

    /// Whether `status` may be in the set: a 5xx other than 501 (Not Implemented) and 505
    /// (HTTP Version Not Supported), which answer what the client asked for, not a broken
    /// backend (HAProxy's `observe layer7` leaves out the same two).
    pub fn allows(status: u16) -> bool {
        (500..=599).contains(&status) && status != 501 && status != 505
    }

    /// The set with `status` added (`None` if [`FailureStatuses::allows`] refuses it).
    pub fn with(self, status: u16) -> Option<FailureStatuses> {
        Self::allows(status).then(|| FailureStatuses(self.0 | 1u128 << (status - 500)))
    }

    pub fn contains(self, status: u16) -> bool {
        (500..=599).contains(&status) && self.0 & (1u128 << (status - 500)) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The statuses, smallest first.
    pub fn iter(self) -> impl Iterator<Item = u16> {
        (500..=599).filter(move |&status| self.contains(status))
    }
}

/// Idle keep-alive connections to backends, kept per core and per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    /// 0: a new backend connection for every request.
    pub idle_per_backend: usize,
    pub idle_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// The backends requests go to: the ones listed by address first, then each named
    /// entry's last good answer ([`NamedBackend::resolved`]) in order.
    pub backends: Vec<Backend>,
    /// Backends listed by name, resolved by DNS (issue 24); empty without any.
    pub named_backends: Vec<NamedBackend>,
    pub balance: Balance,
    pub health: HealthCheck,
    pub ejection: Ejection,
    pub keep_alive: KeepAlive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Backend TCP handshake.
    pub connect: Duration,
    /// Backend response: to its first byte, and between two reads after that.
    pub backend: Duration,
    /// A client's whole request head, from its first byte (slowloris).
    pub header: Duration,
    /// A client connection with no request in progress (keep-alive idle), and the longest
    /// single wait on a client for a read or a write.
    pub client: Duration,
    /// All the waiting on a client for its request body (408 when spent), less what its bytes
    /// earn back at `body_rate`: how far it may fall behind that rate.
    pub body: Duration,
    /// Request body bytes per second that earn back a second of `body` (0: `body` is a
    /// deadline for the whole body).
    pub body_rate: u64,
    /// All the waiting on a client to take a response (cut off when spent), less what the
    /// bytes it takes earn back at `send_rate`.
    pub send: Duration,
    /// Response bytes per second that earn back a second of `send` (0: none).
    pub send_rate: u64,
    /// A tunnel (after `101`) with no byte in either direction for this long is closed.
    pub tunnel: Duration,
}

/// Sizes past which a request or response is refused, with the status nginx uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line (414).
    pub request_line: usize,
    /// Whole request head (431).
    pub header_bytes: usize,
    /// Header fields in a request (431).
    pub header_count: usize,
    /// Request body (413).
    pub body: u64,
    /// Request bodies with a `Content-Length` up to this are read whole before a backend is
    /// picked, so that a slow upload never holds a backend connection (0: never).
    pub body_buffer: u64,
    /// Whole response head from a backend (502).
    pub response_header_bytes: usize,
}

/// Which of the forwarding headers are added to requests (and `Via` to responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardingHeaders {
    pub x_forwarded_for: bool,
    pub x_forwarded_proto: bool,
    pub forwarded: bool,
    pub via: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retries {
    /// Other backends tried after a failed connect (the request was not sent).
    pub connect: u32,
    /// Times an idempotent request without a body is sent again after its backend failed
    /// before any response byte arrived.
    pub sent: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            backend: Duration::from_secs(60),
            header: Duration::from_secs(10),
            client: Duration::from_secs(60),
            body: Duration::from_secs(60),
            body_rate: 1024,
            send: Duration::from_secs(60),
            send_rate: 1024,
            tunnel: Duration::from_secs(60),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_line: 8 * 1024,
            header_bytes: 32 * 1024,
            header_count: 100,
            body: 10 * 1024 * 1024,
            body_buffer: 16 * 1024,
            response_header_bytes: 32 * 1024,
        }
    }
}

impl Default for ForwardingHeaders {
    fn default() -> Self {
        ForwardingHeaders {
            x_forwarded_for: true,
            x_forwarded_proto: true,
            forwarded: true,
            via: true,
        }
    }
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            connect: 2,
            sent: 1,
        }
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            probe: HealthProbe::Off,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

impl Default for Ejection {
    fn default() -> Self {
        Ejection {
            consecutive_failures: 5,
            cool_off: Duration::from_secs(10),
            // A client chooses many 5xx (a slow URL gets a backend's own 504, a rate limit
            // a 503): counting none by default keeps any client from ejecting backends, as
            // nginx's `max_fails` counts only errors and timeouts unless told otherwise.
            statuses: FailureStatuses::NONE,
            max_percent: 50,
        }
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive {
            idle_per_backend: 32,
            idle_timeout: Duration::from_secs(15),
        }
    }
}

/// A word the proxy rejected, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    /// The word's key (`backends`, `timeout.connect`, ...).
    pub key: String,
    pub problem: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "`{}`: {}", self.key, self.problem)
    }
}

fn invalid(key: &str, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

/// Whether `key` is one of the proxy's command-line words (the kernel's parser hands those
/// here and rejects every other word it does not know).
pub fn is_proxy_key(key: &str) -> bool {
    matches!(
        key,
        "proxy"
            | "backends"
            | "balance"
            | "health"
            | "eject.failures"
            | "eject.cooloff"
            | "eject.statuses"
            | "eject.max-percent"
    ) || [
        "timeout.", "limit.", "health.", "pool.", "forward.", "retry.",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix))
}

impl ProxySettings {
    /// Every setting at its default, with no port and no backend yet.
    pub fn with_defaults() -> ProxySettings {
        ProxySettings {
            port: 0,
            pool: PoolSettings {
                backends: Vec::new(),
                named_backends: Vec::new(),
                balance: Balance::RoundRobin,
                health: HealthCheck::default(),
                ejection: Ejection::default(),
                keep_alive: KeepAlive::default(),
            },
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            forwarding: ForwardingHeaders::default(),
            retries: Retries::default(),
        }
    }

    /// The settings from the proxy's words of a kernel command line (the other words are the
    /// kernel's, which parses them itself); `Ok(None)` without proxy words.
    pub fn from_command_line(line: &str) -> Result<Option<ProxySettings>, SettingsError> {
        Self::from_words(
            line.split_whitespace()
                .map(|word| word.split_once('=').unwrap_or((word, "")))
                .filter(|(key, _)| is_proxy_key(key)),
        )
    }

    /// The settings from the proxy's words (`key`, value), in order; a later word overrides an
    /// earlier one. `Ok(None)` when no `proxy=` word is there (and no other proxy word either).
    pub fn from_words<'a>(
        words: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<ProxySettings>, SettingsError> {
        let mut port = None;
        let mut backends: Option<Vec<Backend>> = None;
        let mut settings = ProxySettings::with_defaults();
        let mut any_word = None;
        for (key, value) in words {
            any_word.get_or_insert(key);
            settings.apply(key, value, &mut port, &mut backends)?;
        }
        let Some(first) = any_word else {
            return Ok(None);
        };
        let Some(port) = port else {
            return Err(invalid(first, "proxy words need `proxy=<port>`"));
        };
        let Some(backends) = backends else {
            return Err(invalid(
                "proxy",
                "needs `backends=<ip>:<port>[*<weight>],...`",
            ));
        };
        settings.port = port;
        settings.pool.backends = backends;
        Ok(Some(settings))
    }

    /// Applies one word; `port` and `backends` collect the two words every proxy needs.
    pub(crate) fn apply(
        &mut self,
        key: &str,
        value: &str,
        port: &mut Option<u16>,
        backends: &mut Option<Vec<Backend>>,
    ) -> Result<(), SettingsError> {
        if value.is_empty() {
            return Err(invalid(key, "needs a value"));
        }
        match key {
            "proxy" => *port = Some(parse_port(key, value)?),
            "backends" => {
                let (listed, named) = parse_backend_entries(key, value)?;
                *backends = Some(listed);
                self.pool.named_backends = named;
            }
            "balance" => {
                self.pool.balance = match value {
                    "rr" => Balance::RoundRobin,
                    "wrr" => Balance::WeightedRoundRobin,
                    "leastconn" => Balance::LeastConnections,
                    "p2c" => Balance::PowerOfTwoChoices,
                    "hash" => Balance::ClientAddressHash,
                    _ => return Err(invalid(key, "is one of rr, wrr, leastconn, p2c, hash")),
                }
            }
            "timeout.connect" => self.timeouts.connect = parse_seconds(key, value)?,
            "timeout.backend" => self.timeouts.backend = parse_seconds(key, value)?,
            "timeout.header" => self.timeouts.header = parse_seconds(key, value)?,
            "timeout.client" => self.timeouts.client = parse_seconds(key, value)?,
            "timeout.body" => self.timeouts.body = parse_seconds(key, value)?,
            "timeout.body-rate" => self.timeouts.body_rate = parse_number(key, value, 0, MAX_RATE)?,
            "timeout.send" => self.timeouts.send = parse_seconds(key, value)?,
            "timeout.send-rate" => self.timeouts.send_rate = parse_number(key, value, 0, MAX_RATE)?,
            "timeout.tunnel" => self.timeouts.tunnel = parse_seconds(key, value)?,
            "limit.body" => self.limits.body = parse_number(key, value, 0, u64::MAX)?,
            "limit.body-buffer" => {
                self.limits.body_buffer = parse_number(key, value, 0, MAX_BODY_BUFFER)?
            }
            "limit.request-line" => {
                self.limits.request_line = parse_number(key, value, 64, 1 << 20)? as usize
            }
            "limit.header-bytes" => {
                self.limits.header_bytes = parse_number(key, value, 256, 1 << 20)? as usize
            }
            "limit.header-count" => {
                self.limits.header_count = parse_number(key, value, 1, 1000)? as usize
            }
            "limit.response-header-bytes" => {
                self.limits.response_header_bytes = parse_number(key, value, 256, 1 << 20)? as usize
            }
            "health" => self.pool.health.probe = parse_probe(key, value)?,
            "health.interval" => self.pool.health.interval = parse_seconds(key, value)?,
            "health.timeout" => self.pool.health.timeout = parse_seconds(key, value)?,
            "health.rise" => self.pool.health.rise = parse_number(key, value, 1, 100)? as u32,
            "health.fall" => self.pool.health.fall = parse_number(key, value, 1, 100)? as u32,
            "eject.failures" => {
                self.pool.ejection.consecutive_failures = parse_number(key, value, 0, 1000)? as u32
            }
            "eject.cooloff" => self.pool.ejection.cool_off = parse_seconds(key, value)?,
            "eject.statuses" => self.pool.ejection.statuses = parse_statuses(key, value)?,
            "eject.max-percent" => {
                self.pool.ejection.max_percent = parse_number(key, value, 1, 100)? as u32
            }
            "pool.idle" => {
                self.pool.keep_alive.idle_per_backend = parse_number(key, value, 0, 4096)? as usize
            }
            "pool.timeout" => self.pool.keep_alive.idle_timeout = parse_seconds(key, value)?,
            "forward.xff" => self.forwarding.x_forwarded_for = parse_switch(key, value)?,
            "forward.proto" => self.forwarding.x_forwarded_proto = parse_switch(key, value)?,
            "forward.forwarded" => self.forwarding.forwarded = parse_switch(key, value)?,
            "forward.via" => self.forwarding.via = parse_switch(key, value)?,
            "retry.connect" => self.retries.connect = parse_number(key, value, 0, 16)? as u32,
            "retry.sent" => self.retries.sent = parse_number(key, value, 0, 16)? as u32,
            _ => return Err(invalid(key, "is not a proxy setting")),
        }
        Ok(())
    }
}

pub(crate) fn parse_port(key: &str, value: &str) -> Result<u16, SettingsError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(invalid(key, "a port is 1 to 65535")),
    }
}

/// Whether `text` is a DNS host name as a backend may be given: dot-separated labels of
/// letters, digits, `-` and (for SRV's `_service._proto` labels) `_`, each 1 to 63 bytes, not
/// starting or ending with `-`, 253 bytes at most (RFC 1123 section 2.1, RFC 2782).
fn is_host_name(text: &str) -> bool {
    let text = text.strip_suffix('.').unwrap_or(text);
    (1..=253).contains(&text.len())
        && text.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        })
        // A name of digits and dots only would be a mistyped address.
        && !text.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.')
}

/// The named entry `item`: `_service._proto.domain` (SRV) or `host:port[*weight]` (A).
fn parse_named(key: &str, item: &str) -> Result<NamedBackend, SettingsError> {
    if item.starts_with('_') && !item.contains(':') {
        let labels: Vec<&str> = item.split('.').collect();
        let proto = labels.get(1).copied().unwrap_or("");
        if item.contains('*') {
            return Err(invalid(
                key,
                alloc::format!("`{item}`: SRV records carry their own weights"),
            ));
        }
        if labels.len() < 3 || proto != "_tcp" || !is_host_name(item) {
            return Err(invalid(
                key,
                alloc::format!("`{item}` is not _<service>._tcp.<domain>"),
            ));
        }
        return Ok(NamedBackend {
            text: item.to_string(),
            lookup: NameLookup::Service {
                name: item.to_string(),
            },
            weight: 1,
            resolved: Vec::new(),
            backends_in_pool: 0,
        });
    }
    let (address, weight) = match item.split_once('*') {
        Some((address, weight)) => {
            let weight = parse_number(key, weight, 1, MAX_WEIGHT as u64).map_err(|_| {
                invalid(
                    key,
                    alloc::format!("weight of `{item}` is 1 to {MAX_WEIGHT}"),
                )
            })?;
            (address, weight as u32)
        }
        None => (item, 1),
    };
    let (host, port) = address.split_once(':').ok_or_else(|| {
        invalid(
            key,
            alloc::format!(
                "`{item}` is not <ip>:<port>, <name>:<port> or _<service>._tcp.<domain>"
            ),
        )
    })?;
    if !is_host_name(host) || host.starts_with('_') {
        return Err(invalid(
            key,
            alloc::format!("`{host}` is neither an IPv4 address nor a host name"),
        ));
    }
    let port = parse_port(key, port)
        .map_err(|_| invalid(key, alloc::format!("`{item}`: a port is 1 to 65535")))?;
    Ok(NamedBackend {
        text: address.to_string(),
        lookup: NameLookup::Address {
            host: host.to_string(),
            port,
        },
        weight,
        resolved: Vec::new(),
        backends_in_pool: 0,
    })
}

/// `<entry>,...` where an entry is `<ip>:<port>[*<weight>]`, `<name>:<port>[*<weight>]` or
/// `_<service>._tcp.<domain>`: the backends listed by address and the named ones, at least one
/// in all, at most [`MAX_BACKENDS`] of each, no duplicates.
pub(crate) fn parse_backend_entries(
    key: &str,
    value: &str,
) -> Result<(Vec<Backend>, Vec<NamedBackend>), SettingsError> {
    let mut backends = Vec::new();
    let mut named: Vec<NamedBackend> = Vec::new();
    for item in value.split(',') {
        let host = item.split(['*', ':']).next().unwrap_or("");
        if host.parse::<Ipv4Addr>().is_err()
            && host
                .bytes()
                .any(|byte| byte.is_ascii_alphabetic() || byte == b'_')
        {
            let entry = parse_named(key, item)?;
            if named.iter().any(|known| known.text == entry.text) {
                return Err(invalid(
                    key,
                    alloc::format!("`{}` is listed twice", entry.text),
                ));
            }
            named.push(entry);
            continue;
        }
        let (address, weight) = match item.split_once('*') {
            Some((address, weight)) => {
                let weight = parse_number(key, weight, 1, MAX_WEIGHT as u64).map_err(|_| {
                    invalid(
                        key,
                        alloc::format!("weight of `{item}` is 1 to {MAX_WEIGHT}"),
                    )
                })?;
                (address, weight as u32)
            }
            None => (item, 1),
        };
        let (ip, port) = address
            .split_once(':')
            .ok_or_else(|| invalid(key, alloc::format!("`{item}` is not <ip>:<port>")))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| invalid(key, alloc::format!("`{ip}` is not an IPv4 address")))?;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(invalid(key, alloc::format!("`{ip}` cannot be a backend")));
        }
        let port = parse_port(key, port)
            .map_err(|_| invalid(key, alloc::format!("`{item}`: a port is 1 to 65535")))?;
        let address = SocketAddrV4::new(ip, port);
        if backends
            .iter()
            .any(|backend: &Backend| backend.address == address)
        {
            return Err(invalid(key, alloc::format!("`{address}` is listed twice")));
        }
        backends.push(Backend { address, weight });
    }
    if backends.len() > MAX_BACKENDS || named.len() > MAX_BACKENDS {
        return Err(invalid(
            key,
            alloc::format!("at most {MAX_BACKENDS} backends"),
        ));
    }
    Ok((backends, named))
}

pub(crate) fn parse_probe(key: &str, value: &str) -> Result<HealthProbe, SettingsError> {
    match value {
        "off" => Ok(HealthProbe::Off),
        "tcp" => Ok(HealthProbe::Tcp),
        _ => match value.strip_prefix("http:") {
            Some(path)
                if path.starts_with('/') && path.bytes().all(|byte| byte.is_ascii_graphic()) =>
            {
                Ok(HealthProbe::Http {
                    path: path.to_string(),
                    expected_class: 2,
                })
            }
            _ => Err(invalid(key, "is off, tcp or http:<path starting with />")),
        },
    }
}

/// `none`, or 5xx statuses separated by commas (`502,503,504`); 501 and 505 are refused.
pub(crate) fn parse_statuses(key: &str, value: &str) -> Result<FailureStatuses, SettingsError> {
    if value == "none" {
        return Ok(FailureStatuses::NONE);
    }
    let mut statuses = FailureStatuses::NONE;
    for item in value.split(',') {
        let status = parse_number(key, item, 500, 599)
            .ok()
            .and_then(|status| statuses.with(status as u16))
            .ok_or_else(|| {
                invalid(
                    key,
                    alloc::format!(
                        "`{item}`: is none or 5xx statuses separated by commas (never 501 or 505)"
                    ),
                )
            })?;
        statuses = status;
    }
    Ok(statuses)
}

pub(crate) fn parse_switch(key: &str, value: &str) -> Result<bool, SettingsError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(invalid(key, "is on or off")),
    }
}

/// A whole number in `minimum..=maximum`.
pub(crate) fn parse_number(
    key: &str,
    value: &str,
    minimum: u64,
    maximum: u64,
) -> Result<u64, SettingsError> {
    let out_of_range = || {
        invalid(
            key,
            alloc::format!("is a whole number from {minimum} to {maximum}"),
        )
    };
    if !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(out_of_range());
    }
    match value.parse::<u64>() {
        Ok(number) if (minimum..=maximum).contains(&number) => Ok(number),
        _ => Err(out_of_range()),
    }
}

/// Seconds with up to nine decimals (`2`, `0.5`, `1.25`), more than 0 and at most a day.
pub(crate) fn parse_seconds(key: &str, value: &str) -> Result<Duration, SettingsError> {
    let bad = || {
        invalid(
            key,
            "is a number of seconds above 0 and at most 86400 (e.g. 1.5)",
        )
    };
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return Err(bad());
    }
    if value.ends_with('.') {
        return Err(bad());
    }
    let seconds: u64 = whole.parse().map_err(|_| bad())?;
    let mut nanos: u32 = 0;
    for (position, digit) in fraction.bytes().enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - position as u32);
    }
    let duration = Duration::new(seconds, nanos);
    if duration.is_zero() || duration > Duration::from_secs(86_400) {
        return Err(bad());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Option<ProxySettings>, SettingsError> {
        ProxySettings::from_command_line(line)
    }

    #[test]
    fn no_proxy_words_no_proxy() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("ip=10.0.0.1/24 log=debug responder=8080"), Ok(None));
    }

    #[test]
    fn the_interface_words_are_parsed() {
        let settings = parse(
            "proxy=80 backends=10.0.0.2:8080*3,10.0.0.3:8081 balance=leastconn \
             timeout.connect=1.5 timeout.backend=2 timeout.client=0.25 limit.body=1000 \
             health=http:/healthz health.interval=0.5 timeout.body=30 timeout.body-rate=0 \
             timeout.send=45 timeout.send-rate=2048 timeout.tunnel=3600 limit.body-buffer=0",
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.port, 80);
        assert_eq!(
            settings.pool.backends,
            [
                Backend {
                    address: "10.0.0.2:8080".parse().unwrap(),
                    weight: 3
                },
                Backend {
                    address: "10.0.0.3:8081".parse().unwrap(),
                    weight: 1
                }
            ]
        );
        assert_eq!(settings.pool.balance, Balance::LeastConnections);
        assert_eq!(settings.timeouts.connect, Duration::from_millis(1500));
        assert_eq!(settings.timeouts.backend, Duration::from_secs(2));
        assert_eq!(settings.timeouts.client, Duration::from_millis(250));
        assert_eq!(settings.limits.body, 1000);
        assert_eq!(settings.timeouts.body, Duration::from_secs(30));
        assert_eq!(settings.timeouts.body_rate, 0);
        assert_eq!(settings.timeouts.send, Duration::from_secs(45));
        assert_eq!(settings.timeouts.send_rate, 2048);
        assert_eq!(settings.timeouts.tunnel, Duration::from_secs(3600));
        assert_eq!(settings.limits.body_buffer, 0);
        assert_eq!(
            settings.pool.health.probe,
            HealthProbe::Http {
                path: "/healthz".into(),
                expected_class: 2
            }
        );
        assert_eq!(settings.pool.health.interval, Duration::from_millis(500));
    }

    #[test]
    fn every_bad_word_names_its_key() {
        for (line, key) in [
            ("proxy=0 backends=10.0.0.2:80", "proxy"),
            ("proxy=80", "proxy"),
            ("backends=10.0.0.2:80", "backends"),
            ("proxy=80 backends=10.0.0.2", "backends"),
            ("proxy=80 backends=10.0.0.2:80*0", "backends"),
            ("proxy=80 backends=10.0.0.2:80*1001", "backends"),
            ("proxy=80 backends=10.0.0.2:80,10.0.0.2:80", "backends"),
            ("proxy=80 backends=0.0.0.0:80", "backends"),
            ("proxy=80 backends=10.0.0.2:80 balance=random", "balance"),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.connect=0",
                "timeout.connect",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.connect=1.",
                "timeout.connect",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.connect=-1",
                "timeout.connect",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.backend=86401",
                "timeout.backend",
            ),
            ("proxy=80 backends=10.0.0.2:80 limit.body=1k", "limit.body"),
            (
                "proxy=80 backends=10.0.0.2:80 limit.body-buffer=1048577",
                "limit.body-buffer",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.send-rate=fast",
                "timeout.send-rate",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.body=0",
                "timeout.body",
            ),
            ("proxy=80 backends=10.0.0.2:80 health=udp", "health"),
            (
                "proxy=80 backends=10.0.0.2:80 health=http:healthz",
                "health",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 forward.via=yes",
                "forward.via",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 timeout.frob=1",
                "timeout.frob",
            ),
            ("proxy=80 backends=10.0.0.2:80 retry.sent=", "retry.sent"),
            (
                "proxy=80 backends=10.0.0.2:80 eject.statuses=502,501",
                "eject.statuses",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 eject.statuses=505",
                "eject.statuses",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 eject.statuses=404",
                "eject.statuses",
            ),
            (
                "proxy=80 backends=10.0.0.2:80 eject.max-percent=0",
                "eject.max-percent",
            ),
        ] {
            let error = parse(line).expect_err(line);
            assert_eq!(error.key, key, "{line}: {error}");
        }
    }

    #[test]
    fn proxy_keys_are_recognised() {
        for key in [
            "proxy",
            "backends",
            "timeout.connect",
            "limit.body",
            "health",
            "pool.idle",
        ] {
            assert!(is_proxy_key(key), "{key}");
        }
        for key in ["responder", "ip", "log", "proxyx"] {
            assert!(!is_proxy_key(key), "{key}");
        }
    }

    #[test]
    fn ejection_statuses_and_share_are_parsed() {
        let settings = parse("proxy=80 backends=10.0.0.2:80").unwrap().unwrap();
        assert!(settings.pool.ejection.statuses.is_empty());
        assert_eq!(settings.pool.ejection.max_percent, 50);
        let settings =
            parse("proxy=80 backends=10.0.0.2:80 eject.statuses=504,502,503 eject.max-percent=10")
                .unwrap()
                .unwrap();
        let statuses = settings.pool.ejection.statuses;
        assert_eq!(statuses.iter().collect::<Vec<_>>(), [502, 503, 504]);
        assert!(!statuses.contains(500) && !statuses.contains(501));
        assert_eq!(settings.pool.ejection.max_percent, 10);
        let settings =
            parse("proxy=80 backends=10.0.0.2:80 eject.statuses=500 eject.statuses=none")
                .unwrap()
                .unwrap();
        assert!(settings.pool.ejection.statuses.is_empty());
    }

    #[test]
    fn seconds_take_decimals() {
        assert_eq!(parse_seconds("k", "0.001"), Ok(Duration::from_millis(1)));
        assert_eq!(parse_seconds("k", "3"), Ok(Duration::from_secs(3)));
        assert!(parse_seconds("k", ".5").is_err());
        assert!(parse_seconds("k", "1.0000000001").is_err());
    }
}
