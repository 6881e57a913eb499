//! Header fields and what they say about a message: its body framing (`Content-Length`, `Transfer-Encoding`; RFC 9112 section 6), its connection options (RFC 9110 7.6.1) and which fields are hop-by-hop.

use alloc::string::String;
use alloc::vec::Vec;

/// One header field as received (the name keeps its case; compare with `eq_ignore_ascii_case`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    pub value: Vec<u8>,
}

impl HeaderField {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Owned copies of the fields `httparse` found (the parse borrows the receive buffer, which
/// the body's bytes then move through).
pub fn owned(headers: &[httparse::Header<'_>]) -> Vec<HeaderField> {
    headers
        .iter()
        .map(|header| HeaderField {
            name: String::from(header.name),
            value: header.value.to_vec(),
        })
        .collect()
}

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the sender closes (responses only).
    UntilClose,
}

/// Why a message's framing fields are unacceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// Both `Content-Length` and `Transfer-Encoding`: the classic smuggling vector. We refuse
    /// it rather than drop the length (RFC 9112 6.3 allows either; refusing leaves no room for
    /// a disagreement with the next hop).
    LengthAndTransferEncoding,
    /// `Content-Length` values that disagree, or one that is not a decimal number.
    BadContentLength,
    /// `Transfer-Encoding` whose final coding is not `chunked` (RFC 9112 6.3 item 4).
    ChunkedNotFinal,
    /// A coding other than `chunked` (we do not decode gzip & co.): 501.
    UnsupportedCoding,
    /// `Transfer-Encoding` in an HTTP/1.0 message (RFC 9112 6.1: such a message is faulty).
    TransferEncodingInHttp10,
}

/// Comma-separated list elements of every field named `name`, trimmed, empty ones skipped
/// (RFC 9110 5.6.1).
pub fn list_elements<'a>(
    headers: &'a [HeaderField],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |field| field.is(name))
        .flat_map(|field| field.value.split(|&byte| byte == b','))
        .map(|element| element.trim_ascii())
        .filter(|element| !element.is_empty())
}

/// Whether a list field named `name` holds `token` (case-insensitive).
pub fn has_token(headers: &[HeaderField], name: &str, token: &str) -> bool {
    list_elements(headers, name).any(|element| element.eq_ignore_ascii_case(token.as_bytes()))
}

/// The `Content-Length` of a message: `None` when absent. Several values (in one field or in
/// several) must all be the same number (RFC 9112 6.3 item 5).
pub fn content_length(headers: &[HeaderField]) -> Result<Option<u64>, FramingError> {
    let mut length = None;
    for element in list_elements(headers, "content-length") {
        if element.is_empty() || element.len() > 19 || !element.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::BadContentLength);
        }
        let value = element
            .iter()
            .fold(0u64, |total, digit| total * 10 + u64::from(digit - b'0'));
        match length {
            Some(previous) if previous != value => return Err(FramingError::BadContentLength),
            _ => length = Some(value),
        }
    }
    // A field that is present but holds no element (`Content-Length: `) is no number.
    if length.is_none() && headers.iter().any(|field| field.is("content-length")) {
        return Err(FramingError::BadContentLength);
    }
    Ok(length)
}

/// The framing a message's fields give when it has a body: `Transfer-Encoding` first, then
/// `Content-Length`; `None` when it has neither (the caller decides: no body for a request,
/// until-close for a response).
pub fn framing(
    headers: &[HeaderField],
    minor_version: u8,
) -> Result<Option<BodyFraming>, FramingError> {
    let has_transfer_encoding = headers.iter().any(|field| field.is("transfer-encoding"));
    let length = content_length(headers)?;
    if has_transfer_encoding {
        if length.is_some() {
            return Err(FramingError::LengthAndTransferEncoding);
        }
        if minor_version == 0 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        let codings: Vec<&[u8]> = list_elements(headers, "transfer-encoding").collect();
        let Some((last, others)) = codings.split_last() else {
            return Err(FramingError::ChunkedNotFinal);
        };
        if !last.eq_ignore_ascii_case(b"chunked") {
            return Err(FramingError::ChunkedNotFinal);
        }
        if !others.is_empty() {
            return Err(FramingError::UnsupportedCoding);
        }
        return Ok(Some(BodyFraming::Chunked));
    }
    Ok(length.map(BodyFraming::Length))
}

