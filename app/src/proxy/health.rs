//! Backend health, shared read-mostly by every core: the state the active checks write (each backend's checks run on one core) and passive ejection after consecutive failures. The check task that writes it is `health_check`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;
use unisock_kernel::time::Instant;

use super::settings::Ejection;

/// One backend's shared health.
#[derive(Default)]
struct BackendHealth {
    /// Written only by the core that runs this backend's active checks (and by ejection).
    up: AtomicBool,
    /// Passive ejection: unavailable until this time (nanoseconds of the kernel clock).
    ejected_until: AtomicU64,
    /// Set when an ejection took the backend down with active checks on, until a check
    /// brings it up or finds it down itself: the backend is still out only by ejection (it
    /// counts against the pool's ejection share and may serve as a last resort).
    down_by_ejection: AtomicBool,
    /// When the last counted failure happened (nanoseconds of the kernel clock; 0: never),
    /// to try the least recently failed first when every backend is out.
    last_failure: AtomicU64,
    /// Failed requests in a row, from any core; written only on failure and on the first
    /// success after one, so the success path only reads it.
    consecutive_failures: AtomicU32,
    transitions: AtomicU64,
    ejections: AtomicU64,
    /// An ejection this backend reached was held back by the pool's share, and counted once;
    /// cleared when it is ejected, succeeds, or a check brings it up.
    held_back: AtomicBool,
    /// Taken out by the operator (`POST /backends/<pool>/<address>/drain`): no new requests
    /// until enabled again; requests in progress finish.
    drained: AtomicBool,
}

impl BackendHealth {
    /// Out because of passive ejection: inside its cool-off, or held down by it until an
    /// active check decides.
    fn is_ejected(&self, now: Instant, checks_on: bool) -> bool {
        now.as_nanos() < self.ejected_until.load(Ordering::Relaxed)
            || (checks_on
                && self.down_by_ejection.load(Ordering::Relaxed)
                && !self.up.load(Ordering::Relaxed))
    }
}

/// What a counted failure did to its backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; not (yet) enough in a row to eject, or ejection is off.
    Counted,
    /// The backend is out for the cool-off.
    Ejected,
    /// Enough failures to eject, but the pool's share of ejected backends is reached: the
    /// backend stays in (Envoy's `max_ejection_percent`). Returned once per ejection held
    /// back, so that counting it counts distinct ejections, not failures.
    EjectionCapped,
    /// Still held back, already reported as `EjectionCapped`.
    StillCapped,
    /// Already out (a last resort that failed, or two cores at the threshold at once): its
    /// cool-off runs again from this failure, and it is not a new ejection.
    StillEjected,
}

pub struct HealthBoard {
    backends: Vec<BackendHealth>,
    /// Held while an ejection is decided, so that cores failing at the same instant cannot
    /// together take out more than the pool's share. Taken when a backend reaches its failure
    /// threshold (on the request path of the request that failed), except when the last
    /// count below still says the share is full: a capped backend's further failures, which
    /// may come with every request, only read that count.
    ejecting: Mutex<()>,
    /// How many backends were out at the last decision under `ejecting` (written only under
    /// it), ...
    ejected_at_last_count: AtomicUsize,
    /// ... and until when that count holds (nanoseconds: the earliest end of a cool-off it
    /// counted; 0 once a check changed a backend held down by ejection), ...
    last_count_holds_until: AtomicU64,
    /// ... and whether it was made with active checks on (which count backends held down by
    /// ejection after their cool-off).
    last_count_with_checks: AtomicBool,
}

impl HealthBoard {
    /// Every backend starts up: the first checks (or failures) take the dead ones out.
    pub fn new(backends: usize) -> HealthBoard {
        HealthBoard {
            backends: (0..backends)
                .map(|_| {
                    let health = BackendHealth::default();
                    health.up.store(true, Ordering::Relaxed);
                    health
                })
                .collect(),
            ejecting: Mutex::new(()),
            ejected_at_last_count: AtomicUsize::new(0),
            last_count_holds_until: AtomicU64::new(0),
            last_count_with_checks: AtomicBool::new(false),
        }
    }

