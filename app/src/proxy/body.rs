//! Relaying a message body from one connection to another, each side paced (`pace`): exactly a length, chunked (decoded, and re-chunked when asked), or until the sender closes; and which side of a copy failed.

use alloc::vec::Vec;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::socket::SocketError;

use super::pace::Pace;
use super::stream::{BufferedStream, READ_CHUNK, StreamError};
use crate::http::chunked::{self, ChunkedDecoder};

/// Which side of a copy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CopyError {
    /// Reading: closed early or reset.
    Source,
    /// Reading: nothing came within the wait its pace allowed.
    SourceTimedOut,
    /// Writing: closed or reset.
    Destination,
    /// Writing: not taken within the wait its pace allowed.
    DestinationTimedOut,
    /// A chunked body with bad framing.
    Malformed,
    /// A body over the limit.
    TooLarge,
}

/// The pace of each side of a copy: (the side read from, the side written to).
pub(super) type Paces<'a> = (&'a mut Pace, &'a mut Pace);

/// Reads more into `from`, waiting as long as `pace` allows; end of stream and errors are
/// `Source`, a wait that ran out `SourceTimedOut`.
pub(super) async fn read_more(
    handle: &Handle,
    from: &mut BufferedStream,
    pace: &mut Pace,
) -> Result<usize, CopyError> {
    let started = handle.now();
    // A spent pace still takes what has already arrived: the read is polled before the
    // timer.
    match from.fill(handle, pace.next_wait()).await {
        Ok(count) if count > 0 => {
            pace.record(handle.now().saturating_since(started), count);
            Ok(count)
        }
        Err(StreamError::TimedOut) => Err(CopyError::SourceTimedOut),
        _ => Err(CopyError::Source),
    }
}

/// Reads more into `from` when its buffer is empty.
async fn refill(
    handle: &Handle,
    from: &mut BufferedStream,
    pace: &mut Pace,
) -> Result<(), CopyError> {
    if from.buffered().is_empty() {
        read_more(handle, from, pace).await?;
    }
    Ok(())
}

/// What a copy writes per wait once the peer's send buffer is full: each piece the peer
/// takes is credited to its pace, so that a reader that is slow but steady earns its time
/// back as it goes, not only once a whole 16 KiB read has gone out.
const WAITED_PIECE: usize = 2048;

/// Writes all of `data` to `to`: what fits at once without a timer, the rest piece by piece,
/// each wait as long as `pace` allows.
pub(super) async fn send(
    handle: &Handle,
    to: &BufferedStream,
    data: &[u8],
    pace: &mut Pace,
) -> Result<(), CopyError> {
    let mut written = 0;
    while written < data.len() {
        match to.try_write(&data[written..]) {
            Ok(count) if count > 0 => {
                pace.record(Duration::ZERO, count);
                written += count;
                continue;
            }
            Ok(_) | Err(SocketError::WouldBlock) => {}
            Err(_) => return Err(CopyError::Destination),
        }
        let piece = &data[written..data.len().min(written + WAITED_PIECE)];
        let started = handle.now();
        match to.write_all(handle, pace.next_wait(), piece).await {
            Ok(()) => pace.record(handle.now().saturating_since(started), piece.len()),
            Err(StreamError::TimedOut) => return Err(CopyError::DestinationTimedOut),
            Err(StreamError::Socket(_)) => return Err(CopyError::Destination),
        }
        written += piece.len();
    }
    Ok(())
}

/// Moves exactly `length` bytes; never holds more than one read's worth.
pub(super) async fn copy_exact(
    handle: &Handle,
    from: &mut BufferedStream,
    to: &BufferedStream,
    length: u64,
    (read_pace, write_pace): Paces<'_>,
) -> Result<(), CopyError> {
    let mut left = length;
    while left > 0 {
        refill(handle, from, read_pace).await?;
        let take = (from.buffered().len() as u64).min(left) as usize;
        send(handle, to, &from.buffered()[..take], write_pace).await?;
        from.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Decodes a chunked body from `from` and writes its data to `to`, re-chunked when
/// `encode`; returns the data bytes.
pub(super) async fn copy_chunked(
    handle: &Handle,
    from: &mut BufferedStream,
    to: &BufferedStream,
    encode: bool,
    limit: Option<u64>,
    (read_pace, write_pace): Paces<'_>,
) -> Result<u64, CopyError> {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Vec::with_capacity(READ_CHUNK + 64);
    let mut total = 0u64;
    while !decoder.is_done() {
        refill(handle, from, read_pace).await?;
        out.clear();
        let mut used = 0;
        let input = from.buffered();
        while used < input.len() && !decoder.is_done() {
            let (consumed, data) = decoder
                .decode(&input[used..])
                .map_err(|_| CopyError::Malformed)?;
            if !data.is_empty() {
                append_body(&mut out, data, encode);
                total += data.len() as u64;
            }
            used += consumed;
            if consumed == 0 {
                break;
            }
        }
        from.consume(used);
        if limit.is_some_and(|limit| total > limit) {
            return Err(CopyError::TooLarge);
        }
        if decoder.is_done() && encode {
            out.extend_from_slice(chunked::LAST_CHUNK);
        }
        if !out.is_empty() {
            send(handle, to, &out, write_pace).await?;
        }
    }
    Ok(total)
}

/// Appends body bytes to `out` as one chunk when re-chunking, as they are otherwise.
fn append_body(out: &mut Vec<u8>, data: &[u8], encode: bool) {
    if encode {
        chunked::write_chunk_start(out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(chunked::CHUNK_END);
    } else {
        out.extend_from_slice(data);
    }
}

/// Relays a body delimited by the sender's close: end of stream ends it; a reset or a stall
/// is a truncation (the last chunk is then never sent, so the client sees it cut off).
pub(super) async fn copy_until_close(
    handle: &Handle,
    from: &mut BufferedStream,
    to: &BufferedStream,
    encode: bool,
    (read_pace, write_pace): Paces<'_>,
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    let mut out = Vec::with_capacity(READ_CHUNK + 16);
    loop {
        if from.buffered().is_empty() {
            let started = handle.now();
            match from.fill(handle, read_pace.next_wait()).await {
                Ok(0) => break,
                Ok(count) => read_pace.record(handle.now().saturating_since(started), count),
                Err(StreamError::TimedOut) => return Err(CopyError::SourceTimedOut),
                Err(StreamError::Socket(_)) => return Err(CopyError::Source),
            }
        }
        let data = from.buffered();
        out.clear();
        append_body(&mut out, data, encode);
        total += data.len() as u64;
        let length = data.len();
        from.consume(length);
        send(handle, to, &out, write_pace).await?;
    }
    if encode {
        send(handle, to, chunked::LAST_CHUNK, write_pace).await?;
    }
    Ok(total)
}
