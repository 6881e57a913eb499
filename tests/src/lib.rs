//! Helpers for end-to-end tests: boot the image in QEMU and watch its serial console.
//!
//! Every boot goes through `qemu/run`, in its own process group, under a hard timeout: a
//! hung guest is killed (QEMU and all) and reported as [`Outcome::TimedOut`]. Boots run one
//! at a time, whatever the test harness's thread count, so that TCG gets the CPU it needs.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// One QEMU at a time.
static BOOT_LOCK: Mutex<()> = Mutex::new(());

/// The repository root (this crate lives in `tests/`).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives one level below the repository root")
        .to_path_buf()
}

/// Where `cargo xtask build`/`image` put the artifacts: `$UNISOCK_ARTIFACTS`, else
/// `<repo>/target/unisock`.
pub fn artifacts_directory() -> PathBuf {
    std::env::var_os("UNISOCK_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository_root().join("target").join("unisock"))
}

/// The path of an artifact; panics (fails the test, never skips it) if it is missing.
pub fn artifact(name: &str) -> PathBuf {
    let path = artifacts_directory().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask image` (or `cargo xtask test`) first",
        path.display()
    );
    path
}

/// How a boot ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `qemu/run` exited with this status (0 success, 3 guest failure, else QEMU's own).
    Exited(i32),
    /// The line the test waited for appeared; QEMU was then stopped.
    LineSeen,
    /// Neither in time: QEMU was killed.
    TimedOut,
}

/// The result of one boot: how it ended, everything the console printed, how long it took.
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub output: String,
    pub elapsed: Duration,
    /// The process group of `qemu/run` and QEMU (gone by the time `run` returns).
    pub process_group: u32,
}

impl Run {
    /// Lines of console output that start with `prefix`.
    pub fn lines_starting_with(&self, prefix: &str) -> impl Iterator<Item = &str> {
        let prefix = prefix.to_string();
        self.output
            .lines()
            .map(strip_log_prefix)
            .filter(move |line| line.starts_with(&prefix))
    }

    /// Panics with the whole console output unless a line starts with `prefix`.
    pub fn expect_line(&self, prefix: &str) -> &str {
        match self.lines_starting_with(prefix).next() {
            Some(line) => line,
            None => panic!("no line starting with {prefix:?} in:\n{}", self.output),
        }
    }
}

/// Log lines look like `[   0.001234] info  message`: this returns `message`; other lines
/// are returned whole.
fn strip_log_prefix(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((_, rest)) => rest
            .split_once(' ')
            .map_or(rest, |(_, message)| message.trim_start()),
        None => line,
    }
}

/// What to boot and how.
pub struct Boot {
    arguments: Vec<String>,
    timeout: Duration,
    until_line: Option<String>,
}

impl Boot {
    /// The ELF, booted directly (PVH) by qboot.
    pub fn kernel() -> Boot {
        let kernel = artifact("unisock.elf");
        Boot::with_arguments(vec!["--kernel".into(), kernel.display().to_string()])
    }

    /// The GRUB ISO under `firmware` (`seabios` or `ovmf`).
    pub fn iso(firmware: &str) -> Boot {
        Boot::iso_at(&artifact("unisock.iso"), firmware)
    }

    /// The GRUB ISO at `iso` under `firmware` (`seabios` or `ovmf`).
    pub fn iso_at(iso: &Path, firmware: &str) -> Boot {
        Boot::with_arguments(vec![
            "--iso".into(),
            iso.display().to_string(),
            "--firmware".into(),
            firmware.into(),
        ])
    }

    /// The qcow2 disk image under `firmware` (`seabios` or `ovmf`).
    pub fn disk(firmware: &str) -> Boot {
        let disk = artifact("unisock.qcow2");
        Boot::with_arguments(vec![
            "--disk".into(),
            disk.display().to_string(),
            "--firmware".into(),
            firmware.into(),
        ])
    }

    fn with_arguments(arguments: Vec<String>) -> Boot {
        Boot {
            arguments,
            timeout: Duration::from_secs(60),
            until_line: None,
        }
    }

    pub fn cpus(mut self, count: u32) -> Boot {
        self.arguments.extend(["--smp".into(), count.to_string()]);
        self
    }

    /// The kernel command line (only for [`Boot::kernel`]; disk images carry their own).
    pub fn cmdline(mut self, words: &str) -> Boot {
        self.arguments.extend(["--cmdline".into(), words.into()]);
        self
    }

    /// Hand the image `file` as its configuration file: the boot module (`-initrd`).
    pub fn config(mut self, file: &Path) -> Boot {
        self.arguments
            .extend(["--config".into(), file.display().to_string()]);
        self
    }

    /// Hand the image `file` as its configuration file by QEMU's fw_cfg.
    pub fn config_fw_cfg(mut self, file: &Path) -> Boot {
        self.arguments
            .extend(["--config-fw-cfg".into(), file.display().to_string()]);
        self
    }

    /// Leave out QEMU's isa-debug-exit device, as on hardware.
    pub fn without_debug_exit(mut self) -> Boot {
        self.arguments.push("--no-debug-exit".into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Boot {
        self.timeout = timeout;
        self
    }

    /// Stop the guest as soon as a console line starts with `prefix`.
    pub fn until_line(mut self, prefix: &str) -> Boot {
        self.until_line = Some(prefix.into());
        self
    }

    /// Boots, waits for the end (or the line, or the timeout), and returns what happened.
    pub fn run(self) -> Run {
        let _serial = one_boot_at_a_time();
        let started = Instant::now();
        let mut child = Command::new(repository_root().join("qemu/run"))
            .args(&self.arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("cannot start qemu/run");
        let (sender, lines) = mpsc::channel::<String>();
        let readers = [
            forward_lines(
                child.stdout.take().expect("stdout is piped"),
                sender.clone(),
            ),
            forward_lines(child.stderr.take().expect("stderr is piped"), sender),
        ];

        let deadline = started + self.timeout;
        let mut output = String::new();
        let outcome = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let seen = self
                        .until_line
                        .as_deref()
                        .is_some_and(|prefix| strip_log_prefix(&line).starts_with(prefix));
                    output.push_str(&line);
                    output.push('\n');
                    if seen {
                        kill_group(&mut child);
                        break Outcome::LineSeen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    kill_group(&mut child);
                    break Outcome::TimedOut;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("cannot wait for qemu/run");
                    break Outcome::Exited(status.code().unwrap_or(-1));
                }
            }
        };
        let elapsed = started.elapsed();
        let process_group = child.id();
        let _ = child.wait();
        for reader in readers {
            let _ = reader.join();
        }
        output.extend(lines.try_iter().map(|line| line + "\n"));
        Run {
            outcome,
            output,
            elapsed,
            process_group,
        }
    }
}

fn one_boot_at_a_time() -> MutexGuard<'static, ()> {
    BOOT_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn forward_lines(
    stream: impl Read + Send + 'static,
    sender: mpsc::Sender<String>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader
            .read_until(b'\n', &mut line)
            .is_ok_and(|read| read > 0)
        {
            let text = strip_escapes(String::from_utf8_lossy(&line).trim_end());
            line.clear();
            // A carriage return inside a line starts a new one, as on a terminal.
            for part in text.split('\r').filter(|part| !part.is_empty()) {
                if sender.send(part.to_string()).is_err() {
                    return;
                }
            }
        }
    })
}

/// Kills `qemu/run` and QEMU with it: the whole process group (with bash's builtin `kill`,
/// which `qemu/run` needs anyway, so no procps is required).
fn kill_group(child: &mut Child) {
    let group = child.id().to_string();
    let _ = Command::new("bash")
        .args(["-c", "kill -KILL -- \"-$1\"", "kill", &group])
        .status();
    let _ = child.kill();
}

/// True while a live (not zombie) process belongs to the process group `group`.
pub fn process_group_alive(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = fields.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
    })
}

/// Removes ANSI escape sequences (firmware and GRUB paint the console with them).
fn strip_escapes(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character == '\x1b' {
            // CSI: ESC [ parameters... final byte in '@'..='~'; other escapes: one more char.
            if characters.next() == Some('[') {
                for next in characters.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            }
        } else {
            plain.push(character);
        }
    }
    plain
}
