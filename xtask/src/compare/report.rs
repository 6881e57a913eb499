//! What `bench compare` prints and writes: the per-round lines, the table, the ratios and the
//! BENCHMARKS.md section (between marker comments, replaced whole by every run).

use std::fs;
use std::path::{Path, PathBuf};

use super::guest::System;
use super::statistics::Summary;
use super::targets;
use super::{Context, Results, Round};
use crate::Failure;

pub const BEGIN_MARKER: &str =
    "<!-- bench-compare:begin (written by cargo xtask bench compare) -->";
pub const END_MARKER: &str = "<!-- bench-compare:end -->";

/// One figure of a round, for the ratios.
type Figure<'a> = &'a dyn Fn(&Round) -> Option<f64>;

/// Microseconds of host CPU per connection of a run, by whom.
fn per_connection(seconds: f64, connections: u64) -> f64 {
    if connections == 0 {
        0.0
    } else {
        seconds * 1e6 / connections as f64
    }
}

/// The progress line of one boot.
pub fn round_line(system: System, vcpus: u32, round: u32, figures: &Round) -> String {
    let close = &figures.close;
    let large = figures
        .large
        .as_ref()
        .map_or("-".to_string(), |run| format!("{:.0}", run.result.rate()));
    format!(
        "round={round} vcpus={vcpus} system={} close={:.0} keepalive={:.0} ab={:.0} large_close={large} \
         p50_ms={:.2} p99_ms={:.2} p99.9_ms={:.2} errors={} cpu_us_per_conn: vcpus={:.0} qemu_io={:.0} load={:.0} backend={:.0}",
        system.name(),
        close.result.rate(),
        figures.keepalive.result.rate(),
        figures.ab.result.rate,
        close.result.percentile(50.0).unwrap_or(f64::NAN),
        close.result.percentile(99.0).unwrap_or(f64::NAN),
        close.result.percentile(99.9).unwrap_or(f64::NAN),
        figures.errors(),
        per_connection(close.cpu.qemu.vcpus, close.result.requests),
        per_connection(close.cpu.qemu.io_thread, close.result.requests),
        per_connection(close.cpu.load_generator, close.result.requests),
        per_connection(close.cpu.backend, close.result.requests),
    )
}

fn cell(summary: Option<Summary>, decimals: usize) -> String {
    match summary {
        None => "-".into(),
        Some(summary) if summary.count == 1 => format!("{:.*}", decimals, summary.median),
        Some(summary) => format!(
            "{:.*} ({:.*}-{:.*})",
            decimals, summary.median, decimals, summary.minimum, decimals, summary.maximum
        ),
    }
}

/// The figures of the close-connection wrk run that the table and plots show.
pub fn cpu_per_connection(round: &Round) -> (f64, f64, f64) {
    let run = &round.close;
    let connections = run.result.requests;
    (
        per_connection(run.cpu.qemu.vcpus, connections),
        per_connection(run.cpu.qemu.io_thread + run.cpu.qemu.other, connections),
        per_connection(run.cpu.load_generator, connections),
    )
}

