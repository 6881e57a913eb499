//! `selftest=partition`: the image runs the partition scenarios on all its cores (the real per-core loops, rings and clock over an in-memory multi-queue NIC) and exits with success only if every scenario passed; here with 2 and 4 cores, and every line's counters checked.

use std::time::Duration;

use unisock_e2e::{Boot, Outcome, Run};

const SCENARIOS: [&str; 4] = ["rss", "random", "no-worker", "stopped-worker"];

/// The key=value fields of a line such as `selftest: partition scenario=rss cpus=2 ...`.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
}

fn number(line: &str, key: &str) -> u64 {
    field(line, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

/// `accepted=[1, 2]`: the list of numbers after `key=`, up to the closing bracket.
fn list(line: &str, key: &str) -> Vec<u64> {
    let start = line
        .find(&format!("{key}=["))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        + key.len()
        + 2;
    let end = start + line[start..].find(']').expect("closing bracket");
    line[start..end]
        .split(", ")
        .map(|value| value.parse().expect("a number"))
        .collect()
}

fn self_test_on(cpus: u32) -> Run {
    let run = Boot::kernel()
        .cpus(cpus)
        .cmdline("selftest=partition")
        .timeout(Duration::from_secs(90))
        .run();
    assert_eq!(
        run.outcome,
        Outcome::Exited(0),
        "self-test failed:\n{}",
        run.output
    );
    run.expect_line(&format!("selftest: partition passed cpus={cpus}"));
    assert_eq!(
        run.lines_starting_with("selftest: partition scenario=")
            .filter(|line| line.contains("FAILED"))
            .count(),
        0,
        "{}",
        run.output
    );
    for scenario in SCENARIOS {
        let line = run.expect_line(&format!("selftest: partition scenario={scenario} "));
        eprintln!("{line}");
        assert!(line.ends_with(" ok"), "{line}");
        assert_eq!(number(line, "cpus"), u64::from(cpus), "{line}");
        let connections = number(line, "connections");
        assert!(connections >= 300, "{line}");
        assert_eq!(number(line, "completed"), connections, "{line}");
        assert_eq!(number(line, "lost"), 0, "{line}");
        assert_eq!(number(line, "failures"), 0, "{line}");
        let accepted = list(line, "accepted");
        let fallbacks = list(line, "fallbacks_per_core");
        assert_eq!(accepted.len(), cpus as usize, "{line}");
        assert_eq!(fallbacks.len(), cpus as usize, "{line}");
        match scenario {
            "rss" => {
                assert_eq!(number(line, "forwarded"), 0, "{line}");
                assert_eq!(number(line, "fallbacks"), 0, "{line}");
                assert_eq!(number(line, "ring_drops"), 0, "{line}");
                assert!(accepted.iter().all(|&count| count > 0), "{line}");
            }
            "random" => {
                assert!(number(line, "forwarded") > 0, "{line}");
                assert_eq!(number(line, "fallbacks"), 0, "{line}");
                assert!(accepted.iter().all(|&count| count > 0), "{line}");
            }
            "no-worker" => {
                assert_eq!(accepted[1], 0, "{line}");
                assert!(fallbacks[1] > 0, "{line}");
                assert_eq!(number(line, "fallbacks"), fallbacks[1], "{line}");
            }
            _ => {
                assert!(accepted[1] > 0, "{line}");
                assert!(fallbacks[1] > 0, "{line}");
            }
        }
    }
    run
}

#[test]
fn partition_self_test_passes_on_two_cpus() {
    self_test_on(2);
}

#[test]
fn partition_self_test_passes_on_four_cpus() {
    self_test_on(4);
}
