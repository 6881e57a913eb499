//! What a connection needs from its layer while it runs: configuration, clock, counters, output queue, timer wheel and memory budget.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::task::Waker;

use super::isn::{SipKey, TupleSecrets};
use super::output::OutputQueue;
use super::timer_wheel::TimerWheel;
use super::tuple::FourTuple;
use super::{CoreId, TcpConfig, TcpCounters};
use crate::time::Instant;

/// What a timer wheel entry stands for. Entries are checked when they fire, so a key whose
/// object is gone or re-armed is simply ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKey {
    /// All timers of the connection in this socket slot (it keeps its own deadlines).
    Connection { slot: u32, generation: u32 },
    /// SYN-ACK retransmission of a half-open connection.
    HalfOpen(FourTuple),
    /// End of a TIME_WAIT record.
    TimeWait(FourTuple),
}

/// The parts of a layer shared by all its connections.
pub(crate) struct Context {
    pub(crate) config: TcpConfig,
    pub(crate) core: CoreId,
    pub(crate) now: Instant,
    pub(crate) key: SipKey,
    pub(crate) counters: super::TcpCounters,
    pub(crate) output: OutputQueue,
    pub(crate) wheel: TimerWheel<TimerKey>,
    /// Payload bytes held in all send, receive and reassembly queues of this core.
    pub(crate) memory_used: usize,
    /// Connections holding bytes the budget's reserve gave them (see `memory_room`).
    pub(crate) reserve_users: usize,
    /// Bumped, and `reserve_users` emptied, whenever the core's memory falls back within the
    /// shared part: what the reserve gave is then shared memory like the rest, and a
    /// connection that joined in an earlier epoch no longer takes a place.
    pub(crate) reserve_epoch: u64,
    /// Writers the budget refused while they had nothing queued: no ACK of theirs will come
    /// to wake them, so memory given back anywhere on the core does, when it can change a
    /// refusal (`release_memory`, `leave_reserve`). At most one entry per connection per
    /// round (`memory_waiters_round`), holding its latest waker.
    memory_waiters: Vec<Waker>,
    /// Rounds of `memory_waiters` woken so far.
    pub(crate) memory_waiters_round: u64,
    /// RFC 5961 section 7 rate limit: the current second and the challenge ACKs still
    /// allowed in it (a random budget, see `reply::challenge_ack_allowed`).
    pub(crate) challenge_ack_second: u64,
    pub(crate) challenge_ack_budget_drawn: bool,
    pub(crate) challenge_acks_left: u32,
    /// The same for RSTs to segments that reached no socket (`TcpConfig::stranger_reset_limit`).
    pub(crate) reset_second: Option<u64>,
    pub(crate) stranger_resets_left: u32,
    /// Emptied send and receive buffers of closed connections, kept with their allocation for
    /// the next ones: a short connection otherwise allocates and frees four buffers.
    spare_buffers: Vec<VecDeque<u8>>,
}

/// Spare buffers kept at most, and the largest capacity one may keep: at most 128 KiB per
/// core that the memory budget (which counts queued bytes) does not see.
const SPARE_BUFFERS: usize = 32;
const SPARE_BUFFER_CAPACITY: usize = 4096;

impl Context {
    pub(crate) fn new(config: TcpConfig, core: CoreId, key: SipKey) -> Self {
        Context {
            config,
            core,
            now: Instant::ZERO,
            key,
            counters: TcpCounters::default(),
            output: OutputQueue::default(),
            wheel: TimerWheel::new(Instant::ZERO),
            memory_used: 0,
            reserve_users: 0,
            reserve_epoch: 0,
            memory_waiters: Vec::new(),
            memory_waiters_round: 0,
            challenge_ack_second: 0,
            challenge_ack_budget_drawn: false,
            challenge_acks_left: 0,
            reset_second: None,
            stranger_resets_left: 0,
            spare_buffers: Vec::new(),
        }
    }

    /// Queues a segment of a connection that `build` writes (see `OutputQueue::push`) and
    /// `newest` describes (see `OutputQueue::newest`), unless the queue already holds
    /// `max_queued_segments`: then it is dropped and counted, like a loss on the wire,
    /// instead of the queue growing while the interface drains more slowly than segments
    /// are made (issue 10, defect 10).
    pub(crate) fn push_connection_segment(
        &mut self,
        newest: super::output::NewestSegment,
        build: impl FnOnce(&mut alloc::vec::Vec<u8>),
    ) {
        if self.output.len() >= self.config.max_queued_segments {
            self.counters.output_queue_drops += 1;
            return;
        }
        self.output.push_from_connection(
            newest,
            *newest.tuple.local.ip(),
            *newest.tuple.remote.ip(),
            build,
        );
    }

