//! One attempt on one backend connection: the request head forwarded, the request body relayed (and a response that comes before its end taken as the backend's answer), the response head read (interim responses passed on), and the response handed to its phase (`response_relay`).

use core::net::Ipv4Addr;
use core::time::Duration;

use super::access_log::RequestRecord;
use super::body::{CopyError, copy_chunked, copy_exact};
use super::errors::ProxyError;
use super::finish::{Next, count_status};
use super::forward::{self, ConnectionOption};
use super::forward_head::forward_head;
use super::outcome::Attempt;
use super::pace::Pace;
use super::response_relay::{Persistence, relay_response, tunnel};
use super::stream::{BufferedStream, StreamError};
use super::worker::Worker;
use crate::http::fields::BodyFraming;
use crate::http::request::RequestHead;
use crate::http::response::{self, ResponseHead};

/// One attempt: request head and body to the backend, response back to the client.
pub(super) async fn relay(
    worker: &Worker,
    client: &mut BufferedStream,
    upstream: &mut BufferedStream,
    head: &RequestHead,
    (backend, client_address): (usize, Ipv4Addr),
    upgrade: bool,
    record: &RequestRecord,
) -> Attempt {
    let settings = worker.settings();
    let handle = worker.handle();
    let timeouts = settings.timeouts;
    let counters = worker.statistics();
    let pooling = settings.pool.keep_alive.idle_per_backend > 0;
    let option = if upgrade {
        ConnectionOption::Upgrade
    } else if pooling {
        ConnectionOption::Persistent
    } else {
        ConnectionOption::Close
    };
    if !forward_head(worker, upstream, head, (backend, client_address), option).await {
        return Attempt::BackendFailed {
            error: ProxyError::BadGateway,
            response_started: false,
        };
    }
    // The client's time over its body is paced (`timeout.body`, `timeout.body-rate`); the
    // time the backend takes to accept it is not the client's.
    let mut client_pace = Pace::new(timeouts.client, timeouts.body, timeouts.body_rate);
    let mut backend_pace = Pace::per_wait(timeouts.backend);
    let paces = (&mut client_pace, &mut backend_pace);
    let body = match head.framing {
        BodyFraming::Length(length) => copy_exact(handle, client, upstream, length, paces)
            .await
            .map(|()| length),
        BodyFraming::Chunked => {
            let limit = Some(settings.limits.body);
            copy_chunked(handle, client, upstream, true, limit, paces).await
        }
        BodyFraming::Empty | BodyFraming::UntilClose => Ok(0),
    };
    match body {
        Ok(bytes) => counters.request_body_bytes.add(bytes),
        Err(CopyError::Source) => return Attempt::ClientFailed,
        Err(CopyError::SourceTimedOut) => return Attempt::BodyTimedOut,
        Err(CopyError::Destination | CopyError::DestinationTimedOut) => {
            // A backend may answer before it has read the body (a stock `python3 -m
            // http.server` answers POST 501 and closes; Linux turns that close, with the body
            // unread, into a reset): the answer is the backend's, and the failed write says
            // nothing more. nginx likewise relays a response that came while it was still
            // sending the body.
            return match read_early_response_head(worker, upstream, head.is_head()).await {
                Some(response) => {
                    relay_early_response(worker, client, upstream, head, &response, record).await
                }
                None => Attempt::BackendFailed {
                    error: ProxyError::BadGateway,
                    response_started: !upstream.buffered().is_empty(),
                },
            };
        }
        Err(CopyError::Malformed) => return Attempt::BodyRefused(ProxyError::BadRequest),
        Err(CopyError::TooLarge) => return Attempt::BodyRefused(ProxyError::PayloadTooLarge),
    }
    let sent_at = handle.now();
    let mut first_head = true;
    let response = loop {
        let response = match read_response_head(worker, upstream, head.is_head()).await {
            Ok(response) => response,
            Err(error) => {
                return Attempt::BackendFailed {
                    error,
                    response_started: !upstream.buffered().is_empty(),
                };
            }
        };
        if let Some(counters) = counters.backend(backend).filter(|_| first_head) {
            let latency = handle.now().saturating_since(sent_at);
            counters.response_latency.observe(latency);
        }
        first_head = false;
        if response.status >= 200 || response.status == 101 {
            break response;
        }
        // Interim responses (100, 103) go on to an HTTP/1.1 client; the final one follows.
        if head.minor_version >= 1 {
            let interim = forward::interim_for_client(&response);
            if client
                .write_all(handle, timeouts.client, &interim)
                .await
                .is_err()
            {
                return Attempt::ClientFailed;
            }
            count_status(counters, response.status);
        }
    };
    if response.status == 101 {
        if !upgrade {
            return Attempt::BackendFailed {
                error: ProxyError::BadGateway,
                response_started: true,
            };
        }
        record.status.set(response.status);
        return tunnel(worker, client, upstream, &response).await;
    }
    relay_response(
        worker,
        client,
        upstream,
        head,
        &response,
        Persistence::AsAllowed {
            pooling: pooling && !upgrade,
        },
        record,
    )
    .await
}

