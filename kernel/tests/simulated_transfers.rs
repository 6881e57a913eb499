//! Whole-stack runs in the simulator: over many seeds and sizes, every byte arrives once and in order, both sides close, nothing leaks.
//!
//! The default run is a few seconds. More:
//! - `UNISOCK_SIM_SEEDS=500 cargo test -p unisock-kernel --release --test simulated_transfers`
//!   widens the impaired sweep to 500 seeds per size;
//! - `cargo test -p unisock-kernel --release --test simulated_transfers -- --ignored` runs the
//!   long sweep (more seeds, sizes up to 4 MB);
//! - a failure prints its seed and the command that replays it exactly:
//!   `UNISOCK_SIM_SEED=<seed> UNISOCK_SIM_SIZE=<bytes> UNISOCK_SIM_CONNECTIONS=<n>
//!   UNISOCK_SIM_CLIENT_HOSTS=<h> cargo test -p unisock-kernel --test simulated_transfers replay`.

mod simulator;

use std::panic::{AssertUnwindSafe, catch_unwind};

use simulator::transfer::{self, TransferPlan, TransferReport};
use simulator::{Impairments, Rng};

fn environment_number(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

/// The impairments of an impaired run: a function of the seed alone, so the seed replays it.
fn impairments_for(seed: u64) -> Impairments {
    Impairments::random(&mut Rng::new(seed ^ 0x5eed_1a55_0000_0000))
}

/// Run one plan; on failure (an error or a panic inside the stack) panic with the seed and the
/// command that replays it.
fn run_or_report(plan: TransferPlan) -> TransferReport {
    let outcome = catch_unwind(AssertUnwindSafe(|| transfer::run(&plan)));
    let error = match outcome {
        Ok(Ok(report)) => return report,
        Ok(Err(error)) => error,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            format!("panic: {message}")
        }
    };
    panic!(
        "simulation failed: seed={} size={} connections={} client_hosts={} server_closes_first={} \
         impairments={:?}\n\
         {error}\nreplay: UNISOCK_SIM_SEED={} UNISOCK_SIM_SIZE={} UNISOCK_SIM_CONNECTIONS={} \
         UNISOCK_SIM_CLIENT_HOSTS={} cargo test -p unisock-kernel --test simulated_transfers replay",
        plan.seed,
        plan.size,
        plan.connections,
        plan.client_hosts,
        plan.server_closes_first,
        plan.impairments,
        plan.seed,
        plan.size,
        plan.connections,
        plan.client_hosts
    );
}

fn impaired_plan(seed: u64, size: u64, connections: usize) -> TransferPlan {
    TransferPlan {
        seed,
        size,
        connections,
        client_hosts: 1,
        impairments: impairments_for(seed),
        hostile: None,
        // Half the seeds close HTTP/1.0 style (server first), half with a client half-close.
        server_closes_first: seed % 2 == 1,
    }
}

#[test]
fn a_clean_wire_carries_every_size() {
    for size in [
        1, 2, 100, 1459, 1460, 1461, 65_535, 65_536, 1_000_000, 4_000_000,
    ] {
        let report = run_or_report(TransferPlan {
            seed: size,
            size,
            connections: 1,
            client_hosts: 1,
            impairments: Impairments::clean(),
            hostile: None,
            server_closes_first: size % 2 == 0,
        });
        assert_eq!(report.wire.frames_lost, 0);
    }
}

#[test]
fn an_impaired_wire_still_carries_every_byte_once_and_in_order() {
    let seeds = environment_number("UNISOCK_SIM_SEEDS").unwrap_or(12);
    for size in [1, 1000, 20_000, 200_000] {
        for seed in 0..seeds {
            run_or_report(impaired_plan(seed, size, 1));
        }
    }
}

#[test]
fn megabytes_cross_an_impaired_wire() {
    for seed in 0..2 {
        run_or_report(impaired_plan(1000 + seed, 2_000_000, 1));
    }
}

#[test]
fn many_concurrent_connections_share_an_impaired_wire() {
    for seed in 0..4 {
        run_or_report(impaired_plan(2000 + seed, 3000, 40));
    }
}

#[test]
fn four_hosts_share_one_impaired_segment() {
    for seed in 0..3 {
        run_or_report(TransferPlan {
            client_hosts: 3,
            ..impaired_plan(3000 + seed, 20_000, 5)
        });
    }
}

#[test]
fn the_impairments_really_happen() {
    let plan = TransferPlan {
        seed: 7,
        size: 100_000,
        connections: 3,
        client_hosts: 2,
        impairments: Impairments {
            loss: 0.05,
            duplication: 0.05,
            reordering: 0.1,
            corruption: 0.02,
            ..impairments_for(7)
        },
        hostile: None,
        server_closes_first: true,
    };
    let wire = run_or_report(plan).wire;
    assert!(wire.frames_lost > 0, "{wire:?}");
    assert!(wire.frames_duplicated > 0, "{wire:?}");
    assert!(wire.frames_reordered > 0, "{wire:?}");
    assert!(wire.frames_corrupted > 0, "{wire:?}");
}

#[test]
fn replay() {
    let Some(seed) = environment_number("UNISOCK_SIM_SEED") else {
        return;
    };
    let size = environment_number("UNISOCK_SIM_SIZE").unwrap_or(1000);
    let connections = environment_number("UNISOCK_SIM_CONNECTIONS").unwrap_or(1) as usize;
    let client_hosts = environment_number("UNISOCK_SIM_CLIENT_HOSTS").unwrap_or(1) as usize;
    let report = run_or_report(TransferPlan {
        client_hosts,
        ..impaired_plan(seed, size, connections)
    });
    println!("seed {seed} size {size}: {report:?}");
}

#[test]
#[ignore = "long sweep: cargo test -p unisock-kernel --release --test simulated_transfers -- --ignored"]
fn long_sweep() {
    let seeds = environment_number("UNISOCK_SIM_SEEDS").unwrap_or(200);
    for size in [1, 7, 1460, 3000, 65_536, 300_000] {
        for seed in 0..seeds {
            run_or_report(impaired_plan(seed, size, 1));
        }
    }
    for seed in 0..seeds / 10 {
        run_or_report(impaired_plan(seed, 4_000_000, 1));
        run_or_report(impaired_plan(seed, 2000, 100));
    }
}
