//! `cargo xtask bench compare`: Unisock against nginx and HAProxy in a Linux guest, booted one
//! after the other in the same QEMU (accelerator, CPU model, vCPUs, memory, multi-queue
//! virtio-net tap in a namespace), loaded by the same wrk and ab from the namespace, with the
//! same nginx backend behind the proxies; rounds interleaved, medians and spread, plots and the
//! BENCHMARKS.md section written from the measurements.

mod backend;
mod gdb_remote;
mod guest;
mod load;
mod plots;
pub mod profile;
mod report;
mod statistics;
mod targets;

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Failure, Step};
use backend::Backend;
use guest::{
    BackendConnections, BootFailure, GUEST_ADDRESS, Machine, QemuCpu, System, children_cpu,
};
use load::{AbResult, Connections, LoadSettings, WrkResult};
use statistics::Summary;

/// What a run measures; `ROUNDS=`, `DURATION=` and `VCPUS=` change it.
#[derive(Clone, Debug)]
pub struct Settings {
    pub rounds: u32,
    /// Seconds of each load run (there are four per boot, plus a warm-up).
    pub seconds: u32,
    pub vcpus: Vec<u32>,
    pub concurrency: u32,
    pub load_threads: u32,
    pub memory: String,
    pub cpu_model: String,
    pub warm_up_seconds: u32,
}

impl Settings {
    fn from_environment(host_cores: u32) -> Result<Settings, Failure> {
        let number = |name: &str, default: u32| -> Result<u32, Failure> {
            match env::var(name) {
                Ok(value) => value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|value| *value > 0)
                    .ok_or_else(|| Failure(format!("{name}={value}: want a positive number"))),
                Err(_) => Ok(default),
            }
        };
        let vcpus = match env::var("VCPUS") {
            Ok(list) => list
                .split([',', ' '])
                .filter(|word| !word.is_empty())
                .map(|word| {
                    word.parse()
                        .ok()
                        .filter(|count| *count > 0)
                        .ok_or_else(|| Failure(format!("VCPUS={list}: want counts like 1,2")))
                })
                .collect::<Result<Vec<u32>, Failure>>()?,
            Err(_) => default_vcpus(host_cores),
        };
        Ok(Settings {
            rounds: number("ROUNDS", 3)?,
            seconds: number("DURATION", 10)?,
            vcpus,
            concurrency: 64,
            load_threads: 2,
            memory: "512M".into(),
            cpu_model: "max".into(),
            warm_up_seconds: 2,
        })
    }
}

/// 1 and 2 vCPUs, then doubling up to the host's cores.
fn default_vcpus(host_cores: u32) -> Vec<u32> {
    let mut counts = vec![1, 2];
    let mut next = 4;
    while next <= host_cores {
        counts.push(next);
        next *= 2;
    }
    counts
}

/// Host CPU seconds spent during one load run, by who spent them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuUse {
    pub qemu: QemuCpu,
    pub load_generator: f64,
    pub backend: f64,
}

/// One load run: its figures and the CPU it cost.
#[derive(Clone, Debug)]
pub struct Run<T> {
    pub result: T,
    pub cpu: CpuUse,
}

/// Everything measured on one boot.
#[derive(Clone, Debug)]
pub struct Round {
    pub close: Run<WrkResult>,
    pub keepalive: Run<WrkResult>,
    pub ab: Run<AbResult>,
    pub large: Option<Run<WrkResult>>,
}

impl Round {
    pub fn errors(&self) -> u64 {
        self.close.result.errors
            + self.keepalive.result.errors
            + self.ab.result.errors
            + self.large.as_ref().map_or(0, |run| run.result.errors)
    }
}

/// What a whole run produced.
pub struct Results {
    pub settings: Settings,
    pub rounds: BTreeMap<(System, u32), Vec<Round>>,
    /// Systems that could not run at all, with the reason (no figure is made up for them).
    pub skipped: BTreeMap<System, String>,
}

impl Results {
    pub fn summary(
        &self,
        system: System,
        vcpus: u32,
        figure: impl Fn(&Round) -> Option<f64>,
    ) -> Option<Summary> {
        let values: Vec<f64> = self
            .rounds
            .get(&(system, vcpus))?
            .iter()
            .filter_map(figure)
            .collect();
        Summary::of(&values)
    }

