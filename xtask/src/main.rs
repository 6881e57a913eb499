//! `cargo xtask`: build the image, boot it, run the tests and the benchmarks.
//!
//! Artifacts go to `<repo>/target/unisock/` whatever `CARGO_TARGET_DIR` says; intermediate
//! builds respect `CARGO_TARGET_DIR`.

mod compare;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The bare-metal target the image is built for.
const IMAGE_TARGET: &str = "x86_64-unknown-none";
/// Debian packages the image and the end-to-end tests need (qemu-utils is handled apart).
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "ovmf",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub-common",
    "xorriso",
    "mtools",
    // The network tests' peers (tests/tests/network.rs, qemu/net-run).
    "iproute2",
    "curl",
    "iputils-ping",
    "netcat-openbsd",
    "apache2-utils",
    // The proxy tests' backends (tests/tests/proxy.rs): nginx, and Python for a misbehaving one.
    "nginx",
    "python3",
    // The DNS service discovery tests' server (tests/tests/dns_discovery.rs): dnsmasq's binary
    // alone (`dnsmasq-base`; the `dnsmasq` package would also start a system-wide service on
    // port 53).
    "dnsmasq-base",
    // promtool, which checks the image's /metrics (tests/tests/proxy.rs).
    "prometheus",
    // bench compare: its load generator, and the tools qemu/linux-guest builds the Linux
    // guest with (the guest's own packages are downloaded, never installed here).
    "wrk",
    "cpio",
    "valgrind",
    // cargo xtask profile: nm symbolises the sampled instruction pointers.
    "binutils",
    // The hostile tests (tests/tests/hostile.rs): the SYN flood, and the crafted segments
    // and frames of tests/scripts/*.py (run with Debian's /usr/bin/python3).
    "hping3",
    "python3-scapy",
];

