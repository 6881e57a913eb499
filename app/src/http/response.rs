//! A backend's response head, parsed with `httparse` under the proxy's limit, and its body framing, which depends on the request it answers (RFC 9112 6.3).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::fields::{self, BodyFraming, HeaderField};

/// Most header fields accepted in a response.
const MAX_RESPONSE_FIELDS: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub minor_version: u8,
    pub headers: Vec<HeaderField>,
    pub framing: BodyFraming,
}

/// Why a backend's response cannot be relayed (the client gets 502).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    Malformed,
    /// Framing fields that disagree.
    BadFraming,
    /// The head is larger than the limit.
    HeadTooLarge,
}

/// Parses the response head at the start of `received`, for a request that was `HEAD` or
/// not: `Ok(None)` while incomplete.
pub fn parse(
    received: &[u8],
    limit: usize,
    request_was_head: bool,
) -> Result<Option<(ResponseHead, usize)>, ResponseError> {
    let mut storage = vec![httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut response = httparse::Response::new(&mut storage);
    let length = match response.parse(received) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => {
            if received.len() > limit {
                return Err(ResponseError::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::HeadTooLarge),
        Err(_) => return Err(ResponseError::Malformed),
    };
    if length > limit {
        return Err(ResponseError::HeadTooLarge);
    }
    let (Some(status), Some(minor_version)) = (response.code, response.version) else {
        return Err(ResponseError::Malformed);
    };
    if !(100..=599).contains(&status) {
        return Err(ResponseError::Malformed);
    }
    let headers = fields::owned(response.headers);
    let bodiless =
        request_was_head || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if bodiless {
        BodyFraming::Empty
    } else {
        match fields::framing(&headers, minor_version) {
            Ok(Some(framing)) => framing,
            Ok(None) => BodyFraming::UntilClose,
            // Codings before a final chunked (`gzip, chunked`): the body is chunked, the
            // other codings are the client's to decode (`transfer_codings`).
            Err(fields::FramingError::UnsupportedCoding) => BodyFraming::Chunked,
            // Chunked not final: read until close (RFC 9112 6.3 item 4 for responses);
            // disagreeing lengths are an error.
            Err(fields::FramingError::ChunkedNotFinal) => BodyFraming::UntilClose,
            Err(fields::FramingError::TransferEncodingInHttp10) => BodyFraming::UntilClose,
            Err(_) => return Err(ResponseError::BadFraming),
        }
    };
    Ok(Some((
        ResponseHead {
            status,
            reason: String::from(response.reason.unwrap_or("")),
            minor_version,
            headers,
            framing,
        },
        length,
    )))
}

impl ResponseHead {
    /// The transfer codings applied to the body besides the chunked framing that the proxy
    /// decodes (`gzip` of `gzip, chunked`; all of them when chunked is not final): they stay
    /// on the body, so the client must be told of them.
    /// A bodiless response (HEAD, 204, 304) has none.
    pub fn transfer_codings(&self) -> Vec<&[u8]> {
        let mut codings: Vec<&[u8]> = match self.framing {
            BodyFraming::Empty | BodyFraming::Length(_) => return Vec::new(),
            BodyFraming::Chunked | BodyFraming::UntilClose => {
                fields::list_elements(&self.headers, "transfer-encoding").collect()
            }
        };
        if self.framing == BodyFraming::Chunked {
            codings.pop();
        }
        codings
    }

    /// The backend may keep the connection for another request after this response.
    pub fn allows_reuse(&self) -> bool {
        self.framing != BodyFraming::UntilClose
            && fields::wants_persistence(&self.headers, self.minor_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_depends_on_status_and_request() {
        let parse_framing =
            |text: &[u8], head: bool| parse(text, 1000, head).unwrap().unwrap().0.framing;
        assert_eq!(
            parse_framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false),
            BodyFraming::Length(5)
        );
        assert_eq!(
            parse_framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
            BodyFraming::Empty
        );
        assert_eq!(
            parse_framing(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            BodyFraming::Empty
        );
        assert_eq!(
            parse_framing(
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            ),
            BodyFraming::Empty
        );
        assert_eq!(
            parse_framing(b"HTTP/1.1 100 Continue\r\n\r\n", false),
            BodyFraming::Empty
        );
        assert_eq!(
            parse_framing(b"HTTP/1.0 200 OK\r\n\r\n", false),
            BodyFraming::UntilClose
        );
        assert_eq!(
            parse_framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            BodyFraming::Chunked
        );
        let coded = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            1000,
            false,
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(coded.framing, BodyFraming::Chunked);
        assert_eq!(coded.transfer_codings(), [b"gzip"]);
        let not_final = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            1000,
            false,
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(not_final.framing, BodyFraming::UntilClose);
        assert_eq!(not_final.transfer_codings(), [&b"chunked"[..], b"gzip"]);
        let head_response = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            1000,
            true,
        )
        .unwrap()
        .unwrap()
        .0;
        assert!(head_response.transfer_codings().is_empty());
    }

    #[test]
    fn bad_responses_are_errors() {
        assert_eq!(
            parse(b"HTTP/1.1 2000 OK\r\n\r\n", 1000, false),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse(b"SSH-2.0-OpenSSH\r\n\r\n", 1000, false),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                1000,
                false
            ),
            Err(ResponseError::BadFraming)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nX-Long: aaaaaaaaaa", 20, false),
            Err(ResponseError::HeadTooLarge)
        );
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n", 1000, false), Ok(None));
    }

    #[test]
    fn reuse_needs_framing_and_persistence() {
        let head = |text: &[u8]| parse(text, 1000, false).unwrap().unwrap().0;
        assert!(head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").allows_reuse());
        assert!(
            !head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .allows_reuse()
        );
        assert!(!head(b"HTTP/1.1 200 OK\r\n\r\n").allows_reuse());
        assert!(!head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").allows_reuse());
    }
}
