//! Choosing a request's backend among the available ones: round robin, smooth weighted round robin, least connections and power of two choices over this core's in-progress counts, and a rendezvous hash of the client address. Each core has its own balancer: no shared state on the request path.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv4Addr;

use super::settings::{Backend, Balance};

pub struct Balancer {
    algorithm: Balance,
    weights: Vec<u32>,
    next: usize,
    /// Smooth weighted round robin's running weights (nginx's algorithm: add each weight,
    /// pick the largest, subtract the total from it).
    current_weights: Vec<i64>,
    /// Requests in progress on this core, per backend.
    in_progress: Vec<u32>,
    random: u64,
}

impl Balancer {
    pub fn new(algorithm: Balance, backends: &[Backend], seed: u64) -> Balancer {
        Balancer {
            algorithm,
            weights: backends.iter().map(|backend| backend.weight).collect(),
            next: 0,
            current_weights: vec![0; backends.len()],
            in_progress: vec![0; backends.len()],
            random: seed | 1,
        }
    }

    /// A backend among those for which `available` holds; `None` if there is none.
    pub fn pick(&mut self, available: impl Fn(usize) -> bool, client: Ipv4Addr) -> Option<usize> {
        let count = self.weights.len();
        let candidates: Vec<usize> = (0..count).filter(|&index| available(index)).collect();
        if candidates.is_empty() {
            return None;
        }
        let chosen = match self.algorithm {
            Balance::RoundRobin => {
                // The first available backend at or after the cursor, so that an unavailable
                // one does not make its successor take a double share.
                let chosen = (0..count)
                    .map(|offset| (self.next + offset) % count)
                    .find(|index| candidates.contains(index))?;
                self.next = (chosen + 1) % count;
                chosen
            }
            Balance::WeightedRoundRobin => {
                let total: i64 = candidates
                    .iter()
                    .map(|&index| i64::from(self.weights[index]))
                    .sum();
                let mut best = candidates[0];
                for &index in &candidates {
                    self.current_weights[index] += i64::from(self.weights[index]);
                    if self.current_weights[index] > self.current_weights[best] {
                        best = index;
                    }
                }
                self.current_weights[best] -= total;
                best
            }
            Balance::LeastConnections => {
                // Ties go round robin, so an idle pool spreads instead of piling on the first.
                let start = self.next;
                let chosen = *candidates.iter().min_by_key(|&&index| {
                    (self.in_progress[index], (index + count - start) % count)
                })?;
                self.next = (chosen + 1) % count;
                chosen
            }
            Balance::PowerOfTwoChoices => {
                let first = candidates[self.random_below(candidates.len())];
                let second = candidates[self.random_below(candidates.len())];
                if self.in_progress[second] < self.in_progress[first] {
                    second
                } else {
                    first
                }
            }
            Balance::ClientAddressHash => {
                let mut best = candidates[0];
                let mut best_distance = rendezvous_distance(client, best as u64);
                for &index in &candidates[1..] {
                    let distance = rendezvous_distance(client, index as u64);
                    // Lowest `distance / weight` wins; cross-multiplied so no division rounds.
                    if u128::from(distance) * u128::from(self.weights[best])
                        < u128::from(best_distance) * u128::from(self.weights[index])
                    {
                        best = index;
                        best_distance = distance;
                    }
                }
                best
            }
        };
        Some(chosen)
    }

    pub fn started(&mut self, backend: usize) {
        if let Some(count) = self.in_progress.get_mut(backend) {
            *count += 1;
        }
    }

    pub fn finished(&mut self, backend: usize) {
        if let Some(count) = self.in_progress.get_mut(backend) {
            *count = count.saturating_sub(1);
        }
    }

    pub fn in_progress(&self, backend: usize) -> u32 {
        self.in_progress.get(backend).copied().unwrap_or(0)
    }

