//! The queue of segments waiting for the interface: one reusable byte arena, no allocation per segment.

use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::ops::Range;

use super::segment::{self, ACK, FIN, PSH, SegmentHeader};
use super::seq::SeqNum;
use super::tuple::FourTuple;
use crate::net::checksum;

/// One outgoing TCP segment, lent to the interface by [`TcpLayer::drain_output`](super::TcpLayer::drain_output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutSegment<'a> {
    /// IPv4 source address (one of ours).
    pub source: Ipv4Addr,
    /// IPv4 destination address.
    pub destination: Ipv4Addr,
    /// The TCP header (with options and a correct checksum over the IPv4 pseudo-header)
    /// followed by the payload: ready to be the payload of an IPv4 packet with protocol 6.
    pub tcp: &'a [u8],
}

struct QueuedSegment {
    source: Ipv4Addr,
    destination: Ipv4Addr,
    bytes: Range<usize>,
}

/// What the queue knows of its newest segment when a connection made it, while it waits to
/// be drained: enough for that connection's next segment to be folded into it (a FIN into
/// the response before it, an ACK into the data after it) instead of going out on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NewestSegment {
    pub(crate) tuple: FourTuple,
    /// The sequence number after its payload (its own sequence number if it has none).
    pub(crate) end: SeqNum,
    pub(crate) acknowledgment: SeqNum,
    pub(crate) flags: u8,
    pub(crate) payload_len: usize,
    /// A bare ACK that a later segment of the same connection may stand for: it moved the
    /// acknowledgment forward (a duplicate ACK counts for the peer's fast retransmit) and
    /// sat at SND.NXT = SND.MAX (a probe or an ACK during go-back-N says more than its
    /// acknowledgment).
    pub(crate) replaceable_ack: bool,
}

impl NewestSegment {
    /// Carries data and nothing that a FIN may not join.
    pub(crate) fn is_plain_data(&self) -> bool {
        self.flags & !PSH == ACK && self.payload_len > 0
    }
}

/// Segments built by the layer, kept until the interface drains them. The arena keeps its
/// capacity between drains, so a steady state allocates nothing.
#[derive(Default)]
pub(crate) struct OutputQueue {
    arena: Vec<u8>,
    segments: Vec<QueuedSegment>,
    newest: Option<NewestSegment>,
}

impl OutputQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Segments queued.
    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    /// Appends a segment: `build` writes the TCP bytes into the arena, which it receives
    /// already positioned at the segment's start; it returns nothing. The segment is what
    /// `build` appended.
    pub(crate) fn push(
        &mut self,
        source: Ipv4Addr,
        destination: Ipv4Addr,
        build: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.arena.len();
        build(&mut self.arena);
        let end = self.arena.len();
        self.segments.push(QueuedSegment {
            source,
            destination,
            bytes: start..end,
        });
        self.newest = None;
    }

    /// Like `push`, for a segment of a connection, which `newest` describes.
    pub(crate) fn push_from_connection(
        &mut self,
        newest: NewestSegment,
        source: Ipv4Addr,
        destination: Ipv4Addr,
        build: impl FnOnce(&mut Vec<u8>),
    ) {
        self.push(source, destination, build);
        self.newest = Some(newest);
    }

    /// The newest segment, if a connection made it and it is still queued.
    pub(crate) fn newest(&self) -> Option<&NewestSegment> {
        self.newest.as_ref()
    }

    /// Takes the newest segment back out of the queue, unsent.
    pub(crate) fn withdraw_newest(&mut self) {
        if self.newest.take().is_some()
            && let Some(segment) = self.segments.pop()
        {
            self.arena.truncate(segment.bytes.start);
        }
    }

    /// Sets FIN on the newest segment (its checksum updated to match); it then takes
    /// nothing more.
    pub(crate) fn add_fin_to_newest(&mut self) {
        if self.newest.take().is_none() {
            return;
        }
        let Some(segment) = self.segments.last() else {
            return;
        };
        let Some(tcp) = self.arena.get_mut(segment.bytes.clone()) else {
            return;
        };
        if tcp.len() < segment::HEADER_LENGTH {
            return;
        }
        let old = u16::from_be_bytes([tcp[12], tcp[13]]);
        tcp[13] |= FIN;
        let new = u16::from_be_bytes([tcp[12], tcp[13]]);
        let field = u16::from_be_bytes([tcp[16], tcp[17]]);
        tcp[16..18].copy_from_slice(&checksum::updated(field, old, new).to_be_bytes());
    }

    /// Appends a segment that is only `header`: no payload (SYN-ACKs, bare ACKs, RSTs).
    pub(crate) fn push_header_only(&mut self, header: &SegmentHeader) {
        self.push(header.source, header.destination, |out| {
            segment::write(out, header, (&[], &[]))
        });
    }

    /// Lends up to `limit` queued segments to `emit`, oldest first, and forgets them.
    pub(crate) fn drain_up_to(
        &mut self,
        limit: usize,
        mut emit: impl FnMut(OutSegment<'_>),
    ) -> usize {
        let count = limit.min(self.segments.len());
        if count > 0 {
            self.newest = None;
        }
        for segment in &self.segments[..count] {
            emit(OutSegment {
                source: segment.source,
                destination: segment.destination,
                tcp: &self.arena[segment.bytes.clone()],
            });
        }
        self.segments.drain(..count);
        match self.segments.first() {
            None => self.arena.clear(),
            Some(first) if first.bytes.start > self.arena.len() / 2 => {
                // Most of the arena is drained: move the rest to the front.
                let shift = first.bytes.start;
                self.arena.copy_within(shift.., 0);
                self.arena.truncate(self.arena.len() - shift);
                for segment in &mut self.segments {
                    segment.bytes = segment.bytes.start - shift..segment.bytes.end - shift;
                }
            }
            Some(_) => {}
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_drains_keep_order_and_bytes() {
        let mut queue = OutputQueue::default();
        let address = Ipv4Addr::new(10, 0, 0, 1);
        for index in 0..5u8 {
            queue.push(address, address, |out| out.extend_from_slice(&[index; 3]));
        }
        let mut seen = alloc::vec::Vec::new();
        assert_eq!(
            queue.drain_up_to(3, |segment| seen.push(segment.tcp.to_vec())),
            3
        );
        queue.push(address, address, |out| out.extend_from_slice(&[9; 2]));
        assert_eq!(
            queue.drain_up_to(10, |segment| seen.push(segment.tcp.to_vec())),
            3
        );
        assert_eq!(
            seen,
            [
                vec![0; 3],
                vec![1; 3],
                vec![2; 3],
                vec![3; 3],
                vec![4; 3],
                vec![9; 2]
            ]
        );
        assert!(queue.is_empty());
    }
}