const USAGE: &str = "usage: cargo xtask <command>
  build                    build the image: target/unisock/unisock.elf
  image [--cmdline WORDS] [--config FILE] [--output DIRECTORY]
                           build the image, the GRUB ISO and the qcow2 disk image (in
                           DIRECTORY, default target/unisock); --config FILE goes in the ISO
                           as /boot/unisock.toml, loaded by GRUB as a boot module (module2)
  run [RUN ARGS]           build, start a demo backend on this host, then boot with the reverse
                           proxy in front of it at http://127.0.0.1:8080/ and the responder
                           at http://127.0.0.1:8081/ (qemu/net-user: user-mode network, no
                           root; e.g. --smp 4 --cmdline log=debug); --config FILE boots
                           with that configuration file (-initrd; --config-fw-cfg FILE: by
                           QEMU's fw_cfg); --iso or --disk [--firmware seabios|ovmf] boot
                           the disk images with qemu/run instead (--config then goes by fw_cfg)
  test                     install-deps, host tests, image, end-to-end tests in QEMU
  install-deps             apt-get install whatever of QEMU, OVMF, GRUB, xorriso and the
                           network test tools (iproute2, curl, ping, nc, ab) is missing
  bench stack              the stack bench (conn/s, ours vs Linux loopback), then
                           instructions per connection under callgrind
                           (kernel/benches/stack-instructions)
  bench responder          the image's responder under QEMU, loaded by ab (root)
  bench proxy              the image's proxy under QEMU in front of nginx, against the same
                           load straight to nginx (root)
  bench operations         the proxy's rate with the access log off, on for every request,
                           rate-limited, and while /metrics is scraped (root)
  bench compare            Unisock against nginx and HAProxy in a Linux guest, same QEMU,
                           same load (root); ROUNDS=, DURATION=, VCPUS= (e.g. 1,2) change it;
                           rewrites the bench-compare section of BENCHMARKS.md and docs/compare/
  bench NAME               cargo bench -p unisock-kernel --bench NAME
  profile [responder|proxy] where the image's time goes under wrk: every vCPU's rip sampled
                           through QEMU's gdbstub, symbolised with nm (root); HZ=, DURATION=,
                           VCPUS= change it; rewrites the bench-profile section of BENCHMARKS.md
  fuzz [--seconds N] [TARGET...]
                           a time-boxed AFL++ campaign (fuzz/run; needs cargo-afl) on the
                           frame path and the HTTP parsers; crashes land in fuzz/regressions/";

/// A failed step, with what to tell the user.
#[derive(Debug)]
struct Failure(String);

type Step = Result<(), Failure>;

fn main() -> ExitCode {
    let arguments: Vec<String> = env::args().skip(1).collect();
    let Some((command, rest)) = arguments.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "build" => build().map(|_| ()),
        "image" => image(rest),
        "run" => run(rest),
        "test" => test(),
        "install-deps" => install_dependencies(),
        "profile" => profile(rest),
        "fuzz" => fuzz(rest),
        "bench" => match rest {
            [name] if matches!(name.as_str(), "responder" | "proxy" | "operations") => {
                bench_in_qemu(name)
            }
            [name] if name == "compare" => bench_compare(),
            [name] if name == "stack" => bench_stack(),
            [name] => cargo(&["bench", "-p", "unisock-kernel", "--bench", name]),
            _ => Err(Failure("usage: cargo xtask bench NAME".into())),
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// Where the outputs that other tools rely on go: `<repo>/target/unisock`.
fn artifacts_directory() -> PathBuf {
    repository_root().join("target").join("unisock")
}

/// Cargo's target directory for intermediate builds.
fn cargo_target_directory() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(directory) => repository_root().join(directory),
        None => repository_root().join("target"),
    }
}

/// Builds the image ELF and copies it to `target/unisock/unisock.elf`.
fn build() -> Result<PathBuf, Failure> {
    ensure_image_target()?;
    let status = Command::new(cargo_program())
        .current_dir(repository_root())
        .args([
            "build",
            "--package",
            "unisock-boot",
            "--bin",
            "unisock",
            "--release",
        ])
        .args(["--target", IMAGE_TARGET])
        // The 32-bit entry needs absolute relocations: no PIE. Only the image target sees
        // these flags (build scripts and host crates do not, since --target is given).
        .env("RUSTFLAGS", "-C relocation-model=static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .map_err(|error| Failure(format!("cannot run cargo: {error}")))?;
    check(status.success(), "building the image failed")?;
    let built = cargo_target_directory()
        .join(IMAGE_TARGET)
        .join("release")
        .join("unisock");
    let destination = artifacts_directory().join("unisock.elf");
    fs::create_dir_all(artifacts_directory()).map_err(io_failure("create target/unisock"))?;
    fs::copy(&built, &destination).map_err(io_failure("copy the image"))?;
    let size = fs::metadata(&destination)
        .map_err(io_failure("stat the image"))?
        .len();
    println!("xtask: {} ({} KiB)", destination.display(), size / 1024);
    Ok(destination)
}

/// What `cargo xtask image` puts in the disk images.
#[derive(Debug, Default, PartialEq, Eq)]
struct ImageOptions {
    /// The kernel command line GRUB passes.
    cmdline: String,
    /// A configuration file, loaded by GRUB as the first boot module.
    config: Option<PathBuf>,
    /// Where the ISO and qcow2 go (default `target/unisock`).
    output: Option<PathBuf>,
}

const IMAGE_USAGE: &str =
    "usage: cargo xtask image [--cmdline WORDS] [--config FILE] [--output DIRECTORY]";

impl ImageOptions {
    fn parse(arguments: &[String]) -> Result<ImageOptions, Failure> {
        let mut options = ImageOptions::default();
        let mut arguments = arguments.iter();
        while let Some(flag) = arguments.next() {
            let value = arguments.next();
            match (flag.as_str(), value) {
                ("--cmdline", Some(words)) => options.cmdline = words.clone(),
                ("--config", Some(file)) => options.config = Some(PathBuf::from(file)),
                ("--output", Some(directory)) => options.output = Some(PathBuf::from(directory)),
                _ => return Err(Failure(IMAGE_USAGE.into())),
            }
        }
        Ok(options)
    }
}

/// Where the ISO holds the configuration file, and the name GRUB loads it by.
const ISO_CONFIGURATION_PATH: &str = "/boot/unisock.toml";

/// GRUB's configuration: boot the image at once with `cmdline`, and with the configuration
/// file at `config_module` (a path inside the ISO) as its first boot module.
fn grub_configuration(cmdline: &str, config_module: Option<&str>) -> String {
    let module = config_module.map_or(String::new(), |path| format!("    module2 {path}\n"));
    format!(
        "# Unisock: boot the image at once, with its console on COM1.\n\
         set timeout=0\n\
         set default=0\n\
         menuentry \"unisock\" {{\n\
         \x20   multiboot2 /boot/unisock.elf {cmdline}\n\
         {module}\
         \x20   boot\n\
         }}\n"
    )
}

/// Fails, naming the file, unless `path` is a regular file this user can read: the image
/// would otherwise be built or booted without the configuration the user asked for.
fn check_configuration_file(path: &Path) -> Step {
    let readable = fs::File::open(path).and_then(|file| file.metadata());
    match readable {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(Failure(format!(
            "the configuration file {} is not a regular file",
            path.display()
        ))),
        Err(error) => Err(Failure(format!(
            "cannot read the configuration file {}: {error}",
            path.display()
        ))),
    }
}

/// Builds the ELF, wraps it in a hybrid BIOS+UEFI GRUB ISO and converts that to qcow2.
fn image(arguments: &[String]) -> Step {
    let options = ImageOptions::parse(arguments)?;
    if let Some(config) = &options.config {
        check_configuration_file(config)?;
    }
    let elf = build()?;
    let artifacts = options.output.clone().unwrap_or_else(artifacts_directory);
    let staging = artifacts.join("iso-root");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(staging.join("boot/grub")).map_err(io_failure("create the ISO tree"))?;
    fs::copy(&elf, staging.join("boot/unisock.elf")).map_err(io_failure("copy the image"))?;
    if let Some(config) = &options.config {
        let inside = ISO_CONFIGURATION_PATH.trim_start_matches('/');
        fs::copy(config, staging.join(inside))
            .map_err(io_failure("copy the configuration file"))?;
    }
    let grub_configuration = grub_configuration(
        &options.cmdline,
        options.config.as_ref().map(|_| ISO_CONFIGURATION_PATH),
    );
    fs::write(staging.join("boot/grub/grub.cfg"), grub_configuration)
        .map_err(io_failure("write grub.cfg"))?;
    let iso = artifacts.join("unisock.iso");
    let qcow2 = artifacts.join("unisock.qcow2");
    let status = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&staging)
        .output()
        .map_err(|error| Failure(format!("cannot run grub-mkrescue: {error}")))?;
    if !status.status.success() {
        return Err(Failure(format!(
            "grub-mkrescue failed:\n{}",
            String::from_utf8_lossy(&status.stderr)
        )));
    }
    let status = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&iso)
        .arg(&qcow2)
        .status()
        .map_err(|error| Failure(format!("cannot run qemu-img: {error}")))?;
    check(status.success(), "qemu-img convert failed")?;
    println!("xtask: {}", iso.display());
    println!("xtask: {}", qcow2.display());
    Ok(())
}

