//! `cargo xtask profile`: where the image's time goes under load, sampled from outside by
//! QEMU's gdbstub (stop every vCPU, read each one's `rip`, continue, `HZ` times a second) and
//! symbolised with binutils' `nm` against `target/unisock/unisock.elf`; the top functions of
//! the responder and the proxy, printed and written to BENCHMARKS.md (section bench-profile).
//!
//! Why from outside: the image runs its data path with interrupts off (see boot/src/idle.rs),
//! so a guest timer interrupt would only ever land in the idle halt; and Debian's QEMU 7.2
//! ships no TCG plugins. A gdbstub stop takes effect at the next translated block, so the
//! samples land at block starts, in proportion to the time spent in each block.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::gdb_remote::GdbRemote;
use super::guest::{BackendConnections, GUEST_ADDRESS, Machine, System};
use super::load::{self, Connections, LoadSettings, WrkResult};
use super::report;
use super::{build_linux_guest, command_output};
use crate::{Failure, Step};

pub const BEGIN_MARKER: &str = "<!-- bench-profile:begin (written by cargo xtask profile) -->";
pub const END_MARKER: &str = "<!-- bench-profile:end -->";
/// Rows of each table.
const TOP: usize = 15;

/// A function of the image: its start, its size (0 if `nm` knows none) and its name.
#[derive(Clone, Debug, PartialEq)]
pub struct Symbol {
    pub address: u64,
    pub size: u64,
    pub name: String,
}

/// The text symbols of `nm -C -n -S --defined-only` output, sorted by address. Demangled
/// Rust names contain spaces (`<T as Trait>::f`), so the name is the rest of the line.
pub fn parse_symbols(text: &str) -> Vec<Symbol> {
    let mut symbols: Vec<Symbol> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, ' ');
            let address = u64::from_str_radix(fields.next()?, 16).ok()?;
            let second = fields.next()?;
            // With -S, a sized symbol has `address size type name`; others `address type name`.
            let (size, kind, name) = match u64::from_str_radix(second, 16) {
                Ok(size) if second.len() > 1 => (size, fields.next()?, fields.next()?.to_string()),
                _ => {
                    let rest = fields.collect::<Vec<_>>().join(" ");
                    (0, second, rest)
                }
            };
            matches!(kind, "t" | "T" | "w" | "W").then(|| Symbol {
                address,
                size,
                name: strip_hash(&name).to_string(),
            })
        })
        .collect();
    symbols.sort_by_key(|symbol| symbol.address);
    symbols
}

/// `path::to::f::h0123456789abcdef` (legacy Rust mangling, demangled) -> `path::to::f`.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((path, hash))
            if hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit()) =>
        {
            path
        }
        _ => name,
    }
}

/// The function `address` lies in: the last symbol at or below it, if the address is inside
/// its size (or it has none).
pub fn function_at(symbols: &[Symbol], address: u64) -> Option<&Symbol> {
    let index = symbols.partition_point(|symbol| symbol.address <= address);
    let symbol = symbols.get(index.checked_sub(1)?)?;
    (symbol.size == 0 || address < symbol.address + symbol.size).then_some(symbol)
}

/// The row of samples in the idle halt when it is inlined into the run loop.
const IDLE_ROW: &str = "(idle: idle::halt_until, inlined)";

/// Samples per function, most first: (name, samples). With the inlined names, a sample in
/// the idle halt gets its own row even where the halt was inlined into the run loop.
pub fn histogram(
    symbols: &[Symbol],
    inlined: Option<&std::collections::BTreeMap<u64, String>>,
    samples: &[u64],
) -> Vec<(String, u64)> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for &address in samples {
        if inlined
            .and_then(|names| names.get(&address))
            .is_some_and(|name| is_idle(name))
        {
            *counts.entry(IDLE_ROW.to_string()).or_default() += 1;
            continue;
        }
        let name = function_at(symbols, address).map_or_else(
            || format!("(outside the image) {address:#x}"),
            |symbol| symbol.name.clone(),
        );
        *counts.entry(name).or_default() += 1;
    }
    let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// The innermost function of each address in `addr2line -a -f -C -i` output: a record starts
/// with the `0x...` address line, then (function, file:line) pairs from the innermost inlined
/// function out to the one that was compiled.
pub fn parse_innermost(text: &str) -> std::collections::BTreeMap<u64, String> {
    let mut chains: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let mut current: Option<u64> = None;
    let mut function_line = false;
    for line in text.lines() {
        if let Some(hex) = line.strip_prefix("0x") {
            current = u64::from_str_radix(hex.trim(), 16).ok();
            function_line = true;
        } else if let Some(address) = current {
            // Function and location lines alternate after the address.
            if function_line {
                chains
                    .entry(address)
                    .or_default()
                    .push(strip_hash(line.trim()).to_string());
            }
            function_line = !function_line;
        }
    }
    chains
        .into_iter()
        .map(|(address, chain)| (address, label(&chain)))
        .collect()
}

