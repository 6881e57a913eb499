//! The network tests' guest: the image booted by `qemu/net-run` on a multi-queue tap inside a private network namespace, the Linux tools run in that namespace, and the guest's counters (`GET /stats`). Nothing is ever sent to an address outside it: the peer is 10.77.0.1, the guest 10.77.0.2.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use unisock_e2e::{artifact, repository_root};

pub mod backend;

/// The guest's address.
pub const GUEST: &str = "10.77.0.2";
/// The namespace's own address (its side of the tap), where the tests' backends listen.
pub const PEER: &str = "10.77.0.1";
/// The services every guest runs unless a test says otherwise.
pub const SERVICES: &str = "responder=80 sink=9001 source=9002";

/// One guest at a time: TCG wants the CPU, and each test owns its namespace anyway.
static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());
pub static NAMESPACE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A booted guest in its own namespace; dropping it stops QEMU and removes the namespaces,
/// whether the test passed or not.
pub struct Guest {
    pub namespace: String,
    child: Child,
    output: Arc<Mutex<String>>,
    _serial: MutexGuard<'static, ()>,
}

impl Guest {
    pub fn boot(cpus: u32, impairment: Option<&str>) -> Guest {
        Guest::boot_with(cpus, impairment, &[])
    }

    /// `boot` with more `qemu/net-run` options.
    pub fn boot_with(cpus: u32, impairment: Option<&str>, options: &[&str]) -> Guest {
        Guest::boot_custom(cpus, impairment, SERVICES, options)
    }

