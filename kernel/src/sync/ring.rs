//! A bounded single-producer single-consumer ring from one core to another: lock-free, FIFO, safe to use; a thin wrapper over the `rtrb` crate.
//!
//! `rtrb` is Lamport's ring with the refinements of the DPDK `rte_ring` and Rigtorp's
//! `SPSCQueue`: head and tail live on separate cache lines (its own copy of crossbeam's
//! `CachePadded`, 128 bytes on x86_64, for the reason given in [`super::CachePadded`]), and
//! each end keeps a private copy of the other end's index, so it reads the shared one only
//! when the ring looks full (producer) or empty (consumer). A push or a pop is one release
//! store to a line the other core reads, never an atomic read-modify-write; a batch publishes
//! its index once.
//!
//! Why `rtrb`: it is no_std + alloc, sized at run time (`ring` and `RingMesh::new` take the
//! capacity as an argument, not a type parameter), its ends are owned values (no borrow of a queue that would have to be
//! leaked to live as long as the cores), the last end dropped drops the items still in the
//! ring, and its chunk API moves batches without `unsafe` on our side. `heapless::spsc` fixes
//! the capacity in the type and its `split` borrows; `crossbeam-queue`'s `ArrayQueue` is
//! multi-producer, so every push and pop is a compare-and-swap. The `unsafe` stays in `rtrb`,
//! whose CI runs its tests under Miri and ThreadSanitizer and checks its no_std build.
//!
//! The ends are `Send` but not `Sync` (each caches the other end's index in a `Cell`): a core
//! owns its ends, it never shares them by reference.

use alloc::vec::Vec;

/// The sending end; exactly one exists per ring, so pushes need `&mut self`.
pub struct Producer<T> {
    inner: rtrb::Producer<T>,
}

/// The receiving end; exactly one exists per ring, so pops need `&mut self`.
pub struct Consumer<T> {
    inner: rtrb::Consumer<T>,
}

/// A ring holding at least `capacity` items (rounded up to a power of two, at least 1).
///
/// `rtrb` needs no power of two; the rounding keeps the capacity this function has always
/// promised, which callers size their batches by.
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(1).next_power_of_two();
    let (producer, consumer) = rtrb::RingBuffer::new(capacity);
    (Producer { inner: producer }, Consumer { inner: consumer })
}

impl<T> Producer<T> {
    pub fn capacity(&self) -> usize {
        self.inner.buffer().capacity()
    }

    /// Slots free for pushing, at least `wanted` if the ring has that many free; reads the
    /// consumer's index only when the cached copy shows fewer.
    fn free_slots(&self, wanted: usize) -> usize {
        let cached = self.inner.cached_slots();
        if cached >= wanted {
            cached
        } else {
            self.inner.slots()
        }
    }

    /// Pushes `item`, or hands it back if the ring is full (the caller counts the drop).
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        self.inner
            .push(item)
            .map_err(|rtrb::PushError::Full(item)| item)
    }

    /// Pushes as many items from the front of `items` as fit, in order, and publishes them
    /// together; the rest stay in `items`. Returns how many were pushed.
    pub fn push_batch(&mut self, items: &mut Vec<T>) -> usize {
        let count = self.free_slots(items.len()).min(items.len());
        if count == 0 {
            return 0;
        }
        // `count` slots were free a moment ago and only this end fills them, so the chunk is
        // granted; were it not, nothing would be drained from `items`.
        self.inner
            .write_chunk_uninit(count)
            .map_or(0, |chunk| chunk.fill_from_iter(items.drain(..count)))
    }

    /// Items in the ring as last seen; the consumer may have taken some since.
    pub fn len(&self) -> usize {
        self.capacity() - self.inner.slots()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }
}

impl<T> Consumer<T> {
    pub fn capacity(&self) -> usize {
        self.inner.buffer().capacity()
    }

    /// Items ready to pop, at least `wanted` if the ring holds that many; reads the producer's
    /// index only when the cached copy shows fewer.
    fn ready_items(&self, wanted: usize) -> usize {
        let cached = self.inner.cached_slots();
        if cached >= wanted {
            cached
        } else {
            self.inner.slots()
        }
    }

    /// The oldest item, or `None` if the ring is empty.
    pub fn pop(&mut self) -> Option<T> {
        self.inner.pop().ok()
    }

