//! The queue of segments waiting for the interface: one reusable byte arena, no allocation per segment.

use alloc::vec::Vec;
use core::net::Ipv4Addr;
use core::ops::Range;

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

    /// Lends every queued segment to `emit`, oldest first, then forgets them.
    pub(crate) fn drain(&mut self, mut emit: impl FnMut(OutSegment<'_>)) {
        for segment in &self.segments {
            emit(OutSegment {
                source: segment.source,
                destination: segment.destination,
                tcp: &self.arena[segment.bytes.clone()],
            });
        }
        self.segments.clear();
        self.arena.clear();
    }
}
