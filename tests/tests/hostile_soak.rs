//! Soak: short-lived connections through the proxy for `UNISOCK_SOAK_SECONDS` (default 120;
//! the documented manual run is 1800), printing the guest's memory and table sizes after
//! every round of load. It fails on any failed request and on growth: after a warm-up (the
//! first rounds, while TIME_WAIT fills to its steady state), the mean of the last third of
//! the samples must not exceed the mean of the first third by more than a tolerance.
//!
//!   UNISOCK_SOAK_SECONDS=1800 cargo test -p unisock-e2e --test hostile_soak -- --nocapture

mod guest;

use std::process::Stdio;
use std::time::{Duration, Instant};

use guest::{CoreCounters, GUEST, Guest, PEER, run_ab};

const PROXY_PORT: u16 = 8080;
const BACKEND_PORT: u16 = 8000;
/// `TcpConfig::time_wait`: the table of closed connections grows for this long, then holds.
const TIME_WAIT: Duration = Duration::from_secs(60);

/// One sample of what must stay flat.
#[derive(Clone, Copy, Debug)]
struct Sample {
    seconds: f64,
    connections: u64,
    time_wait: u64,
    timer_entries: u64,
    heap_used: Option<u64>,
}

fn sample(guest: &Guest, started: Instant) -> Sample {
    let text = guest.expect_shell(
        &format!("curl -sS --retry 3 --max-time 20 http://{GUEST}/stats"),
        Duration::from_secs(90),
    );
    let total = text
        .lines()
        .find(|line| line.starts_with("core=total "))
        .map(CoreCounters::parse)
        .unwrap_or_else(|| panic!("no total line:\n{text}"));
    let heap_used = text
        .lines()
        .find(|line| line.starts_with("memory "))
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("heap_used_bytes="))
        })
        .and_then(|value| value.parse().ok());
    Sample {
        seconds: started.elapsed().as_secs_f64(),
        connections: total.get("tcp_connections"),
        time_wait: total.get("tcp_time_wait"),
        timer_entries: total.get("tcp_timer_entries"),
        heap_used,
    }
}

/// Whether the last third of `values` grew past the first third: by more than `relative`
/// of the first third's mean plus `absolute`.
fn grew(values: &[u64], relative: f64, absolute: f64) -> Option<(f64, f64)> {
    let third = values.len() / 3;
    if third == 0 {
        return None;
    }
    let mean = |part: &[u64]| part.iter().sum::<u64>() as f64 / part.len() as f64;
    let first = mean(&values[..third]);
    let last = mean(&values[values.len() - third..]);
    (last > first * (1.0 + relative) + absolute).then_some((first, last))
}

#[test]
fn short_connections_through_the_proxy_for_a_while_leave_memory_and_tables_flat() {
    let seconds: u64 = std::env::var("UNISOCK_SOAK_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(120);
    let words = format!("responder=80 proxy={PROXY_PORT} backends={PEER}:{BACKEND_PORT}");
    let guest = Guest::boot_custom(2, None, &words, &[]);
    let _backend = guest::python_backend(&guest, BACKEND_PORT, Stdio::null());
    let started = Instant::now();
    let url = format!("http://{GUEST}:{PROXY_PORT}/");
    let mut samples = Vec::new();
    let mut requests = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let round = run_ab(&guest, &url, 500, 8, Duration::from_secs(300));
        requests += round.complete;
        assert_eq!(round.failed, 0, "failed requests after {requests}");
        assert_eq!(round.non_2xx, 0, "non-2xx responses after {requests}");
        let now = sample(&guest, started);
        println!(
            "soak {:>6.0} s: {requests} requests ({:.0}/s this round), tcp_connections {} \
             time_wait {} timer_entries {} heap_used {}",
            now.seconds,
            round.per_second,
            now.connections,
            now.time_wait,
            now.timer_entries,
            now.heap_used
                .map_or_else(|| "not published".to_string(), |bytes| bytes.to_string())
        );
        samples.push(now);
    }
    // TIME_WAIT fills for its first minute; compare only what comes after.
    let warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|sample| sample.seconds > TIME_WAIT.as_secs_f64() + 5.0)
        .collect();
    println!(
        "soak: {requests} requests in {:.0} s, {} samples after warm-up",
        started.elapsed().as_secs_f64(),
        warm.len()
    );
    let connections: Vec<u64> = warm.iter().map(|sample| sample.connections).collect();
    let time_wait: Vec<u64> = warm.iter().map(|sample| sample.time_wait).collect();
    // Samples are taken between rounds: open connections are the `/stats` request and a few
    // stragglers, so an absolute tolerance; TIME_WAIT follows the request rate, which TCG
    // makes noisy, hence a generous relative one.
    if let Some((first, last)) = grew(&connections, 0.5, 16.0) {
        panic!("tcp_connections grew from {first:.0} to {last:.0}: {samples:?}");
    }
    if let Some((first, last)) = grew(&time_wait, 0.5, 500.0) {
        panic!("tcp_time_wait grew from {first:.0} to {last:.0}: {samples:?}");
    }
    // The wheel holds about one entry per connection and TIME_WAIT record, plus stale ones
    // that expire within a turn: it follows TIME_WAIT.
    let timer_entries: Vec<u64> = warm.iter().map(|sample| sample.timer_entries).collect();
    if let Some((first, last)) = grew(&timer_entries, 0.5, 500.0) {
        panic!("tcp_timer_entries grew from {first:.0} to {last:.0}: {samples:?}");
    }
    let heap: Vec<u64> = warm.iter().filter_map(|sample| sample.heap_used).collect();
    if heap.len() == warm.len() && !heap.is_empty() {
        // A steady state allocates and frees the same; 10 % and 1 MiB of slack.
        if let Some((first, last)) = grew(&heap, 0.10, 1_048_576.0) {
            panic!("heap use grew from {first:.0} to {last:.0} bytes: {samples:?}");
        }
    } else {
        println!("soak: the image publishes no heap use in /stats; memory not checked");
    }
}
