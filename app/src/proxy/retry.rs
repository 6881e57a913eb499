//! The backend phase of a request: pick a backend (`pick`), connect or reuse a pooled connection, make the attempt (`attempt`), settle its outcome (health, pooling, counters), and retry where that is safe: a connect failure within `retry.connect`, a replayable request's failure before any response within `retry.sent`, and one free resend for the keep-alive race.

use alloc::vec::Vec;
use core::net::Ipv4Addr;

use super::access_log::RequestRecord;
use super::attempt::relay;
use super::connect::{ConnectFailure, connect};
use super::errors::ProxyError;
use super::finish::Next;
use super::pick::{pick_backend, record_backend_failure};
use super::settings::HealthProbe;
use super::settle::{Settled, settle};
use super::statistics::local_failure_index;
use super::stream::BufferedStream;
use super::worker::Worker;
use crate::http::fields::BodyFraming;
use crate::http::request::RequestHead;

/// Sends one request to a backend of the listener's pool, retrying where that is safe; an
/// `Err` is answered by the caller with that status.
pub(super) async fn forward_with_retries(
    worker: &Worker,
    client: &mut BufferedStream,
    head: &RequestHead,
    client_address: Ipv4Addr,
    record: &RequestRecord,
) -> Result<Next, ProxyError> {
    let settings = worker.settings();
    let counters = worker.statistics();
    let handle = worker.handle();
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
        let picked = pick_backend(worker, &tried, client_address, now, checks_on);
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
        let (error, response_started) = match settle(worker, backend, upstream, attempt) {
            Settled::Ended(ended) => return ended,
            Settled::BackendFailed {
                error,
                response_started,
            } => (error, response_started),
        };
        let retryable = replayable && !response_started && error == ProxyError::BadGateway;
        if retryable && reused && race_retry_left {
            race_retry_left = false;
            counters.retries.increment();
            last_error = error;
            continue;
        }
        // Closed, reset or not HTTP: the backend is broken. No answer in time is
        // counted only as a 504 would be (the URL may just be slow).
        if error != ProxyError::GatewayTimeout || settings.pool.ejection.statuses.contains(504) {
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
}
