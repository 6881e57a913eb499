//! Names of sockets and cores: a socket handle is a slot plus a generation, so a stale handle never reaches another socket.

/// Which core a TCP layer (and every socket in it) belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreId(pub u16);

/// A socket of one core's [`TcpLayer`](super::TcpLayer): listener or connection.
///
/// The slot is reused after the socket is released, but with a new generation: an old
/// handle then fails with [`SocketError::InvalidHandle`](super::SocketError::InvalidHandle)
/// instead of reading another socket's data. A handle of another core's layer fails the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketHandle {
    pub(crate) core: CoreId,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl SocketHandle {
    /// The core whose layer owns this socket.
    pub fn core(self) -> CoreId {
        self.core
    }

    /// The slot index (for display and introspection; slots are reused).
    pub fn slot(self) -> u32 {
        self.slot
    }

    /// The generation of the slot when this handle was issued.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

impl core::fmt::Display for SocketHandle {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            formatter,
            "{}:{}.{}",
            self.core.0, self.slot, self.generation
        )
    }
}