/// Builds what the arguments boot, then hands them to `qemu/run`. A bare `--iso` or
/// `--disk` means the image just built.
fn run(arguments: &[String]) -> Step {
    install_dependencies()?;
    let mut forwarded = Vec::new();
    let mut disk_image = false;
    for (index, argument) in arguments.iter().enumerate() {
        forwarded.push(argument.clone());
        if argument == "--config" || argument == "--config-fw-cfg" {
            let Some(file) = arguments.get(index + 1) else {
                return Err(Failure(format!("{argument} needs a FILE")));
            };
            check_configuration_file(Path::new(file))?;
        }
        let default = match argument.as_str() {
            "--iso" => "unisock.iso",
            "--disk" => "unisock.qcow2",
            _ => continue,
        };
        disk_image = true;
        let next = arguments.get(index + 1);
        if next.is_none_or(|next| next.starts_with("--")) {
            forwarded.push(artifacts_directory().join(default).display().to_string());
        }
    }
    if disk_image {
        image(&[])?;
    } else {
        build()?;
    }
    // The ELF boots with the network up and the responder forwarded to the host; the disk
    // images carry their own command line.
    let script = if disk_image {
        "qemu/run"
    } else {
        "qemu/net-user"
    };
    if !disk_image {
        // QEMU's user-mode network shows this host's loopback to the guest as 10.0.2.2.
        let port = start_demo_backend()?;
        forwarded.splice(0..0, ["--proxy".to_string(), format!("10.0.2.2:{port}")]);
    }
    let status = Command::new(repository_root().join(script))
        .args(&forwarded)
        .status()
        .map_err(|error| Failure(format!("cannot run {script}: {error}")))?;
    check(status.success(), &format!("{script} exited with {status}"))
}

