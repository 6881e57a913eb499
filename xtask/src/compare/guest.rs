//! The systems `bench compare` measures, each booted by `qemu/net-run` in the bench's network
//! namespace, and the host CPU time of their QEMU threads.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::Failure;

/// The guest's address and the host side's (the namespace end of the tap), as net-run sets them.
pub const GUEST_ADDRESS: &str = "10.77.0.2";
pub const PEER_ADDRESS: &str = "10.77.0.1";
/// The port the backend nginx listens on, on the namespace side.
pub const BACKEND_PORT: u16 = 8080;

/// One system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    UnisockResponder,
    UnisockProxy,
    NginxStatic,
    NginxProxy,
    HaproxyProxy,
}

impl System {
    pub const ALL: [System; 5] = [
        System::UnisockResponder,
        System::UnisockProxy,
        System::NginxStatic,
        System::NginxProxy,
        System::HaproxyProxy,
    ];

    /// The name in the `bench-compare:` lines.
    pub fn name(self) -> &'static str {
        match self {
            System::UnisockResponder => "unisock-responder",
            System::UnisockProxy => "unisock-proxy",
            System::NginxStatic => "nginx-static",
            System::NginxProxy => "nginx-proxy",
            System::HaproxyProxy => "haproxy-proxy",
        }
    }

    pub fn is_unisock(self) -> bool {
        matches!(self, System::UnisockResponder | System::UnisockProxy)
    }

    /// Whether `/large` answers 16 KiB (the responder answers every path with its small body).
    pub fn serves_large_body(self) -> bool {
        self != System::UnisockResponder
    }

    /// The Linux system this one is compared with in the ratios.
    pub fn baselines(self) -> &'static [System] {
        match self {
            System::UnisockResponder => &[System::NginxStatic],
            System::UnisockProxy => &[System::NginxProxy, System::HaproxyProxy],
            _ => &[],
        }
    }

    /// Whether it forwards to the backend (then it is booted once per backend connection
    /// policy: see [`BackendConnections`]).
    pub fn is_proxy(self) -> bool {
        matches!(
            self,
            System::UnisockProxy | System::NginxProxy | System::HaproxyProxy
        )
    }

    /// The guest's command line after net-run's `ip=` and `gw=`.
    fn command_line(self, backend: BackendConnections) -> String {
        let backends = format!("backends={PEER_ADDRESS}:{BACKEND_PORT}");
        // qemu/linux-guest's word for pooled backend connections (nginx `keepalive`,
        // HAProxy `http-reuse always`); without it, a connection per request.
        let linux_keepalive = match backend {
            BackendConnections::PerRequest => "",
            BackendConnections::KeepAlive => " backend-keepalive",
        };
        match self {
            System::UnisockResponder => "responder=80".into(),
            // docs/proxy.md: pool.idle=0 is a new backend connection per request; with
            // keep-alive, room for every connection wrk keeps open (64) on one core.
            System::UnisockProxy => match backend {
                BackendConnections::PerRequest => format!("proxy=80 {backends} pool.idle=0"),
                BackendConnections::KeepAlive => format!("proxy=80 {backends} pool.idle=128"),
            },
            System::NginxStatic => "console=ttyS0 quiet guest=nginx-static".into(),
            System::NginxProxy => {
                format!("console=ttyS0 quiet guest=nginx-proxy {backends}{linux_keepalive}")
            }
            System::HaproxyProxy => {
                format!("console=ttyS0 quiet guest=haproxy-proxy {backends}{linux_keepalive}")
            }
        }
    }

    /// Whether a console line says the service is up.
    fn ready(self, line: &str) -> bool {
        match self {
            System::UnisockResponder => line.contains("unisock: ready"),
            // The proxy's ready line names its port (`proxy=<port> backends=<n>`).
            System::UnisockProxy => line.contains("unisock: ready") && line.contains(" proxy="),
            _ => line.contains("linux-guest: ready"),
        }
    }
}

/// How a proxy connects to its backend: the same for all three proxies in a boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendConnections {
    /// A new backend connection per request (the `Connection: close` and ab figures).
    PerRequest,
    /// Idle backend connections kept and reused (the keep-alive figure: both legs pooled).
    KeepAlive,
}

/// Why a boot gave no running system.
#[derive(Debug)]
pub enum BootFailure {
    /// The image does not have the feature (e.g. no `proxy=` yet): skip, never guess.
    Unsupported(String),
    /// Anything else: the bench fails.
    Failed(Failure),
}

/// What boots a system: the same QEMU, accelerator, CPU model, memory and tap for all.
pub struct Machine<'a> {
    pub root: &'a Path,
    pub namespace: &'a str,
    pub memory: &'a str,
    pub cpu_model: &'a str,
    pub unisock_image: &'a Path,
    pub linux_kernel: &'a Path,
    pub linux_initrd: &'a Path,
    pub log_directory: &'a Path,
    /// More QEMU options for every boot (the profiler's gdbstub socket).
    pub qemu_arguments: &'a [String],
}

