//! Two raw TCP services for checking bulk transfers byte for byte from a peer:
//! - sink: reads until the peer closes its side, then answers `<byte count> <sha-256 hex>\n`;
//! - source: reads a decimal byte count ending in `\n`, sends that many bytes of
//!   [`pattern_byte`], then closes.

use alloc::vec;
use core::fmt::Write;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::net::partition::ServedPort;
use unisock_kernel::socket::{SocketError, TcpStream};

use crate::sha256::{Sha256, to_hex};

/// A peer silent this long is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most bytes one source request may ask for (4 GiB).
pub const MAX_SOURCE_BYTES: u64 = 1 << 32;
/// Longest request line of the source service.
const MAX_REQUEST_LENGTH: usize = 32;
const CHUNK: usize = 16 * 1024;

/// Byte `index` of the source stream: `index mod 251`. 251 is prime, so the pattern never
/// lines up with segment or buffer sizes and any lost, repeated or reordered piece shows.
pub fn pattern_byte(index: u64) -> u8 {
    (index % 251) as u8
}

/// Which service a listener runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferService {
    Sink,
    Source,
}

/// Accepts connections on `port` for as long as it is served, one task per connection.
pub async fn serve(port: ServedPort, handle: Handle, service: TransferService) {
    loop {
        match port.listener().accept().await {
            Ok(stream) => {
                let task_handle = handle.clone();
                handle.spawn(async move {
                    let _ = match service {
                        TransferService::Sink => sink(stream, task_handle).await,
                        TransferService::Source => source(stream, task_handle).await,
                    };
                });
            }
            // Accept fails only when the listener itself is gone (a stale handle).
            Err(_) => return,
        }
    }
}

async fn read_with_timeout(
    stream: &TcpStream,
    handle: &Handle,
    buffer: &mut [u8],
) -> Result<usize, SocketError> {
    match handle.timeout(IDLE_TIMEOUT, stream.read(buffer)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(SocketError::TimedOut),
    }
}

async fn sink(stream: TcpStream, handle: Handle) -> Result<(), SocketError> {
    let mut hasher = Sha256::new();
    let mut count: u64 = 0;
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = match read_with_timeout(&stream, &handle, &mut buffer).await {
            Ok(read) => read,
            Err(error) => {
                let _ = stream.abort();
                return Err(error);
            }
        };
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        count += read as u64;
    }
    let mut reply = alloc::string::String::new();
    let hex = to_hex(&hasher.finish());
    let _ = writeln!(
        reply,
        "{count} {}",
        core::str::from_utf8(&hex).unwrap_or("")
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.close()
}

async fn source(stream: TcpStream, handle: Handle) -> Result<(), SocketError> {
    stream.set_no_delay(true)?;
    let mut request = [0u8; MAX_REQUEST_LENGTH];
    let mut length = 0;
    let line_end = loop {
        if let Some(end) = request[..length].iter().position(|&byte| byte == b'\n') {
            break end;
        }
        if length == request.len() {
            return stream.abort();
        }
        let read = read_with_timeout(&stream, &handle, &mut request[length..]).await?;
        if read == 0 {
            return stream.close();
        }
        length += read;
    };
    let Some(total) = core::str::from_utf8(&request[..line_end])
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|&total| total <= MAX_SOURCE_BYTES)
    else {
        stream.write_all(b"bad request\n").await?;
        return stream.close();
    };
    let mut chunk = vec![0u8; CHUNK];
    let mut sent: u64 = 0;
    while sent < total {
        let size = (total - sent).min(CHUNK as u64) as usize;
        for (offset, byte) in chunk[..size].iter_mut().enumerate() {
            *byte = pattern_byte(sent + offset as u64);
        }
        // A client that stops reading is given IDLE_TIMEOUT to take the next chunk (as
        // nginx's send_timeout): otherwise it holds the connection for ever once its window
        // and our buffer budget are full.
        match handle
            .timeout(IDLE_TIMEOUT, stream.write_all(&chunk[..size]))
            .await
        {
            Ok(result) => result?,
            Err(_elapsed) => {
                let _ = stream.abort();
                return Err(SocketError::TimedOut);
            }
        }
        sent += size as u64;
    }
    stream.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_repeats_every_251_bytes() {
        assert_eq!(pattern_byte(0), 0);
        assert_eq!(pattern_byte(250), 250);
        assert_eq!(pattern_byte(251), 0);
        assert_eq!(pattern_byte(251 * 1000 + 7), 7);
    }
}
