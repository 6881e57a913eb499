//! The forward-the-head phase: the request head rewritten for the backend (`forward`: its framing, its `Connection`, the forwarding fields) and written to it. Header rules (Pingora's `upstream_request_filter`) belong here.

use core::net::Ipv4Addr;

use super::forward::{self, ConnectionOption};
use super::stream::BufferedStream;
use super::worker::Worker;
use crate::http::request::RequestHead;

/// Writes `head`, rewritten for `backend`, to `upstream`; false if the backend did not take
/// it within `timeout.backend`.
pub(super) async fn forward_head(
    worker: &Worker,
    upstream: &BufferedStream,
    head: &RequestHead,
    (backend, client_address): (usize, Ipv4Addr),
    option: ConnectionOption,
) -> bool {
    let settings = worker.settings();
    let request_head = forward::request_for_backend(
        head,
        client_address,
        settings.pool.backends[backend].address,
        &settings.forwarding,
        head.framing,
        option,
    );
    upstream
        .write_all(worker.handle(), settings.timeouts.backend, &request_head)
        .await
        .is_ok()
}
