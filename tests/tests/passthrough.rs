//! qemu/passthrough's checks against a fake sysfs and procfs built in a temporary directory
//! (`SYSFS_ROOT`, `PROC_ROOT`, `MODPROBE`): each missing IOMMU prerequisite gets its own
//! message, the binding writes go where the kernel expects them, and the success path stops
//! at the QEMU command (`--dry-run`). Needs neither root nor an 82599.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use unisock_e2e::repository_root;

const PORT: &str = "0000:01:00.0";
const OTHER_PORT: &str = "0000:01:00.1";
/// An 82599 SFP+ device id (X520), in drivers/src/probe.rs.
const X520: &str = "0x10fb";

/// A host as the script sees it: /sys and /proc under a temporary directory.
struct FakeHost {
    directory: PathBuf,
    modprobe: String,
}

struct Function<'a> {
    address: &'a str,
    vendor: &'a str,
    device: &'a str,
    class: &'a str,
    driver: Option<&'a str>,
    group: Option<u32>,
}

impl Function<'_> {
    fn port(driver: Option<&str>) -> Function<'_> {
        Function {
            address: PORT,
            vendor: "0x8086",
            device: X520,
            class: "0x020000",
            driver,
            group: Some(7),
        }
    }
}

/// What one run of the script did.
struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

