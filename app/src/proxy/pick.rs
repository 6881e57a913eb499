//! The pick-a-backend phase: the balancer's choice among the pool's available backends not yet tried (health checks and passive ejection decide which are), a last resort when none is; and the failures that count against a backend's health.

use core::net::Ipv4Addr;

use unisock_kernel::time::Instant;

use super::health::FailureOutcome;
use super::settings::HealthProbe;
use super::worker::Worker;

/// The backend the next attempt goes to: the balancer's pick among the available backends
/// not in `tried`, or else the health board's last resort (counted); `None` when every
/// backend was tried.
pub(super) fn pick_backend(
    worker: &Worker,
    tried: &[usize],
    client_address: Ipv4Addr,
    now: Instant,
    checks_on: bool,
) -> Option<usize> {
    let counters = worker.statistics();
    let mut picked = worker.balancer().borrow_mut().pick(
        |backend| {
            worker.health().is_available(backend, now, checks_on) && !tried.contains(&backend)
        },
        client_address,
    );
    if picked.is_none() {
        picked = worker
            .health()
            .last_resort(now, checks_on, |backend| tried.contains(&backend));
        if picked.is_some() {
            counters.last_resort_attempts.increment();
        }
    }
    picked
}

/// Counts a failure that says the backend itself is broken (the callers choose which), and
/// an ejection that the pool's ejection share held back.
pub(super) fn record_backend_failure(worker: &Worker, backend: usize) {
    let settings = worker.settings();
    let checks_on = settings.pool.health.probe != HealthProbe::Off;
    let outcome = worker.health().record_failure(
        backend,
        worker.handle().now(),
        &settings.pool.ejection,
        checks_on,
    );
    if outcome == FailureOutcome::EjectionCapped {
        worker.statistics().ejections_capped.increment();
    }
}
