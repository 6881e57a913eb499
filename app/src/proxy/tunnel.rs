//! The byte tunnel after a `101 Switching Protocols` (WebSocket and the like): bytes flow both ways until each side has closed, and the tunnel is idle only when no byte has moved in either direction for `timeout.tunnel` (HAProxy's `timeout tunnel`: "inactive in both directions").
//!
//! A timeout per direction would end a WebSocket whose server streams to a silent client:
//! the client's direction idles out, the backend is sent a FIN, and the stream stops.

use alloc::vec::Vec;
use core::cell::Cell;
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::Poll;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::socket::{Shutdown, TcpStream};
use unisock_kernel::time::Instant;

use super::stream::READ_CHUNK;

/// How a tunnel ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Each side closed its direction, and the other side took everything before it.
    Closed,
    /// A side reset, or a write failed.
    Failed,
    /// No byte moved either way for the idle timeout.
    Idle,
}

/// Relays `client` and `backend` to each other (first the bytes that arrived behind the
/// heads) until both directions have ended.
pub async fn relay_both_ways(
    handle: &Handle,
    (client, early_from_client): (&TcpStream, Vec<u8>),
    (backend, early_from_backend): (&TcpStream, Vec<u8>),
    idle: Duration,
) -> TunnelEnd {
    let activity = Activity {
        last: Cell::new(handle.now()),
        idle,
    };
    let upward = pin!(pump(handle, client, backend, early_from_client, &activity));
    let downward = pin!(pump(handle, backend, client, early_from_backend, &activity));
    match join(upward, downward).await {
        (TunnelEnd::Idle, _) | (_, TunnelEnd::Idle) => TunnelEnd::Idle,
        (TunnelEnd::Closed, TunnelEnd::Closed) => TunnelEnd::Closed,
        _ => TunnelEnd::Failed,
    }
}

/// The last time a byte moved through the tunnel, shared by its two directions.
struct Activity {
    last: Cell<Instant>,
    idle: Duration,
}

/// A wait that ended because the tunnel was idle.
struct Idle;

impl Activity {
    fn moved(&self, handle: &Handle) {
        self.last.set(handle.now());
    }

    /// `future`'s output, or `Idle` once nothing has moved either way for the idle time: a
    /// wait in one direction goes on as long as the other direction keeps moving.
    async fn watch<F: Future>(&self, handle: &Handle, future: F) -> Result<F::Output, Idle> {
        let mut future = pin!(future);
        let mut sleep = handle.sleep_until(self.last.get() + self.idle);
        poll_fn(|context| {
            if let Poll::Ready(output) = future.as_mut().poll(context) {
                return Poll::Ready(Ok(output));
            }
            while Pin::new(&mut sleep).poll(context).is_ready() {
                let deadline = self.last.get() + self.idle;
                if deadline <= handle.now() {
                    return Poll::Ready(Err(Idle));
                }
                sleep = handle.sleep_until(deadline);
            }
            Poll::Pending
        })
        .await
    }
}

/// Copies `from` to `to` until `from` ends, then half-closes `to`.
async fn pump(
    handle: &Handle,
    from: &TcpStream,
    to: &TcpStream,
    early: Vec<u8>,
    activity: &Activity,
) -> TunnelEnd {
    if !early.is_empty() {
        match activity.watch(handle, to.write_all(&early)).await {
            Ok(Ok(())) => activity.moved(handle),
            Ok(Err(_)) => return TunnelEnd::Failed,
            Err(Idle) => return TunnelEnd::Idle,
        }
    }
    let mut buffer = alloc::vec![0u8; READ_CHUNK];
    loop {
        let read = match activity.watch(handle, from.read(&mut buffer)).await {
            Ok(Ok(count)) => count,
            Ok(Err(_)) => {
                let _ = to.shutdown(Shutdown::Write);
                return TunnelEnd::Failed;
            }
            Err(Idle) => return TunnelEnd::Idle,
        };
        if read == 0 {
            return match to.shutdown(Shutdown::Write) {
                Ok(()) => TunnelEnd::Closed,
                Err(_) => TunnelEnd::Failed,
            };
        }
        activity.moved(handle);
        match activity.watch(handle, to.write_all(&buffer[..read])).await {
            Ok(Ok(())) => activity.moved(handle),
            Ok(Err(_)) => return TunnelEnd::Failed,
            Err(Idle) => return TunnelEnd::Idle,
        }
    }
}

/// Runs two futures to completion, polling both on every wake.
async fn join<A: Future + Unpin, B: Future + Unpin>(
    mut first: A,
    mut second: B,
) -> (A::Output, B::Output) {
    let mut first_output = None;
    let mut second_output = None;
    poll_fn(move |context| {
        if first_output.is_none()
            && let Poll::Ready(output) = Pin::new(&mut first).poll(context)
        {
            first_output = Some(output);
        }
        if second_output.is_none()
            && let Poll::Ready(output) = Pin::new(&mut second).poll(context)
        {
            second_output = Some(output);
        }
        match (first_output.take(), second_output.take()) {
            (Some(first), Some(second)) => Poll::Ready((first, second)),
            (first, second) => {
                first_output = first;
                second_output = second;
                Poll::Pending
            }
        }
    })
    .await
}