    fn random_below(&mut self, bound: usize) -> usize {
        // xorshift64: tiny and plenty for picking two candidates.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random % bound as u64) as usize
    }
}

/// Weighted rendezvous (highest-random-weight) hashing: each (client, backend) pair gets a
/// uniform `u` in (0, 1) and the client goes to the available backend with the highest
/// `-weight / ln(u)`, so removing a backend moves only its own clients, and each backend's
/// share is exactly its weight over the total (Resch, "New Hashing Algorithms for Data
/// Storage"; the same score as Ceph's straw2 buckets). Maximising `-weight / ln(u)` is
/// minimising `-ln(u) / weight`, and `-ln(u) = ln 2 * -log2(u)` with `ln 2 > 0`, so this
/// returns `-log2(u)` in fixed point (32 fractional bits) and the caller compares
/// `distance / weight` exactly by cross-multiplying: no floating point in the kernel image.
fn rendezvous_distance(client: Ipv4Addr, backend: u64) -> u64 {
    let mut value = u64::from(u32::from(client)) ^ backend.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^= value >> 31;
    // u = value / 2^64, kept off 0 (where -ln(u) is infinite) by setting the lowest bit.
    let numerator = value | 1;
    // -log2(u) = 64 - log2(numerator) > 0, and the truncated log2 below never exceeds the
    // true one (< 64), so the distance is at least 1: never zero, never a division by zero.
    (64u64 << LOG2_FRACTION_BITS) - log2_fixed(numerator)
}

/// Fractional bits of [`log2_fixed`]: 2^-32 is far below what 100 000 clients can resolve.
const LOG2_FRACTION_BITS: u32 = 32;

