//! One client connection served to completion: read each request head (keep-alive and pipelined requests in order), pick a backend, connect or reuse, relay the request and its body, relay the response re-framed for the client, retry where that is safe, answer errors, and tunnel after a `101`.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use unisock_kernel::executor::Handle;
use unisock_kernel::socket::{Shutdown, TcpStream};

use super::access_log::RequestRecord;
use super::errors::ProxyError;
use super::forward::{self, ConnectionOption};
use super::statistics::{MeteredSide, ProxyCoreCounters};
use super::stream::{BufferedStream, READ_CHUNK, StreamError};
use super::worker::{CurrentWorker, Worker};
use crate::http::chunked::{self, ChunkedDecoder};
use crate::http::fields::BodyFraming;
use crate::http::request::{self, HeadLimits, RequestHead};
use crate::http::response::{self, ResponseHead};

/// What becomes of the client connection after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close gracefully (everything sent was a complete message).
    Close,
    /// Reset: the response was cut off, and the client must not take it as complete.
    Abort,
}

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

/// How long the close after an error response goes on reading, and discarding, the rest
/// of the client's request. nginx's lingering close waits up to 30 s (`lingering_time`);
/// 5 s, half the default header timeout, bounds what a client that never closes can hold.
const LINGER: Duration = Duration::from_secs(5);

/// Writes the proxy's own error response; false if the client did not take it.
async fn answer_error(worker: &Worker, client: &BufferedStream, error: ProxyError) -> bool {
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
/// take, a body invited by `100 Continue`): closing with its bytes unread would reset the connection, and a reset
/// makes the client's stack drop the response it has not read yet. So the response is
/// followed by a FIN and the rest of the request is read and discarded until the client
/// closes too, for at most `LINGER`. A request timeout closes at once: its client already
/// had the header timeout to send, the read that timed out left nothing unread, and our
/// stack's orphan discards whatever still comes instead of resetting.
async fn close_after_error(
    worker: &Worker,
    mut client: BufferedStream,
    error: ProxyError,
    answered: bool,
) {
    if !answered {
        return client.abort();
    }
    let handle = worker.handle();
    if error != ProxyError::RequestTimeout && client.stream().shutdown(Shutdown::Write).is_ok() {
        client.discard_buffered();
        let deadline = handle.now() + LINGER;
        loop {
            let left = deadline.saturating_since(handle.now());
            if left.is_zero() {
                break;
            }
            match client.fill(handle, left).await {
                Ok(count) if count > 0 => {
                    let unread = client.buffered().len();
                    client.consume(unread);
                }
                _ => break,
            }
        }
    }
    client.close()
}

fn count_status(counters: &ProxyCoreCounters, status: u16) {
    counters.count_status(status);
}

/// The next request head: `Ok(None)` when the client closed or idled out between requests.
/// The header timeout runs from the head's first byte, so a slow client cannot hold the
/// connection by trickling bytes (slowloris).
async fn read_request(
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
    let mut deadline = None;
    loop {
        if !client.buffered().is_empty() {
            match request::parse(client.buffered(), &limits) {
                Ok(Some((head, length))) => {
                    client.consume(length);
                    return Ok(Some(head));
                }
                Ok(None) => {}
                Err(error) => return Err(ProxyError::from_status(error.status())),
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
                    worker.statistics().client_aborts.increment();
                }
                return Ok(None);
            }
            Ok(_) => {}
            Err(StreamError::TimedOut) if deadline.is_none() => return Ok(None),
            Err(StreamError::TimedOut) => return Err(ProxyError::RequestTimeout),
        }
    }
}