/// A library helper (`core::ptr::write_volatile`) says little alone: name the first of our
/// functions it was inlined into as well.
fn label(chain: &[String]) -> String {
    let helper = |name: &String| {
        [
            "core::",
            "alloc::",
            "compiler_builtins::",
            "<core::",
            "<alloc::",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
    };
    match chain.first() {
        None => "??".into(),
        Some(innermost) if helper(innermost) => match chain.iter().find(|name| !helper(name)) {
            Some(caller) => format!("{innermost} in {caller}"),
            None => innermost.clone(),
        },
        Some(innermost) => innermost.clone(),
    }
}

/// Asks `addr2line` (DWARF, inlining included) for the innermost function of each address.
fn innermost_functions(
    image: &Path,
    samples: &[u64],
) -> Result<std::collections::BTreeMap<u64, String>, Failure> {
    let unique: std::collections::BTreeSet<u64> = samples.iter().copied().collect();
    let input: String = unique
        .iter()
        .map(|address| format!("{address:#x}\n"))
        .collect();
    let mut child = Command::new("addr2line")
        .args(["-a", "-f", "-C", "-i", "-e"])
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| Failure(format!("cannot run addr2line (binutils): {error}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from a thread: addr2line answers as it reads, and a full pipe would block both.
    let writer = thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(input.as_bytes());
    });
    let output = child
        .wait_with_output()
        .map_err(|error| Failure(format!("addr2line: {error}")))?;
    let _ = writer.join();
    Ok(parse_innermost(&String::from_utf8_lossy(&output.stdout)))
}

/// Samples per innermost (inlined) function, most first.
pub fn inlined_histogram(
    names: &std::collections::BTreeMap<u64, String>,
    samples: &[u64],
) -> Vec<(String, u64)> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for address in samples {
        let name = names.get(address).cloned().unwrap_or_else(|| "??".into());
        *counts.entry(name).or_default() += 1;
    }
    let mut rows: Vec<(String, u64)> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

/// A sampled function that is the halt of an idle core, not work.
fn is_idle(name: &str) -> bool {
    name.contains("idle::halt_until") || name.contains("idle::wait_for_wake")
}

/// One system's profile.
pub struct Profile {
    pub system: System,
    pub vcpus: u32,
    pub samples: Vec<u64>,
    pub seconds: f64,
    pub load: WrkResult,
}

/// The Markdown tables of a profile: by function as compiled (`nm`), then by innermost
/// inlined function (`addr2line`, if given); rank, function, share of all samples, share of
/// the busy ones (idle halts left out).
pub fn table(
    symbols: &[Symbol],
    inlined: Option<&std::collections::BTreeMap<u64, String>>,
    profile: &Profile,
) -> String {
    let rows = histogram(symbols, inlined, &profile.samples);
    let total = profile.samples.len() as f64;
    let idle: u64 = rows
        .iter()
        .filter(|(name, _)| is_idle(name))
        .map(|(_, count)| count)
        .sum();
    let busy = (profile.samples.len() as u64 - idle) as f64;
    let mut text = format!(
        "`{}`, {} vCPU(s): {} samples in {:.1} s ({:.0} per second), {:.1}% of them in the idle halt; \
         load during sampling: wrk `Connection: close`, {:.0} conn/s, {} errors.\n\n\
         By function as compiled (`nm`):\n\n",
        profile.system.name(),
        profile.vcpus,
        profile.samples.len(),
        profile.seconds,
        total / profile.seconds.max(1e-9),
        if total > 0.0 {
            100.0 * idle as f64 / total
        } else {
            0.0
        },
        profile.load.rate(),
        profile.load.errors,
    );
    text.push_str(&rows_table(&rows, total, busy));
    if let Some(names) = inlined {
        text.push_str("\nBy innermost function, inlining undone (`addr2line -i`):\n\n");
        text.push_str(&rows_table(
            &inlined_histogram(names, &profile.samples),
            total,
            busy,
        ));
    }
    text
}

fn rows_table(rows: &[(String, u64)], total: f64, busy: f64) -> String {
    let mut text = String::from(
        "| # | function | samples | % of all | % of busy |\n|---:|---|---:|---:|---:|\n",
    );
    for (rank, (name, count)) in rows.iter().take(TOP).enumerate() {
        let busy_share = if is_idle(name) || busy == 0.0 {
            "-".to_string()
        } else {
            format!("{:.1}", 100.0 * *count as f64 / busy)
        };
        text.push_str(&format!(
            "| {} | `{}` | {count} | {:.1} | {busy_share} |\n",
            rank + 1,
            name.replace('|', "\\|"),
            100.0 * *count as f64 / total.max(1.0),
        ));
    }
    text
}

/// Samples every vCPU until `stop` is set; returns the `rip`s.
fn sample(socket: &Path, hz: u32, stop: &AtomicBool) -> Result<Vec<u64>, Failure> {
    let mut remote = GdbRemote::connect(socket)?;
    let threads = remote.threads()?;
    remote.resume()?;
    let period = Duration::from_secs_f64(1.0 / f64::from(hz));
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        remote.stop()?;
        for thread in &threads {
            samples.push(remote.instruction_pointer(thread)?);
        }
        remote.resume()?;
    }
    Ok(samples)
}

