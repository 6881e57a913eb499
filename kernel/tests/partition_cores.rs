//! The per-core partition on the host: N appliance cores as threads over a simulated multi-queue NIC, with exact data, RFD-consistent and random steering, and a core whose worker is stopped.
//!
//! `UNISOCK_PARTITION_SCALE=k` multiplies the number of connections (default 1, a few seconds).

mod partition;

use partition::harness::{Outcome, Scenario, Steering, StoppedWorker, run};
use unisock_kernel::net::partition::StackMode;

fn scale() -> usize {
    std::env::var("UNISOCK_PARTITION_SCALE")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

fn scenario(cores: usize, mode: StackMode, steering: Steering) -> Scenario {
    let mut scenario = Scenario::new(cores, mode, steering);
    // About 2400 passive and 1200 active connections whatever the core count.
    scenario.passive_per_core = 2400 * scale() / cores;
    scenario.active_per_core = 1200 * scale() / cores;
    // Up to 1024 connections in flight towards the appliance and 1024 from it.
    scenario.concurrency = 1024 / cores;
    scenario
}

/// Every planned connection completed with the right bytes, none failed.
fn assert_complete(scenario: &Scenario, outcome: &Outcome) {
    let total = outcome.total();
    eprintln!(
        "cores={} mode={:?} steering={:?} passive={} active={} elapsed={:?}\n  total {total:?}\n  accepted per core {:?}",
        scenario.cores,
        scenario.mode,
        scenario.steering,
        outcome.completed_passive,
        outcome.completed_active,
        outcome.elapsed,
        outcome.accepted_per_core,
    );
    assert!(!outcome.timed_out, "the run timed out: {outcome:?}");
    assert!(
        outcome.failures.is_empty(),
        "failures: {:?}",
        &outcome.failures[..outcome.failures.len().min(10)]
    );
    assert_eq!(
        outcome.completed_passive,
        (scenario.passive_per_core * scenario.cores) as u64
    );
    assert_eq!(
        outcome.completed_active,
        (scenario.active_per_core * scenario.cores) as u64
    );
}

#[test]
fn with_rss_steering_every_connection_completes_and_no_packet_crosses_cores() {
    for cores in [1, 2, 4, 8] {
        let scenario = scenario(cores, StackMode::Partitioned, Steering::Rss);
        let outcome = run(&scenario);
        assert_complete(&scenario, &outcome);
        let total = outcome.total();
        assert_eq!(total.forwarded_by_rfd, 0, "cores={cores}");
        assert_eq!(
            total.global_listener_fallbacks + total.global_listener_segments,
            0
        );
        assert_eq!(total.ring_drops, 0);
        assert!(
            total.received_from_rings <= total.arp_copies_sent,
            "only copies of ARP frames cross cores"
        );
        assert!(total.arrived_on_owner > 0);
        assert_eq!(total.segments_processed, total.arrived_on_owner);
        if cores > 1 {
            assert!(
                outcome
                    .accepted_per_core
                    .iter()
                    .all(|&accepted| accepted > 0),
                "RSS spreads the clients over every core: {:?}",
                outcome.accepted_per_core
            );
        }
    }
}

#[test]
fn with_random_steering_software_rfd_delivers_every_packet() {
    for cores in [2, 4, 8] {
        let scenario = scenario(cores, StackMode::Partitioned, Steering::Random);
        let outcome = run(&scenario);
        assert_complete(&scenario, &outcome);
        let total = outcome.total();
        assert!(total.forwarded_by_rfd > 0);
        assert_eq!(total.global_listener_fallbacks, 0);
        // Every TCP segment is processed once, on its owner. A frame that found its ring full
        // was dropped and counted (TCP sent it again); a few may still be in a ring when the
        // threads stop.
        let handed_over = total.forwarded_by_rfd + total.arp_copies_sent - total.ring_drops;
        let in_rings_at_end = handed_over - total.received_from_rings;
        let arrived = total.arrived_on_owner + total.forwarded_by_rfd;
        assert!(total.segments_processed <= arrived);
        assert!(total.segments_processed + in_rings_at_end + total.ring_drops >= arrived);
        // With random steering a segment arrives on its owner about once in `cores`.
        let share = total.arrived_on_owner as f64 / arrived as f64;
        assert!(
            (share - 1.0 / cores as f64).abs() < 0.1,
            "share on owner {share}"
        );
    }
}

#[test]
fn a_core_without_a_worker_has_its_connections_served_through_the_global_listener() {
    let mut scenario = scenario(4, StackMode::Partitioned, Steering::Rss);
    scenario.stopped_worker = Some(StoppedWorker {
        core: 1,
        after_accepts: 0,
    });
    let outcome = run(&scenario);
    assert_complete(&scenario, &outcome);
    let total = outcome.total();
    assert_eq!(outcome.accepted_per_core[1], 0);
    assert!(outcome.per_core[1].global_listener_fallbacks > 0);
    // Exactly the SYNs RSS gave core 1: one per connection it owns, none from other cores.
    assert_eq!(
        total.global_listener_fallbacks,
        outcome.per_core[1].global_listener_fallbacks
    );
    assert_eq!(
        outcome.accepted_per_core.iter().sum::<u64>(),
        (scenario.passive_per_core * scenario.cores) as u64
    );
}

#[test]
fn a_worker_that_stops_mid_run_loses_no_connection() {
    let mut scenario = scenario(4, StackMode::Partitioned, Steering::Rss);
    scenario.stopped_worker = Some(StoppedWorker {
        core: 2,
        after_accepts: 100,
    });
    let outcome = run(&scenario);
    assert_complete(&scenario, &outcome);
    assert!(outcome.accepted_per_core[2] >= 100);
    assert!(outcome.per_core[2].global_listener_fallbacks > 0);
    assert_eq!(
        outcome.accepted_per_core.iter().sum::<u64>(),
        (scenario.passive_per_core * scenario.cores) as u64
    );
}

#[test]
fn the_shared_table_baseline_completes_the_same_work() {
    for steering in [Steering::Rss, Steering::Random] {
        let scenario = scenario(4, StackMode::SharedTables, steering);
        let outcome = run(&scenario);
        assert_complete(&scenario, &outcome);
        assert_eq!(outcome.total().forwarded_by_rfd, 0);
    }
}

#[test]
fn affine_load_keeps_every_connection_on_its_generator_s_core() {
    let mut scenario = scenario(4, StackMode::Partitioned, Steering::Rss);
    scenario.affine_load = true;
    let outcome = run(&scenario);
    assert_complete(&scenario, &outcome);
    let expected = vec![scenario.passive_per_core as u64; scenario.cores];
    assert_eq!(outcome.accepted_per_core, expected);
    assert_eq!(outcome.total().forwarded_by_rfd, 0);
}

#[test]
fn random_steering_and_a_core_without_a_worker_together_lose_nothing() {
    let mut scenario = scenario(4, StackMode::Partitioned, Steering::Random);
    scenario.stopped_worker = Some(StoppedWorker {
        core: 3,
        after_accepts: 0,
    });
    let outcome = run(&scenario);
    assert_complete(&scenario, &outcome);
    let total = outcome.total();
    assert_eq!(outcome.accepted_per_core[3], 0);
    // A segment may take two hops: software RFD to its owner, then the global listener.
    assert!(total.forwarded_by_rfd > 0);
    assert!(outcome.per_core[3].global_listener_fallbacks > 0);
}
