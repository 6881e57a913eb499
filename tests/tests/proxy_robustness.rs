//! The proxy keeps a site up against its own clients, end to end: stock backends (Python's `http.server`, nginx) in the guest's namespace, and clients that send what any client may send (methods a backend lacks, requests a backend drops, more connections than a core holds, HTTP/1.0 without `Host`).

mod guest;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use guest::backend::Backend;
use guest::{GUEST, Guest, NamespaceProcess, PEER, SERVICES, ScratchFile};

const PROXY_PORT: u16 = 8080;

fn boot_proxy(cpus: u32, words: &str) -> Guest {
    Guest::boot_custom(
        cpus,
        None,
        &format!("{SERVICES} proxy={PROXY_PORT} {words}"),
        &[],
    )
}

/// The status of `curl OPTIONS http://GUEST:PROXY_PORT<path>` (000 when no response came).
fn status_of(guest: &Guest, options: &str, path: &str) -> String {
    guest
        .expect_shell(
            &format!(
                "curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 {options} \
                 http://{GUEST}:{PROXY_PORT}{path} || true"
            ),
            Duration::from_secs(30),
        )
        .trim()
        .to_string()
}

/// Item 1: a client's `DELETE` that a stock `http.server` answers 501 says nothing about the
/// backend's health; many of them must not take the pool out of service.
#[test]
fn client_chosen_501s_do_not_eject_stock_backends() {
    let guest = boot_proxy(
        2,
        &format!("backends={PEER}:9101,{PEER}:9102 eject.failures=3 eject.cooloff=30"),
    );
    let _a = Backend::stock_python(&guest, 9101);
    let _b = Backend::stock_python(&guest, 9102);
    // Ten times what would eject both backends if a 501 counted as their failure.
    let statuses = guest.expect_shell(
        &format!(
            "for i in $(seq 30); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 10 \
             -X DELETE http://{GUEST}:{PROXY_PORT}/; done"
        ),
        Duration::from_secs(120),
    );
    assert!(
        statuses.lines().all(|status| status == "501"),
        "every DELETE gets the backend's own 501: {statuses}"
    );
    for _ in 0..10 {
        // http.server answers 404 for a file it does not have: the backend, not the proxy.
        assert_eq!(status_of(&guest, "", "/absent"), "404");
    }
}

/// Item 3: a request that makes the backend close without answering (nginx's `return 444`)
/// is sent a bounded number of times, however many idle pooled connections the core holds.
#[test]
fn a_request_the_backend_drops_is_not_resent_on_every_pooled_connection() {
    let guest = boot_proxy(
        1,
        &format!("backends={PEER}:9201 pool.idle=32 retry.sent=1"),
    );
    let files = Backend::scratch_directory("files");
    let nginx = Backend::nginx_with(&guest, 9201, &files, "location = /drop { return 444; }");
    // Sixteen concurrent requests leave about sixteen idle pooled connections.
    guest.expect_shell(
        &format!("ab -q -n 160 -c 16 http://{GUEST}:{PROXY_PORT}/ > /dev/null"),
        Duration::from_secs(120),
    );
    let status = status_of(&guest, "", "/drop");
    assert_eq!(status, "502", "a dropped request is a bad gateway");
    let sends = nginx.requests_containing("GET /drop");
    println!("GET /drop reached nginx {sends} times");
    // The first send, one free resend for the keep-alive race, and `retry.sent`.
    assert!(
        (1..=3).contains(&sends),
        "GET /drop was sent {sends} times (at most 3 expected)"
    );
    assert_eq!(status_of(&guest, "", "/"), "200");
}

