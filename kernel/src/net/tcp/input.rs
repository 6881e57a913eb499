//! Segment arrival at the layer: demultiplexing to a connection, a TIME_WAIT record, a half-open connection or a listener (passive open, SYN cookies), and ICMP errors.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::connection::{Connection, Handshake, Outcome, window_shift_for};
use super::context::{Context, TimerKey};
use super::listen::HalfOpen;
use super::reply::{challenge_ack_allowed, reset_for, send_reset, stranger_reset_allowed};
use super::segment::{self, ACK, FIN, RST, SYN, Segment, SegmentHeader, SegmentOptions};
use super::seq::SeqNum;
use super::slots::SocketEntry;
use super::syn_cookie;
use super::time_wait::TimeWaitRecord;
use super::tuple::{FourTuple, HashedTuple};
use super::{DropReason, IcmpError, IcmpErrorKind, SocketError, TcpLayer, TcpState};

/// RFC 9293 section 3.7.1: the MSS to assume when the peer sends none.
const DEFAULT_PEER_MSS: u16 = 536;

impl TcpLayer {
    pub(super) fn dispatch_segment(
        &mut self,
        source: Ipv4Addr,
        destination: Ipv4Addr,
        bytes: &[u8],
    ) {
        let Ok(segment) = segment::parse(bytes) else {
            self.context.counters.drop_segment(DropReason::Malformed);
            return;
        };
        // Flag combinations no correct stack sends.
        if segment.has(SYN) && (segment.has(RST) || segment.has(FIN))
            || source.is_broadcast()
            || source.is_multicast()
            || destination.is_broadcast()
            || destination.is_multicast()
        {
            self.context.counters.drop_segment(DropReason::Malformed);
            return;
        }
        // Hashed once for every table below.
        let key = self.tuples.hashed(FourTuple {
            local: SocketAddrV4::new(destination, segment.destination_port),
            remote: SocketAddrV4::new(source, segment.source_port),
        });
        let tuple = key.tuple;
        if let Some(&slot) = self.established.get(&key) {
            let Some(connection) = self.slots.connection_mut(slot) else {
                self.established.remove(&key);
                return;
            };
            let outcome = connection.on_segment(&mut self.context, &segment);
            self.settle(slot, outcome);
            return;
        }
        let mut reuse_sequence = None;
        if let Some(record) = self.time_wait.get(&key).copied() {
            match self.on_time_wait_segment(key, record, &segment) {
                Some(sequence) => reuse_sequence = Some(sequence),
                None => return,
            }
        }
        if let Some(half_open) = self.half_open.get(&key).copied() {
            self.on_half_open_segment(key, half_open, &segment);
            return;
        }
        let listener = self.listeners.get(&tuple.local.port()).copied().filter(|&slot| {
            matches!(self.slots.get(slot), Some(SocketEntry::Listener(listener)) if listener.accepts_address(tuple.local))
        });
        match listener {
            Some(slot) => self.on_listener_segment(slot, key, &segment, reuse_sequence),
            None => {
                self.context.counters.drop_segment(DropReason::NoSocket);
                reset_for(&mut self.context, tuple.local, tuple.remote, &segment);
            }
        }
    }

