//! A connection with a read buffer: heads are parsed from the buffer, and whatever follows a head (a body, the next pipelined request) stays there for the next reader.

use alloc::vec::Vec;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::socket::{Shutdown, SocketError, TcpStream};

use super::statistics::ByteMeter;

/// The most read from the socket at a time (and the most a body relay holds per direction).
pub const READ_CHUNK: usize = 16 * 1024;

/// The first read of a stream. A short exchange's head and body fit in it; each read that
/// fills its room doubles the next, up to `READ_CHUNK`. Every read zeroes the room it reads
/// into, and a 16 KiB first read cost each side of every proxied connection a 16 KiB
/// allocation and 16 KiB of zeroes.
const FIRST_READ: usize = 2 * 1024;

/// How long a lingering close goes on reading, and discarding, the rest of the peer's
/// request. nginx's lingering close waits up to 30 s (`lingering_time`); 5 s, half the
/// default header timeout, bounds what a client that never closes can hold.
pub const LINGER: Duration = Duration::from_secs(5);

/// Why a read or write did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    Socket(SocketError),
    /// The deadline passed first.
    TimedOut,
}

impl From<SocketError> for StreamError {
    fn from(error: SocketError) -> Self {
        StreamError::Socket(error)
    }
}

/// Zeroed room at the end of a buffer for one read. Whatever the read did not fill goes away
/// when the room is dropped, also when the read is cancelled: a cancelled read used to leave
/// the room's zeroes in the buffer, taken then for received bytes.
struct ReadRoom<'a> {
    buffer: &'a mut Vec<u8>,
    /// The buffer's length before the room.
    start: usize,
    /// How much of the room the read filled.
    filled: usize,
}

impl<'a> ReadRoom<'a> {
    fn new(buffer: &'a mut Vec<u8>, size: usize) -> ReadRoom<'a> {
        let start = buffer.len();
        buffer.resize(start + size, 0);
        ReadRoom {
            buffer,
            start,
            filled: 0,
        }
    }

    fn space(&mut self) -> &mut [u8] {
        &mut self.buffer[self.start..]
    }

    /// Keeps the first `count` bytes read into the room.
    fn keep(mut self, count: usize) {
        self.filled = count;
    }
}

impl Drop for ReadRoom<'_> {
    fn drop(&mut self) {
        self.buffer.truncate(self.start + self.filled);
    }
}

pub struct BufferedStream {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Bytes before `start` have been consumed.
    start: usize,
    /// How much the next read asks for (`FIRST_READ` doubled per full read, at most
    /// `READ_CHUNK`).
    next_read: usize,
    /// Where the bytes read and written are counted (none for health probes).
    meter: Option<ByteMeter>,
}

impl BufferedStream {
    pub fn new(stream: TcpStream) -> BufferedStream {
        BufferedStream {
            stream,
            buffer: Vec::new(),
            start: 0,
            next_read: FIRST_READ,
            meter: None,
        }
    }

    /// The same stream, its bytes counted by `meter`.
    pub fn metered(mut self, meter: ByteMeter) -> BufferedStream {
        self.meter = Some(meter);
        self
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Received bytes not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    pub fn consume(&mut self, count: usize) {
        self.start = (self.start + count).min(self.buffer.len());
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
    }

    /// Forgets every received byte and gives the buffer's memory back (a stream that only
    /// discards from now on).
    pub fn discard_buffered(&mut self) {
        self.buffer = Vec::new();
        self.start = 0;
        self.next_read = FIRST_READ;
    }

    /// Reads more bytes into the buffer, waiting at most `timeout`; 0 means end of stream.
    ///
    /// Cancel-safe: dropped before it completes (a drain's `CoreDrain::unless` drops the wait
    /// for the next request), it leaves the buffer as it was, without the zeroed room it
    /// read into.
    pub async fn fill(&mut self, handle: &Handle, timeout: Duration) -> Result<usize, StreamError> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let chunk = self.next_read;
        let mut room = ReadRoom::new(&mut self.buffer, chunk);
        let read = handle
            .timeout(timeout, self.stream.read(room.space()))
            .await;
        let count = match read {
            Ok(Ok(count)) => count,
            Ok(Err(error)) => return Err(StreamError::Socket(error)),
            Err(_elapsed) => return Err(StreamError::TimedOut),
        };
        room.keep(count);
        if count == chunk {
            self.next_read = (chunk * 2).min(READ_CHUNK);
        }
        if let Some(meter) = &self.meter {
            meter.received(count);
        }
        Ok(count)
    }

