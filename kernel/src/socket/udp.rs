//! A UDP socket of one core: `UdpSocket::bind(..)`, `send_to(..).await`, `recv_from(&mut buf).await`, and connected `send`/`recv`.

use core::future::Future;
use core::net::SocketAddrV4;
use core::pin::Pin;
use core::task::{Context, Poll};

use super::{SharedUdpLayer, UdpError, UdpHandle, UdpReadiness};

/// A UDP socket of one core. Dropping it closes it (like [`UdpSocket::close`]).
///
/// It lives on the core whose layer it was opened on: datagrams to its port are brought to
/// that core whatever queue they arrive on (see `net::partition`), and an ephemeral port is
/// picked so that replies usually arrive there directly.
pub struct UdpSocket {
    stack: SharedUdpLayer,
    handle: UdpHandle,
    /// `close` already released the handle; `Drop` has nothing left to do.
    released: bool,
}

impl UdpSocket {
    /// A socket bound to `local` (unspecified or our address); port 0 takes an ephemeral port.
    pub fn bind(stack: &SharedUdpLayer, local: SocketAddrV4) -> Result<UdpSocket, UdpError> {
        let handle = stack.borrow_mut().bind(local)?;
        Ok(UdpSocket::from_handle(stack, handle))
    }

    /// A socket on an ephemeral port, connected to `remote`: the port is chosen for that peer
    /// so that its replies steer to this core, it sends with [`send`](Self::send) and hears
    /// only `remote`. A resolver's query socket.
    pub fn connect(stack: &SharedUdpLayer, remote: SocketAddrV4) -> Result<UdpSocket, UdpError> {
        let handle = stack.borrow_mut().connect_new(remote)?;
        Ok(UdpSocket::from_handle(stack, handle))
    }

    fn from_handle(stack: &SharedUdpLayer, handle: UdpHandle) -> UdpSocket {
        UdpSocket {
            stack: stack.clone(),
            handle,
            released: false,
        }
    }

    pub fn handle(&self) -> UdpHandle {
        self.handle
    }

    /// Connects a bound socket to `remote` (the port stays the one it has).
    pub fn connect_to(&self, remote: SocketAddrV4) -> Result<(), UdpError> {
        self.stack.borrow_mut().connect(self.handle, remote)
    }

    /// Allows sending to broadcast addresses (`SO_BROADCAST`; a DHCP client needs it).
    pub fn set_broadcast(&self, allowed: bool) -> Result<(), UdpError> {
        self.stack.borrow_mut().set_broadcast(self.handle, allowed)
    }

    /// Non-blocking send of one datagram (`WouldBlock` when the core's output queue is full).
    pub fn try_send_to(&self, destination: SocketAddrV4, data: &[u8]) -> Result<usize, UdpError> {
        self.stack
            .borrow_mut()
            .send_to(self.handle, destination, data)
    }

    /// Non-blocking send to the peer.
    pub fn try_send(&self, data: &[u8]) -> Result<usize, UdpError> {
        self.stack.borrow_mut().send(self.handle, data)
    }

    /// Non-blocking receive of one datagram (`WouldBlock` when none is queued).
    pub fn try_recv_from(&self, buffer: &mut [u8]) -> Result<(usize, SocketAddrV4), UdpError> {
        self.stack.borrow_mut().recv_from(self.handle, buffer)
    }

    /// Non-blocking receive from the peer.
    pub fn try_recv(&self, buffer: &mut [u8]) -> Result<usize, UdpError> {
        self.stack.borrow_mut().recv(self.handle, buffer)
    }

    /// Sends one datagram, waiting for room in the core's output queue if need be.
    pub fn send_to<'a>(&'a self, destination: SocketAddrV4, data: &'a [u8]) -> SendTo<'a> {
        SendTo {
            socket: self,
            destination: Some(destination),
            data,
        }
    }

    /// Sends one datagram to the peer (`NotConnected` without one).
    pub fn send<'a>(&'a self, data: &'a [u8]) -> SendTo<'a> {
        SendTo {
            socket: self,
            destination: None,
            data,
        }
    }

    /// Receives one datagram: the bytes copied into `buffer` (the rest of a longer datagram
    /// is discarded) and its sender.
    pub fn recv_from<'a>(&'a self, buffer: &'a mut [u8]) -> RecvFrom<'a> {
        RecvFrom {
            socket: self,
            buffer,
        }
    }

    /// Receives one datagram from the peer (`NotConnected` without one).
    pub fn recv<'a>(&'a self, buffer: &'a mut [u8]) -> Recv<'a> {
        Recv {
            receive: self.recv_from(buffer),
        }
    }

    pub fn local_address(&self) -> Result<SocketAddrV4, UdpError> {
        self.stack.borrow().local_address(self.handle)
    }

    pub fn peer_address(&self) -> Result<SocketAddrV4, UdpError> {
        self.stack.borrow().peer_address(self.handle)
    }

    pub fn readiness(&self) -> Result<UdpReadiness, UdpError> {
        self.stack.borrow().readiness(self.handle)
    }

