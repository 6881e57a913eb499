//! The command line's application words (the proxy's, `admin*`, `accesslog*`, `hostname`) applied over the file's configuration: the proxy's words set the first listener and its pool.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::SocketAddrV4;

use super::file::parse_allow_list;
use super::{
    AccessLogTarget, AdminSettings, ConfigError, Configuration, DEFAULT_POOL, Facility, Hostname,
    assemble, split,
};
use crate::proxy::settings::{ProxySettings, is_proxy_key, parse_number, parse_port};
use crate::proxy::syslog::is_hostname;

/// Whether `key` is a word the application parses (the kernel's parser passes these over).
pub fn is_app_key(key: &str) -> bool {
    is_proxy_key(key)
        || is_admin_key(key)
        || is_access_log_key(key)
        || key == "hostname"
        || key == "resolvers"
}

fn is_admin_key(key: &str) -> bool {
    matches!(key, "admin" | "admin.allow" | "admin.token")
}

fn is_access_log_key(key: &str) -> bool {
    matches!(
        key,
        "accesslog"
            | "accesslog.sample"
            | "accesslog.rate"
            | "accesslog.collector"
            | "accesslog.facility"
    )
}

fn words(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split_whitespace()
        .map(|word| word.split_once('=').unwrap_or((word, "")))
}

pub(super) fn apply_command_line(
    configuration: &mut Configuration,
    line: &str,
) -> Result<(), ConfigError> {
    apply_proxy_words(
        configuration,
        words(line).filter(|(key, _)| is_proxy_key(key)),
    )?;
    for (key, value) in words(line).filter(|(key, _)| *key == "resolvers") {
        configuration.dns.resolvers = super::parse_resolvers(value.split(','))
            .map_err(|problem| ConfigError::new(key, None, problem))?;
    }
    for (key, value) in words(line).filter(|(key, _)| is_admin_key(key)) {
        let error = |problem: String| ConfigError::new(key, None, problem);
        if key == "admin" {
            let port = parse_port(key, value).map_err(|e| error(e.problem))?;
            match &mut configuration.admin {
                Some(admin) => admin.port = port,
                None => {
                    configuration.admin = Some(AdminSettings {
                        port,
                        allow: None,
                        token: None,
                    })
                }
            }
            continue;
        }
        let Some(admin) = &mut configuration.admin else {
            return Err(error(
                "needs the admin listener's port: `admin=<port>`".into(),
            ));
        };
        match key {
            "admin.allow" => admin.allow = Some(parse_allow_list(value.split(',')).map_err(error)?),
            _ => admin.token = Some(check_token(value).map_err(error)?),
        }
    }
    for (key, value) in words(line).filter(|(key, _)| is_access_log_key(key)) {
        let error = |problem: String| ConfigError::new(key, None, problem);
        let log = &mut configuration.access_log;
        match key {
            "accesslog" => log.target = parse_log_target(value).map_err(error)?,
            "accesslog.collector" => {
                log.syslog.collector = Some(parse_collector(value).map_err(error)?)
            }
            "accesslog.facility" => log.syslog.facility = parse_facility(value).map_err(error)?,
            "accesslog.sample" => {
                log.sample = parse_count(
                    parse_number(key, value, 1, u64::from(u32::MAX))
                        .map_err(|e| error(e.problem))?,
                )
                .map_err(error)?
            }
            "accesslog.rate" => {
                log.lines_per_second = parse_count(
                    parse_number(key, value, 1, u64::from(u32::MAX))
                        .map_err(|e| error(e.problem))?,
                )
                .map_err(error)?
            }
            _ => {}
        }
    }
    for (key, value) in words(line).filter(|(key, _)| *key == "hostname") {
        configuration.hostname =
            parse_hostname(value).map_err(|problem| ConfigError::new(key, None, problem))?;
    }
    Ok(())
}

