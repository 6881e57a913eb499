//! The first instructions: boot headers (PVH note, Multiboot2), 32-bit entry, identity-mapped
//! page tables, the switch to long mode, and the call into Rust on the boot stack.
//!
//! Both protocols enter `start32` in 32-bit protected mode with paging off: PVH with `ebx` =
//! `hvm_start_info`, Multiboot2 with `eax` = its magic and `ebx` = its info block. Both values
//! are handed to [`crate::boot_main`] unchanged; `boot_info` tells the protocols apart.

use core::arch::global_asm;

/// How much physical memory the boot page tables map, identity, with 2 MiB pages.
pub const IDENTITY_MAPPED_GIB: u64 = 64;

/// Size of the bootstrap processor's stack.
const BOOT_STACK_BYTES: usize = 64 * 1024;

/// GDT selectors shared by the boot GDT, the AP trampoline and every core's own GDT.
pub const KERNEL_CODE_SELECTOR: u16 = 0x08;
pub const KERNEL_DATA_SELECTOR: u16 = 0x10;

/// The switch to long mode (Intel SDM vol. 3, 10.8.5: CR4.PAE, CR3, EFER.LME, then CR0.PG),
/// shared by the bootstrap processor, which runs it in 32-bit protected mode, and the AP
/// trampoline, which runs it straight from real mode. It also clears CR0.CD and CR0.NW: APs
/// leave INIT with caches disabled, and nothing promises a loader left them enabled.
/// Clobbers eax, ecx and edx.
macro_rules! enter_long_mode {
    () => {
        concat!(
            "mov eax, cr4\n",
            "or eax, 0x20\n", // CR4.PAE
            "mov cr4, eax\n",
            "mov eax, offset boot_pml4\n",
            "mov cr3, eax\n",
            "mov ecx, 0xc0000080\n", // IA32_EFER
            "rdmsr\n",
            "or eax, 0x100\n", // EFER.LME
            "wrmsr\n",
            "mov eax, cr0\n",
            "and eax, 0x9fffffff\n", // clear CR0.CD and CR0.NW: caches on
            "or eax, 0x80000001\n",  // CR0.PG | CR0.PE
            "mov cr0, eax",
        )
    };
}
pub(crate) use enter_long_mode;

/// The first step in 64-bit mode, for the bootstrap processor and every AP alike: the kernel
/// data selector into ds, es and ss, the null selector into fs and gs. The `global_asm!` that
/// uses it passes the selector as the operand `data`. Clobbers eax.
macro_rules! load_data_segments {
    () => {
        concat!(
            "mov ax, {data}\n",
            "mov ds, ax\n",
            "mov es, ax\n",
            "mov ss, ax\n",
            "xor eax, eax\n",
            "mov fs, ax\n",
            "mov gs, ax",
        )
    };
}
pub(crate) use load_data_segments;

global_asm!(
    // Multiboot2 header (Multiboot2 spec 3.1.1): magic, architecture 0 (i386 protected mode),
    // length, checksum, then only the end tag. GRUB loads the ELF segments and jumps to e_entry.
    ".section .multiboot2, \"a\"",
    ".p2align 3",
    "multiboot2_header:",
    ".long 0xe85250d6",
    ".long 0",
    ".long multiboot2_header_end - multiboot2_header",
    ".long 0x17adaf2a - (multiboot2_header_end - multiboot2_header)",
    ".word 0, 0",
    ".long 8",
    "multiboot2_header_end:",

    // Xen PVH entry note (xen/include/public/elfnote.h): XEN_ELFNOTE_PHYS32_ENTRY = 18.
    ".section .note.Xen, \"a\", @note",
    ".p2align 2",
    ".long 4",
    ".long 4",
    ".long 18",
    ".asciz \"Xen\"",
    ".long start32",

    // The boot GDT: null, 64-bit kernel code (0x08), kernel data (0x10). The AP trampoline
    // loads it too, so it must stay below 4 GiB (it does: the image is linked at 2 MiB).
    ".section .rodata.boot_gdt, \"a\"",
    ".p2align 4",
    ".global boot_gdt",
    "boot_gdt:",
    ".quad 0",
    ".quad 0x00af9a000000ffff",
    ".quad 0x00cf92000000ffff",
    "boot_gdt_end:",
    ".p2align 3",
    ".global boot_gdt_pointer",
    "boot_gdt_pointer:",
    ".word boot_gdt_end - boot_gdt - 1",
    ".quad boot_gdt",

    // Page tables and the boot stack; .bss is zeroed below before any of it is used.
    ".section .bss.boot_tables, \"aw\", @nobits",
    ".p2align 12",
    ".global boot_pml4",
    "boot_pml4: .skip 4096",
    "boot_pdpt: .skip 4096",
    "boot_page_directories: .skip 4096 * {gib}",
    ".p2align 12",
    ".global boot_stack_guard",
    "boot_stack_guard: .skip 4096",          // unmapped once paging::unmap_guard_page runs
    "boot_stack_bottom: .skip {stack}",
    ".global boot_stack_top",
    "boot_stack_top:",

    ".section .text.start32, \"ax\"",
    ".code32",
    ".global start32",
    "start32:",
    "cli",
    "cld",
    "mov ebp, eax",                        // Multiboot2 magic (or junk under PVH)
    "mov esi, ebx",                        // boot info pointer
    // Zero .bss (the loaders do, but nothing says they must).
    "mov edi, offset __bss_start",
    "mov ecx, offset __bss_end",
    "sub ecx, edi",
    "xor eax, eax",
    "rep stosb",
    // PML4[0] -> PDPT; PDPT[i] -> page directory i; every PD entry maps a 2 MiB page.
    "mov eax, offset boot_pdpt",
    "or eax, 0x3",                         // present | writable
    "mov [boot_pml4], eax",
    "xor ecx, ecx",
    "2:",
    "mov eax, ecx",
    "shl eax, 12",
    "add eax, offset boot_page_directories",
    "or eax, 0x3",
    "mov [boot_pdpt + ecx * 8], eax",
    "inc ecx",
    "cmp ecx, {gib}",
    "jb 2b",
    "xor ecx, ecx",
    "3:",
    "mov eax, ecx",
    "shl eax, 21",
    "or eax, 0x83",                        // present | writable | 2 MiB page
    "mov [boot_page_directories + ecx * 8], eax",
    "mov eax, ecx",
    "shr eax, 11",                         // bits 32.. of the physical address
    "mov [boot_page_directories + ecx * 8 + 4], eax",
    "inc ecx",
    "cmp ecx, {gib} * 512",
    "jb 3b",
    enter_long_mode!(),
    "lgdt [boot_gdt_pointer]",
    // ljmp 0x08:start64 (far jump ptr16:32, encoded by hand).
    ".byte 0xea",
    ".long start64",
    ".word {code}",

    ".code64",
    "start64:",
    load_data_segments!(),
    "lea rsp, [rip + boot_stack_top]",
    // The upper halves of registers are undefined after the switch: zero-extend both.
    "mov edi, ebp",                        // first argument: the Multiboot2 magic
    "mov esi, esi",                        // second argument: the boot info pointer
    "call {boot_main}",
    "4:",
    "hlt",
    "jmp 4b",
    gib = const IDENTITY_MAPPED_GIB,
    stack = const BOOT_STACK_BYTES,
    code = const KERNEL_CODE_SELECTOR,
    data = const KERNEL_DATA_SELECTOR,
    boot_main = sym crate::boot_main,
);
