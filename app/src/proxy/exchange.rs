//! One client connection served to completion: read each request head (keep-alive and pipelined requests in order), pick a backend, connect or reuse, relay the request and its body, relay the response re-framed for the client, retry where that is safe, answer errors, and tunnel after a `101`.

use alloc::rc::Rc;
use core::net::{Ipv4Addr, SocketAddrV4};

use unisock_kernel::socket::TcpStream;

use super::access_log::RequestRecord;
use super::body::{CopyError, read_more};
use super::errors::ProxyError;
use super::finish::{Next, answer_error, close_after_error};
use super::pace::Pace;
use super::request_head::read_request;
use super::retry::forward_with_retries;
use super::statistics::MeteredSide;
use super::stream::BufferedStream;
use super::worker::{CurrentWorker, Worker};
use crate::http::fields::BodyFraming;
use crate::http::request::RequestHead;

/// Serves every request of one client connection, each with the listener's worker in force
/// when the request starts.
pub async fn serve_client(current: Rc<CurrentWorker>, stream: TcpStream) {
    let worker = current.get();
    worker.statistics().client_connections.increment();
    // Heads and small bodies go out at once; the proxy writes whole messages anyway.
    let _ = stream.set_no_delay(true);
    let client_peer = stream
        .peer_address()
        .unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let client_address = *client_peer.ip();
    let client_handle = stream.handle();
    let mut client = BufferedStream::new(stream).metered(worker.meter(MeteredSide::Client));
    loop {
        if current.ends_connections() {
            return client.close();
        }
        let worker = current.get();
        let counters = worker.statistics();
        // A drain (or the listener's removal) closes a connection idle between requests at
        // once; a head already begun is read and served (its response closes).
        let read = match current
            .unless_ending(read_request(&worker, &mut client))
            .await
        {
            Some(read) => read,
            None if client.buffered().is_empty() => return client.close(),
            None => read_request(&worker, &mut client).await,
        };
        let head = match read {
            Ok(Some(head)) => head,
            Ok(None) => return client.close(),
            Err(error) => {
                counters.rejected_requests.increment();
                let answered = answer_error(&worker, &client, error).await;
                return close_after_error(&worker, client, error, answered).await;
            }
        };
        counters.requests.increment();
        // A cut-off response has no end, and a tunnel's time is the tunnel's.
        let started = worker.handle().now();
        let timed = head.upgrade().is_none();
        let observe = || {
            let elapsed = worker.handle().now().saturating_since(started);
            counters.request_duration.observe(elapsed);
        };
        let record = RequestRecord::new(started);
        let outcome = exchange(&worker, &mut client, &head, client_address, &record).await;
        worker.legs().part(client_handle);
        let log = |record: &RequestRecord| {
            if let Some(log) = worker.access_log() {
                log.record(worker.handle().now(), client_peer, &head, record);
            }
        };
        let next = match outcome {
            Ok(next) => next,
            Err(error) => {
                record.status.set(error.status());
                let answered = answer_error(&worker, &client, error).await;
                if timed {
                    observe();
                }
                log(&record);
                return close_after_error(&worker, client, error, answered).await;
            }
        };
        if timed && next != Next::Abort {
            observe();
        }
        log(&record);
        match next {
            Next::KeepAlive => {}
            Next::Close => return client.close(),
            Next::Abort => return client.abort(),
        }
    }
}

/// Forwards one request; an `Err` is answered by the caller with that status.
async fn exchange(
    worker: &Worker,
    client: &mut BufferedStream,
    head: &RequestHead,
    client_address: Ipv4Addr,
    record: &RequestRecord,
) -> Result<Next, ProxyError> {
    let settings = worker.settings();
    let counters = worker.statistics();
    let handle = worker.handle();
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
    if head.expects_continue() && head.framing != BodyFraming::Empty {
        client
            .write_all(
                handle,
                settings.timeouts.client,
                b"HTTP/1.1 100 Continue\r\n\r\n",
            )
            .await
            .map_err(|_| ProxyError::BadRequest)?;
    }
    if let BodyFraming::Length(length) = head.framing
        && length > 0
        && length <= settings.limits.body_buffer
    {
        match buffer_body(worker, client, length).await {
            Ok(()) => {}
            Err(CopyError::SourceTimedOut) => {
                counters.body_timeouts.increment();
                return Err(ProxyError::RequestTimeout);
            }
            Err(_) => {
                counters.client_aborts.increment();
                return Ok(Next::Abort);
            }
        }
    }
    forward_with_retries(worker, client, head, client_address, record).await
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
