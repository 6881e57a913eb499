//! The renderings checked against known counter values: every series of `/metrics` read back
//! by a strict reader and by `prometheus-parse` says the value that was counted, and `/stats`
//! says the same under its old names.

use alloc::string::String;
use alloc::vec::Vec;
use std::collections::BTreeMap;

use super::exposition_check::read_exposition;
use super::*;
use crate::runtime::{CORE_METRICS, CoreSnapshot, NetworkStatistics};

/// Statistics of `cores` cores, every field of every core a different number; returns them
/// with the numbers by (core, `/stats` field name).
fn statistics_with_distinct_values(
    cores: usize,
) -> (NetworkStatistics, BTreeMap<(usize, String), u64>) {
    let statistics = NetworkStatistics::new(cores);
    let mut values = BTreeMap::new();
    let mut next = 1_000u64;
    for core in 0..cores {
        let snapshot = CoreSnapshot::from_values(&mut |field, label| {
            next += 7;
            let name = match label {
                Some(label) => alloc::format!("{field}_{label}"),
                None => String::from(field),
            };
            values.insert((core, name), next);
            next
        });
        statistics.core(core).unwrap().publish(&snapshot);
    }
    (statistics, values)
}

fn parse_with_prometheus_parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(String::from(line)))).unwrap()
}

#[test]
fn every_core_counter_says_its_value_per_core_and_in_total() {
    let cores = 3;
    let (statistics, values) = statistics_with_distinct_values(cores);
    let mut text = String::new();
    write_prometheus(&[&statistics], &mut text).unwrap();
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    assert_eq!(read.families.len(), CORE_METRICS.len());
    let mut checked = 0;
    for metric in CORE_METRICS {
        let family = &read.families[metric.name];
        assert_eq!(
            family.kind,
            metric.kind.prometheus_type(),
            "{}",
            metric.name
        );
        assert_eq!(family.help, metric.help);
        let label_values: Vec<Option<(&str, &str)>> = match (metric.stats_name, metric.labels) {
            (_, []) => alloc::vec![None],
            ("tcp_drops", ["reason"]) => crate::net::tcp::DropReason::ALL
                .iter()
                .map(|reason| Some(("reason", reason.name())))
                .collect(),
            ("interface_drops", ["reason"]) => crate::net::counters::DropReason::ALL
                .iter()
                .map(|reason| Some(("reason", reason.name())))
                .collect(),
            other => panic!("unexpected labels {other:?}"),
        };
        for label in label_values {
            let stats_name = match label {
                Some((_, value)) => alloc::format!("{}_{value}", metric.stats_name),
                None => String::from(metric.stats_name),
            };
            let mut total = 0;
            for core in 0..cores {
                let core_label = alloc::format!("{core}");
                let mut labels = alloc::vec![("core", core_label.as_str())];
                labels.extend(label);
                let expected = values[&(core, stats_name.clone())];
                assert_eq!(
                    read.value(metric.name, &labels),
                    Some(expected as f64),
                    "{stats_name}"
                );
                total += expected;
                checked += 1;
            }
            let mut labels = alloc::vec![("core", "total")];
            labels.extend(label);
            assert_eq!(
                read.value(metric.name, &labels),
                Some(total as f64),
                "{stats_name}"
            );
        }
    }
    assert_eq!(checked, values.len());
    // Every series and nothing else: cores plus the total.
    assert_eq!(read.series.len(), values.len() / cores * (cores + 1));

    // prometheus-parse reads the same values with the same types.
    let scrape = parse_with_prometheus_parse(&text);
    assert_eq!(scrape.samples.len(), read.series.len());
    for sample in &scrape.samples {
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let value = match sample.value {
            prometheus_parse::Value::Counter(value) | prometheus_parse::Value::Gauge(value) => {
                value
            }
            ref other => panic!("{}: {other:?}", sample.metric),
        };
        assert_eq!(
            read.value(&sample.metric, &labels),
            Some(value),
            "{}",
            sample.metric
        );
    }
}

#[test]
fn stats_keeps_its_lines_and_names_and_says_the_same_values() {
    let cores = 2;
    let (statistics, values) = statistics_with_distinct_values(cores);
    let mut text = String::new();
    write_stats(&[&statistics], &mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cores + 1);
    for (index, line) in lines.iter().enumerate() {
        let mut words = line.split(' ');
        let core = words.next().unwrap();
        let fields: BTreeMap<&str, u64> = words
            .map(|word| {
                let (name, value) = word.split_once('=').unwrap();
                (name, value.parse().unwrap())
            })
            .collect();
        if index < cores {
            assert_eq!(core, alloc::format!("core={index}"));
            for ((value_core, name), value) in &values {
                if *value_core == index {
                    assert_eq!(fields[name.as_str()], *value, "{name}");
                }
            }
            assert_eq!(fields.len(), values.len() / cores);
        } else {
            assert_eq!(core, "core=total");
            let sum: u64 = (0..cores)
                .map(|core| values[&(core, String::from("rfd_forwarded"))])
                .sum();
            assert_eq!(fields["rfd_forwarded"], sum);
        }
        // The names the e2e tests and scripts read are still there.
        for name in [
            "rx_frames",
            "rfd_forwarded",
            "rfd_local",
            "rfd_received",
            "tcp_connections",
            "halts",
            "tcp_drops_no_socket",
        ] {
            assert!(fields.contains_key(name), "{name} missing from {line}");
        }
    }
}