    /// A segment for a 4-tuple in TIME_WAIT. Returns the ISN to use when it is a SYN that may
    /// open a new incarnation, else `None` (handled here). The record stays until the SYN
    /// actually opens one (`on_syn`): a SYN dropped by a limit must not end TIME_WAIT.
    fn on_time_wait_segment(
        &mut self,
        key: HashedTuple,
        record: TimeWaitRecord,
        segment: &Segment<'_>,
    ) -> Option<SeqNum> {
        let tuple = key.tuple;
        if segment.has(RST) {
            // RFC 1337: a RST must not end TIME_WAIT early (TIME-WAIT assassination).
            self.context.counters.drop_segment(DropReason::InvalidReset);
            return None;
        }
        if segment.has(SYN) && !segment.has(ACK) {
            let timestamp = segment.options.timestamp.map(|(value, _)| value);
            if record.accepts_new_syn(segment.sequence, timestamp)
                && self.listeners.contains_key(&tuple.local.port())
            {
                return Some(record.next_initial_sequence());
            }
            // RFC 5961 section 4 (and RFC 9293): answer an old SYN with an ACK.
            if challenge_ack_allowed(&mut self.context) {
                send_time_wait_ack(&mut self.context, tuple, &record);
            }
            return None;
        }
        let retransmitted_fin = segment.has(FIN)
            && segment.sequence + segment.payload.len() as u32 + 1 == record.receive_next;
        if retransmitted_fin {
            // The peer did not get our last ACK: acknowledge again and restart the 2*MSL
            // timer (RFC 9293 section 3.10.7.4, TIME-WAIT). The timer's entry stays where it
            // is and re-arms when it fires; the ACK goes at most once per
            // `invalid_ack_interval`, so a FIN flood draws no ACK storm (issue 10, defect 6).
            let now = self.context.now;
            let interval = self.context.config.invalid_ack_interval;
            let answer = record
                .last_ack
                .is_none_or(|last| now.saturating_since(last) >= interval);
            if answer {
                send_time_wait_ack(&mut self.context, tuple, &record);
            } else {
                self.context.counters.acks_rate_limited += 1;
            }
            let expires = now + self.context.config.time_wait;
            if let Some(stored) = self.time_wait.get_mut(&key) {
                stored.expires = expires;
                if answer {
                    stored.last_ack = Some(now);
                }
            }
        } else if (segment.has(FIN) || !segment.payload.is_empty())
            && challenge_ack_allowed(&mut self.context)
        {
            // Anything else is old or forged: an ACK (rate-limited), and the timer runs on,
            // so that a blind sender cannot keep the record alive.
            self.context.counters.drop_segment(DropReason::OutOfWindow);
            send_time_wait_ack(&mut self.context, tuple, &record);
        }
        None
    }

    /// A segment for a half-open passive connection (SYN-RECEIVED, RFC 9293 section 3.10.7.4).
    fn on_half_open_segment(
        &mut self,
        key: HashedTuple,
        half_open: HalfOpen,
        segment: &Segment<'_>,
    ) {
        let tuple = key.tuple;
        let expected = half_open.handshake.initial_receive + 1;
        if segment.has(RST) {
            // RFC 5961 section 3.2: only an exact RST ends it; the listener goes on.
            if segment.sequence == expected {
                self.context.counters.resets_received += 1;
                self.remove_half_open(&key);
                return;
            }
            self.context.counters.drop_segment(DropReason::InvalidReset);
            // In the window of our SYN-ACK: a challenge ACK, which a peer that really
            // restarted answers with the exact RST (RFC 5961 section 3.2; issue 10, defect 10).
            let window = u32::from(unscaled_receive_window(&self.context));
            if segment.sequence.in_window(expected, window)
                && challenge_ack_allowed(&mut self.context)
            {
                send_half_open_ack(&mut self.context, tuple, &half_open.handshake);
            }
            return;
        }
        if segment.has(SYN) {
            if segment.sequence == half_open.handshake.initial_receive && !segment.has(ACK) {
                // The peer did not get our SYN-ACK: send it again.
                send_syn_ack(&mut self.context, tuple, &half_open.handshake, None);
            } else {
                // A different SYN for the same 4-tuple (the peer restarted, or a forgery):
                // a challenge ACK (RFC 5961 section 4). A peer that restarted answers it with
                // a RST at exactly the expected sequence number, which ends this half-open
                // connection; its next SYN then opens a new one.
                self.context
                    .counters
                    .drop_segment(DropReason::UnexpectedSyn);
                if challenge_ack_allowed(&mut self.context) {
                    send_half_open_ack(&mut self.context, tuple, &half_open.handshake);
                }
            }
            return;
        }
        if !segment.has(ACK) {
            return;
        }
        if segment.acknowledgment != half_open.initial_send() + 1 {
            self.context
                .counters
                .drop_segment(DropReason::UnacceptableAck);
            send_reset(
                &mut self.context,
                tuple.local,
                tuple.remote,
                segment.acknowledgment,
                None,
            );
            return;
        }
        if !segment
            .sequence
            .in_window(expected, u32::from(u16::MAX) + 1)
        {
            self.context.counters.drop_segment(DropReason::OutOfWindow);
            return;
        }
        let listener = half_open.listener;
        let queue_full = match self.slots.listener_mut(listener) {
            Some(listener) => listener.accept_queue_full(),
            None => true,
        };
        if queue_full {
            // Leave it half-open: our SYN-ACK retransmission or the peer's next segment retries.
            self.context
                .counters
                .drop_segment(DropReason::AcceptQueueFull);
            return;
        }
        self.remove_half_open(&key);
        self.establish_passive(listener, key, &half_open.handshake, segment);
    }

