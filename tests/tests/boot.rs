//! Boot tests: the image comes up on every core it is given, reports faults and panics,
//! boots from its disk images under BIOS and UEFI, and receives its configuration file.

mod guest;

use std::collections::BTreeSet;
use std::time::Duration;

use guest::{Guest, ScratchFile};

use unisock_e2e::{Boot, Outcome, Run, artifacts_directory, process_group_alive, repository_root};

/// The key=value fields of a line such as `unisock: ready cpus=4`.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// Boots with `cpus` cores and checks the whole bring-up report.
fn boots_on(cpus: u32) -> Run {
    let run = Boot::kernel()
        .cpus(cpus)
        .cmdline("exit-after-boot")
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(
        run.outcome,
        Outcome::Exited(0),
        "boot failed:\n{}",
        run.output
    );

    let ready = run.expect_line("unisock: ready");
    assert_eq!(
        field(ready, "cpus"),
        Some(cpus.to_string().as_str()),
        "{ready}"
    );

    // Every application processor ran its own code and reported its own APIC id.
    let reported: Vec<(u32, u32)> = run
        .lines_starting_with("cpu ")
        .filter(|line| line.contains(" online "))
        .map(|line| {
            let index = line["cpu ".len()..]
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let apic_id = field(line, "apic_id").unwrap().parse().unwrap();
            assert_eq!(field(line, "heap"), Some("ok"), "{line}");
            (index, apic_id)
        })
        .collect();
    let indices: BTreeSet<u32> = reported.iter().map(|(index, _)| *index).collect();
    let apic_ids: BTreeSet<u32> = reported.iter().map(|(_, apic_id)| *apic_id).collect();
    assert_eq!(indices, (1..cpus).collect(), "{}", run.output);
    assert_eq!(
        apic_ids.len(),
        (cpus - 1) as usize,
        "APIC ids repeat:\n{}",
        run.output
    );

    run.expect_line("heap: ok");
    assert!(
        run.lines_starting_with("pci: 00:00.0").count() == 1,
        "no host bridge listed:\n{}",
        run.output
    );
    assert!(
        run.lines_starting_with("pci: ").count() >= 4,
        "{}",
        run.output
    );
    run
}

#[test]
fn boots_on_one_cpu() {
    boots_on(1);
}

#[test]
fn boots_on_two_cpus() {
    boots_on(2);
}

#[test]
fn boots_on_four_cpus() {
    boots_on(4);
}

#[test]
fn page_fault_prints_a_register_dump_and_fails() {
    let run = Boot::kernel()
        .cmdline("test-fault=page exit-after-boot")
        .run();
    assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
    let fault = run.expect_line("unisock: fault");
    assert!(fault.contains("vector=14 (page fault)"), "{fault}");
    assert!(
        run.output.contains("cr2=0x0000123456789000"),
        "{}",
        run.output
    );
    assert!(run.output.contains("rip=0x"), "{}", run.output);
    assert!(run.output.contains("r15=0x"), "{}", run.output);
}