    /// The `bench-compare:` line of one system and vCPU count.
    pub fn final_line(&self, system: System, vcpus: u32) -> String {
        let prefix = format!("bench-compare: system={} vcpus={vcpus}", system.name());
        if let Some(reason) = self.skipped.get(&system) {
            return format!("{prefix} skipped=\"{reason}\"");
        }
        let close = self.summary(system, vcpus, |round| Some(round.close.result.rate()));
        let keepalive = self.summary(system, vcpus, |round| Some(round.keepalive.result.rate()));
        let p99 = self.summary(system, vcpus, |round| round.close.result.percentile(99.0));
        let errors: u64 = self
            .rounds
            .get(&(system, vcpus))
            .map_or(0, |rounds| rounds.iter().map(Round::errors).sum());
        match (close, keepalive, p99) {
            (Some(close), Some(keepalive), Some(p99)) => format!(
                "{prefix} close={:.0} keepalive={:.0} p99_ms={:.2} errors={errors}",
                close.median, keepalive.median, p99.median
            ),
            _ => format!("{prefix} skipped=\"no round completed\""),
        }
    }
}

/// Facts about the run that the report states.
pub struct Context {
    pub date: String,
    pub commit: String,
    pub machine: String,
    pub qemu: String,
    pub load_before: String,
    pub load_after: String,
    pub linux_packages: String,
}

fn command_output(program: &str, arguments: &[&str], root: &Path) -> String {
    Command::new(program)
        .args(arguments)
        .current_dir(root)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_default()
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn machine_description(host_cores: u32) -> String {
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {} GiB", kib / (1024 * 1024))
        });
    format!("{host_cores} cores of {model}{memory}")
}

