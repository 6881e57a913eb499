//! The admin listener: `GET /metrics`, `/stats`, `/sockets`, `/config`, `PUT /config`, and the drains of backends and cores; on its own port, on every core, behind a source allow-list and (for changes) a bearer token.

mod sockets;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::sync::atomic::Ordering;
use core::time::Duration;

use unisock_kernel::socket::{SocketError, TcpStream};

pub use sockets::{joined_pairs, write_json, write_text};

use crate::config::{AddressRange, Configuration};
use crate::control::{ControlBoard, CoreProxy};
use crate::http::fields::BodyFraming;
use crate::http::request::{HeadLimits, HeadScan, RequestHead};
use crate::metrics::ReportFormat;
use crate::proxy::stream::BufferedStream;
use crate::services::StatisticsReport;

/// A request's head and body must arrive within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `PUT /config` and `GET /sockets` wait for every core.
const CORES_TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(5);
/// Admin connections served at once on one core; more are reset.
const MAX_CONNECTIONS_PER_CORE: usize = 16;

/// What each core's admin listener needs.
#[derive(Clone)]
pub struct AdminContext {
    pub core: Rc<CoreProxy>,
    /// The appliance's own network: the allow-list when the configuration names none.
    pub own_network: AddressRange,
    /// `/stats` and `/metrics` (Prometheus text format), from the same definitions.
    pub report: StatisticsReport,
}