/// Boots `system`, loads it with wrk for `seconds` while sampling at `hz`.
#[allow(clippy::too_many_arguments)]
fn profile_one(
    machine: &Machine,
    load_settings: &LoadSettings,
    rootfs: &Path,
    work: &Path,
    system: System,
    vcpus: u32,
    hz: u32,
) -> Result<Profile, Failure> {
    let mut backend: Option<Backend> = None;
    let backend_directory = work.join("backend");
    let name = format!("profile-{}-{vcpus}cpu", system.name());
    let guest = machine
        .boot(
            system,
            BackendConnections::PerRequest,
            vcpus,
            &name,
            &mut || {
                if system.is_proxy() {
                    backend = Some(Backend::start(
                        machine.namespace,
                        rootfs,
                        &backend_directory,
                    )?);
                }
                Ok(())
            },
        )
        .map_err(|failure| match failure {
            super::guest::BootFailure::Failed(failure) => failure,
            super::guest::BootFailure::Unsupported(reason) => Failure(reason),
        })?;
    let url = format!("http://{GUEST_ADDRESS}/");
    let warm_up = LoadSettings {
        seconds: 2,
        ..*load_settings
    };
    load::wrk(&warm_up, &url, Connections::Close)?;
    let stop = Arc::new(AtomicBool::new(false));
    let socket = gdb_socket(work, &name);
    let sampler = {
        let stop = stop.clone();
        thread::spawn(move || {
            let start = Instant::now();
            sample(&socket, hz, &stop).map(|samples| (samples, start.elapsed()))
        })
    };
    let result = load::wrk(load_settings, &url, Connections::Close);
    stop.store(true, Ordering::Release);
    let sampled = sampler
        .join()
        .map_err(|_| Failure("the sampler thread panicked".into()))?;
    drop(guest);
    drop(backend);
    let (samples, elapsed) = sampled?;
    Ok(Profile {
        system,
        vcpus,
        samples,
        seconds: elapsed.as_secs_f64(),
        load: result?,
    })
}

fn gdb_socket(work: &Path, name: &str) -> PathBuf {
    work.join(format!("{name}.gdb"))
}

fn number(name: &str, default: u32) -> Result<u32, Failure> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| Failure(format!("{name}={value}: want a positive number"))),
        Err(_) => Ok(default),
    }
}

