//! The proxy's metrics after real traffic over the simulated network: `/metrics` read back by
//! a strict reader and by `prometheus-parse`, and every value compared with what the clients
//! and backends themselves saw (requests, responses by class, connections opened and reused,
//! bytes each way, latency histogram counts).

mod support;

use std::time::Duration;

use support::{Behaviour, Bench, Ending, backend_address, clean, settings};
use unisock_kernel::metrics::exposition_check::{ExpositionRead, read_exposition};
use unisock_kernel::metrics::{MetricSource, write_prometheus, write_stats};

const MILLISECOND: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example\r\n{extra}\r\n").into_bytes()
}

/// What a `Behaviour::Fixed` backend writes for a request whose head is `head`.
fn fixed_response(status: u16, body: &[u8], head: &str) -> usize {
    let keep = !head.to_ascii_lowercase().contains("connection: close");
    let mut length = format!(
        "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nX-Backend: yes\r\n",
        body.len()
    )
    .len();
    if !keep {
        length += "Connection: close\r\n".len();
    }
    length + 2 + body.len()
}

fn render(source: &dyn MetricSource) -> (String, ExpositionRead) {
    let mut text = String::new();
    write_prometheus(&[source], &mut text).unwrap();
    let read = read_exposition(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    (text, read)
}

#[test]
fn metrics_after_traffic_match_what_clients_and_backends_saw() {
    let ok_body = b"hello".to_vec();
    let missing_body = b"nope".to_vec();
    let mut bench = Bench::new(
        7,
        clean(),
        settings("", 2),
        vec![
            Behaviour::Fixed {
                status: 200,
                body: ok_body.clone(),
            },
            Behaviour::Fixed {
                status: 404,
                body: missing_body.clone(),
            },
        ],
    );
    let mut sent_by_clients = 0;
    let mut client = |bench: &mut Bench, request: Vec<u8>, start: Duration| {
        sent_by_clients += request.len();
        bench.client(request, start, 30 * SECOND)
    };
    let mut clients = Vec::new();
    for index in 0..6 {
        let request = get(&format!("/{index}"), "Connection: close\r\n");
        clients.push(client(&mut bench, request, index * 20 * MILLISECOND));
    }
    let mut pipelined = get("/p0", "");
    pipelined.extend(get("/p1", ""));
    pipelined.extend(get("/p2", "Connection: close\r\n"));
    clients.push(client(&mut bench, pipelined, 200 * MILLISECOND));
    let post = b"POST /upload HTTP/1.1\r\nHost: example\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    clients.push(client(&mut bench, post.to_vec(), 300 * MILLISECOND));
    let smuggled = b"POST / HTTP/1.1\r\nHost: example\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    clients.push(client(&mut bench, smuggled.to_vec(), 400 * MILLISECOND));
    bench.run(60 * SECOND);
    // Let the proxy see the last closes.
    bench.run_for(SECOND);

    let mut received_by_clients = 0;
    let mut statuses = Vec::new();
    for &index in &clients {
        let result = bench.result(index);
        assert_eq!(result.ending, Ending::Closed, "client {index}");
        received_by_clients += result.received.len();
        let heads = [false; 3];
        for response in support::parse_responses(&result.received, &heads) {
            statuses.push(response.status);
        }
    }
    let count = |class: u16| {
        statuses
            .iter()
            .filter(|status| **status / 100 == class)
            .count() as f64
    };
    assert_eq!(statuses.len(), 11, "{statuses:?}");
    assert_eq!(
        count(4),
        statuses
            .iter()
            .filter(|status| **status == 404 || **status == 400)
            .count() as f64
    );

    let (text, read) = render(&bench.shared);
    let value = |name: &str, labels: &[(&str, &str)]| {
        read.value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let client_side = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("core", "0"), ("listener", "80")];
        labels.extend_from_slice(extra);
        let on_core = value(name, &labels);
        labels[0] = ("core", "total");
        assert_eq!(
            value(name, &labels),
            on_core,
            "{name}: one core, so the total is core 0"
        );
        on_core
    };
    let logs: Vec<_> = bench.backends.iter().map(|log| log.borrow()).collect();
    let backend_requests: usize = logs.iter().map(|log| log.requests.len()).sum();
    assert_eq!(backend_requests, 10);
    assert_eq!(client_side("unisock_proxy_requests_total", &[]), 10.0);
    assert_eq!(
        client_side("unisock_proxy_rejected_requests_total", &[]),
        1.0
    );
    assert_eq!(
        client_side("unisock_proxy_client_connections_total", &[]),
        clients.len() as f64
    );
    assert_eq!(
        client_side("unisock_proxy_client_connections_active", &[]),
        0.0
    );
    for (class, digit) in [("1xx", 1), ("2xx", 2), ("3xx", 3), ("4xx", 4), ("5xx", 5)] {
        assert_eq!(
            client_side("unisock_proxy_responses_total", &[("class", class)]),
            count(digit),
            "{class}"
        );
    }
    assert_eq!(
        client_side("unisock_proxy_client_received_bytes_total", &[]),
        sent_by_clients as f64
    );
    assert_eq!(
        client_side("unisock_proxy_client_sent_bytes_total", &[]),
        received_by_clients as f64
    );
    assert_eq!(
        client_side("unisock_proxy_request_body_bytes_total", &[]),
        3.0
    );
    // Every accepted request was timed once; the 400 had no head to start the clock.
    assert_eq!(
        client_side("unisock_proxy_request_duration_seconds_count", &[]),
        10.0
    );
    assert!(client_side("unisock_proxy_request_duration_seconds_sum", &[]) > 0.0);

    let mut response_body_bytes = 0;
    for (index, (log, (status, body))) in logs
        .iter()
        .zip([(200u16, &ok_body), (404, &missing_body)])
        .enumerate()
    {
        let address = backend_address(index).to_string();
        let backend = |name: &str, extra: &[(&str, &str)]| {
            let mut labels = vec![
                ("core", "0"),
                ("pool", "default"),
                ("backend", address.as_str()),
            ];
            labels.extend_from_slice(extra);
            value(name, &labels)
        };
        let requests = log.requests.len() as f64;
        assert!(requests > 0.0, "backend {index} got nothing");
        let class = if status == 200 { "2xx" } else { "4xx" };
        assert_eq!(
            backend("unisock_proxy_backend_responses_total", &[("class", class)]),
            requests
        );
        let other = if status == 200 { "4xx" } else { "2xx" };
        assert_eq!(
            backend("unisock_proxy_backend_responses_total", &[("class", other)]),
            0.0
        );
        assert_eq!(
            backend("unisock_proxy_backend_connections_opened_total", &[]),
            log.connections as f64
        );
        assert_eq!(
            backend("unisock_proxy_backend_connections_reused_total", &[]),
            requests - log.connections as f64
        );
        assert!(backend("unisock_proxy_backend_connections_active", &[]) <= log.connections as f64);
        let sent: usize = log
            .requests
            .iter()
            .map(|request| request.head.len() + request.body.len())
            .sum();
        assert_eq!(
            backend("unisock_proxy_backend_sent_bytes_total", &[]),
            sent as f64
        );
        let answered: usize = log
            .requests
            .iter()
            .map(|request| fixed_response(status, body, &request.head))
            .sum();
        assert_eq!(
            backend("unisock_proxy_backend_received_bytes_total", &[]),
            answered as f64
        );
        assert_eq!(
            backend("unisock_proxy_backend_response_latency_seconds_count", &[]),
            requests
        );
        response_body_bytes += body.len() * log.requests.len();
        assert_eq!(
            value(
                "unisock_proxy_backend_up",
                &[("pool", "default"), ("backend", address.as_str())]
            ),
            1.0
        );
    }
    // Some backend connection was reused (the pipelined GETs), so the pool counters moved.
    assert!(client_side("unisock_proxy_backend_reuses_total", &[]) > 0.0);
    assert_eq!(
        client_side("unisock_proxy_response_body_bytes_total", &[]),
        response_body_bytes as f64
    );

    // prometheus-parse reads every series the strict reader read, with the same values (it
    // gathers a histogram's buckets into one sample and reads its _sum and _count untyped).
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap();
    let mut buckets = 0;
    for sample in &scrape.samples {
        let labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        match &sample.value {
            prometheus_parse::Value::Counter(number)
            | prometheus_parse::Value::Gauge(number)
            | prometheus_parse::Value::Untyped(number) => {
                assert_eq!(
                    read.value(&sample.metric, &labels),
                    Some(*number),
                    "{}",
                    sample.metric
                );
            }
            prometheus_parse::Value::Histogram(counts) => {
                for count in counts {
                    let le = if count.less_than.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        count.less_than.to_string()
                    };
                    let mut labels = labels.clone();
                    labels.push(("le", &le));
                    let name = format!("{}_bucket", sample.metric);
                    assert_eq!(read.value(&name, &labels), Some(count.count), "{name} {le}");
                    buckets += 1;
                }
            }
            other => panic!("{}: {other:?}", sample.metric),
        }
    }
    let histograms = scrape
        .samples
        .iter()
        .filter(|sample| matches!(sample.value, prometheus_parse::Value::Histogram(_)))
        .count();
    assert_eq!(
        histograms, 6,
        "two families, each on core 0 and total (the backends' twice)"
    );
    assert_eq!(
        scrape.samples.len() - histograms + buckets,
        read.series.len()
    );

    // /stats says the same under its names.
    let mut stats = String::new();
    write_stats(&[&bench.shared], &mut stats).unwrap();
    let line = stats
        .lines()
        .find(|line| line.starts_with("proxy core=0 "))
        .unwrap();
    assert!(line.contains(" requests=10 "), "{line}");
    assert!(
        line.contains(&format!(" responses_2xx={} ", count(2))),
        "{line}"
    );
    assert!(
        line.contains(&format!(" responses_4xx={} ", count(4))),
        "{line}"
    );
    let backend_line = stats
        .lines()
        .find(|line| {
            line.starts_with("proxy_backend core=0 pool=default backend=")
                && line.contains(&backend_address(0).to_string())
        })
        .unwrap();
    assert!(
        backend_line.contains(&format!(" connections_opened={} ", logs[0].connections)),
        "{backend_line}"
    );
}
