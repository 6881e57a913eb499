//! The socket API: handles instead of files, non-blocking calls with readiness, and an async face, for TCP and UDP.
//!
//! A core's tasks and its network interface share the core's [`TcpLayer`] single-threaded,
//! through a [`SharedTcpLayer`] (`Rc<RefCell<TcpLayer>>`): the interface keeps one clone and
//! feeds segments and timers into it; each [`TcpListener`] and [`TcpStream`] keeps another
//! clone plus its [`SocketHandle`]. A borrow is held only for the length of one call, never
//! across an `.await`, so the two sides never collide.
//!
//! The non-blocking calls live on [`TcpLayer`] itself (`listen`, `accept`, `connect`, `read`,
//! `write`, `shutdown`, `close`, `abort`, `set_option`, `readiness`, ...). The types here wrap
//! them in futures built on the layer's `poll_*` functions, which store the task's `Waker`
//! and wake it when the socket becomes ready. Timeouts come from the executor (race a future
//! against a sleep). Dropping a [`TcpStream`] closes it gracefully; dropping a
//! [`TcpListener`] stops listening.
//!
//! UDP has the same shape: a core's [`UdpLayer`] is shared as a [`SharedUdpLayer`] (the
//! interface's [`udp`](crate::net::interface::Interface::udp)), and a [`UdpSocket`] wraps a
//! [`UdpHandle`] with `send_to`/`recv_from` (and `send`/`recv` once connected) as futures.
//!
//! # Example: an echo server and a client on one core
//! ```no_run
//! use core::net::{Ipv4Addr, SocketAddrV4};
//! use unisock_kernel::net::tcp::{CoreId, TcpConfig, TcpLayer};
//! use unisock_kernel::socket::{SharedTcpLayer, SocketError, TcpListener, TcpStream};
//!
//! async fn echo_server(stack: SharedTcpLayer) -> Result<(), SocketError> {
//!     let listener = TcpListener::bind(&stack, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7), 128)?;
//!     loop {
//!         let stream = listener.accept().await?;
//!         let mut buffer = [0u8; 1024];
//!         loop {
//!             let count = stream.read(&mut buffer).await?;
//!             if count == 0 {
//!                 break; // the peer closed its side
//!             }
//!             stream.write_all(&buffer[..count]).await?;
//!         }
//!         stream.close()?;
//!     }
//! }
//!
//! async fn client(stack: SharedTcpLayer) -> Result<usize, SocketError> {
//!     let stream = TcpStream::connect(&stack, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7)).await?;
//!     stream.set_no_delay(true)?;
//!     stream.write_all(b"hello").await?;
//!     let mut reply = [0u8; 5];
//!     stream.read(&mut reply).await
//! }
//!
//! let stack = TcpLayer::new(TcpConfig::default(), CoreId(0), [7; 16]).into_shared();
//! stack.borrow_mut().set_source_address(Ipv4Addr::new(10, 0, 0, 1));
//! // The core's executor spawns echo_server(stack.clone()) and client(stack.clone());
//! // the interface feeds segments and timers into `stack` and drains its output.
//! ```

mod listener;
mod stream;
mod udp;

pub use crate::net::tcp::{Readiness, Shutdown, SocketError, SocketHandle, SocketOption, TcpLayer};
pub use crate::net::udp::{UdpError, UdpHandle, UdpLayer, UdpReadiness};
pub use listener::{Accept, TcpListener};
pub use stream::{Connect, Read, TcpStream, WriteAll};
pub use udp::{Recv, RecvFrom, SendTo, UdpSocket};

use alloc::rc::Rc;
use core::cell::RefCell;

/// One core's TCP layer, shared between the core's interface and its tasks.
pub type SharedTcpLayer = Rc<RefCell<TcpLayer>>;

/// One core's UDP layer, shared between the core's interface and its tasks.
pub type SharedUdpLayer = Rc<RefCell<UdpLayer>>;

impl UdpLayer {
    /// Wraps the layer for sharing between the interface and the tasks of its core.
    pub fn into_shared(self) -> SharedUdpLayer {
        Rc::new(RefCell::new(self))
    }
}

impl TcpLayer {
    /// Wraps the layer for sharing between the interface and the tasks of its core.
    pub fn into_shared(self) -> SharedTcpLayer {
        Rc::new(RefCell::new(self))
    }
}
