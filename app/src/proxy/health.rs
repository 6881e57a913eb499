//! Backend health, shared read-mostly by every core: the state the active checks write (each backend's checks run on one core) and passive ejection after consecutive failures; plus the active check task itself (TCP connect or HTTP GET).

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use unisock_kernel::socket::TcpStream;
use unisock_kernel::time::Instant;

use super::settings::{Ejection, HealthProbe};
use super::stream::BufferedStream;
use super::worker::Worker;
use crate::http::response;

/// One backend's shared health.
#[derive(Default)]
struct BackendHealth {
    /// Written only by the core that runs this backend's active checks (and by ejection).
    up: AtomicBool,
    /// Passive ejection: unavailable until this time (nanoseconds of the kernel clock).
    ejected_until: AtomicU64,
    /// Failed requests in a row, from any core; written only on failure and on the first
    /// success after one, so the success path only reads it.
    consecutive_failures: AtomicU32,
    transitions: AtomicU64,
    ejections: AtomicU64,
    /// Taken out by the operator (`POST /backends/<pool>/<address>/drain`): no new requests
    /// until enabled again; requests in progress finish.
    drained: AtomicBool,
}

pub struct HealthBoard {
    backends: Vec<BackendHealth>,
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
        }
    }

    /// Requests may go to the backend now.
    pub fn is_available(&self, backend: usize, now: Instant) -> bool {
        self.backends.get(backend).is_some_and(|health| {
            health.up.load(Ordering::Relaxed)
                && !health.drained.load(Ordering::Relaxed)
                && now.as_nanos() >= health.ejected_until.load(Ordering::Relaxed)
        })
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

    /// Carries `from`'s up/down and drain state of the backends both boards have (by
    /// `(index here, index there)`) into this fresh board, for a pool that reconfiguration
    /// changed.
    pub fn carry_over(&self, from: &HealthBoard, same: impl Iterator<Item = (usize, usize)>) {
        for (here, there) in same {
            if let (Some(new), Some(old)) = (self.backends.get(here), from.backends.get(there)) {
                new.up
                    .store(old.up.load(Ordering::Relaxed), Ordering::Relaxed);
                new.drained
                    .store(old.drained.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    pub fn is_up(&self, backend: usize) -> bool {
        self.backends
            .get(backend)
            .is_some_and(|health| health.up.load(Ordering::Relaxed))
    }

    /// An active check's verdict: the state moves only after `rise` / `fall` agreeing probes,
    /// which the checker counts; here the transition is published.
    pub fn set_up(&self, backend: usize, up: bool) {
        if let Some(health) = self.backends.get(backend)
            && health.up.swap(up, Ordering::Relaxed) != up
        {
            health.transitions.fetch_add(1, Ordering::Relaxed);
            if up {
                health.consecutive_failures.store(0, Ordering::Relaxed);
            }
        }
    }

    /// A request to the backend failed (connect refused or timed out, reset, 5xx). After
    /// `ejection.consecutive_failures` in a row the backend is out for the cool-off; with
    /// active checks it also goes down, so that only a check brings it back.
    pub fn record_failure(
        &self,
        backend: usize,
        now: Instant,
        ejection: &Ejection,
        checks_on: bool,
    ) {
        let Some(health) = self.backends.get(backend) else {
            return;
        };
        let failures = health.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if ejection.consecutive_failures > 0 && failures >= ejection.consecutive_failures {
            health.consecutive_failures.store(0, Ordering::Relaxed);
            let until = now
                .as_nanos()
                .saturating_add(ejection.cool_off.as_nanos() as u64);
            health.ejected_until.store(until, Ordering::Relaxed);
            health.ejections.fetch_add(1, Ordering::Relaxed);
            if checks_on {
                self.set_up(backend, false);
            }
        }
    }

    pub fn record_success(&self, backend: usize) {
        if let Some(health) = self.backends.get(backend)
            && health.consecutive_failures.load(Ordering::Relaxed) != 0
        {
            health.consecutive_failures.store(0, Ordering::Relaxed);
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

/// Probes `backend` every interval for ever, publishing up/down after `rise`/`fall` agreeing
/// results. Runs on the one core the worker assigned this backend to.
pub async fn run_checks(worker: Rc<Worker>, backend: usize) {
    let health = &worker.settings().pool.health;
    if health.probe == HealthProbe::Off {
        return;
    }
    let mut agreeing = 0u32;
    loop {
        worker.handle().sleep(health.interval).await;
        if worker.is_retired() {
            return;
        }
        let healthy = probe(&worker, backend).await;
        let board = worker.health();
        let now = worker.handle().now();
        let currently_up = board.is_up(backend);
        if healthy == currently_up {
            agreeing = 0;
            continue;
        }
        agreeing += 1;
        let needed = if healthy { health.rise } else { health.fall };
        if agreeing >= needed && !(healthy && board.is_cooling_off(backend, now)) {
            board.set_up(backend, healthy);
            worker.statistics().health_transitions.increment();
            agreeing = 0;
        }
    }
}

/// One probe: true if the backend answered as the check expects within the timeout.
async fn probe(worker: &Worker, backend: usize) -> bool {
    let settings = worker.settings();
    let Some(target) = settings.pool.backends.get(backend) else {
        return false;
    };
    let health = &settings.pool.health;
    let handle = worker.handle();
    let connect = TcpStream::connect(worker.tcp(), target.address);
    let stream = match handle.timeout(health.timeout, connect).await {
        Ok(Ok(stream)) => stream,
        _ => return false,
    };
    let HealthProbe::Http {
        path,
        expected_class,
    } = &health.probe
    else {
        let _ = stream.close();
        return true;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: unisock-health-check\r\nConnection: close\r\n\r\n",
        target.address
    );
    let mut stream = BufferedStream::new(stream);
    let deadline = handle.now() + health.timeout;
    if stream
        .write_all(handle, health.timeout, request.as_bytes())
        .await
        .is_err()
    {
        stream.abort();
        return false;
    }
    loop {
        match response::parse(
            stream.buffered(),
            settings.limits.response_header_bytes,
            false,
        ) {
            Ok(Some((head, _))) => {
                // 1xx interim answers are not a verdict; anything else is.
                if (100..200).contains(&head.status) {
                    stream.abort();
                    return false;
                }
                stream.abort();
                return head.status / 100 == u16::from(*expected_class);
            }
            Ok(None) => {}
            Err(_) => {
                stream.abort();
                return false;
            }
        }
        let left = deadline.saturating_since(handle.now());
        match stream.fill(handle, left).await {
            Ok(count) if count > 0 => {}
            _ => {
                stream.abort();
                return false;
            }
        }
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
        };
        let now = Instant::from_millis(1000);
        board.record_failure(0, now, &ejection, false);
        board.record_failure(0, now, &ejection, false);
        board.record_success(0);
        board.record_failure(0, now, &ejection, false);
        board.record_failure(0, now, &ejection, false);
        assert!(
            board.is_available(0, now),
            "a success in between resets the count"
        );
        board.record_failure(0, now, &ejection, false);
        assert!(!board.is_available(0, now));
        assert!(board.is_available(1, now));
        assert!(!board.is_available(0, Instant::from_millis(10_999)));
        assert!(board.is_available(0, Instant::from_millis(11_000)));
        assert_eq!(board.history(0), (0, 1));
    }

    #[test]
    fn with_checks_an_ejected_backend_stays_down_until_a_check_brings_it_up() {
        let board = HealthBoard::new(1);
        let ejection = Ejection {
            consecutive_failures: 1,
            cool_off: Duration::from_secs(1),
        };
        board.record_failure(0, Instant::ZERO, &ejection, true);
        assert!(!board.is_available(0, Instant::from_millis(5000)));
        assert!(!board.is_up(0));
        board.set_up(0, true);
        assert!(board.is_available(0, Instant::from_millis(5000)));
        assert_eq!(board.history(0), (2, 1));
    }
}
