//! How one attempt on a backend ended, as the phases that relay the request and the response report it to the one that decides on health, pooling and retries (`retry`).

use super::errors::ProxyError;
use super::finish::Next;

/// How relaying one attempt ended.
pub(super) enum Attempt {
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
    /// The client went away (or stalled outside a body).
    ClientFailed,
    /// The client's request body stalled or fell behind its minimum rate; nothing of the
    /// response has been sent (408).
    BodyTimedOut,
    /// The client stalled taking the response, or fell behind its minimum rate.
    SendTimedOut,
    /// The response was cut off mid-body by the backend: it closed, reset or sent bad
    /// framing, or (`stalled`) sent nothing for `timeout.backend`.
    Truncated { stalled: bool },
    /// A well-formed response this client cannot be sent as it is framed (a transfer coding
    /// before chunked, to an HTTP/1.0 client): 502, not charged to the backend, since the
    /// client chose its HTTP version and the same response goes to an HTTP/1.1 client.
    Unframeable,
    /// The request body is refused (too large, bad chunked framing) before any response.
    BodyRefused(ProxyError),
}