#[test]
fn the_heap_is_two_gauges_and_one_memory_line() {
    let heap = HeapUsage {
        used_bytes: 12_345,
        capacity_bytes: 1 << 27,
    };
    let mut text = String::new();
    write_prometheus(&[&heap], &mut text).unwrap();
    let read = read_exposition(&text).unwrap();
    assert_eq!(read.value("unisock_heap_used_bytes", &[]), Some(12_345.0));
    assert_eq!(
        read.value("unisock_heap_capacity_bytes", &[]),
        Some((1u64 << 27) as f64)
    );
    assert_eq!(read.families["unisock_heap_used_bytes"].kind, "gauge");
    let mut stats = String::new();
    write_stats(&[&heap], &mut stats).unwrap();
    assert_eq!(
        stats,
        "memory heap_used_bytes=12345 heap_capacity_bytes=134217728\n"
    );
}

struct Odd;

const ODD: Metric = Metric::new(
    "unisock_odd_total",
    "odd",
    MetricKind::Counter,
    "A \\ help\nwith a newline.",
);
const LATENCY: Metric = Metric::new(
    "unisock_test_latency_seconds",
    "latency",
    MetricKind::Histogram,
    "Test latency.",
);

impl MetricSource for Odd {
    fn write_prometheus(&self, out: &mut Exposition<'_>) -> core::fmt::Result {
        out.family(&ODD)?;
        out.sample(&ODD, &[("backend", &"a\"b\\c\nd")], 3)?;
        out.family(&LATENCY)?;
        let histogram = Histogram::default();
        for micros in [100, 700, 700, 3_000, 40_000_000] {
            histogram.observe(core::time::Duration::from_micros(micros));
        }
        out.histogram(&LATENCY, &[("core", &0)], &histogram.snapshot())
    }

    fn write_stats(&self, _out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        Ok(())
    }
}

#[test]
fn label_values_and_help_are_escaped_and_histograms_are_cumulative() {
    let mut text = String::new();
    write_prometheus(&[&Odd], &mut text).unwrap();
    assert!(
        text.contains("# HELP unisock_odd_total A \\\\ help\\nwith a newline.\n"),
        "{text}"
    );
    assert!(
        text.contains("unisock_odd_total{backend=\"a\\\"b\\\\c\\nd\"} 3\n"),
        "{text}"
    );
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    assert_eq!(
        read.value("unisock_odd_total", &[("backend", "a\"b\\c\nd")]),
        Some(3.0)
    );
    let bucket = |le| {
        read.value(
            "unisock_test_latency_seconds_bucket",
            &[("core", "0"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0005"), Some(1.0));
    assert_eq!(bucket("0.001"), Some(3.0));
    assert_eq!(bucket("0.005"), Some(4.0));
    assert_eq!(bucket("30"), Some(4.0));
    assert_eq!(bucket("+Inf"), Some(5.0));
    assert_eq!(
        read.value("unisock_test_latency_seconds_count", &[("core", "0")]),
        Some(5.0)
    );
    assert_eq!(
        read.value("unisock_test_latency_seconds_sum", &[("core", "0")]),
        Some(40.0045)
    );
    let scrape = parse_with_prometheus_parse(&text);
    let histogram = scrape
        .samples
        .iter()
        .find(|sample| sample.metric == "unisock_test_latency_seconds")
        .unwrap();
    let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
        panic!()
    };
    assert_eq!(buckets.last().map(|bucket| bucket.count), Some(5.0));
}

#[test]
fn the_strict_reader_refuses_what_prometheus_refuses() {
    for bad in [
        "# TYPE a_total counter\na_total 1\n# TYPE b gauge\nb 1\na_total 2\n",
        "a 1\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
    ] {
        assert!(read_exposition(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_nic_port_counters_are_one_series_each_labelled_by_driver() {
    let port = NicPortStatistics::new("ixgbe");
    port.publish(NicPortCounters {
        rx_packets: 10,
        rx_missed: 3,
        crc_errors: 1,
        ..NicPortCounters::default()
    });
    let mut text = String::new();
    write_prometheus(&[&port], &mut text).unwrap();
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    assert_eq!(read.families.len(), NIC_PORT_METRICS.len());
    assert_eq!(read.series.len(), NIC_PORT_METRICS.len());
    let driver = [("driver", "ixgbe")];
    assert_eq!(
        read.value("unisock_nic_port_received_packets_total", &driver),
        Some(10.0)
    );
    assert_eq!(
        read.value("unisock_nic_port_missed_packets_total", &driver),
        Some(3.0)
    );
    assert_eq!(
        read.value("unisock_nic_port_crc_errors_total", &driver),
        Some(1.0)
    );
    let mut stats = String::new();
    write_stats(&[&port], &mut stats).unwrap();
    assert!(
        stats.starts_with("nic_port driver=ixgbe rx_packets=10 rx_bytes=0 "),
        "{stats}"
    );
    assert!(stats.contains(" rx_missed=3 "), "{stats}");
}
