//! The access log to a syslog collector, end to end: the image boots with `accesslog=syslog accesslog.collector=10.77.0.1:5514 hostname=edge-1`, a UDP listener in the test's namespace (Python's socket module) records every datagram, requests go through the proxy to nginx, and each datagram received must parse as RFC 5424 with the configured facility and hostname.

mod guest;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use guest::backend::Backend;
use guest::{GUEST, Guest, NamespaceProcess, PEER, SERVICES, ScratchFile};

const PROXY_PORT: u16 = 8080;
const BACKEND_PORT: u16 = 9401;
const COLLECTOR_PORT: u16 = 5514;
const REQUESTS: usize = 20;

/// The fields of one RFC 5424 message (section 6).
#[derive(Debug)]
struct SyslogMessage {
    facility: u8,
    severity: u8,
    timestamp: String,
    hostname: String,
    app_name: String,
    process_id: String,
    message_id: String,
    message: String,
}

/// One header field: 1 to `limit` printable US-ASCII characters (33 to 126), then a space.
fn field<'a>(rest: &mut &'a [u8], name: &str, limit: usize) -> Result<&'a str, String> {
    let end = rest
        .iter()
        .position(|&byte| byte == b' ')
        .ok_or_else(|| format!("{name}: no space after it"))?;
    let value = &rest[..end];
    if value.is_empty() || value.len() > limit {
        return Err(format!("{name}: {} characters (1 to {limit})", value.len()));
    }
    if !value.iter().all(|byte| (33..=126).contains(byte)) {
        return Err(format!("{name}: not printable US-ASCII"));
    }
    *rest = &rest[end + 1..];
    Ok(std::str::from_utf8(value).expect("ASCII"))
}

/// RFC 5424 section 6, strictly: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`,
/// PRI 0 to 191 without a leading zero, VERSION 1, TIMESTAMP the NILVALUE or an RFC 3339
/// date-time, the field lengths of section 6, STRUCTURED-DATA the NILVALUE (the appliance
/// writes none), MSG UTF-8 after a BOM or else (here) ASCII.
fn parse_rfc5424(datagram: &[u8]) -> Result<SyslogMessage, String> {
    let mut rest = datagram
        .strip_prefix(b"<")
        .ok_or("no `<` opening the PRI")?;
    let close = rest
        .iter()
        .position(|&byte| byte == b'>')
        .ok_or("no `>` closing the PRI")?;
    let digits = &rest[..close];
    if digits.is_empty()
        || digits.len() > 3
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(format!("PRI {digits:?} is not 1 to 3 digits"));
    }
    let priority: u16 = std::str::from_utf8(digits)
        .expect("digits")
        .parse()
        .expect("3 digits");
    if priority > 191 {
        return Err(format!("PRI {priority} above 191"));
    }
    rest = &rest[close + 1..];
    let version = field(&mut rest, "VERSION", 3)?;
    if version != "1" {
        return Err(format!("VERSION {version}, not 1"));
    }
    let timestamp = field(&mut rest, "TIMESTAMP", 64)?;
    if timestamp != "-" && !is_rfc3339(timestamp) {
        return Err(format!("TIMESTAMP {timestamp}"));
    }
    let hostname = field(&mut rest, "HOSTNAME", 255)?;
    let app_name = field(&mut rest, "APP-NAME", 48)?;
    let process_id = field(&mut rest, "PROCID", 128)?;
    let message_id = field(&mut rest, "MSGID", 32)?;
    let structured = match rest.iter().position(|&byte| byte == b' ') {
        Some(end) => {
            let structured = &rest[..end];
            rest = &rest[end + 1..];
            structured
        }
        None => std::mem::take(&mut rest),
    };
    if structured != b"-" {
        return Err(format!(
            "STRUCTURED-DATA {:?}",
            String::from_utf8_lossy(structured)
        ));
    }
    let message = match rest.strip_prefix(b"\xEF\xBB\xBF") {
        Some(utf8) => std::str::from_utf8(utf8).map_err(|_| "MSG after the BOM is not UTF-8")?,
        None if rest.is_ascii() => std::str::from_utf8(rest).expect("ASCII"),
        None => return Err("MSG without a BOM is not ASCII".into()),
    };
    Ok(SyslogMessage {
        facility: (priority / 8) as u8,
        severity: (priority % 8) as u8,
        timestamp: timestamp.into(),
        hostname: hostname.into(),
        app_name: app_name.into(),
        process_id: process_id.into(),
        message_id: message_id.into(),
        message: message.into(),
    })
}

