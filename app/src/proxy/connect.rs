//! Opening a backend connection from this core's stack, and telling the proxy's own failures (no local port, a full connection table) from the backend's.

use unisock_kernel::socket::{SocketError, TcpStream};

use super::errors::ProxyError;
use super::statistics::MeteredSide;
use super::stream::BufferedStream;
use super::worker::Worker;

/// Why a backend connection could not be opened.
pub(super) enum ConnectFailure {
    /// The backend or its network refused, reset, was unreachable (502) or did not answer
    /// the handshake in time (504): charged to the backend.
    Backend(ProxyError),
    /// The proxy's own (its core's connection table full, no free local port): answered
    /// 503 and never charged to a backend.
    Local(SocketError),
}

/// Whether a socket error is the proxy's own: its core's connection table is full, no local
/// port or address is free, or the stack refused the operation. Such an error says nothing
/// about the backend, so it never counts against one, whether a connect here or a health
/// probe (`health`) met it; the others (refused, reset, timed out, unreachable) are the
/// backend's or its network's.
pub(super) fn is_local(error: SocketError) -> bool {
    match error {
        SocketError::LimitReached
        | SocketError::AddressNotAvailable
        | SocketError::AddressInUse
        | SocketError::ConnectionAborted
        | SocketError::WouldBlock
        | SocketError::InvalidHandle
        | SocketError::InvalidOperation
        | SocketError::InvalidArgument
        | SocketError::Closed => true,
        SocketError::ConnectionReset
        | SocketError::ConnectionRefused
        | SocketError::TimedOut
        | SocketError::Unreachable
        | SocketError::NotConnected => false,
    }
}

/// A new connection to `backend`, from this core's stack: its local port comes from the
/// core's Receive Flow Deliver allocator, so the replies land on this core.
pub(super) async fn connect(
    worker: &Worker,
    backend: usize,
) -> Result<BufferedStream, ConnectFailure> {
    let settings = worker.settings();
    let address = settings.pool.backends[backend].address;
    worker.statistics().backend_connects.increment();
    if let Some(counters) = worker.statistics().backend(backend) {
        counters.connections_opened.increment();
    }
    let connect = TcpStream::connect(worker.tcp(), address);
    match worker
        .handle()
        .timeout(settings.timeouts.connect, connect)
        .await
    {
        Ok(Ok(stream)) => {
            let _ = stream.set_no_delay(true);
            let meter = worker.meter(MeteredSide::Backend(backend));
            Ok(BufferedStream::new(stream).metered(meter))
        }
        Ok(Err(error)) if is_local(error) => Err(ConnectFailure::Local(error)),
        Ok(Err(_)) => Err(ConnectFailure::Backend(ProxyError::BadGateway)),
        Err(_elapsed) => Err(ConnectFailure::Backend(ProxyError::GatewayTimeout)),
    }
}
