//! The clock: the TSC, calibrated once against the PIT (or taken from CPUID where there is
//! no PIT), read as nanoseconds since boot.

use core::sync::atomic::{AtomicU64, Ordering};

use unisock_kernel::time::Instant;
use x86_64::instructions::port::Port;

/// The PIT's input clock (Intel 8254 datasheet; the PC's 14.31818 MHz / 12).
const PIT_FREQUENCY_HZ: u64 = 1_193_182;
/// How long one calibration round runs: longer is more precise, shorter boots faster.
const CALIBRATION_MILLIS: u64 = 2;
const CALIBRATION_ROUNDS: usize = 5;
/// A PIT read that took longer than this many TSC ticks was interrupted; read again.
const TIGHT_SAMPLE_TICKS: u64 = 200_000;
const SAMPLE_ATTEMPTS: u32 = 1000;
/// Give up on the PIT after this many TSC ticks (over a second on any real TSC).
const PIT_TIMEOUT_TICKS: u64 = 1 << 32;
/// A TSC slower than this is not a TSC: the PIT answer was junk.
const MIN_PLAUSIBLE_TSC_HZ: u64 = 100_000_000;
/// Port 0x61, "NMI status and control": bit 0 gates PIT channel 2, bit 1 drives the
/// speaker from it.
const SYSTEM_CONTROL_PORT: u16 = 0x61;
const CHANNEL2_GATE: u8 = 1 << 0;
const SPEAKER_ENABLE: u8 = 1 << 1;
const PIT_COMMAND_PORT: u16 = 0x43;
const PIT_CHANNEL2_PORT: u16 = 0x42;
/// Channel 2, low byte then high byte, mode 0 (interrupt on terminal count), binary.
const PIT_CHANNEL2_ONE_SHOT: u8 = 0b1011_0000;
/// Channel 2, counter latch command: the next two reads return the count at this moment.
const PIT_CHANNEL2_LATCH: u8 = 0b1000_0000;

/// TSC value at calibration: time zero.
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point number; 0 until calibrated.
static NANOS_PER_TICK_FIXED: AtomicU64 = AtomicU64::new(0);

pub fn read_tsc() -> u64 {
    // SAFETY: rdtsc has no side effects; every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockReference {
    /// Measured against PIT channel 2.
    Pit,
    /// CPUID leaf 0x15: crystal frequency times the TSC/crystal ratio.
    CpuidCrystal,
    /// CPUID leaf 0x16: the processor's base frequency.
    CpuidBaseFrequency,
}

#[derive(Clone, Copy, Debug)]
pub enum ClockError {
    /// No PIT answered and CPUID does not tell the TSC frequency.
    NoReference,
}

/// Finds the TSC frequency (PIT first, then CPUID) and makes this moment time zero.
pub fn calibrate() -> Result<(u64, ClockReference), ClockError> {
    let (hz, reference) = measure_against_pit()
        .map(|hz| (hz, ClockReference::Pit))
        .or_else(cpuid_tsc_frequency)
        .ok_or(ClockError::NoReference)?;
    NANOS_PER_TICK_FIXED.store((1_000_000_000u64 << 32) / hz, Ordering::Relaxed);
    TSC_AT_BOOT.store(read_tsc(), Ordering::Relaxed);
    Ok((hz, reference))
}

/// The TSC frequency measured against the PIT: the median of a few rounds, so that one
/// disturbed round (under TCG the guest TSC is the host's, which may jump when the vCPU
/// thread moves) does not matter. `None` if the PIT does not count (machines without one)
/// or the result is implausible.
fn measure_against_pit() -> Option<u64> {
    let mut rounds = [0u64; CALIBRATION_ROUNDS];
    for round in &mut rounds {
        *round = pit_round()?;
    }
    rounds.sort_unstable();
    let hz = rounds[CALIBRATION_ROUNDS / 2];
    (hz >= MIN_PLAUSIBLE_TSC_HZ).then_some(hz)
}

/// One round: start PIT channel 2 counting down from 0xffff, then take two (TSC, count)
/// samples `CALIBRATION_MILLIS` apart. Each sample is read tightly (the TSC just before and
/// just after the count), so a preemption between the samples costs no precision.
fn pit_round() -> Option<u64> {
    let mut control: Port<u8> = Port::new(SYSTEM_CONTROL_PORT);
    let mut command: Port<u8> = Port::new(PIT_COMMAND_PORT);
    let mut channel2: Port<u8> = Port::new(PIT_CHANNEL2_PORT);
    // SAFETY: the PIT and port 0x61 are standard PC hardware that nothing else here uses;
    // the speaker stays off. Without a PIT the count never moves and the timeout ends it.
    unsafe {
        let value = control.read();
        control.write((value & !SPEAKER_ENABLE) | CHANNEL2_GATE);
        command.write(PIT_CHANNEL2_ONE_SHOT);
        channel2.write(0xff);
        channel2.write(0xff);
    }
    let (first_tsc, first_count) = pit_sample()?;
    let wanted = PIT_FREQUENCY_HZ * CALIBRATION_MILLIS / 1000;
    loop {
        let (tsc, count) = pit_sample()?;
        let counted = u64::from(first_count.wrapping_sub(count));
        if counted >= wanted {
            return Some((tsc - first_tsc) * PIT_FREQUENCY_HZ / counted);
        }
        if tsc - first_tsc > PIT_TIMEOUT_TICKS {
            return None;
        }
    }
}

/// Latches and reads channel 2's count; returns it with the TSC at the middle of the read,
/// retrying until the read was not interrupted (it took under `TIGHT_SAMPLE_TICKS`).
fn pit_sample() -> Option<(u64, u16)> {
    let mut command: Port<u8> = Port::new(PIT_COMMAND_PORT);
    let mut channel2: Port<u8> = Port::new(PIT_CHANNEL2_PORT);
    for _ in 0..SAMPLE_ATTEMPTS {
        let before = read_tsc();
        // SAFETY: latching and reading channel 2 has no effect beyond the PIT itself.
        let count = unsafe {
            command.write(PIT_CHANNEL2_LATCH);
            let low = channel2.read();
            let high = channel2.read();
            u16::from_le_bytes([low, high])
        };
        let after = read_tsc();
        if after.wrapping_sub(before) < TIGHT_SAMPLE_TICKS {
            return Some((before + (after - before) / 2, count));
        }
    }
    None
}

/// The TSC frequency as CPUID reports it (Intel SDM vol. 2, CPUID leaves 15h and 16h).
fn cpuid_tsc_frequency() -> Option<(u64, ClockReference)> {
    let max_leaf = cpuid(0).eax;
    if max_leaf >= 0x15 {
        let leaf = cpuid(0x15);
        let (denominator, numerator, crystal_hz) = (leaf.eax, leaf.ebx, leaf.ecx);
        if denominator != 0 && numerator != 0 && crystal_hz != 0 {
            let hz = u64::from(crystal_hz) * u64::from(numerator) / u64::from(denominator);
            return Some((hz, ClockReference::CpuidCrystal));
        }
    }
    if max_leaf >= 0x16 {
        let base_mhz = cpuid(0x16).eax & 0xffff;
        if base_mhz != 0 {
            return Some((
                u64::from(base_mhz) * 1_000_000,
                ClockReference::CpuidBaseFrequency,
            ));
        }
    }
    None
}

fn cpuid(leaf: u32) -> core::arch::x86_64::CpuidResult {
    core::arch::x86_64::__cpuid(leaf)
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
