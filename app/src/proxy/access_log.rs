//! The access log: one line per request (client, method, target, status, bytes, backend, core, latency), sampled and rate-limited per core so that logging never slows the traffic; the line goes to the core's console ring or, as an RFC 5424 message, to a syslog collector over UDP.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::sync::Arc;
use core::cell::{Cell, RefCell};
use core::fmt::Write;
use core::net::SocketAddrV4;

use unisock_kernel::socket::SharedUdpLayer;
use unisock_kernel::time::Instant;

use crate::config::{AccessLogSettings, AccessLogTarget};
use crate::http::request::RequestHead;

use super::statistics::{
    ACCESS_LOG_DROPPED_RATE, ACCESS_LOG_DROPPED_RING_FULL, ACCESS_LOG_DROPPED_SYSLOG_QUEUE_FULL,
    ACCESS_LOG_DROPPED_SYSLOG_UNSENT, CoreStates,
};
use super::syslog::{SyslogDrop, SyslogSender};

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

/// What a core can write its access log to.
#[derive(Clone, Default)]
pub struct AccessLogOutputs {
    /// The core's console ring (none without a console).
    pub console: Option<AccessLogSink>,
    /// The core's UDP layer, for syslog (none without a network).
    pub udp: Option<SharedUdpLayer>,
}

/// Where one configuration's lines go on one core.
enum Output {
    Console(AccessLogSink),
    Syslog(RefCell<SyslogSender>),
}

/// One core's access log for one configuration.
pub struct AccessLog {
    settings: AccessLogSettings,
    output: Output,
    core: usize,
    seen: Cell<u64>,
    second: Cell<u64>,
    lines_this_second: Cell<u32>,
    /// The lines queued and dropped, in the core's counters (shared by the core's logs of
    /// every configuration).
    states: Arc<CoreStates>,
}

impl AccessLog {
    /// `None` when the settings turn logging off, or their target is not among `outputs`.
    /// With the syslog target, this core's socket to the collector is opened here (and again
    /// at the next line if that failed), on the core's own UDP layer.
    pub fn new(
        settings: AccessLogSettings,
        hostname: &str,
        outputs: &AccessLogOutputs,
        core: usize,
        states: Arc<CoreStates>,
    ) -> Option<AccessLog> {
        let output = match settings.target {
            AccessLogTarget::Off => return None,
            AccessLogTarget::Console => Output::Console(outputs.console.clone()?),
            AccessLogTarget::Syslog => Output::Syslog(RefCell::new(SyslogSender::new(
                outputs.udp.clone()?,
                settings.syslog.collector?,
                settings.syslog.facility,
                hostname,
            ))),
        };
        Some(AccessLog {
            settings,
            output,
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
        let written = match &self.output {
            Output::Console(sink) => sink(&line)
                .then_some(())
                .ok_or(ACCESS_LOG_DROPPED_RING_FULL),
            Output::Syslog(sender) => sender.borrow_mut().send(&line).map_err(|drop| match drop {
                SyslogDrop::QueueFull => ACCESS_LOG_DROPPED_SYSLOG_QUEUE_FULL,
                SyslogDrop::Unsent => ACCESS_LOG_DROPPED_SYSLOG_UNSENT,
            }),
        };
        match written {
            Ok(()) => counters.access_log_lines.increment(),
            Err(reason) => counters.access_log_dropped[reason].increment(),
        }
    }

    /// The local address of the syslog socket (none for the console, or while it could not
    /// be opened).
    pub fn syslog_local_address(&self) -> Option<SocketAddrV4> {
        match &self.output {
            Output::Console(_) => None,
            Output::Syslog(sender) => sender.borrow().local_address(),
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
    use crate::config::{Facility, SyslogSettings};
    use alloc::vec::Vec;
    use core::time::Duration;
    use unisock_kernel::net::tcp::CoreId;
    use unisock_kernel::net::udp::{UdpConfig, UdpLayer};

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
            ..AccessLogSettings::default()
        };
        let outputs = AccessLogOutputs {
            console: Some(sink),
            udp: None,
        };
        let log = AccessLog::new(settings, "unisock", &outputs, 1, states.clone()).unwrap();
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
        assert_eq!(counters.access_log_dropped, [7, 0, 0, 0]);
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
        let outputs = AccessLogOutputs {
            console: Some(sink),
            udp: None,
        };
        let states = Arc::new(CoreStates::new(1));
        assert!(
            AccessLog::new(
                AccessLogSettings::default(),
                "unisock",
                &outputs,
                0,
                states.clone()
            )
            .is_none()
        );
        // Syslog without a network to send on: no log either (the console is not a fallback).
        let syslog = AccessLogSettings {
            target: AccessLogTarget::Syslog,
            syslog: SyslogSettings {
                collector: Some("10.0.0.1:514".parse().unwrap()),
                facility: Facility::LOCAL0,
            },
            ..AccessLogSettings::default()
        };
        assert!(AccessLog::new(syslog, "unisock", &outputs, 0, states).is_none());
    }

    /// A core whose UDP output queue holds `queue` datagrams (nothing drains it here).
    fn udp_layer(queue: usize) -> SharedUdpLayer {
        let mut layer = UdpLayer::new(
            UdpConfig {
                output_queue_datagrams: queue,
                ..UdpConfig::default()
            },
            CoreId(0),
            7,
        );
        layer.set_source_address("10.0.0.5".parse().unwrap());
        layer.into_shared()
    }

    #[test]
    fn a_full_udp_output_queue_drops_and_counts_syslog_lines_without_waiting() {
        let udp = udp_layer(2);
        let states = Arc::new(CoreStates::new(1));
        let collector: SocketAddrV4 = "10.0.0.1:514".parse().unwrap();
        let settings = AccessLogSettings {
            target: AccessLogTarget::Syslog,
            lines_per_second: 1000,
            syslog: SyslogSettings {
                collector: Some(collector),
                facility: Facility::from_name("local3").unwrap(),
            },
            ..AccessLogSettings::default()
        };
        let outputs = AccessLogOutputs {
            console: None,
            udp: Some(udp.clone()),
        };
        let log = AccessLog::new(settings, "edge-1", &outputs, 0, states.clone()).unwrap();
        let start = Instant::from_nanos(1_000_000_000);
        let record = RequestRecord::new(start);
        record.status.set(204);
        let client: SocketAddrV4 = "10.0.0.9:4000".parse().unwrap();
        for _ in 0..5 {
            log.record(start, client, &head("/x"), &record);
        }
        let counters = states.core(0).snapshot();
        assert_eq!(counters.access_log_lines, 2);
        assert_eq!(
            counters.access_log_dropped[ACCESS_LOG_DROPPED_SYSLOG_QUEUE_FULL],
            3
        );
        let mut sent = Vec::new();
        udp.borrow_mut().drain_output_up_to(10, |datagram| {
            sent.push(datagram.destination);
        });
        assert_eq!(sent, [collector, collector]);
        // Room again: the next line goes.
        log.record(start, client, &head("/y"), &record);
        assert_eq!(states.core(0).snapshot().access_log_lines, 3);
    }
}