async fn read_response_head(
    worker: &Worker,
    upstream: &mut BufferedStream,
    request_was_head: bool,
) -> Result<ResponseHead, ProxyError> {
    let settings = worker.settings();
    loop {
        if !upstream.buffered().is_empty() {
            match response::parse(
                upstream.buffered(),
                settings.limits.response_header_bytes,
                request_was_head,
            ) {
                Ok(Some((head, length))) => {
                    upstream.consume(length);
                    return Ok(head);
                }
                Ok(None) => {}
                Err(_) => return Err(ProxyError::BadGateway),
            }
        }
        match upstream
            .fill(worker.handle(), settings.timeouts.backend)
            .await
        {
            Ok(0) | Err(StreamError::Socket(_)) => return Err(ProxyError::BadGateway),
            Ok(_) => {}
            Err(StreamError::TimedOut) => return Err(ProxyError::GatewayTimeout),
        }
    }
}

/// How long a backend whose connection failed while it was being sent the request body is
/// given to complete the response head it may have begun: what it sent before the failure
/// is normally already buffered, so this only bounds a head still on its way.
const EARLY_RESPONSE_WAIT: Duration = Duration::from_secs(1);

/// A complete final response head the backend sent before the request body was all written,
/// if it is there (or arrives within `EARLY_RESPONSE_WAIT`); `None` otherwise.
async fn read_early_response_head(
    worker: &Worker,
    upstream: &mut BufferedStream,
    request_was_head: bool,
) -> Option<ResponseHead> {
    let settings = worker.settings();
    let handle = worker.handle();
    let deadline = handle.now() + EARLY_RESPONSE_WAIT.min(settings.timeouts.backend);

    loop {
        if !upstream.buffered().is_empty() {
            match response::parse(
                upstream.buffered(),
                settings.limits.response_header_bytes,
                request_was_head,
            ) {
                Ok(Some((response, length))) => {
                    upstream.consume(length);
                    // An interim response says the backend wants the body after all.
                    return (response.status >= 200).then_some(response);
                }
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        let wait = deadline.saturating_since(handle.now());
        if wait.is_zero() {
            return None;
        }
        match upstream.fill(handle, wait).await {
            Ok(count) if count > 0 => {}
            _ => return None,
        }
    }
}

/// Relays a response that came before the request body was all sent: the client is told
/// `Connection: close`, the backend connection is not reused, and the rest of the client's
/// body is read and discarded (a lingering close, as after the proxy's own refusals) so that
/// closing does not reset the connection under the answer.
async fn relay_early_response(
    worker: &Worker,
    client: &mut BufferedStream,
    upstream: &mut BufferedStream,
    request: &RequestHead,
    response: &ResponseHead,
    record: &RequestRecord,
) -> Attempt {
    worker.statistics().early_responses.increment();
    match relay_response(
        worker,
        client,
        upstream,
        request,
        response,
        Persistence::Neither,
        record,
    )
    .await
    {
        Attempt::Relayed { status, .. } => {
            client.linger(worker.handle()).await;
            Attempt::Relayed {
                next: Next::Close,
                reusable: false,
                status,
            }
        }
        other => other,
    }
}
