//! The first phase of a request: reading its head from the client under the header timeout and the head limits, and validating it (a refusal is counted and answered with its status).

use super::errors::ProxyError;
use super::stream::{BufferedStream, StreamError};
use super::worker::Worker;
use crate::http::request::{HeadLimits, HeadScan, RequestError, RequestHead};

/// The next request head: `Ok(None)` when the client closed or idled out between requests.
/// The header timeout runs from the head's first byte, so a slow client cannot hold the
/// connection by trickling bytes (slowloris).
pub(super) async fn read_request(
    worker: &Worker,
    client: &mut BufferedStream,
) -> Result<Option<RequestHead>, ProxyError> {
    let settings = worker.settings();
    let handle = worker.handle();
    let limits = HeadLimits {
        request_line: settings.limits.request_line,
        header_bytes: settings.limits.header_bytes,
        header_count: settings.limits.header_count,
    };
    let counters = worker.statistics();
    let mut deadline = None;
    // Each read's bytes are scanned once for the end of the head, which is parsed once.
    let mut scan = HeadScan::new();
    loop {
        if !client.buffered().is_empty() {
            let parses_before = scan.parses();
            let parsed = scan.advance(client.buffered(), &limits);
            let parses = scan.parses() - parses_before;
            if parses > 0 {
                counters.request_head_parses.add(u64::from(parses));
            }
            match parsed {
                Ok(Some((head, length))) => {
                    client.consume(length);
                    return Ok(Some(head));
                }
                Ok(None) => {}
                Err(error) => {
                    match error {
                        RequestError::BadHost => counters.bad_host_requests.increment(),
                        RequestError::BadTarget => counters.bad_target_requests.increment(),
                        _ => {}
                    }
                    return Err(ProxyError::from_status(error.status()));
                }
            }
            deadline.get_or_insert(handle.now() + settings.timeouts.header);
        }
        let wait = match deadline {
            None => settings.timeouts.client,
            Some(deadline) => deadline.saturating_since(handle.now()),
        };
        if wait.is_zero() {
            return Err(ProxyError::RequestTimeout);
        }
        match client.fill(handle, wait).await {
            Ok(0) | Err(StreamError::Socket(_)) => {
                if deadline.is_some() {
                    counters.client_aborts.increment();
                }
                return Ok(None);
            }
            Ok(_) => {}
            Err(StreamError::TimedOut) if deadline.is_none() => return Ok(None),
            Err(StreamError::TimedOut) => return Err(ProxyError::RequestTimeout),
        }
    }
}
