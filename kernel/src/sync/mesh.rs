//! The N×N mesh of inter-core rings: one single-producer single-consumer ring per ordered pair of distinct cores, and each core's share of the ends.
//!
//! A core sends to core d only through its own ring to d and receives from core s only through
//! s's ring to it, so every ring keeps exactly one producer and one consumer and no core ever
//! contends with a third one.

use alloc::vec::Vec;

use super::ring::{Consumer, Producer, ring};
use crate::net::rfd::CoreId;

/// Why an item could not be sent; the item comes back so the caller can count and drop it.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// The ring to that core is full.
    Full(T),
    /// There is no ring to that core: it is this core itself, or beyond the core count.
    NoSuchRing(T),
}

impl<T> SendError<T> {
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(item) | SendError::NoSuchRing(item) => item,
        }
    }
}

/// One core's ends of the mesh: producers towards every other core and consumers from them.
pub struct CoreRings<T> {
    core: CoreId,
    /// Indexed by destination core; `None` at this core's own index.
    outbound: Vec<Option<Producer<T>>>,
    /// Indexed by source core; `None` at this core's own index.
    inbound: Vec<Option<Consumer<T>>>,
    /// The source the next drain starts from, so no source is always served last.
    next_source: usize,
}

impl<T> CoreRings<T> {
    pub fn core(&self) -> CoreId {
        self.core
    }

    pub fn core_count(&self) -> usize {
        self.outbound.len()
    }

    /// The producer end of the ring to `destination`, if there is one.
    pub fn to_core(&mut self, destination: CoreId) -> Option<&mut Producer<T>> {
        self.outbound.get_mut(usize::from(destination.0))?.as_mut()
    }

    /// The consumer end of the ring from `source`, if there is one.
    pub fn from_core(&mut self, source: CoreId) -> Option<&mut Consumer<T>> {
        self.inbound.get_mut(usize::from(source.0))?.as_mut()
    }

    pub fn try_send(&mut self, destination: CoreId, item: T) -> Result<(), SendError<T>> {
        match self.to_core(destination) {
            Some(producer) => producer.try_push(item).map_err(SendError::Full),
            None => Err(SendError::NoSuchRing(item)),
        }
    }

    /// Moves up to `max_per_source` items from each inbound ring to `out`, starting one source
    /// further round than last time. Returns how many were moved.
    pub fn drain_inbound(&mut self, out: &mut Vec<T>, max_per_source: usize) -> usize {
        let sources = self.inbound.len();
        let mut moved = 0;
        for step in 0..sources {
            let source = (self.next_source + step) % sources;
            if let Some(consumer) = self.inbound[source].as_mut() {
                moved += consumer.pop_batch(out, max_per_source);
            }
        }
        self.next_source = (self.next_source + 1) % sources.max(1);
        moved
    }
}

/// Builds the rings of `core_count` cores; boot hands each core its [`CoreRings`].
pub struct RingMesh<T> {
    cores: Vec<CoreRings<T>>,
}

impl<T> RingMesh<T> {
    /// `core_count * (core_count - 1)` rings of at least `capacity` items each.
    pub fn new(core_count: usize, capacity: usize) -> Self {
        let mut outbound: Vec<Vec<Option<Producer<T>>>> = (0..core_count)
            .map(|_| (0..core_count).map(|_| None).collect())
            .collect();
        let mut inbound: Vec<Vec<Option<Consumer<T>>>> = (0..core_count)
            .map(|_| (0..core_count).map(|_| None).collect())
            .collect();
        for source in 0..core_count {
            for destination in (0..core_count).filter(|&destination| destination != source) {
                let (producer, consumer) = ring(capacity);
                outbound[source][destination] = Some(producer);
                inbound[destination][source] = Some(consumer);
            }
        }
        let cores = outbound
            .into_iter()
            .zip(inbound)
            .enumerate()
            .map(|(index, (outbound, inbound))| CoreRings {
                core: CoreId(index as u16),
                outbound,
                inbound,
                next_source: 0,
            })
            .collect();
        RingMesh { cores }
    }

