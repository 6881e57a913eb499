//! The proxy's deadlines on slow clients, over the simulated network and its virtual clock: a request body trickled in (408, and no backend held while a small one is buffered), a response read too slowly (cut off), and a tunnel idle only when neither side sends.

mod support;

use std::time::Duration;

use support::{Behaviour, Bench, Ending, clean, settings};

const SECOND: Duration = Duration::from_secs(1);

fn seconds(at: unisock_kernel::time::Instant) -> f64 {
    at.as_nanos() as f64 / 1e9
}

fn echo() -> Behaviour {
    Behaviour::EchoChunked { piece: 1000 }
}

/// A POST head announcing `length` bytes, then one body byte every 59 s (each read well
/// inside `timeout.client`, which alone never ended it).
fn trickled_post(length: usize) -> Vec<(Duration, Vec<u8>)> {
    let head = format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n\r\n");
    let mut parts = vec![(Duration::ZERO, head.into_bytes())];
    parts.extend((0..length).map(|_| (59 * SECOND, b"x".to_vec())));
    parts
}

/// Streamed (too large to buffer): the body deadline answers 408 at `timeout.body` and
/// resets the backend's half-sent request. Before: no answer at all while the bytes kept
/// coming, the backend connection held for as long.
#[test]
fn a_request_body_trickled_a_byte_every_59_seconds_gets_408_at_the_body_deadline() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings("timeout.body=60 limit.body-buffer=0", 1),
        vec![echo()],
    );
    bench.client_with(trickled_post(12), Duration::ZERO, 600 * SECOND, false);
    bench.run(800 * SECOND);
    let result = bench.result(0);
    let text = String::from_utf8_lossy(&result.received).into_owned();
    assert!(text.starts_with("HTTP/1.1 408 "), "{result:?}");
    let elapsed = seconds(result.finished_at);
    assert!((60.0..62.0).contains(&elapsed), "408 after {elapsed} s");
    assert_ne!(result.ending, Ending::Open);
    let report = bench.report();
    assert_eq!(bench.total("body_timeouts"), 1, "{report}");
    assert_eq!(bench.total("client_aborts"), 0, "{report}");
    let log = bench.backends[0].borrow();
    assert_eq!(log.connections, 1, "the head went to the backend first");
    assert!(
        log.requests.is_empty(),
        "the backend never got a whole request"
    );
}

/// A client sending at the minimum rate keeps its body going past `timeout.body`; one that
/// falls behind it is cut once it lags by `timeout.body`.
#[test]
fn the_body_deadline_moves_with_the_minimum_rate() {
    let body_at = |bytes_per_second: usize, length: usize| {
        let head = format!("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: {length}\r\n\r\n");
        let mut parts = vec![(Duration::ZERO, head.into_bytes())];
        parts
            .extend((0..length / bytes_per_second).map(|_| (SECOND, vec![b'y'; bytes_per_second])));
        parts
    };
    let words = "timeout.body=10 timeout.body-rate=1000 limit.body-buffer=0";
    let mut bench = Bench::new(1, clean(), settings(words, 1), vec![echo()]);
    // 30 s at 1000 bytes a second: three times the allowance, never behind.
    bench.client_with(body_at(1000, 30_000), Duration::ZERO, 120 * SECOND, false);
    // 500 bytes a second: half a second behind every second, so cut after about 20 s.
    bench.client_with(body_at(500, 30_000), Duration::ZERO, 120 * SECOND, false);
    bench.run(200 * SECOND);
    let on_time = bench.responses(0, &[false]);
    assert_eq!(on_time[0].status, 200);
    assert_eq!(on_time[0].body.len(), 30_000);
    let late = bench.result(1);
    let text = String::from_utf8_lossy(&late.received).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "{:?}",
        text.lines().next()
    );
    let elapsed = seconds(late.finished_at);
    assert!((18.0..24.0).contains(&elapsed), "408 after {elapsed} s");
    assert_eq!(bench.total("body_timeouts"), 1);
}

