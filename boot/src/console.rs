//! The serial console (COM1, 16550 UART) and the small leveled logger that writes to it.
//!
//! Every line is written whole under one lock, so lines from different cores never mix.
//! The fault and panic paths use [`emergency_writer`], which takes the console even if the
//! faulting code held the lock. The access log does not wait for the console: each core's
//! ring is written out by [`write_without_waiting`], a few bytes when the UART's transmitter
//! is empty, one core's line at a time ([`LINE_OWNER`]).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{BaudRate, Config, Uart16550Tty};
use unisock_kernel::config::LogLevel;

/// The I/O port of COM1.
const COM1_PORT: u16 = 0x3f8;

static CONSOLE: Mutex<Option<Uart16550Tty<PioBackend>>> = Mutex::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
/// Which core's line is going out on the console: 0 for none, else the core's index + 1.
/// An access-log line goes out a few bytes at a time over many turns of its core's loop;
/// until its end no other core writes, so lines never mix.
static LINE_OWNER: AtomicU32 = AtomicU32::new(NO_OWNER);
const NO_OWNER: u32 = 0;

/// Sets up COM1 at 115200 8-N-1. Before this, output is dropped.
pub fn init() {
    let config = Config {
        baud_rate: BaudRate::Baud115200,
        ..Config::default()
    };
    // SAFETY: COM1 belongs to this console alone; nothing else in the image touches it.
    let uart = unsafe { Uart16550Tty::new_port(COM1_PORT, config) };
    *CONSOLE.lock() = uart.ok();
}

/// Sets the most verbose level that is printed.
pub fn set_max_level(level: LogLevel) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: LogLevel) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes one line (the arguments plus a newline) to the console, waiting for the UART
/// (the boot, warnings, errors: never the data path, whose access log goes through
/// [`write_without_waiting`]).
pub fn write_line(arguments: fmt::Arguments<'_>) {
    let me = crate::cpu::current_index() + 1;
    // Wait for another core's access-log line to end (it goes on at that core's next loop
    // turns); this core's own unfinished line cannot be waited for, so this line cuts it.
    let claimed = loop {
        match LINE_OWNER.compare_exchange(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => break true,
            Err(owner) if owner == me => break false,
            Err(_) => core::hint::spin_loop(),
        }
    };
    if let Some(console) = CONSOLE.lock().as_mut() {
        let _ = console.write_fmt(format_args!("{arguments}\n"));
    }
    if claimed {
        LINE_OWNER.store(NO_OWNER, Ordering::Release);
    }
}

/// Writes what the UART takes at once of `bytes` (part of one line; a line's last chunk ends
/// with its `\n`) and returns how many it took: none while its transmitter is still sending,
/// while another core writes (the console's lock is not waited for), or while another core's
/// line is unfinished. Never waits: the access log's drain calls it from the data path.
pub fn write_without_waiting(bytes: &[u8]) -> usize {
    if bytes.is_empty() {
        return 0;
    }
    let me = crate::cpu::current_index() + 1;
    match LINE_OWNER.compare_exchange(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => {}
        Err(owner) if owner == me => {}
        Err(_) => return 0,
    }
    let Some(mut console) = CONSOLE.try_lock() else {
        // Held by a line being written whole (`write_line`): this line starts or goes on later.
        return 0;
    };
    // No console: the bytes are gone, as `write_line`'s are.
    let written = match console.as_mut() {
        // `send_bytes` checks the line status register's "transmitter holding register
        // empty" bit and, only if it is set, writes at most the 16-byte FIFO's worth.
        Some(uart) => uart.inner_mut().send_bytes(bytes),
        None => bytes.len(),
    };
    drop(console);
    if written == bytes.len() && bytes.last() == Some(&b'\n') {
        LINE_OWNER.store(NO_OWNER, Ordering::Release);
    }
    written
}

/// Writes one log line, `[seconds.micros] level: message`, if the level is enabled.
pub fn log(level: LogLevel, arguments: fmt::Arguments<'_>) {
    if enabled(level) {
        let nanos = crate::clock::now().as_nanos();
        let (seconds, micros) = (nanos / 1_000_000_000, nanos % 1_000_000_000 / 1_000);
        write_line(format_args!(
            "[{seconds:4}.{micros:06}] {:5} {arguments}",
            level.name()
        ));
    }
}

/// The console for the fault and panic paths: breaks the lock, since the code that faulted
/// may hold it, and nothing else will run after the report.
pub fn emergency_writer() -> EmergencyWriter {
    // SAFETY: only called on the way to `exit`; if another core prints at the same time, the
    // worst outcome is interleaved characters, which is better than a silent hang.
    unsafe { CONSOLE.force_unlock() };
    EmergencyWriter
}

pub struct EmergencyWriter;

impl Write for EmergencyWriter {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        match CONSOLE.lock().as_mut() {
            Some(console) => console.write_str(text),
            None => Ok(()),
        }
    }
}

#[macro_export]
macro_rules! error {
    ($($argument:tt)*) => {
        $crate::console::log(unisock_kernel::config::LogLevel::Error, format_args!($($argument)*))
    };
}

#[macro_export]
macro_rules! warn {
    ($($argument:tt)*) => {
        $crate::console::log(unisock_kernel::config::LogLevel::Warn, format_args!($($argument)*))
    };
}

#[macro_export]
macro_rules! info {
    ($($argument:tt)*) => {
        $crate::console::log(unisock_kernel::config::LogLevel::Info, format_args!($($argument)*))
    };
}

#[macro_export]
macro_rules! debug {
    ($($argument:tt)*) => {
        $crate::console::log(unisock_kernel::config::LogLevel::Debug, format_args!($($argument)*))
    };
}

/// Prints a line with no prefix: the lines that tests and operators match (`unisock: ...`).
#[macro_export]
macro_rules! println {
    ($($argument:tt)*) => {
        $crate::console::write_line(format_args!($($argument)*))
    };
}
