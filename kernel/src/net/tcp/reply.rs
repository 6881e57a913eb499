//! Segments sent on behalf of no connection: resets for strangers (RFC 9293 section 3.10.7.1) and rate-limited challenge ACKs (RFC 5961 section 7).

use core::net::SocketAddrV4;

use super::context::Context;
use super::segment::{self, ACK, RST, SegmentHeader, SegmentOptions};
use super::seq::SeqNum;

/// Sends a RST from `local` to `remote`: `<SEQ=sequence><CTL=RST>`, or with
/// `acknowledgment`, `<SEQ=sequence><ACK=acknowledgment><CTL=RST,ACK>`.
pub(crate) fn send_reset(
    context: &mut Context,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    sequence: SeqNum,
    acknowledgment: Option<SeqNum>,
) {
    let header = SegmentHeader {
        source: *local.ip(),
        destination: *remote.ip(),
        source_port: local.port(),
        destination_port: remote.port(),
        sequence,
        acknowledgment: acknowledgment.unwrap_or(SeqNum(0)),
        flags: if acknowledgment.is_some() {
            RST | ACK
        } else {
            RST
        },
        window: 0,
        options: SegmentOptions::default(),
    };
    context.push_header_only(&header);
    context.counters.resets_sent += 1;
}

/// The answer to a segment that reached no socket (RFC 9293 section 3.10.7.1): nothing to a
/// RST; `<SEQ=SEG.ACK><CTL=RST>` to a segment with ACK; else
/// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
pub(crate) fn reset_for(
    context: &mut Context,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    incoming: &segment::Segment<'_>,
) {
    if incoming.has(RST) || !stranger_reset_allowed(context) {
        return;
    }
    if incoming.has(ACK) {
        send_reset(context, local, remote, incoming.acknowledgment, None);
    } else {
        let acknowledgment = incoming.sequence + incoming.sequence_length();
        send_reset(context, local, remote, SeqNum(0), Some(acknowledgment));
    }
}

/// Whether one more RST to a stranger fits in this second's budget: a flood to closed ports
/// (often from spoofed sources) is then not reflected at line rate.
pub(crate) fn stranger_reset_allowed(context: &mut Context) -> bool {
    let second = context.now.as_nanos() / 1_000_000_000;
    if context.reset_second != Some(second) {
        context.reset_second = Some(second);
        context.stranger_resets_left = context.config.stranger_reset_limit;
    }
    if context.stranger_resets_left == 0 {
        context.counters.resets_rate_limited += 1;
        return false;
    }
    context.stranger_resets_left -= 1;
    true
}

/// Whether one more challenge ACK fits in this second's budget (RFC 5961 section 7). The
/// budget is drawn anew every second, uniformly from [limit / 2, limit * 3 / 2), from the
/// layer's secret key, as Linux does since CVE-2016-5696: with a fixed budget an off-path
/// attacker that exhausts it and counts the challenge ACKs its own connection still gets
/// learns whether its spoofed RSTs were in someone else's window.
pub(crate) fn challenge_ack_allowed(context: &mut Context) -> bool {
    let second = context.now.as_nanos() / 1_000_000_000;
    if second != context.challenge_ack_second || !context.challenge_ack_budget_drawn {
        let limit = u64::from(context.config.challenge_ack_limit.max(1));
        let draw = context.key.hash(&[second, 0x6368_616c_6c65_6e67]) % limit;
        context.challenge_ack_second = second;
        context.challenge_ack_budget_drawn = true;
        context.challenge_acks_left = (limit.div_ceil(2) + draw) as u32;
    }
    if context.challenge_acks_left == 0 {
        context.counters.acks_rate_limited += 1;
        return false;
    }
    context.challenge_acks_left -= 1;
    context.counters.challenge_acks += 1;
    true
}
