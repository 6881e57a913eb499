//! The scenarios of the partition self-test, their sizes and the checks that judge them.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::runtime::CoreSnapshot;

/// How the simulated NIC picks the receive queue of a frame sent to the appliance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steering {
    /// RSS: Toeplitz with the port-only key, then the port-XOR indirection table, the same
    /// that Receive Flow Deliver assumes. Non-TCP frames go to queue 0.
    Rss,
    /// Every frame to a random queue: only software RFD keeps connections on their owner.
    Random,
}

/// What a scenario sets out to show; each has its own checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScenarioKind {
    /// RSS steering: every connection completes and no segment crosses cores.
    Rss,
    /// Random steering: every connection completes, software RFD hands segments over.
    Random,
    /// Core 1 never listens: its SYNs go to the global listener, nothing is lost.
    NoWorker,
    /// Core 1's worker stops after a quarter of its share: the rest goes to the global
    /// listener, nothing is lost.
    StoppedWorker,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 4] = [
        ScenarioKind::Rss,
        ScenarioKind::Random,
        ScenarioKind::NoWorker,
        ScenarioKind::StoppedWorker,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Rss => "rss",
            ScenarioKind::Random => "random",
            ScenarioKind::NoWorker => "no-worker",
            ScenarioKind::StoppedWorker => "stopped-worker",
        }
    }

    pub(super) fn steering(self) -> Steering {
        match self {
            ScenarioKind::Random => Steering::Random,
            _ => Steering::Rss,
        }
    }

    /// The scenarios about a core without a worker need a second core to serve.
    pub(super) fn needs_two_cores(self) -> bool {
        matches!(self, ScenarioKind::NoWorker | ScenarioKind::StoppedWorker)
    }
}

/// The sizes of a run; the same for every scenario.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Connections the client hosts open to the appliance, spread over the cores.
    pub passive: usize,
    /// Connections the appliance opens to the backends, spread over the cores.
    pub active: usize,
    /// Connections in flight at once per client (client host or appliance core).
    pub concurrency: usize,
    pub request_len: usize,
    pub response_len: usize,
    /// Wall-clock time after which a scenario gives up.
    pub time_limit: Duration,
}

impl Default for Sizes {
    /// Small enough for a few seconds per scenario under QEMU's emulation.
    fn default() -> Self {
        Sizes {
            passive: 256,
            active: 128,
            concurrency: 16,
            request_len: 200,
            response_len: 700,
            time_limit: Duration::from_secs(20),
        }
    }
}

/// What one core did in one scenario.
#[derive(Clone, Debug, Default)]
pub(super) struct CoreReport {
    pub(super) completed_passive: u64,
    pub(super) completed_active: u64,
    pub(super) accepted: u64,
    pub(super) failures: Vec<String>,
    pub(super) loop_counters: CoreSnapshot,
}

/// A check of a scenario that did not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The time limit passed before every core was done.
    TimedOut,
    /// Some connection was reset, refused or answered with the wrong bytes.
    ConnectionsFailed,
    /// Fewer connections completed than planned.
    ConnectionsLost,
    /// Some core never reported (it did not come up, or hung).
    CoreMissing,
    /// RSS steering, yet software RFD handed segments to another core.
    RssForwarded,
    /// A SYN went to the global listener although every core serves.
    UnexpectedFallback,
    /// A ring was full under RSS steering, where only ARP copies cross cores.
    RingDrops,
    /// Some core accepted no connection although every core serves.
    IdleCore,
    /// Random steering, yet no segment was handed over.
    NothingForwarded,
    /// The core without a worker accepted connections.
    WorkerlessCoreAccepted,
    /// The SYNs core 1 owns once it has no worker did not go to the global listener, or
    /// SYNs of other cores did.
    MissingFallbacks,
    /// The stopped worker stopped before its accepts were done.
    StoppedEarly,
    /// The serving cores together did not accept every client connection exactly once.
    AcceptedCountDiffers,
}

