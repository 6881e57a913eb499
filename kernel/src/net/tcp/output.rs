//! The queue of segments waiting for the interface: one reusable byte arena, no allocation per segment.

use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::ops::Range;

use super::segment::{self, SegmentHeader};

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

/// Segments built by the layer, kept until the interface drains them. The arena keeps its
/// capacity between drains, so a steady state allocates nothing.
#[derive(Default)]
pub(crate) struct OutputQueue {
    arena: Vec<u8>,
    segments: Vec<QueuedSegment>,
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