    /// Like `push_connection_segment`, for a segment without payload that no connection's
    /// next segment may fold into.
    pub(crate) fn push_header_only(&mut self, header: &super::segment::SegmentHeader) {
        if self.output.len() >= self.config.max_queued_segments {
            self.counters.output_queue_drops += 1;
            return;
        }
        self.output.push_header_only(header);
    }

    /// An empty buffer for a connection's first bytes, with an allocation if a spare one is
    /// left.
    pub(crate) fn take_buffer(&mut self) -> VecDeque<u8> {
        self.spare_buffers.pop().unwrap_or_default()
    }

    /// Keeps the allocation of a buffer a connection no longer needs, if it is small and
    /// there is room among the spares; else it is freed.
    pub(crate) fn give_back_buffer(&mut self, mut buffer: VecDeque<u8>) {
        if buffer.capacity() == 0
            || buffer.capacity() > SPARE_BUFFER_CAPACITY
            || self.spare_buffers.len() >= SPARE_BUFFERS
        {
            return;
        }
        buffer.clear();
        self.spare_buffers.push(buffer);
    }

    /// Bytes of the per-core buffer budget that a connection already holding `held` bytes
    /// in one direction may add, of which at most `guarantee_limit` from the reserve. The
    /// budget's last quarter is kept for connections holding less than `guaranteed_buffer`
    /// (as Linux guarantees `tcp_wmem[0]`/`tcp_rmem[0]` under memory pressure): clients that
    /// never read fill three quarters with their send buffers, and a new client's request
    /// and response still fit in what is left.
    ///
    /// The reserve serves at most `reserve_user_limit` connections at once (`reserve_user`:
    /// this one is among them already): a connection joins when it is given bytes beyond the
    /// shared part and leaves when it holds nothing, or when the core's memory falls back
    /// within the shared part (`reserve_epoch`). Without the bound, a quarter of the budget
    /// over 4 KiB clients, each holding just under 4 KiB, left nothing for the next one, and
    /// every connection past that point got a fraction of its guarantee that served no one.
    pub(crate) fn memory_room(
        &self,
        held: usize,
        guarantee_limit: usize,
        reserve_user: bool,
    ) -> usize {
        let shared = self.shared_room();
        // The guarantee is at most `guaranteed_buffer`: with that much shared room left (a
        // core without memory pressure), the reserve has nothing to add.
        if shared >= self.config.guaranteed_buffer {
            return shared;
        }
        if !reserve_user && self.reserve_full() {
            return shared;
        }
        shared.max(self.guaranteed_room(held, guarantee_limit))
    }

    /// What is left of the budget's first three quarters.
    pub(crate) fn shared_room(&self) -> usize {
        self.shared_limit().saturating_sub(self.memory_used)
    }

    fn shared_limit(&self) -> usize {
        let limit = self.config.max_buffer_memory;
        limit - limit / 4
    }

    fn guaranteed_room(&self, held: usize, guarantee_limit: usize) -> usize {
        let hard = self
            .config
            .max_buffer_memory
            .saturating_sub(self.memory_used);
        self.config
            .guaranteed_buffer
            .saturating_sub(held)
            .min(guarantee_limit)
            .min(hard)
    }

    /// Connections the reserve serves at once: as many as fit with their whole guarantee in
    /// both directions (a request and its response), so that each one it takes in is served,
    /// and at least one. The next one is refused (`reserve_limit_refusals`) until one leaves.
    pub(crate) fn reserve_user_limit(&self) -> usize {
        let reserve = self.config.max_buffer_memory / 4;
        (reserve / (2 * self.config.guaranteed_buffer).max(1)).max(1)
    }

    /// The reserve serves `reserve_user_limit` connections (tested first on the count: the
    /// division is left out of the usual case, a reserve nobody uses).
    fn reserve_full(&self) -> bool {
        self.reserve_users != 0 && self.reserve_users >= self.reserve_user_limit()
    }

    /// Whether `memory_room` gave less because the reserve already serves its most
    /// connections: a refusal to count.
    pub(crate) fn refused_by_reserve_limit(
        &self,
        held: usize,
        guarantee_limit: usize,
        reserve_user: bool,
    ) -> bool {
        !reserve_user
            && self.reserve_full()
            && self.guaranteed_room(held, guarantee_limit) > self.shared_room()
    }