/// The proxy's words change the first listener and its pool; without a listener in the file
/// they make one (they then need `proxy=` and `backends=`), its pool named `default`.
fn apply_proxy_words<'a>(
    configuration: &mut Configuration,
    words: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    let words: Vec<(&str, &str)> = words.collect();
    if words.is_empty() {
        return Ok(());
    }
    let word_error =
        |error: crate::proxy::SettingsError| ConfigError::new(error.key, None, error.problem);
    let Some(first) = configuration.listeners.first() else {
        let Some(settings) = ProxySettings::from_words(words).map_err(word_error)? else {
            return Ok(());
        };
        let pool_name = if configuration.pool(DEFAULT_POOL).is_some() {
            // The file's own `default` pool stays; the words' pool takes a name of its own.
            "command-line"
        } else {
            DEFAULT_POOL
        };
        let (listener, pool) = split(&settings, pool_name);
        configuration.listeners.push(listener);
        configuration.pools.push(pool);
        return Ok(());
    };
    let pool_index = configuration.pool_index(&first.pool).ok_or_else(|| {
        ConfigError::new(
            "listener[0].pool",
            None,
            alloc::format!("no pool is named `{}`", first.pool),
        )
    })?;
    let mut settings = assemble(first, &configuration.pools[pool_index]);
    let mut port = Some(settings.port);
    let mut backends = Some(settings.pool.backends.clone());
    for (key, value) in words {
        settings
            .apply(key, value, &mut port, &mut backends)
            .map_err(word_error)?;
    }
    settings.port = port.unwrap_or(settings.port);
    settings.pool.backends = backends.unwrap_or_default();
    let pool_name = configuration.pools[pool_index].name.clone();
    let (listener, pool) = split(&settings, &pool_name);
    configuration.listeners[0] = listener;
    configuration.pools[pool_index] = pool;
    Ok(())
}

/// Pool names: letters, digits, `-`, `_`; 1 to 32 of them (they appear in URLs and labels).
pub(super) fn is_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Admin tokens: 16 to 256 visible ASCII characters (long enough not to be guessed, and safe
/// in a header and on a command line).
pub(super) fn check_token(token: &str) -> Result<String, String> {
    if (16..=256).contains(&token.len()) && token.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(token.to_string())
    } else {
        Err("a token is 16 to 256 visible ASCII characters".into())
    }
}

pub(super) fn parse_log_target(value: &str) -> Result<AccessLogTarget, String> {
    match value {
        "off" => Ok(AccessLogTarget::Off),
        "console" => Ok(AccessLogTarget::Console),
        "syslog" => Ok(AccessLogTarget::Syslog),
        _ => Err("is off, console or syslog".into()),
    }
}

/// A syslog collector: `address:port`, a unicast address and a port other than 0.
pub(super) fn parse_collector(value: &str) -> Result<SocketAddrV4, String> {
    let wanted =
        || alloc::format!("`{value}` is not a collector's address:port like 10.77.0.1:514");
    let collector: SocketAddrV4 = value.parse().map_err(|_| wanted())?;
    let ip = collector.ip();
    if collector.port() == 0 || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(wanted());
    }
    Ok(collector)
}

pub(super) fn parse_facility(value: &str) -> Result<Facility, String> {
    Facility::from_name(value).ok_or_else(|| {
        alloc::format!(
            "`{value}` is not a syslog facility: kern, user, mail, daemon, auth, syslog, lpr, \
             news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock or local0 to local7"
        )
    })
}

pub(super) fn parse_hostname(value: &str) -> Result<Hostname, String> {
    if is_hostname(value) {
        Ok(Hostname(value.to_string()))
    } else {
        Err(alloc::format!(
            "`{value}` is not a host name: dot-separated labels of 1 to 63 letters, digits or \
             `-` (not first or last), 253 characters at most (RFC 1123)"
        ))
    }
}

pub(super) fn parse_count(value: u64) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(alloc::format!("is a whole number from 1 to {}", u32::MAX)),
    }
}
