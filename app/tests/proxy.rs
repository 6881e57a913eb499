//! The reverse proxy over the simulated network: framing both ways, keep-alive and pipelining, bodiless responses, interim responses, tunnels, smuggling defences, limits, error statuses, timeouts, balancing, health and retries.

mod support;

use std::time::Duration;

use support::{Behaviour, Bench, Ending, clean, settings};
use unisock_kernel::net::tcp::TcpConfig;
use unisock_sim::Impairments;

const SECOND: Duration = Duration::from_secs(1);

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example\r\n{extra}\r\n").into_bytes()
}

fn fixed(body: &str) -> Behaviour {
    Behaviour::Fixed {
        status: 200,
        body: body.as_bytes().to_vec(),
    }
}

/// One client sending `request`, one backend with `behaviour`; the bench after the run.
fn one_exchange(words: &str, behaviour: Behaviour, request: Vec<u8>) -> Bench {
    let mut bench = Bench::new(1, clean(), settings(words, 1), vec![behaviour]);
    bench.client(request, Duration::ZERO, 30 * SECOND);
    bench.run(120 * SECOND);
    bench
}

#[test]
fn a_request_goes_through_with_forwarding_fields_and_without_hop_by_hop_ones() {
    let bench = one_exchange(
        "",
        fixed("hello"),
        get(
            "/a?b=1",
            "Connection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 192.0.2.7\r\nAccept: */*\r\n",
        ),
    );
    let result = bench.result(0);
    assert_eq!(result.ending, Ending::Closed);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert_eq!(responses[0].body, b"hello");
    assert_eq!(responses[0].header("x-backend"), Some("yes"));
    assert_eq!(responses[0].header("via"), Some("1.1 unisock"));
    assert_eq!(responses[0].header("connection"), Some("close"));
    let log = bench.backends[0].borrow();
    assert_eq!(log.requests.len(), 1);
    let head = log.requests[0].head.to_ascii_lowercase();
    assert!(head.starts_with("get /a?b=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("host: example\r\n"));
    assert!(head.contains("accept: */*\r\n"));
    assert!(
        head.contains("x-forwarded-for: 192.0.2.7, 10.0.0.1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-forwarded-proto: http\r\n"));
    assert!(head.contains("forwarded: for=10.0.0.1;proto=http\r\n"));
    assert!(head.contains("via: 1.1 unisock\r\n"));
    for gone in ["x-secret", "keep-alive", "te:", "connection: close"] {
        assert!(!head.contains(gone), "{gone} was forwarded: {head}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_over_one_pooled_backend_connection() {
    let mut requests = Vec::new();
    for index in 0..5 {
        let body = format!("request {index}");
        requests.extend_from_slice(
            format!(
                "POST /{index} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n{}\r\n{body}",
                body.len(),
                if index == 4 {
                    "Connection: close\r\n"
                } else {
                    ""
                }
            )
            .as_bytes(),
        );
    }
    // POST is not replayable, so each takes a new backend connection; GETs reuse one.
    let bench = one_exchange("", Behaviour::EchoChunked { piece: 3 }, requests);
    let responses = bench.responses(0, &[false; 5]);
    let bodies: Vec<String> = responses
        .iter()
        .map(|response| String::from_utf8(response.body.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "request 0",
            "request 1",
            "request 2",
            "request 3",
            "request 4"
        ]
    );
    assert_eq!(bench.result(0).ending, Ending::Closed);

    let mut gets = Vec::new();
    for index in 0..5 {
        gets.extend_from_slice(&get(
            &format!("/{index}"),
            if index == 4 {
                "Connection: close\r\n"
            } else {
                ""
            },
        ));
    }
    let bench = one_exchange("", fixed("same"), gets);
    assert_eq!(bench.responses(0, &[false; 5]).len(), 5);
    let log = bench.backends[0].borrow();
    assert_eq!(log.requests.len(), 5);
    assert_eq!(
        log.connections, 1,
        "keep-alive to the backend reuses one connection"
    );
    let report = bench.report();
    assert!(report.contains("backend_reuses=4"), "{report}");
}

#[test]
fn without_a_pool_every_request_gets_its_own_backend_connection() {
    let mut gets = Vec::new();
    for index in 0..3 {
        gets.extend_from_slice(&get(
            "/",
            if index == 2 {
                "Connection: close\r\n"
            } else {
                ""
            },
        ));
    }
    let bench = one_exchange("pool.idle=0", fixed("x"), gets);
    assert_eq!(bench.responses(0, &[false; 3]).len(), 3);
    let log = bench.backends[0].borrow();
    assert_eq!(log.connections, 3);
    assert!(
        log.requests
            .iter()
            .all(|request| request.head.contains("Connection: close"))
    );
}

#[test]
fn bodies_are_reframed_both_ways() {
    // A chunked upload reaches the backend chunked; its until-close answer reaches an
    // HTTP/1.1 client chunked, and an HTTP/1.0 client until close.
    let upload =
        b"POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                   4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nX-T: 1\r\n\r\n"
            .to_vec();
    let bench = one_exchange("", Behaviour::EchoUntilClose, upload);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses[0].body, b"abcdefg");
    assert_eq!(responses[0].header("transfer-encoding"), Some("chunked"));
    assert_eq!(bench.backends[0].borrow().requests[0].body, b"abcdefg");
    assert!(
        bench.backends[0].borrow().requests[0]
            .head
            .contains("Transfer-Encoding: chunked")
    );

    let old = b"POST /u HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let bench = one_exchange("", Behaviour::EchoChunked { piece: 2 }, old);
    let result = bench.result(0);
    assert_eq!(result.ending, Ending::Closed);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses[0].body, b"hello");
    assert_eq!(responses[0].header("transfer-encoding"), None);
    assert_eq!(responses[0].header("content-length"), None);
}

#[test]
fn a_large_body_streams_byte_exact_through_a_lossy_reordering_wire() {
    let body: Vec<u8> = (0..300_000u32)
        .map(|index| (index * 7 + index / 251) as u8)
        .collect();
    let mut request = format!(
        "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    for seed in [3, 4] {
        let impairments = Impairments {
            loss: 0.03,
            duplication: 0.01,
            reordering: 0.05,
            reorder_delay: Duration::from_millis(2),
            corruption: 0.005,
            delay: Duration::from_millis(1),
            jitter: Duration::from_micros(200),
        };
        let mut bench = Bench::new(
            seed,
            impairments,
            settings("", 1),
            vec![Behaviour::EchoChunked { piece: 4000 }],
        );
        bench.client(request.clone(), Duration::ZERO, 600 * SECOND);
        bench.run(900 * SECOND);
        let responses = bench.responses(0, &[false]);
        assert_eq!(responses[0].status, 200, "seed {seed}");
        assert!(responses[0].body == body, "seed {seed}: the body differs");
    }
}

#[test]
fn bodiless_responses_leave_the_connection_usable() {
    let mut requests = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    requests.extend_from_slice(&get("/", "Connection: close\r\n"));
    let bench = one_exchange("", fixed("twelve bytes"), requests);
    let responses = bench.responses(0, &[true, false]);
    assert_eq!(responses.len(), 2);
    assert_eq!(
        responses[0].header("content-length"),
        Some("12"),
        "HEAD keeps the length"
    );
    assert!(responses[0].body.is_empty());
    assert_eq!(responses[1].body, b"twelve bytes");

    for status in [204, 304] {
        let mut requests = get("/", "");
        requests.extend_from_slice(&get("/", "Connection: close\r\n"));
        let bench = one_exchange(
            "",
            Behaviour::Fixed {
                status,
                body: Vec::new(),
            },
            requests,
        );
        let responses = bench.responses(0, &[false, false]);
        assert_eq!(
            responses
                .iter()
                .map(|response| response.status)
                .collect::<Vec<_>>(),
            [status, status]
        );
    }
}

#[test]
fn interim_responses_are_relayed_and_expect_continue_is_answered() {
    let bench = one_exchange(
        "",
        Behaviour::InterimThenFixed {
            body: b"final".to_vec(),
        },
        get("/", "Connection: close\r\n"),
    );
    let responses = bench.responses(0, &[false]);
    assert_eq!(
        responses
            .iter()
            .map(|response| response.status)
            .collect::<Vec<_>>(),
        [103, 200]
    );
    assert_eq!(responses[0].header("link"), Some("</a>"));
    assert_eq!(responses[1].body, b"final");

    let mut bench = Bench::new(
        1,
        clean(),
        settings("", 1),
        vec![Behaviour::EchoChunked { piece: 10 }],
    );
    bench.client_with(
        vec![
            (Duration::ZERO, b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n".to_vec()),
            (Duration::from_millis(100), b"data".to_vec()),
        ],
        Duration::ZERO,
        30 * SECOND,
        false,
    );
    bench.run(60 * SECOND);
    let responses = bench.responses(0, &[false]);
    assert_eq!(
        responses
            .iter()
            .map(|response| response.status)
            .collect::<Vec<_>>(),
        [100, 200]
    );
    assert_eq!(responses[1].body, b"data");
    assert!(
        !bench.backends[0].borrow().requests[0]
            .head
            .contains("Expect")
    );
}

#[test]
fn an_upgrade_becomes_a_tunnel() {
    let mut bench = Bench::new(1, clean(), settings("", 1), vec![Behaviour::UpgradeEcho]);
    bench.client_with(
        vec![
            (
                Duration::ZERO,
                get("/ws", "Connection: Upgrade\r\nUpgrade: echo\r\n"),
            ),
            (Duration::from_millis(50), b"hello ".to_vec()),
            (Duration::from_millis(50), b"tunnel".to_vec()),
        ],
        Duration::ZERO,
        30 * SECOND,
        true,
    );
    bench.run(60 * SECOND);
    let result = bench.result(0);
    let text = String::from_utf8_lossy(&result.received).into_owned();
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("upgrade: echo\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nHELLO TUNNEL"), "{text}");
    assert_eq!(result.ending, Ending::Closed);
    let head = bench.backends[0].borrow().requests[0]
        .head
        .to_ascii_lowercase();
    assert!(
        head.contains("connection: upgrade\r\n") && head.contains("upgrade: echo\r\n"),
        "{head}"
    );
}

#[test]
fn connect_is_refused() {
    let bench = one_exchange(
        "",
        fixed("x"),
        b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n".to_vec(),
    );
    assert_eq!(bench.responses(0, &[false])[0].status, 405);
    assert!(bench.backends[0].borrow().requests.is_empty());
}

#[test]
fn smuggling_attempts_get_400_and_never_reach_a_backend() {
    let cases: Vec<(&str, &[u8], u16)> = vec![
        ("CL and TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("differing CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
        ("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\nabcde", 400),
        ("TE not chunked last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
        ("TE unknown coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("TE in 1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
        ("bad name byte", b"GET / HTTP/1.1\r\nHost: a\r\nX\x7f: 1\r\n\r\n", 400),
        ("bad chunk size", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
        ("chunk without CRLF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n", 400),
        ("no host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("not HTTP", b"HELLO\r\n\r\n", 400),
    ];
    for (name, request, status) in cases {
        let bench = one_exchange("", fixed("x"), request.to_vec());
        let result = bench.result(0);
        let responses = bench.responses(0, &[false]);
        assert_eq!(responses.len(), 1, "{name}");
        assert_eq!(responses[0].status, status, "{name}");
        assert_eq!(responses[0].header("connection"), Some("close"), "{name}");
        assert_eq!(result.ending, Ending::Closed, "{name}");
        let log = bench.backends[0].borrow();
        // A bad chunk is only seen once the head went on: the backend then gets the head but
        // never a complete request (its connection is reset).
        let complete = log.requests.len();
        assert_eq!(complete, 0, "{name}: a backend received it");
    }
}

/// The head the backend received for `request`, lower-cased.
fn backend_head(request: &[u8]) -> String {
    let bench = one_exchange("", fixed("x"), request.to_vec());
    let log = bench.backends[0].borrow();
    assert_eq!(
        log.requests.len(),
        1,
        "{}",
        String::from_utf8_lossy(request)
    );
    log.requests[0].head.to_ascii_lowercase()
}

/// Every request reaches the backend with one valid `Host` (RFC 9112 3.2): an HTTP/1.0
/// request without one gets the backend's address (nginx's `$proxy_host`), `Connection: host`
/// cannot remove it, and an absolute-form target is sent in origin form with its authority
/// as `Host` (RFC 9112 3.2.2). Before, the backend got an HTTP/1.1 request without `Host` in
/// the first two cases, and the absolute target beside the client's `Host` in the third.
#[test]
fn the_backend_always_gets_the_host_the_request_is_for() {
    let backend = support::backend_address(0).to_string();
    let head = backend_head(b"GET /old HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("get /old http/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nhost: {backend}\r\n")), "{head}");

    let head = backend_head(&get("/", "Connection: host\r\n"));
    assert!(head.contains("\r\nhost: example\r\n"), "{head}");

    let head = backend_head(
        b"GET http://Other.example:8080/p?q=1 HTTP/1.1\r\nHost: example\r\nConnection: Host\r\n\r\n",
    );
    assert!(head.starts_with("get /p?q=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: other.example:8080\r\n"), "{head}");
    assert_eq!(head.matches("host:").count(), 1, "{head}");

    let head = backend_head(b"GET http://a.example?x HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("get /?x http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nhost: a.example\r\n"), "{head}");
}

/// A `Host` (or an absolute target's authority) that is not `host[:port]` gets 400 (RFC 9110
/// 7.2, RFC 3986 3.2), and so does a target in no form the proxy forwards; each is counted.
/// Before, all of these reached the backend.
#[test]
fn a_bad_host_or_target_gets_400() {
    let bad_hosts: [&[u8]; 9] = [
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\\b\r\n\r\n",
        b"GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    let bad_targets: [&[u8]; 3] = [
        b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for (requests, counter) in [
        (&bad_hosts[..], "bad_host_requests"),
        (&bad_targets[..], "bad_target_requests"),
    ] {
        for request in requests {
            let name = String::from_utf8_lossy(request);
            let bench = one_exchange("", fixed("x"), request.to_vec());
            let responses = bench.responses(0, &[false]);
            assert_eq!(responses[0].status, 400, "{name}");
            assert!(bench.backends[0].borrow().requests.is_empty(), "{name}");
            assert_eq!(total(&bench, counter), 1, "{name}");
            assert_eq!(total(&bench, "rejected_requests"), 1, "{name}");
        }
    }
}

#[test]
fn limits_give_414_431_and_413() {
    let long_target = format!("/{}", "a".repeat(9000));
    let bench = one_exchange("", fixed("x"), get(&long_target, ""));
    assert_eq!(bench.responses(0, &[false])[0].status, 414);

    let many: String = (0..101).map(|index| format!("X-{index}: 1\r\n")).collect();
    let bench = one_exchange("", fixed("x"), get("/", &many));
    assert_eq!(bench.responses(0, &[false])[0].status, 431);

    let big = format!("X-Big: {}\r\n", "b".repeat(40_000));
    let bench = one_exchange("", fixed("x"), get("/", &big));
    assert_eq!(bench.responses(0, &[false])[0].status, 431);

    let bench = one_exchange(
        "limit.body=10",
        fixed("x"),
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890".to_vec(),
    );
    assert_eq!(bench.responses(0, &[false])[0].status, 413);
    assert!(bench.backends[0].borrow().requests.is_empty());

    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n".to_vec();
    let bench = one_exchange(
        "limit.body=10",
        Behaviour::EchoChunked { piece: 100 },
        chunked,
    );
    assert_eq!(bench.responses(0, &[false])[0].status, 413);
    assert!(
        bench.backends[0].borrow().requests.is_empty(),
        "the backend got no complete request"
    );
}

/// A refusal that comes before the client has sent its whole request still reaches the
/// client: closing with the rest unread would reset the connection, and the reset makes the
/// client's stack drop the response. Before the lingering close, a 50 KB head (past the
/// 32 KiB limit by more than one read), a 200 KB body over `limit.body` and a 200 KB body
/// for a backend that refused the connection got no response.
#[test]
fn a_refusal_reaches_a_client_still_sending_its_request() {
    let big = format!("X-Big: {}\r\n", "b".repeat(50_000));
    let bench = one_exchange("", fixed("x"), get("/", &big));
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses.len(), 1, "no response to the 50 KB head");
    assert_eq!(responses[0].status, 431);
    assert_eq!(bench.result(0).ending, Ending::Closed);

    let mut big_post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n".to_vec();
    big_post.extend(core::iter::repeat_n(b'z', 200_000));
    let bench = one_exchange("limit.body=10", fixed("x"), big_post.clone());
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses.len(), 1, "no response to the 200 KB body");
    assert_eq!(responses[0].status, 413);
    assert_eq!(bench.result(0).ending, Ending::Closed);
    assert!(bench.backends[0].borrow().requests.is_empty());

    // A backend that refuses the connection: the 502 comes before the body was read.
    let mut words = settings("retry.connect=0", 1);
    words.pool.backends[0].address.set_port(9);
    let mut bench = Bench::new(1, clean(), words, vec![fixed("x")]);
    bench.client(big_post, Duration::ZERO, 30 * SECOND);
    bench.run(60 * SECOND);
    let responses = bench.responses(0, &[false]);
    assert_eq!(
        responses.len(),
        1,
        "no response to the body a dead backend could not take"
    );
    assert_eq!(responses[0].status, 502);
    assert_eq!(bench.result(0).ending, Ending::Closed);
}

#[test]
fn backend_failures_give_502_503_and_504() {
    // Nobody listens on the backend port of host 3: refused.
    let mut words = settings("retry.connect=0", 1);
    words.pool.backends[0].address.set_port(9);
    let mut bench = Bench::new(1, clean(), words, vec![fixed("x")]);
    bench.client(get("/", ""), Duration::ZERO, 30 * SECOND);
    bench.run(60 * SECOND);
    assert_eq!(bench.responses(0, &[false])[0].status, 502);

    let bench = one_exchange("", Behaviour::Garbage, get("/", ""));
    assert_eq!(bench.responses(0, &[false])[0].status, 502);

    let bench = one_exchange("", Behaviour::CloseAtOnce, get("/", ""));
    assert_eq!(bench.responses(0, &[false])[0].status, 502);

    let bench = one_exchange("timeout.backend=2.5", Behaviour::Silent, get("/", ""));
    let result = bench.result(0);
    assert_eq!(bench.responses(0, &[false])[0].status, 504);
    let elapsed = result.finished_at.as_nanos() as f64 / 1e9;
    assert!((2.5..3.5).contains(&elapsed), "504 after {elapsed} s");

    // No backend to try (the only one drained): 503.
    let mut bench = Bench::new(1, clean(), settings("", 1), vec![fixed("x")]);
    bench.shared.health.set_drained(0, true);
    bench.client(get("/", ""), Duration::ZERO, 30 * SECOND);
    bench.run(60 * SECOND);
    assert_eq!(bench.responses(0, &[false])[0].status, 503);
    assert!(bench.report().contains(" no_backend=1 "));
}

/// Requests a client chooses, answered 501 (a stock `python3 -m http.server` to `DELETE`),
/// say nothing of the backend's health: no backend is ejected however many there are.
#[test]
fn a_client_cannot_eject_backends_with_requests_they_answer_5xx_to() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings("eject.failures=2 eject.cooloff=100", 2),
        vec![
            Behaviour::GetOnly {
                body: b"a".to_vec(),
            },
            Behaviour::GetOnly {
                body: b"b".to_vec(),
            },
        ],
    );
    for index in 0..10 {
        bench.client(
            b"DELETE / HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n".to_vec(),
            Duration::from_millis(10 * index),
            30 * SECOND,
        );
    }
    for index in 0..4 {
        bench.client(
            get("/", "Connection: close\r\n"),
            SECOND + Duration::from_millis(10 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    for client in 0..10 {
        assert_eq!(bench.responses(client, &[false])[0].status, 501);
    }
    for client in 10..14 {
        assert_eq!(
            bench.responses(client, &[false])[0].status,
            200,
            "client {client}"
        );
    }
    assert_eq!(bench.shared.health.history(0).1, 0, "backend 0 was ejected");
    assert_eq!(bench.shared.health.history(1).1, 0, "backend 1 was ejected");
}

/// Statuses listed in `eject.statuses` do count; even so no more than the pool's share is
/// ejected (one of two at the default 50 %), and the capped ejection is counted.
#[test]
fn chosen_statuses_eject_but_never_more_than_the_share_of_the_pool() {
    let answer_503 = Behaviour::Fixed {
        status: 503,
        body: b"busy".to_vec(),
    };
    let mut bench = Bench::new(
        1,
        clean(),
        settings(
            "eject.failures=1 eject.cooloff=100 eject.statuses=502,503,504 balance=rr",
            2,
        ),
        vec![answer_503.clone(), answer_503],
    );
    for index in 0..4 {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(100 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    for client in 0..4 {
        assert_eq!(bench.responses(client, &[false])[0].status, 503);
    }
    let ejections = bench.shared.health.history(0).1 + bench.shared.health.history(1).1;
    assert_eq!(ejections, 1, "both backends of two were ejected");
    assert!(total(&bench, "ejections_capped") >= 1, "{}", bench.report());
}

/// Failures that always count (closed before an answer) on both backends of two: only one
/// is ejected, the other keeps its place.
#[test]
fn never_more_than_the_share_of_a_pool_is_ejected() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings(
            "eject.failures=1 eject.cooloff=100 balance=rr retry.connect=0 retry.sent=0",
            2,
        ),
        vec![Behaviour::CloseAtOnce, Behaviour::CloseAtOnce],
    );
    for index in 0..4 {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(100 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    let ejections = bench.shared.health.history(0).1 + bench.shared.health.history(1).1;
    assert_eq!(ejections, 1, "both backends of two were ejected");
}

/// A pool whose every backend is ejected still sends requests to the least recently
/// failed one instead of answering 503 until the cool-off ends.
#[test]
fn an_ejected_pool_still_serves() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings("eject.failures=1 eject.cooloff=100", 1),
        vec![Behaviour::FixedExceptClose {
            body: b"back".to_vec(),
        }],
    );
    bench.client(
        get("/close", "Connection: close\r\n"),
        Duration::ZERO,
        30 * SECOND,
    );
    bench.client(get("/", "Connection: close\r\n"), SECOND, 30 * SECOND);
    bench.run(60 * SECOND);
    assert_eq!(bench.responses(0, &[false])[0].status, 502);
    assert_eq!(
        bench.shared.health.history(0).1,
        1,
        "the backend was ejected"
    );
    let second = &bench.responses(1, &[false])[0];
    assert_eq!((second.status, second.body.as_slice()), (200, &b"back"[..]));
    assert!(
        bench.report().contains(" last_resort_attempts=1 "),
        "{}",
        bench.report()
    );
}

/// A request that makes backends close without answering (nginx's `return 444`) is sent at
/// most `retry.sent + 2` times (one free resend for the keep-alive race), not on every idle
/// pooled connection of every backend; the failures count against the backends.
#[test]
fn a_request_backends_close_on_is_not_resent_on_every_pooled_connection() {
    let behaviour = Behaviour::FixedExceptClose {
        body: b"ok".to_vec(),
    };
    let mut bench = Bench::new(
        1,
        clean(),
        settings("balance=rr pool.idle=16", 2),
        vec![behaviour.clone(), behaviour],
    );
    // Eight concurrent keep-alive clients leave several idle connections to each backend.
    for _ in 0..8 {
        bench.client(get("/", ""), Duration::ZERO, 2 * SECOND);
    }
    bench.client(get("/close", ""), 3 * SECOND, 30 * SECOND);
    bench.run(60 * SECOND);
    let pooled: usize = bench
        .backends
        .iter()
        .map(|log| log.borrow().connections)
        .sum();
    assert!(pooled >= 6, "only {pooled} backend connections were pooled");
    assert_eq!(bench.responses(8, &[false])[0].status, 502);
    let sent: usize = bench
        .backends
        .iter()
        .map(|log| {
            log.borrow()
                .requests
                .iter()
                .filter(|request| request.head.starts_with("GET /close "))
                .count()
        })
        .sum();
    assert!(sent <= 3, "the request was sent {sent} times");
}

#[test]
fn a_backend_that_times_out_on_a_pooled_connection_is_not_asked_twice() {
    let mut requests = get("/", "");
    requests.extend_from_slice(&get("/silent", ""));
    let mut bench = Bench::new(
        1,
        clean(),
        settings("timeout.backend=2", 1),
        vec![Behaviour::FixedExceptSilent {
            body: b"first".to_vec(),
        }],
    );
    bench.client(requests, Duration::ZERO, 30 * SECOND);
    bench.run(60 * SECOND);
    let result = bench.result(0);
    let responses = bench.responses(0, &[false, false]);
    assert_eq!(
        responses
            .iter()
            .map(|response| response.status)
            .collect::<Vec<_>>(),
        [200, 504]
    );
    let elapsed = result.finished_at.as_nanos() as f64 / 1e9;
    assert!(
        (2.0..3.0).contains(&elapsed),
        "504 after {elapsed} s (timeout 2 s)"
    );
    let log = bench.backends[0].borrow();
    assert_eq!(log.requests.len(), 2, "the silent request was sent once");
    assert_eq!(
        log.connections, 1,
        "the second request went on the pooled connection"
    );
}

/// `Transfer-Encoding: gzip, chunked` ends with chunked, so the body is chunked (RFC 9112 6.3
/// item 4 reads until close only when chunked is not final): the response ends at its last
/// chunk and the backend connection carries the next request. The gzip coding goes on to an
/// HTTP/1.1 client; an HTTP/1.0 client cannot be sent a transfer coding (RFC 9112 6.1) and
/// gets a 502. Before, the proxy waited for the backend to close (it never did).
#[test]
fn a_coding_before_chunked_is_framed_as_chunked_and_passed_on() {
    let coded = b"\x1f\x8b coded".to_vec();
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
    response.extend_from_slice(format!("{:x}\r\n", coded.len()).as_bytes());
    response.extend_from_slice(&coded);
    response.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut bench = Bench::new(
        1,
        clean(),
        settings("", 1),
        vec![Behaviour::Raw { response }],
    );
    let mut requests = get("/1", "");
    requests.extend(get("/2", "Connection: close\r\n"));
    bench.client(requests, Duration::ZERO, 30 * SECOND);
    bench.client(
        b"GET /old HTTP/1.0\r\n\r\n".to_vec(),
        2 * SECOND,
        30 * SECOND,
    );
    bench.run(60 * SECOND);
    assert_eq!(bench.result(0).ending, Ending::Closed);
    let responses = bench.responses(0, &[false, false]);
    assert_eq!(responses.len(), 2);
    for response in &responses {
        assert_eq!(response.status, 200);
        assert_eq!(response.header("transfer-encoding"), Some("gzip, chunked"));
        assert_eq!(response.body, coded);
    }
    let log = bench.backends[0].borrow();
    assert_eq!(log.requests[0].connection, log.requests[1].connection);
    let old = bench.responses(1, &[false]);
    assert_eq!(old[0].status, 502);
}

/// A `gzip, chunked` response cannot go to an HTTP/1.0 client (it cannot be told of a
/// transfer coding, RFC 9112 6.1), so the proxy answers 502; but the client chose its HTTP
/// version, and the same response is relayed to an HTTP/1.1 client: the backend is not
/// charged, however many such requests come. Only `chunked, gzip` (chunked not final, a
/// framing no client can be sent) says the backend is broken.
#[test]
fn an_http_1_0_client_cannot_eject_a_backend_whose_response_it_cannot_be_sent() {
    let coded = b"\x1f\x8b coded".to_vec();
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
    response.extend_from_slice(format!("{:x}\r\n", coded.len()).as_bytes());
    response.extend_from_slice(&coded);
    response.extend_from_slice(b"\r\n0\r\n\r\n");
    let mut bench = Bench::new(
        1,
        clean(),
        settings("eject.failures=2 eject.cooloff=100", 1),
        vec![Behaviour::Raw { response }],
    );
    for index in 0..3 {
        bench.client(
            b"GET /old HTTP/1.0\r\n\r\n".to_vec(),
            Duration::from_millis(100 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    for client in 0..3 {
        assert_eq!(bench.responses(client, &[false])[0].status, 502);
    }
    assert_eq!(
        bench.shared.health.history(0),
        (0, 0),
        "the backend was charged"
    );
    assert_eq!(total(&bench, "unframeable_responses"), 3);
    assert_eq!(total(&bench, "backend_failures"), 0);

    // `chunked, gzip` is broken framing whoever asks: charged to the backend.
    let broken = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz".to_vec();
    let mut bench = Bench::new(
        1,
        clean(),
        settings("eject.failures=2 eject.cooloff=100", 1),
        vec![Behaviour::Raw { response: broken }],
    );
    for index in 0..2 {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(100 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    for client in 0..2 {
        assert_eq!(bench.responses(client, &[false])[0].status, 502);
    }
    assert_eq!(
        bench.shared.health.history(0).1,
        1,
        "the backend was not ejected"
    );
    assert_eq!(total(&bench, "backend_failures"), 2);
}

/// A backend that answers before it has read the request body (a stock `python3 -m
/// http.server` answers POST 501) and then stops reading: the proxy's write of the body
/// fails (here it times out), but the answer is there, so the client gets the backend's 501
/// (with `Connection: close`), not a 502, and the backend is not charged (nginx relays such
/// an early response too). Before, the failed write was a backend failure: 502, and an
/// ejection.
#[test]
fn an_answer_sent_before_the_body_was_read_reaches_the_client() {
    let body = vec![b'p'; 1 << 20];
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: example\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut bench = Bench::new(
        1,
        clean(),
        settings("eject.failures=1 eject.cooloff=100 timeout.backend=2", 1),
        vec![Behaviour::AnswerBeforeBodyThenStall { status: 501 }],
    );
    bench.client(request, Duration::ZERO, 30 * SECOND);
    bench.run(60 * SECOND);
    let result = bench.result(0);
    let text = String::from_utf8_lossy(&result.received);
    assert!(
        text.starts_with("HTTP/1.1 501 "),
        "the client got {:?}",
        &text[..text.len().min(200)]
    );
    assert!(
        text.to_ascii_lowercase().contains("connection: close\r\n"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\nnope"), "{text}");
    // The rest of the body was read and discarded before the close: no reset under the answer.
    assert_eq!(result.ending, Ending::Closed);
    assert_eq!(
        bench.shared.health.history(0),
        (0, 0),
        "the backend was charged"
    );
    assert_eq!(total(&bench, "backend_failures"), 0);
}

#[test]
fn a_body_cut_off_by_the_backend_is_never_presented_as_complete() {
    for behaviour in [
        Behaviour::ResetMidBody { sent: 5000 },
        Behaviour::CloseMidBody { sent: 5000 },
    ] {
        let bench = one_exchange("", behaviour.clone(), get("/", ""));
        let result = bench.result(0);
        assert_eq!(result.ending, Ending::Reset, "{behaviour:?}");
        let text = String::from_utf8_lossy(&result.received);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 100000\r\n"));
        assert!(result.received.len() < 100_000);
        assert!(bench.report().contains("truncated_responses=1"));
    }
}

/// A response whose body stalls longer than `timeout.backend` (a slow stream, server-sent
/// events) is cut off, but, like a backend that does not answer in time at all, that
/// counts against the backend only when 504 is in `eject.statuses`: the URL may just be
/// slow. Before, every mid-body stall was a failure, so a slow URL ejected backends.
#[test]
fn a_body_that_stalls_mid_way_counts_only_as_a_504_would() {
    for (statuses, ejected) in [("", 0), ("eject.statuses=504", 1)] {
        let bench = one_exchange(
            &format!("eject.failures=1 eject.cooloff=100 timeout.backend=10 {statuses}"),
            Behaviour::SlowChunks {
                pieces: 3,
                every: 15 * SECOND,
            },
            get("/events", ""),
        );
        assert_eq!(bench.result(0).ending, Ending::Reset, "{statuses}");
        assert_eq!(total(&bench, "truncated_responses"), 1, "{statuses}");
        assert_eq!(
            bench.shared.health.history(0).1,
            ejected,
            "ejections with {statuses:?}"
        );
    }
}

/// The value of `field` in the report's total line.
fn total(bench: &Bench, field: &str) -> u64 {
    bench.total(field)
}

/// A head trickled one byte per segment is parsed once, when its end has arrived: each read
/// scans only its new bytes for the end. Before, every read parsed the whole head again (a
/// 3 KB head cost about 3000 parses, quadratic in its length).
#[test]
fn a_trickled_head_is_parsed_once() {
    let filler = format!("X-Filler: {}\r\n", "f".repeat(3000));
    let head = get("/", &filler);
    let trickle: Vec<(Duration, Vec<u8>)> = head
        .iter()
        .map(|&byte| (Duration::from_millis(1), vec![byte]))
        .collect();
    let mut bench = Bench::new(1, clean(), settings("", 1), vec![fixed("x")]);
    bench.client_with(trickle, Duration::ZERO, 60 * SECOND, true);
    bench.run(60 * SECOND);
    let responses = bench.responses(0, &[false]);
    assert_eq!(responses[0].status, 200);
    assert_eq!(total(&bench, "requests"), 1);
    assert_eq!(total(&bench, "request_head_parses"), 1);
}

#[test]
fn slow_and_idle_clients_are_timed_out() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings("timeout.header=2 timeout.client=5", 1),
        vec![fixed("x")],
    );
    // Slowloris: a head trickled a byte a second never completes in the header timeout.
    let trickle: Vec<(Duration, Vec<u8>)> = b"GET / HTTP/1.1\r\nHost: a\r\n"
        .iter()
        .map(|&byte| (SECOND, vec![byte]))
        .collect();
    bench.client_with(trickle, Duration::ZERO, 60 * SECOND, false);
    // Idle: connects and says nothing.
    bench.client_with(Vec::new(), Duration::ZERO, 60 * SECOND, false);
    bench.run(120 * SECOND);
    let slow = bench.result(0);
    assert!(
        String::from_utf8_lossy(&slow.received).starts_with("HTTP/1.1 408 "),
        "{slow:?}"
    );
    let elapsed = slow.finished_at.as_nanos() as f64 / 1e9;
    assert!((2.5..4.5).contains(&elapsed), "408 after {elapsed} s");
    let idle = bench.result(1);
    assert_eq!(idle.ending, Ending::Closed);
    assert!(idle.received.is_empty());
    let elapsed = idle.finished_at.as_nanos() as f64 / 1e9;
    assert!(
        (5.0..6.0).contains(&elapsed),
        "idle close after {elapsed} s"
    );
}

fn distribution(words: &str, backends: usize, clients: usize) -> Vec<usize> {
    let mut bench = Bench::new(
        1,
        clean(),
        settings(words, backends),
        (0..backends).map(|_| fixed("x")).collect(),
    );
    for index in 0..clients {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(10 * index as u64),
            30 * SECOND,
        );
    }
    bench.run(600 * SECOND);
    for client in 0..clients {
        assert_eq!(bench.responses(client, &[false])[0].status, 200);
    }
    bench
        .backends
        .iter()
        .map(|log| log.borrow().requests.len())
        .collect()
}

#[test]
fn each_balancing_algorithm_spreads_requests() {
    assert_eq!(distribution("balance=rr", 3, 30), [10, 10, 10]);
    let mut bench_words = settings("balance=wrr", 2);
    bench_words.pool.backends[0].weight = 3;
    let mut bench = Bench::new(1, clean(), bench_words, vec![fixed("x"), fixed("x")]);
    for index in 0..40 {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(10 * index),
            30 * SECOND,
        );
    }
    bench.run(600 * SECOND);
    let counts: Vec<usize> = bench
        .backends
        .iter()
        .map(|log| log.borrow().requests.len())
        .collect();
    assert_eq!(counts, [30, 10]);
    // Sequential requests: nothing in progress, so leastconn takes turns.
    assert_eq!(distribution("balance=leastconn", 3, 30), [10, 10, 10]);
    let p2c = distribution("balance=p2c", 3, 60);
    assert!(p2c.iter().all(|&count| count >= 10), "{p2c:?}");
    // One client address: the hash sends every request to one backend.
    let hash = distribution("balance=hash", 3, 12);
    assert_eq!(
        hash.iter().filter(|&&count| count > 0).count(),
        1,
        "{hash:?}"
    );
}

#[test]
fn health_checks_take_a_dead_backend_out_and_clients_see_no_error() {
    let mut bench = Bench::new(
        1,
        clean(),
        settings(
            "health=http:/health health.interval=0.5 health.fall=2 health.rise=2 health.timeout=0.2",
            2,
        ),
        vec![Behaviour::CloseAtOnce, fixed("alive")],
    );
    // Let the checks notice: 2 failed probes 0.5 s apart.
    bench.run_for(3 * SECOND);
    for index in 0..10 {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(10 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    for client in 0..10 {
        let responses = bench.responses(client, &[false]);
        assert_eq!(responses[0].status, 200);
        assert_eq!(responses[0].body, b"alive");
    }
    assert_eq!(bench.shared.health.history(0).0, 1, "one transition: down");
    assert!(bench.report().contains("health_transitions=1"));
}

#[test]
fn a_failed_connect_is_retried_on_another_backend() {
    let mut words = settings("balance=rr", 2);
    words.pool.backends[0].address.set_port(9);
    let mut bench = Bench::new(1, clean(), words, vec![fixed("x"), fixed("second")]);
    for index in 0..4 {
        bench.client(
            get("/", "Connection: close\r\n"),
            Duration::from_millis(10 * index),
            30 * SECOND,
        );
    }
    bench.run(60 * SECOND);
    for client in 0..4 {
        assert_eq!(bench.responses(client, &[false])[0].body, b"second");
    }
    assert!(bench.report().contains("retries="), "{}", bench.report());
}

#[test]
fn many_short_connections_all_complete_through_an_impaired_wire() {
    let impairments = Impairments {
        loss: 0.02,
        duplication: 0.01,
        reordering: 0.05,
        reorder_delay: Duration::from_millis(3),
        corruption: 0.0,
        delay: Duration::from_millis(1),
        jitter: Duration::ZERO,
    };
    let mut bench = Bench::new(
        9,
        impairments,
        settings("", 2),
        vec![fixed("one"), fixed("two")],
    );
    for index in 0..200 {
        bench.client(
            get(&format!("/{index}"), "Connection: close\r\n"),
            Duration::from_millis(5 * index),
            120 * SECOND,
        );
    }
    bench.run(900 * SECOND);
    for client in 0..200 {
        let responses = bench.responses(client, &[false]);
        assert_eq!(responses[0].status, 200, "client {client}");
        assert!(responses[0].body == b"one" || responses[0].body == b"two");
    }
}

/// A stack whose connection table holds `connections` (every host of the bench).
fn small_table(connections: usize) -> TcpConfig {
    TcpConfig {
        max_connections: connections,
        ..TcpConfig::default()
    }
}

/// Idle clients that fill the proxy's connection table make its backend connects fail with
/// `LimitReached`: that is the proxy's own exhaustion, answered 503 under its own reason, and
/// never charged to the backend, which serves again as soon as the flood is gone.
#[test]
fn the_proxy_s_own_exhaustion_is_not_blamed_on_the_backends() {
    let mut bench = Bench::with_tcp_config(
        1,
        clean(),
        small_table(3),
        settings("eject.failures=1 eject.cooloff=100", 1),
        vec![fixed("alive")],
    );
    // Two idle clients hold two of the proxy's three connections for 5 s.
    for _ in 0..2 {
        bench.client_with(Vec::new(), Duration::ZERO, 5 * SECOND, false);
    }
    // The third's request leaves no room for a backend connection.
    bench.client(get("/", "Connection: close\r\n"), SECOND, 30 * SECOND);
    bench.client(get("/", "Connection: close\r\n"), 10 * SECOND, 30 * SECOND);
    bench.run(60 * SECOND);
    assert_eq!(bench.responses(2, &[false])[0].status, 503);
    assert_eq!(
        bench.shared.health.history(0),
        (0, 0),
        "the backend was charged"
    );
    let after = &bench.responses(3, &[false])[0];
    assert_eq!((after.status, after.body.as_slice()), (200, &b"alive"[..]));
    let report = bench.report();
    assert!(
        report.contains(" local_connect_failures_connection_limit=1 "),
        "{report}"
    );
    assert!(report.contains(" no_backend=0 "), "{report}");
}

/// A health probe that cannot be made because the proxy's own table is full says nothing of
/// the backend: its health stays as it was.
#[test]
fn a_probe_failing_for_a_local_reason_leaves_health_alone() {
    let mut bench = Bench::with_tcp_config(
        1,
        clean(),
        small_table(2),
        settings(
            "health=tcp health.interval=0.5 health.fall=1 health.timeout=0.2",
            1,
        ),
        vec![fixed("alive")],
    );
    for _ in 0..2 {
        bench.client_with(Vec::new(), Duration::ZERO, 5 * SECOND, false);
    }
    bench.run_for(4 * SECOND);
    assert!(bench.shared.health.is_up(0));
    assert_eq!(bench.shared.health.history(0), (0, 0));
    assert!(
        total(&bench, "local_probe_failures") >= 1,
        "{}",
        bench.report()
    );
}
