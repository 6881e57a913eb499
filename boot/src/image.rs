//! The boot sequence of the bootstrap processor and of every application processor, from the
//! first Rust instruction to `unisock: ready`.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::Write;
use core::panic::PanicInfo;

use unisock_app::config::{Configuration, is_app_key, redacted_command_line};
use unisock_kernel::config::{Config, TestFault};
use unisock_kernel::mem::{FRAME_SIZE, MemoryMap};

use crate::apic::LocalApic;
use crate::boot_info::BootInfo;
use crate::exit::{ExitCode, exit, halt_forever};
use crate::paging::UncachedSummary;
use crate::start::IDENTITY_MAPPED_GIB;
use crate::{
    acpi, clock, configuration_file, console, cpu, device_memory, memory, network, paging, pci,
    self_test, smp,
};

unsafe extern "C" {
    /// The page below the boot stack, and the stack's top (start.rs).
    static boot_stack_guard: u8;
    static boot_stack_top: u8;
}

/// The command line, parsed by the bootstrap processor before any other core starts.
static CONFIG: spin::Once<Config> = spin::Once::new();

/// The bootstrap processor's Rust entry, called by `start64` with the loader's `eax`/`ebx`.
pub extern "C" fn boot_main(loader_magic: u32, boot_information: u32) -> ! {
    console::init();
    // SAFETY: these are the registers the loader handed to `start32`; nothing has touched
    // memory yet except .bss and the boot stack, which lie inside the image.
    let mut boot_info = match unsafe { BootInfo::read(loader_magic, boot_information) } {
        Ok(info) => info,
        Err(error) => panic!("boot information: {error:?}"),
    };
    // The application's words are the application's to parse (after the heap is up, below).
    let config = match Config::parse_with(boot_info.command_line(), is_app_key) {
        Ok(config) => CONFIG.call_once(|| config),
        Err(error) => panic!("command line: {error}"),
    };
    console::set_max_level(config.log_level);
    let (tsc_hz, clock_reference) = match clock::calibrate() {
        Ok(calibration) => calibration,
        Err(error) => panic!("clock: {error:?}"),
    };
    // Printed with secret words' values (the admin token) redacted: the console is a log.
    info!(
        "boot: protocol={} command line \"{}\"{}",
        boot_info.protocol.name(),
        redacted_command_line(boot_info.command_line()),
        if boot_info.command_line_truncated {
            " (truncated)"
        } else {
            ""
        }
    );
    info!(
        "clock: tsc {}.{:03} MHz ({clock_reference:?})",
        tsc_hz / 1_000_000,
        tsc_hz / 1_000 % 1_000
    );

    let trampoline_page = boot_info
        .memory_map
        .find_usable_below(0x1000, 0x10_0000, FRAME_SIZE);
    for region in boot_info.memory_map.regions() {
        debug!(
            "memory: 0x{:012x}-0x{:012x} {:?}",
            region.start, region.end, region.kind
        );
    }
    // The firmware's view of RAM, before `memory::init` reserves the image in it.
    let firmware_map = boot_info.memory_map.clone();
    let summary = match memory::init(&mut boot_info.memory_map) {
        Ok(summary) => summary,
        Err(error) => panic!("memory: {error:?}"),
    };
    info!(
        "memory: {} MiB usable, heap {} MiB at 0x{:x}, {} MiB free frames",
        summary.usable_bytes >> 20,
        summary.heap.bytes() >> 20,
        summary.heap.start,
        summary.frames_free_bytes >> 20
    );
    check_heap(0);
    // The configuration file's bytes, if the loader or the VM gave one.
    let configuration_file = match configuration_file::configuration_file(&boot_info) {
        Ok(file) => file,
        Err(error) => panic!("config: {error}"),
    };
    match &configuration_file {
        Some(file) => info!(
            "config: {} bytes from {}",
            file.bytes.len(),
            file.source.name()
        ),
        None => info!("config: none"),
    }
    let application = application_configuration(
        config,
        boot_info.command_line(),
        configuration_file
            .as_ref()
            .map(|file| file.bytes.as_slice()),
    );
    let guard_page = (&raw const boot_stack_guard) as u64;
    if let Err(error) = paging::unmap_guard_page(guard_page) {
        panic!("boot stack guard page: {error:?}");
    }
    uncache_device_memory(&firmware_map);

    let apic = LocalApic::enable();
    let bsp_apic_id = apic.id();
    let stack_top = (&raw const boot_stack_top) as u64;
    if let Err(error) = cpu::install(0, bsp_apic_id, stack_top) {
        panic!("cpu 0: {error:?}");
    }

    let cpus = start_processors(&boot_info, &apic, trampoline_page);
    if let Some(kind) = config.self_test {
        self_test::run(kind, cpus)
    }

    let devices = pci::enumerate();
    for device in devices {
        info!(
            "pci: {} {:04x}:{:04x} class {:02x}.{:02x}.{:02x} {}",
            device.address,
            device.vendor_id,
            device.device_id,
            device.class,
            device.subclass,
            device.interface,
            device.class_name()
        );
    }
    info!("pci: {} functions", devices.len());
    // The ready line names the first listener and its pool's size, then the rest.
    let proxy_summary = application.listener_settings(0).map(|settings| {
        (
            settings.port,
            settings.pool.backends.len(),
            application.listeners.len(),
        )
    });
    let admin_port = application.admin.as_ref().map(|admin| admin.port);
    let network = network::start(config, application, cpus, devices);
    let mut ready = alloc::string::String::new();
    match &network {
        Some(summary) => {
            let _ = write!(
                ready,
                "unisock: ready cpus={cpus} ip={} queues={}",
                summary.address, summary.queues
            );
        }
        None => {
            let _ = write!(ready, "unisock: ready cpus={cpus} ip=none queues=0");
        }
    }
    if let Some((port, backends, listeners)) = proxy_summary {
        let _ = write!(ready, " proxy={port} backends={backends}");
        if listeners > 1 {
            let _ = write!(ready, " listeners={listeners}");
        }
    }
    if let Some(port) = admin_port {
        let _ = write!(ready, " admin={port}");
    }
    println!("{ready}");

    if let Some(fault) = config.test_fault.filter(|_| config.test_fault_cpu == 0) {
        trigger(fault);
    }
    if config.exit_after_boot {
        exit(ExitCode::Success);
    }
    if network.is_some() {
        network::run_core(0)
    }
    halt_forever()
}

