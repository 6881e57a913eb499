//! The request body before a backend is picked: the `100 Continue` a client waiting for one is sent, and a small body (within `limit.body-buffer`) read whole, so that a slow upload holds no backend connection.

use super::body::{CopyError, read_more};
use super::errors::ProxyError;
use super::finish::Next;
use super::pace::Pace;
use super::stream::BufferedStream;
use super::worker::Worker;
use crate::http::fields::BodyFraming;
use crate::http::request::RequestHead;

/// Answers `Expect: 100-continue` and buffers a small body; `Some` ends the request with that
/// outcome before any backend is picked (the client failed or timed out).
pub(super) async fn receive_before_backend(
    worker: &Worker,
    client: &mut BufferedStream,
    head: &RequestHead,
) -> Option<Result<Next, ProxyError>> {
    let settings = worker.settings();
    let counters = worker.statistics();
    let handle = worker.handle();
    if head.expects_continue() && head.framing != BodyFraming::Empty {
        let sent = client
            .write_all(
                handle,
                settings.timeouts.client,
                b"HTTP/1.1 100 Continue\r\n\r\n",
            )
            .await;
        if sent.is_err() {
            return Some(Err(ProxyError::BadRequest));
        }
    }
    if let BodyFraming::Length(length) = head.framing
        && length > 0
        && length <= settings.limits.body_buffer
    {
        match buffer_body(worker, client, length).await {
            Ok(()) => {}
            Err(CopyError::SourceTimedOut) => {
                counters.body_timeouts.increment();
                return Some(Err(ProxyError::RequestTimeout));
            }
            Err(_) => {
                counters.client_aborts.increment();
                return Some(Ok(Next::Abort));
            }
        }
    }
    None
}

/// Reads a small request body whole into the client's buffer before any backend is picked,
/// paced like any body (`timeout.body`, `timeout.body-rate`), so that a slow upload holds no
/// backend connection: HAProxy's `option http-buffer-request` and Envoy's buffer filter do
/// this. The relay then finds the body buffered and never waits on the client.
async fn buffer_body(
    worker: &Worker,
    client: &mut BufferedStream,
    length: u64,
) -> Result<(), CopyError> {
    let timeouts = worker.settings().timeouts;
    let mut pace = Pace::new(timeouts.client, timeouts.body, timeouts.body_rate);
    while (client.buffered().len() as u64) < length {
        read_more(worker.handle(), client, &mut pace).await?;
    }
    Ok(())
}
