//! One core's UDP (RFC 768): its sockets, the table from local port to socket, each socket's bounded receive queue, and the datagrams waiting to be sent.
//!
//! Like the TCP layer, a `UdpLayer` belongs to one core and is touched only by that core's
//! thread (the interface feeds it and drains it, the core's tasks call it through
//! [`crate::socket::UdpSocket`]); nothing in it is shared or locked. A datagram reaches the
//! layer of the core that owns its destination port (the partition's dispatcher decides, see
//! `net::partition`), so a socket sees every datagram for it whatever queue it arrived on.
//!
//! A port is bound by at most one socket of a core (no `SO_REUSEADDR`); the same port may be
//! bound on several cores, one socket each, which is how a server takes datagrams on every
//! core. A connected socket takes datagrams from its peer only; others are treated as if no
//! socket had the port (Linux's lookup does the same, and answers them with port unreachable).

pub mod datagram;
mod ports;

pub use ports::{RandomEphemeralPorts, UdpPortPolicy, next_random};

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::task::{Context, Poll, Waker};

use super::ethernet;
use super::icmp::IcmpErrorKind;
use super::ipv4;
use super::tcp::CoreId;

/// The `domain` of [`crate::net::tcp::TcpLayer::derived_secret`] that seeds a core's choice
/// of ephemeral UDP ports.
pub const PORT_SEED_DOMAIN: u64 = 0x7564_705f_706f_7274;

/// The largest payload a datagram may carry: we never fragment, so header and payload fit one
/// Ethernet MTU (1500 - 20 - 8).
pub const MAX_PAYLOAD: usize = ethernet::MTU - ipv4::HEADER_LEN - datagram::HEADER_LEN;

/// Limits of one core's UDP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Datagrams a socket's receive queue holds; more are dropped and counted (Linux bounds
    /// the queue by `SO_RCVBUF` bytes; we bound both the count and the bytes).
    pub receive_queue_datagrams: usize,
    /// Payload bytes a socket's receive queue holds.
    pub receive_queue_bytes: usize,
    /// Datagrams waiting for the interface to send them, all sockets of the core together;
    /// a send that finds it full gets `WouldBlock` (the async send waits for room).
    pub output_queue_datagrams: usize,
    /// Sockets open at once on the core.
    pub max_sockets: usize,
}

impl Default for UdpConfig {
    fn default() -> UdpConfig {
        UdpConfig {
            receive_queue_datagrams: 64,
            receive_queue_bytes: 64 * 1024,
            output_queue_datagrams: 256,
            max_sockets: 1024,
        }
    }
}

/// A UDP socket of one core: the slot in that core's layer and the slot's generation, so a
/// handle kept after `close` never reaches the socket that reuses the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    core: CoreId,
    slot: u32,
    generation: u32,
}

impl UdpHandle {
    pub fn core(self) -> CoreId {
        self.core
    }
}

/// Why a UDP socket call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpError {
    /// Nothing to receive, or no room to queue a datagram for sending, now.
    WouldBlock,
    /// Another socket of this core is bound to the port.
    AddressInUse,
    /// The local address is neither unspecified nor ours.
    AddressNotAvailable,
    /// No free ephemeral port (for port 0).
    NoFreePort,
    /// The core has `max_sockets` sockets open.
    TooManySockets,
    /// A closed socket, or one of another core.
    InvalidHandle,
    /// `send` or `recv` on a socket with no peer.
    NotConnected,
    /// The payload is larger than [`MAX_PAYLOAD`] (Linux: `EMSGSIZE`).
    MessageTooLong,
    /// Port 0, the unspecified address or a multicast address (no IGMP here) as a destination.
    InvalidDestination,
    /// A broadcast destination on a socket without [`UdpLayer::set_broadcast`] (Linux:
    /// `EACCES` without `SO_BROADCAST`), so that a mistyped address cannot flood the link.
    BroadcastNotAllowed,
    /// The peer of a connected socket answered with ICMP port or protocol unreachable, or an
    /// administrative prohibition (Linux: `ECONNREFUSED`); reported once, by the next receive.
    ConnectionRefused,
    /// A router answered a connected socket's datagram with "communication administratively
    /// prohibited" by filter (code 13; Linux: `EHOSTUNREACH`); reported once, like the above.
    HostUnreachable,
}