/// What the demo backend answers: one line, so a new user sees that the proxy reached it.
const DEMO_BODY: &str = "Hello from the demo backend on your host, through the Unisock proxy\n";

/// A tiny HTTP server on a free loopback port of this host, for `cargo xtask run` to put
/// the proxy in front of; it lives as long as xtask (so it stops when QEMU does).
fn start_demo_backend() -> Result<u16, Failure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| Failure(format!("cannot start the demo backend: {error}")))?;
    let port = listener
        .local_addr()
        .map_err(|error| Failure(format!("cannot start the demo backend: {error}")))?
        .port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || demo_connection(stream));
        }
    });
    println!("xtask: demo backend at 127.0.0.1:{port}");
    Ok(port)
}

/// Answers each request head on the connection with [`DEMO_BODY`] (keep-alive, so the
/// proxy's pool can reuse the connection).
fn demo_connection(mut stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        while let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            received.drain(..end + 4);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{DEMO_BODY}",
                DEMO_BODY.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
        }
        if received.len() > 64 * 1024 {
            return;
        }
    }
}

/// A benchmark of the image under QEMU (`qemu/bench-responder`, `qemu/bench-proxy`), loaded by
/// ab from a network namespace (root).
fn bench_in_qemu(name: &str) -> Step {
    install_dependencies()?;
    build()?;
    let script = &format!("qemu/bench-{name}");
    let status = Command::new(repository_root().join(script))
        .status()
        .map_err(|error| Failure(format!("cannot run {script}: {error}")))?;
    check(status.success(), &format!("{script} exited with {status}"))
}

/// Connections per second on one core against Linux, then the machine-independent figure:
/// instructions per connection, counted by callgrind.
fn bench_stack() -> Step {
    cargo(&["bench", "-p", "unisock-kernel", "--bench", "stack"])?;
    install_dependencies()?;
    let script = "kernel/benches/stack-instructions";
    let status = Command::new(repository_root().join(script))
        .current_dir(repository_root())
        .status()
        .map_err(|error| Failure(format!("cannot run {script}: {error}")))?;
    check(status.success(), &format!("{script} exited with {status}"))
}

/// Unisock against nginx and HAProxy in the Linux guest of qemu/linux-guest (root).
fn bench_compare() -> Step {
    install_dependencies()?;
    let image = build()?;
    compare::run(&repository_root(), &image)
}

/// The configuration file of the boot tests' ISO, and the directory (under the artifacts)
/// that ISO goes to (tests/tests/boot.rs reads both).
const CONFIG_MODULE_TEST_FILE: &str = "tests/data/config-module.toml";
const CONFIG_MODULE_TEST_DIRECTORY: &str = "config-module";

/// `cargo xtask profile`: see `compare::profile`.
fn profile(arguments: &[String]) -> Step {
    install_dependencies()?;
    let image = build()?;
    compare::profile::run(&repository_root(), &image, arguments)
}

