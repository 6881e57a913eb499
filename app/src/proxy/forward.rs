//! The heads the proxy sends on: a request for the backend and a response for the client, each with the hop-by-hop fields removed (RFC 9110 7.6.1), the framing made for the next hop, and the forwarding fields (`X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded` per RFC 7239, `Via` per RFC 9110 7.6.3) added.

use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use super::settings::ForwardingHeaders;
use crate::http::fields::{self, BodyFraming, HeaderField};
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;

/// The name the proxy gives itself in `Via`.
pub const VIA_NAME: &str = "unisock";

/// What the next hop is told about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionOption {
    /// Nothing: HTTP/1.1's default, persistent.
    Persistent,
    /// `Connection: keep-alive`, which an HTTP/1.0 peer needs to keep the connection.
    KeepAlive,
    Close,
    /// `Connection: upgrade` with the `Upgrade` field (a protocol switch).
    Upgrade,
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut count = 0;
    loop {
        digits[count] = b'0' + (value % 10) as u8;
        count += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend(digits[..count].iter().rev());
}

/// The framing field for `framing` (`Empty` and `UntilClose` need none).
fn push_framing(out: &mut Vec<u8>, framing: BodyFraming) {
    match framing {
        BodyFraming::Length(length) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, length);
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => push_field(out, "Transfer-Encoding", b"chunked"),
        BodyFraming::Empty | BodyFraming::UntilClose => {}
    }
}

fn push_connection(out: &mut Vec<u8>, option: ConnectionOption, upgrade: Option<&[u8]>) {
    match option {
        ConnectionOption::Persistent => {}
        ConnectionOption::KeepAlive => push_field(out, "Connection", b"keep-alive"),
        ConnectionOption::Close => push_field(out, "Connection", b"close"),
        ConnectionOption::Upgrade => {
            push_field(out, "Connection", b"upgrade");
            if let Some(protocol) = upgrade {
                push_field(out, "Upgrade", protocol);
            }
        }
    }
}

/// `name: <earlier values>, <ours>`: the list fields that a proxy appends to.
fn push_appended(out: &mut Vec<u8>, headers: &[HeaderField], name: &str, ours: &[u8]) {
    let mut value = Vec::new();
    for earlier in fields::list_elements(headers, name) {
        value.extend_from_slice(earlier);
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(ours);
    push_field(out, name, &value);
}

fn via_value(minor_version: u8) -> Vec<u8> {
    let mut value = if minor_version == 0 {
        b"1.0 ".to_vec()
    } else {
        b"1.1 ".to_vec()
    };
    value.extend_from_slice(VIA_NAME.as_bytes());
    value
}

/// The request head for the backend: always HTTP/1.1, with `framing` for its body, and
/// always with one valid `Host` (RFC 9112 3.2), which no `Connection` option can remove: the
/// request's host (an absolute target's authority, or its own `Host`), or for an HTTP/1.0
/// request without one, the `backend`'s `address:port`, as nginx sends its `$proxy_host`
/// (Envoy sends its `default_host_for_http_10`; the proxy has no such setting).
pub fn request_for_backend(
    head: &RequestHead,
    client: Ipv4Addr,
    backend: SocketAddrV4,
    forwarding: &ForwardingHeaders,
    framing: BodyFraming,
    connection: ConnectionOption,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + head.target.len());
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    match head.host() {
        Some(host) => push_field(&mut out, "Host", host),
        None => push_field(&mut out, "Host", alloc::format!("{backend}").as_bytes()),
    }
    let replaced = |field: &HeaderField| {
        field.is("host")
            || (forwarding.x_forwarded_for && field.is("x-forwarded-for"))
            || (forwarding.x_forwarded_proto && field.is("x-forwarded-proto"))
            || (forwarding.forwarded && field.is("forwarded"))
            || (forwarding.via && field.is("via"))
            // The proxy answers `Expect: 100-continue` itself.
            || field.is("expect")
    };
    for field in fields::end_to_end(&head.headers).filter(|field| !replaced(field)) {
        push_field(&mut out, &field.name, &field.value);
    }
    let client_text = alloc::format!("{client}");
    if forwarding.x_forwarded_for {
        push_appended(
            &mut out,
            &head.headers,
            "X-Forwarded-For",
            client_text.as_bytes(),
        );
    }
    if forwarding.x_forwarded_proto {
        push_field(&mut out, "X-Forwarded-Proto", b"http");
    }
    if forwarding.forwarded {
        let ours = alloc::format!("for={client_text};proto=http");
        push_appended(&mut out, &head.headers, "Forwarded", ours.as_bytes());
    }
    if forwarding.via {
        push_appended(
            &mut out,
            &head.headers,
            "Via",
            &via_value(head.minor_version),
        );
    }
    push_framing(&mut out, framing);
    push_connection(&mut out, connection, head.upgrade());
    out.extend_from_slice(b"\r\n");
    out
}

