//! A request's target and the host it names: the four forms of request-target (RFC 9112 3.2), the absolute form turned into the origin form with its authority for `Host` (RFC 9112 3.2.2), and the syntax of an authority (`host[:port]`, RFC 3986 3.2) that a `Host` value must have (RFC 9110 7.2).

use alloc::string::String;
use core::net::Ipv6Addr;

/// Why a target cannot be forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// None of the forms a request to a reverse proxy may take: 400.
    Malformed,
    /// An absolute-form target whose authority is not `host[:port]` (empty, with userinfo,
    /// a bad character or port): 400, as for a bad `Host`.
    BadAuthority,
}

/// A target as it goes to the backend, and the authority it named (absolute form only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardedTarget<'a> {
    /// The origin form (`/path?query`), `*`, or a CONNECT's authority form, unchanged.
    pub target: String,
    /// The absolute form's authority, which replaces the `Host` field (RFC 9112 3.2.2).
    pub authority: Option<&'a str>,
}

/// The target to forward for a request of `method` with `target`.
///
/// - origin form (`/a?b`): as it is;
/// - absolute form (`http://host:port/a?b`, scheme `http` or `https`, any case): the origin
///   form (`/` when the path is empty, RFC 9112 3.2.1) and the authority;
/// - asterisk form (`*`): only for `OPTIONS` (RFC 9112 3.2.4);
/// - authority form: only for `CONNECT` (RFC 9112 3.2.3), which the proxy refuses later.
pub fn forwarded_target<'a>(
    method: &str,
    target: &'a str,
) -> Result<ForwardedTarget<'a>, TargetError> {
    let unchanged = || ForwardedTarget {
        target: String::from(target),
        authority: None,
    };
    if target.starts_with('/') || (target == "*" && method == "OPTIONS") || method == "CONNECT" {
        return Ok(unchanged());
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(TargetError::Malformed);
    };
    // nginx takes any scheme; a reverse proxy for HTTP has no business with `ftp://`.
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(TargetError::Malformed);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(authority_end);
    if !is_valid_authority(authority.as_bytes()) {
        return Err(TargetError::BadAuthority);
    }
    let mut origin = String::with_capacity(path_and_query.len() + 1);
    if !path_and_query.starts_with('/') {
        origin.push('/');
    }
    origin.push_str(path_and_query);
    Ok(ForwardedTarget {
        target: origin,
        authority: Some(authority),
    })
}

/// Whether `value` is `host [ ":" port ]` (RFC 3986 3.2.2-3.2.3; RFC 9110 7.2 for `Host`):
/// the host an IP literal in brackets, or a name of unreserved, percent-encoded and sub-delim
/// characters (an IPv4 address is one of those), never empty (RFC 9110 4.2.1: an `http` URI
/// with an empty host is invalid; nginx refuses an empty `Host` too); the port decimal, at
/// most 65535. Userinfo (`user@host`) is refused (RFC 9110 4.2.4 says to treat it as an
/// error), and so is anything that could end the authority early (`/`, `\`, `?`, `#`).
pub fn is_valid_authority(value: &[u8]) -> bool {
    let (host_is_valid, port) = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(close) = literal.iter().position(|&byte| byte == b']') else {
            return false;
        };
        (is_ip_literal(&literal[..close]), &literal[close + 1..])
    } else {
        let end = value
            .iter()
            .position(|&byte| byte == b':')
            .unwrap_or(value.len());
        (is_registered_name(&value[..end]), &value[end..])
    };
    host_is_valid && is_valid_port(port)
}

/// `[ ":" *DIGIT ]`, the port at most 65535 (RFC 3986 allows it empty).
fn is_valid_port(port: &[u8]) -> bool {
    let Some(digits) = port.strip_prefix(b":") else {
        return port.is_empty();
    };
    digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit)
        && digits
            .iter()
            .fold(0u32, |total, digit| total * 10 + u32::from(digit - b'0'))
            <= 65535
}

/// An IPv6 address, or an `IPvFuture` (`v` hex `.` ...), between the brackets.
fn is_ip_literal(literal: &[u8]) -> bool {
    if let Some(future) = literal
        .strip_prefix(b"v")
        .or_else(|| literal.strip_prefix(b"V"))
    {
        let Some(dot) = future.iter().position(|&byte| byte == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest
                .iter()
                .all(|&byte| is_unreserved(byte) || is_sub_delimiter(byte) || byte == b':');
    }
    core::str::from_utf8(literal).is_ok_and(|text| text.parse::<Ipv6Addr>().is_ok())
}

/// `reg-name`, not empty: unreserved, percent-encoded, sub-delims.
fn is_registered_name(name: &[u8]) -> bool {
    if name.is_empty() {
        return false;
    }
    let mut index = 0;
    while let Some(&byte) = name.get(index) {
        if byte == b'%' {
            let encoded = name.get(index + 1..index + 3);
            if !encoded.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            index += 3;
        } else if is_unreserved(byte) || is_sub_delimiter(byte) {
            index += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_follow_rfc_3986() {
        for good in [
            "example",
            "Example.COM.",
            "a_b-c~d.example:8080",
            "10.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "[v1.fe80::a+en1]",
            "%65xample",
            "example:",
            "example:65535",
        ] {
            assert!(is_valid_authority(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            "a/b",
            "a\\b",
            "a?b",
            "a#b",
            "user@example",
            "example:65536",
            "example:123456",
            "example:8o",
            "example:80:80",
            "[::1",
            "[::g]",
            "[]",
            "[::1]x",
            "%6",
            "%zz",
            "caf\u{e9}",
        ] {
            assert!(!is_valid_authority(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn absolute_targets_become_origin_form_with_their_authority() {
        let forwarded = |method, target| forwarded_target(method, target);
        assert_eq!(
            forwarded("GET", "HTTP://Other.example:8080/p/q?x=1"),
            Ok(ForwardedTarget {
                target: String::from("/p/q?x=1"),
                authority: Some("Other.example:8080"),
            })
        );
        assert_eq!(
            forwarded("GET", "http://a.example?x"),
            Ok(ForwardedTarget {
                target: String::from("/?x"),
                authority: Some("a.example"),
            })
        );
        assert_eq!(forwarded("GET", "https://a").unwrap().target, "/");
        assert_eq!(forwarded("GET", "/a").unwrap().authority, None);
        assert_eq!(forwarded("OPTIONS", "*").unwrap().target, "*");
        assert_eq!(forwarded("GET", "*"), Err(TargetError::Malformed));
        assert_eq!(forwarded("GET", "a/b"), Err(TargetError::Malformed));
        assert_eq!(forwarded("GET", "ftp://a/"), Err(TargetError::Malformed));
        assert_eq!(
            forwarded("GET", "http://user@a/"),
            Err(TargetError::BadAuthority)
        );
        assert_eq!(
            forwarded("GET", "http:///a"),
            Err(TargetError::BadAuthority)
        );
    }
}