/// The application's configuration (listeners, pools, admin, access log) from the
/// configuration file, if the loader gave one, and the command line's words, checked whole: a
/// bad key or word, or a listener on a port another service takes, stops the boot with a
/// message naming it and the file's line.
fn application_configuration(config: &Config, line: &str, file: Option<&[u8]>) -> Configuration {
    let text = file.map(|bytes| match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => panic!(
            "configuration: the file is not UTF-8 (byte {})",
            error.valid_up_to()
        ),
    });
    let reserved: alloc::vec::Vec<u16> =
        [config.responder_port, config.sink_port, config.source_port]
            .into_iter()
            .flatten()
            .collect();
    match Configuration::from_sources(text, line, &reserved) {
        Ok(configuration) => configuration,
        Err(error) if text.is_some() && error.line.is_some() => panic!("configuration: {error}"),
        Err(error) => panic!("command line or configuration: {error}"),
    }
}

/// Makes everything the firmware's memory map does not call RAM uncached (`device_memory`),
/// before the APIC, PCI or any other core touches a device.
fn uncache_device_memory(firmware_map: &MemoryMap) {
    let mut total = UncachedSummary::default();
    device_memory::for_each_device_range(firmware_map, IDENTITY_MAPPED_GIB << 30, |range| {
        match paging::make_uncached(range.clone()) {
            Ok(summary) => {
                total.huge_pages += summary.huge_pages;
                total.small_pages += summary.small_pages;
            }
            Err(error) => panic!("uncached 0x{:x}-0x{:x}: {error:?}", range.start, range.end),
        }
    });
    paging::flush_caches();
    debug!(
        "paging: device memory uncached: {} 2 MiB pages, {} 4 KiB pages",
        total.huge_pages, total.small_pages
    );
}

