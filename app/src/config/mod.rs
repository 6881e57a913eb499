//! The appliance's whole configuration: listeners, pools, the admin listener and the access log, read from a TOML file and the command line's words (the words win), validated whole, and written back as a file.
//!
//! Modules: `file` (the TOML document, deserialised with serde and checked key by key),
//! `words` (the command line's proxy, admin and access-log words applied on top), `render`
//! (the configuration in force as a complete TOML file, for `GET /config`), `address_range`
//! (the admin allow-list's CIDR ranges), `secrets` (which values are secret, and the command
//! line with them redacted for the console and errors).

mod address_range;
mod file;
mod render;
mod secrets;
mod words;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddrV4;
use core::time::Duration;

pub use address_range::AddressRange;
pub use secrets::{REDACTED, RedactedCommandLine, is_secret_word, redacted_command_line};
pub use words::is_app_key;

use crate::proxy::settings::{
    ForwardingHeaders, Limits, PoolSettings, ProxySettings, Retries, Timeouts,
};
use crate::proxy::syslog::DEFAULT_HOSTNAME;
pub use crate::proxy::syslog::Facility;

/// The name the command line's `backends=` pool gets when no file names it.
pub const DEFAULT_POOL: &str = "default";
/// Most listeners and most pools in one configuration.
pub const MAX_LISTENERS: usize = 16;
pub const MAX_POOLS: usize = 64;
/// The longest configuration file accepted.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Everything the appliance's application side runs with; one value, shared read-only by every
/// core, replaced whole by `PUT /config`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configuration {
    pub listeners: Vec<ListenerConfig>,
    pub pools: Vec<PoolConfig>,
    pub admin: Option<AdminSettings>,
    pub access_log: AccessLogSettings,
    /// The appliance's name in its syslog messages.
    pub hostname: Hostname,
    /// Where backends given by name are resolved.
    pub dns: DnsSettings,
}

/// The appliance's host name (RFC 1123), `unisock` unless configured; checked where it is
/// parsed (see [`crate::proxy::syslog::is_hostname`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostname(pub String);

impl Default for Hostname {
    fn default() -> Self {
        Hostname(DEFAULT_HOSTNAME.to_string())
    }
}

impl Hostname {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The recursive resolvers backend names are asked of (`[dns] resolvers` in the file,
/// `resolvers=` on the command line); DHCP option 6 will add its own (issue 24).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// In order of preference; port 53 unless given.
    pub resolvers: Vec<core::net::SocketAddrV4>,
}

/// Most resolvers in `[dns] resolvers` (glibc's resolv.conf takes three).
pub const MAX_RESOLVERS: usize = 3;

/// `<ip>[:<port>]`, one resolver.
pub(crate) fn parse_resolver(text: &str) -> Result<core::net::SocketAddrV4, String> {
    let (ip, port) = match text.split_once(':') {
        Some((ip, port)) => (
            ip,
            port.parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| alloc::format!("`{text}`: a port is 1 to 65535"))?,
        ),
        None => (text, crate::dns::resolver::DNS_PORT),
    };
    let ip: core::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| alloc::format!("`{ip}` is not an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Err(alloc::format!("`{ip}` cannot be a resolver"));
    }
    Ok(core::net::SocketAddrV4::new(ip, port))
}

/// A list of resolvers: 1 to [`MAX_RESOLVERS`], no duplicates.
pub(crate) fn parse_resolvers<'a>(
    items: impl Iterator<Item = &'a str>,
) -> Result<Vec<core::net::SocketAddrV4>, String> {
    let mut resolvers = Vec::new();
    for item in items {
        let resolver = parse_resolver(item)?;
        if resolvers.contains(&resolver) {
            return Err(alloc::format!("`{resolver}` is listed twice"));
        }
        resolvers.push(resolver);
    }
    if resolvers.is_empty() || resolvers.len() > MAX_RESOLVERS {
        return Err(alloc::format!("1 to {MAX_RESOLVERS} resolvers"));
    }
    Ok(resolvers)
}

