//! The configuration file and words: the example file, round trips, overrides and every error naming its key and line.

use core::time::Duration;

use super::*;
use crate::proxy::settings::{Backend, Balance, HealthProbe};

const EXAMPLE: &str = include_str!("../../../docs/unisock.example.toml");

fn file(text: &str) -> Result<Configuration, ConfigError> {
    Configuration::from_file(text)
}

#[test]
fn the_example_file_loads() {
    let configuration = file(EXAMPLE).unwrap();
    assert_eq!(configuration.hostname.as_str(), "edge-1");
    assert_eq!(
        configuration.access_log.syslog.collector,
        Some("10.0.0.1:514".parse().unwrap())
    );
    assert_eq!(configuration.listeners.len(), 2);
    assert_eq!(configuration.pools.len(), 2);
    let web = configuration.pool("web").unwrap();
    assert_eq!(web.settings.balance, Balance::WeightedRoundRobin);
    assert_eq!(
        web.settings.backends[1],
        Backend {
            address: "10.0.0.3:8080".parse().unwrap(),
            weight: 2
        }
    );
    assert_eq!(
        web.settings.health.probe,
        HealthProbe::Http {
            path: "/healthz".into(),
            expected_class: 2
        }
    );
    let api = configuration.pool("api").unwrap();
    assert_eq!(api.connect_timeout, Duration::from_millis(500));
    assert_eq!(api.backend_timeout, Duration::from_millis(2500));
    assert_eq!(api.settings.keep_alive.idle_per_backend, 0);
    let second = &configuration.listeners[1];
    assert_eq!((second.port, second.pool.as_str()), (8080, "api"));
    assert_eq!(second.client_timeout, Duration::from_secs(5));
    assert_eq!(second.body_limit, 1_048_576);
    // Unset keys keep their defaults.
    assert_eq!(second.header_timeout, Duration::from_secs(10));
    let admin = configuration.admin.as_ref().unwrap();
    assert_eq!(admin.port, 9000);
    assert_eq!(admin.allow.as_ref().unwrap().len(), 2);
    assert_eq!(configuration.access_log.target, AccessLogTarget::Console);
    assert_eq!(configuration.access_log.sample, 10);
    let settings = configuration.listener_settings(1).unwrap();
    assert_eq!(settings.port, 8080);
    assert_eq!(settings.timeouts.connect, Duration::from_millis(500));
    assert_eq!(settings.limits.body, 1_048_576);
}

#[test]
fn the_file_written_back_gives_the_same_configuration() {
    let configuration = file(EXAMPLE).unwrap();
    let written = configuration.to_file();
    let again = file(&written).unwrap_or_else(|error| panic!("{error}\n{written}"));
    assert_eq!(again, configuration);
    assert_eq!(again.to_file(), written);
    // And from the command line alone.
    let words = Configuration::from_sources(
        None,
        "ip=10.0.0.1/24 proxy=80 backends=10.0.0.2:80*3 timeout.connect=0.125 health=tcp \
         admin=9000 admin.token=0123456789abcdef accesslog=console accesslog.rate=7",
        &[],
    )
    .unwrap();
    assert_eq!(file(&words.to_file()).unwrap(), words);
    let syslog = Configuration::from_sources(
        None,
        "ip=10.0.0.1/24 proxy=80 backends=10.0.0.2:80 accesslog=syslog \
         accesslog.collector=10.77.0.1:5514 accesslog.facility=daemon hostname=edge-1",
        &[],
    )
    .unwrap();
    assert_eq!(syslog.hostname.as_str(), "edge-1");
    assert_eq!(syslog.access_log.target, AccessLogTarget::Syslog);
    assert_eq!(
        syslog.access_log.syslog,
        SyslogSettings {
            collector: Some("10.77.0.1:5514".parse().unwrap()),
            facility: Facility::from_name("daemon").unwrap(),
        }
    );
    let written = syslog.to_file();
    assert!(written.starts_with("# Unisock configuration"));
    assert!(written.contains("\nhostname = \"edge-1\"\n"), "{written}");
    assert!(
        written.contains("syslog.collector = \"10.77.0.1:5514\"\nsyslog.facility = \"daemon\""),
        "{written}"
    );
    assert_eq!(file(&written).unwrap(), syslog);
    // Defaults: `unisock`, `local0`.
    let plain = Configuration::from_sources(None, "", &[]).unwrap();
    assert_eq!(plain.hostname.as_str(), "unisock");
    assert_eq!(plain.access_log.syslog.facility.name(), "local0");
}