/// Why a received datagram found no home.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpInputError {
    /// No socket of this core is bound to the port (or its socket is connected to another peer).
    NoSocket,
    /// The socket's receive queue is full.
    QueueFull,
}

/// Whether a socket call would complete now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpReadiness {
    /// A datagram is queued.
    pub readable: bool,
    /// The core's output queue has room for a datagram.
    pub writable: bool,
    /// An ICMP error waits to be reported by the next receive.
    pub error: Option<UdpError>,
}

/// Counters of one core's UDP layer (the drops of received datagrams are the interface's,
/// by reason).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams queued on a socket.
    pub datagrams_received: u64,
    /// Datagrams handed to the interface to send.
    pub datagrams_sent: u64,
    /// Sends refused because the output queue was full.
    pub send_queue_full: u64,
    /// Binds to port 0 that found no free port.
    pub ports_exhausted: u64,
    /// ICMP errors that reached a connected socket as an error.
    pub icmp_errors: u64,
    /// Sends to a broadcast address refused because the socket did not allow broadcast.
    pub broadcast_refused: u64,
}

/// A datagram waiting to be sent, as the interface takes it.
#[derive(Clone, Copy, Debug)]
pub struct OutDatagram<'a> {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub payload: &'a [u8],
}

struct QueuedDatagram {
    source: SocketAddrV4,
    payload: Vec<u8>,
}

struct Socket {
    local: SocketAddrV4,
    peer: Option<SocketAddrV4>,
    received: VecDeque<QueuedDatagram>,
    received_bytes: usize,
    /// Datagrams dropped because `received` was full (Linux's `SO_RXQ_OVFL` count).
    dropped: u64,
    /// An ICMP error not yet reported (Linux's `sk_err`).
    error: Option<UdpError>,
    /// May send to broadcast addresses (`SO_BROADCAST`).
    broadcast: bool,
    receive_waker: Option<Waker>,
}

struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

struct Outgoing {
    source: SocketAddrV4,
    destination: SocketAddrV4,
    payload: Vec<u8>,
}

/// One core's UDP sockets.
pub struct UdpLayer {
    config: UdpConfig,
    core: CoreId,
    source_address: Ipv4Addr,
    /// Our subnet's directed broadcast address, if the prefix has one.
    subnet_broadcast: Option<Ipv4Addr>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    open: usize,
    /// Local port -> slot.
    ports: hashbrown::HashMap<u16, u32>,
    output: VecDeque<Outgoing>,
    /// Tasks waiting for room in `output`.
    send_wakers: Vec<Waker>,
    port_policy: Box<dyn UdpPortPolicy>,
    counters: UdpCounters,
}

impl UdpLayer {
    /// A layer for `core`; `port_seed` seeds the choice of ephemeral ports (pass a random
    /// number: DNS relies on unpredictable source ports, RFC 5452 section 9.2).
    pub fn new(config: UdpConfig, core: CoreId, port_seed: u64) -> UdpLayer {
        UdpLayer {
            config,
            core,
            source_address: Ipv4Addr::UNSPECIFIED,
            subnet_broadcast: None,
            slots: Vec::new(),
            free_slots: Vec::new(),
            open: 0,
            ports: hashbrown::HashMap::new(),
            output: VecDeque::new(),
            send_wakers: Vec::new(),
            port_policy: Box::new(RandomEphemeralPorts::new(port_seed)),
            counters: UdpCounters::default(),
        }
    }

    pub fn core(&self) -> CoreId {
        self.core
    }

    pub fn config(&self) -> &UdpConfig {
        &self.config
    }

    pub fn counters(&self) -> &UdpCounters {
        &self.counters
    }

    /// Our address, the source of every datagram sent (the interface sets it).
    pub fn set_source_address(&mut self, address: Ipv4Addr) {
        self.source_address = address;
    }

    /// Our subnet's directed broadcast address (the interface sets it), which a socket may
    /// send to only with broadcast allowed, like 255.255.255.255.
    pub fn set_subnet_broadcast(&mut self, address: Option<Ipv4Addr>) {
        self.subnet_broadcast = address;
    }

    /// Replaces how port 0 is resolved (a partitioned core installs one that picks ports
    /// whose replies steer to it).
    pub fn set_port_policy(&mut self, policy: Box<dyn UdpPortPolicy>) {
        self.port_policy = policy;
    }