#[test]
fn other_exceptions_are_reported_too() {
    for (fault, report) in [
        ("divide", "vector=0 (divide error)"),
        ("invalid-opcode", "vector=6 (invalid opcode)"),
    ] {
        let run = Boot::kernel().cmdline(&format!("test-fault={fault}")).run();
        assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
        assert!(
            run.expect_line("unisock: fault").contains(report),
            "{}",
            run.output
        );
    }
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_reported_from_the_fault_stack() {
    for (cpus, cpu) in [(1, 0), (2, 1)] {
        let run = Boot::kernel()
            .cpus(cpus)
            .cmdline(&format!("test-fault=stack-overflow test-fault-cpu={cpu}"))
            .run();
        assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
        let fault = run.expect_line("unisock: fault");
        assert!(
            fault.contains(&format!("cpu={cpu} vector=8 (double fault)")),
            "{fault}"
        );
    }
}

#[test]
fn fault_on_an_application_processor_names_that_cpu() {
    let run = Boot::kernel()
        .cpus(2)
        .cmdline("test-fault=page test-fault-cpu=1")
        .run();
    assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
    let fault = run.expect_line("unisock: fault");
    assert!(fault.contains("cpu=1 vector=14 (page fault)"), "{fault}");
}

#[test]
fn rust_panic_prints_and_fails() {
    let run = Boot::kernel().cmdline("test-fault=panic").run();
    assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
    let panic = run.expect_line("unisock: panic");
    assert!(panic.contains("test panic requested"), "{panic}");
}

#[test]
fn bad_command_line_is_a_clear_panic() {
    let run = Boot::kernel().cmdline("exit-after-boot frobnicate=1").run();
    assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
    let panic = run.expect_line("unisock: panic");
    assert!(panic.contains("unknown word `frobnicate`"), "{panic}");
}

#[test]
fn bad_responder_body_stops_the_boot_naming_the_word() {
    for (value, reason) in [
        ("0", "it must be 1 to 1048576"),
        ("1048577", "it must be 1 to 1048576"),
        ("64k", ""),
    ] {
        let run = Boot::kernel()
            .cmdline(&format!(
                "exit-after-boot responder=80 responder.body={value}"
            ))
            .run();
        assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
        let panic = run.expect_line("unisock: panic");
        assert!(
            panic.contains(&format!("`responder.body` does not accept `{value}`")),
            "{panic}"
        );
        assert!(panic.contains(reason), "{panic}");
        assert!(run.lines_starting_with("unisock: ready").next().is_none());
    }
}

#[test]
fn qcow2_disk_boots_under_ovmf() {
    let run = Boot::disk("ovmf")
        .until_line("unisock: ready")
        .timeout(Duration::from_secs(180))
        .run();
    assert_eq!(run.outcome, Outcome::LineSeen, "{}", run.output);
    run.expect_line("boot: protocol=multiboot2");
    eprintln!("qcow2 under OVMF: ready after {:?}", run.elapsed);
}

#[test]
fn without_debug_exit_success_powers_off_by_acpi() {
    let run = Boot::kernel()
        .cmdline("exit-after-boot")
        .without_debug_exit()
        .run();
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    run.expect_line("unisock: ready cpus=1");
}

#[test]
fn without_debug_exit_failure_halts_with_the_report_on_screen() {
    let run = Boot::kernel()
        .cmdline("test-fault=panic")
        .without_debug_exit()
        .timeout(Duration::from_secs(5))
        .run();
    assert_eq!(run.outcome, Outcome::TimedOut, "{}", run.output);
    run.expect_line("unisock: panic");
}

#[test]
fn hung_guest_is_killed_by_the_timeout() {
    // Without exit-after-boot the image idles after boot: the harness must kill it.
    let run = Boot::kernel().timeout(Duration::from_secs(5)).run();
    assert_eq!(run.outcome, Outcome::TimedOut, "{}", run.output);
    run.expect_line("unisock: ready cpus=1");
    let gone = (0..40).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        !process_group_alive(run.process_group)
    });
    assert!(gone, "QEMU survived the timeout");
}

#[test]
fn iso_boots_under_seabios() {
    let run = Boot::iso("seabios")
        .cpus(2)
        .until_line("unisock: ready")
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(run.outcome, Outcome::LineSeen, "{}", run.output);
    run.expect_line("boot: protocol=multiboot2");
    assert_eq!(field(run.expect_line("unisock: ready"), "cpus"), Some("2"));
    eprintln!("ISO under SeaBIOS: ready after {:?}", run.elapsed);
}

#[test]
fn iso_boots_under_ovmf() {
    let run = Boot::iso("ovmf")
        .cpus(2)
        .until_line("unisock: ready")
        .timeout(Duration::from_secs(180))
        .run();
    assert_eq!(run.outcome, Outcome::LineSeen, "{}", run.output);
    run.expect_line("boot: protocol=multiboot2");
    assert_eq!(field(run.expect_line("unisock: ready"), "cpus"), Some("2"));
    eprintln!("ISO under OVMF: ready after {:?}", run.elapsed);
}

#[test]
fn qcow2_disk_boots_under_seabios() {
    let run = Boot::disk("seabios")
        .until_line("unisock: ready")
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(run.outcome, Outcome::LineSeen, "{}", run.output);
    run.expect_line("boot: protocol=multiboot2");
    eprintln!("qcow2 under SeaBIOS: ready after {:?}", run.elapsed);
}

/// The largest configuration file the image takes (boot/src/configuration_file.rs).
const MAX_CONFIGURATION_BYTES: usize = 1 << 20;

