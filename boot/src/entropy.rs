//! The per-boot secret behind TCP initial sequence numbers and SYN cookies: RFC 6528 (section
//! 3) needs it unpredictable, so it comes from the CPU's random number generator (RDSEED, else
//! RDRAND), mixed with the TSC; only a CPU with neither falls back to the TSC and the MAC.

use core::arch::x86_64::{__cpuid, __cpuid_count, _rdrand64_step, _rdseed64_step, _rdtsc};

/// CPUID.01H:ECX bit 30 (Intel SDM vol. 2A, CPUID, table 3-10).
const CPUID_1_ECX_RDRAND: u32 = 1 << 30;
/// CPUID.(EAX=07H,ECX=0):EBX bit 18 (Intel SDM vol. 2A, CPUID, table 3-8).
const CPUID_7_EBX_RDSEED: u32 = 1 << 18;
/// RDRAND fails (CF=0) only when the generator is transiently exhausted; Intel's DRNG Software
/// Implementation Guide (5.2.1) calls ten failures in a row a broken part.
const RDRAND_TRIES: u32 = 10;
/// RDSEED waits for fresh conditioner output and fails far more often under contention; the
/// same guide (5.3.1) retries it with a pause in between.
const RDSEED_TRIES: u32 = 100;

/// Where the secret's unpredictability comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropySource {
    Rdseed,
    Rdrand,
    /// Neither instruction exists (or both kept failing): only the TSC and the MAC, which an
    /// attacker who knows the boot timing can guess.
    TimestampOnly,
}

impl EntropySource {
    pub fn name(self) -> &'static str {
        match self {
            EntropySource::Rdseed => "rdseed",
            EntropySource::Rdrand => "rdrand",
            EntropySource::TimestampOnly => "tsc+mac",
        }
    }
}

/// A 16-byte secret and where it came from. `mac` only salts the fallback.
pub fn boot_secret(mac: [u8; 6]) -> ([u8; 16], EntropySource) {
    let tsc = read_tsc();
    let (rdseed, rdrand) = cpu_generators();
    let generators = [
        (EntropySource::Rdseed, rdseed),
        (EntropySource::Rdrand, rdrand),
    ];
    for (source, present) in generators {
        if !present {
            continue;
        }
        // A generator that fails for good falls through to the next one.
        if let (Some(first), Some(second)) = (random_u64(source), random_u64(source)) {
            return (mix([first, second], tsc), source);
        }
    }
    (timestamp_secret(tsc, mac), EntropySource::TimestampOnly)
}

/// Whether the CPU has (RDSEED, RDRAND).
fn cpu_generators() -> (bool, bool) {
    let rdrand = __cpuid(1).ecx & CPUID_1_ECX_RDRAND != 0;
    let rdseed = __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ebx & CPUID_7_EBX_RDSEED != 0;
    (rdseed, rdrand)
}

/// One 64-bit word from the generator, `None` after its bounded retries. Call only for a
/// generator CPUID reports.
fn random_u64(source: EntropySource) -> Option<u64> {
    match source {
        // SAFETY: `boot_secret` asks only for a generator CPUID reports present, which is
        // what the target feature promises.
        EntropySource::Rdseed => retry(RDSEED_TRIES, || unsafe { rdseed_step() }),
        // SAFETY: as above.
        EntropySource::Rdrand => retry(RDRAND_TRIES, || unsafe { rdrand_step() }),
        EntropySource::TimestampOnly => None,
    }
}

/// Runs `step` up to `tries` times for a good word. A word of all zeros or all ones counts as
/// a failure even when the carry flag says success: some AMD parts, after a suspend, returned
/// all ones with CF=1 for ever (Linux checks the same at boot).
fn retry(tries: u32, mut step: impl FnMut() -> Option<u64>) -> Option<u64> {
    for _ in 0..tries {
        match step() {
            Some(word) if word != 0 && word != u64::MAX => return Some(word),
            _ => core::hint::spin_loop(),
        }
    }
    None
}

/// One RDSEED: `None` when CF=0 (no seed ready). Unsafe to call (a target-feature function)
/// on a CPU without RDSEED, where the instruction faults.
#[target_feature(enable = "rdseed")]
fn rdseed_step() -> Option<u64> {
    let mut word = 0;
    (_rdseed64_step(&mut word) == 1).then_some(word)
}

/// One RDRAND: `None` when CF=0 (no random number ready). Unsafe to call on a CPU without
/// RDRAND, as above.
#[target_feature(enable = "rdrand")]
fn rdrand_step() -> Option<u64> {
    let mut word = 0;
    (_rdrand64_step(&mut word) == 1).then_some(word)
}

/// The generator's words XOR a scrambled TSC: the TSC adds nothing an observer of the boot
/// cannot guess, but it keeps a generator that repeats itself across boots from repeating the
/// secret.
fn mix(words: [u64; 2], tsc: u64) -> [u8; 16] {
    let scrambled = scramble(tsc);
    let mut secret = [0u8; 16];
    secret[..8].copy_from_slice(&(words[0] ^ scrambled).to_le_bytes());
    secret[8..].copy_from_slice(&(words[1] ^ scrambled.rotate_left(32)).to_le_bytes());
    secret
}

/// The fallback: the TSC at boot (which varies with firmware and host timing), the MAC and a
/// second TSC reading.
fn timestamp_secret(tsc: u64, mac: [u8; 6]) -> [u8; 16] {
    let mut secret = [0u8; 16];
    secret[..8].copy_from_slice(&scramble(tsc).to_le_bytes());
    secret[8..14].copy_from_slice(&mac);
    secret[14..].copy_from_slice(&(read_tsc() as u16).to_le_bytes());
    secret
}

fn scramble(tsc: u64) -> u64 {
    tsc.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ tsc.rotate_left(29)
}

fn read_tsc() -> u64 {
    // SAFETY: rdtsc has no side effects; every x86_64 CPU has it.
    unsafe { _rdtsc() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_skips_failures_and_stuck_words_then_gives_up() {
        let mut words = [None, Some(0), Some(u64::MAX), Some(42)].into_iter();
        assert_eq!(retry(4, || words.next().flatten()), Some(42));
        let mut calls = 0;
        assert_eq!(
            retry(RDRAND_TRIES, || {
                calls += 1;
                Some(u64::MAX)
            }),
            None
        );
        assert_eq!(calls, RDRAND_TRIES);
    }

    #[test]
    fn mixing_keeps_the_generator_words_distinct() {
        assert_ne!(mix([1, 2], 7), mix([1, 3], 7));
        assert_ne!(mix([1, 2], 7), mix([1, 2], 8));
    }

    /// On a host CPU with a generator, two secrets differ and name it.
    #[test]
    fn host_generator_gives_different_secrets() {
        let (first, source) = boot_secret([2, 0, 0, 0, 0, 1]);
        let (second, _) = boot_secret([2, 0, 0, 0, 0, 1]);
        let (rdseed, rdrand) = cpu_generators();
        if rdseed || rdrand {
            assert_ne!(source, EntropySource::TimestampOnly);
        }
        assert_ne!(first, second);
    }
}
