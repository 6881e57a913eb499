//! Backends found by name, end to end (issue 24): dnsmasq (Debian's, the DNS server libvirt and OpenStack run) in the guest's namespace serves `web.unisock.test` (A) and `_http._tcp.unisock.test` (SRV); the image boots with `backends=<name> resolvers=10.77.0.1`, and curl through the proxy gets nginx's answer; a change of the SRV record's port is followed within its TTL; when dnsmasq stops, the last answer stays in force and `/metrics` says it is stale.

mod guest;

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use guest::backend::Backend;
use guest::{GUEST, Guest, NamespaceProcess, PEER, SERVICES};

const PROXY_PORT: u16 = 8080;

/// dnsmasq on `PEER:53` in the guest's namespace, answering only for `unisock.test` from
/// its command line (no /etc/hosts, no upstream, no configuration file), with a 2 s TTL.
fn dnsmasq(guest: &Guest, directory: &Path, srv_port: u16) -> NamespaceProcess {
    let process = NamespaceProcess::spawn(
        Command::new("ip")
            .args(["netns", "exec", &guest.namespace, "dnsmasq"])
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--user=root",
                &format!("--listen-address={PEER}"),
                "--bind-interfaces",
                "--port=53",
                "--local-ttl=2",
                "--local=/unisock.test/",
                &format!("--host-record=web.unisock.test,{PEER}"),
                &format!("--srv-host=_http._tcp.unisock.test,web.unisock.test,{srv_port},0,100"),
            ])
            .arg(format!(
                "--pid-file={}",
                directory.join("dnsmasq.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // dnsmasq answers as soon as its socket is bound; an A query from the namespace says so.
    let probe = directory.join("probe.py");
    std::fs::write(
        &probe,
        format!(
            "import socket\n\
             query = b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00' \\\n\
                 + b'\\x03web\\x07unisock\\x04test\\x00\\x00\\x01\\x00\\x01'\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.settimeout(1)\n\
             s.sendto(query, ('{PEER}', 53))\n\
             print(len(s.recv(512)))\n"
        ),
    )
    .expect("cannot write the DNS probe");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let output = guest.shell(
            &format!("python3 {}", probe.display()),
            Duration::from_secs(5),
        );
        if output.status.success() {
            return process;
        }
        thread::sleep(Duration::from_millis(200));
    }
    panic!("dnsmasq never answered");
}

/// `curl http://GUEST:PROXY_PORT/` until it answers `expected` (the resolver asks again every
/// 5 s until its first answer), or panics after `limit`.
fn wait_for_answer(guest: &Guest, expected: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        last = guest
            .shell(
                &format!("curl -s --max-time 5 http://{GUEST}:{PROXY_PORT}/"),
                Duration::from_secs(10),
            )
            .stdout
            .iter()
            .map(|&byte| byte as char)
            .collect();
        if last.trim() == expected {
            return;
        }
        thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "no `{expected}` through the proxy (last: {last:?}):\n{}",
        guest.output()
    );
}

fn metrics(guest: &Guest) -> String {
    guest.expect_shell(
        &format!("curl -s --max-time 10 http://{GUEST}:80/metrics"),
        Duration::from_secs(20),
    )
}

/// The interface the issue names: `backends=web.unisock.test:9001` on the command line is a
/// backend the resolver finds.
#[test]
fn a_backend_named_on_the_command_line_is_resolved_and_served() {
    let guest = Guest::boot_custom(
        1,
        None,
        &format!("{SERVICES} proxy={PROXY_PORT} backends=web.unisock.test:9001 resolvers={PEER}"),
        &[],
    );
    let files = Backend::scratch_directory("files");
    let _nginx = Backend::nginx(&guest, 9001, &files);
    let directory = Backend::scratch_directory("dnsmasq");
    let _dns = dnsmasq(&guest, &directory, 9001);
    wait_for_answer(&guest, "nginx-9001", Duration::from_secs(60));
    // Every request after the first answer is served.
    let statuses = guest.expect_shell(
        &format!(
            "for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 10 \
             http://{GUEST}:{PROXY_PORT}/; done"
        ),
        Duration::from_secs(120),
    );
    assert!(statuses.lines().all(|status| status == "200"), "{statuses}");
    let metrics = metrics(&guest);
    assert!(
        metrics
            .contains("unisock_dns_addresses{pool=\"default\",name=\"web.unisock.test:9001\"} 1"),
        "{metrics}"
    );
}

/// SRV: the record's port is used, a change of it is followed within the TTL, and a silent
/// resolver leaves the last answer in force (said in `/metrics` and on the console).
#[test]
fn an_srv_backend_follows_its_record_and_outlives_its_resolver() {
    let guest = Guest::boot_custom(
        1,
        None,
        &format!("{SERVICES} proxy={PROXY_PORT} backends=_http._tcp.unisock.test resolvers={PEER}"),
        &[],
    );
    let files = Backend::scratch_directory("files");
    let _first = Backend::nginx(&guest, 9201, &files);
    let _second = Backend::nginx(&guest, 9202, &files);
    let directory = Backend::scratch_directory("dnsmasq");
    let mut dns = dnsmasq(&guest, &directory, 9201);
    wait_for_answer(&guest, "nginx-9201", Duration::from_secs(60));

    // The record moves to 9202: within the TTL floor (5 s) and a round trip, every request
    // goes there, and none failed on the way.
    dns.stop();
    let _dns = dnsmasq(&guest, &directory, 9202);
    wait_for_answer(&guest, "nginx-9202", Duration::from_secs(15));

    // dnsmasq stops: the answer in force stays.
    drop(_dns);
    thread::sleep(Duration::from_secs(12));
    let statuses = guest.expect_shell(
        &format!("for i in $(seq 10); do curl -s --max-time 10 http://{GUEST}:{PROXY_PORT}/; done"),
        Duration::from_secs(120),
    );
    assert!(
        statuses.lines().all(|line| line == "nginx-9202"),
        "{statuses}"
    );
    let metrics = metrics(&guest);
    assert!(
        metrics.contains(
            "unisock_dns_serving_stale{pool=\"default\",name=\"_http._tcp.unisock.test\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        guest
            .output()
            .contains("keeping the last good answer (1 addresses)"),
        "{}",
        guest.output()
    );
}