/// The Markdown table: medians over the rounds, (min-max) when there are several.
pub fn table(results: &Results) -> String {
    let mut text = String::from(
        "| system | vCPUs | close conn/s (wrk) | close conn/s (ab) | keep-alive req/s | 16 KiB close conn/s | p50 ms | p99 ms | p99.9 ms | errors | host CPU us/conn: vCPUs / QEMU I/O / wrk |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for &vcpus in &results.settings.vcpus {
        for system in System::ALL {
            if let Some(reason) = results.skipped.get(&system) {
                text.push_str(&format!(
                    "| {} | {vcpus} | skipped: {reason} | | | | | | | | |\n",
                    system.name()
                ));
                continue;
            }
            let Some(rounds) = results.rounds.get(&(system, vcpus)) else {
                continue;
            };
            let summary = |figure: &dyn Fn(&Round) -> Option<f64>| {
                Summary::of(&rounds.iter().filter_map(figure).collect::<Vec<f64>>())
            };
            let cpu = |index: usize| {
                summary(&|round| {
                    let (vcpus, io, load) = cpu_per_connection(round);
                    Some([vcpus, io, load][index])
                })
                .map_or("-".into(), |summary| format!("{:.0}", summary.median))
            };
            text.push_str(&format!(
                "| {} | {vcpus} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |\n",
                system.name(),
                cell(summary(&|round| Some(round.close.result.rate())), 0),
                cell(summary(&|round| Some(round.ab.result.rate)), 0),
                cell(summary(&|round| Some(round.keepalive.result.rate())), 0),
                cell(
                    summary(&|round| round.large.as_ref().map(|run| run.result.rate())),
                    0
                ),
                cell(summary(&|round| round.close.result.percentile(50.0)), 2),
                cell(summary(&|round| round.close.result.percentile(99.0)), 2),
                cell(summary(&|round| round.close.result.percentile(99.9)), 2),
                rounds.iter().map(Round::errors).sum::<u64>(),
                cpu(0),
                cpu(1),
                cpu(2),
            ));
        }
    }
    text
}

/// Same-run ratios of Unisock to its Linux baselines, the figures worth quoting.
pub fn ratio_lines(results: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    for &vcpus in &results.settings.vcpus {
        for system in [System::UnisockResponder, System::UnisockProxy] {
            for &baseline in system.baselines() {
                let figures: [(&str, Figure); 3] = [
                    ("close", &|round| Some(round.close.result.rate())),
                    ("ab", &|round| Some(round.ab.result.rate)),
                    ("keepalive", &|round| Some(round.keepalive.result.rate())),
                ];
                let mut words = Vec::new();
                for (label, figure) in figures {
                    let ours = results.summary(system, vcpus, figure);
                    let theirs = results.summary(baseline, vcpus, figure);
                    if let (Some(ours), Some(theirs)) = (ours, theirs)
                        && theirs.median > 0.0
                    {
                        words.push(format!("{label}={:.2}", ours.median / theirs.median));
                    }
                }
                if !words.is_empty() {
                    lines.push(format!(
                        "bench-compare-ratio: {}/{} vcpus={vcpus} {}",
                        system.name(),
                        baseline.name(),
                        words.join(" ")
                    ));
                }
            }
        }
    }
    lines
}