/// `log2(value)` for `value >= 1` with [`LOG2_FRACTION_BITS`] fractional bits, rounded down:
/// the integer part is the top bit's position, the fraction comes one bit per squaring of the
/// mantissa in [1, 2) (the classic shift-and-square binary logarithm).
fn log2_fixed(value: u64) -> u64 {
    let integer = u64::from(63 - value.leading_zeros());
    // The mantissa in [1, 2) as a 63-fractional-bit fixed-point number.
    let mut mantissa = u128::from(value << value.leading_zeros());
    let mut fraction = 0u64;
    for _ in 0..LOG2_FRACTION_BITS {
        mantissa = (mantissa * mantissa) >> 63;
        fraction <<= 1;
        if mantissa >= 1 << 64 {
            mantissa >>= 1;
            fraction |= 1;
        }
    }
    (integer << LOG2_FRACTION_BITS) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Backend {
                address: core::net::SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, index as u8 + 2), 80),
                weight,
            })
            .collect()
    }

    fn shares(
        balancer: &mut Balancer,
        picks: usize,
        available: impl Fn(usize) -> bool + Copy,
    ) -> Vec<usize> {
        let mut counts = vec![0; balancer.weights.len()];
        for pick in 0..picks {
            let client = Ipv4Addr::from(pick as u32);
            counts[balancer.pick(available, client).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_unavailable() {
        let mut balancer = Balancer::new(Balance::RoundRobin, &backends(&[1, 1, 1]), 1);
        assert_eq!(shares(&mut balancer, 300, |_| true), [100, 100, 100]);
        assert_eq!(
            shares(&mut balancer, 300, |index| index != 1),
            [150, 0, 150]
        );
    }

    #[test]
    fn weighted_round_robin_follows_the_weights_smoothly() {
        let mut balancer = Balancer::new(Balance::WeightedRoundRobin, &backends(&[5, 1, 1]), 1);
        let sequence: Vec<usize> = (0..7)
            .map(|_| balancer.pick(|_| true, Ipv4Addr::UNSPECIFIED).unwrap())
            .collect();
        // nginx's example: a a b a c a a for weights 5, 1, 1.
        assert_eq!(sequence, [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(shares(&mut balancer, 700, |_| true), [500, 100, 100]);
    }

    #[test]
    fn least_connections_prefers_the_least_busy() {
        let mut balancer = Balancer::new(Balance::LeastConnections, &backends(&[1, 1, 1]), 1);
        balancer.started(0);
        balancer.started(0);
        balancer.started(1);
        assert_eq!(balancer.pick(|_| true, Ipv4Addr::UNSPECIFIED), Some(2));
        balancer.started(2);
        assert_eq!(balancer.pick(|_| true, Ipv4Addr::UNSPECIFIED), Some(1));
        balancer.finished(0);
        balancer.finished(0);
        assert_eq!(balancer.pick(|_| true, Ipv4Addr::UNSPECIFIED), Some(0));
    }

    #[test]
    fn two_choices_avoid_the_busy_backend() {
        let mut balancer = Balancer::new(Balance::PowerOfTwoChoices, &backends(&[1, 1, 1, 1]), 7);
        for _ in 0..100 {
            balancer.started(3);
        }
        let counts = shares(&mut balancer, 4000, |_| true);
        // Backend 3 wins only when both draws are 3: about 1/16 of the picks.
        assert!(counts[3] < 400, "{counts:?}");
        assert!(counts[..3].iter().all(|&count| count > 1000), "{counts:?}");
    }

    #[test]
    fn client_hash_is_sticky_and_moves_only_the_removed_backends_clients() {
        let mut balancer = Balancer::new(Balance::ClientAddressHash, &backends(&[1, 1, 1, 1]), 1);
        let before: Vec<usize> = (0..1000u32)
            .map(|client| balancer.pick(|_| true, Ipv4Addr::from(client)).unwrap())
            .collect();
        let again: Vec<usize> = (0..1000u32)
            .map(|client| balancer.pick(|_| true, Ipv4Addr::from(client)).unwrap())
            .collect();
        assert_eq!(before, again);
        let after: Vec<usize> = (0..1000u32)
            .map(|client| {
                balancer
                    .pick(|index| index != 2, Ipv4Addr::from(client))
                    .unwrap()
            })
            .collect();
        for (old, new) in before.iter().zip(&after) {
            if *old != 2 {
                assert_eq!(old, new);
            }
        }
        let counts = shares(&mut balancer, 4000, |_| true);
        assert!(counts.iter().all(|&count| count > 700), "{counts:?}");
    }

    #[test]
    fn client_hash_shares_follow_the_weights() {
        for weights in [&[1, 2][..], &[1, 1, 1, 5], &[3, 7], &[1, 1000]] {
            let mut balancer = Balancer::new(Balance::ClientAddressHash, &backends(weights), 1);
            let clients = 100_000;
            let counts = shares(&mut balancer, clients, |_| true);
            let total_weight: u32 = weights.iter().sum();
            for (count, &weight) in counts.iter().zip(weights) {
                let share = *count as f64 / clients as f64;
                let expected = f64::from(weight) / f64::from(total_weight);
                assert!(
                    (share - expected).abs() < 0.01,
                    "weights {weights:?}: shares {counts:?}"
                );
            }
        }
    }

    #[test]
    fn fixed_point_log2_is_exact_at_powers_of_two_and_close_between() {
        assert_eq!(log2_fixed(1), 0);
        assert_eq!(log2_fixed(1 << 40), 40 << LOG2_FRACTION_BITS);
        for value in [3u64, 10, 1_000_003, u64::MAX] {
            let expected = (value as f64).log2();
            let got = log2_fixed(value) as f64 / f64::from(1u32 << 31) / 2.0;
            assert!(
                (expected - got).abs() < 1e-8,
                "{value}: {expected} vs {got}"
            );
        }
    }

    #[test]
    fn nothing_available_is_none() {
        let mut balancer = Balancer::new(Balance::RoundRobin, &backends(&[1, 1]), 1);
        assert_eq!(balancer.pick(|_| false, Ipv4Addr::UNSPECIFIED), None);
    }
}