/// Fields that describe one hop's connection and are never forwarded (RFC 9110 7.6.1; RFC 9112
/// 7 for `TE`, `Transfer-Encoding` and `Trailer`; `Keep-Alive` and `Proxy-Connection` are
/// their pre-standard forms). Framing fields are re-made by the proxy for the next hop.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The fields to forward: all but the hop-by-hop ones and every field the `Connection` field
/// names (RFC 9110 7.6.1: a proxy MUST remove those too).
pub fn end_to_end(headers: &[HeaderField]) -> impl Iterator<Item = &HeaderField> {
    let named: Vec<&[u8]> = list_elements(headers, "connection").collect();
    headers.iter().filter(move |field| {
        !HOP_BY_HOP.iter().any(|name| field.is(name))
            && !named
                .iter()
                .any(|token| token.eq_ignore_ascii_case(field.name.as_bytes()))
    })
}

/// Whether the sender wants its connection kept open after this message: HTTP/1.1 unless
/// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive` (RFC 9112 9.3).
pub fn wants_persistence(headers: &[HeaderField], minor_version: u8) -> bool {
    if has_token(headers, "connection", "close") {
        return false;
    }
    minor_version >= 1 || has_token(headers, "connection", "keep-alive")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn fields(pairs: &[(&str, &str)]) -> Vec<HeaderField> {
        pairs
            .iter()
            .map(|(name, value)| HeaderField {
                name: name.to_string(),
                value: value.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn content_lengths_must_agree() {
        assert_eq!(
            content_length(&fields(&[("Content-Length", "5")])),
            Ok(Some(5))
        );
        assert_eq!(
            content_length(&fields(&[
                ("Content-Length", "5, 5"),
                ("content-length", "5")
            ])),
            Ok(Some(5))
        );
        for bad in [
            "5, 6",
            "-1",
            "+5",
            "0x10",
            "5 5",
            "",
            "99999999999999999999",
        ] {
            assert_eq!(
                content_length(&fields(&[("Content-Length", bad)])),
                Err(FramingError::BadContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            content_length(&fields(&[("Content-Length", "5"), ("Content-Length", "6")])),
            Err(FramingError::BadContentLength)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let chunked = fields(&[("Transfer-Encoding", "chunked")]);
        assert_eq!(framing(&chunked, 1), Ok(Some(BodyFraming::Chunked)));
        assert_eq!(
            framing(&chunked, 0),
            Err(FramingError::TransferEncodingInHttp10)
        );
        assert_eq!(
            framing(
                &fields(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]),
                1
            ),
            Err(FramingError::LengthAndTransferEncoding)
        );
        assert_eq!(
            framing(&fields(&[("Transfer-Encoding", "chunked, gzip")]), 1),
            Err(FramingError::ChunkedNotFinal)
        );
        assert_eq!(
            framing(
                &fields(&[
                    ("Transfer-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked")
                ]),
                1
            ),
            Err(FramingError::UnsupportedCoding)
        );
        assert_eq!(
            framing(&fields(&[("Transfer-Encoding", "")]), 1),
            Err(FramingError::ChunkedNotFinal)
        );
        assert_eq!(
            framing(&fields(&[("Content-Length", "7")]), 0),
            Ok(Some(BodyFraming::Length(7)))
        );
        assert_eq!(framing(&[], 1), Ok(None));
    }

    #[test]
    fn fields_named_by_connection_are_not_forwarded() {
        let headers = fields(&[
            ("Host", "a"),
            ("Connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("Accept", "*/*"),
            ("Proxy-Connection", "close"),
        ]);
        let kept: Vec<&str> = end_to_end(&headers)
            .map(|field| field.name.as_str())
            .collect();
        assert_eq!(kept, vec!["Host", "Accept"]);
    }

    #[test]
    fn persistence_follows_the_version_and_connection() {
        assert!(wants_persistence(&[], 1));
        assert!(!wants_persistence(&[], 0));
        assert!(wants_persistence(
            &fields(&[("Connection", "Keep-Alive")]),
            0
        ));
        assert!(!wants_persistence(
            &fields(&[("Connection", "foo, close")]),
            1
        ));
    }
}