/// A port the proxy accepts clients on, and what it does with their requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    pub port: u16,
    /// The [`PoolConfig::name`] its requests go to.
    pub pool: String,
    /// A client's whole request head, from its first byte (slowloris).
    pub header_timeout: Duration,
    /// A client connection with no request in progress, and the longest single wait on a
    /// client.
    pub client_timeout: Duration,
    /// A request body's waiting allowance and the minimum rate that earns it back.
    pub body_timeout: Duration,
    pub body_rate: u64,
    /// A response's waiting allowance on the client and the minimum rate that earns it back.
    pub send_timeout: Duration,
    pub send_rate: u64,
    /// A tunnel with no byte either way.
    pub tunnel_timeout: Duration,
    pub request_line_limit: usize,
    pub header_bytes_limit: usize,
    pub header_count_limit: usize,
    pub body_limit: u64,
    /// Request bodies up to this (with a `Content-Length`) are read whole before a backend
    /// is picked.
    pub body_buffer_limit: u64,
    pub forwarding: ForwardingHeaders,
}

/// A named set of backends and how requests are spread over them and sent to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    pub name: String,
    pub settings: PoolSettings,
    pub connect_timeout: Duration,
    pub backend_timeout: Duration,
    pub retries: Retries,
    pub response_header_bytes_limit: usize,
}

/// The admin listener (`GET /metrics`, `/sockets`, `/config`, `PUT /config`, drains).
#[derive(Clone, PartialEq, Eq)]
pub struct AdminSettings {
    pub port: u16,
    /// Source ranges allowed to talk to it; `None`: the appliance's own network only.
    pub allow: Option<Vec<AddressRange>>,
    /// Changes (and reading the configuration, which holds it) need `Authorization: Bearer
    /// <token>`; without a token they are refused.
    pub token: Option<String>,
}

/// Written by hand so that the token never reaches a log or a panic message through `{:?}`.
impl fmt::Debug for AdminSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AdminSettings")
            .field("port", &self.port)
            .field("allow", &self.allow)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .finish()
    }
}

/// Where the access log goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccessLogTarget {
    #[default]
    Off,
    /// One line per logged request on the serial console.
    Console,
    /// One RFC 5424 message per logged request, over UDP to [`SyslogSettings::collector`].
    Syslog,
}

/// Where and how syslog messages go (with [`AccessLogTarget::Syslog`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyslogSettings {
    /// The collector's address and port (required with the syslog target).
    pub collector: Option<SocketAddrV4>,
    pub facility: Facility,
}

/// One line per request, sampled and rate-limited so logging never slows the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLogSettings {
    pub target: AccessLogTarget,
    /// One request in `sample` is logged.
    pub sample: u32,
    /// At most this many lines a second on each core; the rest are counted as dropped.
    pub lines_per_second: u32,
    pub syslog: SyslogSettings,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        AccessLogSettings {
            target: AccessLogTarget::Off,
            sample: 1,
            lines_per_second: 100,
            syslog: SyslogSettings::default(),
        }
    }
}

/// What is wrong with a configuration: the key (as the file or the command line spells it),
/// the file's line when it came from the file, and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub line: Option<usize>,
    pub problem: String,
}

impl ConfigError {
    pub(crate) fn new(
        key: impl Into<String>,
        line: Option<usize>,
        problem: impl Into<String>,
    ) -> Self {
        ConfigError {
            key: key.into(),
            line,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "line {line}: `{}`: {}", self.key, self.problem),
            None => write!(formatter, "`{}`: {}", self.key, self.problem),
        }
    }
}

impl Configuration {
    /// The configuration from an optional file and the command line's words (the words override
    /// the file), checked whole; `reserved_ports` are ports other services hold.
    pub fn from_sources(
        file: Option<&str>,
        command_line: &str,
        reserved_ports: &[u16],
    ) -> Result<Configuration, ConfigError> {
        let (mut configuration, lines) = match file {
            Some(text) => {
                let (configuration, lines) = Configuration::parse_file(text)?;
                configuration.validate(&[], Some(&lines))?;
                (configuration, Some(lines))
            }
            None => (Configuration::default(), None),
        };
        words::apply_command_line(&mut configuration, command_line)?;
        configuration.validate(reserved_ports, lines.as_ref())?;
        Ok(configuration)
    }

    /// The configuration of a TOML file alone, checked whole.
    pub fn from_file(text: &str) -> Result<Configuration, ConfigError> {
        Configuration::from_file_reserving(text, &[])
    }

