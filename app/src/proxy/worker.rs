//! One core's proxy worker: the state it keeps for itself (balancer, idle backend connections) beside the shared read-mostly state (settings, health, counters), and which worker a listener's new requests use. The tasks it runs are `tasks`.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;

use hashbrown::HashMap;
use unisock_kernel::executor::Handle;
use unisock_kernel::net::tcp::SocketHandle;
use unisock_kernel::socket::SharedTcpLayer;

use super::access_log::AccessLog;
use super::balance::Balancer;
use super::drain::CoreDrain;
use super::health::HealthBoard;
use super::pool::IdlePool;
use super::settings::ProxySettings;
use super::shared::ProxyShared;
use super::statistics::{ByteMeter, MeteredSide, ProxyCore};

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
    /// Replaced by a newer configuration: its background tasks stop, and requests already
    /// under way finish with it.
    retired: Cell<bool>,
    /// Whether this worker runs its pool's active health checks on this core (one listener
    /// per pool does, when several share it).
    runs_health_checks: bool,
    legs: Rc<ProxyLegs>,
    /// The core's drain, shared by its workers.
    drain: Rc<CoreDrain>,
    access_log: Option<Rc<AccessLog>>,
}

/// Which backend connection serves each client connection on this core, while it does: the
/// socket listing joins the two legs with it.
#[derive(Default)]
pub struct ProxyLegs {
    /// Client connection -> backend connection; touched twice per request, so a map (the
    /// core may have thousands of requests in progress).
    legs: RefCell<HashMap<SocketHandle, SocketHandle>>,
}

impl ProxyLegs {
    pub fn join(&self, client: SocketHandle, backend: SocketHandle) {
        self.legs.borrow_mut().insert(client, backend);
    }

    pub fn part(&self, client: SocketHandle) {
        self.legs.borrow_mut().remove(&client);
    }

    /// (client, backend) pairs.
    pub fn pairs(&self) -> Vec<(SocketHandle, SocketHandle)> {
        self.legs
            .borrow()
            .iter()
            .map(|(client, backend)| (*client, *backend))
            .collect()
    }
}

/// The worker of one listener that new requests on this core use; reconfiguration replaces
/// it between two requests, while requests in progress keep the one they started with.
pub struct CurrentWorker {
    worker: RefCell<Rc<Worker>>,
    /// The listener was removed: its keep-alive connections close after their request.
    closing: Cell<bool>,
}

impl CurrentWorker {
    pub fn new(worker: Rc<Worker>) -> CurrentWorker {
        CurrentWorker {
            worker: RefCell::new(worker),
            closing: Cell::new(false),
        }
    }

    /// Its client connections close after the request they are serving (those idle between
    /// two requests at once).
    pub fn close_connections(&self) {
        self.closing.set(true);
        self.get().drain.wake_idle();
    }

    /// The listener was removed (its accept loop stops once its queue is empty).
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Whether a client connection of this listener should end rather than take another
    /// request: the listener was removed, or the operator drains the core.
    pub fn ends_connections(&self) -> bool {
        self.closing.get() || self.worker.borrow().drain.is_draining()
    }

    /// Runs `future` (a client connection's wait for its next request) unless the connection
    /// should end first ([`CurrentWorker::ends_connections`]): then `None`, at once.
    pub async fn unless_ending<F: Future>(&self, future: F) -> Option<F::Output> {
        let drain = self.get().drain.clone();
        drain.unless(|| self.ends_connections(), future).await
    }

    pub fn get(&self) -> Rc<Worker> {
        self.worker.borrow().clone()
    }

    /// Puts `worker` in force (taking back a removal still draining) and retires the one it
    /// replaces.
    pub fn replace(&self, worker: Rc<Worker>) {
        self.closing.set(false);
        let old = core::mem::replace(&mut *self.worker.borrow_mut(), worker);
        old.retire();
    }
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
            retired: Cell::new(false),
            runs_health_checks: true,
            legs: Rc::new(ProxyLegs::default()),
            drain: Rc::new(CoreDrain::default()),
            access_log: None,
        }
    }

    /// The same worker, recording its legs in the core's shared registry, following the
    /// core's drain, and running health checks or not.
    pub fn on_core(
        mut self,
        legs: Rc<ProxyLegs>,
        drain: Rc<CoreDrain>,
        runs_health_checks: bool,
    ) -> Worker {
        self.legs = legs;
        self.drain = drain;
        self.runs_health_checks = runs_health_checks;
        self
    }

    /// The same worker, writing an access log.
    pub fn with_access_log(mut self, log: Option<Rc<AccessLog>>) -> Worker {
        self.access_log = log;
        self
    }

    pub fn access_log(&self) -> Option<&AccessLog> {
        self.access_log.as_deref()
    }

    pub fn retire(&self) {
        self.retired.set(true);
        // Idle backend connections of the old configuration are not reused.
        self.pool.borrow_mut().close_all();
    }

    pub fn is_retired(&self) -> bool {
        self.retired.get()
    }

    pub fn legs(&self) -> &ProxyLegs {
        &self.legs
    }

    /// Whether the operator drains this core: responses then say `Connection: close`.
    pub fn core_draining(&self) -> bool {
        self.drain.is_draining()
    }

    /// Whether this worker runs its pool's active health checks on this core.
    pub fn runs_health_checks(&self) -> bool {
        self.runs_health_checks
    }

    pub fn place(&self) -> WorkerPlace {
        self.place
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
