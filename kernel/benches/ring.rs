//! Items per second through one inter-core ring between two threads, one at a time and in batches, against `std::sync::mpsc::sync_channel` in the same run.
//!
//! The producer thread pushes `u64`s 0, 1, 2, ...; the consumer (the main thread) pops and
//! checks each one. When the ring is full or empty a side spins briefly, then yields: the
//! machine may have fewer free cores than threads. The standard library's bounded channel of
//! the same capacity is the yardstick. A fourth measurement, `local`, pushes and pops a batch
//! at a time one by one in a single thread: the cost of the operations themselves, with no
//! other core touching the ring's lines.
//!
//! Each measurement reports items per second of wall time and per second of CPU time used by
//! its threads (from `/proc/thread-self/schedstat`, spinning included): on a machine shared
//! with other work the wall rate follows the CPU share the bench gets, the CPU rate much less.
//!
//! Run with `cargo bench -p unisock-kernel --bench ring`. `UNISOCK_BENCH_ITEMS` sets the items
//! per measurement (default 5 000 000); `UNISOCK_BENCH_REPEATS` (default 3) repeats each
//! measurement, alternating the kinds, and keeps each kind's best. The last line is
//! `ring-bench: single=<items/s> batch=<items/s> channel=<items/s> local=<items/s>` with the
//! CPU-time rates, then the two-thread rates as ratios to the channel.

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
    Local,
}

/// Wall time of a measurement and CPU time of its threads.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (Linux); zero elsewhere.
fn thread_cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Runs `producer` on a new thread and `consumer` on this one; returns both threads' times.
fn two_threads(producer: impl FnOnce() + Send + 'static, consumer: impl FnOnce()) -> Sample {
    let start = Instant::now();
    let sender = thread::spawn(move || {
        let cpu = thread_cpu_time();
        producer();
        thread_cpu_time() - cpu
    });
    let cpu = thread_cpu_time();
    consumer();
    let consumer_cpu = thread_cpu_time() - cpu;
    let producer_cpu = sender.join().unwrap();
    Sample {
        wall: start.elapsed(),
        cpu: consumer_cpu + producer_cpu,
    }
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

fn single(items: u64) -> Sample {
    let (mut producer, mut consumer) = ring::<u64>(CAPACITY);
    two_threads(
        move || {
            let mut backoff = Backoff::new();
            for value in 0..items {
                let mut item = value;
                while let Err(back) = producer.try_push(item) {
                    item = back;
                    backoff.wait();
                }
                backoff.reset();
            }
        },
        || {
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
        },
    )
}

fn batch(items: u64) -> Sample {
    let (mut producer, mut consumer) = ring::<u64>(CAPACITY);
    two_threads(
        move || {
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
        },
        || {
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
        },
    )
}

fn channel(items: u64) -> Sample {
    let (sender, receiver) = sync_channel::<u64>(CAPACITY);
    two_threads(
        move || {
            let mut backoff = Backoff::new();
            for value in 0..items {
                let mut item = value;
                loop {
                    match sender.try_send(item) {
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
        },
        || {
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
        },
    )
}

/// One thread pushes `BATCH` items one by one, then pops them one by one.
fn local(items: u64) -> Sample {
    let (mut producer, mut consumer) = ring::<u64>(CAPACITY);
    let start = Instant::now();
    let cpu = thread_cpu_time();
    let mut next = 0;
    while next < items {
        let end = (next + BATCH as u64).min(items);
        for value in next..end {
            assert!(producer.try_push(value).is_ok());
        }
        for value in next..end {
            assert_eq!(consumer.pop(), Some(value));
        }
        next = end;
    }
    Sample {
        wall: start.elapsed(),
        cpu: thread_cpu_time() - cpu,
    }
}

/// Items per second of wall time and of CPU time.
fn measure(kind: Kind, items: u64) -> (f64, f64) {
    let sample = match kind {
        Kind::Single => single(items),
        Kind::Batch => batch(items),
        Kind::Channel => channel(items),
        Kind::Local => local(items),
    };
    let per_cpu_second = if sample.cpu.is_zero() {
        0.0
    } else {
        items as f64 / sample.cpu.as_secs_f64()
    };
    (items as f64 / sample.wall.as_secs_f64(), per_cpu_second)
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
    let kinds = [Kind::Single, Kind::Batch, Kind::Channel, Kind::Local];
    // Warm-up: thread start, page faults, frequency.
    for kind in kinds {
        measure(kind, items / 10);
    }
    let mut best_wall = [0f64; 4];
    let mut best_cpu = [0f64; 4];
    for repeat in 0..repeats {
        for (index, kind) in kinds.iter().enumerate() {
            let (wall, cpu) = measure(*kind, items);
            println!(
                "repeat {repeat}: {:<8} {:>8.2} M items/s wall {:>8.2} M items/CPU-s",
                format!("{kind:?}"),
                wall / 1e6,
                cpu / 1e6
            );
            best_wall[index] = best_wall[index].max(wall);
            best_cpu[index] = best_cpu[index].max(cpu);
        }
    }
    println!("best of {repeats}, M items per second of wall time / of CPU time:");
    for (index, kind) in kinds.iter().enumerate() {
        println!(
            "  {:<8} {:>8.2} / {:>8.2}",
            format!("{kind:?}"),
            best_wall[index] / 1e6,
            best_cpu[index] / 1e6
        );
    }
    let [single, batch, channel, local] = best_cpu;
    println!(
        "ring-bench: single={single:.0} batch={batch:.0} channel={channel:.0} local={local:.0} (items/CPU-s) single/channel={:.2} batch/channel={:.2}",
        single / channel,
        batch / channel
    );
}