    /// The configuration of a TOML file alone, checked whole, with `reserved_ports` held by
    /// other services (what `PUT /config` checks).
    pub fn from_file_reserving(
        text: &str,
        reserved_ports: &[u16],
    ) -> Result<Configuration, ConfigError> {
        let (configuration, lines) = Configuration::parse_file(text)?;
        configuration.validate(reserved_ports, Some(&lines))?;
        Ok(configuration)
    }

    fn parse_file(text: &str) -> Result<(Configuration, file::SourceLines), ConfigError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(ConfigError::new(
                "file",
                None,
                alloc::format!("is {} bytes; at most {MAX_FILE_BYTES}", text.len()),
            ));
        }
        file::parse(text)
    }

    /// The configuration in force as a complete TOML file: booting with exactly this file
    /// and no proxy words gives the same configuration.
    pub fn to_file(&self) -> String {
        render::to_file(self)
    }

    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|pool| pool.name == name)
    }

    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|pool| pool.name == name)
    }

    /// The effective settings of listener `index` (its own and its pool's), as the proxy's
    /// workers run them.
    pub fn listener_settings(&self, index: usize) -> Option<ProxySettings> {
        let listener = self.listeners.get(index)?;
        let pool = self.pool(&listener.pool)?;
        Some(assemble(listener, pool))
    }

    /// The whole-configuration rules that no single key can check; `lines` (where the file
    /// set things) gives the errors their line.
    fn validate(
        &self,
        reserved_ports: &[u16],
        lines: Option<&file::SourceLines>,
    ) -> Result<(), ConfigError> {
        let port_line =
            |index: usize| lines.and_then(|lines| lines.listener_port.get(index).copied());
        if self.listeners.len() > MAX_LISTENERS {
            return Err(ConfigError::new(
                "listener",
                None,
                alloc::format!("at most {MAX_LISTENERS} listeners"),
            ));
        }
        if self.pools.len() > MAX_POOLS {
            return Err(ConfigError::new(
                "pool",
                None,
                alloc::format!("at most {MAX_POOLS} pools"),
            ));
        }
        for (index, listener) in self.listeners.iter().enumerate() {
            let key = alloc::format!("listener[{index}].port");
            if self.listeners[..index]
                .iter()
                .any(|other| other.port == listener.port)
            {
                return Err(ConfigError::new(
                    key,
                    port_line(index),
                    alloc::format!("port {} has two listeners", listener.port),
                ));
            }
            if reserved_ports.contains(&listener.port) {
                return Err(ConfigError::new(
                    key,
                    port_line(index),
                    alloc::format!("port {} is taken by another service", listener.port),
                ));
            }
            if let Some(admin) = &self.admin
                && admin.port == listener.port
            {
                return Err(ConfigError::new(
                    key,
                    port_line(index),
                    alloc::format!(
                        "port {} is the admin listener's; proxied traffic never shares it",
                        listener.port
                    ),
                ));
            }
            if self.pool(&listener.pool).is_none() {
                return Err(ConfigError::new(
                    alloc::format!("listener[{index}].pool"),
                    lines
                        .and_then(|lines| lines.listener_pool.get(index).copied().flatten())
                        .or(port_line(index)),
                    alloc::format!("no pool is named `{}`", listener.pool),
                ));
            }
        }
        for pool in &self.pools {
            if let Some(named) = pool.settings.named_backends.first()
                && self.dns.resolvers.is_empty()
            {
                return Err(ConfigError::new(
                    alloc::format!("pool.{}.backends", pool.name),
                    lines.and_then(|lines| lines.pool(&pool.name)),
                    alloc::format!(
                        "`{}` is a name: it needs a resolver (`[dns] resolvers` or `resolvers=`)",
                        named.text
                    ),
                ));
            }
            if pool.settings.backends.is_empty() && pool.settings.named_backends.is_empty() {
                return Err(ConfigError::new(
                    alloc::format!("pool.{}.backends", pool.name),
                    lines.and_then(|lines| lines.pool(&pool.name)),
                    "a pool needs at least one backend",
                ));
            }
        }
        if self.access_log.target == AccessLogTarget::Syslog
            && self.access_log.syslog.collector.is_none()
        {
            return Err(ConfigError::new(
                "access_log.syslog.collector",
                lines.and_then(|lines| lines.access_log_target),
                "the syslog target needs the collector's address:port \
                 (`accesslog.collector=` on the command line)",
            ));
        }
        if let Some(admin) = &self.admin
            && reserved_ports.contains(&admin.port)
        {
            return Err(ConfigError::new(
                "admin.port",
                lines.and_then(|lines| lines.admin_port),
                alloc::format!("port {} is taken by another service", admin.port),
            ));
        }
        Ok(())
    }

    /// Gives each named backend that `old` has too (same pool, same entry) `old`'s last good
    /// answer, so that a new file does not empty a pool until its names are resolved again.
    pub fn keep_answers_of(&mut self, old: &Configuration) {
        for pool in &mut self.pools {
            let Some(old_pool) = old.pool(&pool.name) else {
                continue;
            };
            for index in 0..pool.settings.named_backends.len() {
                let named = &pool.settings.named_backends[index];
                if let Some(known) = old_pool
                    .settings
                    .named_backends
                    .iter()
                    .find(|known| known.text == named.text && known.lookup == named.lookup)
                {
                    let weight = named.weight;
                    let answer = known
                        .resolved
                        .iter()
                        .map(|backend| crate::proxy::settings::Backend {
                            address: backend.address,
                            // An A name's weight is the file's; an SRV record's its own.
                            weight: match named.lookup {
                                crate::proxy::settings::NameLookup::Address { .. } => weight,
                                crate::proxy::settings::NameLookup::Service { .. } => {
                                    backend.weight
                                }
                            },
                        })
                        .collect();
                    pool.settings.set_resolved(index, answer);
                }
            }
        }
    }

    /// Every port the configuration listens on (listeners and admin).
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.listeners
            .iter()
            .map(|listener| listener.port)
            .chain(self.admin.as_ref().map(|admin| admin.port))
    }
}

