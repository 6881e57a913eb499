//! One connection's transmission control block and its RFC 9293 state machine: handshake, data, acknowledgment, retransmission, close.
//!
//! A connection never touches the layer's tables: it reports an [`Outcome`] and the layer
//! moves it (to TIME_WAIT, or out). Everything it sends goes through the context's output queue.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use core::task::Waker;
use core::time::Duration;

use super::congestion::{AckAction, NewReno};
use super::context::Context;
use super::isn::TupleSecrets;
use super::output::NewestSegment;
use super::reassembly::Reassembly;
use super::reply::{challenge_ack_allowed, send_reset};
use super::rtt::RttEstimator;
use super::scoreboard::Scoreboard;
use super::segment::{
    self, ACK, FIN, MAX_WINDOW_SCALE, PSH, RST, SYN, Segment, SegmentHeader, SegmentOptions,
};
use super::seq::SeqNum;
use super::tuple::FourTuple;
use super::{DropReason, SocketError, SocketOptions, TcpState};
use crate::time::Instant;

/// RFC 9293 section 3.7.1: the MSS to assume when the peer sends none.
const DEFAULT_PEER_MSS: u16 = 536;

/// Bytes of the timestamp option as we lay it out (NOP, NOP, kind, length, 8 bytes).
const TIMESTAMP_OPTION_LENGTH: u32 = 12;

/// Who holds the connection's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Application,
    /// Established, waiting in the accept queue of the listener in this slot.
    AcceptQueue {
        listener: u32,
    },
    /// Closed by the application, finishing on its own.
    Orphan,
}

/// What the layer must do with the connection after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Continue,
    /// Enter TIME_WAIT: the layer replaces the connection by a small record.
    TimeWait,
    /// The connection is over (state CLOSED); the layer removes it from its tables.
    Closed,
}

/// RFC 7323 timestamp state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timestamps {
    /// Added to our millisecond clock to form TSval.
    pub(crate) offset: u32,
    /// TS.Recent: the peer's latest TSval worth echoing (RFC 7323 section 4.3).
    pub(crate) recent: u32,
    /// When TS.Recent was last updated (for the 24-day PAWS rule, RFC 7323 section 5.5).
    pub(crate) recent_time: Instant,
}

/// Deadlines of the connection's timers; one wheel entry at the earliest one stands for all.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timers {
    retransmit: Option<Instant>,
    delayed_ack: Option<Instant>,
    persist: Option<Instant>,
    keepalive: Option<Instant>,
    /// FIN-WAIT-2 timeout of an orphan.
    close: Option<Instant>,
    /// Deadline of the wheel entry currently armed for this connection.
    pub(crate) scheduled: Option<Instant>,
}

impl Timers {
    /// Runs after every event of the connection: a minimum over plain integers, with an
    /// unarmed timer as the latest instant, because matching the options pairwise cost
    /// about 25 instructions a call and the iterator form about 200. A timer armed at the
    /// very last nanosecond of the clock reads as unarmed, 584 years after boot.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        let nanos = |deadline: Option<Instant>| deadline.map_or(u64::MAX, Instant::as_nanos);
        let earliest = nanos(self.retransmit)
            .min(nanos(self.delayed_ack))
            .min(nanos(self.persist))
            .min(nanos(self.keepalive))
            .min(nanos(self.close));
        (earliest != u64::MAX).then_some(Instant::from_nanos(earliest))
    }
}

impl Timers {
    /// Whether the wheel entry armed for the connection already covers its timers: nothing
    /// to arm, or an entry no later than the earliest deadline (a stale early entry only
    /// re-arms when it fires).
    pub(crate) fn entry_stands(&self) -> bool {
        self.earliest().is_none_or(|earliest| {
            self.scheduled
                .is_some_and(|scheduled| scheduled <= earliest)
        })
    }
}

/// Options the peer sent in its SYN and what was agreed (RFC 9293 section 3.7.1, RFC 7323, RFC 2018).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handshake {
    pub(crate) initial_send: SeqNum,
    pub(crate) initial_receive: SeqNum,
    pub(crate) peer_mss: u16,
    /// Both sides' shifts, if both offered window scaling: (send shift, receive shift).
    pub(crate) window_shifts: Option<(u8, u8)>,
    /// The peer's TSval from the handshake, if both offered timestamps.
    pub(crate) peer_timestamp: Option<u32>,
    pub(crate) sack_permitted: bool,
    /// Window the peer offered in its SYN (never scaled, RFC 7323 section 2.2).
    pub(crate) peer_window: u16,
    /// Our TSval offset for the 4-tuple (`Context::tuple_secrets`, a SipHash), computed
    /// once for the SYN or SYN-ACK and kept; 0 when timestamps are off.
    pub(crate) timestamp_offset: u32,
}

/// A transmission control block.
pub(crate) struct Connection {
    pub(crate) tuple: FourTuple,
    pub(crate) state: TcpState,
    pub(crate) owner: Owner,

    // Send sequence space (RFC 9293 section 3.3.1).
    iss: SeqNum,
    send_unacknowledged: SeqNum,
    send_next: SeqNum,
    /// Highest sequence number sent (SND.NXT before any go-back-N).
    send_max: SeqNum,
    send_window: u32,
    max_send_window: u32,
    send_window_update_sequence: SeqNum,
    send_window_update_acknowledgment: SeqNum,
    /// Queued bytes, from `send_buffer_sequence` on (unacknowledged, then unsent).
    send_buffer: VecDeque<u8>,
    send_buffer_sequence: SeqNum,
    send_capacity: usize,
    /// The application closed its sending side: a FIN follows the queued data.
    fin_queued: bool,

    // Receive sequence space.
    irs: SeqNum,
    receive_next: SeqNum,
    /// Right edge of the window we advertised; it never moves left (RFC 9293 section 3.8.6.2.2).
    receive_advertised: SeqNum,
    receive_buffer: VecDeque<u8>,
    receive_capacity: usize,
    reassembly: Reassembly,
    /// Sequence number of a FIN that arrived ahead of missing data.
    pending_fin: Option<SeqNum>,
    fin_received: bool,
    read_shutdown: bool,

    // Negotiated options.
    send_mss: u32,
    send_window_shift: u8,
    receive_window_shift: u8,
    pub(crate) timestamps: Option<Timestamps>,
    sack_permitted: bool,
    /// SYN options offered by us (for a SYN retransmission).
    offer_timestamps: bool,
    offer_window_scale: bool,
    /// Our TSval offset, computed once (see `Handshake::timestamp_offset`).
    timestamp_offset: u32,

    // Loss recovery.
    rtt: RttEstimator,
    /// Karn's algorithm: the sequence number being timed and when it was sent.
    rtt_timing: Option<(SeqNum, Instant)>,
    retries: u32,
    congestion: NewReno,
    /// What the peer SACKed, to resend several holes per round trip in recovery.
    scoreboard: Scoreboard,
    /// After a fast retransmit with timestamps: the sequence number just past the resent
    /// segment and the TSval it carried. If the first ACK beyond it echoes an older TSval, the
    /// original arrived and the retransmission was spurious (Eifel detection, RFC 3522).
    fast_retransmit_timestamp: Option<(SeqNum, u32)>,
    last_send_time: Instant,

    // Acknowledgment policy.
    ack_now: bool,
    /// The acknowledgment number of the last segment made (sent, or withdrawn for the one
    /// after it): a bare ACK that repeats it is a duplicate ACK, which the peer counts.
    acknowledgment_sent: SeqNum,
    unacknowledged_segments: u32,

    keepalive_probes_sent: u32,
    /// When this connection last answered an unacceptable segment without data (or a SYN)
    /// with an ACK: such answers go at most once per `TcpConfig::invalid_ack_interval`.
    last_invalid_ack: Option<Instant>,
    /// Zero-window probes sent since the peer last acknowledged anything: the connection
    /// gives up only when they go unanswered (RFC 1122 section 4.2.2.17).
    persist_probes_sent: u32,
    /// Doublings of the probe interval since the window closed; unlike the count above, an
    /// answer that keeps the window closed does not reset it (RFC 9293 section 3.8.6.1:
    /// the interval grows exponentially).
    persist_backoff: u32,
    /// When the application closed the connection, if it did: an orphan holding data is
    /// reset `orphan_persist_limit` after it, and under memory pressure the oldest orphans
    /// are reaped first.
    orphaned_at: Option<Instant>,
    last_receive_time: Instant,
    pub(crate) timers: Timers,

    pub(crate) options: SocketOptions,
    pub(crate) error: Option<SocketError>,
    /// An ICMP soft error seen while retrying, reported instead of `TimedOut` if the
    /// connection gives up (RFC 1122 section 4.2.3.9).
    pub(crate) soft_error: Option<SocketError>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// The last `write` was refused by the buffer budget (not by the send buffer).
    write_refused_by_budget: bool,
    /// The round of the context's memory waiters this connection joined last.
    memory_waiters_round: Option<(u64, usize)>,
    /// The reserve epoch in which the budget's reserve gave it bytes (`Context::memory_room`).
    reserve_epoch_joined: Option<u64>,
    pub(crate) retransmissions: u64,
}

pub(crate) fn window_shift_for(capacity: usize) -> u8 {
    let mut shift = 0;
    while shift < MAX_WINDOW_SCALE && (capacity >> shift) > usize::from(u16::MAX) {
        shift += 1;
    }
    shift
}

