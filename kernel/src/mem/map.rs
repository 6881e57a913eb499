//! The firmware's memory map, normalised: sorted, without empty or overlapping entries.
//!
//! Firmware maps are messy (qboot hands an unsorted map with a zero-length entry; e820 maps
//! may overlap). [`MemoryMap::new`] turns any list of regions into sorted, disjoint regions
//! where, wherever entries overlap, the most restrictive kind wins, and neighbours of the
//! same kind are merged.

use heapless::Vec;

/// How many regions a map can hold after normalisation.
pub const MAX_REGIONS: usize = 128;

/// What a range of physical memory is, from least to most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegionKind {
    /// Free RAM.
    Usable,
    /// ACPI tables; reusable once they have been read (we never do).
    AcpiReclaimable,
    /// ACPI non-volatile storage: never touch.
    AcpiNvs,
    /// Reserved by firmware, by a device, or by us (the image itself).
    Reserved,
    /// Defective RAM.
    Defective,
}

impl RegionKind {
    /// The kind for an e820 / Multiboot2 / PVH memory type number (ACPI spec, table 15.1).
    pub fn from_e820(kind: u32) -> RegionKind {
        match kind {
            1 => RegionKind::Usable,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Defective,
            _ => RegionKind::Reserved,
        }
    }
}

/// A half-open range of physical addresses `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub kind: RegionKind,
}

impl Region {
    /// A region from a base and a length, as firmware tables give it; saturates at the top.
    pub fn from_base_length(base: u64, length: u64, kind: RegionKind) -> Region {
        Region {
            start: base,
            end: base.saturating_add(length),
            kind,
        }
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a memory map could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// More than [`MAX_REGIONS`] regions (given, or left after normalisation).
    TooManyRegions,
}

/// A normalised memory map: sorted, disjoint, non-empty regions; neighbours differ in kind
/// or are separated by a hole.
#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    regions: Vec<Region, MAX_REGIONS>,
}

impl MemoryMap {
    /// Normalises any list of regions. The list may be longer than [`MAX_REGIONS`] (UEFI
    /// firmware lists hundreds of entries) as long as the normalised map is not: entries are
    /// merged in batches.
    pub fn new(entries: impl IntoIterator<Item = Region>) -> Result<MemoryMap, MapError> {
        let mut map = MemoryMap::default();
        let mut batch: Vec<Region, MAX_REGIONS> = Vec::new();
        for entry in entries.into_iter().filter(|entry| !entry.is_empty()) {
            if let Err(entry) = batch.push(entry) {
                map = map.overlaid_with(&batch)?;
                batch.clear();
                // Cannot fail: the batch was just emptied.
                let _ = batch.push(entry);
            }
        }
        map.overlaid_with(&batch)
    }

    /// This map with `entries` laid over it, normalised: where they overlap, the most
    /// restrictive kind wins, as if all had been given to [`MemoryMap::new`] at once.
    fn overlaid_with(&self, entries: &[Region]) -> Result<MemoryMap, MapError> {
        let mut input: Vec<Region, { 2 * MAX_REGIONS }> = Vec::new();
        for region in self.regions.iter().chain(entries) {
            input.push(*region).map_err(|_| MapError::TooManyRegions)?;
        }
        normalise(&input)
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Usable regions, shrunk inwards to whole `alignment`-sized blocks; empty ones dropped.
    pub fn usable(&self, alignment: u64) -> impl Iterator<Item = Region> + '_ {
        self.regions
            .iter()
            .filter(|region| region.kind == RegionKind::Usable)
            .map(move |region| Region {
                start: align_up(region.start, alignment),
                end: align_down(region.end, alignment),
                kind: RegionKind::Usable,
            })
            .filter(|region| region.start < region.end)
    }

    /// Total usable bytes.
    pub fn usable_bytes(&self) -> u64 {
        self.usable(1).map(|region| region.len()).sum()
    }

    /// Marks `[start, end)` as reserved (e.g. the image itself), whatever it was before.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), MapError> {
        *self = self.overlaid_with(&[Region {
            start,
            end,
            kind: RegionKind::Reserved,
        }])?;
        Ok(())
    }

    /// The lowest usable page-aligned block of `size` bytes that lies in `[floor, limit)`.
    pub fn find_usable_below(&self, floor: u64, limit: u64, size: u64) -> Option<u64> {
        self.usable(4096).find_map(|region| {
            let start = align_up(region.start.max(floor), 4096);
            let end = region.end.min(limit);
            (start.checked_add(size)? <= end).then_some(start)
        })
    }
}

