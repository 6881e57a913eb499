//! The clock: the TSC, calibrated once against the PIT, read as nanoseconds since boot.

use core::sync::atomic::{AtomicU64, Ordering};

use unisock_kernel::time::Instant;
use x86_64::instructions::port::Port;

/// The PIT's input clock (Intel 8254 datasheet; the PC's 14.31818 MHz / 12).
const PIT_FREQUENCY_HZ: u64 = 1_193_182;
/// How long the calibration runs: longer is more precise, shorter boots faster.
const CALIBRATION_MILLIS: u64 = 10;
/// Port 0x61, "NMI status and control": bit 0 gates PIT channel 2, bit 1 drives the
/// speaker from it, bit 5 reads channel 2's output.
const SYSTEM_CONTROL_PORT: u16 = 0x61;
const CHANNEL2_GATE: u8 = 1 << 0;
const SPEAKER_ENABLE: u8 = 1 << 1;
const CHANNEL2_OUTPUT: u8 = 1 << 5;
const PIT_COMMAND_PORT: u16 = 0x43;
const PIT_CHANNEL2_PORT: u16 = 0x42;
/// Channel 2, low byte then high byte, mode 0 (interrupt on terminal count), binary.
const PIT_CHANNEL2_ONE_SHOT: u8 = 0b1011_0000;

/// TSC value at calibration: time zero.
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point number; 0 until calibrated.
static NANOS_PER_TICK_FIXED: AtomicU64 = AtomicU64::new(0);

pub fn read_tsc() -> u64 {
    // SAFETY: rdtsc has no side effects; every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Measures the TSC frequency against PIT channel 2 and makes this moment time zero.
/// Returns the frequency in Hz.
pub fn calibrate() -> u64 {
    let mut control: Port<u8> = Port::new(SYSTEM_CONTROL_PORT);
    let mut command: Port<u8> = Port::new(PIT_COMMAND_PORT);
    let mut channel2: Port<u8> = Port::new(PIT_CHANNEL2_PORT);
    let count = PIT_FREQUENCY_HZ * CALIBRATION_MILLIS / 1000;
    // SAFETY: the PIT and port 0x61 are standard PC hardware that nothing else here uses;
    // the speaker stays off.
    let ticks = unsafe {
        let value = control.read();
        control.write((value & !SPEAKER_ENABLE) | CHANNEL2_GATE);
        command.write(PIT_CHANNEL2_ONE_SHOT);
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let start = read_tsc();
        while control.read() & CHANNEL2_OUTPUT == 0 {
            core::hint::spin_loop();
        }
        read_tsc() - start
    };
    let hz = (ticks * 1000 / CALIBRATION_MILLIS).max(1);
    NANOS_PER_TICK_FIXED.store((1_000_000_000u64 << 32) / hz, Ordering::Relaxed);
    TSC_AT_BOOT.store(read_tsc(), Ordering::Relaxed);
    hz
}

/// Nanoseconds since calibration (zero before it).
pub fn now() -> Instant {
    let ticks = read_tsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    let fixed = NANOS_PER_TICK_FIXED.load(Ordering::Relaxed);
    Instant::from_nanos(((u128::from(ticks) * u128::from(fixed)) >> 32) as u64)
}

/// Busy-waits for `micros` microseconds (needs the calibrated clock).
pub fn spin_micros(micros: u64) {
    let deadline = now().as_nanos() + micros * 1000;
    while now().as_nanos() < deadline {
        core::hint::spin_loop();
    }
}
