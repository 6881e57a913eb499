//! The load of the partition tests: clients that open connections and check every response byte, servers that answer (shared by the image's self-test and the host harness).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddrV4;

use super::wire::mix;
use crate::net::arp;
use crate::net::tcp::{SocketError, SocketHandle, TcpLayer};

/// The request of connection `id`: its id, then a pattern.
fn request_bytes(id: u64, length: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..length as u64)
        .map(|offset| (mix(id ^ (offset / 8)) >> (offset % 8 * 8)) as u8)
        .collect();
    let header = id.to_le_bytes();
    let header_len = header.len().min(length);
    bytes[..header_len].copy_from_slice(&header[..header_len]);
    bytes
}

/// The response to `request`: every byte depends on the request.
fn response_bytes(request: &[u8], length: usize) -> Vec<u8> {
    (0..length)
        .map(|offset| request[offset % request.len()].rotate_left(3) ^ (offset as u8))
        .collect()
}

/// A connection a client opened, from SYN to end of stream.
struct ClientConnection {
    handle: SocketHandle,
    request: Vec<u8>,
    written: usize,
    response: Vec<u8>,
}

/// What a [`Client`] does.
pub struct ClientPlan {
    /// The servers it connects to, in turn.
    pub remotes: Vec<SocketAddrV4>,
    /// The id of its first connection (ids name the request patterns).
    pub id_base: u64,
    /// Connections in all (`None`: without end, for timed runs).
    pub total: Option<u64>,
    /// Connections in flight at once.
    pub concurrency: usize,
    pub request_len: usize,
    pub response_len: usize,
}

/// Opens up to `concurrency` connections at once, `total` in all, each sending its request
/// and checking the response.
pub struct Client {
    remotes: Vec<SocketAddrV4>,
    next_remote: usize,
    id_base: u64,
    opened: u64,
    total: Option<u64>,
    concurrency: usize,
    request_len: usize,
    response_len: usize,
    connections: Vec<ClientConnection>,
    /// Connections that ended with the right response.
    pub completed: u64,
    /// Every connection that failed, with why.
    pub failures: Vec<String>,
}

impl Client {
    pub fn new(plan: ClientPlan) -> Client {
        Client {
            remotes: plan.remotes,
            next_remote: 0,
            id_base: plan.id_base,
            opened: 0,
            total: plan.total,
            concurrency: plan.concurrency,
            request_len: plan.request_len,
            response_len: plan.response_len,
            connections: Vec::new(),
            completed: 0,
            failures: Vec::new(),
        }
    }

    /// Every planned connection opened and ended (never, without a total).
    pub fn done(&self) -> bool {
        self.total.is_some_and(|total| self.opened >= total) && self.connections.is_empty()
    }

    /// One turn; true if anything moved.
    pub fn step(&mut self, layer: &mut TcpLayer, open_more: bool) -> bool {
        let mut progress = false;
        // Until a first connection completed (ARP resolved on both sides), stay within what
        // the interfaces park while they resolve, so that no SYN waits a retransmission.
        let concurrency = if self.completed == 0 {
            self.concurrency.min(arp::WAITING_CAPACITY / 2)
        } else {
            self.concurrency
        };
        while open_more
            && self.connections.len() < concurrency
            && self.total.is_none_or(|total| self.opened < total)
        {
            let remote = self.remotes[self.next_remote % self.remotes.len()];
            self.next_remote += 1;
            let id = self.id_base + self.opened;
            self.opened += 1;
            match layer.connect(remote, None) {
                Ok(handle) => {
                    self.connections.push(ClientConnection {
                        handle,
                        request: request_bytes(id, self.request_len),
                        written: 0,
                        response: Vec::with_capacity(self.response_len),
                    });
                    progress = true;
                }
                Err(error) => self
                    .failures
                    .push(format!("connect {id} to {remote}: {error:?}")),
            }
        }
        let mut index = 0;
        let mut buffer = [0u8; 4096];
        while index < self.connections.len() {
            let connection = &mut self.connections[index];
            match drive_client(layer, connection, &mut buffer, self.response_len) {
                Ok(false) => index += 1,
                Ok(true) => {
                    let connection = self.connections.swap_remove(index);
                    if connection.response == response_bytes(&connection.request, self.response_len)
                    {
                        self.completed += 1;
                    } else {
                        self.failures.push(format!(
                            "connection {:?}: wrong response",
                            connection.handle
                        ));
                    }
                    let _ = layer.close(connection.handle);
                    progress = true;
                }
                Err(error) => {
                    let connection = self.connections.swap_remove(index);
                    self.failures
                        .push(format!("connection {:?}: {error:?}", connection.handle));
                    let _ = layer.abort(connection.handle);
                    progress = true;
                }
            }
        }
        progress
    }
}

