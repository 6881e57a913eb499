//! The owner core's memory of the flows it handed to the global listener: 4-tuple -> the core that took the connection, so that the later segments follow the SYN even when the set of serving cores changes.

use core::time::Duration;

use crate::net::rfd::{CoreId, FourTuple};
use crate::time::Instant;

/// Most routes one core keeps; beyond it new flows are routed by rendezvous hashing alone.
pub const ROUTE_CAPACITY: usize = 65_536;
/// A route unused this long is forgotten (longer than TIME_WAIT, so a closing connection's
/// last segments still find their core).
pub const ROUTE_IDLE_LIMIT: Duration = Duration::from_secs(300);
/// How often idle routes are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// When the table is full, routes idle this long are forgotten early (at most one such sweep
/// a second): short connections are long over by then.
pub const ROUTE_PRESSURE_IDLE_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
struct Route {
    core: CoreId,
    last_used: Instant,
}

/// Routes of one core, used only by that core. Not a TCB: 4-tuple, core and a time.
pub struct FallbackRoutes {
    routes: hashbrown::HashMap<FourTuple, Route>,
    next_sweep: Instant,
    next_pressure_sweep: Instant,
    /// Flows that found the table full.
    pub overflows: u64,
}

impl Default for FallbackRoutes {
    fn default() -> Self {
        FallbackRoutes {
            routes: hashbrown::HashMap::new(),
            next_sweep: Instant::ZERO,
            next_pressure_sweep: Instant::ZERO,
            overflows: 0,
        }
    }
}

impl FallbackRoutes {
    /// The core that took this flow, if it was handed over; refreshes the route.
    pub fn lookup(&mut self, tuple: &FourTuple, now: Instant) -> Option<CoreId> {
        let route = self.routes.get_mut(tuple)?;
        route.last_used = now;
        Some(route.core)
    }

    pub fn insert(&mut self, tuple: FourTuple, core: CoreId, now: Instant) {
        if self.routes.len() >= ROUTE_CAPACITY
            && !self.routes.contains_key(&tuple)
            && now >= self.next_pressure_sweep
        {
            self.next_pressure_sweep = now + SWEEP_INTERVAL;
            self.routes.retain(|_, route| {
                now.saturating_since(route.last_used) < ROUTE_PRESSURE_IDLE_LIMIT
            });
        }
        if self.routes.len() >= ROUTE_CAPACITY && !self.routes.contains_key(&tuple) {
            self.overflows += 1;
            return;
        }
        self.routes.insert(
            tuple,
            Route {
                core,
                last_used: now,
            },
        );
    }

    pub fn remove(&mut self, tuple: &FourTuple) {
        self.routes.remove(tuple);
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Forgets routes idle for [`ROUTE_IDLE_LIMIT`]; cheap unless a sweep is due.
    pub fn sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        self.routes
            .retain(|_, route| now.saturating_since(route.last_used) < ROUTE_IDLE_LIMIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn routes_are_kept_while_used_and_forgotten_when_idle() {
        let tuple = FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            remote: SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 1), 5000),
        };
        let mut routes = FallbackRoutes::default();
        routes.insert(tuple, CoreId(3), Instant::ZERO);
        let later = Instant::ZERO + ROUTE_IDLE_LIMIT / 2;
        assert_eq!(routes.lookup(&tuple, later), Some(CoreId(3)));
        routes.sweep(Instant::ZERO + ROUTE_IDLE_LIMIT);
        assert_eq!(routes.len(), 1, "used half-way, so not idle yet");
        routes.sweep(later + ROUTE_IDLE_LIMIT);
        assert!(routes.is_empty());
    }

    #[test]
    fn a_full_table_forgets_quiet_routes_early_and_counts_what_does_not_fit() {
        let tuple = |port: u32| FourTuple {
            local: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            remote: SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + (port >> 16)), port as u16),
        };
        let mut routes = FallbackRoutes::default();
        for port in 0..ROUTE_CAPACITY as u32 {
            routes.insert(tuple(port), CoreId(1), Instant::ZERO);
        }
        let full = ROUTE_CAPACITY as u32;
        routes.insert(
            tuple(full),
            CoreId(1),
            Instant::ZERO + ROUTE_PRESSURE_IDLE_LIMIT / 2,
        );
        assert_eq!(routes.overflows, 1, "nothing is quiet enough yet");
        let later = Instant::ZERO + ROUTE_PRESSURE_IDLE_LIMIT * 2;
        routes.insert(tuple(full + 1), CoreId(2), later);
        assert_eq!(routes.overflows, 1);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes.lookup(&tuple(full + 1), later), Some(CoreId(2)));
    }
}
