//! One client connection served to completion: the loop that takes each request (keep-alive and pipelined requests in order) through its phases, each a module of its own: read and validate the head (`request_head`), route (today: the listener's pool), apply policy (`policy`), the body before a backend (`request_body`), pick a backend and retry (`pick`, `retry`, `settle`), forward the head (`forward_head`), relay the bodies (`attempt`, `response_relay`, `body`), and finish (`finish`: answer an error, log, count, keep alive or close).

use alloc::rc::Rc;
use core::net::{Ipv4Addr, SocketAddrV4};

use unisock_kernel::socket::TcpStream;

use super::access_log::RequestRecord;
use super::errors::ProxyError;
use super::finish::{Next, answer_error, close_after_error, log_request, observe_duration};
use super::policy::admit;
use super::request_body::receive_before_backend;
use super::request_head::read_request;
use super::retry::forward_with_retries;
use super::statistics::MeteredSide;
use super::stream::BufferedStream;
use super::worker::{CurrentWorker, Worker};
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
        let observe = || observe_duration(&worker, started);
        let record = RequestRecord::new(started);
        let outcome = exchange(&worker, &mut client, &head, client_address, &record).await;
        worker.legs().part(client_handle);
        let log = |record: &RequestRecord| log_request(&worker, client_peer, &head, record);
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

/// Forwards one request through its phases after the head: route, policy, the body before a
/// backend, then the backend phase (pick, forward the head, relay the bodies, retry); an
/// `Err` is answered by the caller with that status.
async fn exchange(
    worker: &Worker,
    client: &mut BufferedStream,
    head: &RequestHead,
    client_address: Ipv4Addr,
    record: &RequestRecord,
) -> Result<Next, ProxyError> {
    // Route: today every request goes to the listener's pool (`settings.pool`); a route phase
    // choosing the pool (and the policy and header rules that go with it) slots in here.
    admit(worker, head)?;
    if let Some(ended) = receive_before_backend(worker, client, head).await {
        return ended;
    }
    forward_with_retries(worker, client, head, client_address, record).await
}