/// Ok(true) at end of stream.
fn drive_client(
    layer: &mut TcpLayer,
    connection: &mut ClientConnection,
    buffer: &mut [u8],
    response_len: usize,
) -> Result<bool, SocketError> {
    let readiness = layer.readiness(connection.handle)?;
    if let Some(error) = readiness.error {
        return Err(error);
    }
    if !readiness.connected {
        return Ok(false);
    }
    while connection.written < connection.request.len() {
        match layer.write(connection.handle, &connection.request[connection.written..]) {
            Ok(count) => connection.written += count,
            Err(SocketError::WouldBlock) => return Ok(false),
            Err(error) => return Err(error),
        }
    }
    loop {
        match layer.read(connection.handle, buffer) {
            Ok(0) => return Ok(true),
            Ok(count) => {
                connection.response.extend_from_slice(&buffer[..count]);
                if connection.response.len() > response_len {
                    return Err(SocketError::InvalidArgument);
                }
            }
            Err(SocketError::WouldBlock) => return Ok(false),
            Err(error) => return Err(error),
        }
    }
}

/// An accepted connection: read the whole request, answer, close.
struct ServerConnection {
    handle: SocketHandle,
    request: Vec<u8>,
    response: Option<(Vec<u8>, usize)>,
}

/// Accepts connections, reads each request of `request_len` bytes whole, answers it with its
/// response of `response_len` bytes and closes.
pub struct Server {
    request_len: usize,
    response_len: usize,
    connections: Vec<ServerConnection>,
    /// Connections accepted.
    pub accepted: u64,
    /// Every connection that failed, with why.
    pub failures: Vec<String>,
}

impl Server {
    pub fn new(request_len: usize, response_len: usize) -> Server {
        Server {
            request_len,
            response_len,
            connections: Vec::new(),
            accepted: 0,
            failures: Vec::new(),
        }
    }

    /// Accepts from `listener` (if any) and serves; true if anything moved.
    pub fn step(&mut self, layer: &mut TcpLayer, listener: Option<SocketHandle>) -> bool {
        let mut progress = false;
        if let Some(listener) = listener {
            while let Ok(handle) = layer.accept(listener) {
                self.accepted += 1;
                self.connections.push(ServerConnection {
                    handle,
                    request: Vec::with_capacity(self.request_len),
                    response: None,
                });
                progress = true;
            }
        }
        let mut index = 0;
        let mut buffer = [0u8; 4096];
        while index < self.connections.len() {
            match self.drive(layer, index, &mut buffer) {
                Ok(false) => index += 1,
                Ok(true) => {
                    let connection = self.connections.swap_remove(index);
                    let _ = layer.close(connection.handle);
                    progress = true;
                }
                Err(error) => {
                    let connection = self.connections.swap_remove(index);
                    self.failures.push(format!(
                        "server connection {:?}: {error:?}",
                        connection.handle
                    ));
                    let _ = layer.abort(connection.handle);
                    progress = true;
                }
            }
        }
        progress
    }

    /// Ok(true) once the whole response is queued.
    fn drive(
        &mut self,
        layer: &mut TcpLayer,
        index: usize,
        buffer: &mut [u8],
    ) -> Result<bool, SocketError> {
        let connection = &mut self.connections[index];
        while connection.response.is_none() {
            let wanted = self.request_len - connection.request.len();
            let limit = wanted.min(buffer.len());
            match layer.read(connection.handle, &mut buffer[..limit]) {
                Ok(0) => return Err(SocketError::NotConnected),
                Ok(count) => {
                    connection.request.extend_from_slice(&buffer[..count]);
                    if connection.request.len() == self.request_len {
                        connection.response =
                            Some((response_bytes(&connection.request, self.response_len), 0));
                    }
                }
                Err(SocketError::WouldBlock) => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        let Some((response, sent)) = connection.response.as_mut() else {
            return Ok(false);
        };
        while *sent < response.len() {
            match layer.write(connection.handle, &response[*sent..]) {
                Ok(count) => *sent += count,
                Err(SocketError::WouldBlock) => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}
