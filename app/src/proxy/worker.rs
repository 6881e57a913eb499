//! One core's proxy worker: the state it keeps for itself (balancer, idle backend connections) beside the shared read-mostly state (settings, health, counters), its accept loop, and the background tasks it runs (pool sweeping, the health checks of the backends assigned to this core).

use alloc::rc::Rc;
use alloc::sync::Arc;
use core::cell::RefCell;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::ServedPort;
use unisock_kernel::socket::{SharedTcpLayer, TcpListener};

use super::balance::Balancer;
use super::exchange::serve_client;
use super::health::{self, HealthBoard};
use super::pool::IdlePool;
use super::settings::ProxySettings;
use super::statistics::{ByteMeter, MeteredSide, ProxyCore, ProxyStatistics};

/// What every core's worker shares: made once at boot, read by all.
#[derive(Clone)]
pub struct ProxyShared {
    pub settings: Arc<ProxySettings>,
    pub health: Arc<HealthBoard>,
    pub statistics: Arc<ProxyStatistics>,
}

impl ProxyShared {
    pub fn new(settings: ProxySettings, workers: usize) -> ProxyShared {
        let backends = settings.pool.backends.len();
        ProxyShared {
            settings: Arc::new(settings),
            health: Arc::new(HealthBoard::new(backends)),
            statistics: Arc::new(ProxyStatistics::new(workers, backends)),
        }
    }
}

/// Which of the workers this one is: health checks are spread over the workers by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerPlace {
    pub index: usize,
    pub count: usize,
}

pub struct Worker {
    shared: ProxyShared,
    place: WorkerPlace,
    tcp: SharedTcpLayer,
    handle: Handle,
    balancer: RefCell<Balancer>,
    pool: RefCell<IdlePool>,
}

impl Worker {
    pub fn new(
        shared: ProxyShared,
        place: WorkerPlace,
        tcp: SharedTcpLayer,
        handle: Handle,
    ) -> Worker {
        let settings = &shared.settings;
        let seed = 0x5851_f42d_4c95_7f2d_u64.wrapping_mul(place.index as u64 + 1);
        Worker {
            balancer: RefCell::new(Balancer::new(
                settings.pool.balance,
                &settings.pool.backends,
                seed,
            )),
            pool: RefCell::new(IdlePool::new(
                settings.pool.keep_alive,
                settings.pool.backends.len(),
            )),
            shared,
            place,
            tcp,
            handle,
        }
    }

    pub fn settings(&self) -> &ProxySettings {
        &self.shared.settings
    }

    pub fn health(&self) -> &HealthBoard {
        &self.shared.health
    }

    pub fn statistics(&self) -> &ProxyCore {
        self.shared.statistics.core(self.place.index)
    }

    /// A meter for a connection of this core on `side` (counts its bytes, holds it in the
    /// active gauge while it lives).
    pub fn meter(&self, side: MeteredSide) -> ByteMeter {
        ByteMeter::new(
            self.shared.statistics.core_shared(self.place.index).clone(),
            side,
        )
    }

    pub fn tcp(&self) -> &SharedTcpLayer {
        &self.tcp
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn balancer(&self) -> &RefCell<Balancer> {
        &self.balancer
    }

    pub fn pool(&self) -> &RefCell<IdlePool> {
        &self.pool
    }
}

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
    let handle = worker.handle.clone();
    let backends = worker.settings().pool.backends.len();
    for backend in
        (0..backends).filter(|backend| backend % worker.place.count.max(1) == worker.place.index)
    {
        handle.spawn(health::run_checks(worker.clone(), backend));
    }
    if worker.settings().pool.keep_alive.idle_per_backend > 0 {
        handle.spawn(sweep_pool(worker.clone()));
    }
    handle.spawn(accept_loop(worker, port));
}

async fn accept_loop(worker: Rc<Worker>, port: impl Listening) {
    loop {
        match port.listener().accept().await {
            Ok(stream) => worker.handle.spawn(serve_client(worker.clone(), stream)),
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
        worker.handle.sleep(period).await;
        let now = worker.handle.now();
        worker.pool.borrow_mut().sweep(now);
    }
}