/// A listener's and its pool's settings as one [`ProxySettings`].
pub fn assemble(listener: &ListenerConfig, pool: &PoolConfig) -> ProxySettings {
    ProxySettings {
        port: listener.port,
        pool: pool.settings.clone(),
        timeouts: Timeouts {
            connect: pool.connect_timeout,
            backend: pool.backend_timeout,
            header: listener.header_timeout,
            client: listener.client_timeout,
            body: listener.body_timeout,
            body_rate: listener.body_rate,
            send: listener.send_timeout,
            send_rate: listener.send_rate,
            tunnel: listener.tunnel_timeout,
        },
        limits: Limits {
            request_line: listener.request_line_limit,
            header_bytes: listener.header_bytes_limit,
            header_count: listener.header_count_limit,
            body: listener.body_limit,
            body_buffer: listener.body_buffer_limit,
            response_header_bytes: pool.response_header_bytes_limit,
        },
        forwarding: listener.forwarding,
        retries: pool.retries,
    }
}

/// The listener's and the pool's halves of one [`ProxySettings`].
pub fn split(settings: &ProxySettings, pool_name: &str) -> (ListenerConfig, PoolConfig) {
    (
        ListenerConfig {
            port: settings.port,
            pool: pool_name.to_string(),
            header_timeout: settings.timeouts.header,
            client_timeout: settings.timeouts.client,
            body_timeout: settings.timeouts.body,
            body_rate: settings.timeouts.body_rate,
            send_timeout: settings.timeouts.send,
            send_rate: settings.timeouts.send_rate,
            tunnel_timeout: settings.timeouts.tunnel,
            request_line_limit: settings.limits.request_line,
            header_bytes_limit: settings.limits.header_bytes,
            header_count_limit: settings.limits.header_count,
            body_limit: settings.limits.body,
            body_buffer_limit: settings.limits.body_buffer,
            forwarding: settings.forwarding,
        },
        PoolConfig {
            name: pool_name.to_string(),
            settings: settings.pool.clone(),
            connect_timeout: settings.timeouts.connect,
            backend_timeout: settings.timeouts.backend,
            retries: settings.retries,
            response_header_bytes_limit: settings.limits.response_header_bytes,
        },
    )
}

#[cfg(test)]
mod tests;