/// Every key the documentation lists, set to a value other than its default, survives the
/// round trip (so no key is parsed but not written, or written but not parsed).
#[test]
fn every_documented_key_round_trips() {
    let text = r#"
hostname = "edge-1.example"

[admin]
port = 9100
allow = ["10.9.0.0/16"]
token = "abcdefghijklmnopqrstuvwxyz"

[access_log]
target = "syslog"
sample = 3
rate = 9
syslog.collector = "10.77.0.1:5514"
syslog.facility = "local5"

[[listener]]
port = 81
pool = "p"
timeout.header = 3.5
timeout.client = 7
timeout.body = 20
timeout.body-rate = 0
timeout.send = 30.5
timeout.send-rate = 4096
timeout.tunnel = 3600
limit.body = 99
limit.body-buffer = 65536
limit.request-line = 1000
limit.header-bytes = 2000
limit.header-count = 20
forward.xff = false
forward.proto = false
forward.forwarded = false
forward.via = false

[pool.p]
backends = ["10.0.0.9:1", "10.0.0.10:2*7"]
balance = "hash"
health.probe = "http:/up"
health.interval = 0.75
health.timeout = 0.25
health.rise = 4
health.fall = 6
eject.failures = 0
eject.cooloff = 30
eject.statuses = [502, 504]
eject.max-percent = 100
keepalive.idle = 5
keepalive.timeout = 2
timeout.connect = 1.25
timeout.backend = 9
retry.connect = 0
retry.sent = 3
limit.response-header-bytes = 4096
"#;
    let configuration = file(text).unwrap();
    let defaults = Configuration::from_sources(None, "proxy=81 backends=10.0.0.9:1", &[]).unwrap();
    assert_ne!(configuration.hostname, defaults.hostname);
    assert_ne!(
        configuration.access_log.syslog.facility,
        defaults.access_log.syslog.facility
    );
    assert_eq!(configuration.access_log.target, AccessLogTarget::Syslog);
    let (listener, default_listener) = (&configuration.listeners[0], &defaults.listeners[0]);
    assert_ne!(listener.header_timeout, default_listener.header_timeout);
    assert_ne!(listener.client_timeout, default_listener.client_timeout);
    assert_ne!(listener.body_timeout, default_listener.body_timeout);
    assert_ne!(listener.body_rate, default_listener.body_rate);
    assert_ne!(listener.send_timeout, default_listener.send_timeout);
    assert_ne!(listener.send_rate, default_listener.send_rate);
    assert_ne!(listener.tunnel_timeout, default_listener.tunnel_timeout);
    assert_ne!(listener.body_limit, default_listener.body_limit);
    assert_ne!(
        listener.body_buffer_limit,
        default_listener.body_buffer_limit
    );
    assert_ne!(
        listener.request_line_limit,
        default_listener.request_line_limit
    );
    assert_ne!(
        listener.header_bytes_limit,
        default_listener.header_bytes_limit
    );
    assert_ne!(
        listener.header_count_limit,
        default_listener.header_count_limit
    );
    assert_ne!(listener.forwarding, default_listener.forwarding);
    let (pool, default_pool) = (&configuration.pools[0], &defaults.pools[0]);
    assert_ne!(pool.settings.balance, default_pool.settings.balance);
    assert_ne!(pool.settings.health, default_pool.settings.health);
    assert_ne!(pool.settings.ejection, default_pool.settings.ejection);
    assert_ne!(pool.settings.keep_alive, default_pool.settings.keep_alive);
    assert_ne!(pool.connect_timeout, default_pool.connect_timeout);
    assert_ne!(pool.backend_timeout, default_pool.backend_timeout);
    assert_ne!(pool.retries, default_pool.retries);
    assert_ne!(
        pool.response_header_bytes_limit,
        default_pool.response_header_bytes_limit
    );
    assert_eq!(file(&configuration.to_file()).unwrap(), configuration);
    // The documentation names each of these keys.
    let documentation = include_str!("../../../docs/configuration.md");
    for line in text.lines() {
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        assert!(
            documentation.contains(&alloc::format!("`{key}`")),
            "docs/configuration.md does not document `{key}`"
        );
    }
}