    /// Whether the last count under `ejecting` still says that `allowed` backends are out.
    fn share_full_by_last_count(&self, now: Instant, checks_on: bool, allowed: usize) -> bool {
        self.ejected_at_last_count.load(Ordering::Relaxed) >= allowed
            && now.as_nanos() < self.last_count_holds_until.load(Ordering::Relaxed)
            && self.last_count_with_checks.load(Ordering::Relaxed) == checks_on
    }

    /// Counts the backends out now and remembers the count and how long it holds; called
    /// with `ejecting` held.
    fn count_ejected(&self, now: Instant, checks_on: bool) -> usize {
        let mut count = 0;
        let mut holds_until = u64::MAX;
        for health in &self.backends {
            if health.is_ejected(now, checks_on) {
                count += 1;
                let until = health.ejected_until.load(Ordering::Relaxed);
                // Held down by ejection after its cool-off: it stays counted until a check
                // decides, and `set_up`/`confirm_down` then void the count.
                if until > now.as_nanos() {
                    holds_until = holds_until.min(until);
                }
            }
        }
        self.ejected_at_last_count.store(count, Ordering::Relaxed);
        self.last_count_holds_until
            .store(holds_until, Ordering::Relaxed);
        self.last_count_with_checks
            .store(checks_on, Ordering::Relaxed);
        count
    }

    /// A backend's ejection is held back by the share: reported once.
    fn hold_back(health: &BackendHealth) -> FailureOutcome {
        if health.held_back.swap(true, Ordering::Relaxed) {
            FailureOutcome::StillCapped
        } else {
            FailureOutcome::EjectionCapped
        }
    }

    /// Requests may go to the backend now. Without active checks (`checks_on` false) a
    /// backend is up unless passive ejection took it out, whatever an earlier configuration's
    /// checks said of it.
    pub fn is_available(&self, backend: usize, now: Instant, checks_on: bool) -> bool {
        self.backends.get(backend).is_some_and(|health| {
            (health.up.load(Ordering::Relaxed) || !checks_on)
                && !health.drained.load(Ordering::Relaxed)
                && now.as_nanos() >= health.ejected_until.load(Ordering::Relaxed)
        })
    }

    /// The backend to try when none is available: among those out only by passive
    /// ejection (not drained, not found down by an active check) and not `excluded`, the one
    /// whose last failure is the oldest. So an ejected pool still serves, as Envoy's panic
    /// threshold and nginx (which forgets the failures when every server has failed) do,
    /// instead of answering 503 until the cool-offs end.
    pub fn last_resort(
        &self,
        now: Instant,
        checks_on: bool,
        excluded: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        self.backends
            .iter()
            .enumerate()
            .filter(|(index, health)| {
                !excluded(*index)
                    && !health.drained.load(Ordering::Relaxed)
                    && health.is_ejected(now, checks_on)
                    && (!checks_on
                        || health.up.load(Ordering::Relaxed)
                        || health.down_by_ejection.load(Ordering::Relaxed))
            })
            .min_by_key(|(_, health)| health.last_failure.load(Ordering::Relaxed))
            .map(|(index, _)| index)
    }

    /// How many backends passive ejection holds out now.
    pub fn ejected_count(&self, now: Instant, checks_on: bool) -> usize {
        self.backends
            .iter()
            .filter(|health| health.is_ejected(now, checks_on))
            .count()
    }

