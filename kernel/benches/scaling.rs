//! Short-lived connections per second for 1, 2, 4, ... appliance cores (threads), partitioned tables against one shared locked table set, in the same run.
//!
//! Each thread is one appliance core plus its own load: a client host opening connections to
//! the appliance and a backend host answering the appliance's own connections (the proxy
//! side), all over the simulated multi-queue NIC of the partition tests (RSS with the
//! port-only key). Every connection: SYN, a 200-byte request, a 700-byte response, close;
//! every byte is checked. The rate counts the connections completed by the client hosts
//! (passive on the appliance) and by the appliance (active, to the backends) per second.
//!
//! Besides connections per second of wall time, the table shows connections per second of CPU
//! time used by the threads (from `/proc/thread-self/schedstat`): on a machine shared with
//! other work, the wall rate follows the CPU share the bench gets, the CPU-time rate shows
//! the cost per connection, lock spinning included.
//!
//! The load is affine (see `Scenario::affine_load`): each client host picks ports that RSS
//! sends to its own thread's queue and each core talks to its own backend host, so the
//! simulated wire moves no frame between threads; what the threads share is exactly what the
//! mode shares: nothing but the global listen table (partitioned) or every table under one
//! lock (shared).
//!
//! The load generators run in the same threads as the cores they load, so a thread count
//! above the machine's core count measures time-sharing, not scaling: the thread counts go up
//! to `std::thread::available_parallelism()`.
//!
//! Run with `cargo xtask bench scaling` (`cargo bench -p unisock-kernel --bench scaling`).
//! `UNISOCK_BENCH_SECONDS` sets each measurement's length (default 3, after 0.5 s of
//! warm-up); `UNISOCK_BENCH_MAX_THREADS` caps the thread count; `UNISOCK_BENCH_REPEATS`
//! (default 3) repeats each pair of measurements, alternating the modes, and keeps each
//! mode's best, so that other load on the machine hurts both modes alike and little. The bench prints a table,
//! writes the plot to `<target>/unisock/scaling.svg`, and ends with the line
//! `scaling-bench: threads=<n> partitioned=<conn/s> shared=<conn/s>` for the largest count.

#[path = "../tests/partition/harness.rs"]
mod harness;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use harness::{Outcome, Scenario, Steering, run};
use unisock_kernel::net::partition::StackMode;

const WARM_UP: Duration = Duration::from_millis(500);

struct Row {
    threads: usize,
    partitioned: Measurement,
    shared: Measurement,
}

struct Measurement {
    rate: f64,
    /// Connections per second of CPU time the threads used: the cost, whatever else runs.
    per_cpu_second: Option<f64>,
    passive: u64,
    active: u64,
    forwarded: u64,
}

fn measure(threads: usize, mode: StackMode, seconds: f64) -> Measurement {
    let mut scenario = Scenario::new(threads, mode, Steering::Rss);
    scenario.duration = Some(WARM_UP + Duration::from_secs_f64(seconds));
    scenario.warm_up = WARM_UP;
    scenario.time_limit = scenario.duration.unwrap_or_default() + Duration::from_secs(30);
    // Enough connections in flight to keep a core busy, few enough that the first SYNs fit
    // the peers' ARP queues (64 packets) while the appliance's address is resolved.
    scenario.concurrency = 32;
    scenario.affine_load = true;
    scenario.passive_per_core = 1;
    scenario.active_per_core = 1;
    let outcome: Outcome = run(&scenario);
    if !outcome.failures.is_empty() {
        eprintln!(
            "warning: {} failed connections with {threads} threads ({mode:?}), first: {}",
            outcome.failures.len(),
            outcome.failures[0]
        );
    }
    let completed = outcome.completed_passive + outcome.completed_active;
    Measurement {
        rate: completed as f64 / outcome.elapsed.as_secs_f64(),
        per_cpu_second: outcome
            .cpu_time
            .filter(|time| !time.is_zero())
            .map(|time| completed as f64 / time.as_secs_f64()),
        passive: outcome.completed_passive,
        active: outcome.completed_active,
        forwarded: outcome.total().forwarded_by_rfd,
    }
}

fn per_cpu_second(measurement: &Measurement) -> String {
    measurement
        .per_cpu_second
        .map_or_else(|| "-".to_string(), |rate| format!("{rate:.0}"))
}

fn best(first: Measurement, second: Measurement) -> Measurement {
    if second.rate > first.rate {
        second
    } else {
        first
    }
}

fn thread_counts(max: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |count| Some(count * 2))
        .take_while(|&count| count <= max)
        .collect();
    if counts.last() != Some(&max) {
        counts.push(max);
    }
    counts
}

