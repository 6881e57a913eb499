//! What the loader tells us: memory map, command line, ACPI RSDP and the first boot module,
//! read from either the PVH `hvm_start_info` or the Multiboot2 information block. All but the
//! module are copied out at once so that the memory they sit in can be reused; the module's
//! memory is reserved in the memory map instead, so that nothing is allocated over it before
//! it is read.

use core::ptr;

use unisock_kernel::mem::{MapError, MemoryMap, Region, RegionKind};

/// `eax` on entry from a Multiboot2 loader (Multiboot2 spec 3.3).
const MULTIBOOT2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
/// `hvm_start_info.magic` (xen/include/public/arch-x86/hvm/start_info.h).
const PVH_START_INFO_MAGIC: u32 = 0x336e_c578;

/// Multiboot2 tag types (Multiboot2 spec 3.6).
const TAG_END: u32 = 0;
const TAG_COMMAND_LINE: u32 = 1;
const TAG_MODULE: u32 = 3;
const TAG_MEMORY_MAP: u32 = 6;
const TAG_ACPI_OLD_RSDP: u32 = 14;
const TAG_ACPI_NEW_RSDP: u32 = 15;

/// The longest command line kept; longer lines are cut (and the cut is reported).
const COMMAND_LINE_CAPACITY: usize = 1024;
/// An RSDP is 20 bytes (ACPI 1.0) or 36 bytes (ACPI 2.0+).
const RSDP_CAPACITY: usize = 36;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pvh,
    Multiboot2,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pvh => "pvh",
            Protocol::Multiboot2 => "multiboot2",
        }
    }
}

/// Why the boot information could not be read.
// The fields are read through `Debug`, in the panic message.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug)]
pub enum BootInfoError {
    /// Neither the Multiboot2 magic in `eax` nor the PVH magic at `ebx`.
    UnknownProtocol {
        eax: u32,
        ebx: u32,
    },
    /// The loader gave no memory map.
    NoMemoryMap,
    Map(MapError),
    /// A boot module whose end lies before its start or past the top of memory.
    BadModule {
        start: u64,
        end: u64,
    },
}

/// Where the loader put the first boot module (QEMU's `-initrd`, GRUB's `module2`): the
/// physical range `[start, end)`, reserved in [`BootInfo::memory_map`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootModule {
    pub start: u64,
    pub end: u64,
}

impl BootModule {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// The boot information, owned.
pub struct BootInfo {
    pub protocol: Protocol,
    pub memory_map: MemoryMap,
    command_line: [u8; COMMAND_LINE_CAPACITY],
    command_line_length: usize,
    pub command_line_truncated: bool,
    rsdp: Option<[u8; RSDP_CAPACITY]>,
    /// Where the loader placed the RSDP, when it gave an address rather than a copy.
    pub rsdp_address: Option<u64>,
    /// The first boot module, if the loader gave any.
    pub boot_module: Option<BootModule>,
    /// How many boot modules the loader gave (only the first is used).
    pub boot_module_count: u32,
}

impl BootInfo {
    /// The command line; bytes that are not UTF-8 end it.
    pub fn command_line(&self) -> &str {
        let bytes = &self.command_line[..self.command_line_length];
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or(""),
        }
    }

    /// A copy of the RSDP, when the loader gave one (Multiboot2).
    pub fn rsdp_copy(&self) -> Option<&[u8; RSDP_CAPACITY]> {
        self.rsdp.as_ref()
    }

    /// Nothing read yet.
    fn empty(protocol: Protocol) -> BootInfo {
        BootInfo {
            protocol,
            memory_map: MemoryMap::default(),
            command_line: [0; COMMAND_LINE_CAPACITY],
            command_line_length: 0,
            command_line_truncated: false,
            rsdp: None,
            rsdp_address: None,
            boot_module: None,
            boot_module_count: 0,
        }
    }