    fn remove_half_open(&mut self, key: &HashedTuple) {
        let Some(half_open) = self.half_open.remove(key) else {
            return;
        };
        self.context
            .wheel
            .cancel(half_open.deadline, TimerKey::HalfOpen(key.tuple));
        if let Some(listener) = self.slots.listener_mut(half_open.listener) {
            listener.half_open_count = listener.half_open_count.saturating_sub(1);
        }
    }

    /// Creates the connection of a completed passive handshake, feeds it the completing
    /// segment (which may carry data and FIN) and queues it for `accept`.
    fn establish_passive(
        &mut self,
        listener: u32,
        key: HashedTuple,
        handshake: &Handshake,
        segment: &Segment<'_>,
    ) {
        let mut connection = Connection::accept(&self.context, key.tuple, handshake, listener);
        self.context.counters.passive_opens += 1;
        let outcome = connection.on_segment(&mut self.context, segment);
        let (slot, _) = self.slots.insert(SocketEntry::Connection(connection));
        self.established.insert(&key, slot);
        if let Some(listener) = self.slots.listener_mut(listener) {
            listener.accept_queue.push_back(slot);
            listener.wake_acceptor();
        }
        self.settle(slot, outcome);
    }

    /// A segment for a listener (RFC 9293 section 3.10.7.2), or the ACK of a SYN cookie.
    fn on_listener_segment(
        &mut self,
        listener: u32,
        key: HashedTuple,
        segment: &Segment<'_>,
        reuse_sequence: Option<SeqNum>,
    ) {
        let tuple = key.tuple;
        if segment.has(RST) {
            self.context
                .counters
                .drop_segment(DropReason::IgnoredByListener);
            return;
        }
        if segment.has(ACK) {
            let may_be_cookie = self
                .slots
                .listener_mut(listener)
                .is_some_and(|listener| listener.may_hold_cookies(self.context.now));
            if !segment.has(SYN)
                && self.context.config.syn_cookies
                && may_be_cookie
                && self.try_syn_cookie(listener, key, segment)
            {
                return;
            }
            self.context.counters.drop_segment(DropReason::NoSocket);
            if stranger_reset_allowed(&mut self.context) {
                send_reset(
                    &mut self.context,
                    tuple.local,
                    tuple.remote,
                    segment.acknowledgment,
                    None,
                );
            }
            return;
        }
        if !segment.has(SYN) {
            self.context
                .counters
                .drop_segment(DropReason::IgnoredByListener);
            return;
        }
        self.on_syn(listener, key, segment, reuse_sequence);
    }