    /// Datagrams lost because this socket's receive queue was full.
    pub fn dropped_count(&self) -> Result<u64, UdpError> {
        self.stack.borrow().dropped_count(self.handle)
    }

    /// Closes the socket and frees its port.
    pub fn close(mut self) -> Result<(), UdpError> {
        self.released = true;
        self.stack.borrow_mut().close(self.handle)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        if !self.released {
            // A stale handle is the only possible error, and then there is nothing to release.
            let _ = self.stack.borrow_mut().close(self.handle);
        }
    }
}

/// The future of [`UdpSocket::send_to`] and [`UdpSocket::send`].
pub struct SendTo<'a> {
    socket: &'a UdpSocket,
    /// `None`: the socket's peer.
    destination: Option<SocketAddrV4>,
    data: &'a [u8],
}

impl Future for SendTo<'_> {
    type Output = Result<usize, UdpError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let socket = this.socket;
        let mut stack = socket.stack.borrow_mut();
        let destination = match this.destination {
            Some(destination) => destination,
            None => match stack.peer_address(socket.handle) {
                Ok(peer) => peer,
                Err(error) => return Poll::Ready(Err(error)),
            },
        };
        stack.poll_send_to(socket.handle, context, destination, this.data)
    }
}

/// The future of [`UdpSocket::recv_from`].
pub struct RecvFrom<'a> {
    socket: &'a UdpSocket,
    buffer: &'a mut [u8],
}

impl Future for RecvFrom<'_> {
    type Output = Result<(usize, SocketAddrV4), UdpError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let socket = this.socket;
        socket
            .stack
            .borrow_mut()
            .poll_recv_from(socket.handle, context, this.buffer)
    }
}

/// The future of [`UdpSocket::recv`].
pub struct Recv<'a> {
    receive: RecvFrom<'a>,
}

impl Future for Recv<'_> {
    type Output = Result<usize, UdpError>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let socket = this.receive.socket;
        if let Err(error) = socket.stack.borrow().peer_address(socket.handle) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut this.receive)
            .poll(context)
            .map(|result| result.map(|(count, _)| count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tcp::CoreId;
    use crate::net::udp::{UdpConfig, UdpLayer};
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::net::Ipv4Addr;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use core::task::Waker;

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const RESOLVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 53), 53);

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stack(config: UdpConfig) -> SharedUdpLayer {
        let mut layer = UdpLayer::new(config, CoreId(0), 3);
        layer.set_source_address(US);
        layer.into_shared()
    }

    #[test]
    fn a_pending_receive_is_woken_by_the_datagram_it_waits_for() {
        let stack = stack(UdpConfig::default());
        let socket = UdpSocket::connect(&stack, RESOLVER).unwrap();
        let local = socket.local_address().unwrap();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut context = Context::from_waker(&waker);
        let mut buffer = [0u8; 64];
        {
            let mut receive = socket.recv(&mut buffer);
            assert!(Pin::new(&mut receive).poll(&mut context).is_pending());
            stack
                .borrow_mut()
                .on_datagram(RESOLVER, SocketAddrV4::new(US, local.port()), b"answer")
                .unwrap();
            assert_eq!(counter.0.load(Ordering::Relaxed), 1);
            assert_eq!(
                Pin::new(&mut receive).poll(&mut context),
                Poll::Ready(Ok(6))
            );
        }
        assert_eq!(&buffer[..6], b"answer");
        let mut send = socket.send(b"query");
        assert_eq!(Pin::new(&mut send).poll(&mut context), Poll::Ready(Ok(5)));
    }

    #[test]
    fn a_send_waits_for_room_and_an_unconnected_send_fails_at_once() {
        let stack = stack(UdpConfig {
            output_queue_datagrams: 1,
            ..UdpConfig::default()
        });
        let socket = UdpSocket::bind(&stack, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut context = Context::from_waker(&waker);
        assert_eq!(socket.try_send_to(RESOLVER, b"one"), Ok(3));
        let mut send = socket.send_to(RESOLVER, b"two");
        assert!(Pin::new(&mut send).poll(&mut context).is_pending());
        stack.borrow_mut().drain_output_up_to(1, |_| {});
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        assert_eq!(Pin::new(&mut send).poll(&mut context), Poll::Ready(Ok(3)));
        let mut unconnected = socket.send(b"x");
        assert_eq!(
            Pin::new(&mut unconnected).poll(&mut context),
            Poll::Ready(Err(UdpError::NotConnected))
        );
    }

    #[test]
    fn dropping_a_socket_frees_its_port() {
        let stack = stack(UdpConfig::default());
        let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 514);
        let socket = UdpSocket::bind(&stack, local).unwrap();
        assert_eq!(
            UdpSocket::bind(&stack, local).err(),
            Some(UdpError::AddressInUse)
        );
        drop(socket);
        assert_eq!(stack.borrow().socket_count(), 0);
        UdpSocket::bind(&stack, local).unwrap().close().unwrap();
    }
}
