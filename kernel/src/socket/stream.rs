//! An async connection: `TcpStream::connect(..).await`, `read(&mut buf).await`, `write_all(&buf).await`.

use core::future::Future;
use core::net::SocketAddrV4;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::{Readiness, SharedTcpLayer, Shutdown, SocketError, SocketHandle, SocketOption};

/// A connection of one core. Dropping it closes it gracefully (like [`TcpStream::close`]).
pub struct TcpStream {
    stack: SharedTcpLayer,
    handle: SocketHandle,
    /// `close` or `abort` already released the handle; `Drop` has nothing left to do.
    released: bool,
}

impl TcpStream {
    pub(super) fn from_handle(stack: &SharedTcpLayer, handle: SocketHandle) -> TcpStream {
        TcpStream {
            stack: stack.clone(),
            handle,
            released: false,
        }
    }

    /// Opens a connection to `remote` from the layer's source address and a port of its
    /// port allocator; completes when the handshake does.
    pub fn connect(stack: &SharedTcpLayer, remote: SocketAddrV4) -> Connect {
        Self::connect_from(stack, remote, None)
    }

    /// Like `connect`, from a chosen local address and port (port 0: allocate one).
    pub fn connect_from(
        stack: &SharedTcpLayer,
        remote: SocketAddrV4,
        local: Option<SocketAddrV4>,
    ) -> Connect {
        let started = stack.borrow_mut().connect(remote, local);
        Connect {
            stack: stack.clone(),
            started: Some(started),
            handle: None,
        }
    }

    pub fn handle(&self) -> SocketHandle {
        self.handle
    }

    /// Reads at least one byte into `buffer`; 0 means end of stream.
    pub fn read<'a>(&'a self, buffer: &'a mut [u8]) -> Read<'a> {
        Read {
            stream: self,
            buffer,
        }
    }

    /// Writes all of `data`, waiting for room in the send buffer as needed.
    pub fn write_all<'a>(&'a self, data: &'a [u8]) -> WriteAll<'a> {
        WriteAll {
            stream: self,
            data,
            written: 0,
        }
    }

    /// Non-blocking read (`WouldBlock` when nothing is pending).
    pub fn try_read(&self, buffer: &mut [u8]) -> Result<usize, SocketError> {
        self.stack.borrow_mut().read(self.handle, buffer)
    }

    /// Non-blocking write of as much as fits.
    pub fn try_write(&self, data: &[u8]) -> Result<usize, SocketError> {
        self.stack.borrow_mut().write(self.handle, data)
    }

    pub fn shutdown(&self, how: Shutdown) -> Result<(), SocketError> {
        self.stack.borrow_mut().shutdown(self.handle, how)
    }

    /// Closes gracefully and releases the handle (the layer finishes the close on its own).
    pub fn close(mut self) -> Result<(), SocketError> {
        self.released = true;
        self.stack.borrow_mut().close(self.handle)
    }

    /// Resets the connection and releases the handle.
    pub fn abort(mut self) -> Result<(), SocketError> {
        self.released = true;
        self.stack.borrow_mut().abort(self.handle)
    }

    pub fn set_no_delay(&self, no_delay: bool) -> Result<(), SocketError> {
        self.set_option(SocketOption::NoDelay(no_delay))
    }

    pub fn set_keepalive(&self, idle: Option<Duration>) -> Result<(), SocketError> {
        self.set_option(SocketOption::KeepAlive(idle))
    }

    pub fn set_option(&self, option: SocketOption) -> Result<(), SocketError> {
        self.stack.borrow_mut().set_option(self.handle, option)
    }

    pub fn local_address(&self) -> Result<SocketAddrV4, SocketError> {
        self.stack.borrow().local_address(self.handle)
    }

    pub fn peer_address(&self) -> Result<SocketAddrV4, SocketError> {
        self.stack.borrow().peer_address(self.handle)
    }

    pub fn readiness(&self) -> Result<Readiness, SocketError> {
        self.stack.borrow().readiness(self.handle)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if !self.released {
            // A stale handle is the only possible error, and then there is nothing to release.
            let _ = self.stack.borrow_mut().close(self.handle);
        }
    }
}

/// The future of [`TcpStream::connect`].
pub struct Connect {
    stack: SharedTcpLayer,
    started: Option<Result<SocketHandle, SocketError>>,
    handle: Option<SocketHandle>,
}

impl Future for Connect {
    type Output = Result<TcpStream, SocketError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(started) = self.started.take() {
            match started {
                Ok(handle) => self.handle = Some(handle),
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        let Some(handle) = self.handle else {
            return Poll::Ready(Err(SocketError::InvalidHandle));
        };
        let polled = self.stack.borrow_mut().poll_connect(handle, context);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => {
                self.handle = None;
                Poll::Ready(Ok(TcpStream::from_handle(&self.stack, handle)))
            }
            Poll::Ready(Err(error)) => {
                self.handle = None;
                let _ = self.stack.borrow_mut().abort(handle);
                Poll::Ready(Err(error))
            }
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        // A connect abandoned before completion (e.g. by a timeout) resets the attempt.
        if let Some(handle) = self.handle.take() {
            let _ = self.stack.borrow_mut().abort(handle);
        }
        if let Some(Ok(handle)) = self.started.take() {
            let _ = self.stack.borrow_mut().abort(handle);
        }
    }
}

/// The future of [`TcpStream::read`].
pub struct Read<'a> {
    stream: &'a TcpStream,
    buffer: &'a mut [u8],
}

impl Future for Read<'_> {
    type Output = Result<usize, SocketError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let stream = this.stream;
        stream
            .stack
            .borrow_mut()
            .poll_read(stream.handle, context, this.buffer)
    }
}

/// The future of [`TcpStream::write_all`].
pub struct WriteAll<'a> {
    stream: &'a TcpStream,
    data: &'a [u8],
    written: usize,
}

impl Future for WriteAll<'_> {
    type Output = Result<(), SocketError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let stream = this.stream;
        while this.written < this.data.len() {
            let polled = stream.stack.borrow_mut().poll_write(
                stream.handle,
                context,
                &this.data[this.written..],
            );
            match polled {
                Poll::Ready(Ok(count)) => this.written += count,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}