    fn on_syn(
        &mut self,
        listener_slot: u32,
        key: HashedTuple,
        segment: &Segment<'_>,
        reuse_sequence: Option<SeqNum>,
    ) {
        let tuple = key.tuple;
        let config = &self.context.config;
        if self.established.len() + self.half_open.len() >= config.max_connections {
            self.context
                .counters
                .drop_segment(DropReason::ConnectionLimit);
            return;
        }
        let Some(listener) = self.slots.listener_mut(listener_slot) else {
            return;
        };
        if listener.accept_queue_full() {
            // Linux drops SYNs while the accept queue is full: the client retries later.
            self.context
                .counters
                .drop_segment(DropReason::AcceptQueueFull);
            return;
        }
        // A SYN that reuses a TIME_WAIT tuple is never answered with a cookie, whose ISN could
        // fall inside the old incarnation's sequence space (Linux does the same): it gets a
        // half-open record even in a full SYN queue, which the TIME_WAIT table bounds.
        let syn_queue_full =
            listener.half_open_count >= config.syn_queue_size && reuse_sequence.is_none();
        let options = segment.options;
        let peer_timestamp = if config.timestamps {
            options.timestamp.map(|(value, _)| value)
        } else {
            None
        };
        let our_shift = window_shift_for(config.receive_buffer_size);
        // One hash keys the TSval offset and the ISN; a cookie's answer needs only the former.
        let secrets = (peer_timestamp.is_some() || !syn_queue_full)
            .then(|| self.context.tuple_secrets(&tuple));
        let mut handshake = Handshake {
            initial_send: SeqNum(0),
            initial_receive: segment.sequence,
            peer_mss: options.mss.unwrap_or(DEFAULT_PEER_MSS),
            window_shifts: match (config.window_scaling, options.window_scale) {
                (true, Some(peer_shift)) => Some((peer_shift, our_shift)),
                _ => None,
            },
            peer_timestamp,
            sack_permitted: config.sack_permitted && options.sack_permitted,
            peer_window: segment.window,
            timestamp_offset: match (peer_timestamp, secrets) {
                (Some(_), Some(secrets)) => secrets.timestamp_offset,
                _ => 0,
            },
        };
        if syn_queue_full {
            if !config.syn_cookies {
                self.context.counters.drop_segment(DropReason::SynQueueFull);
                return;
            }
            // RFC 4987 section 3.6: answer statelessly. Window scale and SACK survive only
            // in the timestamp, so without timestamps they are not offered.
            let (cookie, mss) = syn_cookie::make_cookie(
                &self.context.key,
                self.context.now,
                tuple.local,
                tuple.remote,
                segment.sequence,
                handshake.peer_mss,
            );
            handshake.initial_send = cookie;
            handshake.peer_mss = mss;
            let bits = if peer_timestamp.is_some() {
                Some(syn_cookie::timestamp_bits(
                    options.window_scale.filter(|_| config.window_scaling),
                    handshake.sack_permitted,
                ))
            } else {
                handshake.window_shifts = None;
                handshake.sack_permitted = false;
                None
            };
            listener.last_syn_queue_overflow = Some(self.context.now);
            send_syn_ack(&mut self.context, tuple, &handshake, bits);
            self.context.counters.syn_cookies_sent += 1;
            return;
        }
        listener.half_open_count += 1;
        if reuse_sequence.is_some() {
            // The new incarnation exists now: the old one's record can go.
            if let Some(record) = self.time_wait.remove(&key) {
                self.context
                    .wheel
                    .cancel(record.expires, TimerKey::TimeWait(tuple));
            }
            self.context.counters.time_wait_reuses += 1;
        }
        handshake.initial_send = reuse_sequence.unwrap_or_else(|| {
            secrets
                .unwrap_or_else(|| self.context.tuple_secrets(&tuple))
                .initial_sequence_number(self.context.now)
        });
        let deadline = self.context.now + self.context.config.initial_rto;
        self.half_open.insert(
            &key,
            HalfOpen {
                listener: listener_slot,
                handshake,
                retries: 0,
                deadline,
            },
        );
        send_syn_ack(&mut self.context, tuple, &handshake, None);
        self.context
            .wheel
            .insert(deadline, TimerKey::HalfOpen(tuple));
    }

