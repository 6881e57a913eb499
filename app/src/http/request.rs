//! A client's request head, parsed with `httparse` under the proxy's limits, and every check that keeps a smuggled or ambiguous request from reaching a backend (RFC 9112 sections 2-3 and 6, RFC 9110 7.2).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::fields::{self, BodyFraming, FramingError, HeaderField};
use super::target::{TargetError, forwarded_target, is_valid_authority};

/// The size limits a request head is read under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    pub request_line: usize,
    pub header_bytes: usize,
    pub header_count: usize,
}

/// A complete, checked request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The target to forward: the origin form (an absolute form's path and query), or `*`.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The fields as received, except that the one `Host` field, checked `host[:port]`,
    /// holds the host the request is for (`host()`).
    pub headers: Vec<HeaderField>,
    /// The request's body framing (`Empty` when it has none).
    pub framing: BodyFraming,
}

/// Why a request was refused; each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Not HTTP/1.x, or bytes the grammar forbids (bare CR, whitespace before a colon,
    /// obs-fold, control characters, a bad token): 400.
    Malformed,
    /// HTTP/1.1 without exactly one `Host`, several `Host` fields, or one (or an absolute
    /// target's authority) that is not `host[:port]` (RFC 9112 3.2, RFC 9110 7.2): 400.
    BadHost,
    /// A target in none of the forms the proxy forwards (RFC 9112 3.2): 400.
    BadTarget,
    /// Ambiguous or forbidden framing: 400 (or 501 for an unsupported coding).
    Framing(FramingError),
    /// The request line is longer than the limit: 414.
    RequestLineTooLong,
    /// The head is larger, or has more fields, than the limits: 431.
    HeadTooLarge,
}

impl RequestError {
    /// The status the client gets.
    pub fn status(self) -> u16 {
        match self {
            RequestError::Malformed | RequestError::BadHost | RequestError::BadTarget => 400,
            RequestError::Framing(FramingError::UnsupportedCoding) => 501,
            RequestError::Framing(_) => 400,
            RequestError::RequestLineTooLong => 414,
            RequestError::HeadTooLarge => 431,
        }
    }
}

/// Parses the head at the start of `received`: `Ok(None)` while it is incomplete (and within
/// the limits), else the head and its length in bytes. A reader that calls again as more
/// bytes arrive keeps a [`HeadScan`] instead, so as not to scan the same bytes again.
pub fn parse(
    received: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    HeadScan::new().advance(received, limits)
}

/// The search for the end of one request head while its bytes arrive. Each call scans only
/// the bytes that the last one did not see, and the head is parsed once its end (an empty
/// line after the request line) has arrived: parsing the whole buffer again on every read
/// made a head trickled a byte per segment cost time quadratic in its length (a 32 KiB head,
/// about 512 MiB of parsing).
#[derive(Clone, Debug)]
pub struct HeadScan {
    /// How many bytes of the buffer have been scanned.
    scanned: usize,
    /// Where the request line starts (after the empty lines RFC 9112 2.2 lets us ignore).
    line_start: Option<usize>,
    /// Whether the request line has ended (its LF was seen).
    line_ended: bool,
    /// Whether the line being scanned has held nothing but CR so far.
    line_is_empty: bool,
    /// Times the head was handed to the parser.
    parses: u32,
}

impl Default for HeadScan {
    fn default() -> Self {
        Self::new()
    }
}

impl HeadScan {
    pub fn new() -> HeadScan {
        HeadScan {
            scanned: 0,
            line_start: None,
            line_ended: false,
            line_is_empty: true,
            parses: 0,
        }
    }

    /// How many bytes have been scanned for the end of the head.
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// How many times the head was parsed (once, unless an apparent end was not one).
    pub fn parses(&self) -> u32 {
        self.parses
    }

    /// Goes on with `received`, the same buffer as before with more bytes at its end:
    /// `Ok(None)` while the head is incomplete (and within the limits), else the head and its
    /// length in bytes.
    pub fn advance(
        &mut self,
        received: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        // Should `httparse` want more although an empty line came, the scan goes on after
        // that line.
        while self.find_end(received, limits)?.is_some() {
            self.parses += 1;
            if let Some(parsed) = parse_complete(received, limits)? {
                return Ok(Some(parsed));
            }
        }
        if received.len() > limits.header_bytes {
            return Err(RequestError::HeadTooLarge);
        }
        Ok(None)
    }

    /// Scans on to the next empty line after the request line: the end of the head, `None`
    /// when the bytes run out first. A request line over the limit is refused as soon as it
    /// is seen to be (RFC 9112 3: 414), before its end arrives.
    fn find_end(
        &mut self,
        received: &[u8],
        limits: &HeadLimits,
    ) -> Result<Option<usize>, RequestError> {
        while let Some(&byte) = received.get(self.scanned) {
            let position = self.scanned;
            self.scanned += 1;
            match byte {
                b'\n' => {
                    if let Some(start) = self.line_start {
                        if !self.line_ended {
                            self.line_ended = true;
                            if position - start > limits.request_line {
                                return Err(RequestError::RequestLineTooLong);
                            }
                        }
                        if self.line_is_empty {
                            return Ok(Some(self.scanned));
                        }
                    }
                    self.line_is_empty = true;
                }
                // A bare CR is `httparse`'s to refuse; it does not make a line non-empty.
                b'\r' => {}
                _ => {
                    self.line_start.get_or_insert(position);
                    self.line_is_empty = false;
                }
            }
        }
        if let Some(start) = self.line_start
            && !self.line_ended
            && received.len() - start > limits.request_line
        {
            return Err(RequestError::RequestLineTooLong);
        }
        Ok(None)
    }
}

