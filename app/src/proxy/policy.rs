//! The apply-policy phase: what a request must satisfy before it is sent anywhere. Today the listener's limits (no `CONNECT`, a declared body within `limit.body`), each refusal counted; per-client rate limits belong here.

use super::errors::ProxyError;
use super::worker::Worker;
use crate::http::fields::BodyFraming;
use crate::http::request::RequestHead;

/// Refuses a request the proxy will not forward; the `Err` is answered with its status.
pub(super) fn admit(worker: &Worker, head: &RequestHead) -> Result<(), ProxyError> {
    let settings = worker.settings();
    let counters = worker.statistics();
    if head.method == "CONNECT" {
        counters.rejected_requests.increment();
        return Err(ProxyError::MethodNotAllowed);
    }
    if let BodyFraming::Length(length) = head.framing
        && length > settings.limits.body
    {
        counters.rejected_requests.increment();
        return Err(ProxyError::PayloadTooLarge);
    }
    Ok(())
}