/// The whole test suite, as CI and the README run it.
fn test() -> Step {
    install_dependencies()?;
    cargo(&["test", "--workspace", "--exclude", "unisock-e2e"])?;
    image(&[])?;
    // The boot tests also boot an ISO whose GRUB loads a configuration file as a module;
    // at debug level the image prints the file's hash, and it exits once it is up.
    image(&[
        "--cmdline".into(),
        "exit-after-boot log=debug".into(),
        "--config".into(),
        repository_root()
            .join(CONFIG_MODULE_TEST_FILE)
            .display()
            .to_string(),
        "--output".into(),
        artifacts_directory()
            .join(CONFIG_MODULE_TEST_DIRECTORY)
            .display()
            .to_string(),
    ])?;
    let status = Command::new(cargo_program())
        .current_dir(repository_root())
        .args(["test", "--package", "unisock-e2e"])
        .env("UNISOCK_ARTIFACTS", artifacts_directory())
        .status()
        .map_err(|error| Failure(format!("cannot run cargo: {error}")))?;
    check(status.success(), "end-to-end tests failed")
}

/// Runs `fuzz/run` with `arguments` (a campaign per target; see its header).
fn fuzz(arguments: &[String]) -> Step {
    let status = Command::new(repository_root().join("fuzz/run"))
        .current_dir(repository_root())
        .args(arguments)
        .env("CARGO_TARGET_DIR", cargo_target_directory())
        .status()
        .map_err(|error| Failure(format!("cannot run fuzz/run: {error}")))?;
    check(
        status.success(),
        "the fuzz campaign failed or found crashes (see fuzz/regressions/)",
    )
}

/// What to do about the image's rustup target, given `rustup target list --installed`'s
/// output (`None`: rustup could not be run).
#[derive(Debug, PartialEq, Eq)]
enum TargetAction {
    AlreadyInstalled,
    Add,
    /// No rustup: nothing here can add the target.
    InstallRustup,
}

fn image_target_action(installed_targets: Option<&str>) -> TargetAction {
    match installed_targets {
        None => TargetAction::InstallRustup,
        Some(list) if list.lines().any(|line| line.trim() == IMAGE_TARGET) => {
            TargetAction::AlreadyInstalled
        }
        Some(_) => TargetAction::Add,
    }
}

/// Adds the image's target when the toolchain lacks it. `rust-toolchain.toml` lists it, but
/// rustup adds listed targets only when it installs the toolchain itself (and not at all with
/// `RUSTUP_AUTO_INSTALL=0`), so a fresh machine with stable already there has no target.
fn ensure_image_target() -> Step {
    let listed = Command::new("rustup")
        .current_dir(repository_root())
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
    match image_target_action(listed.as_deref()) {
        TargetAction::AlreadyInstalled => Ok(()),
        TargetAction::InstallRustup => Err(Failure(format!(
            "rustup not found: the image needs the {IMAGE_TARGET} target, which only rustup \
             installs; install rustup (https://rustup.rs), then run this again"
        ))),
        TargetAction::Add => {
            println!("xtask: rustup target add {IMAGE_TARGET}");
            let status = Command::new("rustup")
                .current_dir(repository_root())
                .args(["target", "add", IMAGE_TARGET])
                .status()
                .map_err(|error| Failure(format!("cannot run rustup: {error}")))?;
            check(
                status.success(),
                &format!("rustup target add {IMAGE_TARGET} failed"),
            )
        }
    }
}

/// Installs the Debian packages that are missing and the image's rustup target, and nothing
/// else.
fn install_dependencies() -> Step {
    ensure_image_target()?;
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|package| !package_installed(package))
        .collect();
    let mut updated = false;
    if !missing.is_empty() {
        // Without qemu-utils: a preinstalled newer qemu-utils conflicts with Debian's
        // qemu-system-x86; apt removes it here and we install the matching one below.
        apt_get(&["update"])?;
        updated = true;
        let mut install = vec!["install", "-y", "--no-install-recommends"];
        install.extend(&missing);
        apt_get(&install)?;
    }
    if !program_found("qemu-img") {
        if !updated {
            apt_get(&["update"])?;
        }
        apt_get(&["install", "-y", "--no-install-recommends", "qemu-utils"])?;
    }
    Ok(())
}

