//! The physical frame allocator: hands out page-aligned runs of free RAM, never twice.
//!
//! It keeps the free ranges of the memory map and cuts allocations from them first-fit.
//! Memory handed out at boot (stacks, the heap, DMA pools) lives as long as the image, so
//! there is no free: a run that is given back would only fragment the ranges.

use heapless::Vec;

use super::map::{MAX_REGIONS, MemoryMap, align_up};

/// The size of one physical frame (a 4 KiB page).
pub const FRAME_SIZE: u64 = 4096;

/// A run of physical frames `[start, start + frames * FRAME_SIZE)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRun {
    pub start: u64,
    pub frames: u64,
}

impl FrameRun {
    pub fn bytes(&self) -> u64 {
        self.frames * FRAME_SIZE
    }

    pub fn end(&self) -> u64 {
        self.start + self.bytes()
    }
}

/// Free physical memory, as sorted, disjoint, frame-aligned ranges `[start, end)`.
#[derive(Clone, Debug, Default)]
pub struct FrameAllocator {
    free: Vec<(u64, u64), MAX_REGIONS>,
}

impl FrameAllocator {
    /// Takes every usable frame of `map` at or above `floor` (low memory stays with the
    /// firmware and the AP trampoline).
    pub fn new(map: &MemoryMap, floor: u64) -> FrameAllocator {
        let mut free = Vec::new();
        for region in map.usable(FRAME_SIZE) {
            let start = region.start.max(align_up(floor, FRAME_SIZE));
            if start < region.end {
                // A normalised map has at most MAX_REGIONS regions, so this cannot overflow.
                let _ = free.push((start, region.end));
            }
        }
        FrameAllocator { free }
    }

    /// Allocates `frames` contiguous frames whose start is a multiple of `alignment` bytes
    /// (a power of two, at least one frame). Returns `None` when no free range fits.
    pub fn allocate(&mut self, frames: u64, alignment: u64) -> Option<FrameRun> {
        let alignment = alignment.max(FRAME_SIZE);
        let bytes = frames.checked_mul(FRAME_SIZE)?;
        if frames == 0 || !alignment.is_power_of_two() {
            return None;
        }
        let (index, start) = self
            .free
            .iter()
            .enumerate()
            .find_map(|(index, &(start, end))| {
                let aligned = align_up(start, alignment);
                (aligned.checked_add(bytes)? <= end).then_some((index, aligned))
            })?;
        let (range_start, range_end) = self.free[index];
        let end = start + bytes;
        match (range_start < start, end < range_end) {
            (false, false) => {
                self.free.remove(index);
            }
            (false, true) => self.free[index].0 = end,
            (true, false) => self.free[index].1 = start,
            (true, true) => {
                // Split: the alignment gap stays free. If there is no room to remember it,
                // the gap is dropped (lost, never handed out twice).
                self.free[index].1 = start;
                let _ = self.free.insert(index + 1, (end, range_end));
            }
        }
        Some(FrameRun { start, frames })
    }