impl Violation {
    pub fn describe(self) -> &'static str {
        match self {
            Violation::TimedOut => "timed out",
            Violation::ConnectionsFailed => "connections failed",
            Violation::ConnectionsLost => "connections lost",
            Violation::CoreMissing => "a core did not report",
            Violation::RssForwarded => "RSS steering forwarded segments",
            Violation::UnexpectedFallback => "the global listener was used with every core serving",
            Violation::RingDrops => "ring drops",
            Violation::IdleCore => "a core accepted nothing",
            Violation::NothingForwarded => "nothing forwarded",
            Violation::WorkerlessCoreAccepted => "core 1 accepted without a worker",
            Violation::MissingFallbacks => "the global listener did not take (only) core 1's SYNs",
            Violation::StoppedEarly => "core 1 stopped early",
            Violation::AcceptedCountDiffers => {
                "accepted count differs from the clients' connections"
            }
        }
    }
}

/// The outcome of one scenario over all cores, with its verdict.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    pub kind: ScenarioKind,
    pub cores: usize,
    pub planned: u64,
    pub completed: u64,
    /// Connections that failed (reset, refused, wrong bytes), with the first few causes.
    pub failures: u64,
    pub first_failures: Vec<String>,
    /// Segments software RFD handed to their owner over a ring.
    pub forwarded: u64,
    /// SYNs that went to the global listener.
    pub fallbacks: u64,
    pub ring_drops: u64,
    pub accepted_per_core: Vec<u64>,
    pub fallbacks_per_core: Vec<u64>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// The checks that failed; empty if the scenario passed.
    pub violations: Vec<Violation>,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Connections planned that did not complete with the right bytes.
    pub fn lost(&self) -> u64 {
        self.planned.saturating_sub(self.completed)
    }

    pub(super) fn evaluate(&mut self, sizes: &Sizes, cores: usize) {
        let mut violations = Vec::new();
        let mut check = |holds: bool, violation: Violation| {
            if !holds {
                violations.push(violation);
            }
        };
        check(!self.timed_out, Violation::TimedOut);
        check(self.failures == 0, Violation::ConnectionsFailed);
        check(self.completed == self.planned, Violation::ConnectionsLost);
        let passive = (sizes.passive / cores * cores) as u64;
        match self.kind {
            ScenarioKind::Rss => {
                check(self.forwarded == 0, Violation::RssForwarded);
                check(self.fallbacks == 0, Violation::UnexpectedFallback);
                check(self.ring_drops == 0, Violation::RingDrops);
                check(
                    self.accepted_per_core.iter().all(|&accepted| accepted > 0),
                    Violation::IdleCore,
                );
            }
            ScenarioKind::Random => {
                check(
                    cores == 1 || self.forwarded > 0,
                    Violation::NothingForwarded,
                );
                check(self.fallbacks == 0, Violation::UnexpectedFallback);
            }
            ScenarioKind::NoWorker => {
                check(
                    self.accepted_per_core[1] == 0,
                    Violation::WorkerlessCoreAccepted,
                );
                check(
                    self.fallbacks_per_core[1] > 0 && self.fallbacks == self.fallbacks_per_core[1],
                    Violation::MissingFallbacks,
                );
            }
            ScenarioKind::StoppedWorker => {
                check(
                    self.accepted_per_core[1] >= stop_after(sizes, cores) as u64,
                    Violation::StoppedEarly,
                );
                check(self.fallbacks_per_core[1] > 0, Violation::MissingFallbacks);
            }
        }
        if self.kind.needs_two_cores() {
            check(
                self.accepted_per_core.iter().sum::<u64>() == passive,
                Violation::AcceptedCountDiffers,
            );
        }
        self.violations = violations;
    }
}

/// After how many accepts core 1's worker stops in [`ScenarioKind::StoppedWorker`].
pub(super) fn stop_after(sizes: &Sizes, cores: usize) -> usize {
    sizes.passive / cores / 4
}