#[test]
fn command_line_words_override_the_file() {
    let configuration = Configuration::from_sources(
        Some(EXAMPLE),
        "ip=10.0.0.1/24 proxy=8000 backends=10.0.0.7:80 timeout.connect=3 admin=9001 \
         accesslog=off",
        &[],
    )
    .unwrap();
    let first = &configuration.listeners[0];
    assert_eq!(first.port, 8000);
    let web = configuration.pool("web").unwrap();
    assert_eq!(web.settings.backends.len(), 1);
    assert_eq!(web.connect_timeout, Duration::from_secs(3));
    // What the words do not name stays as the file says.
    assert_eq!(web.settings.balance, Balance::WeightedRoundRobin);
    assert_eq!(configuration.listeners[1].port, 8080);
    let admin = configuration.admin.as_ref().unwrap();
    assert_eq!(admin.port, 9001);
    assert!(admin.token.is_some());
    assert_eq!(configuration.access_log.target, AccessLogTarget::Off);
}

#[test]
fn without_a_file_the_words_make_one_listener_and_the_default_pool() {
    let configuration =
        Configuration::from_sources(None, "proxy=80 backends=10.0.0.2:80,10.0.0.3:80", &[])
            .unwrap();
    assert_eq!(configuration.listeners.len(), 1);
    assert_eq!(configuration.listeners[0].pool, DEFAULT_POOL);
    assert_eq!(configuration.pools[0].settings.backends.len(), 2);
    assert_eq!(
        Configuration::from_sources(None, "ip=10.0.0.1/24", &[]).unwrap(),
        Configuration::default()
    );
}

