//! The image's partition self-test (`net::partition::self_test`) on host threads, one per core: the same scenarios and checks that `selftest=partition` runs on the real cores.

use std::sync::Arc;

use unisock_kernel::net::partition::self_test::{
    ScenarioKind, ScenarioResult, SelfTest, Sizes, Violation,
};
use unisock_kernel::net::rfd::CoreId;
use unisock_kernel::runtime::Platform;
use unisock_kernel::time::Instant;

/// The host's monotonic clock; the loops never halt, so wake and halt have nothing to do.
#[derive(Clone, Copy)]
struct HostPlatform {
    start: std::time::Instant,
}

impl Platform for HostPlatform {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    fn wake(&self, _core: CoreId) {}

    fn halt_until(&self, _deadline: Option<Instant>) {
        std::thread::yield_now();
    }
}

fn run(cores: usize, sizes: Sizes) -> (bool, Vec<ScenarioResult>) {
    let platform = HostPlatform {
        start: std::time::Instant::now(),
    };
    let test = Arc::new(SelfTest::new(cores, sizes));
    let others: Vec<_> = (1..cores)
        .map(|core| {
            let test = test.clone();
            std::thread::spawn(move || test.serve(core, platform))
        })
        .collect();
    let mut results = Vec::new();
    let passed = test.run(platform, |result| results.push(result.clone()));
    for thread in others {
        thread.join().expect("core thread");
    }
    for result in &results {
        eprintln!("{result:?}");
    }
    (passed, results)
}

#[test]
fn every_scenario_passes_on_two_and_four_cores() {
    for cores in [2, 4] {
        let (passed, results) = run(cores, Sizes::default());
        let kinds: Vec<_> = results.iter().map(|result| result.kind).collect();
        assert_eq!(kinds, ScenarioKind::ALL);
        assert!(passed, "cores={cores}: {results:?}");
        let rss = &results[0];
        assert_eq!((rss.forwarded, rss.fallbacks, rss.lost()), (0, 0, 0));
        assert!(results[1].forwarded > 0);
        assert!(results[2].fallbacks > 0 && results[3].fallbacks > 0);
    }
}

#[test]
fn one_core_runs_the_scenarios_that_need_no_second_core() {
    let (passed, results) = run(1, Sizes::default());
    assert!(passed, "{results:?}");
    let kinds: Vec<_> = results.iter().map(|result| result.kind).collect();
    assert_eq!(kinds, [ScenarioKind::Rss, ScenarioKind::Random]);
}

#[test]
fn a_time_limit_too_short_for_the_connections_fails_the_scenario() {
    let sizes = Sizes {
        time_limit: std::time::Duration::from_millis(1),
        ..Sizes::default()
    };
    let (passed, results) = run(2, sizes);
    assert!(!passed);
    assert!(results.iter().all(|result| {
        !result.passed()
            && result.timed_out
            && result.lost() > 0
            && result.violations.contains(&Violation::TimedOut)
    }));
}
