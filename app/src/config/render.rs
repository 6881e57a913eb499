//! The configuration in force written as a complete TOML file, every key present (defaults too), so that the file alone reproduces it.

use alloc::string::String;
use core::fmt::Write;
use core::time::Duration;

use super::{AccessLogTarget, Configuration};
use crate::proxy::settings::{Balance, HealthProbe};

pub(super) fn to_file(configuration: &Configuration) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_file(configuration, &mut out);
    out
}

fn write_file(configuration: &Configuration, out: &mut String) -> core::fmt::Result {
    writeln!(
        out,
        "# Unisock configuration (every key, defaults included)"
    )?;
    // Top-level keys come before the first table.
    writeln!(
        out,
        "hostname = {}",
        quoted(configuration.hostname.as_str())
    )?;
    if let Some(admin) = &configuration.admin {
        writeln!(out, "\n[admin]\nport = {}", admin.port)?;
        if let Some(allow) = &admin.allow {
            write!(out, "allow = [")?;
            for (index, range) in allow.iter().enumerate() {
                let separator = if index == 0 { "" } else { ", " };
                write!(out, "{separator}{}", quoted(&alloc::format!("{range}")))?;
            }
            writeln!(out, "]")?;
        }
        if let Some(token) = &admin.token {
            writeln!(out, "token = {}", quoted(token))?;
        }
    }
    let log = &configuration.access_log;
    let target = match log.target {
        AccessLogTarget::Off => "off",
        AccessLogTarget::Console => "console",
        AccessLogTarget::Syslog => "syslog",
    };
    writeln!(
        out,
        "\n[access_log]\ntarget = \"{target}\"\nsample = {}\nrate = {}",
        log.sample, log.lines_per_second
    )?;
    if let Some(collector) = log.syslog.collector {
        writeln!(out, "syslog.collector = \"{collector}\"")?;
    }
    writeln!(out, "syslog.facility = \"{}\"", log.syslog.facility)?;
    if !configuration.dns.resolvers.is_empty() {
        write!(out, "\n[dns]\nresolvers = [")?;
        for (index, resolver) in configuration.dns.resolvers.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(out, "{separator}{}", quoted(&alloc::format!("{resolver}")))?;
        }
        writeln!(out, "]")?;
    }
    for listener in &configuration.listeners {
        let forwarding = &listener.forwarding;
        writeln!(
            out,
            "\n[[listener]]\nport = {}\npool = {}\ntimeout.header = {}\ntimeout.client = {}\n\
             timeout.body = {}\ntimeout.body-rate = {}\ntimeout.send = {}\n\
             timeout.send-rate = {}\ntimeout.tunnel = {}\n\
             limit.body = {}\nlimit.body-buffer = {}\nlimit.request-line = {}\n\
             limit.header-bytes = {}\n\
             limit.header-count = {}\nforward.xff = {}\nforward.proto = {}\n\
             forward.forwarded = {}\nforward.via = {}",
            listener.port,
            quoted(&listener.pool),
            seconds(listener.header_timeout),
            seconds(listener.client_timeout),
            seconds(listener.body_timeout),
            listener.body_rate,
            seconds(listener.send_timeout),
            listener.send_rate,
            seconds(listener.tunnel_timeout),
            listener.body_limit,
            listener.body_buffer_limit,
            listener.request_line_limit,
            listener.header_bytes_limit,
            listener.header_count_limit,
            forwarding.x_forwarded_for,
            forwarding.x_forwarded_proto,
            forwarding.forwarded,
            forwarding.via,
        )?;
    }
    for pool in &configuration.pools {
        let settings = &pool.settings;
        writeln!(out, "\n[pool.{}]", pool.name)?;
        write!(out, "backends = [")?;
        // The backends listed by address, then the names (their answers are not written: the
        // resolver finds them again).
        let listed = settings.listed_backends().iter().map(|backend| {
            if backend.weight == 1 {
                alloc::format!("{}", backend.address)
            } else {
                alloc::format!("{}*{}", backend.address, backend.weight)
            }
        });
        let named = settings.named_backends.iter().map(|named| {
            if named.weight == 1 {
                named.text.clone()
            } else {
                alloc::format!("{}*{}", named.text, named.weight)
            }
        });
        for (index, text) in listed.chain(named).enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(out, "{separator}{}", quoted(&text))?;
        }
        writeln!(out, "]")?;
        let balance = match settings.balance {
            Balance::RoundRobin => "rr",
            Balance::WeightedRoundRobin => "wrr",
            Balance::LeastConnections => "leastconn",
            Balance::PowerOfTwoChoices => "p2c",
            Balance::ClientAddressHash => "hash",
        };
        let probe = match &settings.health.probe {
            HealthProbe::Off => String::from("off"),
            HealthProbe::Tcp => String::from("tcp"),
            HealthProbe::Http { path, .. } => alloc::format!("http:{path}"),
        };
        writeln!(
            out,
            "balance = \"{balance}\"\nhealth.probe = {}\nhealth.interval = {}\n\
             health.timeout = {}\nhealth.rise = {}\nhealth.fall = {}\neject.failures = {}\n\
             eject.cooloff = {}\neject.statuses = [{}]\neject.max-percent = {}\nkeepalive.idle = {}\nkeepalive.timeout = {}\n\
             timeout.connect = {}\ntimeout.backend = {}\nretry.connect = {}\nretry.sent = {}\n\
             limit.response-header-bytes = {}",
            quoted(&probe),
            seconds(settings.health.interval),
            seconds(settings.health.timeout),
            settings.health.rise,
            settings.health.fall,
            settings.ejection.consecutive_failures,
            seconds(settings.ejection.cool_off),
            settings
                .ejection
                .statuses
                .iter()
                .map(|status| alloc::format!("{status}"))
                .collect::<alloc::vec::Vec<_>>()
                .join(", "),
            settings.ejection.max_percent,
            settings.keep_alive.idle_per_backend,
            seconds(settings.keep_alive.idle_timeout),
            seconds(pool.connect_timeout),
            seconds(pool.backend_timeout),
            pool.retries.connect,
            pool.retries.sent,
            pool.response_header_bytes_limit,
        )?;
    }
    Ok(())
}

/// Whole seconds as an integer, others as a decimal with no trailing zeros.
fn seconds(duration: Duration) -> String {
    let nanos = duration.subsec_nanos();
    if nanos == 0 {
        return alloc::format!("{}", duration.as_secs());
    }
    let mut text = alloc::format!("{}.{:09}", duration.as_secs(), nanos);
    while text.ends_with('0') {
        text.pop();
    }
    text
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            character if character.is_control() => {
                let _ = write!(out, "\\u{:04X}", character as u32);
            }
            character => out.push(character),
        }
    }
    out.push('"');
    out
}