    /// Sockets open now.
    pub fn socket_count(&self) -> usize {
        self.open
    }

    // ----- socket calls -----

    /// Opens a socket bound to `local`; port 0 takes a free ephemeral port.
    pub fn bind(&mut self, local: SocketAddrV4) -> Result<UdpHandle, UdpError> {
        self.bind_towards(local, None)
    }

    /// Opens a socket on an ephemeral port connected to `remote`: the port is chosen knowing
    /// the peer, so that under port-XOR steering its replies reach this core with no hand-over.
    pub fn connect_new(&mut self, remote: SocketAddrV4) -> Result<UdpHandle, UdpError> {
        check_destination(remote)?;
        let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        let handle = self.bind_towards(local, Some(remote))?;
        self.connect(handle, remote)?;
        Ok(handle)
    }

    fn bind_towards(
        &mut self,
        local: SocketAddrV4,
        remote: Option<SocketAddrV4>,
    ) -> Result<UdpHandle, UdpError> {
        if !local.ip().is_unspecified() && *local.ip() != self.source_address {
            return Err(UdpError::AddressNotAvailable);
        }
        if self.open >= self.config.max_sockets {
            return Err(UdpError::TooManySockets);
        }
        let port = if local.port() == 0 {
            let ports = &self.ports;
            let chosen = self
                .port_policy
                .choose_port(self.source_address, remote, &mut |port| {
                    !ports.contains_key(&port)
                });
            match chosen {
                Some(port) if port != 0 && !self.ports.contains_key(&port) => port,
                _ => {
                    self.counters.ports_exhausted += 1;
                    return Err(UdpError::NoFreePort);
                }
            }
        } else if self.ports.contains_key(&local.port()) {
            return Err(UdpError::AddressInUse);
        } else {
            local.port()
        };
        let socket = Socket {
            local: SocketAddrV4::new(*local.ip(), port),
            peer: None,
            received: VecDeque::new(),
            received_bytes: 0,
            dropped: 0,
            error: None,
            broadcast: false,
            receive_waker: None,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize].socket = Some(socket);
                slot
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    socket: Some(socket),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.open += 1;
        self.ports.insert(port, slot);
        self.port_policy.on_bound(port);
        Ok(UdpHandle {
            core: self.core,
            slot,
            generation: self.slots[slot as usize].generation,
        })
    }

    /// Sets the socket's peer: `send` goes there, and only its datagrams are received.
    pub fn connect(&mut self, handle: UdpHandle, remote: SocketAddrV4) -> Result<(), UdpError> {
        check_destination(remote)?;
        self.socket_mut(handle)?.peer = Some(remote);
        Ok(())
    }

    /// Allows (or forbids again) sending to broadcast addresses: a DHCP client's DISCOVER
    /// needs it (`SO_BROADCAST`).
    pub fn set_broadcast(&mut self, handle: UdpHandle, allowed: bool) -> Result<(), UdpError> {
        self.socket_mut(handle)?.broadcast = allowed;
        Ok(())
    }