/// Reads the MADT and starts every other CPU; returns how many cores are online.
fn start_processors(boot_info: &BootInfo, apic: &LocalApic, trampoline_page: Option<u64>) -> u32 {
    let acpi = match acpi::init(boot_info) {
        Ok(acpi) => acpi,
        Err(error) => {
            warn!("acpi: {error:?}: running on the bootstrap processor only");
            return 1;
        }
    };
    let ids: Vec<u32> = acpi
        .processors
        .iter()
        .map(|processor| processor.apic_id)
        .collect();
    info!(
        "acpi: revision {} local apic 0x{:x}, {} cpus, apic ids {:?}",
        acpi.revision,
        acpi.local_apic_address,
        ids.len(),
        ids
    );
    if ids.len() <= 1 {
        return 1;
    }
    let Some(trampoline_page) = trampoline_page else {
        warn!("smp: no free page below 1 MiB for the trampoline: one cpu only");
        return 1;
    };
    let started = clock::now();
    match smp::start_application_processors(apic, &acpi.processors, trampoline_page) {
        Ok(online) => {
            let elapsed = clock::now().saturating_since(started);
            info!(
                "smp: {online} of {} application processors online in {} us (trampoline 0x{trampoline_page:x})",
                ids.len() - 1,
                elapsed.as_micros()
            );
            if online + 1 < ids.len() as u32 {
                warn!(
                    "smp: {} cpus did not come up",
                    ids.len() as u32 - 1 - online
                );
            }
            online + 1
        }
        Err(error) => {
            warn!("smp: {error:?}");
            1
        }
    }
}

/// An application processor's Rust entry, called by `ap_start64` on its own stack.
pub extern "C" fn ap_main(slot: u32) -> ! {
    let index = slot + 1;
    let apic = LocalApic::enable();
    let apic_id = apic.id();
    if let Err(error) = cpu::install(index, apic_id, smp::stack_top(slot)) {
        panic!("cpu {index}: {error:?}");
    }
    check_heap(index);
    info!("cpu {index} online apic_id={apic_id} heap=ok");
    let fault = CONFIG
        .get()
        .filter(|config| config.test_fault_cpu == index)
        .and_then(|config| config.test_fault);
    if let Some(fault) = fault {
        trigger(fault);
    }
    network::register_core(index, apic_id);
    smp::report_online();
    if CONFIG
        .get()
        .is_some_and(|config| config.self_test.is_some())
    {
        self_test::serve(index)
    }
    network::run_core(index)
}

/// Allocates, uses and frees heap memory, so a broken heap fails at boot, loudly.
fn check_heap(core_index: u32) {
    let boxed = Box::new(u64::from(core_index) * 7 + 1);
    let numbers: Vec<u64> = (0..1000).map(|value| value * *boxed).collect();
    let sum: u64 = numbers.iter().sum();
    assert_eq!(sum, *boxed * 999 * 1000 / 2, "heap check");
    if core_index == 0 {
        info!("heap: ok");
    }
}

/// The deliberate failures behind `test-fault=`.
fn trigger(fault: TestFault) {
    warn!("test: triggering {fault:?}");
    match fault {
        // SAFETY: not safe, and that is the point: the address is far beyond the identity
        // map, so the read ends in the page-fault report and never returns.
        TestFault::Page => unsafe {
            core::ptr::read_volatile(0x1234_5678_9000_usize as *const u64);
        },
        // SAFETY: a division by zero ends in the divide-error report and never returns.
        TestFault::Divide => unsafe {
            core::arch::asm!("xor edx, edx", "xor eax, eax", "xor ecx, ecx", "div ecx", out("eax") _, out("ecx") _, out("edx") _);
        },
        // SAFETY: ud2 ends in the invalid-opcode report and never returns.
        TestFault::InvalidOpcode => unsafe { core::arch::asm!("ud2") },
        TestFault::StackOverflow => {
            let depth = overflow_stack(0);
            warn!("test: the stack did not overflow after {depth} frames");
        }
        TestFault::Panic => panic!("test panic requested on the command line"),
    }
}

/// Recurses with 1 KiB frames until the guard page below the stack stops it.
fn overflow_stack(depth: u64) -> u64 {
    let mut frame = [0u8; 1024];
    core::hint::black_box(&mut frame);
    if depth == u64::MAX {
        return depth;
    }
    overflow_stack(depth + 1) + u64::from(core::hint::black_box(frame[0]))
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut out = console::emergency_writer();
    let _ = match info.location() {
        Some(location) => writeln!(
            out,
            "unisock: panic cpu={} at {}:{}: {}",
            cpu::current_index(),
            location.file(),
            location.line(),
            info.message()
        ),
        None => writeln!(
            out,
            "unisock: panic cpu={}: {}",
            cpu::current_index(),
            info.message()
        ),
    };
    exit(ExitCode::Failure)
}
