//! The PVH entry: ELF note, 32-bit → 64-bit trampoline, boot stack, and
//! the identity-mapped page tables the trampoline builds.
//!
//! QEMU's `-kernel` (and Xen) start a PVH image in 32-bit protected mode
//! with flat segments and paging off, `%ebx` = physical address of
//! `hvm_start_info`. The trampoline zeroes `.bss` (it holds the page
//! tables and the stack), identity maps the first 4 GiB with 2 MiB pages
//! (RAM plus the PCI hole with the LAPIC, IOAPIC and BARs), enables PAE and
//! long mode, loads a three-entry GDT, and jumps to 64-bit code, which sets
//! a stack and calls `rumpuser_pvh_kmain(start_info: u64) -> !` with the
//! start-info address: the boot sequence of the platform crate linked into
//! the image (`rumpuser-baremetal` or `rumpuser-xen`), which defines it
//! with `#[no_mangle]`. Everything later (UC marking of device ranges, RAM above 4 GiB,
//! the unmapped NULL page, guard pages) is done in Rust by `paging`.

use core::arch::global_asm;

/// Size of the boot stack, which becomes the stack of the green "main" thread.
pub const BOOT_STACK_SIZE: usize = 512 * 1024;

global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 8                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4
    .popsection

    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
    .globl rumpuser_bm_boot_pml4
rumpuser_bm_boot_pml4:
    .skip 4096
    .globl rumpuser_bm_boot_pdpt
rumpuser_bm_boot_pdpt:
    .skip 4096
    .globl rumpuser_bm_boot_pd
rumpuser_bm_boot_pd:
    .skip 4096 * 4
    .globl rumpuser_bm_boot_stack
rumpuser_bm_boot_stack:
    .skip {stack_size}
    .globl rumpuser_bm_boot_stack_top
rumpuser_bm_boot_stack_top:
    .popsection

    .pushsection .rodata.boot, "a"
    .balign 16
rumpuser_bm_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
rumpuser_bm_boot_gdt_end:
    .balign 4
rumpuser_bm_boot_gdtr:
    .word rumpuser_bm_boot_gdt_end - rumpuser_bm_boot_gdt - 1
    .long rumpuser_bm_boot_gdt
    .popsection

    .pushsection .text.boot, "ax", @progbits
    .code32
    .globl pvh_start32
    .type pvh_start32, @function
pvh_start32:
    cli
    cld
    movl %ebx, %esi                 /* hvm_start_info, kept in esi */

    /* Zero .bss (page tables, stack, statics). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    /* PD entries: 2048 x 2 MiB, present | writable | page size. */
    movl $rumpuser_bm_boot_pd, %edi
    movl $0x83, %eax
    movl $2048, %ecx
1:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 1b

    /* PDPT[0..4] -> the four page directories; PML4[0] -> PDPT. */
    movl $rumpuser_bm_boot_pd + 0x3, %eax
    movl %eax, rumpuser_bm_boot_pdpt
    addl $0x1000, %eax
    movl %eax, rumpuser_bm_boot_pdpt + 8
    addl $0x1000, %eax
    movl %eax, rumpuser_bm_boot_pdpt + 16
    addl $0x1000, %eax
    movl %eax, rumpuser_bm_boot_pdpt + 24
    movl $rumpuser_bm_boot_pdpt + 0x3, %eax
    movl %eax, rumpuser_bm_boot_pml4

    /* CR4.PAE, CR3, EFER.LME, CR0.PG|PE. */
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $rumpuser_bm_boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0

    lgdt rumpuser_bm_boot_gdtr
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movq $rumpuser_bm_boot_stack_top, %rsp
    xorl %ebp, %ebp
    movl %esi, %edi                 /* zero-extends: start-info address */
    call {kmain}
2:  cli
    hlt
    jmp 2b
    .size pvh_start32, . - pvh_start32
    .popsection
"#,
    stack_size = const BOOT_STACK_SIZE,
    kmain = sym entry,
    options(att_syntax)
);

extern "C" {
    /// The platform crate's Rust entry (see the module docs).
    #[link_name = "rumpuser_pvh_kmain"]
    fn entry(start_info: u64) -> !;
}

extern "C" {
    static rumpuser_bm_boot_pml4: u8;
    static rumpuser_bm_boot_stack: u8;
    static __image_start: u8;
    static __image_end: u8;
}

/// The loaded image, `[__image_start, __image_end)` of `link.ld`: kept
/// out of the heap.
pub fn image_range() -> crate::memmap::Range {
    crate::memmap::Range {
        start: core::ptr::addr_of!(__image_start) as u64,
        end: core::ptr::addr_of!(__image_end) as u64,
    }
}

/// Physical (= virtual) address of the boot PML4.
pub fn pml4_addr() -> u64 {
    core::ptr::addr_of!(rumpuser_bm_boot_pml4) as u64
}

/// Lowest address of the boot stack (for reports and the guard page).
pub fn boot_stack_bottom() -> u64 {
    core::ptr::addr_of!(rumpuser_bm_boot_stack) as u64
}
