//! One core's proxy: its listeners (each with the worker in force), the control task that switches them to a new configuration at a loop boundary, follows the operator's drain of this core, and answers socket listings.

use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::{PortOpener, ServedPort};
use unisock_kernel::socket::{SharedTcpLayer, SharedUdpLayer, SocketError};

use super::{AppliedConfiguration, ControlBoard, CoreSockets};
use crate::proxy::access_log::{AccessLog, AccessLogOutputs, AccessLogSink};
use crate::proxy::console_ring::{LineRing, RING_BYTES, drain_to_console};
use crate::proxy::tasks::start_background;
use crate::proxy::worker::{CurrentWorker, ProxyLegs};
use crate::proxy::{CoreDrain, ProxyShared, Worker, WorkerPlace, serve_client};

pub use crate::proxy::console_ring::ConsoleWriter;

/// How often the control task looks at the board: the longest a new configuration, a drain
/// or a socket listing waits for this core.
const CONTROL_PERIOD: Duration = Duration::from_millis(20);
/// How often an accept loop with nothing to accept looks at its listener's state.
const ACCEPT_POLL: Duration = Duration::from_millis(100);
/// How often a core tries again a generation it could not fully apply.
const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// Accept queue length of every proxy listener.
const BACKLOG: usize = 1024;

/// What a core needs to run its share of the proxy.
pub struct CoreProxyStart {
    pub board: Arc<ControlBoard>,
    pub place: WorkerPlace,
    pub tcp: SharedTcpLayer,
    pub opener: PortOpener,
    pub handle: Handle,
    /// The console this core's access-log lines go to, when the configuration turns the log
    /// on (through the core's ring: the data path never waits for the console).
    pub access_log: Option<ConsoleWriter>,
    /// The core's UDP layer: with the syslog target, this core's access-log lines leave from
    /// it to the collector (each core has its own socket; none waits for another).
    pub udp: Option<SharedUdpLayer>,
}

/// A listener on this core.
struct ListenerSlot {
    port: u16,
    /// Its worker; closing (`is_closing`) once the configuration no longer has the listener:
    /// stop accepting once what is queued is taken.
    current: Rc<CurrentWorker>,
    /// Its accept loop ended and the port is closed.
    closed: Cell<bool>,
}

pub struct CoreProxy {
    board: Arc<ControlBoard>,
    place: WorkerPlace,
    tcp: SharedTcpLayer,
    opener: PortOpener,
    handle: Handle,
    legs: Rc<ProxyLegs>,
    /// The operator's drain of this core, as its client connections follow it.
    drain: Rc<CoreDrain>,
    listeners: RefCell<Vec<Rc<ListenerSlot>>>,
    applied: Cell<u64>,
    answered_sockets: Cell<u64>,
    /// Queues a line in this core's console ring (none without a console), and the core's
    /// UDP layer for syslog.
    access_log_outputs: AccessLogOutputs,
    /// This generation's access log on this core, shared by its listeners.
    access_log: RefCell<Option<Rc<AccessLog>>>,
}

impl CoreProxy {
    /// Opens this core's listeners for the configuration in force and starts the control task.
    /// The proxy runs even when a port could not be opened (the error says which); the control
    /// task tries that generation again every second.
    pub fn start(start: CoreProxyStart) -> (Rc<CoreProxy>, Result<(), SocketError>) {
        let access_log_sink = start.access_log.map(|console| {
            let ring = Rc::new(RefCell::new(LineRing::new(RING_BYTES)));
            start.handle.spawn(drain_to_console(
                ring.clone(),
                console,
                start.handle.clone(),
                (start.board.core_states.clone(), start.place.index),
            ));
            let sink: AccessLogSink = Rc::new(move |line: &str| ring.borrow_mut().push_line(line));
            sink
        });
        let proxy = Rc::new(CoreProxy {
            board: start.board,
            place: start.place,
            tcp: start.tcp,
            opener: start.opener,
            handle: start.handle,
            legs: Rc::new(ProxyLegs::default()),
            drain: Rc::new(CoreDrain::default()),
            listeners: RefCell::new(Vec::new()),
            applied: Cell::new(0),
            answered_sockets: Cell::new(0),
            access_log_outputs: AccessLogOutputs {
                console: access_log_sink,
                udp: start.udp,
            },
            access_log: RefCell::new(None),
        });
        let current = proxy.board.current();
        let applied = proxy.apply(&current);
        proxy.handle.spawn(control_loop(proxy.clone()));
        (proxy, applied)
    }

