//! Unisock against its targets (so many times its Linux baselines' rates, no worse p99), and
//! the ceiling the host's cores put on every row: what `bench compare` prints and writes
//! about them, computed from the measurements.

use super::guest::System;
use super::{Results, Round};

/// How many times its baselines' `Connection: close` rate each Unisock system is to reach.
const CLOSE_TARGETS: [(System, f64); 2] = [
    (System::UnisockResponder, 10.0),
    (System::UnisockProxy, 5.0),
];

/// How many times its baselines' keep-alive rate each Unisock system is to reach.
const KEEPALIVE_TARGETS: [(System, f64); 1] = [(System::UnisockProxy, 5.0)];

/// The width the prose of BENCHMARKS.md is wrapped to.
const WIDTH: usize = 95;

/// Host CPU microseconds per connection of a `Connection: close` run, by where it is spent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// The vCPU threads: the guest's own work.
    pub vcpus: f64,
    /// Everything else the connection costs the host: QEMU's main loop and other threads,
    /// the load generator and the backend.
    pub outside: f64,
    pub total: f64,
}

/// The cost of one round's `Connection: close` run; `None` when it completed no connection.
fn close_cost(round: &Round) -> Option<Cost> {
    let run = &round.close;
    let connections = run.result.requests;
    if connections == 0 {
        return None;
    }
    let per_connection = |seconds: f64| seconds * 1e6 / connections as f64;
    let cpu = &run.cpu;
    let vcpus = per_connection(cpu.qemu.vcpus);
    let outside =
        per_connection(cpu.qemu.io_thread + cpu.qemu.other + cpu.load_generator + cpu.backend);
    Some(Cost {
        vcpus,
        outside,
        total: vcpus + outside,
    })
}

/// Why `system` has no figure at `vcpus`, in words for the report and the lines.
fn absent(results: &Results, system: System, vcpus: u32) -> String {
    match results.skipped.get(&system) {
        Some(reason) => format!("{} was skipped: {reason}", system.name()),
        None => format!("{} has no figure at {}", system.name(), vcpu_words(vcpus)),
    }
}

/// The median of `figure` over the rounds of `system` at `vcpus`, or why there is none.
fn median(
    results: &Results,
    system: System,
    vcpus: u32,
    figure: impl Fn(&Round) -> Option<f64>,
) -> Result<f64, String> {
    if results.skipped.contains_key(&system) {
        return Err(absent(results, system, vcpus));
    }
    results
        .summary(system, vcpus, figure)
        .map(|summary| summary.median)
        .ok_or_else(|| absent(results, system, vcpus))
}

fn close_rate(round: &Round) -> Option<f64> {
    Some(round.close.result.rate())
}

fn keepalive_rate(round: &Round) -> Option<f64> {
    Some(round.keepalive.result.rate())
}

fn ab_rate(round: &Round) -> Option<f64> {
    Some(round.ab.result.rate)
}

fn close_p99(round: &Round) -> Option<f64> {
    round.close.result.percentile(99.0)
}

/// The medians of the cost, each over the rounds on its own (so the parts need not add up
/// exactly to the total when there are more than two rounds).
fn median_cost(results: &Results, system: System, vcpus: u32) -> Result<Cost, String> {
    let part =
        |pick: fn(Cost) -> f64| median(results, system, vcpus, |round| close_cost(round).map(pick));
    Ok(Cost {
        vcpus: part(|cost| cost.vcpus)?,
        outside: part(|cost| cost.outside)?,
        total: part(|cost| cost.total)?,
    })
}

/// The most `Connection: close` conn/s the host's cores could carry at a row's cost, and how
/// much of it the row reached.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ceiling {
    pub cost: Cost,
    /// Connections per second.
    pub ceiling: f64,
    pub rate: f64,
    pub reached_percent: f64,
}

pub fn ceiling(
    results: &Results,
    system: System,
    vcpus: u32,
    host_cores: usize,
) -> Result<Ceiling, String> {
    let cost = median_cost(results, system, vcpus)?;
    let rate = median(results, system, vcpus, close_rate)?;
    if cost.total <= 0.0 {
        return Err(format!(
            "{} cost no host CPU that was measured",
            system.name()
        ));
    }
    let ceiling = host_cores as f64 * 1e6 / cost.total;
    Ok(Ceiling {
        cost,
        ceiling,
        rate,
        reached_percent: rate / ceiling * 100.0,
    })
}

