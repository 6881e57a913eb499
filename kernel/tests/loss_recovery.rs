//! Loss recovery of a bulk sender in the simulator: how often it recovers by fast retransmit and how often it falls back to the retransmission timeout, over fixed seeds.
//!
//! `cargo test -p unisock-kernel --release --test loss_recovery -- --nocapture` prints, per
//! seed, the sender's timeouts and fast retransmits and the simulated completion time.

mod simulator;

use std::time::Duration;

use simulator::Impairments;
use simulator::transfer::{self, TransferPlan, TransferReport};
use unisock_kernel::net::tcp::TcpConfig;

/// The impairment seen under QEMU: 5 % loss, 1 % duplication, 25 % reordering, 20 ms each way.
fn lossy_reordering_wire() -> Impairments {
    Impairments {
        loss: 0.05,
        duplication: 0.01,
        reordering: 0.25,
        reorder_delay: Duration::from_millis(5),
        corruption: 0.0,
        delay: Duration::from_millis(20),
        jitter: Duration::ZERO,
    }
}

/// The seeds of the measurement; fixed, so every number below is reproducible.
const SEEDS: [u64; 4] = [1, 2, 3, 4];
/// Bytes of the one-way bulk transfer (client, host 0, to server, host 1).
const SIZE: u64 = 2_000_000;

struct Recovery {
    timeouts: u64,
    fast_retransmits: u64,
    simulated_time: Duration,
}

fn bulk_transfer(seed: u64) -> Recovery {
    let plan = TransferPlan {
        seed,
        size: SIZE,
        connections: 1,
        client_hosts: 1,
        impairments: lossy_reordering_wire(),
        hostile: None,
        server_closes_first: false,
    };
    // `run` checks that every byte arrives once and in order, and that both sides close.
    let report: TransferReport = transfer::run(&plan)
        .unwrap_or_else(|error| panic!("seed {seed}: transfer failed: {error}"));
    let sender = &report.tcp_counters[0];
    let recovery = Recovery {
        timeouts: sender.timeouts,
        fast_retransmits: sender.fast_retransmits,
        // The run ends when the network is quiet: after the closes and the 2*MSL of
        // TIME_WAIT, a constant that says nothing of the transfer.
        simulated_time: report
            .simulated_time
            .saturating_sub(TcpConfig::default().time_wait),
    };
    println!(
        "seed {seed}: {} bytes in {:?} simulated (to the last close, without TIME_WAIT), sender timeouts {}, fast retransmits {}, \
         of them undone as spurious {}, retransmitted segments {}, frames lost {}",
        SIZE,
        recovery.simulated_time,
        recovery.timeouts,
        recovery.fast_retransmits,
        sender.spurious_fast_retransmits,
        sender.retransmits,
        report.wire.frames_lost,
    );
    recovery
}

#[test]
fn a_bulk_sender_recovers_from_loss_mostly_without_timeouts() {
    let mut timeouts = 0;
    let mut fast_retransmits = 0;
    let mut simulated_time = Duration::ZERO;
    for seed in SEEDS {
        let recovery = bulk_transfer(seed);
        timeouts += recovery.timeouts;
        fast_retransmits += recovery.fast_retransmits;
        simulated_time += recovery.simulated_time;
    }
    let recoveries = timeouts + fast_retransmits;
    println!(
        "total: timeouts {timeouts}, fast retransmits {fast_retransmits}, simulated time {simulated_time:?}"
    );
    assert!(recoveries > 0, "the wire lost nothing?");
    // Measured over these seeds: without limited transmit (RFC 3042) 80 of 316 recoveries
    // (25 %) were timeouts, because a window of a few segments could not draw three duplicate
    // ACKs; with it, 25 of 275 (9 %); counting SACK-bearing ACKs as duplicates whatever
    // their window (RFC 6675), 17 of 276 (6 %); undoing spurious fast retransmits (RFC 3522,
    // RFC 4015), 16 of 279 (6 %). A timeout still ends recoveries whose retransmission is lost
    // again, so the bound leaves room for that, and fails on the old behaviour.
    assert!(
        timeouts * 10 <= recoveries,
        "{timeouts} of {recoveries} recoveries were timeouts: more than 10 %"
    );
    // The four transfers took 74.5 s before, 53.9 s without the undo of spurious fast
    // retransmits (a quarter of them are: 25 % reordering), 42.9 s with it.
    assert!(
        simulated_time <= Duration::from_secs(50),
        "the transfers took {simulated_time:?}, more than 50 s"
    );
}