    /// `boot_with`, with `words` on the command line instead of [`SERVICES`].
    pub fn boot_custom(
        cpus: u32,
        impairment: Option<&str>,
        words: &str,
        options: &[&str],
    ) -> Guest {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
        assert!(
            root,
            "the network tests need root: they make network namespaces and taps"
        );
        let serial = ONE_GUEST_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remove_namespaces_of_dead_runs();
        let namespace = format!(
            "unisock-e2e-{}-{}",
            std::process::id(),
            NAMESPACE_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut command = Command::new(repository_root().join("qemu/net-run"));
        command
            .args(["--name", &namespace, "--smp", &cpus.to_string()])
            .arg("--kernel")
            .arg(artifact("unisock.elf"))
            .args(["--cmdline", words])
            .env("UNISOCK_NET_IMPAIR", env!("CARGO_BIN_EXE_net-impair"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(rules) = impairment {
            command.args(["--impair", rules]);
        }
        command.args(options);
        let mut child = command.spawn().expect("cannot start qemu/net-run");
        let output = Arc::new(Mutex::new(String::new()));
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let output = output.clone();
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut text = output
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                    let _ = sender.send(line);
                }
            });
        }
        drop(sender);
        let guest = Guest {
            namespace,
            child,
            output,
            _serial: serial,
        };
        guest.wait_for_ready(&lines, cpus);
        guest
    }

    fn wait_for_ready(&self, lines: &Receiver<String>, cpus: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("unisock: ready") => {
                    let expected = format!("cpus={cpus} ip={GUEST} queues={cpus}");
                    assert!(line.contains(&expected), "{line}\n{}", self.output());
                    return;
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no ready line:\n{}", self.output()),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "qemu/net-run ended before the ready line:\n{}",
                        self.output()
                    )
                }
            }
        }
    }

    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Runs `script` with bash inside the namespace, under a time limit.
    pub fn shell(&self, script: &str, limit: Duration) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.namespace, "timeout"])
            .arg(limit.as_secs().to_string())
            .args(["bash", "-o", "pipefail", "-c", script])
            .output()
            .expect("cannot run ip netns exec")
    }

    /// Like `shell`, but the command must succeed; returns its stdout.
    pub fn expect_shell(&self, script: &str, limit: Duration) -> String {
        let output = self.shell(script, limit);
        assert!(
            output.status.success(),
            "`{script}` failed ({}):\n{}{}\nguest console:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.output()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The guest's per-core counters (`GET /stats`'s `core=` lines): one map per core, then
    /// the total. The other lines (`proxy ...`, `memory ...`, `nic ...`) are left out.
    pub fn statistics(&self) -> Vec<CoreCounters> {
        let text = self.expect_shell(
            &format!("curl -sS --max-time 10 http://{GUEST}/stats"),
            Duration::from_secs(20),
        );
        text.lines()
            .filter(|line| line.starts_with("core="))
            .map(CoreCounters::parse)
            .collect()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        // SIGTERM lets qemu/net-run's trap remove its namespaces; SIGKILL if it hangs.
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        for namespace in [format!("{}-wire", self.namespace), self.namespace.clone()] {
            let _ = Command::new("ip")
                .args(["netns", "del", &namespace])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Removes the namespaces of earlier test processes that were killed before they could (a
/// name holds the test process's id: `unisock-e2e-<pid>-<n>`, `...-wire`).
fn remove_namespaces_of_dead_runs() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("unisock-e2e-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// One line of `/stats`: `core=<i|total> name=value ...`.
pub struct CoreCounters {
    pub core: String,
    pub values: Vec<(String, u64)>,
}

impl CoreCounters {
    pub fn parse(line: &str) -> CoreCounters {
        let mut core = String::new();
        let mut values = Vec::new();
        for word in line.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if key == "core" {
                core = value.to_string();
            } else if let Ok(number) = value.parse() {
                values.push((key.to_string(), number));
            }
        }
        CoreCounters { core, values }
    }

    pub fn get(&self, name: &str) -> u64 {
        self.values
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("no counter {name} for core {}", self.core))
    }
}

/// What `ab` reports.
pub struct Benchmark {
    pub complete: u64,
    pub failed: u64,
    pub non_2xx: u64,
    pub per_second: f64,
}

pub fn run_ab(
    guest: &Guest,
    url: &str,
    requests: u32,
    concurrency: u32,
    limit: Duration,
) -> Benchmark {
    let text = guest.expect_shell(
        &format!("ab -q -r -s 30 -n {requests} -c {concurrency} {url}"),
        limit,
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
    };
    let number = |name: &str| {
        field(name)
            .unwrap_or_else(|| panic!("ab printed no {name:?}:\n{text}"))
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("ab's {name:?} is not a number:\n{text}"))
    };
    Benchmark {
        complete: number("Complete requests:") as u64,
        failed: number("Failed requests:") as u64,
        non_2xx: field("Non-2xx responses:").map_or(0, |value| value.parse().unwrap_or(u64::MAX)),
        per_second: number("Requests per second:"),
    }
}

/// `ab` on `url` (short connections, no keep-alive); every request must succeed with a 2xx.
pub fn check_ab(
    guest: &Guest,
    url: &str,
    requests: u32,
    concurrency: u32,
    limit: Duration,
) -> Benchmark {
    let started = Instant::now();
    let result = run_ab(guest, url, requests, concurrency, limit);
    println!(
        "ab -n {requests} -c {concurrency}: {} complete, {} failed, {} non-2xx, {:.0} connections/s ({:.1} s)",
        result.complete,
        result.failed,
        result.non_2xx,
        result.per_second,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(result.complete, u64::from(requests));
    assert_eq!(result.failed, 0, "failed requests");
    assert_eq!(result.non_2xx, 0, "non-2xx responses");
    result
}

/// A scratch file that is removed however the test ends.
pub struct ScratchFile(pub PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn sha256_of_file(path: &std::path::Path) -> String {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("cannot run sha256sum");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum printed nothing")
        .to_string()
}

/// A program run in the guest's namespace, in a process group of its own; dropping it kills
/// the group (the program and anything it started), however the test ends.
pub struct NamespaceProcess {
    child: Child,
}

impl NamespaceProcess {
    pub fn spawn(command: &mut Command) -> NamespaceProcess {
        let child = command
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start a program in the namespace");
        NamespaceProcess { child }
    }

    pub fn stop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for NamespaceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `GET http://<PEER>:<port>/health` answers from the namespace.
pub fn wait_for_health(guest: &Guest, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let output = guest.shell(
            &format!("curl -s -o /dev/null --max-time 2 http://{PEER}:{port}/health"),
            Duration::from_secs(5),
        );
        if output.status.success() {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("the backend on port {port} never listened");
}

/// tests/scripts/http-backend.py on `PEER:port` in the guest's namespace, once it answers
/// `/health`; its request log (one line per request) goes to `log`.
pub fn python_backend(guest: &Guest, port: u16, log: Stdio) -> NamespaceProcess {
    let backend = NamespaceProcess::spawn(
        Command::new("ip")
            .args(["netns", "exec", &guest.namespace, "python3"])
            .arg(repository_root().join("tests/scripts/http-backend.py"))
            .args([PEER, &port.to_string()])
            .stdout(log)
            .stderr(Stdio::null()),
    );
    wait_for_health(guest, port);
    backend
}
