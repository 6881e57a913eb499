//! One client connection served to completion: read each request head (keep-alive and pipelined requests in order), pick a backend, connect or reuse, relay the request and its body, relay the response re-framed for the client, retry where that is safe, answer errors, and tunnel after a `101`.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use unisock_kernel::socket::TcpStream;

use super::access_log::RequestRecord;
use super::attempt::relay;
use super::body::{CopyError, read_more};
use super::connect::{ConnectFailure, connect};
use super::errors::ProxyError;
use super::finish::{Next, answer_error, close_after_error};
use super::health::FailureOutcome;
use super::outcome::Attempt;
use super::pace::Pace;
use super::request_head::read_request;
use super::settings::HealthProbe;
use super::statistics::{MeteredSide, local_failure_index};
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
    // Only a request that can be sent again without its client may be retried after it was
    // sent, or sent on a pooled connection the backend may be closing at that moment.
    let replayable = head.is_idempotent() && head.framing == BodyFraming::Empty;
    let upgrade = head.upgrade().is_some();
    let checks_on = settings.pool.health.probe != HealthProbe::Off;
    let mut tried: Vec<usize> = Vec::new();
    let mut connect_retries = settings.retries.connect;
    let mut sent_retries = settings.retries.sent;
    // One free resend for the keep-alive race (a pooled connection the backend closed as it
    // was taken, which says nothing of the backend); nginx likewise gives a cached
    // connection's error one more try. After it, the request goes on new connections only
    // and every failure counts against the backend and the retry budget, so a request that
    // makes backends close without answering cannot empty every pool.
    let mut race_retry_left = true;
    let mut last_error = ProxyError::ServiceUnavailable;
    let mut local_failure = false;
    loop {
        let now = handle.now();
        let mut picked = worker.balancer().borrow_mut().pick(
            |backend| {
                worker.health().is_available(backend, now, checks_on) && !tried.contains(&backend)
            },
            client_address,
        );
        if picked.is_none() {
            picked = worker
                .health()
                .last_resort(now, checks_on, |backend| tried.contains(&backend));
            if picked.is_some() {
                counters.last_resort_attempts.increment();
            }
        }
        if let Some(backend) = picked {
            record.backend.set(
                worker
                    .settings()
                    .pool
                    .backends
                    .get(backend)
                    .map(|b| b.address),
            );
        }
        let Some(backend) = picked else {
            if last_error == ProxyError::ServiceUnavailable && !local_failure {
                counters.no_backend.increment();
            }
            return Err(last_error);
        };
        let pooled = if replayable && !upgrade && race_retry_left {
            worker.pool().borrow_mut().take(backend, now)
        } else {
            None
        };
        let reused = pooled.is_some();
        let mut upstream = match pooled {
            Some(stream) => {
                counters.backend_reuses.increment();
                if let Some(backend) = counters.backend(backend) {
                    backend.connections_reused.increment();
                }
                stream
            }
            None => match connect(worker, backend).await {
                Ok(stream) => stream,
                Err(failure) => {
                    tried.push(backend);
                    match failure {
                        // The proxy's own exhaustion: 503, and the backend is not blamed.
                        ConnectFailure::Local(error) => {
                            counters.local_connect_failures[local_failure_index(error)].increment();
                            local_failure = true;
                            last_error = ProxyError::ServiceUnavailable;
                        }
                        ConnectFailure::Backend(error) => {
                            record_backend_failure(worker, backend);
                            if error == ProxyError::GatewayTimeout {
                                counters.backend_timeouts.increment();
                            } else {
                                counters.backend_failures.increment();
                            }
                            last_error = error;
                        }
                    }
                    if connect_retries == 0 {
                        return Err(last_error);
                    }
                    connect_retries -= 1;
                    counters.retries.increment();
                    continue;
                }
            },
        };
        worker.balancer().borrow_mut().started(backend);
        worker
            .legs()
            .join(client.stream().handle(), upstream.stream().handle());
        let attempt = relay(
            worker,
            client,
            &mut upstream,
            head,
            (backend, client_address),
            upgrade,
            record,
        )
        .await;
        worker.balancer().borrow_mut().finished(backend);
        match attempt {
            Attempt::Relayed {
                next,
                reusable,
                status,
            } => {
                if let Some(counters) = counters.backend(backend) {
                    counters.count_status(status);
                }
                // Only the chosen statuses say the backend is broken: most 5xx answer what
                // the client asked for (501 to an unknown method, a slow URL's own 504).
                if settings.pool.ejection.statuses.contains(status) {
                    record_backend_failure(worker, backend);
                } else {
                    worker.health().record_success(backend);
                }
                if reusable {
                    worker
                        .pool()
                        .borrow_mut()
                        .put(backend, upstream, handle.now());
                } else {
                    upstream.close();
                }
                return Ok(next);
            }
            Attempt::BackendFailed {
                error,
                response_started,
            } => {
                upstream.abort();
                let retryable = replayable && !response_started && error == ProxyError::BadGateway;
                if retryable && reused && race_retry_left {
                    race_retry_left = false;
                    counters.retries.increment();
                    last_error = error;
                    continue;
                }
                // Closed, reset or not HTTP: the backend is broken. No answer in time is
                // counted only as a 504 would be (the URL may just be slow).
                if error != ProxyError::GatewayTimeout
                    || settings.pool.ejection.statuses.contains(504)
                {
                    record_backend_failure(worker, backend);
                }
                tried.push(backend);
                // A timeout is not retried: the backend may still be working on the
                // request, and a second wait would double the client's.
                if retryable && sent_retries > 0 {
                    sent_retries -= 1;
                    counters.retries.increment();
                    last_error = error;
                    continue;
                }
                if error == ProxyError::GatewayTimeout {
                    counters.backend_timeouts.increment();
                } else {
                    counters.backend_failures.increment();
                }
                return Err(error);
            }
            Attempt::ClientFailed => {
                upstream.abort();
                counters.client_aborts.increment();
                return Ok(Next::Abort);
            }
            Attempt::BodyTimedOut => {
                // The backend has an incomplete request: reset, so that it stops waiting
                // for the rest. The backend did nothing wrong.
                upstream.abort();
                counters.body_timeouts.increment();
                return Err(ProxyError::RequestTimeout);
            }
            Attempt::SendTimedOut => {
                upstream.abort();
                counters.send_timeouts.increment();
                return Ok(Next::Abort);
            }
            Attempt::Truncated { stalled } => {
                upstream.abort();
                // A stall counts as a 504 before the head would: only when 504 is chosen,
                // since a slow stream (server-sent events) is not a broken backend.
                if !stalled || settings.pool.ejection.statuses.contains(504) {
                    record_backend_failure(worker, backend);
                }
                counters.truncated_responses.increment();
                return Ok(Next::Abort);
            }
            Attempt::Unframeable => {
                // The body was not read: the connection cannot carry another request.
                upstream.abort();
                counters.unframeable_responses.increment();
                return Err(ProxyError::BadGateway);
            }
            Attempt::BodyRefused(error) => {
                upstream.abort();
                counters.rejected_requests.increment();
                return Err(error);
            }
        }
    }
}

/// Counts a failure that says the backend itself is broken (the callers choose which), and
/// an ejection that the pool's ejection share held back.
fn record_backend_failure(worker: &Worker, backend: usize) {
    let settings = worker.settings();
    let checks_on = settings.pool.health.probe != HealthProbe::Off;
    let outcome = worker.health().record_failure(
        backend,
        worker.handle().now(),
        &settings.pool.ejection,
        checks_on,
    );
    if outcome == FailureOutcome::EjectionCapped {
        worker.statistics().ejections_capped.increment();
    }
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