/// Listens on the admin port on this core and serves it.
pub fn start(context: AdminContext, port: u16) -> Result<(), SocketError> {
    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let served = context.core.opener().listen(local, 64)?;
    let handle = context.core.handle().clone();
    let open = Rc::new(Cell::new(0usize));
    handle.clone().spawn(async move {
        loop {
            match served.listener().accept().await {
                Ok(stream) if open.get() >= MAX_CONNECTIONS_PER_CORE => {
                    // Over the cap: reset at once, holding nothing.
                    let _ = stream.abort();
                }
                Ok(stream) => {
                    open.set(open.get() + 1);
                    let open = open.clone();
                    let context = context.clone();
                    handle.spawn(async move {
                        serve(context, stream).await;
                        open.set(open.get() - 1);
                    });
                }
                Err(_) => return,
            }
        }
    });
    Ok(())
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    /// The answer comes before the request's end: the close lingers
    /// (`BufferedStream::close_lingering`, as the proxy does after its own refusals).
    before_request_end: bool,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            before_request_end: false,
        }
    }

    /// The same answer, sent before the request's end.
    fn before_request_end(mut self) -> Answer {
        self.before_request_end = true;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn serve(context: AdminContext, stream: TcpStream) {
    let remote = stream
        .peer_address()
        .map_or(Ipv4Addr::UNSPECIFIED, |address| *address.ip());
    let mut client = BufferedStream::new(stream);
    let handle = context.core.handle().clone();
    let answer = respond(&context, remote, &mut client).await;
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(answer.body.as_bytes());
    match client.write_all(&handle, REQUEST_TIMEOUT, &bytes).await {
        Ok(()) if answer.before_request_end => client.close_lingering(&handle).await,
        Ok(()) => client.close(),
        Err(_) => client.abort(),
    }
}

/// The allow-list is checked before a byte is read, the token after the head and before the
/// body: a refused peer makes the appliance hold nothing for it (its close does not linger;
/// an allowed one's refusals do, so that they reach it).
///
async fn respond(context: &AdminContext, remote: Ipv4Addr, client: &mut BufferedStream) -> Answer {
    let board = context.core.board();
    let admin = board.current().configuration.admin.clone();
    let allowed = match admin.as_ref().and_then(|admin| admin.allow.as_ref()) {
        Some(ranges) => ranges.iter().any(|range| range.contains(remote)),
        None => context.own_network.contains(remote),
    };
    if !allowed {
        board.admin_refused.fetch_add(1, Ordering::Relaxed);
        return Answer::text(403, format!("{remote} may not use the admin listener\n"));
    }
    let deadline = context.core.handle().now() + REQUEST_TIMEOUT;
    let head = match read_head(context, client, deadline).await {
        Ok(head) => head,
        Err(answer) => return answer,
    };
    let (path, query) = head
        .target
        .split_once('?')
        .unwrap_or((head.target.as_str(), ""));
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    // One spelling per endpoint (`/config/` or `//config` are not `/config`), so that what
    // the token guards cannot be reached by another path.
    let mut canonical = String::new();
    for segment in &segments {
        canonical.push('/');
        canonical.push_str(segment);
    }
    if canonical.is_empty() {
        canonical.push('/');
    }
    if canonical != path {
        return Answer::text(404, "no such endpoint (GET / lists them)\n").before_request_end();
    }
    let needs_token = head.method != "GET" || segments == ["config"];
    if needs_token {
        let token = admin.as_ref().and_then(|admin| admin.token.as_deref());
        let authorised = match (token, bearer_token(&head)) {
            (Some(expected), Some(given)) => same_secret(expected.as_bytes(), given),
            _ => false,
        };
        if !authorised {
            board.admin_refused.fetch_add(1, Ordering::Relaxed);
            let why = if token.is_none() {
                "changes are refused: no admin token is configured\n"
            } else {
                "needs Authorization: Bearer <token>\n"
            };
            return Answer::text(403, why).before_request_end();
        }
    }
    let body = match read_body(context, client, &head, deadline).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    answer(context, remote, &head, &segments, query, &body).await
}

async fn read_head(
    context: &AdminContext,
    client: &mut BufferedStream,
    deadline: unisock_kernel::time::Instant,
) -> Result<RequestHead, Answer> {
    let handle = context.core.handle();
    let limits = HeadLimits {
        request_line: 8 * 1024,
        header_bytes: 32 * 1024,
        header_count: 100,
    };
    let mut scan = HeadScan::new();
    loop {
        match scan.advance(client.buffered(), &limits) {
            Ok(Some((head, length))) => {
                client.consume(length);
                return Ok(head);
            }
            Ok(None) => {}
            Err(error) => {
                return Err(Answer::text(error.status(), "bad request\n").before_request_end());
            }
        }
        let wait = deadline.saturating_since(handle.now());
        match client.fill(handle, wait).await {
            Ok(0) | Err(_) => return Err(Answer::text(408, "request timed out\n")),
            Ok(_) => {}
        }
    }
}

async fn read_body(
    context: &AdminContext,
    client: &mut BufferedStream,
    head: &RequestHead,
    deadline: unisock_kernel::time::Instant,
) -> Result<Vec<u8>, Answer> {
    let handle = context.core.handle();
    let length = match head.framing {
        BodyFraming::Empty => 0,
        BodyFraming::Length(length) if length <= crate::config::MAX_FILE_BYTES as u64 => {
            length as usize
        }
        BodyFraming::Length(_) => {
            return Err(Answer::text(413, "at most 1 MiB\n").before_request_end());
        }
        _ => {
            let answer = Answer::text(400, "send the body with Content-Length\n");
            return Err(answer.before_request_end());
        }
    };
    while client.buffered().len() < length {
        let wait = deadline.saturating_since(handle.now());
        match client.fill(handle, wait).await {
            Ok(0) | Err(_) => return Err(Answer::text(408, "request timed out\n")),
            Ok(_) => {}
        }
    }
    let body = client.buffered()[..length].to_vec();
    client.consume(length);
    Ok(body)
}

/// `a == b` in time that depends only on the lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

fn bearer_token(head: &RequestHead) -> Option<&[u8]> {
    let field = head
        .headers
        .iter()
        .find(|field| field.is("authorization"))?;
    let value = field.value.as_slice();
    let prefix = b"Bearer ";
    (value.len() > prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

async fn answer(
    context: &AdminContext,
    remote: Ipv4Addr,
    head: &RequestHead,
    segments: &[&str],
    query: &str,
    body: &[u8],
) -> Answer {
    let board = context.core.board();
    let current = board.current();
    match (head.method.as_str(), segments) {
        ("GET", []) => Answer::text(
            200,
            "GET /metrics /stats /sockets[?format=json] /config\nPUT /config\n\
             POST /backends/<pool>/<address>/drain|enable\nPOST /cores/<n>/drain|enable\n",
        ),
        ("GET", ["metrics"]) => {
            let mut text = String::new();
            (context.report)(ReportFormat::Prometheus, &mut text);
            Answer {
                status: 200,
                content_type: ReportFormat::Prometheus.content_type(),
                body: text,
                before_request_end: false,
            }
        }
        ("GET", ["stats"]) => {
            let mut text = String::new();
            (context.report)(ReportFormat::Stats, &mut text);
            board.write_report(&mut text);
            Answer::text(200, text)
        }
        ("GET", ["sockets"]) => sockets(context, query == "format=json").await,
        ("GET", ["config"]) => Answer {
            status: 200,
            content_type: "application/toml",
            body: current.configuration.to_file(),
            before_request_end: false,
        },
        ("PUT", ["config"]) => put_config(context, remote, body).await,
        ("POST", ["backends", pool, address, action]) => {
            drain_backend(board, pool, address, action)
        }
        ("POST", ["cores", core, action]) => drain_core(board, core, action),
        (
            _,
            [
                "metrics" | "stats" | "sockets" | "config" | "backends" | "cores",
                ..,
            ],
        ) => Answer::text(405, "method not allowed\n"),
        _ => Answer::text(404, "no such endpoint (GET / lists them)\n"),
    }
}

async fn wait_for_cores<T>(
    context: &AdminContext,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    let handle = context.core.handle();
    let deadline = handle.now() + CORES_TIMEOUT;
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if handle.now() >= deadline {
            return None;
        }
        handle.sleep(POLL).await;
    }
}

async fn sockets(context: &AdminContext, json: bool) -> Answer {
    let board = context.core.board();
    let request = board.request_sockets();
    let Some(answers) = wait_for_cores(context, || board.collect_sockets(request)).await else {
        return Answer::text(503, "not every core answered\n");
    };
    let mut text = String::new();
    if json {
        write_json(&answers, &mut text);
        Answer {
            status: 200,
            content_type: "application/json",
            body: text,
            before_request_end: false,
        }
    } else {
        write_text(&answers, &mut text);
        Answer::text(200, text)
    }
}

async fn put_config(context: &AdminContext, remote: Ipv4Addr, body: &[u8]) -> Answer {
    let board = context.core.board();
    let Ok(text) = core::str::from_utf8(body) else {
        return Answer::text(400, "the configuration is not UTF-8\n");
    };
    let (generation, summary) = {
        let Some(_change) = board.change.try_lock() else {
            return Answer::text(503, "another change is being applied\n");
        };
        let mut new = match Configuration::from_file_reserving(text, &board.reserved_ports) {
            Ok(new) => new,
            Err(error) => return Answer::text(400, format!("configuration: {error}\n")),
        };
        let current = board.current();
        let old = &current.configuration;
        if old.admin.as_ref().map(|admin| admin.port) != new.admin.as_ref().map(|admin| admin.port)
        {
            return Answer::text(
                400,
                "configuration: `admin.port`: the admin listener's port cannot change while \
                 running (boot with the new file)\n",
            );
        }
        // A file that would shut the operator out is refused: it would take a reboot to undo.
        match &new.admin {
            Some(admin) if admin.token.is_none() => {
                return Answer::text(
                    400,
                    "configuration: `admin.token`: a file without the token would refuse every \
                     later change\n",
                );
            }
            Some(admin) => {
                let still_allowed = match &admin.allow {
                    Some(ranges) => ranges.iter().any(|range| range.contains(remote)),
                    None => context.own_network.contains(remote),
                };
                if !still_allowed {
                    return Answer::text(
                        400,
                        format!(
                            "configuration: `admin.allow`: it would refuse {remote}, which sends \
                             this change\n"
                        ),
                    );
                }
            }
            None => {}
        }
        // Names keep their last good answer until the resolver answers again.
        new.keep_answers_of(old);
        let summary = describe_changes(old, &new);
        (board.publish(new), summary)
    };
    let cores = board.core_count();
    let applied = wait_for_cores(context, || {
        (board.cores_applied(generation) == cores).then_some(())
    })
    .await;
    // Published either way: a core that has not switched yet (or could not open a new
    // listener's port, and retries) is reported, and 202 says the change stands.
    let (status, note) = if applied.is_some() {
        (200, "")
    } else {
        (
            202,
            "in force; not every core has switched yet (or a core could not open a port and retries)\n",
        )
    };
    Answer::text(
        status,
        format!(
            "generation={generation} applied_cores={}/{cores}\n{note}{summary}",
            board.cores_applied(generation)
        ),
    )
}

/// One line per listener or pool added, removed or changed.
pub fn describe_changes(old: &Configuration, new: &Configuration) -> String {
    let mut lines = String::new();
    for listener in &new.listeners {
        match old
            .listeners
            .iter()
            .find(|known| known.port == listener.port)
        {
            None => lines.push_str(&format!("listener {} added\n", listener.port)),
            Some(known) if known != listener => {
                lines.push_str(&format!("listener {} changed\n", listener.port))
            }
            Some(_) => {}
        }
    }
    for listener in &old.listeners {
        if !new
            .listeners
            .iter()
            .any(|known| known.port == listener.port)
        {
            lines.push_str(&format!(
                "listener {} removed (closes once drained)\n",
                listener.port
            ));
        }
    }
    for pool in &new.pools {
        match old.pool(&pool.name) {
            None => lines.push_str(&format!("pool {} added\n", pool.name)),
            Some(known) if known != pool => {
                lines.push_str(&format!("pool {} changed\n", pool.name))
            }
            Some(_) => {}
        }
    }
    for pool in &old.pools {
        if new.pool(&pool.name).is_none() {
            lines.push_str(&format!("pool {} removed\n", pool.name));
        }
    }
    if old.admin != new.admin {
        lines.push_str("admin changed\n");
    }
    if old.access_log != new.access_log {
        lines.push_str("access_log changed\n");
    }
    if old.hostname != new.hostname {
        lines.push_str("hostname changed\n");
    }
    if lines.is_empty() {
        lines.push_str("no change\n");
    }
    lines
}

fn drain_backend(board: &ControlBoard, pool: &str, address: &str, action: &str) -> Answer {
    let drained = match action {
        "drain" => true,
        "enable" => false,
        _ => return Answer::text(404, "drain or enable\n"),
    };
    // Under the change lock: a PUT publishing meanwhile would copy the state before it.
    let Some(_change) = board.change.try_lock() else {
        return Answer::text(503, "a change is being applied; try again\n");
    };
    let current = board.current();
    let Some(index) = current.configuration.pool_index(pool) else {
        return Answer::text(404, format!("no pool `{pool}`\n"));
    };
    let Ok(address) = address.parse::<SocketAddrV4>() else {
        return Answer::text(400, format!("`{address}` is not <ip>:<port>\n"));
    };
    let Some(backend) = current.configuration.pools[index]
        .settings
        .backends
        .iter()
        .position(|backend| backend.address == address)
    else {
        return Answer::text(404, format!("pool `{pool}` has no backend {address}\n"));
    };
    current.health[index].set_drained(backend, drained);
    Answer::text(
        200,
        format!(
            "backend {address} of pool {pool}: {}\n",
            if drained {
                "drained (no new requests)"
            } else {
                "enabled"
            }
        ),
    )
}

fn drain_core(board: &ControlBoard, core: &str, action: &str) -> Answer {
    let drained = match action {
        "drain" => true,
        "enable" => false,
        _ => return Answer::text(404, "drain or enable\n"),
    };
    let Ok(core) = core.parse::<usize>() else {
        return Answer::text(400, format!("`{core}` is not a core number\n"));
    };
    // Under the change lock, so that two drains at once cannot both pass the last-core check.
    let Some(_change) = board.change.try_lock() else {
        return Answer::text(503, "a change is being applied; try again\n");
    };
    if drained
        && (0..board.core_count())
            .filter(|&other| other != core && !board.is_drained(other))
            .count()
            == 0
    {
        return Answer::text(400, "refused: it is the last core serving\n");
    }
    if !board.set_drained(core, drained) {
        return Answer::text(404, format!("no core {core}\n"));
    }
    Answer::text(
        200,
        format!(
            "core {core}: {}\n",
            if drained {
                "drained (its new connections go to the other cores)"
            } else {
                "enabled"
            }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeg"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same_secret(b"0123456789abcdef", b""));
    }
}