/// The command: `systems` from the arguments (`responder`, `proxy`; both by default);
/// `HZ=` (default 200), `DURATION=` (seconds of load, default 10), `VCPUS=` (default 1).
pub fn run(root: &Path, image: &Path, arguments: &[String]) -> Step {
    if command_output("id", &["-u"], root) != "0" {
        return Err(Failure(
            "profile needs root (network namespace, tap): sudo cargo xtask profile".into(),
        ));
    }
    let systems: Vec<System> = if arguments.is_empty() {
        vec![System::UnisockResponder, System::UnisockProxy]
    } else {
        arguments
            .iter()
            .map(|argument| match argument.as_str() {
                "responder" => Ok(System::UnisockResponder),
                "proxy" => Ok(System::UnisockProxy),
                other => Err(Failure(format!(
                    "profile: unknown system {other} (responder or proxy)"
                ))),
            })
            .collect::<Result<_, _>>()?
    };
    let hz = number("HZ", 200)?;
    let seconds = number("DURATION", 10)?;
    let vcpus = number("VCPUS", 1)?;
    let symbols_text = Command::new("nm")
        .args(["-C", "-n", "-S", "--defined-only"])
        .arg(image)
        .output()
        .map_err(|error| Failure(format!("cannot run nm (binutils): {error}")))?;
    let symbols = parse_symbols(&String::from_utf8_lossy(&symbols_text.stdout));
    if symbols.is_empty() {
        return Err(Failure(format!(
            "nm found no functions in {}",
            image.display()
        )));
    }
    let linux = build_linux_guest(root)?;
    let work = root.join("target/unisock/profile");
    fs::create_dir_all(&work)
        .map_err(|error| Failure(format!("create {}: {error}", work.display())))?;
    let script = work.join("profile.lua");
    fs::write(&script, load::WRK_SCRIPT)
        .map_err(|error| Failure(format!("wrk script: {error}")))?;
    let namespace = "unisock-profile";
    let mut sections = Vec::new();
    for system in systems {
        let name = format!("profile-{}-{vcpus}cpu", system.name());
        let socket = gdb_socket(&work, &name);
        let _ = fs::remove_file(&socket);
        let qemu_arguments = vec![
            "-chardev".to_string(),
            format!(
                "socket,id=profile-gdb,path={},server=on,wait=off",
                socket.display()
            ),
            "-gdb".to_string(),
            "chardev:profile-gdb".to_string(),
        ];
        let machine = Machine {
            root,
            namespace,
            memory: "512M",
            cpu_model: "max",
            unisock_image: image,
            linux_kernel: &linux.kernel,
            linux_initrd: &linux.initrd,
            log_directory: &work,
            qemu_arguments: &qemu_arguments,
        };
        let load_settings = LoadSettings {
            namespace,
            concurrency: 64,
            threads: 2,
            seconds,
            script: &script,
        };
        let profile = profile_one(
            &machine,
            &load_settings,
            &linux.rootfs,
            &work,
            system,
            vcpus,
            hz,
        )?;
        let inlined = innermost_functions(image, &profile.samples)?;
        let text = table(&symbols, Some(&inlined), &profile);
        println!("{text}");
        sections.push(text);
    }
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"], root);
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"], root);
    let section = format!(
        "{BEGIN_MARKER}
Run on {date} at commit {commit}, by

    sudo HZ={hz} DURATION={seconds} VCPUS={vcpus} cargo xtask profile

Each vCPU's `rip`, sampled {hz} times a second from outside through QEMU's gdbstub (stop all
vCPUs, read, continue) while wrk (`-t2 -c64`, `Connection: close`) loads the image from the
namespace, after a 2 s warm-up; TCG, `-cpu max`, `-m 512M`, the same tap and backend nginx as
`bench compare`. The first table of each system counts samples by the image's symbols (`nm`):
a row is a function as compiled, with whatever was inlined into it (the run loop holds most of
the receive path). The second looks each address up in the DWARF line tables (`addr2line -i`)
and counts its innermost inlined function. A stop takes effect at the next translated
block, so samples are at block starts; each stop also costs the guest time, so the load's rate
here is lower than in `bench compare`. The idle halt (`idle::halt_until`) is time a vCPU had
nothing to do; \"% of busy\" leaves it out.

{}{END_MARKER}
",
        sections.join("\n")
    );
    report::rewrite_file(&root.join("BENCHMARKS.md"), |document| {
        replace_section(document, &section)
    })?;
    println!("profile: written to BENCHMARKS.md (section bench-profile)");
    Ok(())
}