    /// Takes `bytes` off the budget's count; whether `after_release` has work to do (the
    /// reserve is in use, or writers wait for memory).
    ///
    /// A short connection gives memory back a dozen times, and usually nobody uses the
    /// reserve nor waits for memory: that case is one subtraction and one test, inlined
    /// (`Connection::release_memory`), and the rest is left out of line.
    #[inline]
    pub(crate) fn uncount_memory(&mut self, bytes: usize) -> bool {
        self.memory_used = self.memory_used.saturating_sub(bytes);
        self.reserve_users | self.memory_waiters.len() != 0
    }

    /// The rest of giving back memory, after `uncount_memory` said there is some: empties
    /// the reserve when memory is back within the shared part, and wakes the writers waiting
    /// for memory if the shared part now has room (a refused writer was refused shared room,
    /// and a reserve place or its guarantee: see `memory_room`). Bytes freed in the reserve
    /// while its places stay taken would refuse each of them again, a futile poll per waiter
    /// per ACK; a place freed wakes them through `leave_reserve`.
    #[inline(never)]
    pub(crate) fn after_release(&mut self, bytes: usize) {
        let mut refusals_change = bytes > 0 && self.memory_used < self.shared_limit();
        if self.reserve_users > 0 && self.memory_used <= self.shared_limit() {
            // Every place is free again.
            self.reserve_users = 0;
            self.reserve_epoch += 1;
            refusals_change = true;
        }
        if refusals_change {
            self.wake_memory_waiters();
        }
    }

    /// A connection gives back its reserve place: a writer refused for want of one may now
    /// have it.
    pub(crate) fn leave_reserve(&mut self) {
        self.reserve_users -= 1;
        self.wake_memory_waiters();
    }

    fn wake_memory_waiters(&mut self) {
        if !self.memory_waiters.is_empty() {
            self.memory_waiters_round += 1;
            for waker in self.memory_waiters.drain(..) {
                waker.wake();
            }
        }
    }

    /// Wakes `waker` the next time memory is given back (see `memory_waiters`); returns its
    /// place in this round's list.
    pub(crate) fn wait_for_memory(&mut self, waker: &Waker) -> usize {
        self.memory_waiters.push(waker.clone());
        self.memory_waiters.len() - 1
    }

    /// A connection already waiting in this round polls again: keep its latest waker (a
    /// task polled with a new one would otherwise miss the wake-up).
    pub(crate) fn replace_memory_waiter(&mut self, place: usize, waker: &Waker) {
        if let Some(waiting) = self.memory_waiters.get_mut(place)
            && !waiting.will_wake(waker)
        {
            waiting.clone_from(waker);
        }
    }

    /// Whether the shared part of the buffer budget is used up, so that connections draw on
    /// the reserve: memory pressure, under which orphans holding data are reaped.
    pub(crate) fn under_memory_pressure(&self) -> bool {
        let limit = self.config.max_buffer_memory;
        self.memory_used >= limit - limit / 4
    }

    /// The tuple's ISN offset and TSval offset (see `TupleSecrets`).
    pub(crate) fn tuple_secrets(&self, tuple: &FourTuple) -> TupleSecrets {
        TupleSecrets::new(&self.key, tuple.local, tuple.remote)
    }

    /// Our TSval for a connection: a millisecond clock plus its offset.
    pub(crate) fn timestamp_value(&self, offset: u32) -> u32 {
        (self.now.as_millis() as u32).wrapping_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_buffers_are_small_bounded_and_empty() {
        let mut context = Context::new(TcpConfig::default(), CoreId(0), SipKey::new([7; 16]));
        let mut used = VecDeque::new();
        used.extend(&[1u8; 100]);
        let capacity = used.capacity();
        context.give_back_buffer(used);
        let reused = context.take_buffer();
        assert!(reused.is_empty());
        assert_eq!(reused.capacity(), capacity);
        // A large buffer and one without allocation are not kept.
        context.give_back_buffer(VecDeque::with_capacity(2 * SPARE_BUFFER_CAPACITY));
        context.give_back_buffer(VecDeque::new());
        assert_eq!(context.take_buffer().capacity(), 0);
        for _ in 0..2 * SPARE_BUFFERS {
            context.give_back_buffer(VecDeque::with_capacity(100));
        }
        assert_eq!(context.spare_buffers.len(), SPARE_BUFFERS);
    }
}
