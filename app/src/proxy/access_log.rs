//! The access log: one line per request (client, method, target, status, bytes, backend, core, latency), sampled and rate-limited per core so that logging never slows the traffic.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use core::cell::Cell;
use core::fmt::Write;
use core::net::SocketAddrV4;

use unisock_kernel::time::Instant;

use crate::config::{AccessLogSettings, AccessLogTarget};
use crate::http::request::RequestHead;

use super::statistics::{ACCESS_LOG_DROPPED_RATE, ACCESS_LOG_DROPPED_RING_FULL, CoreStates};

/// Where access-log lines go (the core's console ring, in the image): true if the line was
/// queued, false if it did not fit (the line is dropped and counted, never waited for).
pub type AccessLogSink = Rc<dyn Fn(&str) -> bool>;

/// The longest target written; longer ones are cut (and end in `...`).
const TARGET_LIMIT: usize = 256;

/// What one request came to, filled in as it goes.
pub struct RequestRecord {
    pub started: Instant,
    pub status: Cell<u16>,
    /// Response body bytes sent to the client.
    pub bytes: Cell<u64>,
    pub backend: Cell<Option<SocketAddrV4>>,
}

impl RequestRecord {
    pub fn new(started: Instant) -> RequestRecord {
        RequestRecord {
            started,
            status: Cell::new(0),
            bytes: Cell::new(0),
            backend: Cell::new(None),
        }
    }
}

/// One core's access log for one configuration.
pub struct AccessLog {
    settings: AccessLogSettings,
    sink: AccessLogSink,
    core: usize,
    seen: Cell<u64>,
    second: Cell<u64>,
    lines_this_second: Cell<u32>,
    /// The lines queued and dropped, in the core's counters (shared by the core's logs of
    /// every configuration).
    states: Arc<CoreStates>,
}

impl AccessLog {
    /// `None` when the settings turn logging off.
    pub fn new(
        settings: AccessLogSettings,
        sink: AccessLogSink,
        core: usize,
        states: Arc<CoreStates>,
    ) -> Option<AccessLog> {
        (settings.target == AccessLogTarget::Console).then(|| AccessLog {
            settings,
            sink,
            core,
            seen: Cell::new(0),
            second: Cell::new(u64::MAX),
            lines_this_second: Cell::new(0),
            states,
        })
    }

    /// Writes the request's line if it is sampled and this second's budget allows.
    pub fn record(
        &self,
        now: Instant,
        client: SocketAddrV4,
        head: &RequestHead,
        record: &RequestRecord,
    ) {
        let seen = self.seen.get();
        self.seen.set(seen.wrapping_add(1));
        if !seen.is_multiple_of(u64::from(self.settings.sample)) {
            return;
        }
        let second = now.as_nanos() / 1_000_000_000;
        if second != self.second.get() {
            self.second.set(second);
            self.lines_this_second.set(0);
        }
        let counters = self.states.core(self.core);
        if self.lines_this_second.get() >= self.settings.lines_per_second {
            counters.access_log_dropped[ACCESS_LOG_DROPPED_RATE].increment();
            return;
        }
        self.lines_this_second.set(self.lines_this_second.get() + 1);
        let line = format_line(now, client, head, record, self.core);
        if (self.sink)(&line) {
            counters.access_log_lines.increment();
        } else {
            counters.access_log_dropped[ACCESS_LOG_DROPPED_RING_FULL].increment();
        }
    }
}

/// `access: core=<n> client=<ip:port> "<method> <target>" status=<s> bytes=<n>
/// backend=<ip:port|-> latency_us=<n>`; bytes of the target outside visible ASCII become `?`
/// so that a client cannot forge log lines.
pub fn format_line(
    now: Instant,
    client: SocketAddrV4,
    head: &RequestHead,
    record: &RequestRecord,
    core: usize,
) -> String {
    let mut line = String::with_capacity(128);
    let _ = write!(
        line,
        "access: core={core} client={client} \"{} ",
        head.method
    );
    for (index, character) in head.target.chars().enumerate() {
        if index == TARGET_LIMIT {
            line.push_str("...");
            break;
        }
        line.push(if character.is_ascii_graphic() {
            character
        } else {
            '?'
        });
    }
    let _ = write!(
        line,
        "\" status={} bytes={} backend=",
        record.status.get(),
        record.bytes.get()
    );
    match record.backend.get() {
        Some(backend) => {
            let _ = write!(line, "{backend}");
        }
        None => line.push('-'),
    }
    let latency = now.saturating_since(record.started);
    let _ = write!(line, " latency_us={}", latency.as_micros());
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use core::time::Duration;

    fn head(target: &str) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: target.into(),
            minor_version: 1,
            headers: Vec::new(),
            framing: crate::http::fields::BodyFraming::Empty,
        }
    }

    #[test]
    fn lines_are_sampled_and_rate_limited() {
        let lines = Rc::new(RefCell::new(Vec::<String>::new()));
        let sink_lines = lines.clone();
        let sink: AccessLogSink = Rc::new(move |line: &str| {
            sink_lines.borrow_mut().push(line.into());
            true
        });
        let states = Arc::new(CoreStates::new(2));
        let settings = AccessLogSettings {
            target: AccessLogTarget::Console,
            sample: 2,
            lines_per_second: 3,
        };
        let log = AccessLog::new(settings, sink, 1, states.clone()).unwrap();
        let start = Instant::from_nanos(5_000_000_000);
        let client: SocketAddrV4 = "10.0.0.9:4000".parse().unwrap();
        let record = RequestRecord::new(start);
        record.status.set(200);
        record.bytes.set(64);
        record.backend.set(Some("10.0.0.2:80".parse().unwrap()));
        for _ in 0..20 {
            log.record(
                start + Duration::from_micros(1500),
                client,
                &head("/a\r\nb"),
                &record,
            );
        }
        // 10 sampled, 3 written, 7 over the budget.
        assert_eq!(lines.borrow().len(), 3);
        let counters = states.core(1).snapshot();
        assert_eq!(counters.access_log_dropped, [7, 0]);
        assert_eq!(counters.access_log_lines, 3);
        assert_eq!(
            lines.borrow()[0],
            "access: core=1 client=10.0.0.9:4000 \"GET /a??b\" status=200 bytes=64 backend=10.0.0.2:80 latency_us=1500"
        );
        // The next second has a new budget.
        log.record(start + Duration::from_secs(1), client, &head("/"), &record);
        log.record(start + Duration::from_secs(1), client, &head("/"), &record);
        assert_eq!(lines.borrow().len(), 4);
    }

    #[test]
    fn off_makes_no_log() {
        let sink: AccessLogSink = Rc::new(|_: &str| true);
        assert!(
            AccessLog::new(
                AccessLogSettings::default(),
                sink,
                0,
                Arc::new(CoreStates::new(1))
            )
            .is_none()
        );
    }
}
