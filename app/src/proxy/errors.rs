//! The responses the proxy makes itself when it cannot relay one: each a short text body with `Connection: close`.

use alloc::format;
use alloc::vec::Vec;

/// Everything the proxy answers on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    BadRequest,
    RequestTimeout,
    MethodNotAllowed,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    NotImplemented,
    /// The backend refused, reset, or sent something that is not a valid response.
    BadGateway,
    /// No backend is available.
    ServiceUnavailable,
    /// The backend did not connect or answer in time.
    GatewayTimeout,
}

impl ProxyError {
    pub fn from_status(status: u16) -> ProxyError {
        match status {
            405 => ProxyError::MethodNotAllowed,
            408 => ProxyError::RequestTimeout,
            413 => ProxyError::PayloadTooLarge,
            414 => ProxyError::UriTooLong,
            431 => ProxyError::HeadersTooLarge,
            501 => ProxyError::NotImplemented,
            502 => ProxyError::BadGateway,
            503 => ProxyError::ServiceUnavailable,
            504 => ProxyError::GatewayTimeout,
            _ => ProxyError::BadRequest,
        }
    }

    pub fn status(self) -> u16 {
        match self {
            ProxyError::BadRequest => 400,
            ProxyError::RequestTimeout => 408,
            ProxyError::MethodNotAllowed => 405,
            ProxyError::PayloadTooLarge => 413,
            ProxyError::UriTooLong => 414,
            ProxyError::HeadersTooLarge => 431,
            ProxyError::NotImplemented => 501,
            ProxyError::BadGateway => 502,
            ProxyError::ServiceUnavailable => 503,
            ProxyError::GatewayTimeout => 504,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            ProxyError::BadRequest => "Bad Request",
            ProxyError::RequestTimeout => "Request Timeout",
            ProxyError::MethodNotAllowed => "Method Not Allowed",
            ProxyError::PayloadTooLarge => "Content Too Large",
            ProxyError::UriTooLong => "URI Too Long",
            ProxyError::HeadersTooLarge => "Request Header Fields Too Large",
            ProxyError::NotImplemented => "Not Implemented",
            ProxyError::BadGateway => "Bad Gateway",
            ProxyError::ServiceUnavailable => "Service Unavailable",
            ProxyError::GatewayTimeout => "Gateway Timeout",
        }
    }

    /// The whole response, with a body of one line.
    pub fn response(self) -> Vec<u8> {
        let body = format!("{} {}\n", self.status(), self.reason());
        let allow = if self == ProxyError::MethodNotAllowed {
            "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n"
        } else {
            ""
        };
        format!(
            "HTTP/1.1 {} {}\r\nServer: unisock\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
            self.status(),
            self.reason(),
            body.len()
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_complete_closing_response() {
        for status in [400, 405, 408, 413, 414, 431, 501, 502, 503, 504] {
            let error = ProxyError::from_status(status);
            assert_eq!(error.status(), status);
            let bytes = error.response();
            let mut headers = [httparse::EMPTY_HEADER; 8];
            let mut response = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(length) = response.parse(&bytes).unwrap() else {
                panic!("incomplete head for {status}");
            };
            assert_eq!(response.code, Some(status));
            assert!(
                response
                    .headers
                    .iter()
                    .any(|h| h.name == "Connection" && h.value == b"close")
            );
            let declared: usize = response
                .headers
                .iter()
                .find(|h| h.name == "Content-Length")
                .map(|h| core::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            assert_eq!(bytes.len() - length, declared);
        }
    }
}
