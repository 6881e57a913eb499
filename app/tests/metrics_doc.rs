//! docs/metrics.md is generated from the metric definitions: this test fails when the file
//! and the definitions disagree. `UNISOCK_BLESS=1 cargo test -p unisock-app --test
//! metrics_doc` rewrites it.

use std::fmt::Write;
use std::path::Path;

use unisock_app::control::{NAME_METRICS, RESOLVER_METRICS};
use unisock_app::proxy::{
    BACKEND_HEALTH_METRICS, BACKEND_METRICS, CORE_STATE_METRICS, PROXY_CORE_METRICS,
};
use unisock_kernel::metrics::{HEAP_METRICS, Metric, MetricKind, NIC_PORT_METRICS};
use unisock_kernel::runtime::CORE_METRICS;

const INTRODUCTION: &str = "\
# Metrics

Generated from the metric definitions by `app/tests/metrics_doc.rs` (which fails when this file
is stale; `UNISOCK_BLESS=1 cargo test -p unisock-app --test metrics_doc` rewrites it). Do not
edit by hand.

Every metric is defined once (name, help, kind, labels, `/stats` field) and rendered two ways:
`GET /metrics`, the Prometheus text exposition format 0.0.4 (`Content-Type: text/plain;
version=0.0.4; charset=utf-8`), and `GET /stats`, the `name=value` lines the scripts and tests
read. Both are served on the responder's port today.

- **Per core and total.** A family counted per core has one series per core (`core=\"0\"`,
  `core=\"1\"`, ...) and one more, `core=\"total\"`, the sum of the cores (like `/stats`'s
  `core=total` lines). To aggregate, either read `core=\"total\"` or sum with
  `{core!=\"total\"}`; summing every series of a family counts everything twice.
- **NIC counters** come two ways: per queue from the driver's own counts (`unisock_nic_*`,
  per core, every driver), and port-wide from the device's statistics registers
  (`unisock_nic_port_*`, the 82599 only).
- **Labels.** `listener=\"<port>\"` on the proxy's client side; `listener`, `pool=\"<name>\"`
  (the configuration's pool; `default` for the command line's) and `backend=\"<ip:port>\"` on the
  backend side; `pool` and `backend` on health; `reason` on TCP drops and on the proxy's local connect failures; `class` (`1xx` to
  `5xx`) on responses; `le` on histogram buckets.
- **Histograms** have the buckets 0.5 ms, 1, 2.5, 5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5,
  10, 30 s and `+Inf`; `_sum` is in seconds. On `/stats` a histogram is `<field>_count` and
  `<field>_sum_us` (microseconds).
- **`/stats` lines**: `core=<i> ...` (the kernel's counters below), `proxy core=<i> ...` (the
  proxy's client side), `proxy_core core=<i> ...` (each core's connections, drain and access
  log), `proxy_backend core=<i> pool=default backend=<ip:port> ...`,
  `proxy_health pool=default backend=<ip:port> up= transitions= ejections=`,
  `nic_port driver=<name> ...` (a NIC with port statistics registers only), and
  `memory heap_used_bytes=<n> heap_capacity_bytes=<n>`. A labelled field is
  `<field>_<label value>` there (`tcp_drops_no_socket`, `responses_2xx`).
";

fn kind(metric: &Metric) -> &'static str {
    match metric.kind {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
    }
}

fn table(out: &mut String, title: &str, labels: &str, stats_line: &str, metrics: &[Metric]) {
    writeln!(out, "\n## {title}\n").unwrap();
    writeln!(
        out,
        "Labels on every series: {labels}. `/stats`: {stats_line}.\n"
    )
    .unwrap();
    writeln!(out, "| name | type | labels | `/stats` field | meaning |").unwrap();
    writeln!(out, "|---|---|---|---|---|").unwrap();
    for metric in metrics {
        let extra = if metric.labels.is_empty() {
            String::from("")
        } else {
            metric
                .labels
                .iter()
                .map(|label| format!("`{label}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "| `{}` | {} | {} | `{}` | {} |",
            metric.name,
            kind(metric),
            extra,
            metric.stats_name,
            metric.help.replace('|', "\\|")
        )
        .unwrap();
    }
}

fn generated() -> String {
    let mut out = String::from(INTRODUCTION);
    table(
        &mut out,
        "Each core's network stack (kernel/src/runtime/statistics.rs)",
        "`core`",
        "the `core=<i>` lines",
        CORE_METRICS,
    );
    table(
        &mut out,
        "The proxy, client side (app/src/proxy/statistics.rs)",
        "`core`, `listener`",
        "the `proxy core=<i>` lines",
        PROXY_CORE_METRICS,
    );
    table(
        &mut out,
        "The proxy, per core across listeners: connections, drain, access log (app/src/proxy/statistics.rs)",
        "`core`",
        "the `proxy_core core=<i>` lines",
        CORE_STATE_METRICS,
    );
    table(
        &mut out,
        "The proxy, per backend (app/src/proxy/statistics.rs)",
        "`core`, `pool`, `backend`",
        "the `proxy_backend` lines",
        BACKEND_METRICS,
    );
    table(
        &mut out,
        "Backend health (shared by the cores: no `core` label)",
        "`pool`, `backend`",
        "the `proxy_health` lines",
        &BACKEND_HEALTH_METRICS,
    );
    table(
        &mut out,
        "Backends found by name (app/src/control/discovery.rs; shared by the cores: no `core` label)",
        "`pool`, `name` (the backend entry as written)",
        "the `dns_name pool=<name> name=<entry>` lines",
        &NAME_METRICS,
    );
    table(
        &mut out,
        "The DNS stub resolver (app/src/dns/resolver.rs; every core's added up: no label)",
        "none",
        "the `dns_resolver` line",
        &RESOLVER_METRICS,
    );
    table(
        &mut out,
        "The NIC port (the device's statistics registers, read by core 0 once a second; the 82599 only, none for virtio-net)",
        "`driver`",
        "the `nic_port driver=<name>` line",
        NIC_PORT_METRICS,
    );
    table(
        &mut out,
        "The heap (boot/src/memory.rs, talc's counters; no `core` label)",
        "none",
        "the `memory` line",
        &HEAP_METRICS,
    );
    out
}

#[test]
fn docs_metrics_md_lists_every_metric_as_defined() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
    let expected = generated();
    if std::env::var_os("UNISOCK_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/metrics.md is stale: run UNISOCK_BLESS=1 cargo test -p unisock-app --test metrics_doc"
    );
}

#[test]
fn every_family_name_is_unique_and_follows_prometheus_naming() {
    let mut names = std::collections::BTreeSet::new();
    let all = CORE_METRICS
        .iter()
        .chain(PROXY_CORE_METRICS)
        .chain(CORE_STATE_METRICS)
        .chain(BACKEND_METRICS)
        .chain(&BACKEND_HEALTH_METRICS)
        .chain(NIC_PORT_METRICS)
        .chain(&HEAP_METRICS);
    for metric in all {
        assert!(names.insert(metric.name), "{} twice", metric.name);
        assert!(metric.name.starts_with("unisock_"), "{}", metric.name);
        assert_eq!(
            metric.kind == MetricKind::Counter,
            metric.name.ends_with("_total"),
            "{}: counters and only counters end in _total",
            metric.name
        );
        if metric.kind == MetricKind::Histogram {
            assert!(metric.name.ends_with("_seconds"), "{}", metric.name);
        }
        assert!(
            !metric.help.is_empty() && metric.help.ends_with('.'),
            "{}",
            metric.name
        );
    }
}