/// `contents` in a scratch file of the temporary directory, removed however the test ends.
fn scratch_file(name: &str, contents: &[u8]) -> ScratchFile {
    let path = std::env::temp_dir().join(format!("unisock-e2e-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).expect("cannot write a scratch file");
    ScratchFile(path)
}

/// A configuration file of TOML comments only (valid, and empty, whatever settings the
/// parser knows), `bytes` long.
fn comment_file(bytes: usize) -> Vec<u8> {
    let line = b"# a configuration file that says nothing, to count its bytes\n";
    line.iter().copied().cycle().take(bytes).collect()
}

/// The 32-bit FNV-1a hash the image prints at debug level (`config: fnv1a32 0x...`).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Checks that the image took exactly `contents` from `source`.
fn expect_configuration(run: &Run, contents: &[u8], source: &str) {
    run.expect_line(&format!("config: {} bytes from {source}", contents.len()));
    assert_eq!(
        run.expect_line("config: fnv1a32 "),
        format!("config: fnv1a32 0x{:08x}", fnv1a32(contents)),
        "the image's bytes differ from the file's"
    );
}

#[test]
fn a_configuration_file_as_initrd_arrives_as_the_boot_module() {
    let contents = comment_file(1234);
    let file = scratch_file("initrd.toml", &contents);
    let run = Boot::kernel()
        .config(&file.0)
        .cmdline("exit-after-boot log=debug")
        .run();
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    expect_configuration(&run, &contents, "boot module");
    run.expect_line("unisock: ready");
}

#[test]
fn a_configuration_file_by_fw_cfg_arrives_from_fw_cfg() {
    let contents = comment_file(4097);
    let file = scratch_file("fw-cfg.toml", &contents);
    let run = Boot::kernel()
        .config_fw_cfg(&file.0)
        .cmdline("exit-after-boot log=debug")
        .run();
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    expect_configuration(&run, &contents, "fw_cfg opt/unisock/config");
}

#[test]
fn without_a_configuration_file_the_console_says_none() {
    let run = Boot::kernel().cmdline("exit-after-boot").run();
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    let lines: Vec<&str> = run.lines_starting_with("config: ").collect();
    assert_eq!(lines, ["config: none"], "{}", run.output);
}

#[test]
fn with_both_the_boot_module_wins_and_fw_cfg_is_named_ignored() {
    let module = comment_file(100);
    let firmware_config = comment_file(200);
    let module_file = scratch_file("both-module.toml", &module);
    let firmware_config_file = scratch_file("both-fw-cfg.toml", &firmware_config);
    let run = Boot::kernel()
        .config(&module_file.0)
        .config_fw_cfg(&firmware_config_file.0)
        .cmdline("exit-after-boot log=debug")
        .run();
    assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
    expect_configuration(&run, &module, "boot module");
    run.expect_line("config: fw_cfg opt/unisock/config ignored");
}

#[test]
fn a_configuration_file_over_one_mib_stops_the_boot_naming_size_and_limit() {
    let largest = scratch_file("largest.toml", &comment_file(MAX_CONFIGURATION_BYTES));
    let too_large = scratch_file("too-large.toml", &comment_file(MAX_CONFIGURATION_BYTES + 1));
    for (source, boot) in [
        ("boot module", Boot::kernel().config(&largest.0)),
        (
            "fw_cfg opt/unisock/config",
            Boot::kernel().config_fw_cfg(&largest.0),
        ),
    ] {
        let run = boot.cmdline("exit-after-boot").run();
        assert_eq!(run.outcome, Outcome::Exited(0), "{}", run.output);
        run.expect_line(&format!(
            "config: {MAX_CONFIGURATION_BYTES} bytes from {source}"
        ));
    }
    for (source, boot) in [
        ("boot module", Boot::kernel().config(&too_large.0)),
        (
            "fw_cfg opt/unisock/config",
            Boot::kernel().config_fw_cfg(&too_large.0),
        ),
    ] {
        let run = boot.cmdline("exit-after-boot").run();
        assert_eq!(run.outcome, Outcome::Exited(3), "{}", run.output);
        let panic = run.expect_line("unisock: panic");
        assert!(
            panic.contains(&format!(
                "config: the file from the {source} is 1048577 bytes, more than the limit of \
                 1048576 bytes"
            )),
            "{panic}"
        );
        assert!(run.lines_starting_with("unisock: ready").next().is_none());
    }
}

#[test]
fn an_iso_built_with_a_configuration_file_hands_it_over_as_a_grub_module() {
    // `cargo xtask test` builds this ISO with `--config` (and `exit-after-boot log=debug`).
    let iso = artifacts_directory().join("config-module/unisock.iso");
    assert!(
        iso.is_file(),
        "{} is missing: run `cargo xtask image --config tests/data/config-module.toml \
         --cmdline \"exit-after-boot log=debug\" --output {}`",
        iso.display(),
        artifacts_directory().join("config-module").display()
    );
    let contents = std::fs::read(repository_root().join("tests/data/config-module.toml"))
        .expect("the test's configuration file");
    for firmware in ["seabios", "ovmf"] {
        let run = Boot::iso_at(&iso, firmware)
            .timeout(Duration::from_secs(180))
            .run();
        assert_eq!(
            run.outcome,
            Outcome::Exited(0),
            "{firmware}:\n{}",
            run.output
        );
        run.expect_line("boot: protocol=multiboot2");
        expect_configuration(&run, &contents, "boot module");
        eprintln!("ISO with a module under {firmware}: {:?}", run.elapsed);
    }
}

#[test]
fn net_run_hands_its_configuration_file_to_the_image() {
    let contents = comment_file(321);
    let file = scratch_file("net-run.toml", &contents);
    let path = file.0.display().to_string();
    let guest = Guest::boot_with(1, None, &["--config", &path]);
    let output = guest.output();
    assert!(
        output.contains("config: 321 bytes from boot module"),
        "{output}"
    );
}