/// A body small enough to buffer is read whole before a backend is picked: a slow small
/// upload holds no backend connection, and a trickled one is refused without any.
#[test]
fn a_small_body_is_read_whole_before_any_backend_connection() {
    let mut bench = Bench::new(1, clean(), settings("", 1), vec![echo()]);
    bench.client_with(
        vec![
            (
                Duration::ZERO,
                b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe".to_vec(),
            ),
            (30 * SECOND, b"llo".to_vec()),
        ],
        Duration::ZERO,
        120 * SECOND,
        false,
    );
    bench.run_for(29 * SECOND);
    assert_eq!(
        bench.backends[0].borrow().connections,
        0,
        "a backend connection was opened before the body was complete"
    );
    bench.run(120 * SECOND);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].body, b"hello");

    let mut bench = Bench::new(1, clean(), settings("timeout.body=60", 1), vec![echo()]);
    bench.client_with(trickled_post(12), Duration::ZERO, 600 * SECOND, false);
    bench.run(800 * SECOND);
    let result = bench.result(0);
    assert!(
        String::from_utf8_lossy(&result.received).starts_with("HTTP/1.1 408 "),
        "{result:?}"
    );
    let elapsed = seconds(result.finished_at);
    assert!((60.0..62.0).contains(&elapsed), "408 after {elapsed} s");
    assert_eq!(bench.backends[0].borrow().connections, 0);
    assert_eq!(bench.total("body_timeouts"), 1);
}

/// A client that takes a large response at 500 bytes a second: each 16 KiB write still
/// finished inside `timeout.client`, so before it held the client and the backend
/// connection for the half hour the megabyte takes. Now it is cut off once it lags behind
/// `timeout.send-rate` by `timeout.send`, and counted.
#[test]
fn a_client_reading_the_response_too_slowly_is_cut_off_and_counted() {
    let body = vec![b'r'; 1_000_000];
    let mut bench = Bench::new(
        1,
        clean(),
        settings("timeout.send=10 timeout.send-rate=1024", 1),
        vec![Behaviour::Fixed { status: 200, body }],
    );
    bench.slow_reader(
        b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        (100, Duration::from_millis(200)),
        600 * SECOND,
    );
    bench.run(700 * SECOND);
    let result = bench.result(0);
    assert_ne!(
        result.ending,
        Ending::Open,
        "still served after {} bytes",
        result.received.len()
    );
    assert!(result.received.len() < 1_000_000);
    let report = bench.report();
    assert_eq!(bench.total("send_timeouts"), 1, "{report}");
    assert_eq!(bench.total("client_aborts"), 0, "{report}");
}

/// A client as fast as the response is never cut, however long it takes.
#[test]
fn a_client_keeping_up_with_a_large_response_is_never_cut() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings("timeout.send=1 timeout.send-rate=1000000", 1),
        vec![Behaviour::Fixed {
            status: 200,
            body: vec![b'q'; 300_000],
        }],
    );
    bench.client(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::ZERO,
        60 * SECOND,
    );
    bench.run(120 * SECOND);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses[0].body.len(), 300_000);
    assert_eq!(bench.total("send_timeouts"), 0);
}

/// Only the waits on the client count: a response the backend produces slowly (a chunk every
/// 5 s for 50 s) reaches a client that takes each chunk at once, with a send budget of 1 s.
#[test]
fn a_slow_backend_is_never_charged_to_the_client() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings(
            "timeout.send=1 timeout.send-rate=1000000 timeout.backend=10",
            1,
        ),
        vec![Behaviour::SlowChunks {
            pieces: 10,
            every: 5 * SECOND,
        }],
    );
    bench.client(
        b"GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::ZERO,
        120 * SECOND,
    );
    bench.run(200 * SECOND);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses[0].body, b"hello".repeat(10));
    assert_eq!(bench.total("send_timeouts"), 0);
}

/// The backend streams a tick every 10 s to a client that sends nothing after its upgrade
/// request. Before, the client's silent direction idled out after the timeout, the backend
/// got a FIN and closed, and the stream stopped after 3 ticks. Idle means no byte either
/// way: the stream goes on, and ends only once both sides are quiet for the timeout.
#[test]
fn a_tunnel_is_idle_only_when_neither_side_sends() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings("timeout.tunnel=30", 1),
        vec![Behaviour::UpgradeTicks {
            every: 10 * SECOND,
            ticks: 12,
        }],
    );
    bench.client(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: ticks\r\n\r\n".to_vec(),
        Duration::ZERO,
        600 * SECOND,
    );
    bench.run(700 * SECOND);
    let result = bench.result(0);
    let text = String::from_utf8_lossy(&result.received).into_owned();
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert_eq!(text.matches("tick\n").count(), 12, "{text}");
    assert_ne!(result.ending, Ending::Open);
    let elapsed = seconds(result.finished_at);
    assert!(
        (150.0..152.0).contains(&elapsed),
        "ended after {elapsed} s: the last tick at 120 s, then 30 s of quiet"
    );
    assert_eq!(bench.total("tunnel_timeouts"), 1);
}