/// The whole BENCHMARKS.md section, markers included; `host_cores` are the cores the host
/// shares among QEMU, the load generator and the backend.
pub fn section(
    results: &Results,
    context: &Context,
    plots: &[PathBuf],
    root: &Path,
    host_cores: usize,
) -> String {
    let settings = &results.settings;
    let plot_links: Vec<String> = plots
        .iter()
        .map(|path| {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            format!("![{relative}]({relative})")
        })
        .collect();
    let ratios = ratio_lines(results);
    let skipped: Vec<String> = results
        .skipped
        .iter()
        .map(|(system, reason)| {
            format!(
                "- `{}` was skipped: {reason}. No figure stands in for it.",
                system.name()
            )
        })
        .collect();
    let final_lines: Vec<String> = settings
        .vcpus
        .iter()
        .flat_map(|&vcpus| System::ALL.map(|system| results.final_line(system, vcpus)))
        .collect();
    format!(
        "{BEGIN_MARKER}
Run on {date} at commit {commit}, by

    sudo ROUNDS={rounds} DURATION={seconds} VCPUS={vcpus} cargo xtask bench compare

Machine: {machine}; load average {load_before} before, {load_after} after (other engineers'
builds and tests share it). {qemu}, TCG (`-accel tcg`, multi-threaded with more than one vCPU),
`-cpu {cpu_model}`, `-m {memory}`, q35 with qboot, one virtio-net queue pair per vCPU on a
multi-queue tap (`vhost=off`, `rss=on`) in the namespace `unisock-compare`. Linux guest:
{packages}. Load: `wrk -t{threads} -c{concurrency} -d{seconds}s --latency` with
`Connection: close` and with keep-alive, `ab -c{concurrency} -t{seconds}` (HTTP/1.0, no
keep-alive), all from the namespace after a {warm_up} s warm-up, on a freshly booted guest per
system, vCPU count and round; rounds interleaved, the system order rotated each round.
Bodies: Unisock's responder answers its fixed 19-byte body; nginx-static serves a 64-byte page
(`/`) and 16 KiB (`/large`); the proxies forward to nginx in the namespace (10.77.0.1:8080, the
same Debian nginx, a worker per host core) serving 64 bytes and 16 KiB. Each proxy is booted
twice per round: with a new backend connection per request (Unisock `pool.idle=0`, nginx
HTTP/1.0 upstream, HAProxy `http-server-close`) for the `Connection: close`, ab and 16 KiB
runs, and with pooled backend connections (Unisock `pool.idle=128`, nginx `keepalive 1024`,
HAProxy `http-reuse always`) for the keep-alive run, so that keep-alive is on both legs there.
Cells: median over {rounds} round(s), (min-max) when there are more.
Latency is wrk's, for the `Connection: close` run. Errors: every wrk socket error and non-2xx
response plus ab's failed requests, summed over all runs. Host CPU per connection is for the
`Connection: close` run: the vCPU threads (`CPU n/TCG`), QEMU's main loop (all virtio-net
work without vhost-net) and other QEMU threads, and wrk.

{table}
Same-run ratios (medians):

{ratio_block}
{skipped}
{plots}

The last lines of the output:

{final_block}

{targets}

What limits these numbers on this machine, and which to quote:
- Software emulation: every guest runs under TCG, which slows each instruction, and not
  uniformly: privileged instructions, MMIO and port I/O, interrupts and page-table changes
  leave the translated fast path and cost far more than plain arithmetic. A system that makes
  fewer of them (Unisock: no system calls, no context switches, polling instead of interrupts)
  gains more under TCG than it would on hardware; Linux pays for every syscall and IRQ. Quote
  the ratios between systems measured in the same run, not the absolute rates, and not as a
  prediction for KVM or metal.
- Shared cores: the vCPU threads, QEMU's main loop (which does every virtio-net copy here,
  as there is no vhost-net), wrk or ab, and the backend nginx all compete for the host's
  {host_cores} cores, with other jobs on top (see the load averages). With 2 vCPUs on a 2-core
  host the guest cannot get two full cores, so the 2-vCPU rows show the cost of a design at 2
  vCPUs, not its scaling.
- Both guests halt idle vCPUs (Unisock polls while busy and sleeps on `hlt` with interrupts
  armed when idle), so the vCPU time above is work, not spinning; QEMU's main-loop time is
  the virtio-net emulation each system's packets cost.
- The load generator is one process on the same host: when its CPU per connection is close to
  the guest's, the generator itself may be the limit of the faster system's row.
{END_MARKER}
",
        date = context.date,
        commit = context.commit,
        rounds = settings.rounds,
        seconds = settings.seconds,
        vcpus = settings
            .vcpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        machine = context.machine,
        load_before = context.load_before,
        load_after = context.load_after,
        qemu = context.qemu,
        cpu_model = settings.cpu_model,
        memory = settings.memory,
        packages = if context.linux_packages.is_empty() {
            "see target/linux-guest/packages.txt"
        } else {
            &context.linux_packages
        },
        threads = settings.load_threads,
        concurrency = settings.concurrency,
        warm_up = settings.warm_up_seconds,
        table = table(results),
        ratio_block = if ratios.is_empty() {
            "    (none: a system or its baseline has no figure)".to_string()
        } else {
            ratios
                .iter()
                .map(|line| format!("    {line}"))
                .collect::<Vec<_>>()
                .join("\n")
        },
        skipped = skipped.join("\n"),
        plots = plot_links.join("\n"),
        final_block = final_lines
            .iter()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n"),
        targets = targets::block(results, host_cores),
    )
}

