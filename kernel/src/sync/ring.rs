//! A bounded single-producer single-consumer ring from one core to another: lock-free, FIFO, in safe Rust.
//!
//! Lamport's ring (head and tail indices that only their owner writes) with the refinements of
//! the DPDK `rte_ring` and Rigtorp's `SPSCQueue`: head and tail live on separate cache lines,
//! and each end keeps a private copy of the other end's index, so it reads the shared one only
//! when the ring looks full (producer) or empty (consumer). Batches publish their index once.
//!
//! Each slot is a `spin::Mutex<Option<T>>` instead of an `UnsafeCell`, which keeps this file free
//! of `unsafe`. The indices already give each slot to exactly one end at a time (the producer
//! fills slot i only after the consumer published head > i - capacity, the consumer empties it
//! only after the producer published tail > i, both with release/acquire), so the slot lock is
//! never contended: taking it is one successful compare-and-swap, never a wait.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::CachePadded;

struct Shared<T> {
    /// Index of the next slot the consumer empties; written by the consumer only.
    head: CachePadded<AtomicUsize>,
    /// Index of the next slot the producer fills; written by the producer only.
    tail: CachePadded<AtomicUsize>,
    slots: Box<[spin::Mutex<Option<T>>]>,
    /// Capacity - 1; the capacity is a power of two so an index maps to a slot with a mask.
    mask: usize,
}

/// The sending end; exactly one exists per ring, so pushes need `&mut self`.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    tail: usize,
    cached_head: usize,
}

/// The receiving end; exactly one exists per ring, so pops need `&mut self`.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: usize,
    cached_tail: usize,
}

/// A ring holding at least `capacity` items (rounded up to a power of two, at least 1).
///
/// Indices run freely and wrap at `usize::MAX`; their difference is the fill level.
pub fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(1).next_power_of_two();
    let slots = (0..capacity).map(|_| spin::Mutex::new(None)).collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: capacity - 1,
    });
    (
        Producer {
            shared: shared.clone(),
            tail: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            head: 0,
            cached_tail: 0,
        },
    )
}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        self.mask + 1
    }

    fn slot(&self, index: usize) -> &spin::Mutex<Option<T>> {
        &self.slots[index & self.mask]
    }
}

impl<T> Producer<T> {
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Slots free for pushing, at least `wanted` if the ring has that many free; reads the
    /// consumer's index only when the cached copy shows fewer.
    fn free_slots(&mut self, wanted: usize) -> usize {
        let capacity = self.shared.capacity();
        let mut free = capacity - self.tail.wrapping_sub(self.cached_head);
        if free < wanted {
            // Acquire: the consumer's emptying of those slots happens before our refill.
            self.cached_head = self.shared.head.load(Ordering::Acquire);
            free = capacity - self.tail.wrapping_sub(self.cached_head);
        }
        free
    }

    fn fill(&self, index: usize, item: T) {
        let previous = self.shared.slot(index).lock().replace(item);
        debug_assert!(previous.is_none(), "producer overwrote a full slot");
    }

    fn publish(&self) {
        // Release: the slot contents are visible before the consumer sees the new tail.
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    /// Pushes `item`, or hands it back if the ring is full (the caller counts the drop).
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        if self.free_slots(1) == 0 {
            return Err(item);
        }
        self.fill(self.tail, item);
        self.tail = self.tail.wrapping_add(1);
        self.publish();
        Ok(())
    }

    /// Pushes as many items from the front of `items` as fit, in order, and publishes them
    /// together; the rest stay in `items`. Returns how many were pushed.
    pub fn push_batch(&mut self, items: &mut Vec<T>) -> usize {
        let count = self.free_slots(items.len()).min(items.len());
        if count == 0 {
            return 0;
        }
        for item in items.drain(..count) {
            self.fill(self.tail, item);
            self.tail = self.tail.wrapping_add(1);
        }
        self.publish();
        count
    }

    /// Items in the ring as last seen; the consumer may have taken some since.
    pub fn len(&self) -> usize {
        self.tail
            .wrapping_sub(self.shared.head.load(Ordering::Acquire))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&mut self) -> bool {
        self.free_slots(1) == 0
    }
}

impl<T> Consumer<T> {
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Items ready to pop, at least `wanted` if the ring holds that many; reads the producer's
    /// index only when the cached copy shows fewer.
    fn ready_items(&mut self, wanted: usize) -> usize {
        let mut ready = self.cached_tail.wrapping_sub(self.head);
        if ready < wanted {
            // Acquire: pairs with the producer's release of the tail.
            self.cached_tail = self.shared.tail.load(Ordering::Acquire);
            ready = self.cached_tail.wrapping_sub(self.head);
        }
        ready
    }

    fn empty_slot(&self, index: usize) -> T {
        let item = self.shared.slot(index).lock().take();
        // The producer fills every slot before it publishes a tail past it.
        item.expect("SPSC ring: published slot is empty")
    }

    fn publish(&self) {
        // Release: the slots are empty before the producer sees them as free.
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// The oldest item, or `None` if the ring is empty.
    pub fn pop(&mut self) -> Option<T> {
        if self.ready_items(1) == 0 {
            return None;
        }
        let item = self.empty_slot(self.head);
        self.head = self.head.wrapping_add(1);
        self.publish();
        Some(item)
    }

    /// Moves up to `max` of the oldest items to the end of `out`, publishing once. Returns how
    /// many were moved.
    pub fn pop_batch(&mut self, out: &mut Vec<T>, max: usize) -> usize {
        let count = self.ready_items(max).min(max);
        if count == 0 {
            return 0;
        }
        out.reserve(count);
        for _ in 0..count {
            out.push(self.empty_slot(self.head));
            self.head = self.head.wrapping_add(1);
        }
        self.publish();
        count
    }

    /// Items waiting, as last seen; the producer may have added some since.
    pub fn len(&self) -> usize {
        self.shared
            .tail
            .load(Ordering::Acquire)
            .wrapping_sub(self.head)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::collections::VecDeque;
    use alloc::vec;
    use core::sync::atomic::AtomicUsize;
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

    #[test]
    fn indices_survive_wrapping_at_usize_max() {
        let (mut producer, mut consumer) = ring(4);
        let start = usize::MAX - 2;
        producer.tail = start;
        producer.cached_head = start;
        producer.shared.tail.store(start, Ordering::Relaxed);
        producer.shared.head.store(start, Ordering::Relaxed);
        consumer.head = start;
        consumer.cached_tail = start;
        for value in 0..4 {
            producer.try_push(value).unwrap();
        }
        assert_eq!(producer.try_push(4), Err(4));
        for value in 0..4 {
            assert_eq!(consumer.pop(), Some(value));
        }
        assert_eq!(consumer.pop(), None);
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