    /// Moves up to `max` of the oldest items to the end of `out`, publishing once. Returns how
    /// many were moved.
    pub fn pop_batch(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let count = self.ready_items(max).min(max);
        if count == 0 {
            return 0;
        }
        // `count` items were ready a moment ago and only this end takes them.
        let Ok(chunk) = self.inner.read_chunk(count) else {
            return 0;
        };
        out.reserve(count);
        // The chunk's iterator publishes the new head once, when it is dropped.
        out.extend(chunk);
        count
    }

    /// Items waiting, as last seen; the producer may have added some since.
    pub fn len(&self) -> usize {
        self.inner.slots()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::boxed::Box;
    use alloc::collections::VecDeque;
    use alloc::vec;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use proptest::prelude::*;
    use std::thread;

    #[test]
    fn push_until_full_then_pop_in_order() {
        let (mut producer, mut consumer) = ring(4);
        assert_eq!(producer.capacity(), 4);
        assert_eq!(consumer.pop(), None);
        for value in 0..4 {
            producer.try_push(value).unwrap();
        }
        assert!(producer.is_full());
        assert_eq!(producer.try_push(99), Err(99));
        assert_eq!(consumer.len(), 4);
        for value in 0..4 {
            assert_eq!(consumer.pop(), Some(value));
        }
        assert_eq!(consumer.pop(), None);
        assert!(consumer.is_empty());
        assert!(producer.is_empty());
    }

    #[test]
    fn capacity_rounds_up_to_a_power_of_two() {
        assert_eq!(ring::<u8>(0).0.capacity(), 1);
        assert_eq!(ring::<u8>(5).0.capacity(), 8);
        assert_eq!(ring::<u8>(1024).1.capacity(), 1024);
    }

    #[test]
    fn wraps_around_many_times() {
        let (mut producer, mut consumer) = ring(8);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..10_000u32 {
            let pushes = round % 9;
            for _ in 0..pushes {
                if producer.try_push(next_in).is_ok() {
                    next_in += 1;
                }
            }
            let pops = (round * 7) % 9;
            for _ in 0..pops {
                if let Some(value) = consumer.pop() {
                    assert_eq!(value, next_out);
                    next_out += 1;
                }
            }
        }
        assert!(next_out > 8 * 1000, "the ring wrapped many times");
    }

    /// `rtrb` keeps its indices in `0..2 * capacity`; a full ring that straddles the point
    /// where they wrap still pushes, refuses and pops in order, one at a time and in batches.
    #[test]
    fn a_full_ring_straddling_the_index_wrap() {
        let (mut producer, mut consumer) = ring(4);
        for start in 0..16u32 {
            for value in start..start + 4 {
                producer.try_push(value).unwrap();
            }
            assert_eq!(producer.try_push(99), Err(99));
            for value in start..start + 3 {
                assert_eq!(consumer.pop(), Some(value));
            }
            let mut out = Vec::new();
            assert_eq!(consumer.pop_batch(&mut out, 4), 1);
            assert_eq!(out, vec![start + 3]);
            assert_eq!(consumer.pop(), None);
            // A round moves the indices 5 places, coprime with 2 * capacity = 8, so the 16
            // rounds start the full ring at every position, across the wrap included.
            producer.try_push(0).unwrap();
            assert_eq!(consumer.pop(), Some(0));
        }
    }

    #[test]
    fn batches_take_what_fits_and_leave_the_rest() {
        let (mut producer, mut consumer) = ring(4);
        let mut items = vec![1, 2, 3, 4, 5, 6];
        assert_eq!(producer.push_batch(&mut items), 4);
        assert_eq!(items, vec![5, 6]);
        assert_eq!(producer.push_batch(&mut items), 0);
        let mut out = Vec::new();
        assert_eq!(consumer.pop_batch(&mut out, 3), 3);
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(producer.push_batch(&mut items), 2);
        assert!(items.is_empty());
        assert_eq!(consumer.pop_batch(&mut out, 10), 3);
        assert_eq!(out, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(consumer.pop_batch(&mut out, 10), 0);
    }

    #[test]
    fn items_left_in_a_dropped_ring_are_dropped() {
        struct Counted<'a>(&'a AtomicUsize);
        impl Drop for Counted<'_> {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let drops = AtomicUsize::new(0);
        let (mut producer, mut consumer) = ring(8);
        for _ in 0..5 {
            assert!(producer.try_push(Counted(&drops)).is_ok());
        }
        drop(consumer.pop());
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        drop(producer);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the consumer still holds the ring"
        );
        drop(consumer);
        assert_eq!(drops.load(Ordering::Relaxed), 5);
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Push(u16),
        Pop,
        PushBatch(u8),
        PopBatch(u8),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            any::<u16>().prop_map(Operation::Push),
            Just(Operation::Pop),
            (0u8..12).prop_map(Operation::PushBatch),
            (0u8..12).prop_map(Operation::PopBatch),
        ]
    }

    proptest! {
        /// The ring behaves like a bounded FIFO queue under any sequence of operations.
        #[test]
        fn matches_a_bounded_queue_model(
            capacity_log2 in 0u32..4,
            operations in proptest::collection::vec(operation(), 0..400),
        ) {
            let capacity = 1usize << capacity_log2;
            let (mut producer, mut consumer) = ring(capacity);
            let mut model = VecDeque::new();
            let mut next = 0u32;
            for operation in operations {
                match operation {
                    Operation::Push(value) => {
                        let value = u32::from(value);
                        let result = producer.try_push(value);
                        if model.len() < capacity {
                            prop_assert_eq!(result, Ok(()));
                            model.push_back(value);
                        } else {
                            prop_assert_eq!(result, Err(value));
                        }
                    }
                    Operation::Pop => prop_assert_eq!(consumer.pop(), model.pop_front()),
                    Operation::PushBatch(count) => {
                        let mut items: Vec<u32> = (0..u32::from(count)).map(|i| next + i).collect();
                        next += u32::from(count);
                        let fits = (capacity - model.len()).min(items.len());
                        let expected_rest = items[fits..].to_vec();
                        prop_assert_eq!(producer.push_batch(&mut items), fits);
                        prop_assert_eq!(&items, &expected_rest);
                        model.extend(next - u32::from(count)..next - u32::from(count) + fits as u32);
                    }
                    Operation::PopBatch(max) => {
                        let mut out = Vec::new();
                        let count = consumer.pop_batch(&mut out, usize::from(max));
                        let expected: Vec<u32> =
                            model.drain(..usize::from(max).min(model.len())).collect();
                        prop_assert_eq!(count, expected.len());
                        prop_assert_eq!(out, expected);
                    }
                }
                prop_assert_eq!(consumer.len(), model.len());
            }
        }
    }

    /// Waits politely: the test machine's cores are shared, so spinning would starve the peer.
    fn back_off() {
        thread::yield_now();
    }

    #[test]
    fn two_threads_move_millions_in_order() {
        const ITEMS: u64 = 3_000_000;
        let (mut producer, mut consumer) = ring::<u64>(256);
        let sender = thread::spawn(move || {
            let mut full = 0u64;
            for value in 0..ITEMS {
                let mut item = value;
                while let Err(back) = producer.try_push(item) {
                    item = back;
                    full += 1;
                    back_off();
                }
            }
            full
        });
        let mut expected = 0u64;
        let mut sum = 0u64;
        while expected < ITEMS {
            match consumer.pop() {
                Some(value) => {
                    assert_eq!(value, expected, "lost, duplicated or reordered");
                    sum = sum.wrapping_add(value);
                    expected += 1;
                }
                None => back_off(),
            }
        }
        sender.join().unwrap();
        assert_eq!(consumer.pop(), None);
        assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
    }

    #[test]
    fn two_threads_move_millions_in_batches() {
        const ITEMS: u64 = 2_000_000;
        let (mut producer, mut consumer) = ring::<Box<u64>>(64);
        let sender = thread::spawn(move || {
            let mut next = 0u64;
            let mut pending = Vec::new();
            while next < ITEMS || !pending.is_empty() {
                while pending.len() < 48 && next < ITEMS {
                    pending.push(Box::new(next));
                    next += 1;
                }
                if producer.push_batch(&mut pending) == 0 {
                    back_off();
                }
            }
        });
        let mut expected = 0u64;
        let mut out = Vec::new();
        while expected < ITEMS {
            out.clear();
            if consumer.pop_batch(&mut out, 32) == 0 {
                back_off();
            }
            for value in out.drain(..) {
                assert_eq!(*value, expected, "lost, duplicated or reordered");
                expected += 1;
            }
        }
        sender.join().unwrap();
        assert_eq!(consumer.pop(), None);
    }
}
