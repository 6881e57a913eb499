//! `selftest=partition`: every core runs the partition scenarios (`net::partition::self_test`) on its real per-core loop instead of the network services; the bootstrap processor prints one line per scenario and exits with success only if all passed.

use core::fmt::Write;

use alloc::string::String;
use unisock_kernel::config::SelfTestKind;
use unisock_kernel::net::partition::self_test::{ScenarioResult, SelfTest, Sizes};
use unisock_kernel::net::rfd::CoreId;
use unisock_kernel::runtime::Platform;
use unisock_kernel::time::Instant;

use crate::clock;
use crate::exit::{ExitCode, exit, halt_forever};

/// The test every core joins; set by the bootstrap processor once it knows how many cores
/// came up.
static SELF_TEST: spin::Once<SelfTest> = spin::Once::new();

/// The machine as the self-test's loops see it: the TSC clock. The loops poll without
/// halting, so no core ever needs a wake.
#[derive(Clone, Copy)]
struct PollingPlatform;

impl Platform for PollingPlatform {
    fn now(&self) -> Instant {
        clock::now()
    }

    fn wake(&self, _core: CoreId) {}

    fn halt_until(&self, _deadline: Option<Instant>) {
        core::hint::spin_loop();
    }
}

/// The bootstrap processor's part: runs every scenario with the other `cpus - 1` cores,
/// prints the results and exits.
pub fn run(kind: SelfTestKind, cpus: u32) -> ! {
    let SelfTestKind::Partition = kind;
    let test = SELF_TEST.call_once(|| SelfTest::new(cpus as usize, Sizes::default()));
    let sizes = test.sizes();
    println!(
        "selftest: partition start cpus={cpus} passive={} active={} concurrency={}",
        sizes.passive, sizes.active, sizes.concurrency
    );
    let passed = test.run(PollingPlatform, print_result);
    if passed {
        println!("selftest: partition passed cpus={cpus}");
        exit(ExitCode::Success)
    }
    println!("selftest: partition FAILED cpus={cpus}");
    exit(ExitCode::Failure)
}

/// An application processor's part: waits for the bootstrap processor to set the test up,
/// runs its share of every scenario, then halts.
pub fn serve(index: u32) -> ! {
    let test = SELF_TEST.wait();
    if (index as usize) < test.cores() {
        test.serve(index as usize, PollingPlatform);
    }
    halt_forever()
}

fn print_result(result: &ScenarioResult) {
    let mut line = String::new();
    let _ = write!(
        line,
        "selftest: partition scenario={} cpus={} connections={} completed={} forwarded={} fallbacks={} ring_drops={} lost={} failures={} accepted={:?} fallbacks_per_core={:?} elapsed_ms={}",
        result.kind.name(),
        result.cores,
        result.planned,
        result.completed,
        result.forwarded,
        result.fallbacks,
        result.ring_drops,
        result.lost(),
        result.failures,
        result.accepted_per_core,
        result.fallbacks_per_core,
        result.elapsed.as_millis(),
    );
    if result.passed() {
        println!("{line} ok");
        return;
    }
    let _ = write!(line, " FAILED:");
    for (index, violation) in result.violations.iter().enumerate() {
        let separator = if index == 0 { " " } else { ", " };
        let _ = write!(line, "{separator}{}", violation.describe());
    }
    println!("{line}");
    for failure in &result.first_failures {
        println!(
            "selftest: partition scenario={} failure {failure}",
            result.kind.name()
        );
    }
}
