//! HTTP/1.x messages: the proxy's request and response heads (parsed with `httparse`), body
//! framing and chunked coding; and the little the responder needs (where a request head ends,
//! its method and path; RFC 9112, section 3).

pub mod chunked;
pub mod fields;
pub mod request;
pub mod response;
pub mod target;

/// The length of the request head (through the blank line) if `received` holds all of it.
pub fn head_length(received: &[u8]) -> Option<usize> {
    received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|position| position + 4)
}

/// A request line: `METHOD SP TARGET SP VERSION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
}

/// Parses the first line of a request head; `None` if it is not a request line.
pub fn request_line(head: &[u8]) -> Option<RequestLine<'_>> {
    let end = head.iter().position(|&byte| byte == b'\r')?;
    let line = core::str::from_utf8(&head[..end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return None;
    }
    Some(RequestLine {
        method,
        target,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_length(b"GET / HTTP/1.0\r\n\r\nbody"), Some(18));
        assert_eq!(head_length(b"GET / HTTP/1.0\r\nHost: x\r\n"), None);
        assert_eq!(head_length(b""), None);
    }

    #[test]
    fn request_lines_are_split_and_checked() {
        assert_eq!(
            request_line(b"GET /stats HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(RequestLine {
                method: "GET",
                target: "/stats",
                version: "HTTP/1.1"
            })
        );
        assert_eq!(request_line(b"GET /stats\r\n\r\n"), None);
        assert_eq!(request_line(b"GET stats HTTP/1.1\r\n\r\n"), None);
        assert_eq!(request_line(b"GET / HTTP/2 x\r\n\r\n"), None);
        assert_eq!(
            request_line(b"\xff / HTTP/1.1\r\n\r\n").map(|l| l.method),
            None
        );
    }
}