/// Item 4: when the proxy's own core is out of connections, that is answered 503 and never
/// charged to the backend: once the idle clients go, the backend serves at once.
#[test]
fn a_full_connection_table_answers_503_and_leaves_the_backend_in_service() {
    // 1 core, 24 connections: 23 idle clients leave room for one client and no backend leg.
    let guest = boot_proxy(
        1,
        &format!(
            "backends={PEER}:9301 pool.idle=0 eject.failures=2 eject.cooloff=60 \
             tcp.max-connections=24 timeout.header=60"
        ),
    );
    let files = Backend::scratch_directory("files");
    let _nginx = Backend::nginx(&guest, 9301, &files);
    assert_eq!(status_of(&guest, "", "/"), "200");
    let held =
        ScratchFile(std::env::temp_dir().join(format!("unisock-e2e-held-{}", std::process::id())));
    let mut idle = NamespaceProcess::spawn(
        Command::new("ip")
            .args(["netns", "exec", &guest.namespace, "python3", "-c"])
            .arg(format!(
                "import socket, time\n\
                 held = [socket.create_connection(('{GUEST}', {PROXY_PORT})) for _ in range(23)]\n\
                 open('{}', 'w').write('held')\n\
                 time.sleep(120)\n",
                held.0.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Every idle connection is established (the handshake is done when create_connection
    // returns) before the first request that must find the table full.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !held.0.exists() {
        assert!(
            Instant::now() < deadline,
            "the idle clients never connected"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // The guest accepts them as their handshakes complete; give its loop a moment.
    thread::sleep(Duration::from_millis(500));
    let during: Vec<String> = (0..5).map(|_| status_of(&guest, "", "/")).collect();
    println!("while the table is full: {during:?}");
    assert!(
        during.iter().all(|status| status == "503"),
        "a local exhaustion is a 503, not a 502: {during:?}"
    );
    idle.stop();
    thread::sleep(Duration::from_secs(2));
    let after: Vec<String> = (0..5).map(|_| status_of(&guest, "", "/")).collect();
    assert!(
        after.iter().all(|status| status == "200"),
        "the backend was charged for the proxy's own exhaustion: {after:?}\n{}",
        guest.output()
    );
}

/// Item 7: an HTTP/1.0 request without `Host`, and an absolute-form target next to another
/// `Host`, reach nginx with a valid `Host` that follows the target (RFC 9112 3.2, 3.2.2).
#[test]
fn requests_reach_nginx_with_a_valid_host() {
    let guest = boot_proxy(1, &format!("backends={PEER}:9401"));
    let files = Backend::scratch_directory("files");
    let _nginx = Backend::nginx_with(
        &guest,
        9401,
        &files,
        "location = /host { return 200 \"host=$http_host\\n\"; }",
    );
    let answer = guest.expect_shell(
        &format!("printf 'GET /host HTTP/1.0\\r\\n\\r\\n' | nc -N -w 10 {GUEST} {PROXY_PORT}"),
        Duration::from_secs(20),
    );
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "HTTP/1.0 without Host: {answer}"
    );
    // nginx's `$proxy_host`: the backend's address and port.
    assert!(answer.contains(&format!("host={PEER}:9401\n")), "{answer}");
    let answer = guest.expect_shell(
        &format!(
            "printf 'GET http://api.unisock.test/host HTTP/1.1\\r\\nHost: other.test\\r\\nConnection: close\\r\\n\\r\\n' \
             | nc -N -w 10 {GUEST} {PROXY_PORT}"
        ),
        Duration::from_secs(20),
    );
    assert!(
        answer.contains("host=api.unisock.test\n"),
        "the Host follows the absolute target: {answer}"
    );
    let answer = guest.expect_shell(
        &format!(
            "printf 'GET /host HTTP/1.1\\r\\nHost: a.test\\r\\nConnection: host, close\\r\\n\\r\\n' \
             | nc -N -w 10 {GUEST} {PROXY_PORT}"
        ),
        Duration::from_secs(20),
    );
    assert!(
        answer.contains("host=a.test\n"),
        "Connection must not remove Host: {answer}"
    );
}

/// A client that sends `Content-Length: length` and then a byte a second, until the proxy
/// answers (or 40 s pass); returns the status line and the seconds it took.
fn trickle_upload(guest: &Guest, length: usize) -> (String, u64) {
    let output = guest.expect_shell(
        &format!(
            "python3 -c \"\nimport socket, time\n\
             s = socket.create_connection(('{GUEST}', {PROXY_PORT}))\n\
             s.sendall(b'POST /upload HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: {length}\\r\\n\\r\\n')\n\
             start = time.time()\n\
             s.settimeout(1)\n\
             data = b''\n\
             while time.time() - start < 40 and b'\\r\\n' not in data:\n\
             \x20   try:\n\
             \x20       s.sendall(b'x')\n\
             \x20       chunk = s.recv(4096)\n\
             \x20       if not chunk:\n\
             \x20           break\n\
             \x20       data += chunk\n\
             \x20   except socket.timeout:\n\
             \x20       pass\n\
             \x20   except OSError:\n\
             \x20       break\n\
             print(data.split(b'\\r\\n')[0].decode() or 'none', int(time.time() - start))\n\""
        ),
        Duration::from_secs(60),
    );
    let (status, seconds) = output.trim().rsplit_once(' ').expect("status and seconds");
    (status.to_string(), seconds.parse().expect("seconds"))
}

/// Item 5: a request body trickled a byte a second meets the whole-body deadline (408) and
/// does not hold the backend for longer; a small one never reaches the backend at all.
#[test]
fn trickled_request_bodies_meet_their_deadline() {
    let guest = boot_proxy(
        1,
        &format!("backends={PEER}:9501 timeout.body=5 timeout.body-rate=0"),
    );
    let backend = Backend::python(&guest, 9501);
    // Streamed (larger than `limit.body-buffer`): the head reaches the backend first.
    let (status, seconds) = trickle_upload(&guest, 100_000);
    println!("streamed body: {status} after {seconds} s");
    assert!(status.contains(" 408 "), "{status}");
    assert!(seconds <= 15, "the 5 s body deadline took {seconds} s");
    assert_eq!(backend.requests_containing("POST /upload"), 1);
    // Small enough to buffer: read whole before any backend is chosen, so it never gets one.
    let (status, seconds) = trickle_upload(&guest, 1_000);
    println!("buffered body: {status} after {seconds} s");
    assert!(status.contains(" 408 "), "{status}");
    assert!(seconds <= 15, "the 5 s body deadline took {seconds} s");
    assert_eq!(
        backend.requests_containing("POST /upload"),
        1,
        "a buffered body that never completed reached the backend"
    );
}
