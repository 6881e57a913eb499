//! The errors of the socket operations, one variant per cause.

/// Why a socket operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketError {
    /// Nothing can be done now (no data, no room, no pending connection); retry when ready.
    WouldBlock,
    /// The handle names no live socket of this layer (released, stale or of another core).
    InvalidHandle,
    /// The operation does not apply to this kind of socket (e.g. `accept` on a connection).
    InvalidOperation,
    /// An argument is out of range (e.g. a zero remote port).
    InvalidArgument,
    /// The peer reset the connection.
    ConnectionReset,
    /// The peer answered our SYN with a RST, or an ICMP error refused it.
    ConnectionRefused,
    /// The connection was aborted locally (by `abort`, or a limit).
    ConnectionAborted,
    /// The peer stopped answering: retransmission or keepalive limit reached.
    TimedOut,
    /// The destination is unreachable (ICMP destination unreachable during the handshake).
    Unreachable,
    /// The socket is not (yet, or no longer) connected.
    NotConnected,
    /// `write` after `shutdown(Write)` or `close`.
    Closed,
    /// The local port (or 4-tuple) is already taken.
    AddressInUse,
    /// No local address or no free local port to use.
    AddressNotAvailable,
    /// A per-core limit (connections, buffer memory, listeners) refused the request.
    LimitReached,
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let text = match self {
            SocketError::WouldBlock => "operation would block",
            SocketError::InvalidHandle => "invalid or stale socket handle",
            SocketError::InvalidOperation => "operation not valid for this socket",
            SocketError::InvalidArgument => "invalid argument",
            SocketError::ConnectionReset => "connection reset by peer",
            SocketError::ConnectionRefused => "connection refused",
            SocketError::ConnectionAborted => "connection aborted",
            SocketError::TimedOut => "connection timed out",
            SocketError::Unreachable => "destination unreachable",
            SocketError::NotConnected => "socket not connected",
            SocketError::Closed => "socket closed for writing",
            SocketError::AddressInUse => "address in use",
            SocketError::AddressNotAvailable => "address not available",
            SocketError::LimitReached => "per-core limit reached",
        };
        formatter.write_str(text)
    }
}
