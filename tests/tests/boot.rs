//! Boot tests: the image comes up on every core it is given, reports faults and panics, and
//! boots from its disk images under BIOS and UEFI.

use std::collections::BTreeSet;
use std::time::Duration;

use unisock_e2e::{Boot, Outcome, Run, process_group_alive};

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