/// Splits the line at every region boundary; each piece takes the most restrictive kind of
/// the entries that cover it; then equal neighbours are merged.
fn normalise(input: &[Region]) -> Result<MemoryMap, MapError> {
    let mut boundaries: Vec<u64, { 4 * MAX_REGIONS }> = Vec::new();
    for region in input {
        // Capacity is 2 per input region, which is at most 2 * MAX_REGIONS long.
        boundaries
            .extend_from_slice(&[region.start, region.end])
            .map_err(|_| MapError::TooManyRegions)?;
    }
    boundaries.sort_unstable();

    let mut map = MemoryMap::default();
    for piece in boundaries.windows(2) {
        let (start, end) = (piece[0], piece[1]);
        if start == end {
            continue;
        }
        let kind = input
            .iter()
            .filter(|region| region.start <= start && end <= region.end)
            .map(|region| region.kind)
            .max();
        let Some(kind) = kind else { continue };
        match map.regions.last_mut() {
            Some(last) if last.end == start && last.kind == kind => last.end = end,
            _ => map
                .regions
                .push(Region { start, end, kind })
                .map_err(|_| MapError::TooManyRegions)?,
        }
    }
    Ok(map)
}

pub(crate) fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment).saturating_mul(alignment)
}

pub(crate) fn align_down(value: u64, alignment: u64) -> u64 {
    value - value % alignment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(start: u64, end: u64) -> Region {
        Region {
            start,
            end,
            kind: RegionKind::Usable,
        }
    }

    fn reserved(start: u64, end: u64) -> Region {
        Region {
            start,
            end,
            kind: RegionKind::Reserved,
        }
    }

    #[test]
    fn qboot_style_map_is_sorted_and_filtered() {
        // An unsorted map with a zero-length entry, as qboot hands it.
        let map = MemoryMap::new([
            usable(0x10_0000, 0x800_0000),
            reserved(0xfeff_c000, 0xff00_0000),
            Region::from_base_length(0, 0, RegionKind::Usable),
            usable(0, 0x9_fc00),
            reserved(0x9_fc00, 0xa_0000),
            reserved(0xf_0000, 0x10_0000),
        ])
        .unwrap();
        assert_eq!(
            map.regions(),
            &[
                usable(0, 0x9_fc00),
                reserved(0x9_fc00, 0xa_0000),
                reserved(0xf_0000, 0x10_0000),
                usable(0x10_0000, 0x800_0000),
                reserved(0xfeff_c000, 0xff00_0000),
            ]
        );
    }

    #[test]
    fn overlaps_resolve_to_the_most_restrictive_kind() {
        let map = MemoryMap::new([
            usable(0, 0x10_000),
            reserved(0x4000, 0x6000),
            Region {
                start: 0x5000,
                end: 0x8000,
                kind: RegionKind::AcpiNvs,
            },
        ])
        .unwrap();
        assert_eq!(
            map.regions(),
            &[
                usable(0, 0x4000),
                reserved(0x4000, 0x6000),
                Region {
                    start: 0x6000,
                    end: 0x8000,
                    kind: RegionKind::AcpiNvs
                },
                usable(0x8000, 0x10_000),
            ]
        );
    }

    #[test]
    fn adjacent_and_duplicate_regions_merge() {
        let map = MemoryMap::new([
            usable(0x2000, 0x3000),
            usable(0, 0x1000),
            usable(0x1000, 0x2000),
            usable(0x1000, 0x2000),
        ])
        .unwrap();
        assert_eq!(map.regions(), &[usable(0, 0x3000)]);
    }

    #[test]
    fn reserve_carves_a_hole() {
        let mut map = MemoryMap::new([usable(0, 0x100_0000)]).unwrap();
        map.reserve(0x20_0000, 0x30_0000).unwrap();
        assert_eq!(
            map.regions(),
            &[
                usable(0, 0x20_0000),
                reserved(0x20_0000, 0x30_0000),
                usable(0x30_0000, 0x100_0000)
            ]
        );
        assert_eq!(map.usable_bytes(), 0x100_0000 - 0x10_0000);
    }

    #[test]
    fn usable_is_page_aligned_inwards() {
        let map = MemoryMap::new([usable(0x10, 0x3010), usable(0x5000, 0x5800)]).unwrap();
        let pages: std::vec::Vec<Region> = map.usable(4096).collect();
        assert_eq!(pages, [usable(0x1000, 0x3000)]);
    }

    #[test]
    fn low_page_search_respects_floor_limit_and_holes() {
        let map = MemoryMap::new([
            usable(0, 0x9_f000),
            reserved(0x8000, 0x9000),
            usable(0x10_0000, 0x200_0000),
        ])
        .unwrap();
        assert_eq!(
            map.find_usable_below(0x1000, 0x10_0000, 0x1000),
            Some(0x1000)
        );
        assert_eq!(
            map.find_usable_below(0x8000, 0x10_0000, 0x1000),
            Some(0x9000)
        );
        assert_eq!(map.find_usable_below(0x9_f000, 0x10_0000, 0x1000), None);
    }

    #[test]
    fn too_many_regions_is_an_error_not_a_panic() {
        let entries = (0..(MAX_REGIONS as u64 + 1))
            .map(|index| usable(index * 0x2000, index * 0x2000 + 0x1000));
        assert_eq!(
            MemoryMap::new(entries).unwrap_err(),
            MapError::TooManyRegions
        );
    }

    #[test]
    fn a_long_firmware_list_is_fine_when_its_normalised_map_is_short() {
        // 300 adjacent 4 KiB entries, as a UEFI map lists boot-services pages one by one,
        // with a reserved hole in the middle of the list.
        let mut entries: std::vec::Vec<Region> = (0..300u64)
            .map(|index| usable(0x10_0000 + index * 0x1000, 0x10_1000 + index * 0x1000))
            .collect();
        entries.insert(150, reserved(0x15_0000, 0x15_2000));
        let map = MemoryMap::new(entries).unwrap();
        assert_eq!(
            map.regions(),
            [
                usable(0x10_0000, 0x15_0000),
                reserved(0x15_0000, 0x15_2000),
                usable(0x15_2000, 0x22_c000),
            ]
        );
    }

    #[test]
    fn e820_kinds() {
        assert_eq!(RegionKind::from_e820(1), RegionKind::Usable);
        assert_eq!(RegionKind::from_e820(2), RegionKind::Reserved);
        assert_eq!(RegionKind::from_e820(3), RegionKind::AcpiReclaimable);
        assert_eq!(RegionKind::from_e820(4), RegionKind::AcpiNvs);
        assert_eq!(RegionKind::from_e820(5), RegionKind::Defective);
        assert_eq!(RegionKind::from_e820(77), RegionKind::Reserved);
    }

    fn any_kind() -> impl proptest::strategy::Strategy<Value = RegionKind> {
        proptest::sample::select(vec![
            RegionKind::Usable,
            RegionKind::AcpiReclaimable,
            RegionKind::AcpiNvs,
            RegionKind::Reserved,
            RegionKind::Defective,
        ])
    }

    proptest::proptest! {
        /// Whatever the firmware hands over, the map is sorted, disjoint, non-empty and
        /// merged, and every address has the most restrictive kind of the entries covering it.
        #[test]
        fn normalised_map_keeps_the_strictest_kind_of_every_address(
            entries in proptest::collection::vec((0u64..64, 0u64..16, any_kind()), 0..24),
            probes in proptest::collection::vec(0u64..80, 16),
        ) {
            let regions: std::vec::Vec<Region> = entries
                .iter()
                .map(|&(start, length, kind)| Region::from_base_length(start * 0x1000, length * 0x1000, kind))
                .collect();
            let map = MemoryMap::new(regions.iter().copied()).unwrap();
            for pair in map.regions().windows(2) {
                proptest::prop_assert!(pair[0].end <= pair[1].start);
                proptest::prop_assert!(pair[0].end < pair[1].start || pair[0].kind != pair[1].kind);
            }
            proptest::prop_assert!(map.regions().iter().all(|region| !region.is_empty()));
            for probe in probes {
                let address = probe * 0x1000 + 0x800;
                let expected = regions
                    .iter()
                    .filter(|region| region.start <= address && address < region.end)
                    .map(|region| region.kind)
                    .max();
                let found = map
                    .regions()
                    .iter()
                    .find(|region| region.start <= address && address < region.end)
                    .map(|region| region.kind);
                proptest::prop_assert_eq!(found, expected);
            }
        }
    }
}