impl FakeHost {
    /// An Intel host with the IOMMU on (group 7 exists), vfio-pci not loaded but loadable.
    fn new() -> FakeHost {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let directory = std::env::temp_dir().join(format!(
            "unisock-passthrough-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&directory);
        let host = FakeHost {
            directory,
            modprobe: String::new(),
        };
        fs::create_dir_all(host.sys("kernel/iommu_groups/7/devices")).unwrap();
        fs::create_dir_all(host.sys("bus/pci/devices")).unwrap();
        fs::create_dir_all(host.sys("bus/pci/drivers")).unwrap();
        fs::write(host.sys("bus/pci/drivers_probe"), "").unwrap();
        fs::create_dir_all(host.proc_path("")).unwrap();
        host.set_cmdline("BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt");
        host.set_cpu_vendor("GenuineIntel");
        let loads_vfio_pci = format!(
            "#!/bin/sh\n[ \"$1\" = --dry-run ] || mkdir -p '{}'\n",
            host.sys("bus/pci/drivers/vfio-pci").display()
        );
        host.with_modprobe(&loads_vfio_pci)
    }

    fn sys(&self, path: &str) -> PathBuf {
        self.directory.join("sys").join(path)
    }

    fn proc_path(&self, path: &str) -> PathBuf {
        self.directory.join("proc").join(path)
    }

    fn set_cmdline(&self, cmdline: &str) {
        fs::write(self.proc_path("cmdline"), format!("{cmdline}\n")).unwrap();
    }

    fn set_cpu_vendor(&self, vendor: &str) {
        fs::write(
            self.proc_path("cpuinfo"),
            format!("processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: a CPU\n"),
        )
        .unwrap();
    }

    /// MODPROBE becomes a script with this text.
    fn with_modprobe(mut self, script: &str) -> FakeHost {
        let path = self.directory.join("modprobe");
        fs::write(&path, script).unwrap();
        Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        self.modprobe = path.display().to_string();
        self
    }

    fn without_iommu_groups(&self) {
        fs::remove_dir_all(self.sys("kernel/iommu_groups/7")).unwrap();
    }

    fn load_vfio_pci(&self) {
        self.driver_directory("vfio-pci");
    }

    fn driver_directory(&self, driver: &str) -> PathBuf {
        let directory = self.sys(&format!("bus/pci/drivers/{driver}"));
        fs::create_dir_all(&directory).unwrap();
        for file in ["bind", "unbind"] {
            if !directory.join(file).exists() {
                fs::write(directory.join(file), "").unwrap();
            }
        }
        directory
    }

    fn add(&self, function: Function) {
        let device = self.sys(&format!("bus/pci/devices/{}", function.address));
        fs::create_dir_all(&device).unwrap();
        fs::write(device.join("vendor"), format!("{}\n", function.vendor)).unwrap();
        fs::write(device.join("device"), format!("{}\n", function.device)).unwrap();
        fs::write(device.join("class"), format!("{}\n", function.class)).unwrap();
        fs::write(device.join("driver_override"), "(null)\n").unwrap();
        if let Some(driver) = function.driver {
            symlink(self.driver_directory(driver), device.join("driver")).unwrap();
        }
        if let Some(group) = function.group {
            let group_directory = self.sys(&format!("kernel/iommu_groups/{group}"));
            fs::create_dir_all(group_directory.join("devices")).unwrap();
            symlink(&group_directory, device.join("iommu_group")).unwrap();
            symlink(
                &device,
                group_directory.join("devices").join(function.address),
            )
            .unwrap();
        }
    }

    fn run(&self, arguments: &[&str]) -> Outcome {
        let output = Command::new(repository_root().join("qemu/passthrough"))
            .args(arguments)
            .env("SYSFS_ROOT", self.sys(""))
            .env("PROC_ROOT", self.proc_path(""))
            .env("MODPROBE", &self.modprobe)
            .output()
            .expect("qemu/passthrough runs");
        Outcome {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.sys(path)).unwrap()
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.directory);
    }
}

/// Runs a dry run of PORT and expects it to fail with `message` in its error output.
fn fails_with(host: &FakeHost, message: &str) {
    let outcome = host.run(&["--dry-run", "01:00.0"]);
    assert_eq!(outcome.status, 1, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stderr.contains(message),
        "wanted {message:?} in:\n{}",
        outcome.stderr
    );
    assert!(
        !outcome.stdout.contains("would run"),
        "it went on to QEMU:\n{}",
        outcome.stdout
    );
}

#[test]
fn an_intel_host_without_intel_iommu_on_is_told_to_add_it() {
    let host = FakeHost::new();
    host.add(Function::port(Some("ixgbe")));
    host.without_iommu_groups();
    host.set_cmdline("BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet");
    fails_with(&host, "has no intel_iommu=on");
}

#[test]
fn an_intel_host_with_intel_iommu_on_but_no_groups_has_vt_d_off_in_firmware() {
    let host = FakeHost::new();
    host.add(Function::port(Some("ixgbe")));
    host.without_iommu_groups();
    fails_with(&host, "turn on VT-d in the firmware");
}

#[test]
fn an_amd_host_without_groups_is_told_about_amd_vi() {
    let host = FakeHost::new();
    host.without_iommu_groups();
    host.set_cpu_vendor("AuthenticAMD");
    host.set_cmdline("root=/dev/sda1");
    fails_with(&host, "turn on AMD-Vi");
}

#[test]
fn an_absent_function_is_named() {
    let host = FakeHost::new();
    fails_with(&host, "no PCI function 0000:01:00.0");
}

#[test]
fn a_malformed_address_is_refused() {
    let host = FakeHost::new();
    let outcome = host.run(&["--dry-run", "1:0"]);
    assert_eq!(outcome.status, 1);
    assert!(
        outcome.stderr.contains("not a PCI function address"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_function_of_another_vendor_is_refused() {
    let host = FakeHost::new();
    host.add(Function {
        vendor: "0x10ec",
        device: "0x8168",
        ..Function::port(Some("r8169"))
    });
    fails_with(&host, "is not an Intel device (vendor 0x10ec");
}

#[test]
fn an_intel_function_that_is_not_an_82599_is_refused() {
    let host = FakeHost::new();
    // An I210, which the image does not drive.
    host.add(Function {
        device: "0x1533",
        ..Function::port(Some("igb"))
    });
    fails_with(&host, "is Intel device 0x1533, not an 82599 variant");
}

#[test]
fn every_82599_id_of_the_probe_table_is_accepted() {
    let probe = fs::read_to_string(repository_root().join("drivers/src/probe.rs")).unwrap();
    let ids: Vec<String> = probe
        .split("intel_82599(0x")
        .skip(1)
        .map(|rest| format!("0x{}", rest[..4].to_lowercase()))
        .collect();
    assert!(ids.len() >= 13, "{ids:?}");
    for id in ids {
        let host = FakeHost::new();
        host.load_vfio_pci();
        host.add(Function {
            device: &id,
            ..Function::port(Some("ixgbe"))
        });
        let outcome = host.run(&["--dry-run", "01:00.0"]);
        assert_eq!(outcome.status, 0, "{id}: {}", outcome.stderr);
    }
}

#[test]
fn a_function_without_an_iommu_group_is_named() {
    let host = FakeHost::new();
    host.add(Function {
        group: None,
        ..Function::port(Some("ixgbe"))
    });
    fails_with(&host, "0000:01:00.0 has no IOMMU group");
}

#[test]
fn another_device_of_the_group_on_a_host_driver_is_named() {
    let host = FakeHost::new();
    host.load_vfio_pci();
    host.add(Function::port(Some("ixgbe")));
    host.add(Function {
        address: OTHER_PORT,
        ..Function::port(Some("ixgbe"))
    });
    fails_with(
        &host,
        "IOMMU group 7 of 0000:01:00.0 also holds 0000:01:00.1, bound to ixgbe",
    );
}

#[test]
fn group_members_on_vfio_pci_without_a_driver_or_bridges_are_fine() {
    let host = FakeHost::new();
    host.load_vfio_pci();
    host.add(Function::port(Some("ixgbe")));
    host.add(Function {
        address: OTHER_PORT,
        ..Function::port(Some("vfio-pci"))
    });
    host.add(Function {
        address: "0000:01:00.2",
        ..Function::port(None)
    });
    host.add(Function {
        address: "0000:00:01.0",
        device: "0x1901",
        class: "0x060400",
        ..Function::port(Some("pcieport"))
    });
    let outcome = host.run(&["--dry-run", "01:00.0"]);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
}

#[test]
fn vfio_pci_that_cannot_be_loaded_is_named() {
    let host = FakeHost::new().with_modprobe("#!/bin/sh\nexit 1\n");
    host.add(Function::port(Some("ixgbe")));
    fails_with(
        &host,
        "the vfio-pci module is not loaded and cannot be loaded",
    );
}

#[test]
fn a_dry_run_prints_the_binding_and_the_qemu_command_and_changes_nothing() {
    let host = FakeHost::new();
    host.add(Function::port(Some("ixgbe")));
    let config = host.directory.join("proxy.toml");
    fs::write(&config, "proxy = 80\n").unwrap();
    let outcome = host.run(&[
        "01:00.0",
        "--dry-run",
        "--smp",
        "4",
        "--memory",
        "1G",
        "--cmdline",
        "ip=192.0.2.10/24 ixgbe.selftest=1",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    let device = host.sys("bus/pci/devices/0000:01:00.0");
    for expected in [
        "would load vfio-pci".to_string(),
        format!(
            "would write 'vfio-pci' to {}",
            device.join("driver_override").display()
        ),
        format!(
            "would write '{PORT}' to {}",
            device.join("driver/unbind").display()
        ),
        format!(
            "would write '{PORT}' to {}",
            host.sys("bus/pci/drivers_probe").display()
        ),
    ] {
        assert!(
            outcome.stdout.contains(&expected),
            "wanted {expected:?} in:\n{}",
            outcome.stdout
        );
    }
    let run_line = outcome
        .stdout
        .lines()
        .find(|line| line.starts_with("qemu/passthrough: would run:"))
        .unwrap_or_else(|| panic!("no QEMU command:\n{}", outcome.stdout));
    let run_script = repository_root().join("qemu/run");
    for expected in [
        run_script.to_str().unwrap(),
        "--smp 4",
        "--memory 1G",
        "--cmdline ip=192.0.2.10/24\\ ixgbe.selftest=1",
        "--kvm",
        &format!("--initrd {}", config.display()),
        "-- -device vfio-pci\\,host=0000:01:00.0",
    ] {
        assert!(
            run_line.contains(expected),
            "wanted {expected:?} in {run_line}"
        );
    }
    // Nothing was written.
    assert_eq!(
        host.read("bus/pci/devices/0000:01:00.0/driver_override"),
        "(null)\n"
    );
    assert_eq!(host.read("bus/pci/drivers/ixgbe/unbind"), "");
    assert_eq!(host.read("bus/pci/drivers_probe"), "");
    assert!(!host.sys("bus/pci/drivers/vfio-pci").exists());
}

#[test]
fn a_function_already_on_vfio_pci_goes_straight_to_qemu() {
    let host = FakeHost::new();
    host.add(Function::port(Some("vfio-pci")));
    let outcome = host.run(&["--dry-run", "--tcg", "0000:01:00.0"]);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert!(
        !outcome.stdout.contains("would write"),
        "{}",
        outcome.stdout
    );
    let run_line = outcome.stdout.lines().last().unwrap();
    assert!(run_line.contains("would run:"), "{}", outcome.stdout);
    assert!(!run_line.contains("--kvm"), "{run_line}");
}

#[test]
fn binding_writes_the_override_unbinds_probes_and_checks_that_it_took() {
    let host = FakeHost::new();
    host.add(Function::port(Some("ixgbe")));
    // A fake sysfs does not rebind anything, so the script must notice that the device is
    // still on ixgbe after its writes, and stop before QEMU.
    let outcome = host.run(&["01:00.0"]);
    assert_eq!(outcome.status, 1, "{}{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("binding 0000:01:00.0 to vfio-pci did not take: it is bound to 'ixgbe'"),
        "{}",
        outcome.stderr
    );
    assert!(
        host.sys("bus/pci/drivers/vfio-pci").is_dir(),
        "modprobe ran"
    );
    assert_eq!(
        host.read("bus/pci/devices/0000:01:00.0/driver_override"),
        "vfio-pci\n"
    );
    assert_eq!(
        host.read("bus/pci/drivers/ixgbe/unbind"),
        format!("{PORT}\n")
    );
    assert_eq!(host.read("bus/pci/drivers_probe"), format!("{PORT}\n"));
}

#[test]
fn restore_clears_the_override_and_lets_the_kernel_probe_again() {
    let host = FakeHost::new();
    host.add(Function::port(Some("vfio-pci")));
    fs::write(
        host.sys("bus/pci/devices/0000:01:00.0/driver_override"),
        "vfio-pci\n",
    )
    .unwrap();
    let outcome = host.run(&["--restore", "01:00.0"]);
    assert_eq!(outcome.status, 0, "{}", outcome.stderr);
    assert_eq!(
        host.read("bus/pci/devices/0000:01:00.0/driver_override"),
        "\n"
    );
    assert_eq!(
        host.read("bus/pci/drivers/vfio-pci/unbind"),
        format!("{PORT}\n")
    );
    assert_eq!(host.read("bus/pci/drivers_probe"), format!("{PORT}\n"));
}

#[test]
fn the_script_reads_the_roots_it_is_given() {
    // The fake tree must be what the script reads: point it at an empty root and every
    // check that passes above fails at the first prerequisite.
    let host = FakeHost::new();
    host.add(Function::port(Some("ixgbe")));
    let empty = host.directory.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let output = Command::new(repository_root().join("qemu/passthrough"))
        .args(["--dry-run", "01:00.0"])
        .env("SYSFS_ROOT", &empty)
        .env("PROC_ROOT", Path::new(&empty))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the IOMMU is off"));
}
