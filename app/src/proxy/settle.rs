//! Settling one attempt's outcome: the backend's health verdict on its response, its connection pooled or closed, and the counters; a backend failure before the response is left to the retry phase (`retry`).

use super::errors::ProxyError;
use super::finish::Next;
use super::outcome::Attempt;
use super::pick::record_backend_failure;
use super::stream::BufferedStream;
use super::worker::Worker;

/// What an attempt's outcome leaves to do.
pub(super) enum Settled {
    /// The request ended: its response relayed (the connection's next step), or an error the
    /// caller answers.
    Ended(Result<Next, ProxyError>),
    /// The backend failed before its response was complete (its connection already reset):
    /// the retry phase decides whether another attempt is made.
    BackendFailed {
        error: ProxyError,
        response_started: bool,
    },
}

/// Settles `attempt`, made on `upstream` to `backend`.
pub(super) fn settle(
    worker: &Worker,
    backend: usize,
    upstream: BufferedStream,
    attempt: Attempt,
) -> Settled {
    let settings = worker.settings();
    let counters = worker.statistics();
    let handle = worker.handle();
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
            Settled::Ended(Ok(next))
        }
        Attempt::BackendFailed {
            error,
            response_started,
        } => {
            upstream.abort();
            Settled::BackendFailed {
                error,
                response_started,
            }
        }
        Attempt::ClientFailed => {
            upstream.abort();
            counters.client_aborts.increment();
            Settled::Ended(Ok(Next::Abort))
        }
        Attempt::BodyTimedOut => {
            // The backend has an incomplete request: reset, so that it stops waiting
            // for the rest. The backend did nothing wrong.
            upstream.abort();
            counters.body_timeouts.increment();
            Settled::Ended(Err(ProxyError::RequestTimeout))
        }
        Attempt::SendTimedOut => {
            upstream.abort();
            counters.send_timeouts.increment();
            Settled::Ended(Ok(Next::Abort))
        }
        Attempt::Truncated { stalled } => {
            upstream.abort();
            // A stall counts as a 504 before the head would: only when 504 is chosen,
            // since a slow stream (server-sent events) is not a broken backend.
            if !stalled || settings.pool.ejection.statuses.contains(504) {
                record_backend_failure(worker, backend);
            }
            counters.truncated_responses.increment();
            Settled::Ended(Ok(Next::Abort))
        }
        Attempt::Unframeable => {
            // The body was not read: the connection cannot carry another request.
            upstream.abort();
            counters.unframeable_responses.increment();
            Settled::Ended(Err(ProxyError::BadGateway))
        }
        Attempt::BodyRefused(error) => {
            upstream.abort();
            counters.rejected_requests.increment();
            Settled::Ended(Err(error))
        }
    }
}
