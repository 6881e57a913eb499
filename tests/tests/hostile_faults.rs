//! Faults end to end: the proxy in front of a backend that resets, stalls or closes in the
//! middle of a response, with both legs through the impairment relay (10 % loss,
//! duplication, reordering, corruption, delay and jitter). A client must get either the
//! complete response or a clean error: never a cut-off body presented as complete.
//!
//! The backend is tests/scripts/http-backend.py in the guest's namespace at 10.77.0.1.

mod guest;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guest::{CoreCounters, GUEST, Guest, PEER};

const PROXY_PORT: u16 = 8080;
const BACKEND_PORT: u16 = 8000;
/// Every impairment the relay has, at once, on each direction.
const IMPAIRMENT: &str =
    "loss=10% duplicate=2% reorder=20% delay=10ms jitter=10ms corrupt=1% seed=10";
/// The backend's body (`tests/scripts/http-backend.py`): the pattern `index mod 251`.
const BODY_LENGTH: usize = 1_000_000;

fn sha256_of(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run sha256sum");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(bytes)
        .expect("sha256sum stopped reading");
    let output = child.wait_with_output().expect("sha256sum failed");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum printed nothing")
        .to_string()
}

/// What one curl through the proxy got.
struct Fetch {
    exit: i32,
    status: String,
    bytes: u64,
    sha256: String,
    seconds: f64,
}

fn fetch(guest: &Guest, path: &str) -> Fetch {
    let started = Instant::now();
    // curl's exit status says whether it got the whole response (0) or why not; the body
    // is hashed as it arrives.
    let output = guest.shell(
        &format!(
            "set -o pipefail; curl -sS --max-time 60 -o >(sha256sum > /tmp/unisock-fault-$$.sha) \
             -w '%{{http_code}} %{{size_download}}' http://{GUEST}:{PROXY_PORT}{path}; \
             status=$?; sleep 0.2; echo \" $status $(cut -d' ' -f1 /tmp/unisock-fault-$$.sha)\"; \
             rm -f /tmp/unisock-fault-$$.sha"
        ),
        Duration::from_secs(90),
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 4, "unexpected curl output: {text:?}");
    Fetch {
        status: words[0].to_string(),
        bytes: words[1].parse().unwrap_or(0),
        exit: words[2].parse().unwrap_or(-1),
        sha256: words[3].to_string(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[test]
fn a_backend_that_fails_mid_response_never_yields_a_truncated_body_presented_as_complete() {
    let words = format!(
        "responder=80 proxy={PROXY_PORT} backends={PEER}:{BACKEND_PORT} timeout.backend=5 \
         eject.failures=0"
    );
    let guest = Guest::boot_custom(2, Some(IMPAIRMENT), &words, &[]);
    let _backend = guest::python_backend(&guest, BACKEND_PORT, Stdio::null());
    let pattern: Vec<u8> = (0..BODY_LENGTH).map(|index| (index % 251) as u8).collect();
    let whole = sha256_of(&pattern);

    let mut complete = 0;
    for attempt in 0..4 {
        let result = fetch(&guest, "/big");
        println!(
            "/big #{attempt}: curl exit {} status {} {} bytes in {:.1} s",
            result.exit, result.status, result.bytes, result.seconds
        );
        assert_eq!(result.exit, 0, "a healthy backend's response failed");
        assert_eq!(result.status, "200");
        assert_eq!(result.sha256, whole, "the body is not the backend's");
        complete += 1;
    }
    assert_eq!(complete, 4);

    for path in [
        "/cut-length",
        "/cut-chunked",
        "/reset-mid-body",
        "/stall-mid-body",
    ] {
        for attempt in 0..2 {
            let result = fetch(&guest, path);
            println!(
                "{path} #{attempt}: curl exit {} status {} {} bytes in {:.1} s",
                result.exit, result.status, result.bytes, result.seconds
            );
            // The backend never sends the whole body: success with a 200 would be a cut-off
            // body presented as complete. A clean 5xx (if the proxy saw the fault before the
            // head left) or a transfer error is what the client must see.
            let presented_as_complete = result.exit == 0 && result.status.starts_with('2');
            assert!(
                !presented_as_complete,
                "{path}: a cut-off body of {} bytes reached the client as a complete response",
                result.bytes
            );
            assert!(
                result.bytes < BODY_LENGTH as u64,
                "{path}: more bytes than the backend sent"
            );
        }
    }
    // The guest still serves, and the relay really impaired the wire.
    let text = guest.expect_shell(
        &format!("curl -sS --retry 3 --max-time 20 http://{GUEST}/stats"),
        Duration::from_secs(90),
    );
    let total = text
        .lines()
        .find(|line| line.starts_with("core=total "))
        .map(CoreCounters::parse)
        .expect("a total line");
    println!(
        "under impairment: {} retransmissions ({} timeouts), {} frames dropped by the guest \
         (bad checksums among them)",
        total.get("tcp_retransmits"),
        total.get("tcp_timeouts"),
        total.get("frames_dropped")
    );
    for line in text
        .lines()
        .filter(|line| line.starts_with("proxy core=total"))
    {
        println!("{line}");
    }
    assert!(
        total.get("tcp_retransmits") > 0,
        "the impairment did not apply"
    );
    assert!(
        total.get("frames_dropped") > 0,
        "1 % corruption and no frame dropped: the corruption did not apply or went unseen"
    );
}