    /// Reads the boot information handed over in `eax` and `ebx`.
    ///
    /// # Safety
    /// `ebx` must be what the loader passed, and the memory it points to must be intact.
    pub unsafe fn read(eax: u32, ebx: u32) -> Result<BootInfo, BootInfoError> {
        let mut info = BootInfo::empty(Protocol::Pvh);
        if eax == MULTIBOOT2_BOOTLOADER_MAGIC {
            info.protocol = Protocol::Multiboot2;
            // SAFETY: the caller guarantees `ebx` is the Multiboot2 information block.
            unsafe { info.read_multiboot2(u64::from(ebx))? };
        // SAFETY: under PVH `ebx` points to `hvm_start_info`; otherwise we only read 4 bytes
        // of identity-mapped low memory, which is harmless.
        } else if unsafe { read::<u32>(u64::from(ebx)) } == PVH_START_INFO_MAGIC {
            // SAFETY: the magic matched: `ebx` is `hvm_start_info`.
            unsafe { info.read_pvh(u64::from(ebx))? };
        } else {
            return Err(BootInfoError::UnknownProtocol { eax, ebx });
        }
        info.reserve_boot_module()?;
        Ok(info)
    }

    /// Keeps the frame allocator, the heap and the AP trampoline off the boot module until
    /// it has been copied out. The reservation makes it device memory to `device_memory`
    /// too, which is only slower, and by then the module has been read.
    fn reserve_boot_module(&mut self) -> Result<(), BootInfoError> {
        if let Some(module) = self.boot_module.filter(|module| module.len() > 0) {
            self.memory_map
                .reserve(module.start, module.end)
                .map_err(BootInfoError::Map)?;
        }
        Ok(())
    }

    /// Records a module the loader describes as `[start, end)`; only the first one counts.
    fn add_boot_module(&mut self, start: u64, end: u64) -> Result<(), BootInfoError> {
        if end < start {
            return Err(BootInfoError::BadModule { start, end });
        }
        if self.boot_module.is_none() {
            self.boot_module = Some(BootModule { start, end });
        }
        self.boot_module_count += 1;
        Ok(())
    }

    /// `struct hvm_start_info`: magic@0 version@4 flags@8 nr_modules@12 modlist@16
    /// cmdline@24 rsdp@32 memmap@40 memmap_entries@48; memory map entries are
    /// `{ u64 addr; u64 size; u32 type; u32 reserved }`; module list entries
    /// (`hvm_modlist_entry`) are `{ u64 paddr; u64 size; u64 cmdline_paddr; u64 reserved }`.
    ///
    /// # Safety
    /// `start_info` must point to a valid `hvm_start_info`.
    unsafe fn read_pvh(&mut self, start_info: u64) -> Result<(), BootInfoError> {
        // SAFETY: `start_info` is a valid hvm_start_info (the caller's promise); the
        // addresses in it are physical addresses inside the identity map.
        unsafe {
            let version = read::<u32>(start_info + 4);
            let module_count = read::<u32>(start_info + 12);
            let module_list = read::<u64>(start_info + 16);
            if module_count > 0 && module_list != 0 {
                let start = read::<u64>(module_list);
                let size = read::<u64>(module_list + 8);
                let end = start.checked_add(size).ok_or(BootInfoError::BadModule {
                    start,
                    end: u64::MAX,
                })?;
                self.add_boot_module(start, end)?;
                self.boot_module_count = module_count;
            }
            let command_line = read::<u64>(start_info + 24);
            let rsdp = read::<u64>(start_info + 32);
            if command_line != 0 {
                self.copy_command_line(command_line, usize::MAX);
            }
            self.rsdp_address = (rsdp != 0).then_some(rsdp);
            if version < 1 {
                return Err(BootInfoError::NoMemoryMap);
            }
            let memory_map = read::<u64>(start_info + 40);
            let entries = read::<u32>(start_info + 48);
            let regions = (0..u64::from(entries)).map(|index| {
                let entry = memory_map + index * 24;
                Region::from_base_length(
                    read::<u64>(entry),
                    read::<u64>(entry + 8),
                    RegionKind::from_e820(read::<u32>(entry + 16)),
                )
            });
            self.memory_map = MemoryMap::new(regions).map_err(BootInfoError::Map)?;
        }
        Ok(())
    }