/// A Unisock system's `Connection: close` rate against so many times a baseline's, and what
/// that rate would ask of the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloseTarget {
    pub wanted: f64,
    pub baseline_rate: f64,
    /// `wanted` times the baseline's rate.
    pub target: f64,
    pub measured: f64,
    pub ratio: f64,
    pub met: bool,
    /// Unisock's own cost at its measured rate.
    pub cost: Cost,
    /// The host cores the work outside the guest would take at the target rate, on the
    /// assumption that a connection costs there what it cost in this run.
    pub outside_cores: f64,
    pub host_cores: usize,
    /// The vCPU microseconds per connection the rest of the host's cores leave at the target
    /// rate; `None` when the work outside the guest alone takes more than all of them.
    pub vcpu_us_left: Option<f64>,
}

pub fn close_target(
    results: &Results,
    (system, wanted): (System, f64),
    baseline: System,
    vcpus: u32,
    host_cores: usize,
) -> Result<CloseTarget, String> {
    let measured = median(results, system, vcpus, close_rate)?;
    let cost = median_cost(results, system, vcpus)?;
    let baseline_rate = median(results, baseline, vcpus, close_rate)?;
    if baseline_rate <= 0.0 {
        return Err(format!("{} completed no connection", baseline.name()));
    }
    let target = wanted * baseline_rate;
    let outside_cores = cost.outside * target / 1e6;
    let cores_left = host_cores as f64 - outside_cores;
    Ok(CloseTarget {
        wanted,
        baseline_rate,
        target,
        measured,
        ratio: measured / baseline_rate,
        met: measured >= target,
        cost,
        outside_cores,
        host_cores,
        vcpu_us_left: (cores_left >= 0.0).then(|| cores_left * 1e6 / target),
    })
}

fn yes_no(met: bool) -> &'static str {
    if met { "yes" } else { "no" }
}

fn met_words(met: bool) -> &'static str {
    if met { "met" } else { "not met" }
}

fn vcpu_words(vcpus: u32) -> String {
    if vcpus == 1 {
        "1 vCPU".into()
    } else {
        format!("{vcpus} vCPUs")
    }
}

/// The `bench-compare-ceiling:` line of every system and vCPU count.
pub fn ceiling_lines(results: &Results, host_cores: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for &vcpus in &results.settings.vcpus {
        for system in System::ALL {
            let prefix = format!(
                "bench-compare-ceiling: system={} vcpus={vcpus}",
                system.name()
            );
            lines.push(match ceiling(results, system, vcpus, host_cores) {
                Ok(row) => format!(
                    "{prefix} host_us_per_conn={:.0} vcpu_us_per_conn={:.0} outside_guest_us_per_conn={:.0} \
                     ceiling={:.0} rate={:.0} reached_pct={:.0} host_cores={host_cores}",
                    row.cost.total,
                    row.cost.vcpus,
                    row.cost.outside,
                    row.ceiling,
                    row.rate,
                    row.reached_percent
                ),
                Err(reason) => format!("{prefix} skipped=\"{reason}\""),
            });
        }
    }
    lines
}

/// The `bench-compare-target:` line of every Unisock system, baseline and vCPU count, for the
/// `Connection: close` rate.
pub fn target_lines(results: &Results, host_cores: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for &vcpus in &results.settings.vcpus {
        for (system, wanted) in CLOSE_TARGETS {
            for &baseline in system.baselines() {
                let prefix = format!(
                    "bench-compare-target: system={} baseline={} vcpus={vcpus}",
                    system.name(),
                    baseline.name()
                );
                let target = close_target(results, (system, wanted), baseline, vcpus, host_cores);
                lines.push(match target {
                    Ok(target) => format!(
                        "{prefix} target={:.0} measured={:.0} ratio={:.2} wanted={} met={} \
                         outside_guest_cores_at_target={:.2} host_cores={host_cores} \
                         vcpu_us_per_conn={:.0} vcpu_us_per_conn_left={}",
                        target.target,
                        target.measured,
                        target.ratio,
                        target.wanted,
                        yes_no(target.met),
                        target.outside_cores,
                        target.cost.vcpus,
                        target
                            .vcpu_us_left
                            .map_or("none".to_string(), |left| format!("{left:.0}")),
                    ),
                    Err(reason) => format!("{prefix} skipped=\"{reason}\""),
                });
            }
        }
    }
    lines
}