/// A booted guest; dropping it stops QEMU and net-run removes the namespace.
pub struct Guest {
    child: Child,
    pub qemu_pid: u32,
    pub log: PathBuf,
}

impl Machine<'_> {
    /// Boots `system` on `vcpus` vCPUs (one queue pair each); `on_namespace` runs once the
    /// namespace exists, before the guest is up (the bench starts the backend there).
    pub fn boot(
        &self,
        system: System,
        backend: BackendConnections,
        vcpus: u32,
        qemu_name: &str,
        on_namespace: &mut dyn FnMut() -> Result<(), Failure>,
    ) -> Result<Guest, BootFailure> {
        let log = self.log_directory.join(format!("{qemu_name}.log"));
        let log_file = fs::File::create(&log).map_err(|error| {
            BootFailure::Failed(Failure(format!("cannot create {}: {error}", log.display())))
        })?;
        let mut command = Command::new(self.root.join("qemu/net-run"));
        command
            .args(["--name", self.namespace])
            .args(["--smp", &vcpus.to_string()])
            .args(["--memory", self.memory])
            .args(["--cpu", self.cpu_model])
            .args(["--cmdline", &system.command_line(backend)]);
        if system.is_unisock() {
            command.arg("--kernel").arg(self.unisock_image);
        } else {
            command.arg("--kernel").arg(self.linux_kernel);
            command.arg("--initrd").arg(self.linux_initrd);
        }
        command
            .args(["--", "-name", &format!("{qemu_name},debug-threads=on")])
            .args(self.qemu_arguments)
            .stdin(Stdio::null())
            .stdout(
                log_file
                    .try_clone()
                    .map_err(|e| BootFailure::Failed(Failure(e.to_string())))?,
            )
            .stderr(log_file)
            // Its own process group, so that stopping it reaches QEMU too.
            .process_group(0);
        let child = command.spawn().map_err(|error| {
            BootFailure::Failed(Failure(format!("cannot run qemu/net-run: {error}")))
        })?;
        let mut guest = Guest {
            child,
            qemu_pid: 0,
            log,
        };
        guest.wait_for(Duration::from_secs(20), |line| {
            line.starts_with("net-run: namespace")
        })?;
        on_namespace().map_err(BootFailure::Failed)?;
        // A Linux guest boots in seconds under TCG, the image in well under one.
        let ready = guest.wait_for(Duration::from_secs(90), |line| system.ready(line));
        if let Err(BootFailure::Failed(Failure(message))) = &ready
            && system == System::UnisockProxy
        {
            if let Some(line) = message.lines().find(|line| line.contains("unknown word")) {
                return Err(BootFailure::Unsupported(format!(
                    "the image does not accept proxy= (its console: {})",
                    line.trim()
                )));
            }
            if message.contains("unisock: ready") {
                return Err(BootFailure::Unsupported(
                    "the image booted but its ready line has no proxy=".into(),
                ));
            }
        }
        ready?;
        guest.qemu_pid = find_qemu(qemu_name).ok_or_else(|| {
            BootFailure::Failed(Failure(format!("no QEMU process named {qemu_name}")))
        })?;
        Ok(guest)
    }
}

