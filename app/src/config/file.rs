//! The TOML configuration file: its shape as serde types (unknown keys and wrong types refused by the deserialiser, with their line), and each value checked by the same rules as its command-line word.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::{
    AccessLogSettings, AddressRange, AdminSettings, ConfigError, Configuration, DEFAULT_POOL,
    ListenerConfig, PoolConfig, secrets, split, words,
};
use crate::proxy::settings::{ProxySettings, parse_backend_entries, parse_port};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    listener: Vec<Spanned<RawListener>>,
    #[serde(default)]
    pool: BTreeMap<String, Spanned<RawPool>>,
    admin: Option<Spanned<RawAdmin>>,
    access_log: Option<RawAccessLog>,
    /// Top-level, so written before the first table.
    hostname: Option<Spanned<String>>,
    dns: Option<RawDns>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    resolvers: Spanned<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    port: Spanned<u16>,
    pool: Option<Spanned<String>>,
    #[serde(default)]
    timeout: RawListenerTimeouts,
    #[serde(default)]
    limit: RawListenerLimits,
    #[serde(default)]
    forward: RawForward,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawListenerTimeouts {
    header: Option<Spanned<Seconds>>,
    client: Option<Spanned<Seconds>>,
    body: Option<Spanned<Seconds>>,
    body_rate: Option<Spanned<u64>>,
    send: Option<Spanned<Seconds>>,
    send_rate: Option<Spanned<u64>>,
    tunnel: Option<Spanned<Seconds>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawListenerLimits {
    body: Option<Spanned<u64>>,
    body_buffer: Option<Spanned<u64>>,
    request_line: Option<Spanned<u64>>,
    header_bytes: Option<Spanned<u64>>,
    header_count: Option<Spanned<u64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    xff: Option<Spanned<bool>>,
    proto: Option<Spanned<bool>>,
    forwarded: Option<Spanned<bool>>,
    via: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    backends: Spanned<Vec<String>>,
    balance: Option<Spanned<String>>,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    eject: RawEject,
    #[serde(default)]
    keepalive: RawKeepAlive,
    #[serde(default)]
    timeout: RawPoolTimeouts,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    limit: RawPoolLimits,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    probe: Option<Spanned<String>>,
    interval: Option<Spanned<Seconds>>,
    timeout: Option<Spanned<Seconds>>,
    rise: Option<Spanned<u64>>,
    fall: Option<Spanned<u64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEject {
    failures: Option<Spanned<u64>>,
    cooloff: Option<Spanned<Seconds>>,
    statuses: Option<Spanned<Vec<u64>>>,
    max_percent: Option<Spanned<u64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeepAlive {
    idle: Option<Spanned<u64>>,
    timeout: Option<Spanned<Seconds>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoolTimeouts {
    connect: Option<Spanned<Seconds>>,
    backend: Option<Spanned<Seconds>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    connect: Option<Spanned<u64>>,
    sent: Option<Spanned<u64>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPoolLimits {
    response_header_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    port: Spanned<u16>,
    allow: Option<Spanned<Vec<String>>>,
    token: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccessLog {
    target: Option<Spanned<String>>,
    sample: Option<Spanned<u64>>,
    rate: Option<Spanned<u64>>,
    #[serde(default)]
    syslog: RawSyslog,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSyslog {
    collector: Option<Spanned<String>>,
    facility: Option<Spanned<String>>,
}

/// A number of seconds, integer or decimal in the file, kept as the word's text so that the
/// word's rules (above 0, at most a day, nine decimals) check it.
struct Seconds(String);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Seconds, D::Error> {
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a number of seconds (e.g. 5 or 0.25)")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Seconds, E> {
                Ok(Seconds(value.to_string()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Seconds, E> {
                Ok(Seconds(value.to_string()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Seconds, E> {
                Ok(Seconds(format!("{value}")))
            }
        }
        deserializer.deserialize_any(SecondsVisitor)
    }
}

/// A value of the file in its command-line word's text form.
trait WordText {
    fn word_text(&self) -> String;
}

impl WordText for Seconds {
    fn word_text(&self) -> String {
        self.0.clone()
    }
}

impl WordText for u64 {
    fn word_text(&self) -> String {
        self.to_string()
    }
}

/// A list of statuses: `502,503,504`, or `none` for an empty one.
impl WordText for Vec<u64> {
    fn word_text(&self) -> String {
        if self.is_empty() {
            return String::from("none");
        }
        self.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl WordText for bool {
    fn word_text(&self) -> String {
        String::from(if *self { "on" } else { "off" })
    }
}

impl WordText for String {
    fn word_text(&self) -> String {
        self.clone()
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// Where the file set what the whole-configuration checks look at, so that their errors name
/// the line.
#[derive(Clone, Debug, Default)]
pub struct SourceLines {
    /// By listener index: the line of its `port`, and of its `pool` if written.
    pub listener_port: Vec<usize>,
    pub listener_pool: Vec<Option<usize>>,
    /// By pool name: the line of its table.
    pub pools: Vec<(String, usize)>,
    pub admin_port: Option<usize>,
    /// The line of `access_log.target`, if written.
    pub access_log_target: Option<usize>,
}

impl SourceLines {
    pub fn pool(&self, name: &str) -> Option<usize> {
        self.pools
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, line)| *line)
    }
}

/// Applies the file's values to a [`ProxySettings`] through the command-line words' own rules.
struct Applier<'t> {
    text: &'t str,
    settings: ProxySettings,
    port: Option<u16>,
    backends: Option<Vec<crate::proxy::settings::Backend>>,
}

impl Applier<'_> {
    fn set<T: WordText>(
        &mut self,
        file_key: &str,
        word: &str,
        value: &Option<Spanned<T>>,
    ) -> Result<(), ConfigError> {
        let Some(value) = value else {
            return Ok(());
        };
        let line = line_at(self.text, value.span().start);
        self.settings
            .apply(
                word,
                &value.get_ref().word_text(),
                &mut self.port,
                &mut self.backends,
            )
            .map_err(|error| ConfigError::new(file_key, Some(line), error.problem))
    }
}

pub(super) fn parse(text: &str) -> Result<(Configuration, SourceLines), ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|error| toml_error(text, &error))?;
    let mut configuration = Configuration::default();
    let mut lines = SourceLines::default();
    for (name, pool) in &raw.pool {
        configuration.pools.push(pool_config(text, name, pool)?);
        lines
            .pools
            .push((name.clone(), line_at(text, pool.span().start)));
    }
    for (index, listener) in raw.listener.iter().enumerate() {
        configuration
            .listeners
            .push(listener_config(text, index, listener)?);
        let raw = listener.get_ref();
        lines
            .listener_port
            .push(line_at(text, raw.port.span().start));
        lines.listener_pool.push(
            raw.pool
                .as_ref()
                .map(|pool| line_at(text, pool.span().start)),
        );
    }
    lines.admin_port = raw
        .admin
        .as_ref()
        .map(|admin| line_at(text, admin.get_ref().port.span().start));
    if let Some(admin) = &raw.admin {
        configuration.admin = Some(admin_settings(text, admin)?);
    }
    if let Some(dns) = &raw.dns {
        configuration.dns.resolvers = super::parse_resolvers(
            dns.resolvers.get_ref().iter().map(String::as_str),
        )
        .map_err(|problem| {
            ConfigError::new(
                "dns.resolvers",
                Some(line_at(text, dns.resolvers.span().start)),
                problem,
            )
        })?;
    }
    if let Some(log) = &raw.access_log {
        configuration.access_log = access_log_settings(text, log)?;
        lines.access_log_target = log
            .target
            .as_ref()
            .map(|target| line_at(text, target.span().start));
    }
    if let Some(hostname) = &raw.hostname {
        configuration.hostname = words::parse_hostname(hostname.get_ref()).map_err(|problem| {
            ConfigError::new(
                "hostname",
                Some(line_at(text, hostname.span().start)),
                problem,
            )
        })?;
    }
    Ok((configuration, lines))
}

fn pool_config(text: &str, name: &str, pool: &Spanned<RawPool>) -> Result<PoolConfig, ConfigError> {
    let key = |rest: &str| format!("pool.{name}.{rest}");
    if !words::is_name(name) {
        return Err(ConfigError::new(
            format!("pool.{name}"),
            Some(line_at(text, pool.span().start)),
            "a pool's name is 1 to 32 letters, digits, `-` or `_`",
        ));
    }
    let raw = pool.get_ref();
    let mut applier = Applier {
        text,
        settings: ProxySettings::with_defaults(),
        port: None,
        backends: None,
    };
    let backends_line = line_at(text, raw.backends.span().start);
    if raw.backends.get_ref().is_empty() {
        return Err(ConfigError::new(
            key("backends"),
            Some(backends_line),
            "a pool needs at least one backend",
        ));
    }
    let (backends, named_backends) =
        parse_backend_entries("backends", &raw.backends.get_ref().join(",")).map_err(|error| {
            ConfigError::new(key("backends"), Some(backends_line), error.problem)
        })?;
    applier.set(&key("balance"), "balance", &raw.balance)?;
    applier.set(&key("health.probe"), "health", &raw.health.probe)?;
    applier.set(
        &key("health.interval"),
        "health.interval",
        &raw.health.interval,
    )?;
    applier.set(
        &key("health.timeout"),
        "health.timeout",
        &raw.health.timeout,
    )?;
    applier.set(&key("health.rise"), "health.rise", &raw.health.rise)?;
    applier.set(&key("health.fall"), "health.fall", &raw.health.fall)?;
    applier.set(
        &key("eject.failures"),
        "eject.failures",
        &raw.eject.failures,
    )?;
    applier.set(&key("eject.cooloff"), "eject.cooloff", &raw.eject.cooloff)?;
    applier.set(
        &key("eject.statuses"),
        "eject.statuses",
        &raw.eject.statuses,
    )?;
    applier.set(
        &key("eject.max-percent"),
        "eject.max-percent",
        &raw.eject.max_percent,
    )?;
    applier.set(&key("keepalive.idle"), "pool.idle", &raw.keepalive.idle)?;
    applier.set(
        &key("keepalive.timeout"),
        "pool.timeout",
        &raw.keepalive.timeout,
    )?;
    applier.set(
        &key("timeout.connect"),
        "timeout.connect",
        &raw.timeout.connect,
    )?;
    applier.set(
        &key("timeout.backend"),
        "timeout.backend",
        &raw.timeout.backend,
    )?;
    applier.set(&key("retry.connect"), "retry.connect", &raw.retry.connect)?;
    applier.set(&key("retry.sent"), "retry.sent", &raw.retry.sent)?;
    applier.set(
        &key("limit.response-header-bytes"),
        "limit.response-header-bytes",
        &raw.limit.response_header_bytes,
    )?;
    applier.settings.pool.backends = backends;
    applier.settings.pool.named_backends = named_backends;
    Ok(split(&applier.settings, name).1)
}

fn listener_config(
    text: &str,
    index: usize,
    listener: &Spanned<RawListener>,
) -> Result<ListenerConfig, ConfigError> {
    let key = |rest: &str| format!("listener[{index}].{rest}");
    let raw = listener.get_ref();
    let port_line = line_at(text, raw.port.span().start);
    let port = parse_port("port", &raw.port.get_ref().to_string())
        .map_err(|error| ConfigError::new(key("port"), Some(port_line), error.problem))?;
    let pool = match &raw.pool {
        Some(pool) => pool.get_ref().clone(),
        None => DEFAULT_POOL.to_string(),
    };
    let mut applier = Applier {
        text,
        settings: ProxySettings::with_defaults(),
        port: None,
        backends: None,
    };
    applier.set(
        &key("timeout.header"),
        "timeout.header",
        &raw.timeout.header,
    )?;
    applier.set(
        &key("timeout.client"),
        "timeout.client",
        &raw.timeout.client,
    )?;
    applier.set(&key("timeout.body"), "timeout.body", &raw.timeout.body)?;
    applier.set(
        &key("timeout.body-rate"),
        "timeout.body-rate",
        &raw.timeout.body_rate,
    )?;
    applier.set(&key("timeout.send"), "timeout.send", &raw.timeout.send)?;
    applier.set(
        &key("timeout.send-rate"),
        "timeout.send-rate",
        &raw.timeout.send_rate,
    )?;
    applier.set(
        &key("timeout.tunnel"),
        "timeout.tunnel",
        &raw.timeout.tunnel,
    )?;
    applier.set(&key("limit.body"), "limit.body", &raw.limit.body)?;
    applier.set(
        &key("limit.body-buffer"),
        "limit.body-buffer",
        &raw.limit.body_buffer,
    )?;
    applier.set(
        &key("limit.request-line"),
        "limit.request-line",
        &raw.limit.request_line,
    )?;
    applier.set(
        &key("limit.header-bytes"),
        "limit.header-bytes",
        &raw.limit.header_bytes,
    )?;
    applier.set(
        &key("limit.header-count"),
        "limit.header-count",
        &raw.limit.header_count,
    )?;
    applier.set(&key("forward.xff"), "forward.xff", &raw.forward.xff)?;
    applier.set(&key("forward.proto"), "forward.proto", &raw.forward.proto)?;
    applier.set(
        &key("forward.forwarded"),
        "forward.forwarded",
        &raw.forward.forwarded,
    )?;
    applier.set(&key("forward.via"), "forward.via", &raw.forward.via)?;
    applier.settings.port = port;
    Ok(split(&applier.settings, &pool).0)
}

fn admin_settings(text: &str, admin: &Spanned<RawAdmin>) -> Result<AdminSettings, ConfigError> {
    let raw = admin.get_ref();
    let port = parse_port("port", &raw.port.get_ref().to_string()).map_err(|error| {
        ConfigError::new(
            "admin.port",
            Some(line_at(text, raw.port.span().start)),
            error.problem,
        )
    })?;
    let allow = match &raw.allow {
        Some(allow) => {
            let line = line_at(text, allow.span().start);
            Some(
                parse_allow_list(allow.get_ref().iter().map(String::as_str))
                    .map_err(|problem| ConfigError::new("admin.allow", Some(line), problem))?,
            )
        }
        None => None,
    };
    let token = match &raw.token {
        Some(token) => {
            let line = line_at(text, token.span().start);
            Some(
                words::check_token(token.get_ref())
                    .map_err(|problem| ConfigError::new("admin.token", Some(line), problem))?,
            )
        }
        None => None,
    };
    Ok(AdminSettings { port, allow, token })
}

pub(super) fn parse_allow_list<'a>(
    items: impl Iterator<Item = &'a str>,
) -> Result<Vec<AddressRange>, String> {
    items
        .map(|item| {
            AddressRange::parse(item).ok_or_else(|| {
                format!("`{item}` is not an address range like 10.0.0.0/24 (host bits clear)")
            })
        })
        .collect()
}

fn access_log_settings(text: &str, raw: &RawAccessLog) -> Result<AccessLogSettings, ConfigError> {
    let mut settings = AccessLogSettings::default();
    let line = |span: core::ops::Range<usize>| Some(line_at(text, span.start));
    if let Some(target) = &raw.target {
        settings.target = words::parse_log_target(target.get_ref()).map_err(|problem| {
            ConfigError::new("access_log.target", line(target.span()), problem)
        })?;
    }
    if let Some(sample) = &raw.sample {
        settings.sample = words::parse_count(*sample.get_ref()).map_err(|problem| {
            ConfigError::new("access_log.sample", line(sample.span()), problem)
        })?;
    }
    if let Some(rate) = &raw.rate {
        settings.lines_per_second = words::parse_count(*rate.get_ref())
            .map_err(|problem| ConfigError::new("access_log.rate", line(rate.span()), problem))?;
    }
    if let Some(collector) = &raw.syslog.collector {
        settings.syslog.collector = Some(words::parse_collector(collector.get_ref()).map_err(
            |problem| {
                ConfigError::new(
                    "access_log.syslog.collector",
                    line(collector.span()),
                    problem,
                )
            },
        )?);
    }
    if let Some(facility) = &raw.syslog.facility {
        settings.syslog.facility =
            words::parse_facility(facility.get_ref()).map_err(|problem| {
                ConfigError::new("access_log.syslog.facility", line(facility.span()), problem)
            })?;
    }
    Ok(settings)
}

/// A deserialiser error as a [`ConfigError`]: its line, and the key written on that line.
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let line = error.span().map(|span| line_at(text, span.start));
    let key = line
        .and_then(|line| text.lines().nth(line - 1))
        .map(key_on_line)
        .unwrap_or_default();
    let message = error.message().trim();
    // serde names the key itself for unknown and missing fields; prefer that.
    let key = field_in_message(message).unwrap_or(key);
    if secrets::is_secret_file_key(&key) {
        // The parser's message may quote the value; a secret is never echoed.
        return ConfigError::new(
            key,
            line,
            "is not a valid value (not shown: it is a secret)",
        );
    }
    ConfigError::new(key, line, message.to_string())
}

fn key_on_line(line: &str) -> String {
    let line = line.trim();
    if let Some(header) = line.strip_prefix('[') {
        return header
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    line.split('=').next().unwrap_or("").trim().to_string()
}

fn field_in_message(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_string)
}