impl Connection {
    fn blank(
        context: &Context,
        tuple: FourTuple,
        iss: SeqNum,
        state: TcpState,
        owner: Owner,
    ) -> Connection {
        let config = &context.config;
        let send_mss = u32::from(config.mss.min(DEFAULT_PEER_MSS));
        Connection {
            tuple,
            state,
            owner,
            iss,
            send_unacknowledged: iss,
            send_next: iss,
            send_max: iss,
            send_window: 0,
            max_send_window: 0,
            send_window_update_sequence: SeqNum(0),
            send_window_update_acknowledgment: iss,
            send_buffer: VecDeque::new(),
            send_buffer_sequence: iss + 1,
            send_capacity: config.send_buffer_size,
            fin_queued: false,
            irs: SeqNum(0),
            receive_next: SeqNum(0),
            receive_advertised: SeqNum(0),
            receive_buffer: VecDeque::new(),
            receive_capacity: config
                .receive_buffer_size
                .min(usize::from(u16::MAX) << MAX_WINDOW_SCALE),
            reassembly: Reassembly::default(),
            pending_fin: None,
            fin_received: false,
            read_shutdown: false,
            send_mss,
            send_window_shift: 0,
            receive_window_shift: 0,
            timestamps: None,
            sack_permitted: false,
            offer_timestamps: config.timestamps,
            offer_window_scale: config.window_scaling,
            timestamp_offset: 0,
            rtt: RttEstimator::new(config),
            rtt_timing: None,
            retries: 0,
            congestion: NewReno::new(send_mss, config.initial_window_segments),
            scoreboard: Scoreboard::default(),
            fast_retransmit_timestamp: None,
            last_send_time: context.now,
            ack_now: false,
            acknowledgment_sent: SeqNum(0),
            unacknowledged_segments: 0,
            keepalive_probes_sent: 0,
            last_invalid_ack: None,
            persist_probes_sent: 0,
            persist_backoff: 0,
            orphaned_at: None,
            last_receive_time: context.now,
            timers: Timers::default(),
            options: SocketOptions {
                no_delay: false,
                send_buffer_size: config.send_buffer_size,
                receive_buffer_size: config.receive_buffer_size,
                keepalive: config.keepalive.then_some(config.keepalive_idle),
                abort_on_close: false,
            },
            error: None,
            soft_error: None,
            read_waker: None,
            write_waker: None,
            write_refused_by_budget: false,
            memory_waiters_round: None,
            reserve_epoch_joined: None,
            retransmissions: 0,
        }
    }

    /// An active open (RFC 9293 section 3.10.1): the SYN is sent at once, state SYN-SENT.
    ///
    /// Boxed from the start, as the slot table keeps it: the block is large, and building it
    /// on the stack cost a copy per move on the way into the box.
    pub(crate) fn connect(
        context: &mut Context,
        tuple: FourTuple,
        secrets: TupleSecrets,
    ) -> Box<Connection> {
        let iss = secrets.initial_sequence_number(context.now);
        let mut connection = Box::new(Connection::blank(
            context,
            tuple,
            iss,
            TcpState::SynSent,
            Owner::Application,
        ));
        connection.receive_window_shift = if context.config.window_scaling {
            window_shift_for(connection.receive_capacity)
        } else {
            0
        };
        if connection.offer_timestamps {
            connection.timestamp_offset = secrets.timestamp_offset;
        }
        connection.send_syn(context);
        connection
    }

    /// A passive open whose handshake just completed (from a SYN queue entry or a SYN cookie):
    /// state ESTABLISHED, SYN acknowledged. The caller then feeds it the completing ACK.
    /// Boxed from the start, like [`connect`](Self::connect)'s.
    pub(crate) fn accept(
        context: &Context,
        tuple: FourTuple,
        handshake: &Handshake,
        listener: u32,
    ) -> Box<Connection> {
        let mut connection = Box::new(Connection::blank(
            context,
            tuple,
            handshake.initial_send,
            TcpState::Established,
            Owner::AcceptQueue { listener },
        ));
        connection.send_unacknowledged = handshake.initial_send + 1;
        connection.send_next = connection.send_unacknowledged;
        connection.send_max = connection.send_unacknowledged;
        connection.offer_timestamps = handshake.peer_timestamp.is_some();
        connection.offer_window_scale = handshake.window_shifts.is_some();
        connection.timestamp_offset = handshake.timestamp_offset;
        connection.apply_handshake(context, handshake);
        // The window of the SYN-ACK we sent: unscaled, at most 64 KiB.
        connection.receive_advertised = connection.receive_next + connection.syn_window() as u32;
        // The SYN-ACK, sent from the SYN queue or as a cookie, acknowledged the SYN.
        connection.acknowledgment_sent = connection.receive_next;
        connection
    }

    fn apply_handshake(&mut self, context: &Context, handshake: &Handshake) {
        self.irs = handshake.initial_receive;
        self.receive_next = handshake.initial_receive + 1;
        self.receive_advertised = self.receive_next;
        let (send_shift, receive_shift) = handshake.window_shifts.unwrap_or((0, 0));
        self.send_window_shift = send_shift;
        self.receive_window_shift = receive_shift;
        self.timestamps = handshake.peer_timestamp.map(|recent| Timestamps {
            offset: handshake.timestamp_offset,
            recent,
            recent_time: context.now,
        });
        self.sack_permitted = handshake.sack_permitted;
        self.set_peer_mss(context, handshake.peer_mss);
        self.send_window = u32::from(handshake.peer_window);
        self.max_send_window = self.send_window;
        self.send_window_update_sequence = handshake.initial_receive;
        self.send_window_update_acknowledgment = self.send_unacknowledged;
        self.congestion = NewReno::new(self.send_mss, context.config.initial_window_segments);
    }

    fn set_peer_mss(&mut self, context: &Context, peer_mss: u16) {
        let option_bytes = if self.timestamps.is_some() {
            TIMESTAMP_OPTION_LENGTH
        } else {
            0
        };
        let mss = u32::from(peer_mss.min(context.config.mss))
            .saturating_sub(option_bytes)
            .max(64);
        self.send_mss = mss;
        self.congestion.set_mss(mss);
    }

    // ----- queries -----

    pub(crate) fn send_queue_bytes(&self) -> usize {
        self.send_buffer.len()
    }

    pub(crate) fn receive_queue_bytes(&self) -> usize {
        self.receive_buffer.len()
    }

