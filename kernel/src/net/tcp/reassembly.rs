//! The reassembly queue: out-of-order data held until the hole before it is filled (RFC 9293 section 3.10.7.4, "segment text").

use alloc::vec::Vec;

use super::seq::SeqNum;

/// Most separate blocks kept; a segment that would need more is dropped (and retransmitted by the peer).
const MAX_BLOCKS: usize = 32;

/// One contiguous run of received bytes.
struct Block {
    start: SeqNum,
    data: Vec<u8>,
}

impl Block {
    fn end(&self) -> SeqNum {
        self.start + self.data.len() as u32
    }
}

/// Why data could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReassemblyError {
    TooManyBlocks,
}

/// Sorted, disjoint, non-adjacent blocks of data beyond RCV.NXT.
#[derive(Default)]
pub(crate) struct Reassembly {
    blocks: Vec<Block>,
    bytes: usize,
    /// Where the most recently queued data starts (the first SACK block must contain it,
    /// RFC 2018 section 4).
    latest: SeqNum,
}

impl Reassembly {
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Queues `data` that starts at `start`, keeping only what lies in
    /// `[receive_next, receive_next + window)`. Returns the change in bytes held.
    pub(crate) fn insert(
        &mut self,
        receive_next: SeqNum,
        window: u32,
        start: SeqNum,
        data: &[u8],
    ) -> Result<usize, ReassemblyError> {
        // Clip to the window.
        let skip = receive_next.distance_from(start) as usize;
        if skip >= data.len() {
            return Ok(0);
        }
        let start = start + skip as u32;
        let room = (receive_next + window).distance_from(start) as usize;
        let data = &data[skip..data.len().min(skip + room)];
        if data.is_empty() {
            return Ok(0);
        }
        let end = start + data.len() as u32;
        self.latest = start;
        // Blocks that overlap or touch [start, end) are merged with the new data.
        let first = self
            .blocks
            .iter()
            .position(|block| block.end().after_or_equal(start));
        let Some(first) = first else {
            return self.push_block(self.blocks.len(), start, data);
        };
        let last = self.blocks[first..]
            .iter()
            .rposition(|block| block.start.before_or_equal(end))
            .map(|offset| first + offset);
        let Some(last) = last else {
            return self.push_block(first, start, data);
        };
        let merged_start = start.earliest(self.blocks[first].start);
        let merged_end = end.latest(self.blocks[last].end());
        let mut merged = alloc::vec![0u8; merged_end.distance_from(merged_start) as usize];
        let offset = start.distance_from(merged_start) as usize;
        merged[offset..offset + data.len()].copy_from_slice(data);
        let mut old_bytes = 0;
        for block in self.blocks.drain(first..=last) {
            let offset = block.start.distance_from(merged_start) as usize;
            merged[offset..offset + block.data.len()].copy_from_slice(&block.data);
            old_bytes += block.data.len();
        }
        let added = merged.len() - old_bytes;
        self.bytes += added;
        self.blocks.insert(
            first,
            Block {
                start: merged_start,
                data: merged,
            },
        );
        Ok(added)
    }

    fn push_block(
        &mut self,
        index: usize,
        start: SeqNum,
        data: &[u8],
    ) -> Result<usize, ReassemblyError> {
        if self.blocks.len() >= MAX_BLOCKS {
            return Err(ReassemblyError::TooManyBlocks);
        }
        self.blocks.insert(
            index,
            Block {
                start,
                data: data.to_vec(),
            },
        );
        self.bytes += data.len();
        Ok(data.len())
    }

    /// Drops what in-order data has already delivered: blocks wholly before `receive_next`,
    /// and the front of a block that straddles it. Returns the bytes dropped, which the caller
    /// gives back to the memory budget (they were counted when queued, and the in-order copy
    /// was counted again when it arrived).
    pub(crate) fn discard_delivered(&mut self, receive_next: SeqNum) -> usize {
        let mut dropped = 0;
        while let Some(first) = self.blocks.first_mut() {
            if first.start.after_or_equal(receive_next) {
                break;
            }
            let covered = receive_next.distance_from(first.start) as usize;
            if covered < first.data.len() {
                first.data.drain(..covered);
                first.start = receive_next;
                dropped += covered;
                break;
            }
            dropped += first.data.len();
            self.blocks.remove(0);
        }
        self.bytes -= dropped;
        dropped
    }