#[test]
fn every_error_names_its_key_and_line() {
    let base_pool = "[pool.web]\nbackends = [\"10.0.0.2:80\"]\n";
    let listener = "[[listener]]\nport = 80\npool = \"web\"\n";
    for (text, key, line) in [
        ("frob = 1\n".to_string(), "frob", Some(1)),
        (
            alloc::format!("{listener}{base_pool}nonsense = 3\n"),
            "nonsense",
            Some(6),
        ),
        (
            alloc::format!("{listener}timeout.frob = 3\n{base_pool}"),
            "frob",
            Some(4),
        ),
        (
            alloc::format!("[[listener]]\nport = \"80\"\n{base_pool}"),
            "port",
            Some(2),
        ),
        (
            alloc::format!("[[listener]]\nport = 70000\n{base_pool}"),
            "port",
            Some(2),
        ),
        (
            alloc::format!("[[listener]]\nport = 0\n{base_pool}"),
            "listener[0].port",
            Some(2),
        ),
        (
            alloc::format!("{listener}timeout.client = 0\n{base_pool}"),
            "listener[0].timeout.client",
            Some(4),
        ),
        (
            alloc::format!("{listener}limit.header-count = 5000\n{base_pool}"),
            "listener[0].limit.header-count",
            Some(4),
        ),
        (
            alloc::format!("{listener}limit.body-buffer = 2000000\n{base_pool}"),
            "listener[0].limit.body-buffer",
            Some(4),
        ),
        (
            alloc::format!("{listener}timeout.body-rate = -1\n{base_pool}"),
            "timeout.body-rate",
            Some(4),
        ),
        (
            alloc::format!("{listener}timeout.tunnel = 0\n{base_pool}"),
            "listener[0].timeout.tunnel",
            Some(4),
        ),
        (
            alloc::format!("{listener}forward.via = \"on\"\n{base_pool}"),
            "forward.via",
            Some(4),
        ),
        (
            alloc::format!("{listener}[pool.web]\nbackends = []\n"),
            "pool.web.backends",
            Some(5),
        ),
        (
            alloc::format!("{listener}[pool.web]\nbackends = [\"10.0.0.2\"]\n"),
            "pool.web.backends",
            Some(5),
        ),
        // A name needs a resolver; names are checked.
        (
            alloc::format!("{listener}[pool.web]\nbackends = [\"web.example:80\"]\n"),
            "pool.web.backends",
            Some(4),
        ),
        (
            alloc::format!(
                "[dns]\nresolvers = [\"10.0.0.53\"]\n{listener}[pool.web]\nbackends = [\"we b.example:80\"]\n"
            ),
            "pool.web.backends",
            Some(7),
        ),
        (
            alloc::format!(
                "[dns]\nresolvers = [\"10.0.0.53\"]\n{listener}[pool.web]\nbackends = [\"_http._udp.example\"]\n"
            ),
            "pool.web.backends",
            Some(7),
        ),
        (
            alloc::format!("[dns]\nresolvers = [\"example.com\"]\n{listener}{base_pool}"),
            "dns.resolvers",
            Some(2),
        ),
        (
            alloc::format!("{listener}{base_pool}balance = \"random\"\n"),
            "pool.web.balance",
            Some(6),
        ),
        (
            alloc::format!("{listener}{base_pool}health.probe = \"udp\"\n"),
            "pool.web.health.probe",
            Some(6),
        ),
        (
            alloc::format!("{listener}{base_pool}timeout.connect = -1\n"),
            "pool.web.timeout.connect",
            Some(6),
        ),
        (
            alloc::format!("{listener}{base_pool}retry.sent = 17\n"),
            "pool.web.retry.sent",
            Some(6),
        ),
        (
            alloc::format!("{listener}[pool.web]\nbalance = \"rr\"\n"),
            "backends",
            None,
        ),
        (
            alloc::format!("[[listener]]\nport = 80\npool = \"nope\"\n{base_pool}"),
            "listener[0].pool",
            Some(3),
        ),
        (
            alloc::format!("{listener}{listener}{base_pool}"),
            "listener[1].port",
            Some(5),
        ),
        // Lines come from where the file set the value, however it is spelt.
        (
            alloc::format!(
                "[[listener]]\nport = 8080\npool = 'web'\n[[listener]]\nport=80 # x\n\
                 pool = 'web'\n[[listener]]\n  port =   80\npool = 'web'\n{base_pool}"
            ),
            "listener[2].port",
            Some(8),
        ),
        (
            alloc::format!("[[listener]]\nport = 80\n\npool = 'nope'\n{base_pool}"),
            "listener[0].pool",
            Some(4),
        ),
        (
            alloc::format!("[admin]\nport = 80\n{listener}{base_pool}"),
            "listener[0].port",
            Some(4),
        ),
        (
            "[admin]\nport = 9000\nallow = [\"10.0.0.1/8\"]\n".to_string(),
            "admin.allow",
            Some(3),
        ),
        (
            "[admin]\nport = 9000\ntoken = \"short\"\n".to_string(),
            "admin.token",
            Some(3),
        ),
        (
            "[admin]\ntoken = \"0123456789abcdef\"\n".to_string(),
            "port",
            None,
        ),
        (
            "[access_log]\ntarget = \"loud\"\n".to_string(),
            "access_log.target",
            Some(2),
        ),
        // The syslog target without its collector: the target's line.
        (
            "[access_log]\nsample = 2\ntarget = \"syslog\"\n".to_string(),
            "access_log.syslog.collector",
            Some(3),
        ),
        (
            "[access_log]\ntarget = \"syslog\"\nsyslog.collector = \"10.0.0.1\"\n".to_string(),
            "access_log.syslog.collector",
            Some(3),
        ),
        (
            "[access_log]\nsyslog.collector = \"0.0.0.0:514\"\n".to_string(),
            "access_log.syslog.collector",
            Some(2),
        ),
        (
            "[access_log]\ntarget = \"syslog\"\nsyslog.collector = \"10.0.0.1:514\"\n\
             syslog.facility = \"local8\"\n"
                .to_string(),
            "access_log.syslog.facility",
            Some(4),
        ),
        (
            "[access_log]\nsyslog.severity = \"info\"\n".to_string(),
            "severity",
            Some(2),
        ),
        ("hostname = \"edge_1\"\n".to_string(), "hostname", Some(1)),
        ("\nhostname = \"-edge\"\n".to_string(), "hostname", Some(2)),
        ("hostname = \"a..b\"\n".to_string(), "hostname", Some(1)),
        (
            "[access_log]\nsample = 0\n".to_string(),
            "access_log.sample",
            Some(2),
        ),
        (
            "[pool.\"a b\"]\nbackends = [\"10.0.0.2:80\"]\n".to_string(),
            "pool.a b",
            Some(1),
        ),
        ("[[listener]\n".to_string(), "listener", Some(1)),
    ] {
        let error = file(&text).expect_err(&text);
        assert_eq!(error.key, key, "{text}: {error}");
        if line.is_some() {
            assert_eq!(error.line, line, "{text}: {error}");
        }
    }
}

