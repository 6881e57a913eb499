//! Items per second through one inter-core ring between two threads, one at a time and in batches, against `std::sync::mpsc::sync_channel` in the same run.
//!
//! The producer thread pushes `u64`s 0, 1, 2, ...; the consumer (the main thread) pops and
//! checks each one. When the ring is full or empty a side spins briefly, then yields: the
//! machine may have fewer free cores than threads. The standard library's bounded channel of
//! the same capacity is the yardstick: on a shared machine the absolute rates follow the CPU
//! share the bench gets, the ratio to the yardstick much less so.
//!
//! Run with `cargo bench -p unisock-kernel --bench ring`. `UNISOCK_BENCH_ITEMS` sets the items
//! per measurement (default 5 000 000); `UNISOCK_BENCH_REPEATS` (default 3) repeats each
//! measurement, alternating the kinds, and keeps each kind's best. The last line is
//! `ring-bench: single=<items/s> batch=<items/s> channel=<items/s> single/channel=<ratio>
//! batch/channel=<ratio>`.

use std::hint::spin_loop;
use std::sync::mpsc::{TryRecvError, TrySendError, sync_channel};
use std::thread;
use std::time::{Duration, Instant};

use unisock_kernel::sync::ring;

const CAPACITY: usize = 256;
const BATCH: usize = 32;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Single,
    Batch,
    Channel,
}

/// Spins a little after a failed attempt, then yields so a peer sharing this core can run.
struct Backoff(u32);

impl Backoff {
    fn new() -> Self {
        Backoff(0)
    }

    fn wait(&mut self) {
        if self.0 < 64 {
            self.0 += 1;
            spin_loop();
        } else {
            thread::yield_now();
        }
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

fn single(items: u64) -> Duration {
    let (mut producer, mut consumer) = ring::<u64>(CAPACITY);
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let mut backoff = Backoff::new();
        for value in 0..items {
            let mut item = value;
            while let Err(back) = producer.try_push(item) {
                item = back;
                backoff.wait();
            }
            backoff.reset();
        }
    });
    let mut backoff = Backoff::new();
    let mut expected = 0;
    while expected < items {
        match consumer.pop() {
            Some(value) => {
                assert_eq!(value, expected);
                expected += 1;
                backoff.reset();
            }
            None => backoff.wait(),
        }
    }
    sender.join().unwrap();
    start.elapsed()
}

fn batch(items: u64) -> Duration {
    let (mut producer, mut consumer) = ring::<u64>(CAPACITY);
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let mut backoff = Backoff::new();
        let mut next = 0;
        let mut pending = Vec::with_capacity(BATCH);
        while next < items || !pending.is_empty() {
            while pending.len() < BATCH && next < items {
                pending.push(next);
                next += 1;
            }
            if producer.push_batch(&mut pending) == 0 {
                backoff.wait();
            } else {
                backoff.reset();
            }
        }
    });
    let mut backoff = Backoff::new();
    let mut expected = 0;
    let mut out = Vec::with_capacity(BATCH);
    while expected < items {
        out.clear();
        if consumer.pop_batch(&mut out, BATCH) == 0 {
            backoff.wait();
            continue;
        }
        backoff.reset();
        for &value in &out {
            assert_eq!(value, expected);
            expected += 1;
        }
    }
    sender.join().unwrap();
    start.elapsed()
}

fn channel(items: u64) -> Duration {
    let (sender_end, receiver) = sync_channel::<u64>(CAPACITY);
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let mut backoff = Backoff::new();
        for value in 0..items {
            let mut item = value;
            loop {
                match sender_end.try_send(item) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) => {
                        item = back;
                        backoff.wait();
                    }
                    Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
                }
            }
            backoff.reset();
        }
    });
    let mut backoff = Backoff::new();
    let mut expected = 0;
    while expected < items {
        match receiver.try_recv() {
            Ok(value) => {
                assert_eq!(value, expected);
                expected += 1;
                backoff.reset();
            }
            Err(TryRecvError::Empty) => backoff.wait(),
            Err(TryRecvError::Disconnected) => panic!("sender gone"),
        }
    }
    sender.join().unwrap();
    start.elapsed()
}

fn measure(kind: Kind, items: u64) -> f64 {
    let elapsed = match kind {
        Kind::Single => single(items),
        Kind::Batch => batch(items),
        Kind::Channel => channel(items),
    };
    items as f64 / elapsed.as_secs_f64()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let items = env_or("UNISOCK_BENCH_ITEMS", 5_000_000);
    let repeats = env_or("UNISOCK_BENCH_REPEATS", 3).max(1);
    let kinds = [Kind::Single, Kind::Batch, Kind::Channel];
    // Warm-up: thread start, page faults, frequency.
    for kind in kinds {
        measure(kind, items / 10);
    }
    let mut best = [0f64; 3];
    for repeat in 0..repeats {
        for (index, kind) in kinds.iter().enumerate() {
            let rate = measure(*kind, items);
            println!(
                "repeat {repeat}: {:<8} {:>8.2} M items/s",
                format!("{kind:?}"),
                rate / 1e6
            );
            best[index] = best[index].max(rate);
        }
    }
    let [single, batch, channel] = best;
    println!(
        "ring-bench: single={single:.0} batch={batch:.0} channel={channel:.0} single/channel={:.2} batch/channel={:.2}",
        single / channel,
        batch / channel
    );
}