    /// Queues one datagram of `payload` to `destination`; it leaves at the interface's next poll.
    pub fn send_to(
        &mut self,
        handle: UdpHandle,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> Result<usize, UdpError> {
        check_destination(destination)?;
        if payload.len() > MAX_PAYLOAD {
            return Err(UdpError::MessageTooLong);
        }
        let source_address = self.source_address;
        let socket = self.socket(handle)?;
        let local = socket.local;
        let is_broadcast =
            destination.ip().is_broadcast() || Some(*destination.ip()) == self.subnet_broadcast;
        if is_broadcast && !socket.broadcast {
            self.counters.broadcast_refused += 1;
            return Err(UdpError::BroadcastNotAllowed);
        }
        if self.output.len() >= self.config.output_queue_datagrams {
            self.counters.send_queue_full += 1;
            return Err(UdpError::WouldBlock);
        }
        self.output.push_back(Outgoing {
            source: SocketAddrV4::new(source_address, local.port()),
            destination,
            payload: payload.to_vec(),
        });
        Ok(payload.len())
    }

    /// `send_to` the socket's peer.
    pub fn send(&mut self, handle: UdpHandle, payload: &[u8]) -> Result<usize, UdpError> {
        let peer = self.socket(handle)?.peer.ok_or(UdpError::NotConnected)?;
        self.send_to(handle, peer, payload)
    }

    /// Takes the oldest queued datagram: copies as much of it as fits in `buffer` (the rest of
    /// a longer one is discarded, as `recvfrom` does without `MSG_TRUNC`) and returns the
    /// bytes copied and the sender.
    pub fn recv_from(
        &mut self,
        handle: UdpHandle,
        buffer: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), UdpError> {
        let socket = self.socket_mut(handle)?;
        if let Some(error) = socket.error.take() {
            return Err(error);
        }
        let datagram = socket.received.pop_front().ok_or(UdpError::WouldBlock)?;
        socket.received_bytes -= datagram.payload.len();
        let count = datagram.payload.len().min(buffer.len());
        buffer[..count].copy_from_slice(&datagram.payload[..count]);
        Ok((count, datagram.source))
    }

    /// `recv_from` on a connected socket (which only holds its peer's datagrams).
    pub fn recv(&mut self, handle: UdpHandle, buffer: &mut [u8]) -> Result<usize, UdpError> {
        if self.socket(handle)?.peer.is_none() {
            return Err(UdpError::NotConnected);
        }
        self.recv_from(handle, buffer).map(|(count, _)| count)
    }

    /// `recv_from`, or `Pending` with the task's waker stored until a datagram arrives.
    pub fn poll_recv_from(
        &mut self,
        handle: UdpHandle,
        context: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<Result<(usize, SocketAddrV4), UdpError>> {
        match self.recv_from(handle, buffer) {
            Err(UdpError::WouldBlock) => {
                if let Ok(socket) = self.socket_mut(handle) {
                    register(&mut socket.receive_waker, context.waker());
                }
                Poll::Pending
            }
            result => Poll::Ready(result),
        }
    }

    /// `send_to`, or `Pending` with the task's waker stored until the output queue has room.
    pub fn poll_send_to(
        &mut self,
        handle: UdpHandle,
        context: &mut Context<'_>,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> Poll<Result<usize, UdpError>> {
        match self.send_to(handle, destination, payload) {
            Err(UdpError::WouldBlock) => {
                if !self
                    .send_wakers
                    .iter()
                    .any(|waker| waker.will_wake(context.waker()))
                {
                    self.send_wakers.push(context.waker().clone());
                }
                Poll::Pending
            }
            result => Poll::Ready(result),
        }
    }

    /// Closes the socket: its port is free again and its queued datagrams are gone (those it
    /// already sent still leave).
    pub fn close(&mut self, handle: UdpHandle) -> Result<(), UdpError> {
        self.socket(handle)?;
        let slot = &mut self.slots[handle.slot as usize];
        let Some(socket) = slot.socket.take() else {
            return Err(UdpError::InvalidHandle);
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(handle.slot);
        self.open -= 1;
        self.ports.remove(&socket.local.port());
        self.port_policy.on_released(socket.local.port());
        Ok(())
    }

    pub fn readiness(&self, handle: UdpHandle) -> Result<UdpReadiness, UdpError> {
        let socket = self.socket(handle)?;
        Ok(UdpReadiness {
            readable: !socket.received.is_empty() || socket.error.is_some(),
            writable: self.output.len() < self.config.output_queue_datagrams,
            error: socket.error,
        })
    }

    pub fn local_address(&self, handle: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        Ok(self.socket(handle)?.local)
    }

    pub fn peer_address(&self, handle: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        self.socket(handle)?.peer.ok_or(UdpError::NotConnected)
    }

    /// Datagrams this socket lost to a full receive queue.
    pub fn dropped_count(&self, handle: UdpHandle) -> Result<u64, UdpError> {
        Ok(self.socket(handle)?.dropped)
    }

    /// Whether a socket of this core is bound to `port`.
    pub fn is_bound(&self, port: u16) -> bool {
        self.ports.contains_key(&port)
    }

    fn socket(&self, handle: UdpHandle) -> Result<&Socket, UdpError> {
        if handle.core != self.core {
            return Err(UdpError::InvalidHandle);
        }
        self.slots
            .get(handle.slot as usize)
            .filter(|slot| slot.generation == handle.generation)
            .and_then(|slot| slot.socket.as_ref())
            .ok_or(UdpError::InvalidHandle)
    }

    fn socket_mut(&mut self, handle: UdpHandle) -> Result<&mut Socket, UdpError> {
        if handle.core != self.core {
            return Err(UdpError::InvalidHandle);
        }
        self.slots
            .get_mut(handle.slot as usize)
            .filter(|slot| slot.generation == handle.generation)
            .and_then(|slot| slot.socket.as_mut())
            .ok_or(UdpError::InvalidHandle)
    }

    // ----- the interface's side -----

    /// A datagram whose checks passed, from `source` to `destination` (our address or a
    /// broadcast): queued on the socket bound to the port, or refused.
    pub fn on_datagram(
        &mut self,
        source: SocketAddrV4,
        destination: SocketAddrV4,
        payload: &[u8],
    ) -> Result<(), UdpInputError> {
        let slot = *self
            .ports
            .get(&destination.port())
            .ok_or(UdpInputError::NoSocket)?;
        let limits = self.config;
        let Some(socket) = self.slots[slot as usize].socket.as_mut() else {
            return Err(UdpInputError::NoSocket);
        };
        // A connected socket hears its peer only; one bound to our address (not the wildcard)
        // hears no broadcast, as on Linux.
        if socket.peer.is_some_and(|peer| peer != source)
            || (!socket.local.ip().is_unspecified() && socket.local.ip() != destination.ip())
        {
            return Err(UdpInputError::NoSocket);
        }
        if socket.received.len() >= limits.receive_queue_datagrams
            || socket.received_bytes + payload.len() > limits.receive_queue_bytes
        {
            socket.dropped += 1;
            return Err(UdpInputError::QueueFull);
        }
        socket.received_bytes += payload.len();
        socket.received.push_back(QueuedDatagram {
            source,
            payload: payload.to_vec(),
        });
        if let Some(waker) = socket.receive_waker.take() {
            waker.wake();
        }
        self.counters.datagrams_received += 1;
        Ok(())
    }

    /// An ICMP error about a datagram we sent from `local` to `remote`. Like Linux without
    /// `IP_RECVERR`: only a socket connected to `remote` hears it, and only a hard error
    /// (RFC 1122 4.1.3.3 lets UDP pass ICMP errors up; Linux's `icmp_err_convert` says which
    /// are fatal); it fails the next receive once. Soft errors are ignored.
    pub fn on_icmp_error(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        kind: IcmpErrorKind,
    ) -> Result<(), UdpInputError> {
        let slot = *self
            .ports
            .get(&local.port())
            .ok_or(UdpInputError::NoSocket)?;
        let Some(socket) = self.slots[slot as usize].socket.as_mut() else {
            return Err(UdpInputError::NoSocket);
        };
        if socket.peer != Some(remote) {
            return Err(UdpInputError::NoSocket);
        }
        let error = match kind {
            IcmpErrorKind::PortUnreachable | IcmpErrorKind::ProtocolUnreachable => {
                UdpError::ConnectionRefused
            }
            IcmpErrorKind::AdministrativelyProhibited { code: 9 | 10 } => {
                UdpError::ConnectionRefused
            }
            IcmpErrorKind::AdministrativelyProhibited { .. } => UdpError::HostUnreachable,
            _ => return Ok(()),
        };
        socket.error = Some(error);
        if let Some(waker) = socket.receive_waker.take() {
            waker.wake();
        }
        self.counters.icmp_errors += 1;
        Ok(())
    }

    /// Whether datagrams wait to be sent.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Hands at most `room` queued datagrams to `send`, oldest first, and wakes the tasks
    /// that waited for room.
    pub fn drain_output_up_to(&mut self, room: usize, mut send: impl FnMut(OutDatagram<'_>)) {
        let mut sent = 0;
        while sent < room {
            let Some(datagram) = self.output.pop_front() else {
                break;
            };
            send(OutDatagram {
                source: datagram.source,
                destination: datagram.destination,
                payload: &datagram.payload,
            });
            sent += 1;
        }
        self.counters.datagrams_sent += sent as u64;
        if sent > 0 {
            for waker in self.send_wakers.drain(..) {
                waker.wake();
            }
        }
    }
}

fn check_destination(destination: SocketAddrV4) -> Result<(), UdpError> {
    if destination.port() == 0
        || destination.ip().is_unspecified()
        || destination.ip().is_multicast()
    {
        return Err(UdpError::InvalidDestination);
    }
    Ok(())
}

fn register(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|stored| stored.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

#[cfg(test)]
mod tests;