fn main() {
    let seconds: f64 = std::env::var("UNISOCK_BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    let available = std::thread::available_parallelism().map_or(1, |count| count.get());
    let max_threads = std::env::var("UNISOCK_BENCH_MAX_THREADS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(available)
        .clamp(1, 128);
    let repeats: usize = std::env::var("UNISOCK_BENCH_REPEATS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "scaling bench: short connections (200-byte request, 700-byte response), {seconds} s per \
         measurement after {} ms warm-up, best of {repeats}, {available} hardware threads available",
        WARM_UP.as_millis()
    );
    println!(
        "{:>7} | {:>15} | {:>15} | {:>6} | {:>19} | {:>19} | partitioned passive/active, cross-core",
        "threads",
        "partitioned c/s",
        "shared c/s",
        "ratio",
        "partitioned c/cpu-s",
        "shared c/cpu-s"
    );
    let mut rows = Vec::new();
    for threads in thread_counts(max_threads) {
        let mut partitioned = measure(threads, StackMode::Partitioned, seconds);
        let mut shared = measure(threads, StackMode::SharedTables, seconds);
        for _ in 1..repeats {
            partitioned = best(
                partitioned,
                measure(threads, StackMode::Partitioned, seconds),
            );
            shared = best(shared, measure(threads, StackMode::SharedTables, seconds));
        }
        println!(
            "{threads:>7} | {:>15.0} | {:>15.0} | {:>6.2} | {:>19} | {:>19} | {}/{}, {} forwarded",
            partitioned.rate,
            shared.rate,
            partitioned.rate / shared.rate,
            per_cpu_second(&partitioned),
            per_cpu_second(&shared),
            partitioned.passive,
            partitioned.active,
            partitioned.forwarded
        );
        rows.push(Row {
            threads,
            partitioned,
            shared,
        });
    }
    let path = write_plot(&rows);
    println!("plot: {}", path.display());
    if let Some(last) = rows.last() {
        println!(
            "scaling-bench: threads={} partitioned={:.0} shared={:.0}",
            last.threads, last.partitioned.rate, last.shared.rate
        );
    }
}

/// `<target>/unisock/scaling.svg`: connections per second against threads, both modes.
fn write_plot(rows: &[Row]) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let directory = target.join("unisock");
    let path = directory.join("scaling.svg");
    if let Err(error) =
        std::fs::create_dir_all(&directory).and_then(|()| std::fs::write(&path, svg(rows)))
    {
        eprintln!("could not write {}: {error}", path.display());
    }
    path
}

fn svg(rows: &[Row]) -> String {
    let (width, height, left, right, top, bottom) = (640.0, 400.0, 80.0, 20.0, 40.0, 50.0);
    let plot_width = width - left - right;
    let plot_height = height - top - bottom;
    let max_threads = rows.last().map_or(1, |row| row.threads).max(2) as f64;
    let max_rate = rows
        .iter()
        .map(|row| row.partitioned.rate.max(row.shared.rate))
        .fold(1.0, f64::max)
        * 1.1;
    let x = |threads: usize| left + (threads as f64 - 1.0) / (max_threads - 1.0) * plot_width;
    let y = |rate: f64| top + plot_height - rate / max_rate * plot_height;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">Short-lived connections per second (cargo xtask bench scaling)</text>"#,
        width / 2.0
    );
    let _ = writeln!(
        out,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/>"#,
        top + plot_height,
        left + plot_width,
        top + plot_height,
        top + plot_height
    );
    for step in 0..=4 {
        let rate = max_rate * f64::from(step) / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{:.0}</text><line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="lightgray"/>"#,
            left - 6.0,
            y(rate) + 4.0,
            rate,
            y(rate),
            left + plot_width,
            y(rate)
        );
    }
    for row in rows {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            x(row.threads),
            top + plot_height + 18.0,
            row.threads
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">connections per second</text>"#,
        top + plot_height / 2.0,
        top + plot_height / 2.0
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">threads (cores)</text>"#,
        left + plot_width / 2.0,
        height - 10.0
    );
    for (name, colour, rate_of, legend_y) in [
        (
            "partitioned (Fastsocket)",
            "steelblue",
            (|row: &Row| row.partitioned.rate) as fn(&Row) -> f64,
            top + 10.0,
        ),
        (
            "shared locked tables (Linux design)",
            "firebrick",
            |row: &Row| row.shared.rate,
            top + 28.0,
        ),
    ] {
        let points: Vec<String> = rows
            .iter()
            .map(|row| format!("{:.1},{:.1}", x(row.threads), y(rate_of(row))))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for row in rows {
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(row.threads),
                y(rate_of(row))
            );
        }
        let _ = writeln!(
            out,
            r#"<line x1="{}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{name}</text>"#,
            left + 10.0,
            left + 30.0,
            left + 36.0,
            legend_y + 4.0
        );
    }
    out.push_str("</svg>\n");
    out
}