/// `document` with the text between `begin` and `end` (markers included) replaced by
/// `section`, or with `section` appended under `heading` when the markers are not there yet.
/// Each bench that writes BENCHMARKS.md owns one such marked section.
pub fn replace_marked_section(
    document: &str,
    (begin_marker, end_marker): (&str, &str),
    heading: &str,
    section: &str,
) -> String {
    if let (Some(begin), Some(end)) = (document.find(begin_marker), document.find(end_marker))
        && begin < end
    {
        let after = end + end_marker.len();
        let rest = document[after..]
            .strip_prefix('\n')
            .unwrap_or(&document[after..]);
        return format!("{}{section}{rest}", &document[..begin]);
    }
    let separator = if document.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{document}{separator}## {heading}\n\n{section}")
}

/// The bench-compare section of `document` replaced by `section`.
pub fn replace_section(document: &str, section: &str) -> String {
    replace_marked_section(
        document,
        (BEGIN_MARKER, END_MARKER),
        "Unisock against nginx and HAProxy in a Linux guest (cargo xtask bench compare)",
        section,
    )
}

/// Rewrites the file at `path` with `replace(its text)`.
pub fn rewrite_file(path: &Path, replace: impl FnOnce(&str) -> String) -> Result<(), Failure> {
    let document = fs::read_to_string(path)
        .map_err(|error| Failure(format!("read {}: {error}", path.display())))?;
    fs::write(path, replace(&document))
        .map_err(|error| Failure(format!("write {}: {error}", path.display())))
}

pub fn update_benchmarks(path: &Path, section: &str) -> Result<(), Failure> {
    rewrite_file(path, |document| replace_section(document, section))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::Settings;
    use super::*;

    #[test]
    fn the_targets_come_after_the_last_lines_and_before_what_limits_them() {
        let results = Results {
            settings: Settings {
                rounds: 1,
                seconds: 10,
                vcpus: vec![1],
                concurrency: 64,
                load_threads: 2,
                memory: "512M".into(),
                cpu_model: "max".into(),
                warm_up_seconds: 2,
            },
            rounds: BTreeMap::new(),
            skipped: BTreeMap::from([(System::UnisockProxy, "no proxy= in the image".into())]),
        };
        let context = Context {
            date: "today".into(),
            commit: "abc1234".into(),
            machine: "3 cores".into(),
            qemu: "QEMU".into(),
            load_before: "0".into(),
            load_after: "0".into(),
            linux_packages: String::new(),
        };
        let text = section(&results, &context, &[], Path::new("/"), 3);
        let position = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("no `{needle}` in:\n{text}"))
        };
        assert!(text.starts_with(BEGIN_MARKER));
        assert!(text.ends_with(&format!("{END_MARKER}\n")));
        assert!(position("The last lines of the output:") < position("Against the targets"));
        assert!(position("bench-compare: system=haproxy-proxy") < position("Against the targets"));
        assert!(position("Against the targets") < position("What limits these numbers"));
        let prose = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(prose.contains("with the host's 3 cores"));
        assert!(text.contains("compete for the host's\n  3 cores"));
        assert!(prose.contains("no figure, unisock-proxy was skipped: no proxy= in the image."));
    }

    #[test]
    fn the_section_is_appended_once_then_replaced() {
        let document = "# Benchmarks\n\ntext\n";
        let first = replace_section(document, &format!("{BEGIN_MARKER}\nold\n{END_MARKER}\n"));
        assert!(first.starts_with(document));
        assert!(first.contains("old"));
        let second = replace_section(
            &format!("{first}## Later section\n"),
            &format!("{BEGIN_MARKER}\nnew\n{END_MARKER}\n"),
        );
        assert!(!second.contains("old"));
        assert!(second.contains("new"));
        assert_eq!(second.matches(BEGIN_MARKER).count(), 1);
        assert!(second.ends_with(&format!("{END_MARKER}\n## Later section\n")));
    }
}