#[test]
fn command_line_errors_name_their_word() {
    for (line, key) in [
        ("admin=0", "admin"),
        ("admin.token=0123456789abcdef", "admin.token"),
        ("admin=9000 admin.allow=10.0.0.0/33", "admin.allow"),
        ("accesslog=loud", "accesslog"),
        ("accesslog.sample=0", "accesslog.sample"),
        ("accesslog=syslog", "access_log.syslog.collector"),
        (
            "accesslog=syslog accesslog.collector=10.0.0.1",
            "accesslog.collector",
        ),
        (
            "accesslog=syslog accesslog.collector=10.0.0.1:514 accesslog.facility=local9",
            "accesslog.facility",
        ),
        ("hostname=edge_1", "hostname"),
        ("hostname=", "hostname"),
        ("proxy=80", "proxy"),
        ("proxy=80 backends=10.0.0.2:80 admin=80", "listener[0].port"),
    ] {
        let error = Configuration::from_sources(None, line, &[]).expect_err(line);
        assert_eq!(error.key, key, "{line}: {error}");
    }
    let error = Configuration::from_sources(Some(EXAMPLE), "", &[8080]).unwrap_err();
    assert_eq!(error.key, "listener[1].port");
    assert!(error.problem.contains("another service"), "{error}");
}

#[test]
fn an_oversized_file_is_refused() {
    let text = "#".repeat(MAX_FILE_BYTES + 1);
    assert_eq!(file(&text).unwrap_err().key, "file");
}

const SECRET: &str = "s3cret-t0ken-never-shown";

#[test]
fn the_command_line_is_echoed_with_secret_values_redacted() {
    let line = format!("log=info  admin=9000 admin.token={SECRET} proxy=80\tbackends=10.0.0.2:80");
    assert_eq!(
        redacted_command_line(&line).to_string(),
        "log=info  admin=9000 admin.token=<redacted> proxy=80\tbackends=10.0.0.2:80"
    );
    // A word cut where the loader truncated the line, and a key without a value.
    assert_eq!(
        redacted_command_line("admin.token=abc admin.token= admin.tokens=x").to_string(),
        "admin.token=<redacted> admin.token= admin.tokens=x"
    );
    assert_eq!(redacted_command_line("").to_string(), "");
}

#[test]
fn secrets_never_reach_errors_or_debug_output() {
    // A bad token word: the error names the word, not its value.
    let error =
        Configuration::from_sources(None, "admin=9000 admin.token=short\u{7f}x", &[]).unwrap_err();
    assert_eq!(error.key, "admin.token");
    assert!(!format!("{error}").contains("short"), "{error}");
    // A file whose token line the TOML parser refuses, in every way it can.
    for text in [
        format!("[admin]\nport = 9000\ntoken = \"{SECRET}\u{1}\"\n"),
        format!("[admin]\nport = 9000\ntoken = \"{SECRET}\n"),
        format!("[admin]\nport = 9000\ntoken = {SECRET}\n"),
        format!("[admin]\nport = 9000\ntoken = \"{SECRET}\" {SECRET}\n"),
    ] {
        let error = file(&text).expect_err(&text);
        assert!(!format!("{error}").contains(SECRET), "{text}: {error}");
        assert!(!format!("{error:?}").contains(SECRET), "{text}: {error:?}");
    }
    // The configuration's own debug form (what a panic or a log line would show).
    let configuration =
        Configuration::from_sources(None, &format!("admin=9000 admin.token={SECRET}"), &[])
            .unwrap();
    assert_eq!(
        configuration
            .admin
            .as_ref()
            .and_then(|admin| admin.token.as_deref()),
        Some(SECRET)
    );
    assert!(!format!("{configuration:?}").contains(SECRET));
}

#[test]
fn backends_given_by_name_need_a_resolver_and_round_trip() {
    let text = "[dns]\nresolvers = [\"10.0.0.53\", \"10.0.0.54:5353\"]\n\
                [[listener]]\nport = 80\npool = \"web\"\n[pool.web]\n\
                backends = [\"10.0.0.2:80\", \"web.example:9001*3\", \"_http._tcp.example\"]\n";
    let configuration = file(text).unwrap();
    assert_eq!(
        configuration.dns.resolvers,
        [
            "10.0.0.53:53".parse().unwrap(),
            "10.0.0.54:5353".parse().unwrap()
        ]
    );
    let web = &configuration.pool("web").unwrap().settings;
    assert_eq!(web.backends.len(), 1);
    assert_eq!(web.named_backends.len(), 2);
    assert_eq!(web.named_backends[0].text, "web.example:9001");
    assert_eq!(web.named_backends[0].weight, 3);
    assert_eq!(
        web.named_backends[1].lookup,
        crate::proxy::settings::NameLookup::Service {
            name: "_http._tcp.example".into()
        }
    );
    assert_eq!(file(&configuration.to_file()).unwrap(), configuration);

    let words = Configuration::from_sources(
        None,
        "proxy=80 backends=web.unisock.test:9001 resolvers=10.77.0.1",
        &[],
    )
    .unwrap();
    assert_eq!(words.dns.resolvers, ["10.77.0.1:53".parse().unwrap()]);
    assert_eq!(words.pools[0].settings.backends, []);
    assert_eq!(
        words.pools[0].settings.named_backends[0].text,
        "web.unisock.test:9001"
    );
    let error = Configuration::from_sources(None, "proxy=80 backends=web.unisock.test:9001", &[])
        .unwrap_err();
    assert_eq!(error.key, "pool.default.backends");
}