/// The response head for the client: HTTP/1.1 status line (RFC 9110 6.2: we speak 1.1
/// whatever the backend spoke), end-to-end fields, our framing and connection option.
/// `length_of_bodiless` carries the backend's `Content-Length` through for HEAD and 304,
/// whose length describes the body a GET would have had (RFC 9110 8.6). `codings` is
/// `head.transfer_codings()`, which the caller has already computed to decide the framing
/// (it is built once per response, on the fast path).
pub fn response_for_client(
    head: &ResponseHead,
    forwarding: &ForwardingHeaders,
    framing: BodyFraming,
    connection: ConnectionOption,
    upgrade: Option<&[u8]>,
    codings: &[&[u8]],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, u64::from(head.status));
    out.push(b' ');
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for field in
        fields::end_to_end(&head.headers).filter(|field| !(forwarding.via && field.is("via")))
    {
        push_field(&mut out, &field.name, &field.value);
    }
    if forwarding.via {
        push_appended(
            &mut out,
            &head.headers,
            "Via",
            &via_value(head.minor_version),
        );
    }
    match framing {
        BodyFraming::Empty if head.status >= 200 && head.status != 204 => {
            if let Ok(Some(length)) = fields::content_length(&head.headers) {
                push_framing(&mut out, BodyFraming::Length(length));
            }
        }
        // The backend's other codings stay on the body, and chunked stays final (RFC 9112
        // 6.1): `gzip, chunked` goes on as it came. The caller never re-chunks a body that
        // is already chunked under another coding (`chunked, gzip`).
        BodyFraming::Chunked if !codings.is_empty() => {
            let mut value = Vec::new();
            for coding in codings {
                value.extend_from_slice(coding);
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(b"chunked");
            push_field(&mut out, "Transfer-Encoding", &value);
        }
        other => push_framing(&mut out, other),
    }
    push_connection(&mut out, connection, upgrade);
    out.extend_from_slice(b"\r\n");
    out
}

/// An interim (1xx) response relayed as received, less hop-by-hop fields.
pub fn interim_for_client(head: &ResponseHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, u64::from(head.status));
    out.push(b' ');
    out.extend_from_slice(head.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for field in fields::end_to_end(&head.headers) {
        push_field(&mut out, &field.name, &field.value);
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{self, HeadLimits};
    use crate::http::response;

    const LIMITS: HeadLimits = HeadLimits {
        request_line: 1000,
        header_bytes: 4000,
        header_count: 50,
    };

    fn request(text: &[u8]) -> RequestHead {
        request::parse(text, &LIMITS).unwrap().unwrap().0
    }

    const BACKEND: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 8080);

    fn text(bytes: &[u8]) -> &str {
        core::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn hop_by_hop_fields_go_and_forwarding_fields_are_appended() {
        let head = request(
            b"GET /x HTTP/1.1\r\nHost: example\r\nConnection: keep-alive, X-Internal\r\nX-Internal: secret\r\n\
              X-Forwarded-For: 192.0.2.1\r\nForwarded: for=192.0.2.1\r\nVia: 1.1 edge\r\nTE: trailers\r\n\
              X-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
        );
        let out = request_for_backend(
            &head,
            Ipv4Addr::new(10, 0, 0, 9),
            BACKEND,
            &ForwardingHeaders::default(),
            BodyFraming::Empty,
            ConnectionOption::Persistent,
        );
        assert_eq!(
            text(&out),
            "GET /x HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\
             X-Forwarded-For: 192.0.2.1, 10.0.0.9\r\nX-Forwarded-Proto: http\r\n\
             Forwarded: for=192.0.2.1, for=10.0.0.9;proto=http\r\nVia: 1.1 edge, 1.1 unisock\r\n\r\n"
        );
    }

    #[test]
    fn forwarding_fields_can_be_switched_off() {
        let head =
            request(b"POST / HTTP/1.0\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 3\r\n\r\n");
        let off = ForwardingHeaders {
            x_forwarded_for: false,
            x_forwarded_proto: false,
            forwarded: false,
            via: false,
        };
        let out = request_for_backend(
            &head,
            Ipv4Addr::new(10, 0, 0, 9),
            BACKEND,
            &off,
            BodyFraming::Length(3),
            ConnectionOption::Close,
        );
        assert_eq!(
            text(&out),
            "POST / HTTP/1.1\r\nHost: 10.0.0.3:8080\r\nX-Forwarded-For: 1.2.3.4\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn responses_are_reframed_for_the_client() {
        let head = response::parse(
            b"HTTP/1.0 200 OK\r\nServer: x\r\nConnection: close\r\nKeep-Alive: timeout=1\r\n\r\n",
            1000,
            false,
        )
        .unwrap()
        .unwrap()
        .0;
        let out = response_for_client(
            &head,
            &ForwardingHeaders::default(),
            BodyFraming::Chunked,
            ConnectionOption::Persistent,
            None,
            &head.transfer_codings(),
        );
        assert_eq!(
            text(&out),
            "HTTP/1.1 200 OK\r\nServer: x\r\nVia: 1.0 unisock\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let head_response =
            response::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", 1000, true)
                .unwrap()
                .unwrap()
                .0;
        let out = response_for_client(
            &head_response,
            &ForwardingHeaders::default(),
            BodyFraming::Empty,
            ConnectionOption::Close,
            None,
            &head_response.transfer_codings(),
        );
        assert!(
            text(&out).contains("Content-Length: 42\r\n"),
            "{}",
            text(&out)
        );
    }
}