    pub fn set_drained(&self, backend: usize, drained: bool) -> bool {
        match self.backends.get(backend) {
            Some(health) => {
                health.drained.store(drained, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn is_drained(&self, backend: usize) -> bool {
        self.backends
            .get(backend)
            .is_some_and(|health| health.drained.load(Ordering::Relaxed))
    }

    pub fn backend_count(&self) -> usize {
        self.backends.len()
    }

    /// Carries `from`'s up/down (and whether an ejection put it down) and drain state of the backends both boards have (by
    /// `(index here, index there)`) into this fresh board, for a pool that reconfiguration
    /// changed.
    pub fn carry_over(&self, from: &HealthBoard, same: impl Iterator<Item = (usize, usize)>) {
        for (here, there) in same {
            if let (Some(new), Some(old)) = (self.backends.get(here), from.backends.get(there)) {
                new.up
                    .store(old.up.load(Ordering::Relaxed), Ordering::Relaxed);
                new.drained
                    .store(old.drained.load(Ordering::Relaxed), Ordering::Relaxed);
                new.down_by_ejection.store(
                    old.down_by_ejection.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
            }
        }
    }

    pub fn is_up(&self, backend: usize) -> bool {
        self.backends
            .get(backend)
            .is_some_and(|health| health.up.load(Ordering::Relaxed))
    }

    /// An active check's verdict: the state moves only after `rise` / `fall` agreeing probes,
    /// which the checker counts; here the transition is published. Either way the verdict is
    /// now the check's, no longer the ejection's.
    pub fn set_up(&self, backend: usize, up: bool) {
        if let Some(health) = self.backends.get(backend) {
            if health.down_by_ejection.swap(false, Ordering::Relaxed) {
                // It may no longer count as ejected: the next decision counts again.
                self.last_count_holds_until.store(0, Ordering::Relaxed);
            }
            if health.up.swap(up, Ordering::Relaxed) != up {
                health.transitions.fetch_add(1, Ordering::Relaxed);
                if up {
                    health.consecutive_failures.store(0, Ordering::Relaxed);
                    health.held_back.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// An active check found a down backend still down: it stays down by the check's verdict.
    pub fn confirm_down(&self, backend: usize) {
        if let Some(health) = self.backends.get(backend)
            && health.down_by_ejection.load(Ordering::Relaxed)
        {
            health.down_by_ejection.store(false, Ordering::Relaxed);
            self.last_count_holds_until.store(0, Ordering::Relaxed);
        }
    }

    /// A request to the backend failed in a way that says the backend is broken (the caller
    /// decides which failures those are). After `ejection.consecutive_failures` in a row the
    /// backend is out for the cool-off, unless that would take more than the pool's share
    /// out; with active checks it also goes down, so that only a check brings it back.
    pub fn record_failure(
        &self,
        backend: usize,
        now: Instant,
        ejection: &Ejection,
        checks_on: bool,
    ) -> FailureOutcome {
        let Some(health) = self.backends.get(backend) else {
            return FailureOutcome::Counted;
        };
        health.last_failure.store(now.as_nanos(), Ordering::Relaxed);
        let failures = health.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if ejection.consecutive_failures == 0 || failures < ejection.consecutive_failures {
            return FailureOutcome::Counted;
        }
        // Envoy's rule: `max_ejection_percent` of the pool, rounded down, but always at least
        // one backend. A backend already out (tried as a last resort) takes no more room.
        let allowed = (self.backends.len() * ejection.max_percent as usize / 100).max(1);
        if !health.is_ejected(now, checks_on)
            && self.share_full_by_last_count(now, checks_on, allowed)
        {
            // The count stays at the threshold: the next failure asks again.
            return Self::hold_back(health);
        }
        let _deciding = self.ejecting.lock();
        let until = now
            .as_nanos()
            .saturating_add(ejection.cool_off.as_nanos() as u64);
        if health.is_ejected(now, checks_on) {
            // Out already: the failure confirms it, so the cool-off runs from now, but it is
            // the same ejection.
            health.consecutive_failures.store(0, Ordering::Relaxed);
            health.ejected_until.fetch_max(until, Ordering::Relaxed);
            return FailureOutcome::StillEjected;
        }
        if self.count_ejected(now, checks_on) >= allowed {
            return Self::hold_back(health);
        }
        health.consecutive_failures.store(0, Ordering::Relaxed);
        health.held_back.store(false, Ordering::Relaxed);
        health.ejected_until.store(until, Ordering::Relaxed);
        health.ejections.fetch_add(1, Ordering::Relaxed);
        if checks_on {
            self.set_up(backend, false);
            health.down_by_ejection.store(true, Ordering::Relaxed);
        }
        self.count_ejected(now, checks_on);
        FailureOutcome::Ejected
    }

    pub fn record_success(&self, backend: usize) {
        if let Some(health) = self.backends.get(backend)
            && health.consecutive_failures.load(Ordering::Relaxed) != 0
        {
            health.consecutive_failures.store(0, Ordering::Relaxed);
            health.held_back.store(false, Ordering::Relaxed);
        }
    }

    /// Still inside a passive ejection's cool-off (an active check must not end it early).
    pub fn is_cooling_off(&self, backend: usize, now: Instant) -> bool {
        self.backends
            .get(backend)
            .is_some_and(|health| now.as_nanos() < health.ejected_until.load(Ordering::Relaxed))
    }

    /// (state transitions, passive ejections) so far.
    pub fn history(&self, backend: usize) -> (u64, u64) {
        self.backends.get(backend).map_or((0, 0), |health| {
            (
                health.transitions.load(Ordering::Relaxed),
                health.ejections.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn consecutive_failures_eject_for_the_cool_off() {
        let board = HealthBoard::new(2);
        let ejection = Ejection {
            consecutive_failures: 3,
            cool_off: Duration::from_secs(10),
            ..Ejection::default()
        };
        let now = Instant::from_millis(1000);
        board.record_failure(0, now, &ejection, false);
        board.record_failure(0, now, &ejection, false);
        board.record_success(0);
        board.record_failure(0, now, &ejection, false);
        board.record_failure(0, now, &ejection, false);
        assert!(
            board.is_available(0, now, false),
            "a success in between resets the count"
        );
        board.record_failure(0, now, &ejection, false);
        assert!(!board.is_available(0, now, false));
        assert!(board.is_available(1, now, false));
        assert!(!board.is_available(0, Instant::from_millis(10_999), false));
        assert!(board.is_available(0, Instant::from_millis(11_000), false));
        assert_eq!(board.history(0), (0, 1));
    }

    #[test]
    fn with_checks_an_ejected_backend_stays_down_until_a_check_brings_it_up() {
        let board = HealthBoard::new(1);
        let ejection = Ejection {
            consecutive_failures: 1,
            cool_off: Duration::from_secs(1),
            ..Ejection::default()
        };
        board.record_failure(0, Instant::ZERO, &ejection, true);
        assert!(!board.is_available(0, Instant::from_millis(5000), true));
        assert!(!board.is_up(0));
        board.set_up(0, true);
        assert!(board.is_available(0, Instant::from_millis(5000), true));
        assert_eq!(board.history(0), (2, 1));
    }

    fn eject_at_once() -> Ejection {
        Ejection {
            consecutive_failures: 1,
            cool_off: Duration::from_secs(10),
            ..Ejection::default()
        }
    }

    #[test]
    fn no_more_than_the_share_of_a_pool_is_ejected_and_at_least_one_is() {
        let at = Instant::from_millis(1000);
        // 2 or 3 backends at 50 %: one may be out (the share rounds down, but never to 0).
        for backends in [2, 3] {
            let board = HealthBoard::new(backends);
            let ejection = eject_at_once();
            assert_eq!(
                board.record_failure(0, at, &ejection, false),
                FailureOutcome::Ejected
            );
            assert_eq!(
                board.record_failure(1, at, &ejection, false),
                FailureOutcome::EjectionCapped
            );
            assert!(board.is_available(1, at, false), "{backends} backends");
            // The capped backend's next failure asks again, and is ejected once room frees.
            let later = Instant::from_millis(11_000);
            assert_eq!(
                board.record_failure(1, later, &ejection, false),
                FailureOutcome::Ejected
            );
        }
        // A lone backend may be ejected (and is then tried as a last resort).
        let board = HealthBoard::new(1);
        assert_eq!(
            board.record_failure(0, at, &eject_at_once(), true),
            FailureOutcome::Ejected
        );
        // 10 backends at 30 %: three.
        let board = HealthBoard::new(10);
        let ejection = Ejection {
            max_percent: 30,
            ..eject_at_once()
        };
        let outcomes: Vec<FailureOutcome> = (0..10)
            .map(|backend| board.record_failure(backend, at, &ejection, true))
            .collect();
        assert_eq!(
            outcomes
                .iter()
                .filter(|outcome| **outcome == FailureOutcome::Ejected)
                .count(),
            3
        );
        assert_eq!(board.ejected_count(at, true), 3);
    }

    #[test]
    fn with_every_backend_out_the_least_recently_failed_is_tried() {
        let board = HealthBoard::new(3);
        let ejection = Ejection {
            max_percent: 100,
            ..eject_at_once()
        };
        for (backend, at) in [(1, 100), (0, 200), (2, 300)] {
            board.record_failure(backend, Instant::from_millis(at), &ejection, false);
        }
        let now = Instant::from_millis(400);
        assert!((0..3).all(|backend| !board.is_available(backend, now, false)));
        assert_eq!(board.last_resort(now, false, |_| false), Some(1));
        assert_eq!(
            board.last_resort(now, false, |backend| backend == 1),
            Some(0)
        );
        // Drained backends are the operator's choice: never a last resort.
        board.set_drained(1, true);
        assert_eq!(board.last_resort(now, false, |_| false), Some(0));
        // A backend an active check found down is not one either; one only ejected is.
        let board = HealthBoard::new(2);
        board.set_up(0, false);
        board.record_failure(1, now, &ejection, true);
        assert_eq!(board.last_resort(now, true, |_| false), Some(1));
        board.confirm_down(1);
        assert_eq!(board.last_resort(now, true, |_| false), None);
    }

    /// A backend already out that fails again (tried as a last resort, or two cores at the
    /// threshold at once) is not ejected a second time: the ejection count stays, and its
    /// cool-off runs from the latest failure. A capped ejection is counted once, not once
    /// per failure while the share stays full.
    #[test]
    fn an_ejected_backend_is_not_ejected_again_and_a_capped_one_is_counted_once() {
        let board = HealthBoard::new(2);
        let ejection = eject_at_once();
        let at = Instant::from_millis(1000);
        assert_eq!(
            board.record_failure(0, at, &ejection, false),
            FailureOutcome::Ejected
        );
        let again = Instant::from_millis(5000);
        assert_ne!(
            board.record_failure(0, again, &ejection, false),
            FailureOutcome::Ejected
        );
        assert_eq!(board.history(0), (0, 1), "ejected twice");
        assert!(!board.is_available(0, Instant::from_millis(14_999), false));
        assert!(board.is_available(0, Instant::from_millis(15_000), false));
        let capped = (0..5)
            .map(|_| board.record_failure(1, again, &ejection, false))
            .filter(|outcome| *outcome == FailureOutcome::EjectionCapped)
            .count();
        assert_eq!(capped, 1, "one ejection held back, counted {capped} times");
        // Once room frees, the held-back backend is ejected, and a later cap counts again.
        let later = Instant::from_millis(15_000);
        assert_eq!(
            board.record_failure(1, later, &ejection, false),
            FailureOutcome::Ejected
        );
        assert_eq!(
            board.record_failure(0, later, &ejection, false),
            FailureOutcome::EjectionCapped
        );
    }

    /// While the share is full, a capped backend's failures do not take the `ejecting` lock
    /// (which the request path would otherwise spin on): here the lock is held by the test,
    /// and the failure still completes.
    #[test]
    fn a_capped_failure_does_not_take_the_ejection_lock() {
        extern crate std;
        use std::sync::{Arc, mpsc};
        let board = Arc::new(HealthBoard::new(2));
        let ejection = eject_at_once();
        let at = Instant::from_millis(1000);
        board.record_failure(0, at, &ejection, false);
        assert_eq!(
            board.record_failure(1, at, &ejection, false),
            FailureOutcome::EjectionCapped
        );
        let held = board.ejecting.lock();
        let (done, finished) = mpsc::channel();
        let failing = board.clone();
        let worker = std::thread::spawn(move || {
            let outcome = failing.record_failure(1, at, &ejection, false);
            let _ = done.send(outcome);
        });
        // Generous: the failure is a few atomic operations; only a wait on the lock (for ever,
        // while it is held) misses this.
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(30));
        drop(held);
        worker.join().unwrap();
        assert!(
            outcome.is_ok(),
            "a capped failure waited for the ejection lock"
        );
    }

    #[test]
    fn without_checks_a_backend_an_earlier_check_took_down_is_available() {
        let board = HealthBoard::new(1);
        board.set_up(0, false);
        let now = Instant::from_millis(1000);
        assert!(!board.is_available(0, now, true));
        assert!(board.is_available(0, now, false));
        // An ejection made while checks were on ends at its cool-off once they are off.
        board.set_up(0, true);
        board.record_failure(0, now, &eject_at_once(), true);
        assert!(!board.is_available(0, Instant::from_millis(10_999), false));
        assert!(board.is_available(0, Instant::from_millis(11_000), false));
    }
}