#[test]
fn a_named_backends_answer_joins_the_pool_after_the_listed_ones() {
    let mut settings = crate::proxy::settings::ProxySettings::from_words([
        ("proxy", "80"),
        ("backends", "10.0.0.2:80,a.example:81,b.example:82"),
    ])
    .unwrap()
    .unwrap()
    .pool;
    let backend = |text: &str, weight| Backend {
        address: text.parse().unwrap(),
        weight,
    };
    settings.set_resolved(1, vec![backend("10.0.0.7:82", 1)]);
    settings.set_resolved(
        0,
        vec![backend("10.0.0.5:81", 1), backend("10.0.0.2:80", 1)],
    );
    // The listed address is not taken twice; the order is listed, then each name's.
    assert_eq!(
        settings.backends,
        [
            backend("10.0.0.2:80", 1),
            backend("10.0.0.5:81", 1),
            backend("10.0.0.7:82", 1)
        ]
    );
    assert_eq!(settings.listed_backends(), [backend("10.0.0.2:80", 1)]);
    settings.set_resolved(0, Vec::new());
    assert_eq!(
        settings.backends,
        [backend("10.0.0.2:80", 1), backend("10.0.0.7:82", 1)]
    );
}

#[test]
fn an_address_two_names_share_stays_while_either_still_has_it() {
    let mut settings = crate::proxy::settings::ProxySettings::from_words([
        ("proxy", "80"),
        ("backends", "10.0.0.2:80,a.example:81,b.example:81"),
    ])
    .unwrap()
    .unwrap()
    .pool;
    let backend = |text: &str| Backend {
        address: text.parse().unwrap(),
        weight: 1,
    };
    settings.set_resolved(0, vec![backend("10.0.0.5:81")]);
    settings.set_resolved(1, vec![backend("10.0.0.5:81"), backend("10.0.0.6:81")]);
    assert_eq!(
        settings.backends,
        [
            backend("10.0.0.2:80"),
            backend("10.0.0.5:81"),
            backend("10.0.0.6:81")
        ]
    );
    // `a` no longer has 10.0.0.5; `b`'s answer in force still does, so it stays.
    settings.set_resolved(0, vec![backend("10.0.0.7:81")]);
    assert_eq!(
        settings.backends,
        [
            backend("10.0.0.2:80"),
            backend("10.0.0.7:81"),
            backend("10.0.0.5:81"),
            backend("10.0.0.6:81")
        ]
    );
    assert_eq!(settings.listed_backends(), [backend("10.0.0.2:80")]);
    // Each entry keeps its whole answer (what `unisock_dns_addresses` reports).
    assert_eq!(settings.named_backends[1].resolved.len(), 2);
    settings.set_resolved(1, Vec::new());
    assert_eq!(
        settings.backends,
        [backend("10.0.0.2:80"), backend("10.0.0.7:81")]
    );
}

#[test]
fn a_new_file_keeps_the_answers_of_the_names_it_keeps() {
    let text = |backends: &str| {
        alloc::format!(
            "[dns]\nresolvers = [\"10.0.0.53\"]\n[[listener]]\nport = 80\npool = \"web\"\n\
             [pool.web]\nbackends = [{backends}]\n"
        )
    };
    let mut old = file(&text("\"a.example:81\", \"b.example:82\"")).unwrap();
    let answer = |address: &str| Backend {
        address: address.parse().unwrap(),
        weight: 1,
    };
    old.pools[0]
        .settings
        .set_resolved(0, vec![answer("10.0.0.5:81")]);
    old.pools[0]
        .settings
        .set_resolved(1, vec![answer("10.0.0.6:82")]);
    let mut new = file(&text("\"b.example:82\", \"c.example:83\"")).unwrap();
    new.keep_answers_of(&old);
    assert_eq!(new.pools[0].settings.backends, [answer("10.0.0.6:82")]);
}
