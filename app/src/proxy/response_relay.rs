//! The response phase: the final response head re-framed for the client (its version, its keep-alive, a drained core's `Connection: close`) and its body relayed, paced; or, after a `101`, the switch announced and the bytes tunnelled.

use super::access_log::RequestRecord;
use super::body::{CopyError, copy_chunked, copy_exact, copy_until_close, send};
use super::errors::ProxyError;
use super::finish::{Next, count_status};
use super::forward::{self, ConnectionOption};
use super::outcome::Attempt;
use super::pace::Pace;
use super::stream::BufferedStream;
use super::tunnel::{self, TunnelEnd};
use super::worker::Worker;
use crate::http::fields::BodyFraming;
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;

/// Which connections may carry another message after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Persistence {
    /// Each as its fields allow; the backend's goes to the pool only when `pooling`.
    AsAllowed { pooling: bool },
    /// Neither: the response came before the request was all sent.
    Neither,
}

/// Sends the final response head and body to the client, re-framed for it.
pub(super) async fn relay_response(
    worker: &Worker,
    client: &mut BufferedStream,
    upstream: &mut BufferedStream,
    request: &RequestHead,
    response: &ResponseHead,
    persistence: Persistence,
    record: &RequestRecord,
) -> Attempt {
    let pooling = persistence == Persistence::AsAllowed { pooling: true };
    let settings = worker.settings();
    let handle = worker.handle();
    let timeouts = settings.timeouts;
    let client_speaks_1_1 = request.minor_version >= 1;
    // Codings other than chunked stay on the body: an HTTP/1.0 client cannot be told of them
    // (RFC 9112 6.1), and a body chunked under another coding cannot be chunked again.
    // nginx refuses every such response with a 502 ("upstream sent unknown
    // Transfer-Encoding"); HAProxy frames a message as chunked whenever chunked is its last
    // coding. We pass `gzip, chunked` on to HTTP/1.1 clients and refuse only what cannot be.
    // Chunked before another coding (`chunked, gzip`) is broken framing whoever asks (RFC
    // 9112 6.1: chunked is applied once and, when the sender does not close, last): the
    // backend's fault. A coding an HTTP/1.0 client cannot be sent depends on the client's
    // version, which the client chooses, so it is never charged to the backend.
    let codings = response.transfer_codings();
    if codings.iter().any(|c| c.eq_ignore_ascii_case(b"chunked")) {
        return Attempt::BackendFailed {
            error: ProxyError::BadGateway,
            response_started: true,
        };
    }
    if !codings.is_empty() && !client_speaks_1_1 {
        return Attempt::Unframeable;
    }
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
        && persistence != Persistence::Neither
        && client_framing != BodyFraming::UntilClose
        && !worker.core_draining();
    let option = match (keep_client, client_speaks_1_1) {
        (false, _) => ConnectionOption::Close,
        (true, true) => ConnectionOption::Persistent,
        (true, false) => ConnectionOption::KeepAlive,
    };
    let head_bytes = forward::response_for_client(
        response,
        &settings.forwarding,
        client_framing,
        option,
        None,
        &codings,
    );
    // The client's time taking the response is paced (`timeout.send`, `timeout.send-rate`),
    // head included; the time the backend takes to produce it is not the client's.
    let mut client_pace = Pace::new(timeouts.client, timeouts.send, timeouts.send_rate);
    let mut backend_pace = Pace::per_wait(timeouts.backend);
    match send(handle, client, &head_bytes, &mut client_pace).await {
        Ok(()) => {}
        Err(CopyError::DestinationTimedOut) => return Attempt::SendTimedOut,
        Err(_) => return Attempt::ClientFailed,
    }
    count_status(worker.statistics(), response.status);
    record.status.set(response.status);
    let encode = client_framing == BodyFraming::Chunked;
    let paces = (&mut backend_pace, &mut client_pace);
    let copied = match response.framing {
        BodyFraming::Empty => Ok(0),
        BodyFraming::Length(length) => copy_exact(handle, upstream, client, length, paces)
            .await
            .map(|()| length),
        BodyFraming::Chunked => copy_chunked(handle, upstream, client, encode, None, paces).await,
        BodyFraming::UntilClose => copy_until_close(handle, upstream, client, encode, paces).await,
    };
    match copied {
        Ok(bytes) => {
            worker.statistics().response_body_bytes.add(bytes);
            record.bytes.set(bytes);
        }
        Err(CopyError::Destination) => return Attempt::ClientFailed,
        Err(CopyError::DestinationTimedOut) => return Attempt::SendTimedOut,
        Err(CopyError::SourceTimedOut) => return Attempt::Truncated { stalled: true },
        Err(CopyError::Source | CopyError::Malformed | CopyError::TooLarge) => {
            return Attempt::Truncated { stalled: false };
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

/// After a `101`: the switch is announced to the client, then bytes flow both ways until
/// each side has closed, or nothing moves either way for `timeout.tunnel`.
pub(super) async fn tunnel(
    worker: &Worker,
    client: &mut BufferedStream,
    upstream: &mut BufferedStream,
    response: &ResponseHead,
) -> Attempt {
    let settings = worker.settings();
    let handle = worker.handle();
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
        &[],
    );
    if client
        .write_all(handle, settings.timeouts.client, &head)
        .await
        .is_err()
    {
        return Attempt::ClientFailed;
    }
    count_status(worker.statistics(), 101);
    worker.statistics().tunnels.increment();
    // Bytes that arrived behind the heads belong to the new protocol.
    let early_from_client = client.buffered().to_vec();
    client.consume(early_from_client.len());
    let early_from_backend = upstream.buffered().to_vec();
    upstream.consume(early_from_backend.len());
    let end = tunnel::relay_both_ways(
        handle,
        (client.stream(), early_from_client),
        (upstream.stream(), early_from_backend),
        settings.timeouts.tunnel,
    )
    .await;
    if end == TunnelEnd::Idle {
        worker.statistics().tunnel_timeouts.increment();
    }
    Attempt::Relayed {
        next: if end == TunnelEnd::Closed {
            Next::Close
        } else {
            Next::Abort
        },
        reusable: false,
        status: 101,
    }
}