    /// Multiboot2 information: `u32 total_size; u32 reserved;` then 8-aligned tags
    /// `{ u32 type; u32 size; ... }` up to an end tag. Reads stay inside `total_size`.
    ///
    /// # Safety
    /// `information` must point to a valid Multiboot2 information block.
    unsafe fn read_multiboot2(&mut self, information: u64) -> Result<(), BootInfoError> {
        let mut found_memory_map = false;
        // SAFETY: `information` is a valid Multiboot2 information block (the caller's
        // promise); every read below stays inside `total_size`.
        unsafe {
            let total_size = u64::from(read::<u32>(information));
            let end = information + total_size;
            let mut tag = information + 8;
            while tag + 8 <= end {
                let kind = read::<u32>(tag);
                let size = u64::from(read::<u32>(tag + 4));
                // A tag holds at least its own header and lies inside the block (spec 3.6.1).
                // A block that breaks this is corrupt: stop, rather than loop for ever on a
                // zero size or read past the block.
                if size < 8 || tag + size > end {
                    break;
                }
                match kind {
                    TAG_END => break,
                    TAG_COMMAND_LINE => {
                        self.copy_command_line(tag + 8, size.saturating_sub(8) as usize)
                    }
                    // `{ u32 mod_start; u32 mod_end; u8 string[] }` (spec 3.6.6); GRUB sets
                    // mod_end to the first byte after the module.
                    TAG_MODULE if size >= 16 => {
                        let start = u64::from(read::<u32>(tag + 8));
                        let end = u64::from(read::<u32>(tag + 12));
                        self.add_boot_module(start, end)?;
                    }
                    TAG_MEMORY_MAP if size >= 16 => {
                        let entry_size = u64::from(read::<u32>(tag + 8)).max(24);
                        let count = size.saturating_sub(16) / entry_size;
                        let regions = (0..count).map(|index| {
                            let entry = tag + 16 + index * entry_size;
                            Region::from_base_length(
                                read::<u64>(entry),
                                read::<u64>(entry + 8),
                                RegionKind::from_e820(read::<u32>(entry + 16)),
                            )
                        });
                        self.memory_map = MemoryMap::new(regions).map_err(BootInfoError::Map)?;
                        found_memory_map = true;
                    }
                    // Prefer the ACPI 2.0 RSDP (it has the XSDT) when both are present.
                    TAG_ACPI_OLD_RSDP | TAG_ACPI_NEW_RSDP
                        if self.rsdp.is_none() || kind == TAG_ACPI_NEW_RSDP =>
                    {
                        let mut copy = [0u8; RSDP_CAPACITY];
                        let length = (size.saturating_sub(8) as usize).min(RSDP_CAPACITY);
                        ptr::copy_nonoverlapping((tag + 8) as *const u8, copy.as_mut_ptr(), length);
                        self.rsdp = Some(copy);
                    }
                    _ => {}
                }
                tag += (size + 7) & !7;
            }
        }
        if found_memory_map {
            Ok(())
        } else {
            Err(BootInfoError::NoMemoryMap)
        }
    }

    /// Copies a NUL-terminated string of at most `limit` bytes.
    ///
    /// # Safety
    /// `address` must point to a NUL-terminated string, or to at least `limit` bytes.
    unsafe fn copy_command_line(&mut self, address: u64, limit: usize) {
        let mut length = 0;
        loop {
            // SAFETY: the loader's string is NUL-terminated (and within `limit` for Multiboot2).
            let byte = unsafe { read::<u8>(address + length as u64) };
            if byte == 0 || length == limit {
                break;
            }
            if length == COMMAND_LINE_CAPACITY {
                self.command_line_truncated = true;
                break;
            }
            self.command_line[length] = byte;
            length += 1;
        }
        self.command_line_length = length;
    }
}