/// Parses a head whose end has arrived (`Ok(None)` if `httparse` still finds it partial).
fn parse_complete(
    received: &[u8],
    limits: &HeadLimits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line.
    let leading = leading_empty_lines(received);
    let received_after = &received[leading..];
    let mut storage = vec![httparse::EMPTY_HEADER; limits.header_count];
    let mut request = httparse::Request::new(&mut storage);
    let status = request.parse(received_after);
    let length = match status {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => {
            if received.len() > limits.header_bytes {
                return Err(RequestError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(_) => return Err(RequestError::Malformed),
    };
    if leading + length > limits.header_bytes {
        return Err(RequestError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(RequestError::Malformed);
    };
    let mut headers = fields::owned(request.headers);
    check_field_values(&headers)?;
    let hosts = headers.iter().filter(|field| field.is("host")).count();
    if hosts > 1 || (minor_version == 1 && hosts == 0) {
        return Err(RequestError::BadHost);
    }
    let host_field = headers.iter_mut().find(|field| field.is("host"));
    if let Some(field) = &host_field
        && !is_valid_authority(field.value.trim_ascii())
    {
        return Err(RequestError::BadHost);
    }
    let forwarded = forwarded_target(method, target).map_err(|error| match error {
        TargetError::Malformed => RequestError::BadTarget,
        TargetError::BadAuthority => RequestError::BadHost,
    })?;
    // A proxy that receives an absolute-form target replaces `Host` with the target's
    // authority (RFC 9112 3.2.2; RFC 7230 5.4 said so of proxies in as many words).
    match (host_field, forwarded.authority) {
        (Some(field), Some(authority)) => field.value = authority.as_bytes().to_vec(),
        (Some(field), None) => field.value = field.value.trim_ascii().to_vec(),
        (None, Some(authority)) => headers.push(HeaderField {
            name: String::from("Host"),
            value: authority.as_bytes().to_vec(),
        }),
        (None, None) => {}
    }
    let target = forwarded.target;
    // A request without framing fields has no body (RFC 9112 6.3 item 7).
    let framing = fields::framing(&headers, minor_version)
        .map_err(RequestError::Framing)?
        .unwrap_or(BodyFraming::Empty);
    let framing = match framing {
        BodyFraming::Length(0) => BodyFraming::Empty,
        other => other,
    };
    Ok(Some((
        RequestHead {
            method: String::from(method),
            target,
            minor_version,
            headers,
            framing,
        },
        leading + length,
    )))
}

/// `httparse` accepts obs-text and a bare LF; it rejects control characters and bare CR. A
/// value must still not hold a CR or LF of its own (it cannot, after the parse) nor start
/// with the remains of an obs-fold, which `httparse` reports as an invalid name already.
fn check_field_values(headers: &[HeaderField]) -> Result<(), RequestError> {
    let forbidden = |byte: &u8| *byte == b'\r' || *byte == b'\n' || *byte == 0;
    if headers
        .iter()
        .any(|field| field.value.iter().any(forbidden))
    {
        return Err(RequestError::Malformed);
    }
    Ok(())
}

fn leading_empty_lines(received: &[u8]) -> usize {
    let mut position = 0;
    loop {
        if received[position..].starts_with(b"\r\n") {
            position += 2;
        } else if received[position..].starts_with(b"\n") {
            position += 1;
        } else {
            return position;
        }
    }
}

impl RequestHead {
    /// The host the request is for (RFC 9110 7.2), `host[:port]`: an absolute-form target's
    /// authority, else the `Host` field's value; `None` only for HTTP/1.0 without `Host`.
    pub fn host(&self) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|field| field.is("host"))
            .map(|field| field.value.as_slice())
    }

    /// Methods that a retry cannot repeat the effect of (RFC 9110 9.2.2).
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
        )
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    pub fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self.headers.iter().any(|field| {
                field.is("expect") && field.value.eq_ignore_ascii_case(b"100-continue")
            })
    }

    /// The protocol an `Upgrade` request asks for (with `Connection: upgrade`), if any.
    pub fn upgrade(&self) -> Option<&[u8]> {
        if self.minor_version == 0 || !fields::has_token(&self.headers, "connection", "upgrade") {
            return None;
        }
        self.headers
            .iter()
            .find(|field| field.is("upgrade"))
            .map(|field| field.value.as_slice())
    }

    pub fn wants_persistence(&self) -> bool {
        fields::wants_persistence(&self.headers, self.minor_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        request_line: 100,
        header_bytes: 300,
        header_count: 8,
    };

    fn parsed(text: &[u8]) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse(text, &LIMITS)
    }

    fn error(text: &[u8]) -> RequestError {
        parsed(text).expect_err(core::str::from_utf8(text).unwrap_or("?"))
    }

    #[test]
    fn a_simple_request_is_parsed() {
        let text = b"GET /a?b HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\nnext";
        let (head, length) = parsed(text).unwrap().unwrap();
        assert_eq!(length, text.len() - 4);
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a?b");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.framing, BodyFraming::Empty);
        assert_eq!(head.headers.len(), 2);
        assert!(head.wants_persistence());
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert_eq!(parsed(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(parsed(b""), Ok(None));
        assert_eq!(parsed(b"\r\n"), Ok(None));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for (text, expected) in [
            (
                &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                RequestError::Framing(FramingError::LengthAndTransferEncoding),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                RequestError::Framing(FramingError::BadContentLength),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                RequestError::Framing(FramingError::ChunkedNotFinal),
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\nHo\x01st: a\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", RequestError::Malformed),
            (b"GET / HTTP/1.1\r\n\r\n", RequestError::BadHost),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", RequestError::BadHost),
        ] {
            assert_eq!(error(text), expected, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn limits_give_their_status() {
        let long_line = [b"GET /".as_slice(), &[b'a'; 120], b" HTTP/1.1\r\n"].concat();
        assert_eq!(error(&long_line).status(), 414);
        let unfinished_line = [b"GET /".as_slice(), &[b'a'; 120]].concat();
        assert_eq!(error(&unfinished_line).status(), 414);
        let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n";
        assert_eq!(error(many).status(), 431);
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for _ in 0..5 {
            big.extend_from_slice(b"X-Filler: ");
            big.extend_from_slice(&[b'x'; 60]);
            big.extend_from_slice(b"\r\n");
        }
        assert_eq!(error(&big).status(), 431, "incomplete and over the limit");
        big.extend_from_slice(b"\r\n");
        assert_eq!(error(&big).status(), 431, "complete and over the limit");
    }

    /// One byte at a time, every byte is scanned once and the head parsed once; the limits
    /// still refuse a head that grows too long before its end.
    #[test]
    fn a_trickled_head_is_scanned_once_and_parsed_once() {
        let text = b"\r\nGET /a HTTP/1.1\r\nHost: example\r\nX: \r\n\r\nnext";
        let head_length = text.len() - 4;
        let mut scan = HeadScan::new();
        let mut scanned = 0;
        for end in 1..=text.len() {
            let result = scan.advance(&text[..end], &LIMITS);
            assert!(scan.scanned() <= end);
            scanned = scan.scanned();
            match result {
                Ok(None) => assert!(end < head_length, "the head was complete at {end}"),
                Ok(Some((head, length))) => {
                    assert_eq!((end, length), (head_length, head_length));
                    assert_eq!(head.target, "/a");
                    break;
                }
                Err(error) => panic!("{error:?} at {end}"),
            }
        }
        assert_eq!(scanned, head_length);
        assert_eq!(scan.parses(), 1);

        let mut scan = HeadScan::new();
        let long_line = [b"GET /".as_slice(), &[b'a'; 120]].concat();
        let mut refused_at = None;
        for end in 1..=long_line.len() {
            if let Err(error) = scan.advance(&long_line[..end], &LIMITS) {
                refused_at = Some((end, error));
                break;
            }
        }
        assert_eq!(refused_at, Some((101, RequestError::RequestLineTooLong)));
        assert_eq!(scan.parses(), 0);
    }

    #[test]
    fn bodies_are_framed() {
        let (head, _) = parsed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, BodyFraming::Length(10));
        let (head, _) = parsed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, BodyFraming::Chunked);
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
                .status(),
            501
        );
    }

    #[test]
    fn the_host_follows_an_absolute_target() {
        let (head, _) = parsed(b"GET http://b.example:81/x?y HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.target, "/x?y");
        assert_eq!(head.host(), Some(&b"b.example:81"[..]));
        assert_eq!(head.headers.len(), 1);
        let (head, _) = parsed(b"GET http://b HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.target.as_str(), head.host()), ("/", Some(&b"b"[..])));
        let (head, _) = parsed(b"GET / HTTP/1.0\r\nHost: a:80 \r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.host(), Some(&b"a:80"[..]));
        let (head, _) = parsed(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.host(), None);
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            RequestError::BadHost
        );
        assert_eq!(
            error(b"GET http://u@b/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadHost
        );
        assert_eq!(
            error(b"GET b HTTP/1.1\r\nHost: a\r\n\r\n"),
            RequestError::BadTarget
        );
    }

    #[test]
    fn http_1_0_needs_no_host_and_closes() {
        let (head, _) = parsed(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.minor_version, 0);
        assert!(!head.wants_persistence());
    }

    #[test]
    fn upgrade_and_expect_are_recognised() {
        let (head, _) = parsed(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(head.upgrade(), Some(&b"websocket"[..]));
        assert!(head.expects_continue());
    }
}
