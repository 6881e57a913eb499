//! A core's bounded ring of access-log lines on their way to the serial console: a line goes in whole without waiting, or not at all (the caller counts it); one task per core writes the ring out a few bytes at a time, only what the console takes at once, so a slow console never holds up the core's traffic.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};
use core::time::Duration;

use unisock_kernel::executor::Handle;

use super::statistics::CoreStates;

/// The console as a core may use it from its data path: writes a prefix of the bytes that
/// the console takes at once, without waiting, and returns its length (0 while the console
/// is busy: its transmitter still sending, or another core in the middle of a line). The
/// bytes given never go past a line's end, so the console can keep every line whole.
pub type ConsoleWriter = Rc<dyn Fn(&[u8]) -> usize>;

/// Bytes of access-log lines each core may hold for the console: about two seconds of a
/// 115200-baud UART (11.5 KB/s), a few hundred lines.
pub const RING_BYTES: usize = 32 * 1024;
/// The most the drain task writes in one turn of its core's loop (a 16550's transmit FIFO is
/// 16 bytes, so a real UART takes at most that; a virtual one may take it all).
pub const DRAIN_BYTES_PER_TURN: usize = 256;
/// How long the drain task waits before it looks at a busy console again: a 16-byte FIFO
/// empties in about 1.4 ms at 115200 baud.
pub const DRAIN_PERIOD: Duration = Duration::from_millis(1);

/// What ends every line on the console (what a terminal expects).
const LINE_END: &[u8] = b"\r\n";

/// The ring itself: whole lines, oldest first.
pub struct LineRing {
    bytes: VecDeque<u8>,
    capacity: usize,
    /// The drain task, waiting for a line.
    waiting: Option<Waker>,
}

impl LineRing {
    pub fn new(capacity: usize) -> LineRing {
        LineRing {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
            waiting: None,
        }
    }

    /// Queues `line` and its line end, whole; false (nothing queued) when it does not fit.
    pub fn push_line(&mut self, line: &str) -> bool {
        if self.bytes.len() + line.len() + LINE_END.len() > self.capacity {
            return false;
        }
        self.bytes.extend(line.as_bytes());
        self.bytes.extend(LINE_END);
        if let Some(waker) = self.waiting.take() {
            waker.wake();
        }
        true
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The next bytes to write: at most `limit`, and never past the end of the first line.
    pub fn next_chunk(&self, limit: usize) -> &[u8] {
        let (front, back) = self.bytes.as_slices();
        let slice = if front.is_empty() { back } else { front };
        let slice = &slice[..slice.len().min(limit)];
        match slice.iter().position(|&byte| byte == b'\n') {
            Some(end) => &slice[..=end],
            None => slice,
        }
    }

    /// Forgets the first `count` bytes (written).
    pub fn consume(&mut self, count: usize) {
        self.bytes.drain(..count.min(self.bytes.len()));
    }
}

/// Writes one turn's worth of `ring` to `console`: as long as the console takes bytes, at
/// most `budget` of them. Returns how many were written.
pub fn drain_turn(
    ring: &RefCell<LineRing>,
    console: &dyn Fn(&[u8]) -> usize,
    budget: usize,
) -> usize {
    let mut written = 0;
    while written < budget {
        let mut ring = ring.borrow_mut();
        let chunk = ring.next_chunk(budget - written);
        if chunk.is_empty() {
            break;
        }
        let taken = console(chunk).min(chunk.len());
        if taken == 0 {
            break;
        }
        ring.consume(taken);
        written += taken;
    }
    written
}

/// The core's drain task: waits for lines, writes a turn's worth, and while the console is
/// busy looks again every [`DRAIN_PERIOD`]; it never waits on the console itself.
pub async fn drain_to_console(
    ring: Rc<RefCell<LineRing>>,
    console: ConsoleWriter,
    handle: Handle,
    (states, core): (Arc<CoreStates>, usize),
) {
    loop {
        poll_fn(|context| {
            let mut ring = ring.borrow_mut();
            if ring.is_empty() {
                ring.waiting = Some(context.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let written = drain_turn(&ring, &*console, DRAIN_BYTES_PER_TURN);
        states
            .core(core)
            .access_log_console_bytes
            .add(written as u64);
        if !ring.borrow().is_empty() {
            handle.sleep(DRAIN_PERIOD).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::cell::Cell;

    use super::*;

    #[test]
    fn lines_go_in_whole_or_not_at_all() {
        let mut ring = LineRing::new(40);
        assert!(ring.push_line("access: one")); // 13 bytes with its line end
        assert!(ring.push_line("access: two")); // 26
        assert!(!ring.push_line("access: three")); // 41 would not fit: nothing of it queued
        assert_eq!(ring.len(), 26);
        assert!(ring.push_line("a")); // 29
        // Chunks never run past a line's end, and respect the limit.
        assert_eq!(ring.next_chunk(5), b"acces");
        assert_eq!(ring.next_chunk(100), b"access: one\r\n");
        ring.consume(13);
        assert_eq!(ring.next_chunk(100), b"access: two\r\n");
    }

    #[test]
    fn a_turn_writes_only_what_the_console_takes_and_never_waits() {
        let ring = RefCell::new(LineRing::new(1024));
        for index in 0..10 {
            assert!(
                ring.borrow_mut()
                    .push_line(&alloc::format!("line {index} of the log"))
            );
        }
        let written = RefCell::new(Vec::new());
        let calls = Cell::new(0);
        // A 16550 with its FIFO: 16 bytes when the transmitter is empty, then busy.
        let free = Cell::new(true);
        let console = |bytes: &[u8]| {
            calls.set(calls.get() + 1);
            assert!(
                !bytes[..bytes.len() - 1].contains(&b'\n'),
                "a chunk ran past a line end"
            );
            if !free.replace(false) {
                return 0;
            }
            let taken = bytes.len().min(16);
            written.borrow_mut().extend_from_slice(&bytes[..taken]);
            taken
        };
        assert_eq!(drain_turn(&ring, &console, DRAIN_BYTES_PER_TURN), 16);
        // The second call found the console busy: the turn ended there.
        assert_eq!(calls.get(), 2);
        // A console that takes everything: a turn's budget at most.
        let console = |bytes: &[u8]| {
            written.borrow_mut().extend_from_slice(bytes);
            bytes.len()
        };
        let total = ring.borrow().len() + 16;
        assert_eq!(drain_turn(&ring, &console, 100), 100);
        while drain_turn(&ring, &console, 100) > 0 {}
        assert!(ring.borrow().is_empty());
        let text = String::from_utf8(written.into_inner()).unwrap();
        assert_eq!(text.len(), total);
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[9], "line 9 of the log");
    }
}