    /// The ACK of a SYN-ACK sent with a cookie: validates it and, if good, establishes the
    /// connection. Returns whether the segment was taken.
    fn try_syn_cookie(
        &mut self,
        listener_slot: u32,
        key: HashedTuple,
        segment: &Segment<'_>,
    ) -> bool {
        let tuple = key.tuple;
        let echoed = segment.options.timestamp.map(|(_, echo)| echo);
        let Some(contents) = syn_cookie::check_cookie(
            &self.context.key,
            self.context.now,
            tuple.local,
            tuple.remote,
            segment.sequence - 1,
            segment.acknowledgment - 1,
            echoed,
        ) else {
            self.context
                .counters
                .drop_segment(DropReason::InvalidSynCookie);
            return false;
        };
        self.context.counters.syn_cookies_validated += 1;
        let config = &self.context.config;
        if self.established.len() + self.half_open.len() >= config.max_connections {
            self.context
                .counters
                .drop_segment(DropReason::ConnectionLimit);
            return true;
        }
        let our_shift = window_shift_for(config.receive_buffer_size);
        let peer_timestamp = if config.timestamps {
            segment.options.timestamp.map(|(value, _)| value)
        } else {
            None
        };
        let handshake = Handshake {
            initial_send: segment.acknowledgment - 1,
            initial_receive: segment.sequence - 1,
            peer_mss: contents.mss,
            window_shifts: contents
                .window_scale
                .map(|peer_shift| (peer_shift, our_shift)),
            peer_timestamp,
            sack_permitted: contents.sack_permitted,
            peer_window: 0,
            timestamp_offset: if peer_timestamp.is_some() {
                self.context.tuple_secrets(&tuple).timestamp_offset
            } else {
                0
            },
        };
        match self.slots.listener_mut(listener_slot) {
            Some(listener) if !listener.accept_queue_full() => {}
            _ => {
                self.context
                    .counters
                    .drop_segment(DropReason::AcceptQueueFull);
                return true;
            }
        }
        self.establish_passive(listener_slot, key, &handshake, segment);
        true
    }

    pub(super) fn on_half_open_timer(&mut self, tuple: FourTuple) {
        let now = self.context.now;
        let key = self.tuples.hashed(tuple);
        let Some(half_open) = self.half_open.get_mut(&key) else {
            return;
        };
        if half_open.deadline > now {
            return;
        }
        if half_open.retries >= self.context.config.max_syn_retransmissions {
            self.remove_half_open(&key);
            return;
        }
        half_open.retries += 1;
        let factor = 1u32 << half_open.retries.min(10);
        let delay = self
            .context
            .config
            .initial_rto
            .saturating_mul(factor)
            .min(self.context.config.max_rto);
        half_open.deadline = now + delay;
        let deadline = half_open.deadline;
        let handshake = half_open.handshake;
        self.context.counters.retransmits += 1;
        send_syn_ack(&mut self.context, tuple, &handshake, None);
        self.context
            .wheel
            .insert(deadline, TimerKey::HalfOpen(tuple));
    }

    pub(super) fn handle_icmp_error(&mut self, error: IcmpError) {
        let tuple = FourTuple {
            local: error.local,
            remote: error.remote,
        };
        self.context.counters.icmp_errors += 1;
        let key = self.tuples.hashed(tuple);
        if let Some(&slot) = self.established.get(&key) {
            let Some(connection) = self.slots.connection_mut(slot) else {
                return;
            };
            // RFC 5927 section 4.1: the quoted sequence number must be in flight.
            let sequence = SeqNum(error.sequence);
            if sequence.before(connection.send_unacknowledged())
                || sequence.after(connection.send_max())
            {
                return;
            }
            let outcome = match error.kind {
                IcmpErrorKind::FragmentationNeeded { next_hop_mtu } => {
                    connection.on_path_mtu(&mut self.context, next_hop_mtu);
                    Outcome::Continue
                }
                // Protocol, port unreachable and "fragmentation needed" without an MTU are
                // hard errors for a connection still opening (RFC 1122 section 4.2.3.9).
                IcmpErrorKind::DestinationUnreachable { code: 2..=4 }
                    if connection.state == TcpState::SynSent =>
                {
                    connection.on_hard_error(SocketError::ConnectionRefused)
                }
                // Everything else is soft: remembered, reported only if the connection
                // gives up (RFC 1122 section 4.2.3.9).
                IcmpErrorKind::DestinationUnreachable { .. }
                | IcmpErrorKind::TimeExceeded
                | IcmpErrorKind::ParameterProblem => {
                    connection.soft_error = Some(SocketError::Unreachable);
                    Outcome::Continue
                }
            };
            self.settle(slot, outcome);
        } else if self
            .half_open
            .get(&key)
            .is_some_and(|half_open| half_open.initial_send().0 == error.sequence)
        {
            // RFC 5927 section 4.2 notes that an attacker can abort half-open connections
            // with forged errors; only a hard error removes one.
            if matches!(
                error.kind,
                IcmpErrorKind::DestinationUnreachable { code: 2..=4 }
            ) {
                self.remove_half_open(&key);
            }
        }
    }
}