/// `YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm)`, by shape.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if bytes.len() < shape.len() + 1 {
        return false;
    }
    let matches = shape.iter().zip(bytes).all(|(want, got)| match want {
        b'd' => got.is_ascii_digit(),
        other => other == got,
    });
    let mut zone = &text[shape.len()..];
    if let Some(fraction) = zone.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&digits) {
            return false;
        }
        zone = &fraction[digits..];
    }
    matches
        && (zone == "Z"
            || (zone.len() == 6
                && (zone.starts_with('+') || zone.starts_with('-'))
                && zone.as_bytes()[3] == b':'))
}

fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn access_log_lines_reach_a_syslog_collector_as_rfc_5424() {
    let guest = Guest::boot_custom(
        2,
        None,
        &format!(
            "{SERVICES} proxy={PROXY_PORT} backends={PEER}:{BACKEND_PORT} accesslog=syslog \
             accesslog.collector={PEER}:{COLLECTOR_PORT} accesslog.facility=local3 \
             hostname=edge-1"
        ),
        &[],
    );
    let files = Backend::scratch_directory("files");
    let _nginx = Backend::nginx(&guest, BACKEND_PORT, &files);
    // The collector: every datagram, hex-encoded, one a line (a datagram is bytes, not text).
    let received = ScratchFile(
        std::env::temp_dir().join(format!("unisock-e2e-syslog-{}", std::process::id())),
    );
    let ready = ScratchFile(received.0.with_extension("ready"));
    let _collector = NamespaceProcess::spawn(
        Command::new("ip")
            .args(["netns", "exec", &guest.namespace, "python3", "-u", "-c"])
            .arg(format!(
                "import socket\n\
                 s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 s.bind(('{PEER}', {COLLECTOR_PORT}))\n\
                 open('{ready}', 'w').write('ready')\n\
                 out = open('{received}', 'a')\n\
                 while True:\n\
                 \x20   data, sender = s.recvfrom(65535)\n\
                 \x20   out.write(sender[0] + ' ' + data.hex() + '\\n')\n\
                 \x20   out.flush()\n",
                ready = ready.0.display(),
                received = received.0.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.0.exists() {
        assert!(Instant::now() < deadline, "the collector never listened");
        thread::sleep(Duration::from_millis(100));
    }
    let statuses = guest.expect_shell(
        &format!(
            "for i in $(seq {REQUESTS}); do curl -s -o /dev/null -w '%{{http_code}}\\n' \
             --max-time 10 http://{GUEST}:{PROXY_PORT}/item/$i; done"
        ),
        Duration::from_secs(120),
    );
    assert!(
        statuses.lines().count() == REQUESTS && statuses.lines().all(|status| status == "200"),
        "{statuses}"
    );
    // The lines leave without waiting; give the last ones a moment on the tap.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&received.0).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= REQUESTS || Instant::now() > deadline {
            break lines;
        }
        thread::sleep(Duration::from_millis(100));
    };
    println!("{} datagrams at the collector", lines.len());
    // Nothing is lost on a clean tap at this pace (far under `accesslog.rate`, an empty queue).
    assert_eq!(lines.len(), REQUESTS, "{}", guest.output());
    let mut targets = Vec::new();
    for line in &lines {
        let (sender, hex) = line.split_once(' ').expect("sender and datagram");
        assert_eq!(sender, GUEST);
        let datagram = from_hex(hex);
        assert!(datagram.len() <= 1024, "{} bytes", datagram.len());
        let message = parse_rfc5424(&datagram)
            .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(&datagram)));
        assert_eq!(message.facility, 19, "local3");
        assert_eq!(message.severity, 6, "informational");
        assert_eq!(message.timestamp, "-");
        assert_eq!(message.hostname, "edge-1");
        assert_eq!(message.app_name, "unisock");
        assert_eq!(message.process_id, "-");
        assert_eq!(message.message_id, "access");
        assert!(
            message.message.starts_with("access: core=")
                && message.message.contains(&format!(" client={PEER}:"))
                && message.message.contains(" status=200 ")
                && message
                    .message
                    .contains(&format!(" backend={PEER}:{BACKEND_PORT} ")),
            "{}",
            message.message
        );
        let target = message
            .message
            .split('"')
            .nth(1)
            .expect("a quoted request")
            .to_string();
        targets.push(target);
    }
    targets.sort();
    let mut expected: Vec<String> = (1..=REQUESTS).map(|i| format!("GET /item/{i}")).collect();
    expected.sort();
    assert_eq!(targets, expected, "one message per request");
}
