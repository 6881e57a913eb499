//! Which services a core runs, from the command line's ports: one listener per service on
//! every core (each core accepts the connections its queue receives).

use alloc::rc::Rc;
use alloc::string::String;
use core::net::{Ipv4Addr, SocketAddrV4};

use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::ServedPort;
use unisock_kernel::socket::{SharedTcpLayer, SocketError};

use crate::metrics::ReportFormat;
use crate::proxy::{self, ProxyShared, Worker, WorkerPlace};
use crate::responder;
use crate::transfer::{self, TransferService};

/// Appends the appliance's counters, rendered as asked, to a string; served at `GET /stats`
/// and `GET /metrics`.
pub type StatisticsReport = Rc<dyn Fn(ReportFormat, &mut String)>;

/// Accept queue length of every listener.
pub const BACKLOG: usize = 1024;

/// The ports of the services to start; `None` leaves a service off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Services {
    pub responder: Option<u16>,
    /// The responder's body size (`responder.body=`); `None` is [`responder::BODY`].
    pub responder_body: Option<usize>,
    pub sink: Option<u16>,
    pub source: Option<u16>,
}

impl Services {
    /// Every port some service listens on.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        [self.responder, self.sink, self.source]
            .into_iter()
            .flatten()
    }
}

/// How a core listens: on its own stack, and in the global listen table (the run loop's
/// `listen`, i.e. `net::partition::CoreDispatcher::listen`).
pub type Listen<'a> = &'a mut dyn FnMut(SocketAddrV4, usize) -> Result<ServedPort, SocketError>;

/// This core's reverse proxy worker: the shared proxy state, which worker this is, and the
/// core's TCP layer (for the backend connections).
pub struct ProxyWorkerStart {
    pub shared: ProxyShared,
    pub place: WorkerPlace,
    pub tcp: SharedTcpLayer,
}

/// Listens on every configured service's port on this core (so a port already taken is an
/// error at start, not later) and spawns its accept loop.
pub fn start_services(
    listen: Listen<'_>,
    handle: &Handle,
    services: &Services,
    proxy: Option<ProxyWorkerStart>,
    report: Option<StatisticsReport>,
) -> Result<(), SocketError> {
    let mut bind = |port: u16| listen(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port), BACKLOG);
    if let Some(start) = proxy {
        let port = bind(start.shared.settings.port)?;
        let worker = Worker::new(start.shared, start.place, start.tcp, handle.clone());
        proxy::start(port, worker);
    }
    if let Some(port) = services.responder {
        let listener = bind(port)?;
        // One body per core, shared by all of its connections.
        let body =
            responder::body_of_length(services.responder_body.unwrap_or(responder::BODY.len()));
        handle.spawn(responder::serve(listener, handle.clone(), body, report));
    }
    if let Some(port) = services.sink {
        let listener = bind(port)?;
        handle.spawn(transfer::serve(
            listener,
            handle.clone(),
            TransferService::Sink,
        ));
    }
    if let Some(port) = services.source {
        let listener = bind(port)?;
        handle.spawn(transfer::serve(
            listener,
            handle.clone(),
            TransferService::Source,
        ));
    }
    Ok(())
}