/// The SYN-ACK of a passive open (RFC 9293 section 3.10.7.2). `cookie_bits` replace the low
/// bits of TSval for a SYN cookie.
fn send_syn_ack(
    context: &mut Context,
    tuple: FourTuple,
    handshake: &Handshake,
    cookie_bits: Option<u32>,
) {
    let timestamp = handshake.peer_timestamp.map(|recent| {
        let value = context.timestamp_value(handshake.timestamp_offset);
        let value = match cookie_bits {
            Some(bits) => syn_cookie::timestamp_with_bits(value, bits),
            None => value,
        };
        (value, recent)
    });
    let header = SegmentHeader {
        source: *tuple.local.ip(),
        destination: *tuple.remote.ip(),
        source_port: tuple.local.port(),
        destination_port: tuple.remote.port(),
        sequence: handshake.initial_send,
        acknowledgment: handshake.initial_receive + 1,
        flags: SYN | ACK,
        window: unscaled_receive_window(context),
        options: SegmentOptions {
            mss: Some(context.config.mss),
            window_scale: handshake.window_shifts.map(|(_, ours)| ours),
            sack_permitted: handshake.sack_permitted,
            timestamp,
            ..SegmentOptions::default()
        },
    };
    context.push_header_only(&header);
}

/// `<SEQ=ISS+1><ACK=IRS+1><CTL=ACK>` for a half-open connection.
fn send_half_open_ack(context: &mut Context, tuple: FourTuple, handshake: &Handshake) {
    let timestamp = handshake
        .peer_timestamp
        .map(|recent| (context.timestamp_value(handshake.timestamp_offset), recent));
    let header = SegmentHeader {
        source: *tuple.local.ip(),
        destination: *tuple.remote.ip(),
        source_port: tuple.local.port(),
        destination_port: tuple.remote.port(),
        sequence: handshake.initial_send + 1,
        acknowledgment: handshake.initial_receive + 1,
        flags: ACK,
        window: unscaled_receive_window(context),
        options: SegmentOptions {
            timestamp,
            ..SegmentOptions::default()
        },
    };
    context.push_header_only(&header);
}

/// An ACK from a TIME_WAIT record: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`.
fn send_time_wait_ack(context: &mut Context, tuple: FourTuple, record: &TimeWaitRecord) {
    let timestamp = record
        .timestamps
        .map(|(offset, recent)| (context.timestamp_value(offset), recent));
    let header = SegmentHeader {
        source: *tuple.local.ip(),
        destination: *tuple.remote.ip(),
        source_port: tuple.local.port(),
        destination_port: tuple.remote.port(),
        sequence: record.send_next,
        acknowledgment: record.receive_next,
        flags: ACK,
        window: 0,
        options: SegmentOptions {
            timestamp,
            ..SegmentOptions::default()
        },
    };
    context.push_header_only(&header);
}

/// The window field of segments sent from a handshake record (the SYN-ACK, whose window
/// RFC 7323 section 2.2 never scales, and the half-open ACK): the receive buffer, capped at
/// 16 bits.
fn unscaled_receive_window(context: &Context) -> u16 {
    context
        .config
        .receive_buffer_size
        .min(usize::from(u16::MAX)) as u16
}
