//! A port a core's worker serves: its local listener plus its place in the global listen table, left when the worker stops or disappears.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::global_listen::GlobalListenTable;
use crate::net::rfd::CoreId;
use crate::net::tcp::{SocketHandle, TcpState};
use crate::socket::{SharedTcpLayer, TcpListener};

/// The worker's side of `listen` on one core. While serving, new connections whose owner core
/// does not serve the port may be routed here by the global listener.
pub struct ServedPort {
    listener: TcpListener,
    tcp: SharedTcpLayer,
    core: CoreId,
    port: u16,
    table: Arc<GlobalListenTable>,
    serving: bool,
}

impl ServedPort {
    pub(super) fn new(
        listener: TcpListener,
        tcp: SharedTcpLayer,
        core: CoreId,
        table: Arc<GlobalListenTable>,
    ) -> ServedPort {
        let port = listener
            .local_address()
            .map(|address| address.port())
            .unwrap_or_default();
        table.serve(port, core);
        ServedPort {
            listener,
            tcp,
            core,
            port,
            table,
            serving: true,
        }
    }

    /// The local listener: `accept().await` or `try_accept()` on it.
    pub fn listener(&self) -> &TcpListener {
        &self.listener
    }

    pub fn handle(&self) -> SocketHandle {
        self.listener.handle()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_serving(&self) -> bool {
        self.serving
    }

    /// Leaves the serving set: from now on new connections owned by this core go to the
    /// global listener. The local listener stays open so that connections already in its
    /// queues (or forwarded here just before) can still be accepted; keep accepting until
    /// [`is_drained`](Self::is_drained), then drop it.
    pub fn stop_serving(&mut self) {
        if self.serving {
            self.serving = false;
            self.table.stop_serving(self.port, self.core);
        }
    }

    /// Joins the serving set again after [`stop_serving`](Self::stop_serving) (a drained core
    /// taken back into service): new connections owned by this core come here again.
    pub fn serve_again(&mut self) {
        if !self.serving {
            self.serving = true;
            self.table.serve(self.port, self.core);
        }
    }

    /// Nothing waits in the accept queue and no handshake is under way on this port. It lists
    /// the core's sockets (linear in their number): for a stopping worker, not the fast path.
    pub fn is_drained(&self) -> bool {
        let layer = self.tcp.borrow();
        if layer
            .readiness(self.listener.handle())
            .is_ok_and(|readiness| readiness.readable)
        {
            return false;
        }
        let mut sockets = Vec::new();
        layer.list_sockets(&mut sockets);
        !sockets.iter().any(|socket| {
            socket.state == TcpState::SynReceived
                && socket.handle.is_none()
                && socket.local.port() == self.port
        })
    }
}

/// What an application keeps to open more served ports on its core after start-up (a
/// listener added by reconfiguration): the same as the run loop's `listen`.
#[derive(Clone)]
pub struct PortOpener {
    tcp: SharedTcpLayer,
    core: CoreId,
    table: Arc<GlobalListenTable>,
}

impl PortOpener {
    /// For `core`'s layer `tcp` and the appliance's global listen `table` (the dispatcher makes
    /// one with [`CoreDispatcher::port_opener`](super::CoreDispatcher::port_opener)).
    pub fn new(tcp: SharedTcpLayer, core: CoreId, table: Arc<GlobalListenTable>) -> Self {
        PortOpener { tcp, core, table }
    }

    /// Listens on `local` on this core and serves the port in the global listen table. The
    /// dispatcher sees the new serving set at its next frame (it refreshes its view then).
    pub fn listen(
        &self,
        local: core::net::SocketAddrV4,
        backlog: usize,
    ) -> Result<ServedPort, crate::socket::SocketError> {
        let listener = TcpListener::bind(&self.tcp, local, backlog)?;
        Ok(ServedPort::new(
            listener,
            self.tcp.clone(),
            self.core,
            self.table.clone(),
        ))
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    pub fn tcp(&self) -> &SharedTcpLayer {
        &self.tcp
    }
}

impl Drop for ServedPort {
    fn drop(&mut self) {
        self.stop_serving();
    }
}
