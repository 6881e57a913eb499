//! The access log's syslog form: RFC 5424 messages (facility, the appliance's hostname) sent one per UDP datagram (RFC 5426) to the configured collector from the core that served the request, without ever waiting.

use alloc::string::String;
use core::fmt::{self, Write};
use core::net::SocketAddrV4;

use unisock_kernel::socket::{SharedUdpLayer, UdpError, UdpSocket};

/// The most bytes of one syslog datagram (header and message). RFC 5426 section 3.2: every
/// IPv4 receiver takes 480 octets and should take 2048, and a sender should stay under the
/// path MTU so that the datagram is never fragmented; 1 KiB fits a 1460-byte cloud MTU with
/// room to spare. A longer line is truncated (RFC 5424 section 6.1 allows truncation), never
/// split over datagrams and never fragmented.
pub const MAX_DATAGRAM: usize = 1024;
/// APP-NAME (RFC 5424 section 6.2.5).
pub const APP_NAME: &str = "unisock";
/// MSGID (RFC 5424 section 6.2.7): what kind of message this is.
pub const MESSAGE_ID: &str = "access";
/// Severity 6, informational (RFC 5424 table 2): an access-log line reports normal traffic.
pub const SEVERITY_INFORMATIONAL: u8 = 6;
/// The most bytes of a hostname (RFC 1123 section 2.1 names, 253 written; RFC 5424 section
/// 6.2.4 allows 255).
pub const MAX_HOSTNAME: usize = 253;
/// The hostname when the configuration names none.
pub const DEFAULT_HOSTNAME: &str = "unisock";

/// The facility names accepted, by code (RFC 5424 table 1; the keywords of rsyslog and
/// `logger(1)`: 13 is "log audit", 14 "log alert", 15 "clock daemon").
const FACILITY_NAMES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// A syslog facility (RFC 5424 section 6.2.1, table 1): its code, 0 to 23.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    /// `local0` (16): the facility left to the site's own use, what nginx's `syslog:` and
    /// HAProxy's `log` lines are usually given for access logs.
    pub const LOCAL0: Facility = Facility(16);

    /// The facility named `name` (one of the keywords of RFC 5424 table 1 as rsyslog spells
    /// them: `kern` ... `clock`, `local0` ... `local7`).
    pub fn from_name(name: &str) -> Option<Facility> {
        FACILITY_NAMES
            .iter()
            .position(|known| *known == name)
            .map(|code| Facility(code as u8))
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        FACILITY_NAMES
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("local0")
    }

    /// The PRI value of an informational message of this facility: facility * 8 + severity.
    pub fn priority(self) -> u8 {
        self.0 * 8 + SEVERITY_INFORMATIONAL
    }
}

impl Default for Facility {
    fn default() -> Self {
        Facility::LOCAL0
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Whether `name` is a host name RFC 1123 section 2.1 allows: dot-separated labels of 1 to 63
/// letters, digits and `-`, neither starting nor ending with `-`, 253 bytes at most. (It then
/// is a valid RFC 5424 HOSTNAME: printable ASCII, no space.)
pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOSTNAME
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The start of every message of one configuration, up to the MSG:
/// `<PRI>1 - HOSTNAME unisock - access - ` (RFC 5424 section 6). TIMESTAMP is the NILVALUE
/// `-` (section 6.2.3): the appliance has no wall clock (only a monotonic one since boot);
/// the collector stamps the time it receives the message, as rsyslog and syslog-ng do for a
/// message without one. PROCID and STRUCTURED-DATA are NILVALUE too.
pub fn message_header(facility: Facility, hostname: &str) -> String {
    let mut header = String::with_capacity(32 + hostname.len());
    let _ = write!(
        header,
        "<{}>1 - {hostname} {APP_NAME} - {MESSAGE_ID} - ",
        facility.priority()
    );
    header
}

/// `header` then `message`, cut to [`MAX_DATAGRAM`] bytes (on a character boundary).
pub fn datagram(header: &str, message: &str, out: &mut String) {
    out.clear();
    out.push_str(header);
    let room = MAX_DATAGRAM.saturating_sub(header.len());
    let mut end = message.len().min(room);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&message[..end]);
}

/// Why a message was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogDrop {
    /// The core's UDP output queue is full (the interface is behind): never waited for.
    QueueFull,
    /// Anything else: no socket could be opened, or the stack refused the datagram (an ICMP
    /// error from the collector reported on the socket, say).
    Unsent,
}