impl Guest {
    /// Waits until a line of the console log satisfies `ready`; fails with the log when QEMU
    /// ends first or the time is up.
    fn wait_for(
        &mut self,
        limit: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> Result<(), BootFailure> {
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if text.lines().any(&ready) {
                return Ok(());
            }
            let ended = matches!(self.child.try_wait(), Ok(Some(_)));
            if ended || start.elapsed() > limit || text.contains("linux-guest: error") {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(BootFailure::Failed(Failure(format!(
                    "the guest did not come up ({}; log {}):\n{}",
                    if ended { "QEMU ended" } else { "timed out" },
                    self.log.display(),
                    tail.join("\n")
                ))));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU time used so far by QEMU's threads.
    pub fn cpu(&self) -> QemuCpu {
        qemu_cpu(self.qemu_pid)
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        // QEMU may have ended already (a guest that failed to boot).
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// The pid of the QEMU started with `-name <name>,...`.
fn find_qemu(name: &str) -> Option<u32> {
    let wanted = format!("{name},debug-threads=on");
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let command_line = fs::read(entry.path().join("cmdline")).ok()?;
        let mut words = command_line.split(|byte| *byte == 0);
        let program = words.next()?;
        (program.ends_with(b"qemu-system-x86_64") && words.any(|word| word == wanted.as_bytes()))
            .then_some(pid)
    })
}

/// Host CPU seconds of a QEMU process, by thread role (`-name ...,debug-threads=on` names
/// the vCPU threads `CPU <n>/TCG`; without vhost-net the main thread runs the main loop, which
/// does all virtio-net packet work).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QemuCpu {
    pub vcpus: f64,
    pub io_thread: f64,
    pub other: f64,
}

impl std::ops::Sub for QemuCpu {
    type Output = QemuCpu;
    fn sub(self, earlier: QemuCpu) -> QemuCpu {
        QemuCpu {
            vcpus: self.vcpus - earlier.vcpus,
            io_thread: self.io_thread - earlier.io_thread,
            other: self.other - earlier.other,
        }
    }
}

/// The scheduler's clock ticks per second (`getconf CLK_TCK`; 100 on Linux/x86_64).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8_lossy(&output.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, utime + stime in ticks) of a `/proc/.../stat` line. The comm is in parentheses and
/// may hold spaces and parentheses itself, so fields are counted after the last `)`.
pub fn parse_stat(line: &str) -> Option<(&str, u64, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = &line[open + 1..close];
    let fields: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // Field 3 (state) is index 0: utime is field 14, stime 15, cutime 16, cstime 17.
    let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let children = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some((comm, own, children))
}

fn qemu_cpu(pid: u32) -> QemuCpu {
    let ticks = clock_ticks();
    let mut cpu = QemuCpu::default();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return cpu;
    };
    for task in tasks.flatten() {
        let Ok(line) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((comm, own, _)) = parse_stat(&line) else {
            continue;
        };
        let seconds = own as f64 / ticks;
        let tid: Option<u32> = task.file_name().to_str().and_then(|name| name.parse().ok());
        if comm.starts_with("CPU ") {
            cpu.vcpus += seconds;
        } else if tid == Some(pid) {
            cpu.io_thread += seconds;
        } else {
            cpu.other += seconds;
        }
    }
    cpu
}

/// CPU seconds of this process's waited-for children (the load generators: `ip netns exec`
/// executes wrk or ab in place, and we wait for each).
pub fn children_cpu() -> f64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|line| parse_stat(&line).map(|(_, _, children)| children))
        .map_or(0.0, |ticks| ticks as f64 / clock_ticks())
}

/// CPU seconds of the processes whose pids are given (the backend's nginx master and workers).
pub fn processes_cpu(pids: &[u32]) -> f64 {
    let ticks = clock_ticks();
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|line| parse_stat(&line).map(|(_, own, _)| own))
        .map(|own| own as f64 / ticks)
        .sum()
}

/// The pid and the children of `parent` (nginx's workers).
pub fn process_and_children(parent: u32) -> Vec<u32> {
    let mut pids = vec![parent];
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
                continue;
            };
            let parent_pid = status
                .lines()
                .find_map(|line| line.strip_prefix("PPid:"))
                .and_then(|value| value.trim().parse::<u32>().ok());
            if parent_pid == Some(parent) {
                pids.push(pid);
            }
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_name() {
        let line = "4242 (CPU 0/TCG) S 1 4242 4242 0 -1 4194368 100 0 0 0 250 75 3 4 20 0 3 0 1000";
        assert_eq!(parse_stat(line), Some(("CPU 0/TCG", 325, 7)));
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0";
        assert_eq!(parse_stat(odd), Some(("a) b", 3, 7)));
        assert_eq!(parse_stat("7 (short) R 1"), None);
    }

    #[test]
    fn every_system_has_its_ready_line() {
        assert!(System::UnisockResponder.ready("unisock: ready cpus=2 ip=10.77.0.2 queues=2"));
        // The proxy counts as up only when the image says it serves the proxy.
        assert!(!System::UnisockProxy.ready("unisock: ready cpus=2 ip=10.77.0.2 queues=2"));
        assert!(
            System::UnisockProxy
                .ready("unisock: ready cpus=2 ip=10.77.0.2 queues=2 proxy=80 backends=1")
        );
        assert!(System::NginxStatic.ready("linux-guest: ready guest=nginx-static cpus=2"));
        assert!(!System::NginxStatic.ready("linux-guest: error no eth0"));
    }

    #[test]
    fn every_proxy_gets_the_same_backend_connection_policy() {
        use BackendConnections::*;
        assert!(
            System::UnisockProxy
                .command_line(PerRequest)
                .ends_with(" pool.idle=0")
        );
        assert!(
            System::UnisockProxy
                .command_line(KeepAlive)
                .ends_with(" pool.idle=128")
        );
        for linux in [System::NginxProxy, System::HaproxyProxy] {
            assert!(!linux.command_line(PerRequest).contains("backend-keepalive"));
            assert!(
                linux
                    .command_line(KeepAlive)
                    .ends_with(" backend-keepalive")
            );
        }
        assert_eq!(
            System::ALL
                .iter()
                .filter(|system| system.is_proxy())
                .count(),
            3
        );
    }

    #[test]
    fn the_names_are_the_interface_names() {
        let names: Vec<&str> = System::ALL.iter().map(|system| system.name()).collect();
        assert_eq!(
            names,
            [
                "unisock-responder",
                "unisock-proxy",
                "nginx-static",
                "nginx-proxy",
                "haproxy-proxy"
            ]
        );
    }
}