    /// Writes all of `data`, waiting at most `timeout` for the peer to make room.
    pub async fn write_all(
        &self,
        handle: &Handle,
        timeout: Duration,
        data: &[u8],
    ) -> Result<(), StreamError> {
        let written = match handle.timeout(timeout, self.stream.write_all(data)).await {
            Ok(result) => result.map_err(StreamError::Socket),
            Err(_elapsed) => Err(StreamError::TimedOut),
        };
        if let (Ok(()), Some(meter)) = (&written, &self.meter) {
            meter.sent(data.len());
        }
        written
    }

    /// Writes what fits in the send buffer now, without waiting: at least one byte, or
    /// `WouldBlock`.
    pub fn try_write(&self, data: &[u8]) -> Result<usize, SocketError> {
        let written = self.stream.try_write(data)?;
        if let Some(meter) = &self.meter {
            meter.sent(written);
        }
        Ok(written)
    }

    /// Whether the peer has sent something (or closed, or failed) while nobody was reading:
    /// an idle pooled connection in that state cannot carry a new request.
    pub fn has_input_or_error(&self) -> bool {
        !self.buffered().is_empty()
            || self.stream.readiness().map_or(true, |readiness| {
                readiness.readable || readiness.error.is_some()
            })
    }

    /// Closes after an answer that may have come before the end of the peer's request (a
    /// refusal of its head or body): closing with its bytes unread would reset the
    /// connection, and a reset makes the peer's stack drop the answer it has not read yet.
    /// So the answer is followed by a FIN, and the rest of the request is read and
    /// discarded until the peer closes too, for at most `LINGER` (nginx's lingering close).
    pub async fn close_lingering(mut self, handle: &Handle) {
        self.linger(handle).await;
        self.close()
    }

    /// The first half of `close_lingering`, for a caller that does not own the stream: sends
    /// the FIN and reads and discards the rest of the peer's request, for at most `LINGER`,
    /// so that the `close` that follows finds nothing unread.
    pub async fn linger(&mut self, handle: &Handle) {
        if self.stream.shutdown(Shutdown::Write).is_ok() {
            self.discard_buffered();
            let deadline = handle.now() + LINGER;
            loop {
                let left = deadline.saturating_since(handle.now());
                if left.is_zero() {
                    break;
                }
                match self.fill(handle, left).await {
                    Ok(count) if count > 0 => {
                        let unread = self.buffered().len();
                        self.consume(unread);
                    }
                    _ => break,
                }
            }
        }
    }

    pub fn close(self) {
        // A stale handle is the only error, and then there is nothing to close.
        let _ = self.stream.close();
    }

    pub fn abort(self) {
        let _ = self.stream.abort();
    }
}

#[cfg(test)]
mod tests {
    use alloc::rc::Rc;
    use core::cell::RefCell;
    use core::net::{Ipv4Addr, SocketAddrV4};

    use unisock_kernel::socket::TcpListener;
    use unisock_sim::{Impairments, Network};

    use super::*;

    /// A fill dropped while it waits (as a drain drops the wait for the next request) leaves
    /// nothing in the buffer, and the next fill holds exactly the bytes the peer sent.
    #[test]
    fn a_cancelled_fill_leaves_no_bytes_behind() {
        let mut network = Network::new(0x5eed_0031, Impairments::clean(), 2);
        let server = SocketAddrV4::new(network.hosts[1].address, 80);
        let listener = TcpListener::bind(
            &network.hosts[1].tcp,
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80),
            4,
        )
        .unwrap();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let server_seen = seen.clone();
        let handle = network.hosts[1].executor.handle();
        network.hosts[1].executor.spawn(async move {
            let stream = listener.accept().await.unwrap();
            let mut stream = BufferedStream::new(stream);
            let cancelled = handle
                .timeout(
                    Duration::from_millis(50),
                    stream.fill(&handle, Duration::from_secs(60)),
                )
                .await;
            assert!(cancelled.is_err(), "the fill was not cancelled");
            server_seen.borrow_mut().push(stream.buffered().to_vec());
            let _ = stream.fill(&handle, Duration::from_secs(60)).await;
            server_seen.borrow_mut().push(stream.buffered().to_vec());
            stream.close();
        });
        let client = network.hosts[0].tcp.clone();
        let client_handle = network.hosts[0].executor.handle();
        network.hosts[0].executor.spawn(async move {
            let stream = TcpStream::connect(&client, server).await.unwrap();
            client_handle.sleep(Duration::from_millis(200)).await;
            stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        });
        while seen.borrow().len() < 2 {
            assert!(network.step(), "the simulation ran dry");
        }
        let seen = seen.borrow();
        assert_eq!(seen[0].len(), 0, "bytes left by the cancelled fill");
        assert_eq!(seen[1], b"GET / HTTP/1.1\r\n\r\n");
    }
}