    /// Bytes this connection holds against the per-core memory budget.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.send_buffer.len() + self.receive_buffer.len() + self.reassembly.bytes()
    }

    /// Bytes beyond those queued that the peer's window would take now. A write draws on the
    /// budget's reserve only for these: bytes a peer will not take (it never reads) would sit
    /// in the reserve for good.
    fn peer_window_room(&self) -> usize {
        (self.send_window as usize).saturating_sub(self.send_buffer.len())
    }

    /// Received bytes held for the application: in order, and out of order.
    fn received_bytes_held(&self) -> usize {
        self.receive_buffer.len() + self.reassembly.bytes()
    }

    pub(crate) fn smoothed_rtt(&self) -> Option<Duration> {
        self.rtt.smoothed()
    }

    pub(crate) fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    pub(crate) fn congestion_window(&self) -> u32 {
        self.congestion.window
    }

    pub(crate) fn send_next(&self) -> SeqNum {
        self.send_next
    }

    pub(crate) fn receive_next(&self) -> SeqNum {
        self.receive_next
    }

    pub(crate) fn send_unacknowledged(&self) -> SeqNum {
        self.send_unacknowledged
    }

    pub(crate) fn send_max(&self) -> SeqNum {
        self.send_max
    }

    /// `read` would return something (data, end of stream or an error).
    pub(crate) fn readable(&self) -> bool {
        !self.receive_buffer.is_empty()
            || self.fin_received
            || self.error.is_some()
            || self.read_shutdown
    }

    /// `write` would accept at least a byte, or fail at once.
    pub(crate) fn writable(&self) -> bool {
        self.error.is_some()
            || self.fin_queued
            || (self.state.can_send() && self.send_buffer.len() < self.send_capacity)
    }

    pub(crate) fn read_closed(&self) -> bool {
        self.fin_received && self.receive_buffer.is_empty()
    }

    // ----- wakers -----

    pub(crate) fn register_read_waker(&mut self, waker: &Waker) {
        match &self.read_waker {
            Some(existing) if existing.will_wake(waker) => {}
            _ => self.read_waker = Some(waker.clone()),
        }
    }

    pub(crate) fn register_write_waker(&mut self, waker: &Waker) {
        match &self.write_waker {
            Some(existing) if existing.will_wake(waker) => {}
            _ => self.write_waker = Some(waker.clone()),
        }
    }

    fn wake_reader(&mut self) {
        if let Some(waker) = self.read_waker.take() {
            waker.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.write_waker.take() {
            waker.wake();
        }
    }

    fn wake_all(&mut self) {
        self.wake_reader();
        self.wake_writer();
    }

    /// After `write` returned `WouldBlock`. A writer that the budget refused while it had
    /// nothing queued also waits for memory given back anywhere on the core: no ACK of its
    /// own will come to wake it (issue 29, item 3). One with bytes queued is woken by their
    /// ACK, and one whose peer's window is closed by the window update that opens it: that
    /// peer takes nothing before, so nothing is lost by waiting, while waking every such
    /// writer on each byte freed on the core would be a herd (clients that never read are
    /// the ones that fill the budget).
    pub(crate) fn wait_for_memory(&mut self, context: &mut Context, waker: &Waker) {
        if self.write_refused_by_budget && self.send_buffer.is_empty() && self.send_window > 0 {
            match self.memory_waiters_round {
                Some((round, place)) if round == context.memory_waiters_round => {
                    context.replace_memory_waiter(place, waker);
                }
                _ => {
                    let place = context.wait_for_memory(waker);
                    self.memory_waiters_round = Some((context.memory_waiters_round, place));
                }
            }
        }
    }

    // ----- the buffer budget -----

    /// Counts `bytes` this connection adds against the budget. Given more than the shared
    /// part had left, it draws on the reserve until it holds nothing again.
    fn charge_memory(&mut self, context: &mut Context, bytes: usize) {
        if bytes > context.shared_room() && !self.reserve_user(context) {
            self.reserve_epoch_joined = Some(context.reserve_epoch);
            context.reserve_users += 1;
        }
        context.memory_used += bytes;
    }

    /// Gives back `bytes` this connection no longer holds, and wakes the writers waiting
    /// for memory. The usual case (no reserve in use, nobody waiting) is the subtraction
    /// and one test (`Context::uncount_memory`).
    #[inline]
    fn release_memory(&mut self, context: &mut Context, bytes: usize) {
        if context.uncount_memory(bytes) {
            self.after_release(context, bytes);
        }
    }

    /// The rest of `release_memory`; a reserve user leaves the reserve when it holds
    /// nothing in order (bytes held out of order were taken from the shared part). Only a
    /// core whose reserve is in use has reserve users.
    #[inline(never)]
    fn after_release(&mut self, context: &mut Context, bytes: usize) {
        context.after_release(bytes);
        if self.reserve_user(context)
            && self.send_buffer.is_empty()
            && self.receive_buffer.is_empty()
        {
            self.reserve_epoch_joined = None;
            context.leave_reserve();
        }
    }

    /// It takes one of the reserve's places (`Context::memory_room`).
    fn reserve_user(&self, context: &Context) -> bool {
        self.reserve_epoch_joined == Some(context.reserve_epoch)
    }

    // ----- building segments -----

    /// Window field for a SYN or SYN-ACK: never scaled (RFC 7323 section 2.2).
    fn syn_window(&self) -> u16 {
        self.receive_capacity.min(usize::from(u16::MAX)) as u16
    }

    /// The window to advertise now, with receiver-side silly window avoidance (RFC 9293
    /// section 3.8.6.2.2): the right edge moves only by min(buffer / 2, MSS) or more, and
    /// never moves left.
    fn advertise_window(&mut self, context: &Context) -> u16 {
        let free = self
            .receive_capacity
            .saturating_sub(self.receive_buffer.len()) as u32;
        let free = free.min(
            context
                .memory_room(
                    self.received_bytes_held(),
                    usize::MAX,
                    self.reserve_user(context),
                )
                .min(u32::MAX as usize) as u32
                + self.current_receive_window(),
        );
        let current = self.current_receive_window();
        let threshold = (self.receive_capacity as u32 / 2).min(self.send_mss.max(1));
        let window = if free >= current.saturating_add(threshold) {
            free
        } else {
            current
        };
        let field = (window >> self.receive_window_shift).min(u32::from(u16::MAX));
        let edge = self.receive_next + (field << self.receive_window_shift);
        self.receive_advertised = self.receive_advertised.latest(edge);
        field as u16
    }

    /// RCV.WND as advertised.
    fn current_receive_window(&self) -> u32 {
        self.receive_advertised.distance_from(self.receive_next)
    }

    fn timestamp_option(&self, context: &Context) -> Option<(u32, u32)> {
        self.timestamps.map(|timestamps| {
            (
                context.timestamp_value(timestamps.offset),
                timestamps.recent,
            )
        })
    }

    /// Writes one segment of the connection into the output queue: `length` bytes of the send
    /// buffer from `sequence`, with `flags`. Every segment but a SYN carries ACK.
    fn transmit(&mut self, context: &mut Context, sequence: SeqNum, length: usize, flags: u8) {
        if self.fold_into_newest_segment(context, sequence, length, flags) {
            self.ack_now = false;
            self.unacknowledged_segments = 0;
            self.timers.delayed_ack = None;
            self.last_send_time = context.now;
            return;
        }
        let syn = flags & SYN != 0;
        let window = if syn {
            self.syn_window()
        } else {
            self.advertise_window(context)
        };
        if syn && self.state == TcpState::SynReceived {
            self.receive_advertised = self.receive_next + u32::from(window);
        }
        let options = if syn {
            SegmentOptions {
                mss: Some(context.config.mss),
                window_scale: self.offer_window_scale.then_some(self.receive_window_shift),
                sack_permitted: context.config.sack_permitted
                    && (self.state == TcpState::SynSent || self.sack_permitted),
                timestamp: if self.offer_timestamps {
                    let offset = self.timestamp_offset;
                    let echo = self.timestamps.map_or(0, |timestamps| timestamps.recent);
                    Some((context.timestamp_value(offset), echo))
                } else {
                    None
                },
                ..SegmentOptions::default()
            }
        } else {
            let mut options = SegmentOptions {
                timestamp: self.timestamp_option(context),
                ..SegmentOptions::default()
            };
            if self.sack_permitted && flags & ACK != 0 && !self.reassembly.is_empty() {
                // 40 bytes of options: four blocks, or three beside a timestamp.
                let limit = if options.timestamp.is_some() { 3 } else { 4 };
                options.sack_block_count =
                    self.reassembly.sack_blocks(limit, &mut options.sack_blocks);
            }
            options
        };
        let header = SegmentHeader {
            source: *self.tuple.local.ip(),
            destination: *self.tuple.remote.ip(),
            source_port: self.tuple.local.port(),
            destination_port: self.tuple.remote.port(),
            sequence,
            acknowledgment: if flags & ACK != 0 {
                self.receive_next
            } else {
                SeqNum(0)
            },
            flags,
            window,
            options,
        };
        let offset = sequence.distance_from(self.send_buffer_sequence) as usize;
        let (front, back) = self.send_buffer.as_slices();
        let payload = slice_pair(front, back, offset, length);
        let newest = NewestSegment {
            tuple: self.tuple,
            end: sequence + length as u32,
            acknowledgment: header.acknowledgment,
            flags,
            payload_len: length,
            replaceable_ack: flags == ACK
                && length == 0
                && self.at_send_front(sequence)
                && header.acknowledgment != self.acknowledgment_sent,
        };
        context.push_connection_segment(newest, |out| segment::write(out, &header, payload));
        if flags & ACK != 0 {
            self.acknowledgment_sent = header.acknowledgment;
            self.ack_now = false;
            self.unacknowledged_segments = 0;
            self.timers.delayed_ack = None;
        }
        self.last_send_time = context.now;
    }

    /// Segments of one connection made between two drains of the output queue (a request
    /// read, its response written and the socket closed, all before the loop transmits) go
    /// out as few as they can, as Linux's would: a FIN joins the data segment still queued
    /// just before it (true: nothing more to send), and an ACK still queued is withdrawn
    /// when the connection's next segment, which carries at least the same acknowledgment
    /// (RCV.NXT never moves back), is one the peer will accept: new data, a FIN or an ACK
    /// of more, at SND.NXT = SND.MAX; not a probe or a retransmission, which the peer may
    /// discard as a duplicate without reading its acknowledgment. Duplicate ACKs and ACKs
    /// made while data is out of order are kept, and so is an ACK that a duplicate ACK
    /// follows: the peer counts them for fast retransmit.
    fn fold_into_newest_segment(
        &mut self,
        context: &mut Context,
        sequence: SeqNum,
        length: usize,
        flags: u8,
    ) -> bool {
        let Some(newest) = context.output.newest().copied() else {
            return false;
        };
        if newest.tuple != self.tuple {
            return false;
        }
        if flags == ACK | FIN
            && length == 0
            && newest.is_plain_data()
            && newest.end == sequence
            && newest.acknowledgment == self.receive_next
        {
            context.output.add_fin_to_newest();
            return true;
        }
        // A bare ACK that repeats the queued one's acknowledgment is a duplicate ACK to the
        // peer: both go, or the peer counts one fewer.
        let duplicate = flags == ACK && length == 0 && self.receive_next == newest.acknowledgment;
        if newest.replaceable_ack
            && !duplicate
            && flags & ACK != 0
            && flags & (SYN | RST) == 0
            && self.at_send_front(sequence)
            && self.reassembly.is_empty()
        {
            context.output.withdraw_newest();
        }
        false
    }

    /// A segment from `sequence` is the connection's newest: not a probe below SND.UNA, not a
    /// retransmission below SND.MAX.
    fn at_send_front(&self, sequence: SeqNum) -> bool {
        sequence == self.send_next && sequence == self.send_max
    }

    /// SEQ of a segment that occupies no sequence space: a bare ACK, a window update, a RST.
    /// SND.MAX, not SND.NXT: go-back-N after a timeout rewinds SND.NXT to SND.UNA, below what
    /// the peer may already hold, and a peer that follows RFC 9293 section 3.10.7.4 drops a
    /// segment below RCV.NXT without reading its ACK, ignores the window of one below SND.WL1
    /// and drops such a RST. Two ends that both timed out then discarded each other's ACKs
    /// until both gave up (issue 29, item 1). But no further than the right edge of the
    /// peer's window: a FIN goes out whatever the window, so SND.MAX can lie beyond it, and
    /// a receiver whose window is 0 accepts only SEG.SEQ = RCV.NXT. Linux's
    /// `tcp_acceptable_seq` sends min(SND.NXT, SND.UNA + SND.WND), its SND.NXT never
    /// rewinding (our SND.MAX); its allowance for a window shrunk by scaling is left out.
    fn control_sequence(&self) -> SeqNum {
        let window_edge = self.send_unacknowledged + self.send_window;
        if self.send_max.after(window_edge) {
            window_edge
        } else {
            self.send_max
        }
    }

    fn send_ack(&mut self, context: &mut Context) {
        self.transmit(context, self.control_sequence(), 0, ACK);
    }

    /// A challenge ACK (RFC 5961 section 7): within this connection's limit first, so that
    /// one connection cannot see the core's budget, then within the core's. Unlike the ACKs
    /// of `invalid_ack_allowed`, data does not exempt a segment from the per-connection
    /// limit here (Linux checks `__tcp_oow_rate_limited` first as well): data with a forged
    /// acknowledgment would otherwise draw one challenge ACK each.
    // Loss or attack only: out of line, so that the common path of `on_segment` does
    // not carry its code and registers.
    #[inline(never)]
    fn send_challenge_ack(&mut self, context: &mut Context) {
        if self.invalid_ack_interval_passed(context) && challenge_ack_allowed(context) {
            self.send_ack(context);
        }
    }

    /// Whether an ACK may answer this unacceptable segment now. Segments that occupy
    /// sequence space (data or FIN) without SYN are always answered: they are not part of an
    /// ACK loop, and the ACK may be what the sender lacks (a retransmitted FIN whose ACK was
    /// lost). Anything else draws at most one ACK per `invalid_ack_interval`, so that two
    /// desynchronised stacks cannot ping-pong ACKs at line rate (Linux `tcp_oow_rate_limited`).
    // Loss or attack only: out of line, so that the common path of `on_segment` does
    // not carry its code and registers.
    #[inline(never)]
    fn invalid_ack_allowed(&mut self, context: &mut Context, segment: &Segment<'_>) -> bool {
        if segment.sequence_length() > 0 && !segment.has(SYN) {
            return true;
        }
        self.invalid_ack_interval_passed(context)
    }

    /// The per-connection limit of ACKs to unacceptable segments: true (and the clock
    /// restarted) at most once per `invalid_ack_interval`.
    fn invalid_ack_interval_passed(&mut self, context: &mut Context) -> bool {
        let interval = context.config.invalid_ack_interval;
        if let Some(last) = self.last_invalid_ack
            && context.now.saturating_since(last) < interval
        {
            context.counters.acks_rate_limited += 1;
            return false;
        }
        self.last_invalid_ack = Some(context.now);
        true
    }

    fn send_syn(&mut self, context: &mut Context) {
        let flags = if self.state == TcpState::SynSent {
            SYN
        } else {
            SYN | ACK
        };
        self.transmit(context, self.iss, 0, flags);
        self.send_next = self.iss + 1;
        self.send_max = self.send_max.latest(self.send_next);
        if self.retries == 0 {
            self.rtt_timing = Some((self.iss, context.now));
        }
        self.arm_retransmit(context);
    }

    fn arm_retransmit(&mut self, context: &Context) {
        self.timers.retransmit = Some(context.now + self.rtt.rto());
    }

    fn reset_peer(&mut self, context: &mut Context) {
        let tuple = self.tuple;
        send_reset(
            context,
            tuple.local,
            tuple.remote,
            self.control_sequence(),
            Some(self.receive_next),
        );
    }

    // ----- the sending side (RFC 9293 sections 3.8.6.2.1, 3.7.4; RFC 5681) -----

    /// Sequence number just after the queued data.
    fn send_end(&self) -> SeqNum {
        self.send_buffer_sequence + self.send_buffer.len() as u32
    }

    fn fin_acknowledged(&self) -> bool {
        self.fin_queued
            && self.send_buffer.is_empty()
            && self.send_unacknowledged == self.send_buffer_sequence + 1
    }

    fn flight_size(&self) -> u32 {
        self.send_max.distance_from(self.send_unacknowledged)
    }

    /// Sends what the windows, Nagle and SWS avoidance allow, then a pending ACK if nothing
    /// carried it; arms the retransmission or persist timer.
    pub(crate) fn output(&mut self, context: &mut Context) {
        if self.state == TcpState::SynReceived {
            // Simultaneous open: an unacceptable segment is answered with an ACK, nothing else
            // goes before the handshake completes.
            if self.ack_now {
                self.send_ack(context);
            }
            return;
        }
        if !self.state.is_synchronized() || self.state == TcpState::TimeWait {
            self.ack_now = false;
            return;
        }
        let mut sent_any = false;
        loop {
            let send_end = self.send_end();
            let unsent = send_end.distance_from(self.send_next);
            let window = self.send_window.min(self.congestion.sending_window());
            let window_end = self.send_unacknowledged + window;
            let usable = window_end.distance_from(self.send_next);
            let length = unsent.min(usable).min(self.send_mss);
            let fin_due = self.fin_queued
                && self.send_next.before_or_equal(send_end)
                && self.send_next + length == send_end
                && !self.fin_acknowledged()
                && !(self.send_next == send_end + 1);
            if length == 0 && !fin_due {
                break;
            }
            if length > 0 && length < self.send_mss && !fin_due {
                // Nagle (RFC 9293 section 3.7.4) and sender SWS avoidance (section 3.8.6.2.1):
                // a short segment goes only if it empties the queue and nothing is in flight
                // (or no-delay is set), or it is at least half the largest window seen.
                let empties_queue = length == unsent;
                let nothing_in_flight = self.send_next == self.send_unacknowledged;
                let allowed = (empties_queue && (self.options.no_delay || nothing_in_flight))
                    || length >= self.max_send_window / 2 && self.max_send_window > 0;
                if !allowed {
                    break;
                }
            }
            let mut flags = ACK;
            if length > 0 && self.send_next + length == send_end {
                flags |= PSH;
            }
            if fin_due {
                flags |= FIN;
            }
            self.send_data(context, self.send_next, length as usize, flags);
            sent_any = true;
            if fin_due {
                break;
            }
        }
        if self.ack_now && !sent_any {
            self.send_ack(context);
        }
        self.update_persist(context);
    }

    /// Sends (or resends) a data segment and advances SND.NXT past it.
    fn send_data(&mut self, context: &mut Context, sequence: SeqNum, length: usize, flags: u8) {
        let is_retransmission = sequence.before(self.send_max);
        if is_retransmission {
            context.counters.retransmits += 1;
            self.retransmissions += 1;
        } else if self.rtt_timing.is_none() && self.timestamps.is_none() {
            self.rtt_timing = Some((sequence, context.now));
        }
        if self.send_next == self.send_unacknowledged
            && context.now.saturating_since(self.last_send_time) > self.rtt.rto()
        {
            // RFC 5681 section 4.1: restart from the initial window after an idle period.
            let initial = self
                .send_mss
                .saturating_mul(context.config.initial_window_segments);
            self.congestion.restart_after_idle(initial);
        }
        self.transmit(context, sequence, length, flags);
        let end = sequence + length as u32 + u32::from(flags & FIN != 0);
        self.send_next = self.send_next.latest(end);
        self.send_max = self.send_max.latest(end);
        if self.timers.retransmit.is_none() {
            self.arm_retransmit(context);
        }
    }

    /// Zero-window probing (RFC 9293 section 3.8.6.1): with data waiting, a closed window and
    /// nothing in flight, the persist timer probes the window.
    ///
    /// The same timer is the override timeout of sender SWS avoidance (RFC 9293 section
    /// 3.8.6.2.1, case d): when a small usable window holds data back and nothing is in
    /// flight, no ACK will come to release it, so the timer sends what the window allows.
    ///
    /// It runs on every ACK and every send; the usual case, out of persist and staying out,
    /// is three stores, and entering persist is left to `enter_persist`.
    fn update_persist(&mut self, context: &Context) {
        let data_waiting = self.send_end().after(self.send_next);
        let nothing_in_flight = self.send_next == self.send_unacknowledged;
        if data_waiting && nothing_in_flight {
            self.enter_persist(context);
        } else {
            self.timers.persist = None;
            self.persist_probes_sent = 0;
            self.persist_backoff = 0;
        }
    }

    /// `update_persist` with data waiting behind a closed or small window: arms the timer
    /// if it is not.
    #[inline(never)]
    fn enter_persist(&mut self, context: &Context) {
        if self.timers.persist.is_none() {
            let factor = 1u32 << self.persist_backoff.min(6);
            let mut delay = self
                .rtt
                .rto()
                .saturating_mul(factor)
                .min(context.config.max_rto);
            if let Some(orphaned_at) = self.orphaned_at {
                // Fire no later than the end of the orphan's time (`orphan_overstayed`).
                let spent = context.now.saturating_since(orphaned_at);
                delay = delay.min(context.config.orphan_persist_limit.saturating_sub(spent));
            }
            self.timers.persist = Some(context.now + delay);
        }
        self.timers.retransmit = None;
    }

    /// An orphan that holds data not yet acknowledged, and when its application closed it:
    /// what memory pressure reaps, oldest first. Any such orphan, not only one in persist: a
    /// peer that acknowledges a byte of a one-byte window now and then keeps it out of
    /// persist (Linux's `tcp_out_of_resources` runs from the retransmission timer too).
    pub(crate) fn orphan_holding_data_since(&self) -> Option<Instant> {
        if self.send_buffer.is_empty() {
            return None;
        }
        self.orphaned_at
    }

    /// An orphan has held data for `orphan_persist_limit` since its application closed it:
    /// reset it whatever the peer does (see `on_timers`).
    fn orphan_overstayed(&self, context: &Context) -> bool {
        self.orphan_holding_data_since().is_some_and(|orphaned_at| {
            context.now.saturating_since(orphaned_at) >= context.config.orphan_persist_limit
        })
    }

    /// Resets an orphan to give its buffers back (see `orphan_holding_data_since`).
    pub(crate) fn reap(&mut self, context: &mut Context) -> Outcome {
        context.counters.orphans_reaped += 1;
        self.reset_peer(context);
        self.close_with_error(SocketError::ConnectionAborted)
    }

    // ----- segment arrival (RFC 9293 section 3.10.7) -----

    pub(crate) fn on_segment(&mut self, context: &mut Context, segment: &Segment<'_>) -> Outcome {
        self.last_receive_time = context.now;
        self.keepalive_probes_sent = 0;
        let outcome = match self.state {
            TcpState::SynSent => self.on_segment_syn_sent(context, segment),
            TcpState::Closed | TcpState::Listen | TcpState::TimeWait => Outcome::Continue,
            _ => self.on_segment_synchronized(context, segment),
        };
        if outcome == Outcome::Continue && self.state != TcpState::Closed {
            self.output(context);
            self.arm_keepalive(context);
        }
        outcome
    }

    /// RFC 9293 section 3.10.7.3.
    fn on_segment_syn_sent(&mut self, context: &mut Context, segment: &Segment<'_>) -> Outcome {
        let tuple = self.tuple;
        if segment.has(ACK)
            && (segment.acknowledgment.before_or_equal(self.iss)
                || segment.acknowledgment.after(self.send_max))
        {
            context.counters.drop_segment(DropReason::UnacceptableAck);
            if !segment.has(RST) {
                send_reset(
                    context,
                    tuple.local,
                    tuple.remote,
                    segment.acknowledgment,
                    None,
                );
            }
            return Outcome::Continue;
        }
        if segment.has(RST) {
            if segment.has(ACK) {
                context.counters.resets_received += 1;
                return self.close_with_error(SocketError::ConnectionRefused);
            }
            context.counters.drop_segment(DropReason::InvalidReset);
            return Outcome::Continue;
        }
        if !segment.has(SYN) {
            return Outcome::Continue;
        }
        let options = &segment.options;
        let handshake = Handshake {
            initial_send: self.iss,
            initial_receive: segment.sequence,
            peer_mss: options.mss.unwrap_or(DEFAULT_PEER_MSS),
            window_shifts: match (self.offer_window_scale, options.window_scale) {
                (true, Some(peer_shift)) => Some((peer_shift, self.receive_window_shift)),
                _ => None,
            },
            peer_timestamp: if self.offer_timestamps {
                options.timestamp.map(|(value, _)| value)
            } else {
                None
            },
            sack_permitted: context.config.sack_permitted && options.sack_permitted,
            peer_window: segment.window,
            timestamp_offset: self.timestamp_offset,
        };
        let receive_shift = self.receive_window_shift;
        self.apply_handshake(context, &handshake);
        if handshake.window_shifts.is_none() {
            self.receive_window_shift = 0;
        } else {
            self.receive_window_shift = receive_shift;
        }
        if segment.has(ACK) {
            self.send_unacknowledged = segment.acknowledgment;
            self.send_window_update_acknowledgment = segment.acknowledgment;
            self.take_rtt_sample(context, segment);
            if self.retries > 0 {
                self.rtt.after_syn_retransmission();
            }
            self.retries = 0;
            self.rtt.reset_backoff();
            self.timers.retransmit = None;
            self.state = TcpState::Established;
            context.counters.active_opens += 1;
            self.ack_now = true;
            self.wake_all();
        } else {
            // Simultaneous open (RFC 9293 section 3.5, figure 8): answer SYN,ACK.
            self.state = TcpState::SynReceived;
            self.send_syn(context);
        }
        Outcome::Continue
    }

    /// Every state from SYN-RECEIVED on (RFC 9293 section 3.10.7.4).
    fn on_segment_synchronized(&mut self, context: &mut Context, segment: &Segment<'_>) -> Outcome {
        // PAWS (RFC 7323 section 5.3): a segment whose TSval is older than TS.Recent is an
        // old duplicate.
        if let (Some(timestamps), Some((value, _))) = (self.timestamps, segment.options.timestamp)
            && !segment.has(RST)
            && SeqNum(value).before(SeqNum(timestamps.recent))
            && context.now.saturating_since(timestamps.recent_time)
                < Duration::from_secs(24 * 24 * 60 * 60)
        {
            context.counters.drop_segment(DropReason::OutOfWindow);
            if self.invalid_ack_allowed(context, segment) {
                self.send_ack(context);
            }
            return Outcome::Continue;
        }

        // First: is the segment acceptable?
        let window = self.current_receive_window();
        let length = segment.sequence_length();
        let sequence = segment.sequence;
        let acceptable = match (length, window) {
            (0, 0) => sequence == self.receive_next,
            // Up to the right edge itself, as Linux (`tcp_sequence`) and FreeBSD accept: a
            // peer that filled the window and timed out sends its ACKs at SND.MAX, the edge
            // (issue 29, item 1). RFC 9293's strict bound would drop them unread. Not a RST
            // (a SYN has a length): one at the edge is outside the window, dropped silently
            // rather than answered by a challenge ACK (RFC 5961 section 3.2).
            (0, _) => {
                let edge = u32::from(!segment.has(RST));
                sequence.in_window(self.receive_next, window.saturating_add(edge))
            }
            (_, 0) => false,
            (_, _) => {
                sequence.in_window(self.receive_next, window)
                    || (sequence + length - 1).in_window(self.receive_next, window)
            }
        };
        // A zero window still lets ACKs and RSTs through at RCV.NXT (RFC 9293 section 3.10.7.4).
        let zero_window_probe = !acceptable && window == 0 && sequence == self.receive_next;
        if !acceptable && !zero_window_probe {
            context.counters.drop_segment(DropReason::OutOfWindow);
            if !segment.has(RST) && self.invalid_ack_allowed(context, segment) {
                self.ack_now = true;
            }
            return Outcome::Continue;
        }

        // Second: RST (RFC 5961 section 3.2): only an exact match resets; any other in-window
        // RST draws a challenge ACK.
        if segment.has(RST) {
            if sequence != self.receive_next {
                context.counters.drop_segment(DropReason::InvalidReset);
                self.send_challenge_ack(context);
                return Outcome::Continue;
            }
            context.counters.resets_received += 1;
            // SYN-RECEIVED of an active open: refused; every other state: reset.
            return if self.state == TcpState::SynReceived {
                self.close_with_error(SocketError::ConnectionRefused)
            } else {
                self.close_with_error(SocketError::ConnectionReset)
            };
        }

        // Fourth: a SYN in a synchronized state draws a challenge ACK (RFC 5961 section 4).
        if segment.has(SYN) {
            context.counters.drop_segment(DropReason::UnexpectedSyn);
            self.send_challenge_ack(context);
            return Outcome::Continue;
        }

        // Fifth: the ACK field.
        if !segment.has(ACK) {
            return Outcome::Continue;
        }
        let ack = segment.acknowledgment;
        if self.state == TcpState::SynReceived {
            if ack.after(self.send_unacknowledged) && ack.before_or_equal(self.send_max) {
                self.state = TcpState::Established;
                context.counters.active_opens += 1;
                self.send_window = u32::from(segment.window) << self.send_window_shift;
                self.max_send_window = self.max_send_window.max(self.send_window);
                self.send_window_update_sequence = sequence;
                self.send_window_update_acknowledgment = ack;
                self.wake_all();
            } else {
                let tuple = self.tuple;
                send_reset(context, tuple.local, tuple.remote, ack, None);
                return Outcome::Continue;
            }
        }
        // RFC 5961 section 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.MAX].
        if ack.after(self.send_max) {
            context.counters.drop_segment(DropReason::UnacceptableAck);
            if self.invalid_ack_allowed(context, segment) {
                self.ack_now = true;
            }
            return Outcome::Continue;
        }
        if ack.before(self.send_unacknowledged - self.max_send_window) {
            context.counters.drop_segment(DropReason::UnacceptableAck);
            self.send_challenge_ack(context);
            return Outcome::Continue;
        }
        // Record the peer's timestamp (RFC 7323 section 4.3) only now that the segment passed
        // every check (sequence, PAWS, RST, SYN, ACK), as Linux does with
        // `FLAG_UPDATE_TS_RECENT` in `tcp_ack`: a blind segment that fails one must not set
        // TS.Recent, or a TSval 2^31 - 1 ahead would make the peer's own segments fail PAWS
        // (issue 29, item 4). Nor does an old ACK (below SND.UNA), which Linux's `tcp_ack`
        // returns on before the update: a legitimate one, reordered, only leaves the update
        // to the peer's next segment.
        // RCV.NXT is still Last.ACK.sent's bound here: data is taken below.
        if let (Some(timestamps), Some((value, _))) =
            (self.timestamps.as_mut(), segment.options.timestamp)
            && sequence.before_or_equal(self.receive_next)
            && ack.after_or_equal(self.send_unacknowledged)
            && SeqNum(value).after_or_equal(SeqNum(timestamps.recent))
        {
            timestamps.recent = value;
            timestamps.recent_time = context.now;
        }
        // An acceptable ACK, even one that keeps the window closed, answers our zero-window
        // probes: the receiver is alive (RFC 1122 section 4.2.2.17).
        self.persist_probes_sent = 0;
        let mut newly_sacked = false;
        if self.sack_permitted {
            let options = &segment.options;
            for &(left, right) in
                &options.sack_blocks[..usize::from(options.sack_block_count).min(4)]
            {
                newly_sacked |=
                    self.scoreboard
                        .add(SeqNum(left), SeqNum(right), ack, self.send_max);
            }
        }
        let window_before = self.send_window;
        let acknowledges_nothing_new = ack == self.send_unacknowledged;
        if ack.after(self.send_unacknowledged) {
            self.on_new_ack(context, segment, ack);
        }
        // Window update (RFC 9293 section 3.10.7.4, SND.WL1/SND.WL2 rule).
        if self.send_window_update_sequence.before(sequence)
            || (self.send_window_update_sequence == sequence
                && self.send_window_update_acknowledgment.before_or_equal(ack))
        {
            self.send_window = u32::from(segment.window) << self.send_window_shift;
            self.max_send_window = self.max_send_window.max(self.send_window);
            self.send_window_update_sequence = sequence;
            self.send_window_update_acknowledgment = ack;
            if self.send_window > 0 {
                self.persist_probes_sent = 0;
            }
            // A writer the budget refused for want of window (the reserve takes only what
            // the peer's window would) can go on: a pure window update acknowledges
            // nothing, so `on_new_ack` does not wake it (issue 29, item 3).
            if self.write_refused_by_budget && self.send_window > window_before {
                self.wake_writer();
            }
        }
        // A duplicate ACK (RFC 5681 section 2): nothing new acknowledged, no data, no
        // SYN/FIN, same window, data outstanding. With SACK, an ACK that reports bytes not
        // SACKed before is one whatever its window (RFC 6675 section 2, "DupAck"): a receiver
        // whose application reads while a hole is open moves its window with every such ACK,
        // and ignoring them left recovery to the retransmission timer.
        // An ACK that keeps the window closed answers a window probe: the receiver holds
        // the data it has and wants no more, so resending would only be refused.
        if acknowledges_nothing_new
            && segment.payload.is_empty()
            && !segment.has(FIN)
            && self.send_window > 0
            && (self.send_window == window_before || newly_sacked)
            && self.send_max != self.send_unacknowledged
        {
            let flight = self.flight_size();
            match self
                .congestion
                .on_duplicate_ack(flight, self.send_max.0, newly_sacked)
            {
                AckAction::FastRetransmit => {
                    context.counters.fast_retransmits += 1;
                    self.retransmit_first(context);
                    self.fast_retransmit_timestamp = self.timestamps.map(|timestamps| {
                        let resent_end =
                            self.send_unacknowledged + self.send_mss.min(self.flight_size()).max(1);
                        (resent_end, context.timestamp_value(timestamps.offset))
                    });
                }
                AckAction::Nothing if self.congestion.in_recovery() => {
                    self.retransmit_next_hole(context)
                }
                AckAction::Nothing | AckAction::RetransmitFirstUnacknowledged => {}
            }
        }
        if self.fin_queued && self.fin_acknowledged() {
            match self.state {
                TcpState::FinWait1 => {
                    self.state = TcpState::FinWait2;
                    if self.owner == Owner::Orphan {
                        self.timers.close = Some(context.now + context.config.fin_wait_2_timeout);
                    }
                }
                TcpState::Closing => {
                    self.state = TcpState::TimeWait;
                    return Outcome::TimeWait;
                }
                TcpState::LastAck => {
                    self.state = TcpState::Closed;
                    self.wake_all();
                    return Outcome::Closed;
                }
                _ => {}
            }
        }

        // Seventh: segment text.
        let fin_sequence = sequence + segment.payload.len() as u32;
        if !segment.payload.is_empty() {
            if zero_window_probe {
                self.ack_now = true;
            } else if self.state.can_receive() {
                self.receive_data(context, sequence, segment.payload);
            }
            // Data after the peer's FIN is ignored (RFC 9293 section 3.10.7.4, seventh).
        }

        // Eighth: FIN, once everything before it has arrived (a bare FIN needs no window).
        if segment.has(FIN) {
            if self.fin_received {
                // A retransmitted FIN: acknowledge it again.
                self.ack_now = true;
            } else if fin_sequence.after(self.receive_next) {
                self.pending_fin = Some(fin_sequence);
            }
        }
        let fin_in_order = (segment.has(FIN) && fin_sequence == self.receive_next)
            || self.pending_fin == Some(self.receive_next);
        if fin_in_order && !self.fin_received && self.state != TcpState::SynReceived {
            return self.on_fin(context);
        }
        Outcome::Continue
    }

    fn on_new_ack(&mut self, context: &mut Context, segment: &Segment<'_>, ack: SeqNum) {
        let acknowledged = ack.distance_from(self.send_unacknowledged);
        let spurious_fast_retransmit = self.spurious_fast_retransmit(segment, ack);
        let data_acknowledged =
            (ack.distance_from(self.send_buffer_sequence) as usize).min(self.send_buffer.len());
        self.send_buffer.drain(..data_acknowledged);
        release_if_idle(&mut self.send_buffer);
        self.send_buffer_sequence = self.send_buffer_sequence + data_acknowledged as u32;
        self.release_memory(context, data_acknowledged);
        self.take_rtt_sample(context, segment);
        self.send_unacknowledged = ack;
        self.send_next = self.send_next.latest(ack);
        self.retries = 0;
        // Progress: an earlier soft ICMP error is old news (RFC 1122 section 4.2.3.9).
        self.soft_error = None;
        self.rtt.reset_backoff();
        // RFC 6298 section 5.2 and 5.3.
        if self.send_unacknowledged == self.send_max {
            self.timers.retransmit = None;
        } else {
            self.arm_retransmit(context);
        }
        self.scoreboard.acknowledge(ack);
        let flight = self.flight_size();
        let initial_window = self
            .send_mss
            .saturating_mul(context.config.initial_window_segments);
        if spurious_fast_retransmit
            && self
                .congestion
                .undo_spurious_recovery(acknowledged, flight, initial_window)
        {
            context.counters.spurious_fast_retransmits += 1;
        }
        match self.congestion.on_new_ack(acknowledged, ack.0, flight) {
            AckAction::RetransmitFirstUnacknowledged if self.scoreboard.is_empty() => {
                self.retransmit_first(context);
            }
            AckAction::RetransmitFirstUnacknowledged => self.retransmit_first_hole(context),
            AckAction::FastRetransmit | AckAction::Nothing => {}
        }
        if !self.congestion.in_recovery() {
            self.scoreboard.end_recovery();
        }
        if data_acknowledged > 0 {
            self.wake_writer();
        }
    }

    /// Whether `ack`, a new acknowledgment, proves the fast retransmission of this recovery
    /// spurious: it is the first ACK beyond the resent segment and echoes a TSval older than
    /// the retransmission's, so it was the original that arrived (RFC 3522 section 3.2). Only
    /// when that segment was the only one resent: had recovery resent other holes too, some of
    /// those were likely lost for real.
    fn spurious_fast_retransmit(&mut self, segment: &Segment<'_>, ack: SeqNum) -> bool {
        let Some((resent_end, resent_timestamp)) = self.fast_retransmit_timestamp else {
            return false;
        };
        if ack.before(resent_end) {
            return false;
        }
        self.fast_retransmit_timestamp = None;
        segment
            .options
            .timestamp
            .is_some_and(|(_, echo)| SeqNum(echo).before(SeqNum(resent_timestamp)))
    }

    /// An RTT sample from the echoed timestamp (RFC 7323 section 4.1) or, without
    /// timestamps, from the timed segment if it was not retransmitted (Karn).
    fn take_rtt_sample(&mut self, context: &Context, segment: &Segment<'_>) {
        if let (Some(timestamps), Some((_, echo))) = (self.timestamps, segment.options.timestamp) {
            if echo != 0 {
                let elapsed = context
                    .timestamp_value(timestamps.offset)
                    .wrapping_sub(echo);
                if elapsed < 60_000 {
                    self.rtt.sample(Duration::from_millis(u64::from(elapsed)));
                }
            }
            return;
        }
        if let Some((timed, sent_at)) = self.rtt_timing
            && segment.acknowledgment.after(timed)
        {
            self.rtt.sample(context.now.saturating_since(sent_at));
            self.rtt_timing = None;
        }
    }

    /// Resends the first unacknowledged segment (fast retransmit and New Reno partial ACKs).
    // Loss or attack only: out of line, so that the common path of `on_segment` does
    // not carry its code and registers.
    #[inline(never)]
    fn retransmit_first(&mut self, context: &mut Context) {
        let available = self.send_end().distance_from(self.send_unacknowledged);
        let length = available.min(self.send_mss) as usize;
        let fin = self.fin_queued && length as u32 == available;
        if length == 0 && !fin {
            return;
        }
        let mut flags = ACK;
        if fin {
            flags |= FIN;
        }
        self.rtt_timing = None;
        self.send_data(context, self.send_unacknowledged, length, flags);
        self.scoreboard
            .resent(self.send_unacknowledged + length as u32);
    }

    /// In recovery with SACK information: resends the next hole the peer reported, so that
    /// several losses in one window are repaired in one round trip (RFC 6675 section 5, the
    /// retransmission rule, with New Reno's window).
    // Loss or attack only: out of line, so that the common path of `on_segment` does
    // not carry its code and registers.
    #[inline(never)]
    fn retransmit_next_hole(&mut self, context: &mut Context) {
        let hole = self
            .scoreboard
            .next_hole(self.send_unacknowledged, self.send_mss);
        self.retransmit_hole(context, hole);
    }

    /// A partial ACK in recovery with SACK information: the hole at SND.UNA is lost, even if
    /// recovery resent it already and the next hole is searched above it. The partial ACK
    /// stopped just below it, so that retransmission was lost too; without this it waited for
    /// the retransmission timeout (issue 29, item 8). New Reno's partial-ACK rule (RFC 6582
    /// section 3.2 step 5); Linux finds the lost retransmission with RACK. The price is one
    /// needless segment when the retransmission is only late, as New Reno pays without SACK.
    // Loss or attack only: out of line, so that the common path of `on_segment` does
    // not carry its code and registers.
    #[inline(never)]
    fn retransmit_first_hole(&mut self, context: &mut Context) {
        let hole = self
            .scoreboard
            .first_hole(self.send_unacknowledged, self.send_mss);
        if self.retransmit_hole(context, hole) {
            // More than the one segment of the fast retransmit resent: not a reordering that
            // Eifel detection could undo.
            self.fast_retransmit_timestamp = None;
        }
    }

    /// Resends `hole`, if any; returns whether it sent.
    fn retransmit_hole(&mut self, context: &mut Context, hole: Option<(SeqNum, u32)>) -> bool {
        let Some((start, length)) = hole else {
            return false;
        };
        let length = length.min(self.send_end().distance_from(start));
        if length == 0 {
            return false;
        }
        // Karn's rule (RFC 6298 section 3): an ACK of resent data may answer either copy, so
        // the segment being timed (without timestamps) gives no sample; `retransmit_first`
        // forgets it too.
        self.rtt_timing = None;
        self.send_data(context, start, length as usize, ACK);
        self.scoreboard.resent(start + length);
        if start != self.send_unacknowledged {
            // Another hole resent: the recovery is no longer a single reordered segment.
            self.fast_retransmit_timestamp = None;
        }
        true
    }

    fn receive_data(&mut self, context: &mut Context, sequence: SeqNum, payload: &[u8]) {
        if self.read_shutdown {
            // Reading was shut down: acknowledge and discard.
            let end = sequence + payload.len() as u32;
            if end.after(self.receive_next) {
                self.receive_next = end;
            }
            self.ack_now = true;
            return;
        }
        if sequence.after(self.receive_next) {
            // Out of order: hold it and send a duplicate ACK at once (RFC 5681 section 4.2).
            // Only in the shared part of the budget: bytes behind a hole the sender never
            // fills are never read, so out of order they would hold a reserve place for
            // good (a byte per place refused every new client); in-order data prunes them
            // when it needs the room (`make_room_for_in_order`), and the sender resends.
            let window = self.current_receive_window();
            if payload.len() > context.shared_room() {
                context.counters.drop_segment(DropReason::MemoryLimit);
            } else {
                match self
                    .reassembly
                    .insert(self.receive_next, window, sequence, payload)
                {
                    Ok(added) => self.charge_memory(context, added),
                    Err(_) => context.counters.drop_segment(DropReason::ReassemblyFull),
                }
            }
            self.ack_now = true;
            return;
        }
        let skip = self.receive_next.distance_from(sequence) as usize;
        let fresh = &payload[skip.min(payload.len())..];
        let room = self.current_receive_window() as usize;
        let take = fresh.len().min(room);
        if !self.make_room_for_in_order(context, take) {
            context.counters.drop_segment(DropReason::MemoryLimit);
            self.ack_now = true;
            return;
        }
        if take > 0 && self.receive_buffer.capacity() == 0 {
            self.receive_buffer = context.take_buffer();
        }
        self.receive_buffer.extend(&fresh[..take]);
        self.charge_memory(context, take);
        self.receive_next = self.receive_next + take as u32;
        let filled_hole = !self.reassembly.is_empty();
        // Queued bytes that this segment delivered again were counted twice: once in the
        // queue, once just above (issue 10, defect 1: the budget leaked on every overlap).
        let duplicate = self.reassembly.discard_delivered(self.receive_next);
        self.release_memory(context, duplicate);
        while let Some(data) = self.reassembly.take_ready(self.receive_next) {
            // Already counted against the budget while in the reassembly queue.
            self.receive_next = self.receive_next + data.len() as u32;
            let (front, back) = data.as_slices();
            self.receive_buffer.extend(front);
            self.receive_buffer.extend(back);
        }
        if take > 0 {
            self.wake_reader();
        }
        // Delayed ACK (RFC 9293 section 3.8.6.3, RFC 5681 section 4.2): every second full
        // segment, at once when a hole was filled, else within the delay.
        self.unacknowledged_segments += 1;
        if filled_hole || self.unacknowledged_segments >= 2 || take < fresh.len() {
            self.ack_now = true;
        } else if self.timers.delayed_ack.is_none() {
            self.timers.delayed_ack = Some(context.now + context.config.delayed_ack);
        }
    }

    /// Whether the budget takes `take` bytes at RCV.NXT, dropping data held out of order
    /// from the highest sequence down when that makes the room (Linux's
    /// `tcp_prune_ofo_queue`, called from `tcp_try_rmem_schedule` for in-order data). The
    /// room counts the out-of-order bytes held, so without this, once the shared part of the
    /// budget was used, the retransmission that fills the hole was refused for good and the
    /// application could read nothing (issue 29, item 2). The bytes dropped pay for the bytes
    /// taken: the core holds no more than the room the budget gave.
    fn make_room_for_in_order(&mut self, context: &mut Context, take: usize) -> bool {
        let held = self.received_bytes_held();
        let room = context.memory_room(held, usize::MAX, self.reserve_user(context));
        if take <= room {
            return true;
        }
        let missing = take - room;
        if missing > self.reassembly.bytes() {
            if context.refused_by_reserve_limit(held, usize::MAX, self.reserve_user(context)) {
                context.counters.reserve_limit_refusals += 1;
            }
            return false;
        }
        let dropped = self.reassembly.drop_from_top(missing);
        context.memory_used = context.memory_used.saturating_sub(dropped);
        context.counters.out_of_order_bytes_pruned += dropped as u64;
        true
    }

    /// The peer's FIN is in order (RFC 9293 section 3.10.7.4, eighth).
    fn on_fin(&mut self, context: &mut Context) -> Outcome {
        self.receive_next = self.receive_next + 1;
        self.fin_received = true;
        self.pending_fin = None;
        self.ack_now = true;
        self.timers.delayed_ack = None;
        self.wake_reader();
        match self.state {
            TcpState::SynReceived | TcpState::Established => self.state = TcpState::CloseWait,
            TcpState::FinWait1 => {
                if self.fin_acknowledged() {
                    self.send_ack(context);
                    self.state = TcpState::TimeWait;
                    return Outcome::TimeWait;
                }
                self.state = TcpState::Closing;
            }
            TcpState::FinWait2 => {
                self.send_ack(context);
                self.state = TcpState::TimeWait;
                return Outcome::TimeWait;
            }
            _ => {}
        }
        Outcome::Continue
    }

    fn close_with_error(&mut self, error: SocketError) -> Outcome {
        self.state = TcpState::Closed;
        self.error = Some(error);
        self.timers = Timers {
            scheduled: self.timers.scheduled,
            ..Timers::default()
        };
        self.wake_all();
        Outcome::Closed
    }

    // ----- timers -----

    fn arm_keepalive(&mut self, context: &Context) {
        let Some(idle) = self.options.keepalive else {
            self.timers.keepalive = None;
            return;
        };
        if !matches!(self.state, TcpState::Established | TcpState::CloseWait) {
            self.timers.keepalive = None;
            return;
        }
        let delay = if self.keepalive_probes_sent == 0 {
            idle
        } else {
            context.config.keepalive_interval
        };
        let base = if self.keepalive_probes_sent == 0 {
            self.last_receive_time
        } else {
            context.now
        };
        if self.timers.keepalive.is_none() || self.keepalive_probes_sent == 0 {
            self.timers.keepalive = Some(base + delay);
        }
    }

    /// Fires the connection's due timers.
    pub(crate) fn on_timers(&mut self, context: &mut Context) -> Outcome {
        let now = context.now;
        let due = |deadline: Option<Instant>| deadline.is_some_and(|deadline| deadline <= now);
        if due(self.timers.close) {
            self.timers.close = None;
            if self.state == TcpState::FinWait2 {
                self.state = TcpState::Closed;
                return Outcome::Closed;
            }
        }
        if (due(self.timers.retransmit) || due(self.timers.persist))
            && self.orphan_overstayed(context)
        {
            // An orphan (closed by its application) that still holds data is given up on
            // `orphan_persist_limit` after it was closed, whatever the receiver does: nobody
            // waits for it, and a client that never reads, or opens a byte of window now and
            // then (in persist or out of it), must not pin its buffers for ever. Checked when
            // its retransmission or probe timer fires, so up to one RTO late. Linux counts
            // retransmissions and probes (tcp_orphan_retries), whose back-off any byte
            // acknowledged resets, and relies on tcp_out_of_resources for the rest; the
            // memory-pressure side is `TcpLayer::reap_orphans` here.
            context.counters.connections_timed_out += 1;
            context.counters.orphan_persist_limits += 1;
            self.reset_peer(context);
            return self.close_with_error(SocketError::TimedOut);
        }
        if due(self.timers.retransmit) {
            self.timers.retransmit = None;
            let outcome = self.on_retransmit_timeout(context);
            if outcome != Outcome::Continue {
                return outcome;
            }
        }
        if due(self.timers.persist) {
            self.timers.persist = None;
            if self.send_window > 0 {
                self.send_held_data(context);
            } else {
                if self.persist_probes_sent >= context.config.max_retransmissions {
                    // The receiver stopped answering: give up, and tell it so in case it
                    // still holds the connection (issue 10, defect 10).
                    context.counters.connections_timed_out += 1;
                    context.counters.persist_timeouts += 1;
                    self.reset_peer(context);
                    let error = self.soft_error.unwrap_or(SocketError::TimedOut);
                    return self.close_with_error(error);
                }
                self.persist_probes_sent += 1;
                self.persist_backoff = self.persist_backoff.saturating_add(1);
                context.counters.zero_window_probes += 1;
                self.send_probe(context);
            }
            self.update_persist(context);
        }
        if due(self.timers.keepalive) {
            self.timers.keepalive = None;
            if self.keepalive_probes_sent >= context.config.keepalive_probes {
                context.counters.connections_timed_out += 1;
                let tuple = self.tuple;
                send_reset(
                    context,
                    tuple.local,
                    tuple.remote,
                    self.control_sequence(),
                    Some(self.receive_next),
                );
                return self.close_with_error(SocketError::TimedOut);
            }
            if context.now.saturating_since(self.last_receive_time)
                >= self.options.keepalive.unwrap_or_default()
            {
                self.keepalive_probes_sent += 1;
                context.counters.keepalive_probes += 1;
                self.send_probe(context);
                self.timers.keepalive = Some(context.now + context.config.keepalive_interval);
            } else {
                self.arm_keepalive(context);
            }
        }
        if due(self.timers.delayed_ack) {
            self.timers.delayed_ack = None;
            self.ack_now = true;
        }
        if self.ack_now {
            self.output(context);
        }
        Outcome::Continue
    }

    /// The SWS override: sends what the usable window allows, however small.
    fn send_held_data(&mut self, context: &mut Context) {
        let window = self.send_window.min(self.congestion.sending_window());
        let usable = (self.send_unacknowledged + window).distance_from(self.send_next);
        let unsent = self.send_end().distance_from(self.send_next);
        let length = usable.min(unsent).min(self.send_mss);
        if length > 0 {
            let flags = if length == unsent { ACK | PSH } else { ACK };
            self.send_data(context, self.send_next, length as usize, flags);
        }
    }

    /// A keepalive or window probe: an ACK with SEQ = SND.UNA - 1, which the peer must answer
    /// with an ACK (RFC 9293 section 3.8.4).
    fn send_probe(&mut self, context: &mut Context) {
        let sequence = self.send_unacknowledged - 1;
        self.transmit(context, sequence, 0, ACK);
    }

    /// RFC 6298 section 5.4-5.7, RFC 5681 section 3.1 (equation 4), and the retry limit
    /// (RFC 9293 section 3.8.3, R2).
    fn on_retransmit_timeout(&mut self, context: &mut Context) -> Outcome {
        let limit = match self.state {
            TcpState::SynSent | TcpState::SynReceived => context.config.max_syn_retransmissions,
            _ => context.config.max_retransmissions,
        };
        if self.retries >= limit {
            context.counters.connections_timed_out += 1;
            let error = self.soft_error.unwrap_or(SocketError::TimedOut);
            if self.state.is_synchronized() {
                let tuple = self.tuple;
                send_reset(
                    context,
                    tuple.local,
                    tuple.remote,
                    self.control_sequence(),
                    Some(self.receive_next),
                );
            }
            return self.close_with_error(error);
        }
        self.retries += 1;
        context.counters.timeouts += 1;
        self.rtt.back_off();
        self.rtt_timing = None;
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => {
                context.counters.retransmits += 1;
                self.retransmissions += 1;
                self.send_syn(context);
            }
            _ => {
                let flight = self.flight_size();
                self.congestion.on_timeout(flight, self.send_max.0);
                self.scoreboard.clear();
                self.fast_retransmit_timestamp = None;
                // Go back N: resend from SND.UNA as the window allows.
                self.send_next = self.send_unacknowledged;
                self.output(context);
                // With the window closed, go-back-N sent nothing and the persist timer now
                // probes (issue 10, defect 2): the retransmission timer must not back off
                // beside it and reset a connection whose receiver answers every probe.
                if self.timers.retransmit.is_none()
                    && self.timers.persist.is_none()
                    && self.send_max != self.send_unacknowledged
                {
                    self.arm_retransmit(context);
                }
            }
        }
        Outcome::Continue
    }

    // ----- the application's calls -----

    pub(crate) fn read(
        &mut self,
        context: &mut Context,
        buffer: &mut [u8],
    ) -> Result<usize, SocketError> {
        if let Some(error) = self.error
            && self.receive_buffer.is_empty()
        {
            return Err(error);
        }
        if !self.receive_buffer.is_empty() {
            let count = buffer.len().min(self.receive_buffer.len());
            let (front, back) = self.receive_buffer.as_slices();
            let from_front = count.min(front.len());
            buffer[..from_front].copy_from_slice(&front[..from_front]);
            buffer[from_front..count].copy_from_slice(&back[..count - from_front]);
            self.receive_buffer.drain(..count);
            release_if_idle(&mut self.receive_buffer);
            self.release_memory(context, count);
            // Tell the peer when the window opened enough (receiver SWS avoidance).
            if self.state.can_receive() {
                let free = self
                    .receive_capacity
                    .saturating_sub(self.receive_buffer.len()) as u32;
                let threshold = (self.receive_capacity as u32 / 2).min(self.send_mss.max(1));
                if free >= self.current_receive_window().saturating_add(threshold) {
                    self.ack_now = true;
                    self.output(context);
                }
            }
            return Ok(count);
        }
        if self.fin_received || self.read_shutdown || buffer.is_empty() {
            return Ok(0);
        }
        match self.state {
            TcpState::Closed | TcpState::TimeWait => Ok(0),
            _ => Err(SocketError::WouldBlock),
        }
    }

    pub(crate) fn write(
        &mut self,
        context: &mut Context,
        data: &[u8],
    ) -> Result<usize, SocketError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.fin_queued {
            return Err(SocketError::Closed);
        }
        if !matches!(
            self.state,
            TcpState::SynSent | TcpState::SynReceived | TcpState::Established | TcpState::CloseWait
        ) {
            return Err(SocketError::NotConnected);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let room = self.send_capacity.saturating_sub(self.send_buffer.len());
        let held = self.send_buffer.len();
        let count = data.len().min(room).min(context.memory_room(
            held,
            self.peer_window_room(),
            self.reserve_user(context),
        ));
        if count == 0 {
            if room > 0 {
                context.counters.write_memory_refusals += 1;
                self.write_refused_by_budget = true;
                if context.refused_by_reserve_limit(
                    held,
                    self.peer_window_room(),
                    self.reserve_user(context),
                ) {
                    context.counters.reserve_limit_refusals += 1;
                }
            }
            return Err(SocketError::WouldBlock);
        }
        self.write_refused_by_budget = false;
        if self.send_buffer.capacity() == 0 {
            self.send_buffer = context.take_buffer();
        }
        self.send_buffer.extend(&data[..count]);
        self.charge_memory(context, count);
        self.output(context);
        Ok(count)
    }

    /// Closes the sending side: FIN after the queued data (RFC 9293 section 3.10.4).
    pub(crate) fn shutdown_write(&mut self, context: &mut Context) -> Outcome {
        if self.fin_queued {
            return Outcome::Continue;
        }
        match self.state {
            TcpState::SynSent => {
                self.state = TcpState::Closed;
                self.wake_all();
                return Outcome::Closed;
            }
            TcpState::SynReceived | TcpState::Established => self.state = TcpState::FinWait1,
            TcpState::CloseWait => self.state = TcpState::LastAck,
            _ => return Outcome::Continue,
        }
        self.fin_queued = true;
        self.output(context);
        self.wake_writer();
        Outcome::Continue
    }

    pub(crate) fn shutdown_read(&mut self, context: &mut Context) {
        self.read_shutdown = true;
        let discarded = self.receive_buffer.len() + self.reassembly.clear();
        self.receive_buffer.clear();
        self.release_memory(context, discarded);
        self.wake_reader();
    }

    /// Sends a RST (in the states where the peer knows us) and closes (RFC 9293 section 3.10.5).
    pub(crate) fn abort(&mut self, context: &mut Context) -> Outcome {
        if matches!(
            self.state,
            TcpState::SynReceived
                | TcpState::Established
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::CloseWait
        ) {
            self.reset_peer(context);
        }
        self.release_buffers(context);
        if self.error.is_none() {
            self.error = Some(SocketError::ConnectionAborted);
        }
        self.state = TcpState::Closed;
        self.wake_all();
        Outcome::Closed
    }

    /// Gives the connection's buffered bytes back to the per-core budget.
    pub(crate) fn release_buffers(&mut self, context: &mut Context) {
        let bytes = self.buffered_bytes();
        context.give_back_buffer(core::mem::take(&mut self.send_buffer));
        context.give_back_buffer(core::mem::take(&mut self.receive_buffer));
        self.reassembly.clear();
        self.release_memory(context, bytes);
    }

    /// Frees the sending-side and reassembly buffers only (TIME_WAIT keeps unread data).
    pub(crate) fn release_send_buffers(&mut self, context: &mut Context) {
        let bytes = self.send_buffer.len() + self.reassembly.clear();
        context.give_back_buffer(core::mem::take(&mut self.send_buffer));
        self.release_memory(context, bytes);
    }

    pub(crate) fn has_unread_data(&self) -> bool {
        !self.receive_buffer.is_empty()
    }

    pub(crate) fn set_send_capacity(&mut self, capacity: usize) {
        self.send_capacity = capacity;
        self.options.send_buffer_size = capacity;
    }

    pub(crate) fn set_receive_capacity(&mut self, capacity: usize) {
        // The largest window TCP can express (RFC 7323 section 2.3).
        let capacity = capacity.min(usize::from(u16::MAX) << MAX_WINDOW_SCALE);
        self.receive_capacity = capacity;
        self.options.receive_buffer_size = capacity;
    }

    pub(crate) fn set_keepalive(&mut self, context: &Context, idle: Option<Duration>) {
        self.options.keepalive = idle;
        self.keepalive_probes_sent = 0;
        self.timers.keepalive = None;
        self.arm_keepalive(context);
    }

    /// Lowers the MSS after ICMP "fragmentation needed" (RFC 1191) and resends at once.
    pub(crate) fn on_path_mtu(&mut self, context: &mut Context, next_hop_mtu: u16) {
        let mss = next_hop_mtu.saturating_sub(40).max(DEFAULT_PEER_MSS);
        if u32::from(mss) < self.send_mss {
            let option_bytes = if self.timestamps.is_some() {
                TIMESTAMP_OPTION_LENGTH
            } else {
                0
            };
            self.send_mss = u32::from(mss).saturating_sub(option_bytes).max(64);
            self.congestion.set_mss(self.send_mss);
            self.send_next = self.send_unacknowledged;
            self.output(context);
        }
    }

    /// Takes ownership from the application (`close`): an orphan discards what arrives, and
    /// waits in FIN-WAIT-2 only so long (Linux `tcp_fin_timeout`).
    pub(crate) fn orphan(&mut self, context: &mut Context) {
        self.owner = Owner::Orphan;
        self.orphaned_at = Some(context.now);
        self.shutdown_read(context);
        if self.state == TcpState::FinWait2 && self.timers.close.is_none() {
            self.timers.close = Some(context.now + context.config.fin_wait_2_timeout);
        }
    }

    /// A hard ICMP error during the handshake ends the attempt (RFC 1122 section 4.2.3.9).
    pub(crate) fn on_hard_error(&mut self, error: SocketError) -> Outcome {
        self.close_with_error(error)
    }
}