    /// Takes the block that continues the stream at `receive_next`, if any. Call
    /// [`discard_delivered`](Self::discard_delivered) first: a block that starts before
    /// `receive_next` is not taken.
    pub(crate) fn take_ready(&mut self, receive_next: SeqNum) -> Option<Vec<u8>> {
        if self.blocks.first()?.start != receive_next {
            return None;
        }
        let block = self.blocks.remove(0);
        self.bytes -= block.data.len();
        Some(block.data)
    }

    /// Up to `limit` SACK blocks (RFC 2018 section 4): the block holding the most recently
    /// received data first, then the others in sequence order.
    pub(crate) fn sack_blocks(&self, limit: usize, out: &mut [(u32, u32); 4]) -> u8 {
        let limit = limit.min(out.len());
        let mut count = 0;
        let recent = self
            .blocks
            .iter()
            .position(|block| self.latest.in_window(block.start, block.data.len() as u32));
        if let Some(index) = recent {
            let block = &self.blocks[index];
            out[0] = (block.start.0, block.end().0);
            count = 1;
        }
        for (index, block) in self.blocks.iter().enumerate() {
            if count >= limit {
                break;
            }
            if Some(index) != recent {
                out[count] = (block.start.0, block.end().0);
                count += 1;
            }
        }
        count as u8
    }

    /// The blocks as (left, right) edges.
    #[cfg(test)]
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        self.blocks.iter().map(|block| (block.start, block.end()))
    }

    pub(crate) fn clear(&mut self) -> usize {
        let bytes = self.bytes;
        self.blocks.clear();
        self.bytes = 0;
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fills_holes_in_order() {
        let mut queue = Reassembly::default();
        let base = SeqNum(u32::MAX - 3); // the stream wraps around zero
        assert_eq!(queue.insert(base, 100, base + 6, b"ghi"), Ok(3));
        assert_eq!(queue.insert(base, 100, base + 2, b"cd"), Ok(2));
        assert_eq!(queue.take_ready(base), None);
        assert_eq!(queue.insert(base, 100, base + 3, b"def"), Ok(2)); // overlaps and joins
        assert_eq!(queue.ranges().count(), 1);
        assert_eq!(queue.discard_delivered(base + 2), 0);
        assert_eq!(queue.take_ready(base + 2), Some(b"cdefghi".to_vec()));
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
        // Data outside the window is clipped.
        assert_eq!(queue.insert(base, 4, base + 2, b"cdefg"), Ok(2));
    }

    proptest! {
        /// Random segments of one stream, delivered in any order with duplicates, reassemble
        /// into exactly the stream.
        #[test]
        fn reassembles_any_order(
            base in any::<u32>(),
            pieces in proptest::collection::vec((0usize..200, 1usize..40), 1..40),
        ) {
            let stream: Vec<u8> = (0..240u32).map(|index| (index * 7 + 3) as u8).collect();
            let base = SeqNum(base);
            let mut queue = Reassembly::default();
            let mut delivered: Vec<u8> = Vec::new();
            let mut receive_next = base;
            let mut all = pieces.clone();
            // Bytes queued minus bytes taken or discarded: what the queue must still hold.
            let mut counted = 0usize;
            // Finally, every byte arrives in order, so the stream must complete.
            all.extend((0..240).step_by(30).map(|start| (start, 30)));
            for (start, length) in all {
                let end = (start + length).min(stream.len());
                let seq = base + start as u32;
                if seq.before_or_equal(receive_next) {
                    // In-order data bypasses the queue, as in the connection.
                    let skip = receive_next.distance_from(seq) as usize;
                    if skip < end - start {
                        delivered.extend_from_slice(&stream[start + skip..end]);
                        receive_next = receive_next + (end - start - skip) as u32;
                    }
                } else {
                    counted += queue.insert(receive_next, 1000, seq, &stream[start..end]).unwrap_or(0);
                }
                counted -= queue.discard_delivered(receive_next);
                while let Some(data) = queue.take_ready(receive_next) {
                    counted -= data.len();
                    receive_next = receive_next + data.len() as u32;
                    delivered.extend_from_slice(&data);
                }
                prop_assert_eq!(counted, queue.bytes());
                let held: usize = queue.ranges().map(|(left, right)| right.distance_from(left) as usize).sum();
                prop_assert_eq!(held, queue.bytes());
                let ranges: Vec<_> = queue.ranges().collect();
                for pair in ranges.windows(2) {
                    prop_assert!(pair[0].1.before(pair[1].0));
                }
            }
            prop_assert_eq!(&delivered[..], &stream[..]);
            prop_assert!(queue.is_empty());
        }
    }
}