/// One core's sender of syslog messages to the collector: a connected UDP socket on the
/// core's own UDP layer (so the datagram leaves from the core that served the request and
/// no other core is involved), opened again if opening it failed.
pub struct SyslogSender {
    udp: SharedUdpLayer,
    collector: SocketAddrV4,
    socket: Option<UdpSocket>,
    header: String,
    /// The datagram being built, kept to reuse its allocation.
    buffer: String,
}

impl SyslogSender {
    pub fn new(
        udp: SharedUdpLayer,
        collector: SocketAddrV4,
        facility: Facility,
        hostname: &str,
    ) -> SyslogSender {
        let socket = UdpSocket::connect(&udp, collector).ok();
        SyslogSender {
            udp,
            collector,
            socket,
            header: message_header(facility, hostname),
            buffer: String::with_capacity(MAX_DATAGRAM),
        }
    }

    /// Sends `message` as one datagram now, or not at all.
    pub fn send(&mut self, message: &str) -> Result<(), SyslogDrop> {
        if self.socket.is_none() {
            self.socket = UdpSocket::connect(&self.udp, self.collector).ok();
        }
        let Some(socket) = &self.socket else {
            return Err(SyslogDrop::Unsent);
        };
        datagram(&self.header, message, &mut self.buffer);
        match socket.try_send(self.buffer.as_bytes()) {
            Ok(_) => Ok(()),
            Err(UdpError::WouldBlock) => Err(SyslogDrop::QueueFull),
            Err(_) => Err(SyslogDrop::Unsent),
        }
    }

    /// The local address of the socket (none while it could not be opened).
    pub fn local_address(&self) -> Option<SocketAddrV4> {
        self.socket.as_ref()?.local_address().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_are_named_as_in_rfc_5424_table_1() {
        assert_eq!(Facility::from_name("kern"), Some(Facility(0)));
        assert_eq!(Facility::from_name("local0"), Some(Facility::LOCAL0));
        assert_eq!(Facility::from_name("local7").map(Facility::code), Some(23));
        assert_eq!(
            Facility::from_name("authpriv").map(Facility::code),
            Some(10)
        );
        assert_eq!(Facility::from_name("local8"), None);
        assert_eq!(Facility::from_name("LOCAL0"), None);
        assert_eq!(Facility::default().priority(), 134);
        assert_eq!(Facility(0).priority(), 6);
        assert_eq!(Facility(23).priority(), 190);
        for code in 0..24u8 {
            assert_eq!(
                Facility::from_name(Facility(code).name()),
                Some(Facility(code))
            );
        }
    }

    #[test]
    fn hostnames_follow_rfc_1123() {
        for good in [
            "unisock",
            "edge-1",
            "a",
            "proxy.example.com",
            "1host",
            "x9.y-z",
        ] {
            assert!(is_hostname(good), "{good}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["abcdefghi"; 26].join(".");
        for bad in [
            "",
            "-edge",
            "edge-",
            "edge_1",
            "edge 1",
            "a..b",
            ".a",
            "a.",
            "é",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }

    #[test]
    fn a_long_message_is_truncated_to_one_datagram() {
        let header = message_header(Facility::LOCAL0, "edge-1");
        assert_eq!(header, "<134>1 - edge-1 unisock - access - ");
        let mut out = String::new();
        datagram(&header, "short", &mut out);
        assert_eq!(out, "<134>1 - edge-1 unisock - access - short");
        let long = "x".repeat(3000);
        datagram(&header, &long, &mut out);
        assert_eq!(out.len(), MAX_DATAGRAM);
        assert!(out.starts_with(&header));
        // A multi-byte character at the cut is left out whole.
        let mut message = "y".repeat(MAX_DATAGRAM - header.len() - 1);
        message.push('é');
        datagram(&header, &message, &mut out);
        assert_eq!(out.len(), MAX_DATAGRAM - 1);
    }
}