    pub fn board(&self) -> &Arc<ControlBoard> {
        &self.board
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn opener(&self) -> &PortOpener {
        &self.opener
    }

    pub fn core_index(&self) -> usize {
        self.place.index
    }

    /// The ports this core listens on for the proxy (removed ones still draining included).
    pub fn ports(&self) -> Vec<u16> {
        self.listeners
            .borrow()
            .iter()
            .filter(|slot| !slot.closed.get())
            .map(|slot| slot.port)
            .collect()
    }

    /// Switches this core to `applied`: listeners that stay get a new worker (new requests use
    /// it, requests under way finish with theirs), new ones open, removed ones stop accepting
    /// and close once drained. An error opening a new port leaves that listener out on this
    /// core and is reported; the rest is applied.
    fn apply(&self, applied: &AppliedConfiguration) -> Result<(), SocketError> {
        let configuration = &applied.configuration;
        let mut result = Ok(());
        self.listeners
            .borrow_mut()
            .retain(|slot| !slot.closed.get());
        *self.access_log.borrow_mut() = AccessLog::new(
            configuration.access_log,
            configuration.hostname.as_str(),
            &self.access_log_outputs,
            self.place.index,
            self.board.core_states.clone(),
        )
        .map(Rc::new);
        for (index, listener) in configuration.listeners.iter().enumerate() {
            let Some(worker) = self.worker_for(applied, index) else {
                continue;
            };
            let existing = self
                .listeners
                .borrow()
                .iter()
                .find(|slot| slot.port == listener.port)
                .cloned();
            match existing {
                // Replacing the worker also takes back a removal still draining.
                Some(slot) => slot.current.replace(worker),
                None => {
                    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, listener.port);
                    match self.opener.listen(local, BACKLOG) {
                        Ok(port) => {
                            let slot = Rc::new(ListenerSlot {
                                port: listener.port,
                                current: Rc::new(CurrentWorker::new(worker)),
                                closed: Cell::new(false),
                            });
                            self.listeners.borrow_mut().push(slot.clone());
                            self.handle.spawn(accept_loop(
                                self.board.clone(),
                                self.place.index,
                                slot,
                                port,
                                self.handle.clone(),
                            ));
                        }
                        Err(error) => {
                            worker.retire();
                            result = Err(error);
                        }
                    }
                }
            }
        }
        for slot in self.listeners.borrow().iter() {
            if !configuration
                .listeners
                .iter()
                .any(|listener| listener.port == slot.port)
                && !slot.current.is_closing()
            {
                slot.current.close_connections();
                slot.current.get().retire();
            }
        }
        // A generation counts as applied only when every listener of it is open here.
        self.applied.set(applied.generation);
        if result.is_ok() {
            self.board
                .record_applied(self.place.index, applied.generation);
        }
        result
    }

    fn worker_for(&self, applied: &AppliedConfiguration, index: usize) -> Option<Rc<Worker>> {
        let configuration = &applied.configuration;
        let listener = configuration.listeners.get(index)?;
        let pool_index = configuration.pool_index(&listener.pool)?;
        let settings = configuration.listener_settings(index)?;
        // When listeners share a pool, the first of them runs the pool's checks.
        let runs_checks = configuration
            .listeners
            .iter()
            .position(|other| other.pool == listener.pool)
            == Some(index);
        let shared = ProxyShared {
            settings: Arc::new(settings),
            health: applied.health.get(pool_index)?.clone(),
            statistics: applied.statistics.get(index)?.clone(),
        };
        let worker = Rc::new(
            Worker::new(shared, self.place, self.tcp.clone(), self.handle.clone())
                .on_core(self.legs.clone(), self.drain.clone(), runs_checks)
                .with_access_log(self.access_log.borrow().clone()),
        );
        start_background(&worker);
        Some(worker)
    }

    fn answer_sockets(&self, request: u64) {
        let mut sockets = Vec::new();
        self.tcp.borrow().list_sockets(&mut sockets);
        self.board.answer_sockets(
            self.place.index,
            CoreSockets {
                request,
                sockets,
                legs: self.legs.pairs(),
            },
        );
        self.answered_sockets.set(request);
    }
}

async fn control_loop(proxy: Rc<CoreProxy>) {
    let mut retry_at = None;
    loop {
        proxy.handle.sleep(CONTROL_PERIOD).await;
        // A drain ends the core's keep-alive connections (idle ones at once, busy ones after
        // their response, which says `Connection: close`), as nginx's graceful shutdown does.
        proxy
            .drain
            .set_draining(proxy.board.is_drained(proxy.place.index));
        let now = proxy.handle.now();
        let due = retry_at.is_some_and(|at| now >= at);
        if proxy.board.generation() != proxy.applied.get() || due {
            let current = proxy.board.current();
            // A port that cannot be opened (another listener holds it while it drains) is the
            // only failure: the core runs the rest, is not counted as applied, and tries again.
            retry_at = proxy.apply(&current).is_err().then(|| now + RETRY_PERIOD);
        }
        let request = proxy.board.socket_request();
        if request > proxy.answered_sockets.get() {
            proxy.answer_sockets(request);
        }
    }
}

/// Accepts on one listener of this core until the configuration removes it and its queue is
/// empty; leaves the serving set while the operator drains the core (the global listen table
/// then sends the core's new connections to the others) and joins it again when enabled.
async fn accept_loop(
    board: Arc<ControlBoard>,
    core: usize,
    slot: Rc<ListenerSlot>,
    mut port: ServedPort,
    handle: Handle,
) {
    loop {
        let removed = slot.current.is_closing();
        let serve = !removed && !board.is_drained(core);
        if serve && !port.is_serving() {
            port.serve_again();
        } else if !serve && port.is_serving() {
            port.stop_serving();
        }
        if removed && port.is_drained() {
            break;
        }
        match handle.timeout(ACCEPT_POLL, port.listener().accept()).await {
            Ok(Ok(stream)) => {
                let open = OpenConnection::new(board.clone(), core);
                let current = slot.current.clone();
                handle.spawn(async move {
                    serve_client(current, stream).await;
                    drop(open);
                })
            }
            Ok(Err(_)) => break,
            Err(_elapsed) => {}
        }
    }
    slot.closed.set(true);
    // Dropping the port closes the listener and leaves the serving set.
    drop(port);
}

/// Holds a client connection in its core's `client_connections` gauge while it is served
/// (every listener and configuration together: the count a drain waits to reach zero).
struct OpenConnection {
    board: Arc<ControlBoard>,
    core: usize,
}

impl OpenConnection {
    fn new(board: Arc<ControlBoard>, core: usize) -> OpenConnection {
        board.core_states.core(core).client_connections.add(1);
        OpenConnection { board, core }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.board
            .core_states
            .core(self.core)
            .client_connections
            .subtract(1);
    }
}