/// The bench-profile section of `document` replaced by `section`.
fn replace_section(document: &str, section: &str) -> String {
    report::replace_marked_section(
        document,
        (BEGIN_MARKER, END_MARKER),
        "Where the image's time goes (cargo xtask profile)",
        section,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NM: &str = "\
0000000000100000 T _start
0000000000100010 0000000000000020 t unisock_kernel::net::tcp::TcpLayer::receive::h0123456789abcdef
0000000000100030 0000000000000010 t <smoltcp::wire::ipv4::Address as core::fmt::Display>::fmt::hfedcba9876543210
0000000000100050 0000000000000008 T unisock_boot::idle::halt_until::h00112233445566aa
0000000000200000 0000000000000100 d some_data
0000000000100040 r a_constant
";

    #[test]
    fn nm_lines_become_sorted_text_symbols_without_hashes() {
        let symbols = parse_symbols(NM);
        let names: Vec<&str> = symbols.iter().map(|symbol| symbol.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "_start",
                "unisock_kernel::net::tcp::TcpLayer::receive",
                "<smoltcp::wire::ipv4::Address as core::fmt::Display>::fmt",
                "unisock_boot::idle::halt_until",
            ]
        );
        assert_eq!(symbols[1].size, 0x20);
        assert_eq!(symbols[0].size, 0);
    }

    #[test]
    fn an_address_falls_in_the_function_that_covers_it() {
        let symbols = parse_symbols(NM);
        let name = |address| function_at(&symbols, address).map(|symbol| symbol.name.as_str());
        assert_eq!(name(0x10_0000), Some("_start"));
        assert_eq!(name(0x10_000f), Some("_start"));
        assert_eq!(
            name(0x10_0010),
            Some("unisock_kernel::net::tcp::TcpLayer::receive")
        );
        assert_eq!(
            name(0x10_002f),
            Some("unisock_kernel::net::tcp::TcpLayer::receive")
        );
        assert_eq!(
            name(0x10_003f),
            Some("<smoltcp::wire::ipv4::Address as core::fmt::Display>::fmt")
        );
        // Past the end of a sized function, before the next: nobody's.
        assert_eq!(name(0x10_0040), None);
        assert_eq!(name(0xf_ffff), None);
    }

    #[test]
    fn addr2line_records_give_their_innermost_function() {
        let output = "0x0000000000100012
unisock_kernel::net::tcp::segment::write::h0123456789abcdef
/src/kernel/src/net/tcp/segment.rs:40
unisock_kernel::net::tcp::TcpLayer::receive
/src/kernel/src/net/tcp/mod.rs:10
0x0000000000100031
??
??:0
";
        let names = parse_innermost(output);
        assert_eq!(names.len(), 2);
        assert_eq!(
            names[&0x10_0012],
            "unisock_kernel::net::tcp::segment::write"
        );
        assert_eq!(names[&0x10_0031], "??");
        let rows = inlined_histogram(&names, &[0x10_0012, 0x10_0012, 0x10_0031, 0x5]);
        assert_eq!(
            rows,
            [
                ("??".to_string(), 2),
                ("unisock_kernel::net::tcp::segment::write".to_string(), 2)
            ]
        );
    }

    #[test]
    fn a_library_helper_is_named_with_the_function_it_was_inlined_into() {
        let output = "0x0000000000100020
core::ptr::write_volatile
/rustc/library/core/src/ptr/mod.rs:1
unisock_drivers::virtio::virtqueue::SplitVirtqueue<R>::notify
/src/drivers/src/virtio/virtqueue.rs:5
unisock_kernel::runtime::core_loop::CoreRuntime<Q,P>::run
/src/kernel/src/runtime/core_loop.rs:162
0x0000000000100050
unisock::idle::halt_until
/src/boot/src/idle.rs:110
unisock_kernel::runtime::core_loop::CoreRuntime<Q,P>::run
/src/kernel/src/runtime/core_loop.rs:170
";
        let names = parse_innermost(output);
        assert_eq!(
            names[&0x10_0020],
            "core::ptr::write_volatile in unisock_drivers::virtio::virtqueue::SplitVirtqueue<R>::notify"
        );
        // The idle halt inlined into the run loop gets its own row in the nm table.
        let symbols = parse_symbols(
            "0000000000100000 0000000000000100 t unisock_kernel::runtime::core_loop::CoreRuntime<Q,P>::run\n",
        );
        let rows = histogram(&symbols, Some(&names), &[0x10_0050, 0x10_0050, 0x10_0020]);
        assert_eq!(
            rows,
            [
                (IDLE_ROW.to_string(), 2),
                (
                    "unisock_kernel::runtime::core_loop::CoreRuntime<Q,P>::run".to_string(),
                    1
                )
            ]
        );
    }

    #[test]
    fn the_table_ranks_functions_and_leaves_the_idle_halt_out_of_busy() {
        let symbols = parse_symbols(NM);
        let mut samples = vec![0x10_0012; 6];
        samples.extend([0x10_0050; 2]);
        samples.extend([0x10_0031; 2]);
        let profile = Profile {
            system: System::UnisockResponder,
            vcpus: 1,
            samples,
            seconds: 1.0,
            load: WrkResult {
                requests: 10,
                seconds: 1.0,
                errors: 0,
                latency: Vec::new(),
            },
        };
        let text = table(&symbols, None, &profile);
        let rows: Vec<&str> = text
            .lines()
            .filter(|line| {
                line.starts_with("| 1") || line.starts_with("| 2") || line.starts_with("| 3")
            })
            .collect();
        assert_eq!(
            rows,
            [
                "| 1 | `unisock_kernel::net::tcp::TcpLayer::receive` | 6 | 60.0 | 75.0 |",
                "| 2 | `<smoltcp::wire::ipv4::Address as core::fmt::Display>::fmt` | 2 | 20.0 | 25.0 |",
                "| 3 | `unisock_boot::idle::halt_until` | 2 | 20.0 | - |",
            ]
        );
        assert!(text.contains("20.0% of them in the idle halt"), "{text}");
    }
}
