//! An async listening socket: `TcpListener::bind` then `accept().await`.

use core::future::Future;
use core::net::SocketAddrV4;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::{SharedTcpLayer, SocketError, SocketHandle, TcpStream};

/// A listening socket of one core. Dropping it stops listening (connections not yet
/// accepted are reset).
pub struct TcpListener {
    stack: SharedTcpLayer,
    handle: SocketHandle,
}

impl TcpListener {
    /// Listens on `local` with an accept queue of `backlog` connections.
    pub fn bind(
        stack: &SharedTcpLayer,
        local: SocketAddrV4,
        backlog: usize,
    ) -> Result<TcpListener, SocketError> {
        let handle = stack.borrow_mut().listen(local, backlog)?;
        Ok(TcpListener {
            stack: stack.clone(),
            handle,
        })
    }

    /// The next established connection.
    pub fn accept(&self) -> Accept<'_> {
        Accept { listener: self }
    }

    /// The next established connection if one is queued, else `WouldBlock`.
    pub fn try_accept(&self) -> Result<TcpStream, SocketError> {
        let handle = self.stack.borrow_mut().accept(self.handle)?;
        Ok(TcpStream::from_handle(&self.stack, handle))
    }

    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    pub fn local_address(&self) -> Result<SocketAddrV4, SocketError> {
        self.stack.borrow().local_address(self.handle)
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        // A stale handle is the only possible error, and then there is nothing to release.
        let _ = self.stack.borrow_mut().close(self.handle);
    }
}

/// The future of [`TcpListener::accept`].
pub struct Accept<'a> {
    listener: &'a TcpListener,
}

impl Future for Accept<'_> {
    type Output = Result<TcpStream, SocketError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let listener = self.listener;
        let polled = listener
            .stack
            .borrow_mut()
            .poll_accept(listener.handle, context);
        polled.map(|result| result.map(|handle| TcpStream::from_handle(&listener.stack, handle)))
    }
}
