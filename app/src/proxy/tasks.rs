//! The tasks a core's worker runs: its accept loop (each client connection served by `serve_client`), the idle pool's sweeper and this core's share of the backends' health checks.

use alloc::rc::Rc;
use core::time::Duration;

use unisock_kernel::net::partition::ServedPort;
use unisock_kernel::socket::TcpListener;

use super::exchange::serve_client;
use super::health_check;
use super::worker::{CurrentWorker, Worker};

/// What a worker accepts from: in the image a port served through the core's partition
/// (`ServedPort`), in host tests a plain listener.
pub trait Listening: 'static {
    fn listener(&self) -> &TcpListener;
}

impl Listening for ServedPort {
    fn listener(&self) -> &TcpListener {
        ServedPort::listener(self)
    }
}

impl Listening for TcpListener {
    fn listener(&self) -> &TcpListener {
        self
    }
}

/// Starts this core's worker on `port`: the accept loop, the pool sweeper and this core's
/// share of the health checks.
pub fn start(port: impl Listening, worker: Worker) {
    let worker = Rc::new(worker);
    let handle = worker.handle().clone();
    start_background(&worker);
    let current = Rc::new(CurrentWorker::new(worker));
    handle.spawn(accept_loop(current, port));
}

/// The tasks a worker runs besides serving clients: its share of the health checks and the
/// idle pool's sweeper; they end when the worker is retired.
pub fn start_background(worker: &Rc<Worker>) {
    let handle = worker.handle();
    if worker.runs_health_checks() {
        let backends = worker.settings().pool.backends.len();
        for backend in (0..backends)
            .filter(|backend| backend % worker.place().count.max(1) == worker.place().index)
        {
            handle.spawn(health_check::run_checks(worker.clone(), backend));
        }
    }
    if worker.settings().pool.keep_alive.idle_per_backend > 0 {
        handle.spawn(sweep_pool(worker.clone()));
    }
}

async fn accept_loop(current: Rc<CurrentWorker>, port: impl Listening) {
    let handle = current.get().handle().clone();
    loop {
        match port.listener().accept().await {
            Ok(stream) => handle.spawn(serve_client(current.clone(), stream)),
            // Only a listener that is gone fails to accept.
            Err(_) => return,
        }
    }
}

/// Closes idle backend connections that timed out or that their backend closed, so that
/// they do not sit in CLOSE_WAIT until the next request to that backend.
async fn sweep_pool(worker: Rc<Worker>) {
    let period = (worker.settings().pool.keep_alive.idle_timeout / 2)
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        worker.handle().sleep(period).await;
        if worker.is_retired() {
            return;
        }
        let now = worker.handle().now();
        worker.pool().borrow_mut().sweep(now);
    }
}
