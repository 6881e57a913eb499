//! The reverse proxy end to end: the image proxies for real backends (nginx from Debian, and a small Python server where a test needs a misbehaving one) that run in the guest's network namespace at 10.77.0.1, loaded by curl, ab and nc from the same namespace.

mod guest;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use guest::backend::Backend;
use guest::{
    CoreCounters, GUEST, Guest, NAMESPACE_COUNTER, PEER, SERVICES, check_ab, sha256_of_file,
};

const PROXY_PORT: u16 = 8080;

/// The proxy's counters from `GET /stats` (`proxy core=<i> name=value ...`), one per core
/// and the total last.
fn proxy_counters(guest: &Guest) -> Vec<CoreCounters> {
    let text = guest.expect_shell(
        &format!("curl -sS --max-time 10 http://{GUEST}/stats"),
        Duration::from_secs(20),
    );
    text.lines()
        .filter_map(|line| line.strip_prefix("proxy "))
        .map(CoreCounters::parse)
        .collect()
}

/// The network counters' total line.
fn network_total(guest: &Guest) -> CoreCounters {
    guest
        .statistics()
        .into_iter()
        .find(|counters| counters.core == "total")
        .expect("a total line")
}

fn boot_proxy(cpus: u32, words: &str) -> Guest {
    let line = format!("{SERVICES} proxy={PROXY_PORT} {words}");
    let guest = Guest::boot_custom(cpus, None, &line, &[]);
    let ready = guest
        .output()
        .lines()
        .find(|line| line.contains("unisock: ready"))
        .map(str::to_string)
        .expect("the ready line");
    let backends = words
        .split_whitespace()
        .find_map(|word| word.strip_prefix("backends="))
        .map_or(0, |list| list.split(',').count());
    assert!(
        ready.contains(&format!("proxy={PROXY_PORT} backends={backends}")),
        "{ready}"
    );
    guest
}

fn curl_through_proxy(guest: &Guest, path: &str) -> String {
    guest.expect_shell(
        &format!("curl -sS --max-time 20 http://{GUEST}:{PROXY_PORT}{path}"),
        Duration::from_secs(30),
    )
}

/// Every core served both legs of its own requests, and software Receive Flow Deliver
/// handed no segment between cores: the NIC's steering put every backend reply on the
/// core that opened the connection.
fn check_locality(guest: &Guest, cpus: u32) {
    let total = network_total(guest);
    let proxy = proxy_counters(guest);
    for core in &proxy[..cpus as usize] {
        println!(
            "core {}: requests={} backend_connects={} backend_reuses={}",
            core.core,
            core.get("requests"),
            core.get("backend_connects"),
            core.get("backend_reuses")
        );
        assert!(
            core.get("requests") > 0,
            "core {} proxied nothing",
            core.core
        );
        assert!(
            core.get("backend_connects") > 0,
            "core {} opened no backend connection",
            core.core
        );
    }
    println!(
        "rfd_forwarded={} rfd_local={} arp_copies_sent={}",
        total.get("rfd_forwarded"),
        total.get("rfd_local"),
        total.get("arp_copies_sent")
    );
    assert_eq!(
        total.get("rfd_forwarded"),
        0,
        "segments were handed between cores"
    );
}

fn big_file(directory: &Path, bytes: u64) -> PathBuf {
    std::fs::create_dir_all(directory).unwrap();
    let path = directory.join("big");
    let status = Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(&path).expect("cannot create the file"))
        .status()
        .expect("cannot run head");
    assert!(status.success());
    path
}