    /// Each core's ends, in core order.
    pub fn into_cores(self) -> Vec<CoreRings<T>> {
        self.cores
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::sync::Arc;
    use alloc::vec;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn every_ordered_pair_has_its_own_ring() {
        let mut cores = RingMesh::<(u16, u32)>::new(3, 4).into_cores();
        assert_eq!(cores.len(), 3);
        for core in cores.iter_mut() {
            let me = core.core();
            assert_eq!(
                core.try_send(me, (me.0, 0)),
                Err(SendError::NoSuchRing((me.0, 0)))
            );
            assert!(matches!(
                core.try_send(CoreId(3), (me.0, 0)),
                Err(SendError::NoSuchRing(_))
            ));
            for destination in (0..3).map(CoreId).filter(|&other| other != me) {
                for sequence in 0..4 {
                    core.try_send(destination, (me.0, sequence)).unwrap();
                }
                assert_eq!(
                    core.try_send(destination, (me.0, 4)),
                    Err(SendError::Full((me.0, 4)))
                );
            }
        }
        for core in cores.iter_mut() {
            let mut received = Vec::new();
            assert_eq!(core.drain_inbound(&mut received, 16), 8);
            for source in (0..3u16).filter(|&source| source != core.core().0) {
                let from_source: Vec<u32> = received
                    .iter()
                    .filter(|(from, _)| *from == source)
                    .map(|(_, sequence)| *sequence)
                    .collect();
                assert_eq!(from_source, vec![0, 1, 2, 3]);
            }
            assert!(core.from_core(core.core()).is_none());
        }
    }

    #[test]
    fn drain_limits_per_source_and_rotates() {
        let mut cores = RingMesh::<u16>::new(3, 8).into_cores();
        for sender in 1..3u16 {
            for _ in 0..4 {
                cores[usize::from(sender)]
                    .try_send(CoreId(0), sender)
                    .unwrap();
            }
        }
        let receiver = &mut cores[0];
        let mut out = Vec::new();
        assert_eq!(receiver.drain_inbound(&mut out, 1), 2);
        assert_eq!(out, vec![1, 2]);
        // The next drains start one source later each: at 1 (order 1, 2), then at 2.
        out.clear();
        receiver.drain_inbound(&mut out, 1);
        assert_eq!(out, vec![1, 2]);
        out.clear();
        receiver.drain_inbound(&mut out, 1);
        assert_eq!(out, vec![2, 1]);
    }

    #[test]
    fn items_left_in_the_mesh_are_dropped_with_it() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let mut cores = RingMesh::<Counted>::new(3, 4).into_cores();
        for core in cores.iter_mut() {
            let me = core.core();
            for destination in (0..3).map(CoreId).filter(|&other| other != me) {
                for _ in 0..3 {
                    assert!(core.try_send(destination, Counted(drops.clone())).is_ok());
                }
            }
        }
        let mut received = Vec::new();
        assert_eq!(cores[0].drain_inbound(&mut received, 1), 2);
        drop(received);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
        // A ring lives until both its ends are gone: every ring with an end in core 2 has its
        // other end in core 0 or 1, so dropping core 2 alone frees nothing.
        drop(cores.pop());
        assert_eq!(drops.load(Ordering::Relaxed), 2);
        drop(cores);
        assert_eq!(drops.load(Ordering::Relaxed), 3 * 2 * 3);
    }

    #[test]
    fn all_to_all_across_threads() {
        const CORES: usize = 3;
        const PER_PAIR: u32 = 100_000;
        let cores = RingMesh::<(usize, u32)>::new(CORES, 64).into_cores();
        let workers: Vec<_> = cores
            .into_iter()
            .map(|mut rings| {
                thread::spawn(move || {
                    let me = usize::from(rings.core().0);
                    let mut next_to_send = [0u32; CORES];
                    let mut next_expected = [0u32; CORES];
                    next_to_send[me] = PER_PAIR;
                    next_expected[me] = PER_PAIR;
                    let mut received = Vec::new();
                    while next_to_send
                        .iter()
                        .chain(&next_expected)
                        .any(|&n| n < PER_PAIR)
                    {
                        for (destination, next) in next_to_send.iter_mut().enumerate() {
                            if *next < PER_PAIR
                                && rings
                                    .try_send(CoreId(destination as u16), (me, *next))
                                    .is_ok()
                            {
                                *next += 1;
                            }
                        }
                        received.clear();
                        if rings.drain_inbound(&mut received, 32) == 0 {
                            thread::yield_now();
                        }
                        for &(source, sequence) in &received {
                            assert_eq!(sequence, next_expected[source]);
                            next_expected[source] += 1;
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
    }
}