/// How relaying one attempt ended.
enum Attempt {
    /// The response went to the client; whether the backend connection can be pooled.
    Relayed {
        next: Next,
        reusable: bool,
        status: u16,
    },
    /// The backend failed before the response head was complete.
    BackendFailed {
        error: ProxyError,
        response_started: bool,
    },
    /// The client went away or stopped reading.
    ClientFailed,
    /// The response was cut off mid-body by the backend.
    Truncated,
    /// The request body is refused (too large, bad chunked framing) before any response.
    BodyRefused(ProxyError),
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
    // Only a request that can be sent again without its client may be retried after it was
    // sent, or sent on a pooled connection the backend may be closing at that moment.
    let replayable = head.is_idempotent() && head.framing == BodyFraming::Empty;
    let upgrade = head.upgrade().is_some();
    let mut tried: Vec<usize> = Vec::new();
    let mut connect_retries = settings.retries.connect;
    let mut sent_retries = settings.retries.sent;
    let mut last_error = ProxyError::ServiceUnavailable;
    loop {
        let now = handle.now();
        let picked = worker.balancer().borrow_mut().pick(
            |backend| worker.health().is_available(backend, now) && !tried.contains(&backend),
            client_address,
        );
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
            if last_error == ProxyError::ServiceUnavailable {
                counters.no_backend.increment();
            }
            return Err(last_error);
        };
        let pooled = if replayable && !upgrade {
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
                Err(error) => {
                    record_backend_failure(worker, backend);
                    tried.push(backend);
                    last_error = error;
                    if error == ProxyError::GatewayTimeout {
                        counters.backend_timeouts.increment();
                    } else {
                        counters.backend_failures.increment();
                    }
                    if connect_retries == 0 {
                        return Err(error);
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
                if status >= 500 {
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
                // A pooled connection that the backend closed while idle says nothing
                // about the backend's health.
                if !reused {
                    record_backend_failure(worker, backend);
                    tried.push(backend);
                }
                // A timeout is not retried: the backend may still be working on the
                // request, and a second wait would double the client's.
                let retryable = replayable && !response_started && error == ProxyError::BadGateway;
                if retryable && (reused || sent_retries > 0) {
                    if !reused {
                        sent_retries -= 1;
                    }
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
            Attempt::Truncated => {
                upstream.abort();
                record_backend_failure(worker, backend);
                counters.truncated_responses.increment();
                return Ok(Next::Abort);
            }
            Attempt::BodyRefused(error) => {
                upstream.abort();
                counters.rejected_requests.increment();
                return Err(error);
            }
        }
    }
}

fn record_backend_failure(worker: &Worker, backend: usize) {
    let settings = worker.settings();
    let checks_on = settings.pool.health.probe != super::settings::HealthProbe::Off;
    worker.health().record_failure(
        backend,
        worker.handle().now(),
        &settings.pool.ejection,
        checks_on,
    );
}

/// A new connection to `backend`, from this core's stack: its local port comes from the
/// core's Receive Flow Deliver allocator, so the replies land on this core.
async fn connect(worker: &Worker, backend: usize) -> Result<BufferedStream, ProxyError> {
    let settings = worker.settings();
    let address = settings.pool.backends[backend].address;
    worker.statistics().backend_connects.increment();
    if let Some(counters) = worker.statistics().backend(backend) {
        counters.connections_opened.increment();
    }
    let connect = TcpStream::connect(worker.tcp(), address);
    match worker
        .handle()
        .timeout(settings.timeouts.connect, connect)
        .await
    {
        Ok(Ok(stream)) => {
            let _ = stream.set_no_delay(true);
            let meter = worker.meter(MeteredSide::Backend(backend));
            Ok(BufferedStream::new(stream).metered(meter))
        }
        Ok(Err(_)) => Err(ProxyError::BadGateway),
        Err(_elapsed) => Err(ProxyError::GatewayTimeout),
    }
}

/// Which side of a copy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CopyError {
    /// Reading: closed early, reset, or timed out.
    Source,
    /// Writing.
    Destination,
    /// A chunked body with bad framing.
    Malformed,
    /// A body over the limit.
    TooLarge,
}

/// One attempt: request head and body to the backend, response back to the client.
async fn relay(
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
    let request_head = forward::request_for_backend(
        head,
        client_address,
        &settings.forwarding,
        head.framing,
        option,
    );
    if upstream
        .write_all(handle, timeouts.backend, &request_head)
        .await
        .is_err()
    {
        return Attempt::BackendFailed {
            error: ProxyError::BadGateway,
            response_started: false,
        };
    }
    let body = match head.framing {
        BodyFraming::Length(length) => copy_exact(
            handle,
            client,
            upstream,
            length,
            timeouts.client,
            timeouts.backend,
        )
        .await
        .map(|()| length),
        BodyFraming::Chunked => {
            copy_chunked(
                handle,
                client,
                upstream,
                true,
                Some(settings.limits.body),
                timeouts.client,
                timeouts.backend,
            )
            .await
        }
        BodyFraming::Empty | BodyFraming::UntilClose => Ok(0),
    };
    match body {
        Ok(bytes) => counters.request_body_bytes.add(bytes),
        Err(CopyError::Source) => return Attempt::ClientFailed,
        Err(CopyError::Destination) => {
            return Attempt::BackendFailed {
                error: ProxyError::BadGateway,
                response_started: !upstream.buffered().is_empty(),
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
        pooling && !upgrade,
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

/// Sends the final response head and body to the client, re-framed for it.
async fn relay_response(
    worker: &Worker,
    client: &mut BufferedStream,
    upstream: &mut BufferedStream,
    request: &RequestHead,
    response: &ResponseHead,
    pooling: bool,
    record: &RequestRecord,
) -> Attempt {
    let settings = worker.settings();
    let handle = worker.handle();
    let timeouts = settings.timeouts;
    let client_speaks_1_1 = request.minor_version >= 1;
    // A body of unknown length goes to an HTTP/1.1 client chunked, so its connection can
    // stay open; an HTTP/1.0 client reads it until we close.
    let client_framing = match response.framing {
        BodyFraming::Chunked | BodyFraming::UntilClose if client_speaks_1_1 => BodyFraming::Chunked,
        BodyFraming::Chunked | BodyFraming::UntilClose => BodyFraming::UntilClose,
        other => other,
    };
    // A drained core says `Connection: close` (RFC 9112 9.6) so the client does not send
    // another request on a connection about to close.
    let keep_client = request.wants_persistence()
        && client_framing != BodyFraming::UntilClose
        && !worker.core_draining();
    let option = match (keep_client, client_speaks_1_1) {
        (false, _) => ConnectionOption::Close,
        (true, true) => ConnectionOption::Persistent,
        (true, false) => ConnectionOption::KeepAlive,
    };
    let head_bytes =
        forward::response_for_client(response, &settings.forwarding, client_framing, option, None);
    if client
        .write_all(handle, timeouts.client, &head_bytes)
        .await
        .is_err()
    {
        return Attempt::ClientFailed;
    }
    count_status(worker.statistics(), response.status);
    record.status.set(response.status);
    let encode = client_framing == BodyFraming::Chunked;
    let copied = match response.framing {
        BodyFraming::Empty => Ok(0),
        BodyFraming::Length(length) => copy_exact(
            handle,
            upstream,
            client,
            length,
            timeouts.backend,
            timeouts.client,
        )
        .await
        .map(|()| length),
        BodyFraming::Chunked => {
            copy_chunked(
                handle,
                upstream,
                client,
                encode,
                None,
                timeouts.backend,
                timeouts.client,
            )
            .await
        }
        BodyFraming::UntilClose => {
            copy_until_close(
                handle,
                upstream,
                client,
                encode,
                timeouts.backend,
                timeouts.client,
            )
            .await
        }
    };
    match copied {
        Ok(bytes) => {
            worker.statistics().response_body_bytes.add(bytes);
            record.bytes.set(bytes);
        }
        Err(CopyError::Destination) => return Attempt::ClientFailed,
        Err(CopyError::Source | CopyError::Malformed | CopyError::TooLarge) => {
            return Attempt::Truncated;
        }
    }
    Attempt::Relayed {
        next: if keep_client {
            Next::KeepAlive
        } else {
            Next::Close
        },
        // Bytes after the response would be a protocol error on the backend's side: such a
        // connection is not reused.
        reusable: pooling && response.allows_reuse() && upstream.buffered().is_empty(),
        status: response.status,
    }
}

/// Reads more into `from` when its buffer is empty; end of stream and errors are `Source`.
async fn refill(
    handle: &Handle,
    from: &mut BufferedStream,
    timeout: Duration,
) -> Result<(), CopyError> {
    if from.buffered().is_empty() {
        match from.fill(handle, timeout).await {
            Ok(count) if count > 0 => {}
            _ => return Err(CopyError::Source),
        }
    }
    Ok(())
}

/// Moves exactly `length` bytes; never holds more than one read's worth.
async fn copy_exact(
    handle: &Handle,
    from: &mut BufferedStream,
    to: &BufferedStream,
    length: u64,
    read_timeout: Duration,
    write_timeout: Duration,
) -> Result<(), CopyError> {
    let mut left = length;
    while left > 0 {
        refill(handle, from, read_timeout).await?;
        let take = (from.buffered().len() as u64).min(left) as usize;
        to.write_all(handle, write_timeout, &from.buffered()[..take])
            .await
            .map_err(|_| CopyError::Destination)?;
        from.consume(take);
        left -= take as u64;
    }
    Ok(())
}

/// Decodes a chunked body from `from` and writes its data to `to`, re-chunked when
/// `encode`; returns the data bytes.
async fn copy_chunked(
    handle: &Handle,
    from: &mut BufferedStream,
    to: &BufferedStream,
    encode: bool,
    limit: Option<u64>,
    read_timeout: Duration,
    write_timeout: Duration,
) -> Result<u64, CopyError> {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Vec::with_capacity(READ_CHUNK + 64);
    let mut total = 0u64;
    while !decoder.is_done() {
        refill(handle, from, read_timeout).await?;
        out.clear();
        let mut used = 0;
        let input = from.buffered();
        while used < input.len() && !decoder.is_done() {
            let (consumed, data) = decoder
                .decode(&input[used..])
                .map_err(|_| CopyError::Malformed)?;
            if !data.is_empty() {
                append_body(&mut out, data, encode);
                total += data.len() as u64;
            }
            used += consumed;
            if consumed == 0 {
                break;
            }
        }
        from.consume(used);
        if limit.is_some_and(|limit| total > limit) {
            return Err(CopyError::TooLarge);
        }
        if decoder.is_done() && encode {
            out.extend_from_slice(chunked::LAST_CHUNK);
        }
        if !out.is_empty() {
            to.write_all(handle, write_timeout, &out)
                .await
                .map_err(|_| CopyError::Destination)?;
        }
    }
    Ok(total)
}

/// Appends body bytes to `out` as one chunk when re-chunking, as they are otherwise.
fn append_body(out: &mut Vec<u8>, data: &[u8], encode: bool) {
    if encode {
        chunked::write_chunk_start(out, data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(chunked::CHUNK_END);
    } else {
        out.extend_from_slice(data);
    }
}

/// Relays a body delimited by the sender's close: end of stream ends it; a reset or a stall
/// is a truncation (the last chunk is then never sent, so the client sees it cut off).
async fn copy_until_close(
    handle: &Handle,
    from: &mut BufferedStream,
    to: &BufferedStream,
    encode: bool,
    read_timeout: Duration,
    write_timeout: Duration,
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    let mut out = Vec::with_capacity(READ_CHUNK + 16);
    loop {
        if from.buffered().is_empty() {
            match from.fill(handle, read_timeout).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(CopyError::Source),
            }
        }
        let data = from.buffered();
        out.clear();
        append_body(&mut out, data, encode);
        total += data.len() as u64;
        let length = data.len();
        from.consume(length);
        to.write_all(handle, write_timeout, &out)
            .await
            .map_err(|_| CopyError::Destination)?;
    }
    if encode {
        to.write_all(handle, write_timeout, chunked::LAST_CHUNK)
            .await
            .map_err(|_| CopyError::Destination)?;
    }
    Ok(total)
}

/// After a `101`: the switch is announced to the client, then bytes flow both ways until
/// each side has closed (or a side stays silent for the client timeout).
async fn tunnel(
    worker: &Worker,
    client: &mut BufferedStream,
    upstream: &mut BufferedStream,
    response: &ResponseHead,
) -> Attempt {
    let settings = worker.settings();
    let handle = worker.handle();
    let timeout = settings.timeouts.client;
    let protocol = response
        .headers
        .iter()
        .find(|field| field.is("upgrade"))
        .map(|field| field.value.clone());
    let head = forward::response_for_client(
        response,
        &settings.forwarding,
        BodyFraming::Empty,
        ConnectionOption::Upgrade,
        protocol.as_deref(),
    );
    if client.write_all(handle, timeout, &head).await.is_err() {
        return Attempt::ClientFailed;
    }
    count_status(worker.statistics(), 101);
    worker.statistics().tunnels.increment();
    // Bytes that arrived behind the heads belong to the new protocol.
    let early_from_client = client.buffered().to_vec();
    client.consume(early_from_client.len());
    let early_from_backend = upstream.buffered().to_vec();
    upstream.consume(early_from_backend.len());
    let upward = pin!(pump(
        handle,
        client.stream(),
        upstream.stream(),
        early_from_client,
        timeout
    ));
    let downward = pin!(pump(
        handle,
        upstream.stream(),
        client.stream(),
        early_from_backend,
        timeout
    ));
    let (up_ok, down_ok) = join(upward, downward).await;
    Attempt::Relayed {
        next: if up_ok && down_ok {
            Next::Close
        } else {
            Next::Abort
        },
        reusable: false,
        status: 101,
    }
}

/// Copies `from` to `to` until `from` ends, then half-closes `to`; false on an error.
async fn pump(
    handle: &Handle,
    from: &TcpStream,
    to: &TcpStream,
    early: Vec<u8>,
    timeout: Duration,
) -> bool {
    if !early.is_empty() && to.write_all(&early).await.is_err() {
        return false;
    }
    let mut buffer = alloc::vec![0u8; READ_CHUNK];
    loop {
        let read = match handle.timeout(timeout, from.read(&mut buffer)).await {
            Ok(Ok(count)) => count,
            Ok(Err(_)) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return false;
            }
        };
        if read == 0 {
            return to.shutdown(Shutdown::Write).is_ok();
        }
        match handle.timeout(timeout, to.write_all(&buffer[..read])).await {
            Ok(Ok(())) => {}
            _ => return false,
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
            && let Poll::Ready(output) = core::pin::Pin::new(&mut first).poll(context)
        {
            first_output = Some(output);
        }
        if second_output.is_none()
            && let Poll::Ready(output) = core::pin::Pin::new(&mut second).poll(context)
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