/// Capacity an empty buffer may keep for the next burst; beyond it the allocation is given
/// back, so idle connections do not hold their peak buffer size.
const IDLE_BUFFER_CAPACITY: usize = 4096;

fn release_if_idle(buffer: &mut VecDeque<u8>) {
    if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER_CAPACITY {
        *buffer = VecDeque::new();
    }
}

/// `length` bytes from `offset` of a buffer held as two slices.
fn slice_pair<'a>(
    front: &'a [u8],
    back: &'a [u8],
    offset: usize,
    length: usize,
) -> (&'a [u8], &'a [u8]) {
    if offset >= front.len() {
        let start = (offset - front.len()).min(back.len());
        let end = (start + length).min(back.len());
        return (&back[start..end], &[]);
    }
    let first_end = (offset + length).min(front.len());
    let first = &front[offset..first_end];
    let rest = length - first.len();
    (first, &back[..rest.min(back.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_timer_is_the_minimum_of_the_armed_ones() {
        let at = Instant::from_millis;
        assert_eq!(Timers::default().earliest(), None);
        for armed in 1u32..32 {
            let deadlines: [Option<Instant>; 5] = core::array::from_fn(|index| {
                (armed & (1 << index) != 0).then(|| at(50 - 7 * index as u64))
            });
            let timers = Timers {
                retransmit: deadlines[0],
                delayed_ack: deadlines[1],
                persist: deadlines[2],
                keepalive: deadlines[3],
                close: deadlines[4],
                scheduled: Some(at(1)),
            };
            assert_eq!(
                timers.earliest(),
                deadlines.into_iter().flatten().min(),
                "armed {armed:05b}"
            );
        }
    }
}