/// `text` in lines of at most `width` columns (a longer word stands alone), the first line
/// starting with `first`, the others with `rest`.
fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(line);
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    lines.push(line);
    lines.join("\n")
}

fn bullet(text: &str) -> String {
    wrap(text, "- ", "  ", WIDTH)
}

/// What the target rate would ask of the host, for the report.
fn room_words(target: &CloseTarget) -> String {
    let start = format!(
        "At {:.0} conn/s, Unisock's work outside the guest ({:.0} us per connection: QEMU's \
         main loop and other threads, wrk, the backend) alone would take {:.2} cores",
        target.target, target.cost.outside, target.outside_cores
    );
    match target.vcpu_us_left {
        None => format!(
            "{start}, more than the host's {}: the target cannot be reached on this host however \
             fast the guest is.",
            target.host_cores
        ),
        Some(left) => format!(
            "{start} of the host's {}, leaving {:.2} for the vCPUs: {left:.0} vCPU-us per \
             connection, against the {:.0} measured.",
            target.host_cores,
            target.host_cores as f64 - target.outside_cores,
            target.cost.vcpus
        ),
    }
}

/// The "Against the targets" block of the BENCHMARKS.md section.
pub fn block(results: &Results, host_cores: usize) -> String {
    let mut paragraphs = vec![wrap(
        &format!(
            "Against the targets (medians over the rounds, of the `Connection: close` wrk run \
             unless said otherwise; the command computes every figure and verdict here from \
             the measurements above, with the host's {host_cores} cores):"
        ),
        "",
        "",
        WIDTH,
    )];
    for &vcpus in &results.settings.vcpus {
        let mut bullets = vec![format!("At {}:", vcpu_words(vcpus))];
        for (system, wanted) in CLOSE_TARGETS {
            for &baseline in system.baselines() {
                let claim = format!(
                    "{} `Connection: close` conn/s at least {wanted}x {}'s:",
                    system.name(),
                    baseline.name()
                );
                let text =
                    match close_target(results, (system, wanted), baseline, vcpus, host_cores) {
                        Err(reason) => format!("{claim} no figure, {reason}."),
                        Ok(target) => {
                            let ab = match (
                                median(results, system, vcpus, ab_rate),
                                median(results, baseline, vcpus, ab_rate),
                            ) {
                                (Ok(ours), Ok(theirs)) if theirs > 0.0 => {
                                    format!("; ab {:.2}x", ours / theirs)
                                }
                                _ => "; ab: no figure".to_string(),
                            };
                            format!(
                                "{claim} {}, {:.0} against {:.0} ({:.2}x{ab}). {}",
                                met_words(target.met),
                                target.measured,
                                target.baseline_rate,
                                target.ratio,
                                room_words(&target)
                            )
                        }
                    };
                bullets.push(bullet(&text));
            }
        }
        for (system, wanted) in KEEPALIVE_TARGETS {
            for &baseline in system.baselines() {
                let claim = format!(
                    "{} keep-alive req/s at least {wanted}x {}'s:",
                    system.name(),
                    baseline.name()
                );
                let text = match (
                    median(results, system, vcpus, keepalive_rate),
                    median(results, baseline, vcpus, keepalive_rate),
                ) {
                    (Err(reason), _) | (_, Err(reason)) => format!("{claim} no figure, {reason}."),
                    (Ok(_), Ok(theirs)) if theirs <= 0.0 => {
                        format!("{claim} no figure, {} answered nothing.", baseline.name())
                    }
                    (Ok(ours), Ok(theirs)) => format!(
                        "{claim} {}, {ours:.0} against {theirs:.0} ({:.2}x).",
                        met_words(ours >= wanted * theirs),
                        ours / theirs
                    ),
                };
                bullets.push(bullet(&text));
            }
        }
        for (system, _) in CLOSE_TARGETS {
            for &baseline in system.baselines() {
                let claim = format!("{} p99 at most {}'s:", system.name(), baseline.name());
                let text = match (
                    median(results, system, vcpus, close_p99),
                    median(results, baseline, vcpus, close_p99),
                ) {
                    (Err(reason), _) | (_, Err(reason)) => format!("{claim} no figure, {reason}."),
                    (Ok(ours), Ok(theirs)) => format!(
                        "{claim} {}, {ours:.2} ms against {theirs:.2} ms.",
                        met_words(ours <= theirs)
                    ),
                };
                bullets.push(bullet(&text));
            }
        }
        // A blank line first: a line right after a list item would continue it.
        bullets.push(String::new());
        bullets.push(wrap(
            &format!(
                "Host CPU per `Connection: close` connection at {} (vCPU threads, plus QEMU's \
                 main loop and other threads, wrk and the backend outside the guest), and the \
                 most conn/s the host's {host_cores} cores could carry at that cost:",
                vcpu_words(vcpus)
            ),
            "",
            "",
            WIDTH,
        ));
        for system in System::ALL {
            let text = match ceiling(results, system, vcpus, host_cores) {
                Err(reason) => format!("{}: no figure, {reason}.", system.name()),
                Ok(row) => format!(
                    "{}: {:.0} us ({:.0} in the vCPUs, {:.0} outside the guest), a ceiling of \
                     {:.0} conn/s; it reached {:.0}, {:.0}% of it.",
                    system.name(),
                    row.cost.total,
                    row.cost.vcpus,
                    row.cost.outside,
                    row.ceiling,
                    row.rate,
                    row.reached_percent
                ),
            };
            bullets.push(bullet(&text));
        }
        paragraphs.push(bullets.join("\n"));
    }
    paragraphs.join("\n\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::guest::QemuCpu;
    use super::super::load::{AbResult, WrkResult};
    use super::super::{CpuUse, Run, Settings};
    use super::*;

    /// Host CPU seconds of a run: vCPUs, QEMU I/O, other QEMU threads, wrk, backend.
    type Seconds = [f64; 5];

    fn wrk(rate: f64, p99: f64, cpu: Seconds) -> Run<WrkResult> {
        let [vcpus, io_thread, other, load_generator, backend] = cpu;
        Run {
            result: WrkResult {
                requests: (rate * 10.0) as u64,
                seconds: 10.0,
                errors: 0,
                latency: vec![(50.0, p99 / 2.0), (99.0, p99)],
            },
            cpu: CpuUse {
                qemu: QemuCpu {
                    vcpus,
                    io_thread,
                    other,
                },
                load_generator,
                backend,
            },
        }
    }

    /// A round of 10-second runs: `close` conn/s at `cpu`, `keepalive` req/s, `ab` conn/s.
    fn round(close: f64, keepalive: f64, ab: f64, p99: f64, cpu: Seconds) -> Round {
        Round {
            close: wrk(close, p99, cpu),
            keepalive: wrk(keepalive, p99, [0.0; 5]),
            ab: Run {
                result: AbResult {
                    rate: ab,
                    complete: (ab * 10.0) as u64,
                    errors: 0,
                },
                cpu: CpuUse::default(),
            },
            large: None,
        }
    }

    fn results(rounds: Vec<((System, u32), Vec<Round>)>) -> Results {
        Results {
            settings: Settings {
                rounds: 1,
                seconds: 10,
                vcpus: vec![2],
                concurrency: 64,
                load_threads: 2,
                memory: "512M".into(),
                cpu_model: "max".into(),
                warm_up_seconds: 1,
            },
            rounds: rounds.into_iter().collect(),
            skipped: BTreeMap::new(),
        }
    }

    /// 10 000 connections in 10 s costing 1 s of vCPUs (100 us each) and 1 s outside the
    /// guest (0.5 + 0.1 + 0.3 + 0.1: 100 us each).
    const RESPONDER_CPU: Seconds = [1.0, 0.5, 0.1, 0.3, 0.1];

    fn example() -> Results {
        results(vec![
            (
                (System::UnisockResponder, 2),
                vec![round(1000.0, 2000.0, 1200.0, 5.0, RESPONDER_CPU)],
            ),
            (
                (System::NginxStatic, 2),
                vec![round(200.0, 900.0, 100.0, 50.0, [2.0, 0.2, 0.0, 0.1, 0.0])],
            ),
            (
                (System::UnisockProxy, 2),
                vec![round(600.0, 5000.0, 600.0, 30.0, [1.2, 0.6, 0.0, 0.3, 0.3])],
            ),
            (
                (System::NginxProxy, 2),
                vec![round(
                    100.0,
                    1000.0,
                    100.0,
                    20.0,
                    [1.0, 0.1, 0.0, 0.05, 0.05],
                )],
            ),
        ])
    }

    #[test]
    fn the_ceiling_is_the_host_cores_over_the_cost_of_a_connection() {
        let results = example();
        let row = ceiling(&results, System::UnisockResponder, 2, 2).unwrap();
        assert!((row.cost.vcpus - 100.0).abs() < 1e-9);
        assert!((row.cost.outside - 100.0).abs() < 1e-9);
        assert!((row.cost.total - 200.0).abs() < 1e-9);
        assert!((row.ceiling - 10_000.0).abs() < 1e-6);
        assert!((row.reached_percent - 10.0).abs() < 1e-9);
        assert_eq!(
            ceiling_lines(&results, 2)[0],
            "bench-compare-ceiling: system=unisock-responder vcpus=2 host_us_per_conn=200 \
             vcpu_us_per_conn=100 outside_guest_us_per_conn=100 ceiling=10000 rate=1000 \
             reached_pct=10 host_cores=2"
        );
    }

    #[test]
    fn the_cost_is_the_median_over_the_rounds() {
        let cheap = round(1000.0, 1.0, 1.0, 1.0, [0.5, 0.5, 0.0, 0.0, 0.0]);
        let middle = round(1000.0, 1.0, 1.0, 1.0, [1.0, 1.0, 0.0, 0.0, 0.0]);
        let dear = round(1000.0, 1.0, 1.0, 1.0, [4.0, 5.0, 0.0, 0.0, 0.0]);
        let results = results(vec![((System::NginxStatic, 2), vec![dear, cheap, middle])]);
        let row = ceiling(&results, System::NginxStatic, 2, 4).unwrap();
        assert!((row.cost.total - 200.0).abs() < 1e-9);
        assert!((row.ceiling - 20_000.0).abs() < 1e-6);
    }

    #[test]
    fn a_target_the_work_outside_the_guest_alone_exceeds_cannot_be_reached() {
        let results = example();
        // 10x nginx-static's 200 conn/s is 2000; 100 us outside the guest each is 0.2 cores.
        let target = close_target(&results, CLOSE_TARGETS[0], System::NginxStatic, 2, 2).unwrap();
        assert!((target.target - 2000.0).abs() < 1e-9);
        assert!((target.ratio - 5.0).abs() < 1e-9);
        assert!(!target.met);
        assert!((target.outside_cores - 0.2).abs() < 1e-9);
        // 1.8 cores left at 2000 conn/s: 900 vCPU-us per connection.
        assert!((target.vcpu_us_left.unwrap() - 900.0).abs() < 1e-6);
        assert_eq!(
            target_lines(&results, 2)[0],
            "bench-compare-target: system=unisock-responder baseline=nginx-static vcpus=2 \
             target=2000 measured=1000 ratio=5.00 wanted=10 met=no \
             outside_guest_cores_at_target=0.20 host_cores=2 vcpu_us_per_conn=100 \
             vcpu_us_per_conn_left=900"
        );

        // The proxy: 5x nginx-proxy's 100 is 500, met by 600; 200 us outside the guest each
        // would take 0.1 cores.
        let proxy = close_target(&results, CLOSE_TARGETS[1], System::NginxProxy, 2, 2).unwrap();
        assert!(proxy.met);
        assert!((proxy.outside_cores - 0.1).abs() < 1e-9);

        // A baseline ten times faster asks for 20 000 conn/s: 2 cores outside the guest, more
        // than a 1-core host has, whatever the guest costs.
        let mut faster = example();
        faster.rounds.insert(
            (System::NginxStatic, 2),
            vec![round(2000.0, 1.0, 1.0, 1.0, [1.0; 5])],
        );
        let target = close_target(&faster, CLOSE_TARGETS[0], System::NginxStatic, 2, 1).unwrap();
        assert_eq!(target.vcpu_us_left, None);
        assert!(target_lines(&faster, 1)[0].ends_with(
            "outside_guest_cores_at_target=2.00 host_cores=1 vcpu_us_per_conn=100 \
             vcpu_us_per_conn_left=none"
        ));
        let text = block(&faster, 1)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text.contains(
            "would take 2.00 cores, more than the host's 1: the target cannot be reached on \
             this host however fast the guest is."
        ));
    }

    #[test]
    fn the_block_states_every_target_with_its_figures() {
        let text = block(&example(), 2);
        // Joined again, the wrapping aside.
        let prose = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for sentence in [
            "At 2 vCPUs:",
            "unisock-responder `Connection: close` conn/s at least 10x nginx-static's: not met, \
             1000 against 200 (5.00x; ab 12.00x).",
            "would take 0.20 cores of the host's 2, leaving 1.80 for the vCPUs: 900 vCPU-us per \
             connection, against the 100 measured.",
            "unisock-proxy `Connection: close` conn/s at least 5x nginx-proxy's: met, 600 \
             against 100 (6.00x; ab 6.00x).",
            "unisock-proxy keep-alive req/s at least 5x nginx-proxy's: met, 5000 against 1000 \
             (5.00x).",
            "unisock-responder p99 at most nginx-static's: met, 5.00 ms against 50.00 ms.",
            "unisock-proxy p99 at most nginx-proxy's: not met, 30.00 ms against 20.00 ms.",
            "unisock-responder: 200 us (100 in the vCPUs, 100 outside the guest), a ceiling of \
             10000 conn/s; it reached 1000, 10% of it.",
        ] {
            assert!(prose.contains(sentence), "no `{sentence}` in:\n{text}");
        }
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "too long: {line}");
        }
    }

    #[test]
    fn a_missing_system_is_named_not_computed() {
        let mut results = example();
        results
            .skipped
            .insert(System::HaproxyProxy, "no haproxy in the guest".into());
        let prose = block(&results, 2)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(prose.contains(
            "unisock-proxy `Connection: close` conn/s at least 5x haproxy-proxy's: no figure, \
             haproxy-proxy was skipped: no haproxy in the guest."
        ));
        assert!(prose.contains(
            "unisock-proxy p99 at most haproxy-proxy's: no figure, haproxy-proxy was skipped: \
             no haproxy in the guest."
        ));
        assert!(prose.contains("haproxy-proxy: no figure, haproxy-proxy was skipped"));
        assert!(
            target_lines(&results, 2).contains(
                &"bench-compare-target: system=unisock-proxy baseline=haproxy-proxy vcpus=2 \
              skipped=\"haproxy-proxy was skipped: no haproxy in the guest\""
                    .to_string()
            )
        );
        // No round at all, and no reason it was skipped either.
        results.skipped.clear();
        results.rounds.remove(&(System::NginxStatic, 2));
        assert!(
            ceiling_lines(&results, 2).contains(
                &"bench-compare-ceiling: system=nginx-static vcpus=2 \
              skipped=\"nginx-static has no figure at 2 vCPUs\""
                    .to_string()
            )
        );
    }

    #[test]
    fn wrapping_keeps_every_word_within_the_width() {
        let text = "one two three four five six seven";
        assert_eq!(
            wrap(text, "- ", "  ", 13),
            "- one two\n  three four\n  five six\n  seven"
        );
        assert_eq!(wrap("unbreakable", "- ", "  ", 4), "- unbreakable");
    }
}
