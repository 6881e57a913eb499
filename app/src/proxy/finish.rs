//! The last phase of a request: what becomes of the client connection after it (keep-alive, close or reset), the proxy's own error response, the lingering close after one, the status and duration counted, and the access log line.

use core::net::SocketAddrV4;

use unisock_kernel::time::Instant;

use super::access_log::RequestRecord;
use super::errors::ProxyError;
use super::statistics::ProxyCoreCounters;
use super::stream::BufferedStream;
use super::worker::Worker;
use crate::http::request::RequestHead;

/// What becomes of the client connection after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close gracefully (everything sent was a complete message).
    Close,
    /// Reset: the response was cut off, and the client must not take it as complete.
    Abort,
}

/// Writes the proxy's own error response; false if the client did not take it.
pub(super) async fn answer_error(
    worker: &Worker,
    client: &BufferedStream,
    error: ProxyError,
) -> bool {
    count_status(worker.statistics(), error.status());
    let timeout = worker.settings().timeouts.client;
    client
        .write_all(worker.handle(), timeout, &error.response())
        .await
        .is_ok()
}

/// Closes after an error response, or aborts if the client did not take it (`answered`
/// false: the connection is dead or the client stopped reading). The client may still be
/// sending its request (a head or body refused before its end, a body a backend failed to
/// take, a body invited by `100 Continue`), so the close lingers (`close_lingering`). A
/// request timeout closes at once: its client already had the header timeout to send, the
/// read that timed out left nothing unread, and our stack's orphan discards whatever still
/// comes instead of resetting.
pub(super) async fn close_after_error(
    worker: &Worker,
    client: BufferedStream,
    error: ProxyError,
    answered: bool,
) {
    if !answered {
        return client.abort();
    }
    if error == ProxyError::RequestTimeout {
        return client.close();
    }
    client.close_lingering(worker.handle()).await
}

pub(super) fn count_status(counters: &ProxyCoreCounters, status: u16) {
    counters.count_status(status);
}

/// Counts the request's duration, from its head read to now.
pub(super) fn observe_duration(worker: &Worker, started: Instant) {
    let elapsed = worker.handle().now().saturating_since(started);
    worker.statistics().request_duration.observe(elapsed);
}

/// Writes the request's access-log line, when the listener keeps a log.
pub(super) fn log_request(
    worker: &Worker,
    client_peer: SocketAddrV4,
    head: &RequestHead,
    record: &RequestRecord,
) {
    if let Some(log) = worker.access_log() {
        log.record(worker.handle().now(), client_peer, head, record);
    }
}