fn package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout).contains("install ok installed")
        })
}

fn program_found(program: &str) -> bool {
    env::var_os("PATH").is_some_and(|path| {
        env::split_paths(&path).any(|directory| directory.join(program).is_file())
    })
}

fn apt_get(arguments: &[&str]) -> Step {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    let mut command = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    println!("xtask: apt-get {}", arguments.join(" "));
    let status = command
        .args(arguments)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|error| Failure(format!("cannot run apt-get: {error}")))?;
    check(
        status.success(),
        &format!("apt-get {} failed", arguments.join(" ")),
    )
}

fn cargo(arguments: &[&str]) -> Step {
    let status = Command::new(cargo_program())
        .current_dir(repository_root())
        .args(arguments)
        .status()
        .map_err(|error| Failure(format!("cannot run cargo: {error}")))?;
    check(
        status.success(),
        &format!("cargo {} failed", arguments.join(" ")),
    )
}

fn cargo_program() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn check(condition: bool, message: &str) -> Step {
    if condition {
        Ok(())
    } else {
        Err(Failure(message.into()))
    }
}

fn io_failure(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |error| Failure(format!("cannot {what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn grub_loads_the_configuration_as_the_first_module_after_the_kernel() {
        let text = grub_configuration("log=debug", Some("/boot/unisock.toml"));
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let kernel = lines
            .iter()
            .position(|line| *line == "multiboot2 /boot/unisock.elf log=debug")
            .expect(&text);
        assert_eq!(lines[kernel + 1], "module2 /boot/unisock.toml", "{text}");
        assert_eq!(lines[kernel + 2], "boot", "{text}");
    }

    #[test]
    fn without_a_configuration_grub_loads_no_module() {
        let text = grub_configuration("", None);
        assert!(!text.contains("module2"), "{text}");
        assert!(text.contains("multiboot2 /boot/unisock.elf"), "{text}");
        assert!(text.contains("    boot\n"), "{text}");
    }

    #[test]
    fn image_options_take_cmdline_config_and_output_in_any_order() {
        assert_eq!(
            ImageOptions::parse(&strings(&[
                "--output",
                "/tmp/out",
                "--config",
                "a.toml",
                "--cmdline",
                "log=debug"
            ]))
            .unwrap(),
            ImageOptions {
                cmdline: "log=debug".into(),
                config: Some("a.toml".into()),
                output: Some("/tmp/out".into()),
            }
        );
        assert_eq!(ImageOptions::parse(&[]).unwrap(), ImageOptions::default());
        assert!(ImageOptions::parse(&strings(&["--config"])).is_err());
        assert!(ImageOptions::parse(&strings(&["--frobnicate", "x"])).is_err());
    }

    #[test]
    fn a_configuration_file_that_cannot_be_read_is_named() {
        let missing = Path::new("/nonexistent/unisock.toml");
        let Failure(message) = check_configuration_file(missing).unwrap_err();
        assert!(message.contains("/nonexistent/unisock.toml"), "{message}");
        let Failure(message) = check_configuration_file(Path::new("/tmp")).unwrap_err();
        assert!(message.contains("not a regular file"), "{message}");
        check_configuration_file(&repository_root().join(CONFIG_MODULE_TEST_FILE)).unwrap();
    }

    #[test]
    fn the_target_is_added_only_when_missing() {
        let with_target = "x86_64-unknown-linux-gnu\nx86_64-unknown-none\n";
        assert_eq!(
            image_target_action(Some(with_target)),
            TargetAction::AlreadyInstalled
        );
        assert_eq!(
            image_target_action(Some("x86_64-unknown-linux-gnu\n")),
            TargetAction::Add
        );
        assert_eq!(image_target_action(Some("")), TargetAction::Add);
        // A target whose name merely contains ours does not count.
        assert_eq!(
            image_target_action(Some("x86_64-unknown-none-softfloat\n")),
            TargetAction::Add
        );
        assert_eq!(image_target_action(None), TargetAction::InstallRustup);
    }
}
