//! Which physical addresses are device memory: everything the firmware's memory map does not
//! call RAM. The boot identity map makes them uncached (`paging::make_uncached`).
//!
//! Why: the identity map is write-back everywhere, which is right for MMIO only if the
//! firmware's MTRRs mark the PCI hole, the local APIC and the I/O APIC uncached (Intel SDM
//! vol. 3, 13.5.2.2: the effective type of a write-back PAT entry is the MTRR's). Firmware
//! usually does, but nothing promises it, and a write-back BAR lets the CPU cache, merge and
//! prefetch register accesses. PCD|PWT (PAT entry 3, UC) is uncached whatever the MTRRs say.
//! The complement of RAM covers every BAR firmware or `network.rs` can assign (the 32-bit
//! PCI hole, 64-bit windows inside the identity map), the APICs and the legacy VGA window
//! without knowing any of them. Reserved ranges count as device memory too: some are firmware
//! RAM, which the image never touches except to read ACPI tables, and reading those uncached
//! is only slower.

use core::ops::Range;

use unisock_kernel::mem::{MemoryMap, RegionKind};

/// The granularity of the split identity map.
const PAGE_BYTES: u64 = 4096;

/// Calls `visit` with each range of `[0, limit)` that holds no RAM, in order, page-aligned
/// inwards so that no RAM page is ever in one (a page that holds both stays write-back).
pub fn for_each_device_range(map: &MemoryMap, limit: u64, mut visit: impl FnMut(Range<u64>)) {
    let mut next = 0;
    for region in map.regions().iter().filter(|region| is_ram(region.kind)) {
        let ram_start = region.start / PAGE_BYTES * PAGE_BYTES;
        let ram_end = region.end.next_multiple_of(PAGE_BYTES);
        let device_end = ram_start.min(limit);
        if next < device_end {
            visit(next..device_end);
        }
        next = next.max(ram_end);
    }
    if next < limit {
        visit(next..limit);
    }
}

/// RAM, whatever it holds: free, ACPI tables and storage, or defective (never used, but not a
/// device either).
fn is_ram(kind: RegionKind) -> bool {
    match kind {
        RegionKind::Usable
        | RegionKind::AcpiReclaimable
        | RegionKind::AcpiNvs
        | RegionKind::Defective => true,
        RegionKind::Reserved => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;
    use unisock_kernel::mem::Region;

    /// The device ranges as (start, end) pairs.
    fn ranges(regions: &[(u64, u64, RegionKind)], limit: u64) -> Vec<(u64, u64)> {
        let map = MemoryMap::new(
            regions
                .iter()
                .map(|&(start, end, kind)| Region::from_base_length(start, end - start, kind)),
        )
        .unwrap();
        let mut found = Vec::new();
        for_each_device_range(&map, limit, |range| found.push((range.start, range.end)));
        found
    }

    /// The map qboot hands a q35 guest with 3 GiB: the PCI hole (with MMCONFIG, the BARs, the
    /// I/O APIC and the local APIC) between the two RAM ranges, the VGA window and the BIOS.
    #[test]
    fn q35_map_leaves_ram_cached_and_the_holes_to_devices() {
        let map = [
            (0, 0x9_fc00, RegionKind::Usable),
            (0x9_fc00, 0xa_0000, RegionKind::Reserved),
            (0xd_0000, 0xf_0000, RegionKind::AcpiNvs),
            (0xf_0000, 0x10_0000, RegionKind::Reserved),
            (0x10_0000, 0x8000_0000, RegionKind::Usable),
            (0xb000_0000, 0xc000_0000, RegionKind::Reserved),
            (0x1_0000_0000, 0x1_4000_0000, RegionKind::Usable),
            (0xfd_0000_0000, 0x100_0000_0000, RegionKind::Reserved),
        ];
        assert_eq!(
            ranges(&map, 64 << 30),
            [
                // The page holding the end of low RAM and the EBDA stays write-back.
                (0xa_0000, 0xd_0000),
                (0xf_0000, 0x10_0000),
                (0x8000_0000, 0x1_0000_0000),
                (0x1_4000_0000, 64 << 30),
            ]
        );
        assert!(
            ranges(&map, 64 << 30)
                .iter()
                .any(|&(start, end)| start <= 0xfec0_0000 && 0xfee0_1000 <= end)
        );
    }

    #[test]
    fn ram_beyond_the_limit_is_cut_off() {
        let map = [
            (0, 0x1000_0000, RegionKind::Usable),
            (0x2000_0000, 0x3000_0000, RegionKind::Usable),
        ];
        assert_eq!(ranges(&map, 0x1800_0000), [(0x1000_0000, 0x1800_0000)]);
        assert_eq!(ranges(&map, 0x1000_0000), []);
    }

    #[test]
    fn unaligned_ram_keeps_its_partial_pages() {
        let map = [
            (0x1000, 0x2800, RegionKind::Usable),
            (0x5100, 0x6000, RegionKind::AcpiReclaimable),
        ];
        assert_eq!(
            ranges(&map, 0x8000),
            [(0, 0x1000), (0x3000, 0x5000), (0x6000, 0x8000)]
        );
    }
}