#[test]
fn two_cpus_proxy_for_nginx_byte_exact_locally_and_survive_a_dead_backend() {
    let cpus = 2;
    let guest = boot_proxy(
        cpus,
        &format!(
            "backends={PEER}:8081,{PEER}:8082 health=http:/health health.interval=0.5 health.fall=2"
        ),
    );
    let files = Backend::scratch_directory("files");
    let big = big_file(&files, 100 << 20);
    let expected = sha256_of_file(&big);
    let nginx_a = Backend::nginx(&guest, 8081, &files);
    let mut nginx_b = Backend::nginx(&guest, 8082, &files);

    // The health checks began before the backends listened, so both may have gone down
    // (503, correctly) and each comes back only after `health.rise` good probes: ask until
    // both have answered (or give up). Once one is up, no client may see an error.
    let mut answers: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let both_answered = |answers: &[String]| {
        answers.iter().any(|answer| answer == "nginx-8081\n")
            && answers.iter().any(|answer| answer == "nginx-8082\n")
    };
    while Instant::now() < deadline && !both_answered(&answers) {
        answers.push(curl_through_proxy(&guest, "/"));
        thread::sleep(Duration::from_millis(100));
    }
    let first_served = answers
        .iter()
        .position(|answer| answer.starts_with("nginx-"))
        .unwrap_or(answers.len());
    assert!(
        answers[..first_served]
            .iter()
            .all(|answer| answer == "503 Service Unavailable\n"),
        "{answers:?}"
    );
    assert!(
        answers[first_served..]
            .iter()
            .all(|answer| answer == "nginx-8081\n" || answer == "nginx-8082\n"),
        "{answers:?}"
    );
    assert!(both_answered(&answers), "{answers:?}");

    let started = Instant::now();
    let digest = guest.expect_shell(
        &format!("curl -sS --max-time 240 http://{GUEST}:{PROXY_PORT}/files/big | sha256sum"),
        Duration::from_secs(270),
    );
    println!(
        "100 MiB through the proxy in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(digest.split_whitespace().next(), Some(expected.as_str()));

    check_ab(
        &guest,
        &format!("http://{GUEST}:{PROXY_PORT}/"),
        3000,
        16,
        Duration::from_secs(300),
    );
    check_locality(&guest, cpus);

    // Smuggling: refused with 400 by the proxy, never seen by a backend.
    let seen_before = nginx_a.requests_seen() + nginx_b.requests_seen();
    let reply = guest.expect_shell(
        &format!(
            "printf 'POST / HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: 4\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\nGET /smuggled HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n' | nc -N -w 10 {GUEST} {PROXY_PORT}"
        ),
        Duration::from_secs(20),
    );
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    assert!(!reply.contains("nginx-"), "{reply}");
    assert_eq!(
        nginx_a.requests_seen() + nginx_b.requests_seen(),
        seen_before
    );

    // A backend dies: once the checks notice (2 failures 0.5 s apart), no client sees an error.
    nginx_b.stop();
    thread::sleep(Duration::from_secs(3));
    let served_by_a = nginx_a.requests_seen();
    check_ab(
        &guest,
        &format!("http://{GUEST}:{PROXY_PORT}/"),
        500,
        8,
        Duration::from_secs(120),
    );
    assert!(nginx_a.requests_seen() >= served_by_a + 500);
}

#[test]
fn four_cpus_keep_both_legs_of_every_request_on_one_core() {
    let cpus = 4;
    let guest = boot_proxy(cpus, &format!("backends={PEER}:8081"));
    let files = Backend::scratch_directory("files");
    let _nginx = Backend::nginx(&guest, 8081, &files);
    check_ab(
        &guest,
        &format!("http://{GUEST}:{PROXY_PORT}/"),
        3000,
        32,
        Duration::from_secs(300),
    );
    check_locality(&guest, cpus);
}

#[test]
fn uploads_stream_byte_exact_and_dead_or_silent_backends_give_503_and_504() {
    let guest = boot_proxy(
        2,
        &format!(
            "backends={PEER}:8083 limit.body=209715200 timeout.backend=3 health=http:/health health.interval=0.5 health.fall=2 admin={ADMIN_PORT}"
        ),
    );
    let mut python = Backend::python(&guest, 8083);
    let upload_directory = Backend::scratch_directory("upload");
    let upload = big_file(&upload_directory, 100 << 20);
    let expected = sha256_of_file(&upload);
    let started = Instant::now();
    let reply = guest.expect_shell(
        &format!(
            "curl -sS --max-time 240 -H 'Transfer-Encoding: chunked' -T {} http://{GUEST}:{PROXY_PORT}/upload",
            upload.display()
        ),
        Duration::from_secs(270),
    );
    println!(
        "100 MiB chunked upload through the proxy in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(reply, format!("{} {expected}\n", 100 << 20));

    let started = Instant::now();
    let (status, sockets) = thread::scope(|scope| {
        let silent = scope.spawn(|| {
            guest.expect_shell(
                &format!("curl -s -o /dev/null -w '%{{http_code}}' --max-time 30 http://{GUEST}:{PROXY_PORT}/silent"),
                Duration::from_secs(40),
            )
        });
        // While the backend sits on the request, the listing joins its two legs.
        thread::sleep(Duration::from_millis(1000));
        let sockets = admin(&guest, "", "/sockets");
        (silent.join().expect("the /silent request"), sockets)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let joined: Vec<&str> = sockets
        .lines()
        .filter(|line| line.contains("client->backend=") && line.contains(&format!("{PEER}:8083")))
        .collect();
    println!("joined legs while /silent waited: {joined:?}");
    assert_eq!(joined.len(), 1, "{sockets}");
    assert!(
        sockets.lines().any(|line| line.contains("backend<-client=") && line.contains(&format!("{PEER}:8083"))),
        "{sockets}"
    );
    println!("504 after {elapsed:.2} s");
    assert_eq!(status, "504");
    assert!(
        (2.0..=4.5).contains(&elapsed),
        "504 after {elapsed} s (timeout 3 s)"
    );

    python.stop();
    thread::sleep(Duration::from_secs(3));
    let status = guest.expect_shell(
        &format!(
            "curl -s -o /dev/null -w '%{{http_code}}' --max-time 30 http://{GUEST}:{PROXY_PORT}/"
        ),
        Duration::from_secs(40),
    );
    assert_eq!(status, "503");
}

const ADMIN_PORT: u16 = 9000;
const TOKEN: &str = "e2e-admin-token-0123456789";

fn admin(guest: &Guest, options: &str, path: &str) -> String {
    guest.expect_shell(
        &format!("curl -sS --max-time 10 {options} http://{GUEST}:{ADMIN_PORT}{path}"),
        Duration::from_secs(20),
    )
}

fn admin_status(guest: &Guest, options: &str, path: &str) -> String {
    admin(
        guest,
        &format!("-o /dev/null -w '%{{http_code}}' {options}"),
        path,
    )
}

fn put_config(guest: &Guest, text: &str) -> String {
    let file = guest::ScratchFile(std::env::temp_dir().join(format!(
        "unisock-e2e-config-{}-{}.toml",
        std::process::id(),
        NAMESPACE_COUNTER.fetch_add(1, Ordering::SeqCst)
    )));
    std::fs::write(&file.0, text).unwrap();
    admin(
        guest,
        &format!(
            "-X PUT --data-binary @{} -H 'Authorization: Bearer {TOKEN}'",
            file.0.display()
        ),
        "/config",
    )
}

/// The admin API from the namespace: metrics and sockets answer; the configuration needs the
/// token; a `PUT /config` that adds a backend during an ab run loses nothing and the new
/// backend serves; a drained core stops serving and its share moves to the other one with zero
/// errors; an address outside the allow-list gets 403.
#[test]
fn the_admin_api_reconfigures_and_drains_cores_without_an_error() {
    let cpus = 2;
    let guest = boot_proxy(
        cpus,
        &format!("backends={PEER}:8081 admin={ADMIN_PORT} admin.token={TOKEN}"),
    );
    let files = Backend::scratch_directory("files");
    let nginx_a = Backend::nginx(&guest, 8081, &files);
    let nginx_b = Backend::nginx(&guest, 8082, &files);

    let metrics = admin(&guest, "", "/metrics");
    assert!(
        metrics.contains("# TYPE unisock_rfd_forwarded_segments_total counter"),
        "{metrics}"
    );
    assert!(
        metrics.contains("unisock_proxy_requests_total{core=\"0\",listener=\"8080\"}"),
        "{metrics}"
    );
    let sockets = admin(&guest, "", "/sockets");
    assert!(
        sockets.contains(&format!("LISTEN 0.0.0.0:{PROXY_PORT}")),
        "{sockets}"
    );
    let json = admin(&guest, "", "/sockets?format=json");
    assert!(json.starts_with("{\"sockets\":["), "{json}");
    assert_eq!(admin_status(&guest, "", "/config"), "403");
    // No other spelling reaches what the token guards.
    assert_eq!(admin_status(&guest, "", "/config/"), "404");
    assert_eq!(admin_status(&guest, "", "//config"), "404");
    assert_eq!(admin_status(&guest, "", "/config?format=toml"), "403");
    assert_eq!(
        admin_status(
            &guest,
            "-H 'Authorization: Bearer wrong-token-0123456'",
            "/config"
        ),
        "403"
    );
    let file = admin(
        &guest,
        &format!("-H 'Authorization: Bearer {TOKEN}'"),
        "/config",
    );
    assert!(file.contains("[[listener]]"), "{file}");

    // Add backend B while ab runs.
    let two_backends = file.replace(
        &format!("backends = [\"{PEER}:8081\"]"),
        &format!("backends = [\"{PEER}:8081\", \"{PEER}:8082\"]"),
    );
    assert_ne!(two_backends, file);
    let seen_by_b = nginx_b.requests_seen();
    thread::scope(|scope| {
        let load = scope.spawn(|| {
            check_ab(
                &guest,
                &format!("http://{GUEST}:{PROXY_PORT}/"),
                12000,
                16,
                Duration::from_secs(300),
            )
        });
        thread::sleep(Duration::from_millis(700));
        let answer = put_config(&guest, &two_backends);
        println!("PUT /config: {answer}");
        assert!(answer.contains("applied_cores=2/2"), "{answer}");
        assert!(answer.contains("pool default changed"), "{answer}");
        let result = load.join().expect("ab under reconfiguration");
        assert!(
            result.complete as f64 / result.per_second > 0.9,
            "ab ended before the change: make it longer"
        );
    });
    assert!(
        nginx_b.requests_seen() > seen_by_b,
        "the added backend served nothing"
    );
    let again = admin(
        &guest,
        &format!("-H 'Authorization: Bearer {TOKEN}'"),
        "/config",
    );
    assert_eq!(again, two_backends, "GET /config returns what was put");

    // Drain core 1: the other core takes all of it, with no error.
    let drained = admin(
        &guest,
        &format!("-X POST -H 'Authorization: Bearer {TOKEN}'"),
        "/cores/1/drain",
    );
    assert!(drained.contains("drained"), "{drained}");
    thread::sleep(Duration::from_millis(500));
    let before = proxy_counters(&guest);
    check_ab(
        &guest,
        &format!("http://{GUEST}:{PROXY_PORT}/"),
        1000,
        8,
        Duration::from_secs(300),
    );
    let after = proxy_counters(&guest);
    let served = |counters: &[CoreCounters], core: usize| counters[core].get("requests");
    println!(
        "while core 1 was drained: core 0 served {}, core 1 served {}",
        served(&after, 0) - served(&before, 0),
        served(&after, 1) - served(&before, 1)
    );
    assert_eq!(
        served(&after, 1),
        served(&before, 1),
        "the drained core served"
    );
    assert!(served(&after, 0) >= served(&before, 0) + 1000);
    let fallbacks = network_total(&guest).get("global_listener_fallbacks");
    assert!(fallbacks > 0, "no SYN went through the global listener");
    admin(
        &guest,
        &format!("-X POST -H 'Authorization: Bearer {TOKEN}'"),
        "/cores/1/enable",
    );

    // A file that would refuse the address sending it is itself refused.
    let lock_out = two_backends.replace(
        &format!("port = {ADMIN_PORT}\n"),
        &format!("port = {ADMIN_PORT}\nallow = [\"10.99.0.0/16\"]\n"),
    );
    assert_ne!(lock_out, two_backends);
    let answer = put_config(&guest, &lock_out);
    assert!(answer.contains("`admin.allow`"), "{answer}");
    // An allow-list of the peer's address alone: another address of the namespace gets 403.
    let narrow = two_backends.replace(
        &format!("port = {ADMIN_PORT}\n"),
        &format!("port = {ADMIN_PORT}\nallow = [\"{PEER}\"]\n"),
    );
    let answer = put_config(&guest, &narrow);
    assert!(answer.contains("admin changed"), "{answer}");
    guest.expect_shell(
        "ip addr add 10.77.0.3/24 dev unisock0",
        Duration::from_secs(10),
    );
    assert_eq!(
        admin_status(&guest, "--interface 10.77.0.3", "/metrics"),
        "403"
    );
    assert_eq!(admin_status(&guest, "", "/metrics"), "200");
    drop(nginx_a);
}

/// `GET /metrics` (the responder's port): its head and body, the body a text exposition.
fn scrape_metrics(guest: &Guest) -> (String, String) {
    let text = guest.expect_shell(
        &format!("curl -sS -D - --max-time 10 http://{GUEST}/metrics"),
        Duration::from_secs(20),
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// The value of the series written exactly as `series` (name and labels as rendered).
fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{exposition}"))
}

/// `promtool check metrics` (Debian's `prometheus` package) on `exposition`.
fn check_with_promtool(exposition: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run promtool (cargo xtask install-deps installs Debian's prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_pass_promtool_and_move_with_the_requests_proxied() {
    let guest = boot_proxy(2, &format!("backends={PEER}:8081"));
    let files = Backend::scratch_directory("files");
    let _nginx = Backend::nginx(&guest, 8081, &files);
    assert_eq!(curl_through_proxy(&guest, "/"), "nginx-8081\n");

    let (head, before) = scrape_metrics(&guest);
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    check_with_promtool(&before);
    let requests = 200;
    check_ab(
        &guest,
        &format!("http://{GUEST}:{PROXY_PORT}/"),
        requests,
        8,
        Duration::from_secs(300),
    );
    let (_, after) = scrape_metrics(&guest);
    check_with_promtool(&after);

    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    let client = |name: &str, extra: &str| {
        format!("{name}{{core=\"total\",listener=\"{PROXY_PORT}\"{extra}}}")
    };
    let backend = |name: &str, extra: &str| {
        format!(
            "{name}{{core=\"total\",listener=\"{PROXY_PORT}\",pool=\"default\",backend=\"{PEER}:8081\"{extra}}}"
        )
    };
    let requests = f64::from(requests);
    assert_eq!(moved(&client("unisock_proxy_requests_total", "")), requests);
    assert_eq!(
        moved(&client("unisock_proxy_responses_total", ",class=\"2xx\"")),
        requests
    );
    assert_eq!(
        moved(&client("unisock_proxy_request_duration_seconds_count", "")),
        requests
    );
    assert_eq!(
        moved(&backend(
            "unisock_proxy_backend_responses_total",
            ",class=\"2xx\""
        )),
        requests
    );
    assert_eq!(
        moved(&backend(
            "unisock_proxy_backend_response_latency_seconds_count",
            ""
        )),
        requests
    );
    assert!(moved(&backend("unisock_proxy_backend_received_bytes_total", "")) > 0.0);
    assert!(moved("unisock_tcp_passive_opens_total{core=\"total\"}") >= requests);
    assert!(moved("unisock_nic_received_frames_total{core=\"total\"}") > 0.0);
    assert_eq!(
        sample(
            &after,
            "unisock_proxy_backend_up{pool=\"default\",backend=\"10.77.0.1:8081\"}"
        ),
        1.0
    );
    let used = sample(&after, "unisock_heap_used_bytes");
    assert!(used > 0.0 && used < sample(&after, "unisock_heap_capacity_bytes"));
    // Every core's series and the total agree.
    let per_core: f64 = (0..2)
        .map(|core| {
            sample(
                &after,
                &format!(
                    "unisock_proxy_requests_total{{core=\"{core}\",listener=\"{PROXY_PORT}\"}}"
                ),
            )
        })
        .sum();
    assert_eq!(
        per_core,
        sample(&after, &client("unisock_proxy_requests_total", ""))
    );

    // /stats's memory line, for the soak test that reads it.
    let stats = guest.expect_shell(
        &format!("curl -sS --max-time 10 http://{GUEST}/stats"),
        Duration::from_secs(20),
    );
    let memory = stats
        .lines()
        .find(|line| line.starts_with("memory "))
        .expect("a memory line");
    let words: Vec<&str> = memory.split(' ').collect();
    assert_eq!(words.len(), 3, "{memory}");
    assert!(
        words[1]
            .strip_prefix("heap_used_bytes=")
            .is_some_and(|value| value.parse::<u64>().is_ok()),
        "{memory}"
    );
    assert!(
        words[2]
            .strip_prefix("heap_capacity_bytes=")
            .is_some_and(|value| value.parse::<u64>().is_ok()),
        "{memory}"
    );
}

fn config_file_of(text: &str) -> guest::ScratchFile {
    let file = guest::ScratchFile(std::env::temp_dir().join(format!(
        "unisock-e2e-boot-config-{}-{}.toml",
        std::process::id(),
        NAMESPACE_COUNTER.fetch_add(1, Ordering::SeqCst)
    )));
    std::fs::write(&file.0, text).unwrap();
    file
}

fn ready_line(guest: &Guest) -> String {
    guest
        .output()
        .lines()
        .find(|line| line.contains("unisock: ready"))
        .map(str::to_string)
        .expect("the ready line")
}

/// The configuration file as a boot module (`-initrd`) and through fw_cfg: two listeners with
/// their own pools both proxy. And `GET /config` of a guest configured by words alone, given
/// back to a guest as its only configuration, gives the same configuration.
#[test]
fn a_configuration_file_runs_two_listeners_and_get_config_boots_the_same() {
    let file = format!(
        "[admin]\nport = {ADMIN_PORT}\ntoken = \"{TOKEN}\"\n\n\
         [[listener]]\nport = {PROXY_PORT}\npool = \"a\"\n\n\
         [[listener]]\nport = 8090\npool = \"b\"\ntimeout.client = 5\n\n\
         [pool.a]\nbackends = [\"{PEER}:8081\"]\n\n\
         [pool.b]\nbackends = [\"{PEER}:8082\"]\nbalance = \"leastconn\"\n"
    );
    let file = config_file_of(&file);
    let files = Backend::scratch_directory("files");
    for option in ["--config", "--config-fw-cfg"] {
        let guest = Guest::boot_custom(2, None, SERVICES, &[option, file.0.to_str().unwrap()]);
        let ready = ready_line(&guest);
        assert!(
            ready.ends_with(&format!(
                "proxy={PROXY_PORT} backends=1 listeners=2 admin={ADMIN_PORT}"
            )),
            "{option}: {ready}"
        );
        let _a = Backend::nginx(&guest, 8081, &files);
        let _b = Backend::nginx(&guest, 8082, &files);
        assert_eq!(curl_through_proxy(&guest, "/"), "nginx-8081\n", "{option}");
        let second = guest.expect_shell(
            &format!("curl -sS --max-time 20 http://{GUEST}:8090/"),
            Duration::from_secs(30),
        );
        assert_eq!(second, "nginx-8082\n", "{option}");
        let written = admin(
            &guest,
            &format!("-H 'Authorization: Bearer {TOKEN}'"),
            "/config",
        );
        assert!(written.contains("[pool.b]"), "{written}");
    }

    let words = format!(
        "{SERVICES} proxy={PROXY_PORT} backends={PEER}:8081*3,{PEER}:8082 balance=wrr \
         timeout.connect=1.25 health=tcp admin={ADMIN_PORT} admin.token={TOKEN} accesslog=console \
         accesslog.sample=7"
    );
    let by_words = Guest::boot_custom(2, None, &words, &[]);
    let written = admin(
        &by_words,
        &format!("-H 'Authorization: Bearer {TOKEN}'"),
        "/config",
    );
    // The boot log prints the command line, never the token (issue 28, item 8).
    let console = by_words.output();
    assert!(
        !console.contains(TOKEN),
        "the token is on the console:\n{console}"
    );
    assert!(console.contains("admin.token=<redacted>"), "{console}");
    drop(by_words);
    assert!(written.contains("timeout.connect = 1.25"), "{written}");
    let written_file = config_file_of(&written);
    let by_file = Guest::boot_custom(
        2,
        None,
        SERVICES,
        &["--config", written_file.0.to_str().unwrap()],
    );
    let again = admin(
        &by_file,
        &format!("-H 'Authorization: Bearer {TOKEN}'"),
        "/config",
    );
    assert_eq!(
        again, written,
        "the file from GET /config boots the same configuration"
    );
}
