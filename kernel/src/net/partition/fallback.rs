//! The global listener's choice: which serving core takes a connection whose owner core does not serve its port.

use super::global_listen::CoreSet;
use crate::net::rfd::{CoreId, FourTuple};

/// The serving core with the highest rendezvous weight for this 4-tuple, `owner` excluded;
/// `None` when no other core serves.
///
/// Rendezvous (highest random weight) hashing: every core computes the same answer from the
/// tuple and the set alone, and a core joining or leaving the set moves only the flows whose
/// winner it is or becomes.
pub fn fallback_core(tuple: &FourTuple, serving: CoreSet, owner: CoreId) -> Option<CoreId> {
    let flow = flow_hash(tuple);
    serving
        .iter()
        .filter(|&core| core != owner)
        .max_by_key(|core| {
            (
                mix(flow ^ u64::from(core.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                core.0,
            )
        })
}

fn flow_hash(tuple: &FourTuple) -> u64 {
    let local = u64::from(u32::from(*tuple.local.ip())) << 16 | u64::from(tuple.local.port());
    let remote = u64::from(u32::from(*tuple.remote.ip())) << 16 | u64::from(tuple.remote.port());
    mix(local ^ mix(remote))
}

/// The SplitMix64 finaliser: a bijective scramble of 64 bits.
fn mix(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    fn tuple(client_port: u16) -> FourTuple {
        FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 1), client_port),
        }
    }

    #[test]
    fn the_owner_is_never_chosen_and_an_empty_set_chooses_nobody() {
        let serving: CoreSet = [CoreId(0), CoreId(2)].into_iter().collect();
        for port in 1000..2000 {
            let chosen = fallback_core(&tuple(port), serving, CoreId(0));
            assert_eq!(chosen, Some(CoreId(2)));
        }
        assert_eq!(fallback_core(&tuple(1), CoreSet::EMPTY, CoreId(0)), None);
        let only_owner: CoreSet = [CoreId(3)].into_iter().collect();
        assert_eq!(fallback_core(&tuple(1), only_owner, CoreId(3)), None);
    }

    #[test]
    fn flows_spread_and_only_the_leaving_core_s_flows_move() {
        let all: CoreSet = (0..8).map(CoreId).collect();
        let mut per_core = [0usize; 8];
        let mut moved = 0;
        for port in 0..8000u16 {
            let before = fallback_core(&tuple(port), all, CoreId(0)).unwrap();
            per_core[usize::from(before.0)] += 1;
            let mut without_five = all;
            without_five.remove(CoreId(5));
            let after = fallback_core(&tuple(port), without_five, CoreId(0)).unwrap();
            if before != after {
                assert_eq!(before, CoreId(5));
                moved += 1;
            }
        }
        assert_eq!(per_core[0], 0);
        for &count in &per_core[1..] {
            assert!((900..1400).contains(&count), "{per_core:?}");
        }
        assert_eq!(moved, per_core[5]);
    }
}
