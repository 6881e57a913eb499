//! The reassembly queue: out-of-order data held until the hole before it is filled (RFC 9293 section 3.10.7.4, "segment text").

use alloc::collections::VecDeque;

use super::seq::SeqNum;

/// Most separate blocks kept; a segment that would need more is dropped (and retransmitted by the peer).
const MAX_BLOCKS: usize = 32;

/// One contiguous run of received bytes. A ring buffer, so that a block grows at either end
/// and gives up its front (`discard_delivered`) by copying only the bytes that move.
struct Block {
    start: SeqNum,
    data: VecDeque<u8>,
}

impl Block {
    fn end(&self) -> SeqNum {
        self.start + self.data.len() as u32
    }

    fn contains(&self, start: SeqNum, end: SeqNum) -> bool {
        self.start.before_or_equal(start) && end.before_or_equal(self.end())
    }
}

/// Why data could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReassemblyError {
    TooManyBlocks,
}

/// Sorted, disjoint, non-adjacent blocks of data beyond RCV.NXT.
///
/// Inserting costs what is new, not what is held (issue 29, item 7: a peer holding a 60 KiB
/// block open and sending tiny duplicates inside it made every packet allocate and copy the
/// whole block): data already held is recognised before anything is touched; new bytes are
/// added at the ends of the largest block they join, and the smaller blocks they bridge are
/// moved into it, so a held byte is moved at most log2(held bytes) times in all.
#[derive(Default)]
pub(crate) struct Reassembly {
    blocks: alloc::vec::Vec<Block>,
    bytes: usize,
    /// Where the most recently queued data starts (the first SACK block must contain it,
    /// RFC 2018 section 4).
    latest: SeqNum,
    /// Bytes written into blocks, new and moved: what the tests hold the cost of an insert to.
    #[cfg(test)]
    bytes_copied: usize,
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
        if first == last && self.blocks[first].contains(start, end) {
            // Nothing new: a duplicate costs no allocation and no copy.
            return Ok(0);
        }
        // The new data covers every gap between the blocks it touches (they are disjoint and
        // each one touches it), so the merged block is: new bytes before the first block,
        // then blocks and the new bytes between them, then new bytes after the last block.
        // Where both hold a byte, the block's copy is kept.
        let new_bytes = |from: SeqNum, to: SeqNum| {
            &data[from.distance_from(start) as usize..to.distance_from(start) as usize]
        };
        let keeper = (first..=last)
            .max_by_key(|&index| self.blocks[index].data.len())
            .unwrap_or(first);
        let keeper_length = self.blocks[keeper].data.len();
        let keeper_end = self.blocks[keeper].end();
        let mut merged = core::mem::take(&mut self.blocks[keeper].data);
        // The keeper's bytes are in `merged` from here on.
        let end_of = |blocks: &[Block], index: usize| {
            if index == keeper {
                keeper_end
            } else {
                blocks[index].end()
            }
        };
        // Bytes before the keeper, prepended nearest first.
        for index in (first..keeper).rev() {
            prepend(
                &mut merged,
                new_bytes(self.blocks[index].end(), self.blocks[index + 1].start),
            );
            let (front, back) = self.blocks[index].data.as_slices();
            prepend(&mut merged, back);
            prepend(&mut merged, front);
        }
        let merged_start = start.earliest(self.blocks[first].start);
        prepend(
            &mut merged,
            new_bytes(merged_start, self.blocks[first].start),
        );
        // Bytes after the keeper, appended in order.
        for index in keeper + 1..=last {
            merged.extend(new_bytes(
                end_of(&self.blocks, index - 1),
                self.blocks[index].start,
            ));
            let (front, back) = self.blocks[index].data.as_slices();
            merged.extend(front);
            merged.extend(back);
        }
        let last_end = end_of(&self.blocks, last);
        if end.after(last_end) {
            merged.extend(new_bytes(last_end, end));
        }
        // The keeper's own bytes stayed where they were; everything else was written.
        self.count_copied(merged.len() - keeper_length);
        let others: usize = self.blocks[first..=last]
            .iter()
            .map(|block| block.data.len())
            .sum();
        let added = merged.len() - keeper_length - others;
        self.blocks.drain(first + 1..=last);
        self.blocks[first] = Block {
            start: merged_start,
            data: merged,
        };
        self.bytes += added;
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
                data: data.iter().copied().collect(),
            },
        );
        self.count_copied(data.len());
        self.bytes += data.len();
        Ok(data.len())
    }

    #[cfg(test)]
    fn count_copied(&mut self, bytes: usize) {
        self.bytes_copied += bytes;
    }

    #[cfg(not(test))]
    fn count_copied(&mut self, _bytes: usize) {}

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

    /// Drops up to `bytes` held bytes from the highest sequence down, as Linux's
    /// `tcp_prune_ofo_queue` does under memory pressure: the data furthest from being
    /// readable goes first (the peer resends it; RFC 2018 section 8 lets a receiver discard
    /// data it has SACKed). Returns the bytes dropped.
    pub(crate) fn drop_from_top(&mut self, bytes: usize) -> usize {
        let mut dropped = 0;
        while dropped < bytes {
            let Some(last) = self.blocks.last_mut() else {
                break;
            };
            let cut = (bytes - dropped).min(last.data.len());
            last.data.truncate(last.data.len() - cut);
            dropped += cut;
            if last.data.is_empty() {
                self.blocks.pop();
            }
        }
        self.bytes -= dropped;
        dropped
    }

    /// Takes the block that continues the stream at `receive_next`, if any. Call
    /// [`discard_delivered`](Self::discard_delivered) first: a block that starts before
    /// `receive_next` is not taken.
    pub(crate) fn take_ready(&mut self, receive_next: SeqNum) -> Option<VecDeque<u8>> {
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

/// Puts `bytes` in front of `data`, moving only as many bytes as it adds: appended, then
/// rotated to the front (`VecDeque::rotate_right` costs O(min(k, len - k))).
fn prepend(data: &mut VecDeque<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    data.extend(bytes);
    data.rotate_right(bytes.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Where block `index` keeps its bytes, and how many it has room for.
    fn storage(queue: &Reassembly, index: usize) -> (*const u8, usize) {
        let data = &queue.blocks[index].data;
        (data.as_slices().0.as_ptr(), data.capacity())
    }

    /// Issue 29, item 7: a peer holding a large out-of-order block and sending tiny
    /// duplicates inside it cost a copy of the whole block per packet. Data already held
    /// must cost nothing, and new data at a block's ends only its own bytes.
    #[test]
    fn data_already_held_costs_no_allocation_and_no_copy() {
        let mut queue = Reassembly::default();
        let base = SeqNum(1000);
        let block: Vec<u8> = (0..60 * 1024u32).map(|index| index as u8).collect();
        assert_eq!(
            queue.insert(base, 1 << 20, base + 100, &block),
            Ok(block.len())
        );
        let before = storage(&queue, 0);
        let copied = queue.bytes_copied;
        for offset in [0usize, 1, 30_000, block.len() - 10] {
            let duplicate = &block[offset..offset + 10];
            assert_eq!(
                queue.insert(base, 1 << 20, base + 100 + offset as u32, duplicate),
                Ok(0)
            );
            assert_eq!(storage(&queue, 0), before, "the block was reallocated");
        }
        assert_eq!(queue.bytes_copied, copied, "held bytes were copied again");
        // New bytes at either end copy those bytes, not the block.
        let tail: Vec<u8> = (0..10u32)
            .map(|index| (block.len() as u32 + index) as u8)
            .collect();
        assert_eq!(
            queue.insert(
                base,
                1 << 20,
                base + 100 + block.len() as u32 - 5,
                &tail[..]
            ),
            Ok(5)
        );
        assert_eq!(queue.insert(base, 1 << 20, base + 90, &[9; 15]), Ok(10));
        assert_eq!(queue.bytes_copied - copied, 5 + 10);
        let ranges: Vec<_> = queue.ranges().collect();
        assert_eq!(ranges, [(base + 90, base + 100 + block.len() as u32 + 5)]);
    }

    /// Bridging blocks moves the smaller ones into the largest, never the largest.
    #[test]
    fn bridging_blocks_moves_the_smaller_ones() {
        let mut queue = Reassembly::default();
        let base = SeqNum(0);
        assert_eq!(queue.insert(base, 1 << 20, base + 10, &[1; 100]), Ok(100));
        assert_eq!(
            queue.insert(base, 1 << 20, base + 120, &[2; 50_000]),
            Ok(50_000)
        );
        assert_eq!(
            queue.insert(base, 1 << 20, base + 50_130, &[3; 100]),
            Ok(100)
        );
        let copied = queue.bytes_copied;
        // One segment fills both gaps: 10 new bytes, 200 moved.
        assert_eq!(
            queue.insert(base, 1 << 20, base + 100, &[0; 50_040]),
            Ok(20)
        );
        assert_eq!(queue.bytes_copied - copied, 220);
        let mut expected = Vec::new();
        expected.extend([1; 100]);
        expected.extend([0; 10]);
        expected.extend([2; 50_000]);
        expected.extend([0; 10]);
        expected.extend([3; 100]);
        assert_eq!(queue.discard_delivered(base + 10), 0);
        let taken: Vec<u8> = queue.take_ready(base + 10).unwrap().into_iter().collect();
        assert_eq!(taken, expected);
    }

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
        assert_eq!(
            queue.take_ready(base + 2),
            Some(b"cdefghi".iter().copied().collect())
        );
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
        // Data outside the window is clipped.
        assert_eq!(queue.insert(base, 4, base + 2, b"cdefg"), Ok(2));
    }

    #[test]
    fn pruning_drops_the_highest_sequences_first() {
        let mut queue = Reassembly::default();
        let base = SeqNum(u32::MAX - 10);
        assert_eq!(queue.insert(base, 1000, base + 10, &[1; 100]), Ok(100));
        assert_eq!(queue.insert(base, 1000, base + 200, &[2; 50]), Ok(50));
        assert_eq!(queue.drop_from_top(70), 70);
        let ranges: Vec<_> = queue.ranges().collect();
        assert_eq!(ranges, [(base + 10, base + 90)]);
        assert_eq!(queue.bytes(), 80);
        assert_eq!(queue.drop_from_top(500), 80);
        assert!(queue.is_empty());
        assert_eq!(queue.bytes(), 0);
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
                    delivered.extend(data);
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

        /// Any inserts, against a byte-by-byte reference: the same bytes held, in the same
        /// blocks, the change reported exactly, and no insert writing more than the bytes it
        /// adds plus those of the smaller blocks it joins.
        #[test]
        fn holds_what_a_byte_map_holds(
            base in any::<u32>(),
            pieces in proptest::collection::vec((1usize..400, 1usize..60), 1..60),
            window in 200u32..500,
        ) {
            let stream: Vec<u8> = (0..500u32).map(|index| (index * 13 + 5) as u8).collect();
            let base = SeqNum(base);
            let mut queue = Reassembly::default();
            // The reference: which offsets from `base` are held.
            let mut held = [false; 500];
            for (start, length) in pieces {
                let end = (start + length).min(stream.len());
                let before: Vec<usize> = queue.blocks.iter().map(|block| block.data.len()).collect();
                let copied = queue.bytes_copied;
                let result = queue.insert(base, window, base + start as u32, &stream[start..end]);
                let inside = start.min(window as usize)..end.min(window as usize);
                let fresh = held[inside.clone()].iter().filter(|&&is_held| !is_held).count();
                match result {
                    Ok(added) => {
                        prop_assert_eq!(added, fresh);
                        held[inside].fill(true);
                        let largest = before.iter().copied().max().unwrap_or(0);
                        let others: usize = before.iter().sum::<usize>() - largest;
                        prop_assert!(queue.bytes_copied - copied <= added + others);
                        if added == 0 {
                            prop_assert_eq!(queue.bytes_copied, copied);
                        }
                    }
                    Err(ReassemblyError::TooManyBlocks) => prop_assert!(fresh > 0),
                }
                // Same blocks as the reference's runs, holding the stream's bytes.
                let mut runs = Vec::new();
                let mut offset = 0;
                while offset < held.len() {
                    if held[offset] {
                        let run_start = offset;
                        while offset < held.len() && held[offset] {
                            offset += 1;
                        }
                        runs.push((run_start, offset));
                    } else {
                        offset += 1;
                    }
                }
                let blocks: Vec<(usize, usize)> = queue
                    .ranges()
                    .map(|(left, right)| (left.distance_from(base) as usize, right.distance_from(base) as usize))
                    .collect();
                prop_assert_eq!(&blocks, &runs);
                for block in &queue.blocks {
                    let from = block.start.distance_from(base) as usize;
                    let bytes: Vec<u8> = block.data.iter().copied().collect();
                    prop_assert_eq!(&bytes[..], &stream[from..from + bytes.len()]);
                }
                prop_assert_eq!(queue.bytes(), held.iter().filter(|&&is_held| is_held).count());
            }
        }
    }
}