/// Reads a value from an identity-mapped physical address.
///
/// # Safety
/// The address must be mapped and hold a `T`.
unsafe fn read<T: Copy>(address: u64) -> T {
    // SAFETY: guaranteed by the caller; firmware structures need not be aligned.
    unsafe { ptr::read_unaligned(address as *const T) }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    /// A Multiboot2 information block holding `tags` (type, payload), 8-aligned as a loader
    /// lays it out, with an end tag unless `end` is false.
    fn multiboot2_block(tags: &[(u32, Vec<u8>)], end: bool) -> Vec<u64> {
        let mut bytes = std::vec![0u8; 8];
        for (kind, payload) in tags.iter().chain(end.then_some(&(TAG_END, Vec::new()))) {
            bytes.extend_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(payload);
            bytes.resize(bytes.len().next_multiple_of(8), 0);
        }
        let total = bytes.len() as u32;
        bytes[..4].copy_from_slice(&total.to_le_bytes());
        bytes
            .chunks(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap()))
            .collect()
    }

    fn memory_map_tag(regions: &[(u64, u64, u32)]) -> (u32, Vec<u8>) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&24u32.to_le_bytes());
        payload.extend_from_slice(&0u32.to_le_bytes());
        for (base, length, kind) in regions {
            payload.extend_from_slice(&base.to_le_bytes());
            payload.extend_from_slice(&length.to_le_bytes());
            payload.extend_from_slice(&kind.to_le_bytes());
            payload.extend_from_slice(&0u32.to_le_bytes());
        }
        (TAG_MEMORY_MAP, payload)
    }

    #[test]
    fn multiboot2_memory_map_and_command_line_are_copied() {
        let block = multiboot2_block(
            &[
                (TAG_COMMAND_LINE, b"log=debug\0".to_vec()),
                memory_map_tag(&[(0x10_0000, 0x100_0000, 1), (0, 0x9_fc00, 1)]),
            ],
            true,
        );
        let mut info = BootInfo::empty(Protocol::Multiboot2);
        // SAFETY: `block` is a well-formed information block that outlives the call.
        unsafe { info.read_multiboot2(block.as_ptr() as u64) }.unwrap();
        assert_eq!(info.command_line(), "log=debug");
        assert_eq!(info.memory_map.regions().len(), 2);
        assert_eq!(info.memory_map.usable_bytes(), 0x100_0000 + 0x9_fc00);
    }

    #[test]
    fn a_multiboot2_tag_too_short_for_its_header_ends_the_walk() {
        // A zero-sized tag before the memory map: walking on would never advance.
        let mut block = multiboot2_block(
            &[
                (42, Vec::new()),
                memory_map_tag(&[(0x10_0000, 0x100_0000, 1)]),
            ],
            true,
        );
        block[1] = 42; // type 42, size 0
        let mut info = BootInfo::empty(Protocol::Multiboot2);
        // SAFETY: every read stays inside `block` (the walk stops at the bad tag).
        let result = unsafe { info.read_multiboot2(block.as_ptr() as u64) };
        assert!(matches!(result, Err(BootInfoError::NoMemoryMap)));
    }

    #[test]
    fn a_multiboot2_tag_that_runs_past_the_block_is_not_read() {
        // A memory map tag whose size claims far more entries than the block holds.
        let mut block = multiboot2_block(&[memory_map_tag(&[(0x10_0000, 0x100_0000, 1)])], false);
        block[1] = u64::from(TAG_MEMORY_MAP) | (0x10_0000 << 32); // size 1 MiB
        let mut info = BootInfo::empty(Protocol::Multiboot2);
        // SAFETY: every read stays inside `block` (the walk stops at the bad tag).
        let result = unsafe { info.read_multiboot2(block.as_ptr() as u64) };
        assert!(matches!(result, Err(BootInfoError::NoMemoryMap)));
    }

    fn module_tag(start: u32, end: u32, string: &[u8]) -> (u32, Vec<u8>) {
        let mut payload = Vec::new();
        payload.extend_from_slice(&start.to_le_bytes());
        payload.extend_from_slice(&end.to_le_bytes());
        payload.extend_from_slice(string);
        (TAG_MODULE, payload)
    }

    #[test]
    fn the_first_multiboot2_module_is_kept_and_reserved() {
        let block = multiboot2_block(
            &[
                // GRUB lists modules in the order of the module2 lines, before or after the
                // memory map; the reservation must cover the first whichever comes first.
                module_tag(0x20_0000, 0x20_0123, b"/boot/unisock.toml\0"),
                memory_map_tag(&[(0x10_0000, 0x100_0000, 1)]),
                module_tag(0x30_0000, 0x30_1000, b"\0"),
            ],
            true,
        );
        let mut info = BootInfo::empty(Protocol::Multiboot2);
        // SAFETY: `block` is a well-formed information block that outlives the call.
        unsafe { info.read_multiboot2(block.as_ptr() as u64) }.unwrap();
        info.reserve_boot_module().unwrap();
        assert_eq!(
            info.boot_module,
            Some(BootModule {
                start: 0x20_0000,
                end: 0x20_0123
            })
        );
        assert_eq!(info.boot_module.unwrap().len(), 0x123);
        assert_eq!(info.boot_module_count, 2);
        assert_eq!(info.memory_map.usable_bytes(), 0x100_0000 - 0x123);
        let reserved = info
            .memory_map
            .regions()
            .iter()
            .find(|region| region.kind == RegionKind::Reserved)
            .copied();
        assert_eq!(
            reserved.map(|region| (region.start, region.end)),
            Some((0x20_0000, 0x20_0123))
        );
    }

    #[test]
    fn a_multiboot2_module_that_ends_before_it_starts_is_an_error() {
        let block = multiboot2_block(
            &[
                memory_map_tag(&[(0x10_0000, 0x100_0000, 1)]),
                module_tag(0x20_0000, 0x1f_0000, b"\0"),
            ],
            true,
        );
        let mut info = BootInfo::empty(Protocol::Multiboot2);
        // SAFETY: `block` is a well-formed information block that outlives the call.
        let result = unsafe { info.read_multiboot2(block.as_ptr() as u64) };
        assert!(matches!(
            result,
            Err(BootInfoError::BadModule {
                start: 0x20_0000,
                end: 0x1f_0000
            })
        ));
    }

    #[test]
    fn without_modules_nothing_is_reserved() {
        let block = multiboot2_block(&[memory_map_tag(&[(0x10_0000, 0x100_0000, 1)])], true);
        let mut info = BootInfo::empty(Protocol::Multiboot2);
        // SAFETY: `block` is a well-formed information block that outlives the call.
        unsafe { info.read_multiboot2(block.as_ptr() as u64) }.unwrap();
        info.reserve_boot_module().unwrap();
        assert_eq!(info.boot_module, None);
        assert_eq!(info.boot_module_count, 0);
        assert_eq!(info.memory_map.usable_bytes(), 0x100_0000);
    }

    /// An `hvm_start_info` (version 1) with one usable region and `modules` as its module
    /// list (paddr, size); the returned buffers must outlive every read of the first.
    fn pvh_start_info(modules: &[(u64, u64)]) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let memory_map = std::vec![0x10_0000, 0x100_0000, 1];
        let module_list: Vec<u64> = modules
            .iter()
            .flat_map(|&(address, size)| [address, size, 0, 0])
            .collect();
        let mut start_info = std::vec![0u64; 7];
        start_info[0] = u64::from(PVH_START_INFO_MAGIC) | (1 << 32);
        start_info[1] = (modules.len() as u64) << 32;
        start_info[2] = if modules.is_empty() {
            0
        } else {
            module_list.as_ptr() as u64
        };
        start_info[5] = memory_map.as_ptr() as u64;
        start_info[6] = 1;
        (start_info, memory_map, module_list)
    }

    #[test]
    fn the_pvh_module_list_gives_the_first_module() {
        let (start_info, _memory_map, _modules) =
            pvh_start_info(&[(0x80_0000, 4096 + 17), (0x90_0000, 64)]);
        let mut info = BootInfo::empty(Protocol::Pvh);
        // SAFETY: `start_info` and the buffers it points to live until the end of the test.
        unsafe { info.read_pvh(start_info.as_ptr() as u64) }.unwrap();
        info.reserve_boot_module().unwrap();
        assert_eq!(
            info.boot_module,
            Some(BootModule {
                start: 0x80_0000,
                end: 0x80_1011
            })
        );
        assert_eq!(info.boot_module_count, 2);
        assert_eq!(info.memory_map.usable_bytes(), 0x100_0000 - 4096 - 17);
    }

    #[test]
    fn a_pvh_start_info_without_modules_has_none() {
        let (start_info, _memory_map, _modules) = pvh_start_info(&[]);
        let mut info = BootInfo::empty(Protocol::Pvh);
        // SAFETY: `start_info` and the buffers it points to live until the end of the test.
        unsafe { info.read_pvh(start_info.as_ptr() as u64) }.unwrap();
        assert_eq!(info.boot_module, None);
        assert_eq!(info.memory_map.usable_bytes(), 0x100_0000);
    }

    #[test]
    fn a_pvh_module_that_wraps_around_memory_is_an_error() {
        let (start_info, _memory_map, _modules) = pvh_start_info(&[(u64::MAX - 10, 100)]);
        let mut info = BootInfo::empty(Protocol::Pvh);
        // SAFETY: `start_info` and the buffers it points to live until the end of the test.
        let result = unsafe { info.read_pvh(start_info.as_ptr() as u64) };
        assert!(matches!(result, Err(BootInfoError::BadModule { .. })));
    }
}
