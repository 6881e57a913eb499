//! The DHCPv4 client (RFC 2131) as a state machine the caller drives: no socket, no clock inside.
//!
//! It lives in the kernel, next to the interface, because what it produces is the interface's
//! own configuration (address, prefix, routes, MTU) and its inputs are the stack's (UDP port
//! 68, an ARP probe). The caller (boot, next) owns the `UdpSocket` bound to 0.0.0.0:68 with
//! broadcast allowed, calls [`DhcpClient::poll`] at [`DhcpClient::next_deadline`], feeds it
//! each datagram with [`DhcpClient::receive`] and the ARP probe's verdict with
//! [`DhcpClient::probe_result`], and carries out the [`Action`]s returned.

mod client;
mod lease;

#[cfg(test)]
mod tests;

pub use client::{Action, DhcpClient, DhcpCounters, StateKind};
pub use lease::{ClasslessRoute, Lease, LeaseError, MINIMUM_MTU, parse_classless_routes};
