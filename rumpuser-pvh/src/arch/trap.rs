//! Descriptor tables and traps: GDT with a TSS, the IDT, assembly entry
//! stubs, dispatch of device/timer interrupts, and crash reports for CPU
//! exceptions.
//!
//! Exceptions run on IST stacks, never on the interrupted stack: the
//! kernel layer is ordinary user-mode C code that uses the 128-byte red
//! zone below `rsp`, which a frame pushed onto its stack would destroy.
//! IST2: double fault; IST3: NMI and machine check; IST4: every other
//! exception (so a stack overflow into a guard page still produces a
//! page-fault report). External interrupts run on the interrupted stack:
//! interrupts are masked (`IF=0`) except inside two out-of-line sequences
//! of ours, the idle halt and the scheduler's interrupt window
//! (`cpu::wait_for_interrupt`, `cpu::interrupt_window`), called from Rust
//! (no red zone on this target) with nothing live below the return
//! address, so handlers never nest and never run on top of kernel code.
//! (They used an IST stack, IST1, until nested Xen under QEMU TCG was
//! found to triple-fault the guest in the handler of the upcall vector
//! delivered through it: 5 domU boots in about 28 with IST1, none in 20
//! without it.)
//!
//! An exception prints vector, error code, RIP, CR2, control and general
//! registers, what CR2 hit (the NULL page, a stack guard page), the
//! running green thread and the top of its stack, then exits QEMU with
//! [`crate::status::EXCEPTION`].

use super::{cpu, lapic, pic};
use crate::kprintln;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// Registers saved by the entry stubs, lowest address first.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

global_asm!(
    r#"
    .pushsection .text.rumpuser_bm_isr, "ax", @progbits
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,255
    .p2align 4
rumpuser_bm_isr\n:
    push 0
    push \n
    jmp rumpuser_bm_isr_common
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    .p2align 4
rumpuser_bm_isr\n:
    push \n
    jmp rumpuser_bm_isr_common
    .endr

rumpuser_bm_isr_common:
    push rax
    push rcx
    push rdx
    push rbx
    push rbp
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    mov rbx, rsp
    and rsp, -16
    cld
    call {dispatch}
    mov rsp, rbx
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rbp
    pop rbx
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq
    .popsection

    .pushsection .rodata.rumpuser_bm_isr, "a"
    .p2align 3
    .globl rumpuser_bm_isr_table
rumpuser_bm_isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,255
    .quad rumpuser_bm_isr\n
    .endr
    .popsection
"#,
    dispatch = sym dispatch,
);

extern "C" {
    /// Entry stub addresses: vectors 0..=49, then 255.
    static rumpuser_bm_isr_table: [u64; 51];
}

/// An IST stack (`UnsafeCell` so that it lives in `.bss`, writable).
#[repr(C, align(16))]
struct IstStack<const N: usize>(UnsafeCell<[u8; N]>);
// SAFETY: only the CPU uses the memory, as a stack, one interrupt at a time.
unsafe impl<const N: usize> Sync for IstStack<N> {}

impl<const N: usize> IstStack<N> {
    const fn new() -> Self {
        IstStack(UnsafeCell::new([0; N]))
    }
    fn top(&self) -> VirtAddr {
        VirtAddr::new(self.0.get() as u64 + N as u64)
    }
}

static IST_DOUBLE: IstStack<{ 16 * 1024 }> = IstStack::new();
static IST_NMI: IstStack<{ 16 * 1024 }> = IstStack::new();
static IST_EXC: IstStack<{ 64 * 1024 }> = IstStack::new();

static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<(GlobalDescriptorTable, [SegmentSelector; 3])> = spin::Once::new();
static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// Loads the final GDT (code, data, TSS with the IST stacks) and the IDT.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut t = TaskStateSegment::new();
        t.interrupt_stack_table[1] = IST_DOUBLE.top();
        t.interrupt_stack_table[2] = IST_NMI.top();
        t.interrupt_stack_table[3] = IST_EXC.top();
        t
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut g = GlobalDescriptorTable::new();
        let code = g.append(Descriptor::kernel_code_segment());
        let data = g.append(Descriptor::kernel_data_segment());
        let tss = g.append(Descriptor::tss_segment(tss));
        (g, [code, data, tss])
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded:
    // a 64-bit code segment, a data segment and an available TSS.
    unsafe {
        CS::set_reg(sel[0]);
        SS::set_reg(sel[1]);
        DS::set_reg(sel[1]);
        ES::set_reg(sel[1]);
        load_tss(sel[2]);
    }
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: a static array of 51 stub addresses defined above.
        let table = unsafe { &*core::ptr::addr_of!(rumpuser_bm_isr_table) };
        let addr = |i: usize| VirtAddr::new(table[i]);
        // SAFETY: every `set_handler_addr` below installs the entry stub
        // of its own vector, which saves every register, handles the error
        // code the CPU pushes (or pushes a dummy), and returns with
        // `iretq`; the IST indexes exist in the TSS loaded above.
        unsafe {
            macro_rules! exc {
                ($field:ident, $v:expr, $ist:expr) => {
                    idt.$field.set_handler_addr(addr($v)).set_stack_index($ist);
                };
            }
            exc!(divide_error, 0, 3);
            exc!(debug, 1, 3);
            exc!(non_maskable_interrupt, 2, 2);
            exc!(breakpoint, 3, 3);
            exc!(overflow, 4, 3);
            exc!(bound_range_exceeded, 5, 3);
            exc!(invalid_opcode, 6, 3);
            exc!(device_not_available, 7, 3);
            exc!(double_fault, 8, 1);
            exc!(invalid_tss, 10, 3);
            exc!(segment_not_present, 11, 3);
            exc!(stack_segment_fault, 12, 3);
            exc!(general_protection_fault, 13, 3);
            exc!(page_fault, 14, 3);
            exc!(x87_floating_point, 16, 3);
            exc!(alignment_check, 17, 3);
            exc!(machine_check, 18, 2);
            exc!(simd_floating_point, 19, 3);
            exc!(virtualization, 20, 3);
            exc!(cp_protection_exception, 21, 3);
            exc!(hv_injection_exception, 28, 3);
            exc!(vmm_communication_exception, 29, 3);
            exc!(security_exception, 30, 3);
            // External interrupts: no IST (see the module documentation).
            for v in 32..=49u8 {
                idt[v].set_handler_addr(addr(v as usize));
            }
            idt[255].set_handler_addr(addr(50));
        }
        idt
    });
    idt.load();
}

const NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection",
    "#PF page fault",
    "reserved",
    "#MF x87 floating point",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating point",
    "#VE virtualization",
    "#CP control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved",
];

static SELF_TEST_IRQS: AtomicU64 = AtomicU64::new(0);
static TIMER_IRQS: AtomicU64 = AtomicU64::new(0);
static PIC_IRQ_HANDLER: spin::Once<fn(u8)> = spin::Once::new();

/// Makes `f(line)` the handler of the 8259's device interrupts (bare
/// metal's `irq`; set once, at boot). Without one they are reported as
/// unexpected.
pub fn set_pic_irq_handler(f: fn(u8)) {
    PIC_IRQ_HANDLER.call_once(|| f);
}

/// Interrupts taken on [`lapic::TIMER_VECTOR`] since boot (bare metal:
/// the LAPIC timer; Xen: the event-channel upcall, which uses the same
/// vector).
pub fn timer_interrupts() -> u64 {
    TIMER_IRQS.load(Ordering::Relaxed)
}

/// Interrupts taken on [`lapic::SELF_TEST_VECTOR`] since boot.
pub fn self_test_irqs() -> u64 {
    SELF_TEST_IRQS.load(Ordering::Relaxed)
}

extern "C" fn dispatch(f: &mut TrapFrame) {
    let v = f.vector as u8;
    if v >= 32 {
        if let Some(rip) = cpu::window_resume(f.rip) {
            // One interrupt per window, back with IF clear.
            f.rip = rip;
            f.rflags &= !cpu::RFLAGS_IF;
        }
    }
    match v {
        0..=31 => exception(f),
        _ if (pic::VECTOR_BASE..pic::VECTOR_BASE + 16).contains(&v)
            && PIC_IRQ_HANDLER.get().is_some() =>
        {
            if let Some(f) = PIC_IRQ_HANDLER.get() {
                f(v - pic::VECTOR_BASE)
            }
        }
        lapic::TIMER_VECTOR => {
            lapic::eoi();
            TIMER_IRQS.fetch_add(1, Ordering::Relaxed);
        }
        lapic::SELF_TEST_VECTOR => {
            lapic::eoi();
            SELF_TEST_IRQS.fetch_add(1, Ordering::Relaxed);
        }
        lapic::SPURIOUS_VECTOR => {}
        _ => {
            kprintln!("{}: unexpected interrupt vector {v}", crate::exit::who());
            lapic::eoi();
        }
    }
}

static IN_REPORT: AtomicBool = AtomicBool::new(false);

fn exception(f: &TrapFrame) -> ! {
    if IN_REPORT.swap(true, Ordering::SeqCst) {
        kprintln!(
            "\n*** {}: exception {} inside the crash report (rip {:#x}); giving up",
            crate::exit::who(),
            f.vector,
            f.rip
        );
        crate::exit::exit_status(crate::status::EXCEPTION);
    }
    let v = f.vector as usize;
    kprintln!(
        "\n*** {}: CPU exception {} ({}), error code {:#x}",
        crate::exit::who(),
        v,
        NAMES[v & 31],
        f.error
    );
    let cr2 = cpu::cr2();
    if v == 14 {
        kprintln!(
            "    page fault: {} {:#x} ({}){}",
            if f.error & 16 != 0 {
                "instruction fetch at"
            } else if f.error & 2 != 0 {
                "write of"
            } else {
                "read of"
            },
            cr2,
            if f.error & 1 != 0 {
                "protection violation"
            } else {
                "page not present"
            },
            super::paging::explain(cr2),
        );
    }
    let (cr3, cr0, cr4) = cpu::control_registers();
    kprintln!(
        "    rip {:#018x}  cs {:#x}  rflags {:#x}  rsp {:#018x}  ss {:#x}",
        f.rip,
        f.cs,
        f.rflags,
        f.rsp,
        f.ss
    );
    kprintln!("    cr0 {cr0:#x}  cr2 {cr2:#x}  cr3 {cr3:#x}  cr4 {cr4:#x}");
    kprintln!(
        "    rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx
    );
    kprintln!(
        "    rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}",
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8
    );
    kprintln!(
        "    r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}",
        f.r9,
        f.r10,
        f.r11,
        f.r12
    );
    kprintln!(
        "    r13 {:#018x} r14 {:#018x} r15 {:#018x}",
        f.r13,
        f.r14,
        f.r15
    );
    crate::exit::report_thread();
    if super::paging::is_mapped_range(f.rsp, 64) {
        kprint_stack(f.rsp);
    }
    crate::exit::exit_status(crate::status::EXCEPTION)
}

fn kprint_stack(rsp: u64) {
    crate::kprint!("    stack at rsp:");
    for i in 0..8u64 {
        let p = (rsp + i * 8) as *const u64;
        // SAFETY: the 64 bytes at rsp were checked to be mapped; a stale
        // value is harmless in a crash report.
        let w = unsafe { p.read_volatile() };
        crate::kprint!(" {w:#x}");
    }
    kprintln!();
}