    /// Free bytes left.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|(start, end)| end - start).sum()
    }

    /// The size in bytes of the largest free range.
    pub fn largest_free_range(&self) -> u64 {
        self.free
            .iter()
            .map(|(start, end)| end - start)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::map::{Region, RegionKind};

    fn map(regions: &[(u64, u64)]) -> MemoryMap {
        MemoryMap::new(regions.iter().map(|&(start, end)| Region {
            start,
            end,
            kind: RegionKind::Usable,
        }))
        .unwrap()
    }

    #[test]
    fn floor_and_alignment_trim_the_free_ranges() {
        let allocator =
            FrameAllocator::new(&map(&[(0, 0xa_0000), (0x10_0800, 0x20_0000)]), 0x10_0000);
        assert_eq!(allocator.free_bytes(), 0x20_0000 - 0x10_1000);
    }

    #[test]
    fn allocations_never_overlap_and_stay_in_free_memory() {
        let memory = [(0x10_0000, 0x18_0000), (0x20_0000, 0x40_0000)];
        let mut allocator = FrameAllocator::new(&map(&memory), 0);
        let mut runs: std::vec::Vec<FrameRun> = std::vec::Vec::new();
        for (frames, alignment) in [
            (1, 0),
            (3, 0x4000),
            (16, 0x1_0000),
            (100, 0),
            (1, 0x10_0000),
            (7, 0),
        ] {
            let run = allocator.allocate(frames, alignment).unwrap();
            assert_eq!(run.frames, frames);
            assert_eq!(run.start % alignment.max(FRAME_SIZE), 0);
            assert!(
                memory
                    .iter()
                    .any(|&(start, end)| start <= run.start && run.end() <= end)
            );
            for other in &runs {
                assert!(
                    run.end() <= other.start || other.end() <= run.start,
                    "{run:?} overlaps {other:?}"
                );
            }
            runs.push(run);
        }
        let used: u64 = runs.iter().map(FrameRun::bytes).sum();
        assert!(allocator.free_bytes() <= 0x8_0000 + 0x20_0000 - used);
    }

    #[test]
    fn alignment_gap_stays_free() {
        let mut allocator = FrameAllocator::new(&map(&[(0x1000, 0x10_0000)]), 0);
        let run = allocator.allocate(1, 0x1_0000).unwrap();
        assert_eq!(run.start, 0x1_0000);
        // The gap below the aligned run is still there for small allocations.
        assert_eq!(allocator.allocate(15, 0).unwrap().start, 0x1000);
        assert_eq!(allocator.free_bytes(), 0x10_0000 - 0x1000 - 16 * FRAME_SIZE);
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut allocator = FrameAllocator::new(&map(&[(0, 0x4000)]), 0);
        assert_eq!(allocator.allocate(5, 0), None);
        assert!(allocator.allocate(4, 0).is_some());
        assert_eq!(allocator.allocate(1, 0), None);
        assert_eq!(allocator.free_bytes(), 0);
    }

    #[test]
    fn bad_requests_return_none() {
        let mut allocator = FrameAllocator::new(&map(&[(0, 0x10_0000)]), 0);
        assert_eq!(allocator.allocate(0, 0), None);
        assert_eq!(allocator.allocate(1, 0x3000), None);
        assert_eq!(allocator.allocate(u64::MAX, 0), None);
    }

    #[test]
    fn largest_free_range() {
        let allocator = FrameAllocator::new(&map(&[(0, 0x2000), (0x10_0000, 0x30_0000)]), 0);
        assert_eq!(allocator.largest_free_range(), 0x20_0000);
    }

    proptest::proptest! {
        /// Random allocations from a random map never overlap, stay in usable memory above
        /// the floor, honour their alignment, and account for every byte.
        #[test]
        fn random_allocations_are_disjoint_aligned_and_accounted(
            holes in proptest::collection::vec((0u64..512, 1u64..64), 0..8),
            requests in proptest::collection::vec((1u64..40, 0u32..6), 1..40),
        ) {
            let mut map = MemoryMap::new([Region {
                start: 0,
                end: 0x200_0000,
                kind: RegionKind::Usable,
            }])
            .unwrap();
            for (start, length) in holes {
                map.reserve(start * 0x1_0000, (start + length) * 0x1_0000).unwrap();
            }
            let floor = 0x10_0000;
            let mut allocator = FrameAllocator::new(&map, floor);
            let mut given = std::vec::Vec::<FrameRun>::new();
            let initial = allocator.free_bytes();
            for (frames, alignment_shift) in requests {
                let alignment = FRAME_SIZE << alignment_shift;
                let before = allocator.free_bytes();
                let Some(run) = allocator.allocate(frames, alignment) else { continue };
                proptest::prop_assert_eq!(run.start % alignment, 0);
                proptest::prop_assert!(run.start >= floor);
                proptest::prop_assert!(map.usable(FRAME_SIZE).any(|region| region.start <= run.start && run.end() <= region.end));
                for other in &given {
                    proptest::prop_assert!(run.end() <= other.start || other.end() <= run.start);
                }
                // The run leaves the free pool; an alignment gap may be dropped, never reused.
                proptest::prop_assert!(allocator.free_bytes() <= before - run.bytes());
                given.push(run);
            }
            let used: u64 = given.iter().map(FrameRun::bytes).sum();
            proptest::prop_assert!(allocator.free_bytes() + used <= initial);
        }
    }
}