/// The guest's main packages from qemu/linux-guest's `packages.txt` (one
/// `Package: NAME Version: VERSION` line per package), as `NAME VERSION, ...`.
fn guest_packages(list: &str) -> String {
    list.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Package: ")?;
            let (name, version) = rest.split_once(" Version: ")?;
            let wanted = ["linux-image", "nginx", "haproxy", "busybox"]
                .iter()
                .any(|prefix| name == *prefix || name.starts_with(&format!("{prefix}-")));
            wanted.then(|| format!("{name} {version}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Paths of the Linux guest qemu/linux-guest built (or found cached).
struct LinuxGuest {
    kernel: PathBuf,
    initrd: PathBuf,
    rootfs: PathBuf,
}

fn build_linux_guest(root: &Path) -> Result<LinuxGuest, Failure> {
    let output = Command::new(root.join("qemu/linux-guest"))
        .arg("--print")
        .output()
        .map_err(|error| Failure(format!("cannot run qemu/linux-guest: {error}")))?;
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        return Err(Failure("qemu/linux-guest failed".into()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let path = |key: &str| -> Result<PathBuf, Failure> {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(PathBuf::from)
            .ok_or_else(|| Failure(format!("qemu/linux-guest printed no {key}=")))
    };
    Ok(LinuxGuest {
        kernel: path("kernel")?,
        initrd: path("initrd")?,
        rootfs: path("rootfs")?,
    })
}

/// The whole bench; `image` is the Unisock ELF just built.
pub fn run(root: &Path, image: &Path) -> Step {
    let root_user = command_output("id", &["-u"], root) == "0";
    if !root_user {
        return Err(Failure(
            "bench compare needs root (network namespaces, taps): sudo cargo xtask bench compare"
                .into(),
        ));
    }
    let host_cores = std::thread::available_parallelism().map_or(1, |count| count.get() as u32);
    let settings = Settings::from_environment(host_cores)?;
    let linux = build_linux_guest(root)?;
    let work = root.join("target/unisock/compare");
    fs::create_dir_all(&work)
        .map_err(|error| Failure(format!("create {}: {error}", work.display())))?;
    let script = work.join("compare.lua");
    fs::write(&script, load::WRK_SCRIPT)
        .map_err(|error| Failure(format!("wrk script: {error}")))?;

    let dirty = !command_output(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        root,
    )
    .is_empty();
    let context_start = Context {
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root),
        commit: format!(
            "{}{}",
            command_output("git", &["rev-parse", "--short", "HEAD"], root),
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ),
        machine: machine_description(host_cores),
        qemu: command_output("qemu-system-x86_64", &["--version"], root)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        load_before: load_average(),
        load_after: String::new(),
        linux_packages: guest_packages(
            &fs::read_to_string(linux.rootfs.with_file_name("packages.txt")).unwrap_or_default(),
        ),
    };
    let namespace = "unisock-compare";
    let machine = Machine {
        root,
        namespace,
        memory: &settings.memory,
        cpu_model: &settings.cpu_model,
        unisock_image: image,
        linux_kernel: &linux.kernel,
        linux_initrd: &linux.initrd,
        log_directory: &work,
        qemu_arguments: &[],
    };
    let load_settings = LoadSettings {
        namespace,
        concurrency: settings.concurrency,
        threads: settings.load_threads,
        seconds: settings.seconds,
        script: &script,
    };
    println!(
        "bench compare: {} rounds x vCPUs {:?} x {} systems, {} s per load run, wrk -t{} -c{}, ab -c{}, TCG, -cpu {}, -m {}",
        settings.rounds,
        settings.vcpus,
        System::ALL.len(),
        settings.seconds,
        settings.load_threads,
        settings.concurrency,
        settings.concurrency,
        settings.cpu_model,
        settings.memory
    );
    let mut results = Results {
        settings: settings.clone(),
        rounds: BTreeMap::new(),
        skipped: BTreeMap::new(),
    };
    for round in 1..=settings.rounds {
        for &vcpus in &settings.vcpus {
            // Rotate the order every round so that drift within a round hits every system.
            let mut order = System::ALL.to_vec();
            let shift = (round as usize - 1) % order.len();
            order.rotate_left(shift);
            for system in order {
                if results.skipped.contains_key(&system) {
                    continue;
                }
                let name = format!("compare-{}-{vcpus}cpu-r{round}", system.name());
                match measure(
                    &machine,
                    &load_settings,
                    &linux.rootfs,
                    &work,
                    system,
                    vcpus,
                    &name,
                    settings.warm_up_seconds,
                ) {
                    Ok(figures) => {
                        println!("{}", report::round_line(system, vcpus, round, &figures));
                        results
                            .rounds
                            .entry((system, vcpus))
                            .or_default()
                            .push(figures);
                    }
                    Err(BootFailure::Unsupported(reason)) => {
                        println!(
                            "bench compare: system={} is skipped: {reason}; no figure is reported for it",
                            system.name()
                        );
                        results.skipped.insert(system, reason);
                    }
                    Err(BootFailure::Failed(Failure(message))) => {
                        return Err(Failure(format!(
                            "{} at {vcpus} vCPUs, round {round}: {message}",
                            system.name()
                        )));
                    }
                }
            }
        }
    }
    let context = Context {
        load_after: load_average(),
        ..context_start
    };
    let plot_directory = root.join("docs/compare");
    // A plot that fails must not lose the measurements: say so and go on without it.
    let plot_paths =
        plots::write_all(&results, &plot_directory).unwrap_or_else(|Failure(message)| {
            println!("bench compare: no plots: {message}");
            Vec::new()
        });
    let section = report::section(&results, &context, &plot_paths, root, host_cores as usize);
    fs::write(work.join("report.md"), &section)
        .map_err(|error| Failure(format!("report.md: {error}")))?;
    report::update_benchmarks(&root.join("BENCHMARKS.md"), &section)?;
    println!();
    println!("{}", report::table(&results));
    for path in &plot_paths {
        println!("bench compare: plot {}", path.display());
    }
    println!("bench compare: table and plots written to BENCHMARKS.md (section bench-compare)");
    for line in report::ratio_lines(&results) {
        println!("{line}");
    }
    // Before the `bench-compare:` lines, which must stay the last.
    for line in targets::ceiling_lines(&results, host_cores as usize)
        .into_iter()
        .chain(targets::target_lines(&results, host_cores as usize))
    {
        println!("{line}");
    }
    for &vcpus in &settings.vcpus {
        for system in System::ALL {
            println!("{}", results.final_line(system, vcpus));
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Snapshot {
    qemu: QemuCpu,
    children: f64,
    backend: f64,
}

/// A guest that is up, with its backend, ready for load runs that each record their CPU.
/// Dropping it stops QEMU first, then the backend.
struct Booted<'a> {
    guest: guest::Guest,
    backend: Backend,
    load_settings: &'a LoadSettings<'a>,
}

impl Booted<'_> {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            qemu: self.guest.cpu(),
            children: children_cpu(),
            backend: self.backend.cpu(),
        }
    }

    fn cost(before: Snapshot, after: Snapshot) -> CpuUse {
        CpuUse {
            qemu: after.qemu - before.qemu,
            load_generator: after.children - before.children,
            backend: after.backend - before.backend,
        }
    }

    fn wrk(&self, path: &str, connections: Connections) -> Result<Run<WrkResult>, BootFailure> {
        let url = format!("http://{GUEST_ADDRESS}{path}");
        let before = self.snapshot();
        let result =
            load::wrk(self.load_settings, &url, connections).map_err(BootFailure::Failed)?;
        Ok(Run {
            result,
            cpu: Self::cost(before, self.snapshot()),
        })
    }

    fn ab(&self, path: &str) -> Result<Run<AbResult>, BootFailure> {
        let url = format!("http://{GUEST_ADDRESS}{path}");
        let before = self.snapshot();
        let result = load::ab(self.load_settings, &url).map_err(BootFailure::Failed)?;
        Ok(Run {
            result,
            cpu: Self::cost(before, self.snapshot()),
        })
    }
}

/// Boots `system` with its backend and warms it up.
#[allow(clippy::too_many_arguments)]
fn boot<'a>(
    machine: &Machine,
    load_settings: &'a LoadSettings<'a>,
    rootfs: &Path,
    work: &Path,
    system: System,
    backend_connections: BackendConnections,
    vcpus: u32,
    name: &str,
    warm_up_seconds: u32,
) -> Result<Booted<'a>, BootFailure> {
    let mut backend: Option<Backend> = None;
    let backend_directory = work.join("backend");
    let guest = machine.boot(system, backend_connections, vcpus, name, &mut || {
        backend = Some(Backend::start(
            machine.namespace,
            rootfs,
            &backend_directory,
        )?);
        Ok(())
    })?;
    let backend = backend.expect("the backend starts before the guest is up");
    // TCG translates code on first use: a short warm-up so that the first run measured does
    // not pay for it.
    let warm_up = LoadSettings {
        seconds: warm_up_seconds,
        ..*load_settings
    };
    let url = format!("http://{GUEST_ADDRESS}/");
    load::wrk(&warm_up, &url, Connections::Close).map_err(BootFailure::Failed)?;
    Ok(Booted {
        guest,
        backend,
        load_settings,
    })
}

/// One round of one system. A proxy is booted twice, once per backend connection policy:
/// a new backend connection per request for the `Connection: close`, ab and 16 KiB runs,
/// pooled backend connections for the keep-alive run (keep-alive on both legs). The other
/// systems have no backend and are booted once.
#[allow(clippy::too_many_arguments)]
fn measure(
    machine: &Machine,
    load_settings: &LoadSettings,
    rootfs: &Path,
    work: &Path,
    system: System,
    vcpus: u32,
    name: &str,
    warm_up_seconds: u32,
) -> Result<Round, BootFailure> {
    let booted = boot(
        machine,
        load_settings,
        rootfs,
        work,
        system,
        BackendConnections::PerRequest,
        vcpus,
        name,
        warm_up_seconds,
    )?;
    let close = booted.wrk("/", Connections::Close)?;
    let mut keepalive = None;
    if !system.is_proxy() {
        keepalive = Some(booted.wrk("/", Connections::KeepAlive)?);
    }
    let ab = booted.ab("/")?;
    let large = if system.serves_large_body() {
        Some(booted.wrk("/large", Connections::Close)?)
    } else {
        None
    };
    drop(booted);
    let keepalive = match keepalive {
        Some(run) => run,
        None => {
            let pooled = boot(
                machine,
                load_settings,
                rootfs,
                work,
                system,
                BackendConnections::KeepAlive,
                vcpus,
                &format!("{name}-keepalive"),
                warm_up_seconds,
            )?;
            pooled.wrk("/", Connections::KeepAlive)?
        }
    };
    Ok(Round {
        close,
        keepalive,
        ab,
        large,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_vcpu_counts_go_up_to_the_host_cores() {
        assert_eq!(default_vcpus(2), [1, 2]);
        assert_eq!(default_vcpus(1), [1, 2]);
        assert_eq!(default_vcpus(8), [1, 2, 4, 8]);
        assert_eq!(default_vcpus(6), [1, 2, 4]);
    }

    #[test]
    fn the_guest_packages_are_read_from_packages_txt() {
        let list = "Package: busybox-static Version: 1:1.35.0-4+deb12u1+b1
Package: haproxy Version: 2.6.12-1+deb12u4
Package: libc6 Version: 2.36-9+deb12u14
Package: linux-image-6.1.0-57-cloud-amd64 Version: 6.1.192-3
Package: nginx Version: 1.22.1-9+deb12u11
Package: nginx-common Version: 1.22.1-9+deb12u11
";
        assert_eq!(
            guest_packages(list),
            "busybox-static 1:1.35.0-4+deb12u1+b1, haproxy 2.6.12-1+deb12u4, \
             linux-image-6.1.0-57-cloud-amd64 6.1.192-3, nginx 1.22.1-9+deb12u11, \
             nginx-common 1.22.1-9+deb12u11"
        );
    }

    #[test]
    fn a_skipped_system_gets_no_figure() {
        let settings = Settings {
            rounds: 1,
            seconds: 1,
            vcpus: vec![2],
            concurrency: 1,
            load_threads: 1,
            memory: "1M".into(),
            cpu_model: "max".into(),
            warm_up_seconds: 1,
        };
        let mut results = Results {
            settings,
            rounds: BTreeMap::new(),
            skipped: BTreeMap::new(),
        };
        results
            .skipped
            .insert(System::UnisockProxy, "no proxy= in the image".into());
        assert_eq!(
            results.final_line(System::UnisockProxy, 2),
            "bench-compare: system=unisock-proxy vcpus=2 skipped=\"no proxy= in the image\""
        );
        assert_eq!(
            results.final_line(System::NginxStatic, 2),
            "bench-compare: system=nginx-static vcpus=2 skipped=\"no round completed\""
        );
    }
}
