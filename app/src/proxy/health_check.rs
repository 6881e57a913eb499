//! The active health check of one backend: a task on the one core the backend's checks were assigned to, probing it (TCP connect or HTTP GET) and publishing up/down on the shared `HealthBoard` after `rise`/`fall` agreeing results.

use alloc::format;
use alloc::rc::Rc;

use unisock_kernel::socket::TcpStream;

use super::connect::is_local;
use super::settings::HealthProbe;
use super::stream::BufferedStream;
use super::worker::Worker;
use crate::http::response;

/// What one probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProbeResult {
    Healthy,
    Unhealthy,
    /// The probe could not be made for a reason of the proxy's own (its core's connection
    /// table full, no free local port): it says nothing of the backend.
    Local,
}

/// Probes `backend` every interval for ever, publishing up/down after `rise`/`fall` agreeing
/// results. Runs on the one core the worker assigned this backend to. Without checks, the
/// backend is up: a configuration that turned the checks off must not leave it down for
/// ever by an earlier check's verdict (requests already ignore that verdict).
pub async fn run_checks(worker: Rc<Worker>, backend: usize) {
    let health = &worker.settings().pool.health;
    if health.probe == HealthProbe::Off {
        if !worker.health().is_up(backend) {
            worker.health().set_up(backend, true);
        }
        return;
    }
    let mut agreeing = 0u32;
    loop {
        worker.handle().sleep(health.interval).await;
        if worker.is_retired() {
            return;
        }
        let result = probe(&worker, backend).await;
        // A configuration published while the probe was in flight has its own checker (or
        // none): this one's verdict is no longer the pool's to hear.
        if worker.is_retired() {
            return;
        }
        let healthy = match result {
            ProbeResult::Healthy => true,
            ProbeResult::Unhealthy => false,
            ProbeResult::Local => {
                worker.statistics().local_probe_failures.increment();
                continue;
            }
        };
        let board = worker.health();
        let now = worker.handle().now();
        let currently_up = board.is_up(backend);
        if healthy == currently_up {
            if !healthy {
                board.confirm_down(backend);
            }
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

/// One probe: healthy if the backend answered as the check expects within the timeout.
async fn probe(worker: &Worker, backend: usize) -> ProbeResult {
    let settings = worker.settings();
    let Some(target) = settings.pool.backends.get(backend) else {
        return ProbeResult::Unhealthy;
    };
    let health = &settings.pool.health;
    let handle = worker.handle();
    let connect = TcpStream::connect(worker.tcp(), target.address);
    let stream = match handle.timeout(health.timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) if is_local(error) => return ProbeResult::Local,
        _ => return ProbeResult::Unhealthy,
    };
    let HealthProbe::Http {
        path,
        expected_class,
    } = &health.probe
    else {
        let _ = stream.close();
        return ProbeResult::Healthy;
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
        return ProbeResult::Unhealthy;
    }
    let verdict = |healthy: bool| {
        if healthy {
            ProbeResult::Healthy
        } else {
            ProbeResult::Unhealthy
        }
    };
    loop {
        match response::parse(
            stream.buffered(),
            settings.limits.response_header_bytes,
            false,
        ) {
            Ok(Some((head, _))) => {
                stream.abort();
                // 1xx interim answers are not a verdict; anything else is.
                return verdict(
                    !(100..200).contains(&head.status)
                        && head.status / 100 == u16::from(*expected_class),
                );
            }
            Ok(None) => {}
            Err(_) => {
                stream.abort();
                return ProbeResult::Unhealthy;
            }
        }
        let left = deadline.saturating_since(handle.now());
        match stream.fill(handle, left).await {
            Ok(count) if count > 0 => {}
            _ => {
                stream.abort();
                return ProbeResult::Unhealthy;
            }
        }
    }
}
