//! This core's idle keep-alive connections to its backends: at most N per backend, reused newest first, dropped when they idle past the timeout or the backend closes them. Never shared with another core (a connection belongs to the core whose stack holds it).

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use unisock_kernel::time::Instant;

use super::settings::KeepAlive;
use super::stream::BufferedStream;

struct IdleConnection {
    stream: BufferedStream,
    since: Instant,
}

pub struct IdlePool {
    limits: KeepAlive,
    /// Per backend, oldest first.
    idle: Vec<VecDeque<IdleConnection>>,
}

impl IdlePool {
    pub fn new(limits: KeepAlive, backends: usize) -> IdlePool {
        IdlePool {
            limits,
            idle: (0..backends).map(|_| VecDeque::new()).collect(),
        }
    }

    /// The newest idle connection to `backend` that is still usable, closing the stale ones
    /// met on the way.
    pub fn take(&mut self, backend: usize, now: Instant) -> Option<BufferedStream> {
        let queue = self.idle.get_mut(backend)?;
        while let Some(connection) = queue.pop_back() {
            if now.saturating_since(connection.since) < self.limits.idle_timeout
                && !connection.stream.has_input_or_error()
            {
                return Some(connection.stream);
            }
            connection.stream.close();
        }
        None
    }

    /// Keeps `stream` for reuse, or closes it when the pool for `backend` is full or off.
    pub fn put(&mut self, backend: usize, stream: BufferedStream, now: Instant) {
        let Some(queue) = self.idle.get_mut(backend) else {
            stream.close();
            return;
        };
        if queue.len() >= self.limits.idle_per_backend || stream.has_input_or_error() {
            stream.close();
            return;
        }
        queue.push_back(IdleConnection { stream, since: now });
    }

    /// Closes the connections that idled past the timeout or that the backend closed.
    pub fn sweep(&mut self, now: Instant) {
        let timeout = self.limits.idle_timeout;
        for queue in &mut self.idle {
            let mut kept = VecDeque::with_capacity(queue.len());
            for connection in queue.drain(..) {
                if now.saturating_since(connection.since) < timeout
                    && !connection.stream.has_input_or_error()
                {
                    kept.push_back(connection);
                } else {
                    connection.stream.close();
                }
            }
            *queue = kept;
        }
    }

    /// Closes every idle connection and keeps no more (the pool of a retired configuration).
    pub fn close_all(&mut self) {
        self.limits.idle_per_backend = 0;
        for queue in &mut self.idle {
            for connection in queue.drain(..) {
                connection.stream.close();
            }
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.iter().map(VecDeque::len).sum()
    }
}
